#pragma once
// Which int8 candidates stay float32, decided by measuring the model itself (`optimize --int8`,
// `quantize`; --int8_min_cosine). The target is an output accuracy: every output of every
// calibration sample at cosine >= min_cosine to the float32 model's, as `compare --min_cosine`
// checks it. The fewest candidates that reach it stay float32, the most harmful first:
//
//   1. Quantize every candidate (but --int8_exclude) and run that model and the float32 one
//      through ORT (optimizations off) on `samples` generated BERT batches. Met: done.
//   2. Rank the candidates by their own error: the float32 run also returns each candidate's
//      activation input; the error is the relative RMS difference of its product when the
//      activation is rounded to uint8 per tensor (as DynamicQuantizeLinear does at run time) and
//      the weight to int8 (as Quantize does), against the float32 product, over sampled rows.
//   3. Keep the k largest in float32, the smallest k that meets the target found by bisection
//      over the ranking, each probe one quantization and one ORT run (k = all is float32 and
//      meets it by construction).
//
// Why measure activations: on trained transformers their uint8 rounding, not the weights',
// dominates the error (all-MiniLM-L6-v2: 1-8 % relative output error per MatMul from the
// activations, 0.2-1.8 % from the weights), and the worst layers are those whose inputs carry
// outlier features, which the weights alone do not show.
//
// Why the default target is 0.995 and not the 0.99 a user may want on real text: the generated
// inputs are uniform random token ids, which understate real text's error and do not even order
// the choices the same way. On all-MiniLM-L6-v2 (bench/minilm_int8.py's 240 sentences, the k
// largest kept float32 for k = 0..9) the worst real sentence embedding was 0.0014 above to 0.0061
// below this calibration's lowest cosine, and not monotonic in k (k = 3: 0.9918, k = 4: 0.9898).
// 0.995 chose k = 6 there, worst real sentence 0.9943. Pass --int8_min_cosine to trade accuracy
// for speed, 0 to turn calibration off.

#include <cstdint>
#include <string>
#include <vector>

#include "bertopt/status.h"
#include "onnx/onnx_pb.h"
#include "passes/convert/quantize.h"

namespace bertopt::ort {

struct CalibrationOptions {
  /// Every output of every sample at cosine >= this to float32's; 0 turns calibration off.
  double min_cosine = 0.995;
  int samples = 8;
  /// The shape of the generated batches; a model's static input dims take precedence.
  int batch_size = 1;
  int sequence_length = 128;
  uint64_t seed = 5;
  /// Rows of each sample's activation used for a candidate's error estimate (the uint8 scale is
  /// taken over the whole tensor, as at run time).
  int rows_per_sample = 8;
};

/// A candidate's own error on the calibration samples (step 2).
struct CandidateError {
  std::string key;  ///< passes::QuantizedNode::key
  std::string op;
  double relative_error = 0;
};

/// One quantized model run against float32: `kept_float` largest-error candidates in float32.
struct CalibrationProbe {
  int kept_float = 0;
  double min_cosine = 1;
};

struct CalibrationReport {
  CalibrationOptions options;  ///< as used (static dims applied)
  int candidates = 0;
  std::vector<CandidateError> ranking;   ///< largest first; empty when step 1 met the target
  std::vector<CalibrationProbe> probes;  ///< in the order run
  std::vector<std::string> kept_float;   ///< the keys chosen, largest error first
  double min_cosine = 1;                 ///< of the chosen model (1 when everything stays float32)
  double seconds = 0;
};

/// Runs steps 1-3 on the float32 `model` (usually Optimize's output) and adds the chosen
/// candidates to `options.keep_float`, each with a reason for the quantize report. Errors: no
/// BERT inputs found, a model ORT cannot load or run, or one too large to serialize (2 GB).
StatusOr<CalibrationReport> CalibrateInt8(const onnx::ModelProto& model,
                                          passes::QuantizeOptions& options,
                                          const CalibrationOptions& calibration);

}  // namespace bertopt::ort
