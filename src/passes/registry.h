#pragma once
#include "bertopt/optimize.h"
#include "bertopt/passes/pass.h"

namespace bertopt::passes {

/// The ordered pass list for `options.pass.model_type`, without the passes the user disabled.
StatusOr<Pipeline> MakePipeline(const OptimizeOptions& options);

/// Runs `pipeline` over `model` in place: annotates shapes (ONNX shape inference, dropped again
/// afterwards), builds the Graph, runs each pass with timing, imports com.microsoft when a fused
/// op was added, and commits. Tests run single fusions through this same path.
/// `check_inferred_types` (Optimize): refuse, as kInvalidModel, an input whose inferred types mix
/// where an op needs one type (ValidateGraph); a fusion's test may run it on graphs that do.
StatusOr<std::vector<PassStats>> RunPipeline(onnx::ModelProto& model, const Pipeline& pipeline,
                                             const PassOptions& options,
                                             bool check_inferred_types = false);

}  // namespace bertopt::passes
