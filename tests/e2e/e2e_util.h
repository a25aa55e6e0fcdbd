#pragma once
// Shared by the end-to-end tests: the generated test models (tests/models/test_matrix.txt, made
// once per run by the torch generator and cached) and running the bertopt binary.

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "bertopt/optimize.h"
#include "ort/compare.h"

namespace bertopt::e2e {

struct GeneratedModel {
  std::string args;  ///< the generator arguments, e.g. "--kind bert_seq --opset 11"
  std::string kind;  ///< bert_seq, bert_qa, distilbert, roberta, ...
  int opset = 0;
  bool is_static = false;
  /// A short test-name-safe label, e.g. "bert_seq_op11_static".
  std::string Label() const;
  /// The cached .onnx (ctest's generate_test_models fixture makes the whole matrix first, so this
  /// is a cache hit); aborts the test binary with the generator's output when generation fails.
  std::filesystem::path Path() const;
};

/// Every model of tests/models/test_matrix.txt (read from the file; nothing generated yet), so
/// tests can be listed without running the generator.
const std::vector<GeneratedModel>& MatrixModels();

/// Generates (or finds in the cache) one model with the given generator arguments.
std::filesystem::path GenerateModel(const std::string& args);
/// The same with another generator of tests/models (e.g. "gen_tf_layouts.py").
std::filesystem::path GenerateModelWith(const std::string& script, const std::string& args);
/// The non-comment lines of a file of tests/models (a test matrix).
std::vector<std::string> MatrixLines(const std::string& file);
/// The folder tests/models of the source tree.
std::filesystem::path ModelsDir();

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// Runs the bertopt binary (or one of its seed-named symlinks) with `args` (shell-quoted by the
/// caller where needed), capturing stdout and stderr.
CommandResult RunBertopt(const std::string& args, const std::string& program = "bertopt",
                         const std::vector<std::pair<std::string, std::string>>& env = {});

/// A fresh temporary folder.
std::filesystem::path TempDir(const std::string& prefix);

/// How many `op` nodes the optimize report counts (0 when none).
int FusedCount(const OptimizeReport& report, const std::string& op);
/// The verdict's missing pieces and every pass's misses, one per line, for failure messages.
std::string ExplainReport(const OptimizeReport& report);
/// Compares `optimized` with `baseline` through ORT (optimizations off) at batch 2, sequence 16
/// (what the static test exports are fixed at) and expects every sample of every output to pass;
/// non-fatal failures name the outputs that differed.
/// compare's options as the e2e tests run it: batch 2, sequence 16 (what the static exports are
/// fixed at), `samples` samples, no test data written.
ort::CompareOptions SmallCompare(const std::filesystem::path& baseline,
                                 const std::filesystem::path& optimized, int samples);

void ExpectSameOutputs(const std::filesystem::path& baseline,
                       const std::filesystem::path& optimized, int samples = 10, double rtol = 1e-3,
                       double atol = 1e-4);

}  // namespace bertopt::e2e
