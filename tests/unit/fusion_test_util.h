#pragma once
// What every fusion test needs: run passes on a tiny model exactly as `optimize` does, count ops,
// and check through ONNX Runtime that the outputs did not change.

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bertopt/passes/pass.h"
#include "onnx/onnx_pb.h"

namespace bertopt::testing {

struct FusionRun {
  onnx::ModelProto after;
  std::vector<passes::PassStats> stats;  ///< one per pass, in order
  /// All misses of all passes, for failure messages.
  std::string Misses() const;
};

/// Runs `pass` followed by dead-code removal and a topological sort over a copy of `model`
/// through passes::RunPipeline (the path optimize uses). A pass error fails the test.
FusionRun RunFusion(const onnx::ModelProto& model, std::unique_ptr<passes::Pass> pass,
                    const passes::PassOptions& options = {});
/// The same with several passes in order.
FusionRun RunPasses(const onnx::ModelProto& model,
                    std::vector<std::unique_ptr<passes::Pass>> passes,
                    const passes::PassOptions& options = {});

struct ParityOptions {
  double rtol = 1e-4;
  double atol = 1e-5;
  /// Sizes of symbolic dimensions by name; unnamed or unlisted ones get `default_dim`.
  std::map<std::string, int64_t> dims;
  int64_t default_dim = 3;
  /// Integer inputs are drawn from [0, int_high[name]) (default [0, 2)); inputs whose name contains
  /// "mask" get ones followed by zeros (right padding) instead.
  std::map<std::string, int64_t> int_high;
  uint32_t seed = 1;
  /// When set, each output is compared by the cosine similarity of the flattened values instead of
  /// allclose (quantized models): it must be at least this.
  std::optional<double> min_cosine;
};

/// Runs both models with ORT graph optimizations disabled on the same seeded inputs and expects
/// every output to match (shape and values, allclose). Also expects ORT to load `after` at every
/// optimization level. Non-fatal failures; returns false when anything differed.
bool ExpectSameOutputs(const onnx::ModelProto& before, const onnx::ModelProto& after,
                       const ParityOptions& options = {});

}  // namespace bertopt::testing
