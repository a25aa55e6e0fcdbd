#pragma once
#include "bertopt/optimize.h"
#include "bertopt/passes/pass.h"

namespace bertopt::passes {

/// The ordered pass list for `options.pass.model_type`, without the passes the user disabled.
StatusOr<Pipeline> MakePipeline(const OptimizeOptions& options);

/// Runs `pipeline` over `model` in place: annotates shapes (ONNX shape inference, dropped again
/// afterwards), builds the Graph, runs each pass with timing, imports com.microsoft when a fused
/// op was added, and commits. Tests run single fusions through this same path.
StatusOr<std::vector<PassStats>> RunPipeline(onnx::ModelProto& model, const Pipeline& pipeline,
                                             const PassOptions& options);

}  // namespace bertopt::passes
