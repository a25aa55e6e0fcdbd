#pragma once
// The ONNX Runtime side of `bertopt perf`: what a model needs to be fed, and one timed run of one
// model at one (batch, sequence) on one session. Everything outside the measured region (input
// generation, dtype conversion, binding) happens in Create, before any clock starts.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "bertopt/status.h"
#include "ort/bert_inputs.h"
#include "ort/session.h"

namespace bertopt::perf {

using ort::BertInputs;
using ort::BertSample;
using ort::PreparedRun;
using ort::Session;
using ort::Tensor;

/// What perf needs to know about a model file before creating sessions.
struct PerfModelInfo {
  std::string path;
  BertInputs roles;                ///< which graph input is ids / segment ids / mask
  int64_t vocab_size = 0;          ///< rows of the word embedding (kDefaultVocabSize when unknown)
  int64_t segment_vocab_size = 2;  ///< rows of the token-type table (2 when unknown)
};

/// Reads the graph (not the weights' external data) and finds its BERT inputs and vocabulary.
/// Errors name the file: kNotFound, kInvalidModel (not ONNX), kInvalidArgument (inputs unclear).
StatusOr<PerfModelInfo> InspectPerfModel(const std::string& path, const BertInputs& overrides);

/// What is inside the clock.
struct TimingMode {
  /// false: only ORT's run, on inputs already turned into ORT values (PreparedRun::Run).
  /// true: also creating the input tensors from host memory and reading the outputs back to host
  /// memory, as an application calling Run with its own buffers would.
  bool inclusive = false;
  /// Run through Ort::IoBinding. Exclusive: inputs and outputs bound once, outputs stay on the
  /// session's device. Inclusive: a binding made per run with outputs bound to host memory.
  bool io_binding = false;
};

/// `samples` ready to run on `session` in `mode`. Holds a reference to the session, which must
/// outlive it.
class SettingRunner {
 public:
  static StatusOr<std::unique_ptr<SettingRunner>> Create(Session& session, const BertInputs& roles,
                                                         const std::vector<BertSample>& samples,
                                                         TimingMode mode);
  ~SettingRunner();
  SettingRunner(const SettingRunner&) = delete;
  SettingRunner& operator=(const SettingRunner&) = delete;

  /// One run on sample `sample % samples`; returns the measured milliseconds.
  StatusOr<double> Run(int sample);

 private:
  SettingRunner(Session& session, TimingMode mode) : session_(session), mode_(mode) {}
  /// The inclusive IO-binding run, written here against the ORT C++ API because session.h has no
  /// per-run binding to host outputs.
  Status RunInclusiveWithBinding(const std::vector<std::pair<std::string, Tensor>>& feeds);

  Session& session_;
  TimingMode mode_;
  std::vector<std::vector<std::pair<std::string, Tensor>>> feeds_;  // per sample
  std::vector<std::unique_ptr<PreparedRun>> prepared_;              // per sample, exclusive only
};

}  // namespace bertopt::perf
