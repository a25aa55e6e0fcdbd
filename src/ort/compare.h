#pragma once
// Output parity between a baseline model and its optimized version: both run through ORT with ORT's
// own graph optimizations disabled (so ORT's fusions cannot hide a wrong one of ours) on the same
// deterministic BERT inputs, every output compared with numpy.allclose semantics. Used by the
// `compare` command and by `optimize --verify`.

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <vector>

#include "bertopt/status.h"

namespace bertopt::ort {

struct CompareOptions {
  std::filesystem::path baseline_model;
  std::filesystem::path optimized_model;
  int batch_size = 1;
  int sequence_length = 128;
  int samples = 100;
  uint64_t seed = 3;
  double rtol = 1e-3;
  double atol = 1e-4;
  bool use_gpu = false;
  /// Where batch_{B}_seq_{S}/test_data_set_0 goes; beside the optimized model when empty.
  std::filesystem::path output_dir;
  /// Overrides of the detected BERT input names; "" detects (see FindBertInputs).
  std::string input_ids_name;
  std::string segment_ids_name;
  std::string input_mask_name;
  /// Also log how inputs were found and each failing sample.
  bool verbose = false;
  /// Write the first sample's inputs and the baseline's outputs as onnx_test_runner test data.
  bool write_test_data = true;
  /// The tolerance mode for quantized models (--min_cosine, --max_abs_diff): when either is set, a
  /// sample passes when each output's cosine similarity to the baseline's (both flattened) is at
  /// least `min_cosine` and no element differs by more than `max_abs_diff`, each checked only when
  /// set; rtol and atol are then not used.
  std::optional<double> min_cosine;
  std::optional<double> max_abs_diff;
  bool tolerance_mode() const { return min_cosine || max_abs_diff; }
};

/// Differences of one output over all samples. The relative difference |a-b|/|b| is taken over
/// elements with b != 0 (b = baseline); NaN or mismatched infinities make both differences inf.
struct OutputDiff {
  std::string name;
  double max_abs_diff = 0;
  double max_rel_diff = 0;
  /// Cosine similarity of the flattened output to the baseline's, lowest and mean over samples
  /// (1 when both are all zeros; NaN once a non-finite value was seen).
  double min_cosine = 1;
  double mean_cosine = 1;
  int samples_failed = 0;
};

struct CompareReport {
  int samples = 0;
  int passed = 0;
  std::vector<OutputDiff> outputs;
  /// The folder holding input_k.pb / output_k.pb; empty when none was written.
  std::filesystem::path test_data_dir;

  bool AllPassed() const { return samples > 0 && passed == samples; }
};

/// Cosine similarity of two equally long vectors: 1 when both are all zeros, 0 when only one is,
/// NaN when either holds a non-finite value.
double CosineSimilarity(std::span<const float> a, std::span<const float> b);

/// Runs both models on `options.samples` batches and compares every output by position and name.
/// A sample passes when every output has the baseline's shape and every element satisfies
/// |a - b| <= atol + rtol * |b| (in the tolerance mode: meets min_cosine and max_abs_diff).
/// Errors (bad options, missing or unloadable model, inputs that cannot be matched, outputs that
/// differ in count or names) are returned as a Status; a numeric mismatch is not an error but a
/// report with failed samples. Progress and the per-output summary go to `log`.
StatusOr<CompareReport> CompareModels(const CompareOptions& options, std::ostream& log);

/// `bertopt compare --json` (and bertopt.compare in Python): the settings compared under, the
/// counts, "all_passed", one object per output, and "test_data_dir" (null when none was
/// written). Infinite differences (NaN, mismatched shapes) are null.
nlohmann::ordered_json CompareReportToJson(const CompareOptions& options,
                                           const CompareReport& report);

}  // namespace bertopt::ort
