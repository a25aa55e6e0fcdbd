#pragma once
#include "bertopt/optimize.h"
#include "bertopt/passes/pass.h"

namespace bertopt::passes {

/// The ordered pass list for `options.pass.model_type`, without the passes the user disabled.
StatusOr<Pipeline> MakePipeline(const OptimizeOptions& options);

}  // namespace bertopt::passes
