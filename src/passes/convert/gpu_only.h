#pragma once
// --gpu_only: the forms ORT's CUDA kernels prefer, applied to the fused graph.
//
//   BiasGelu(a, bias)  =>  FastGelu(a, bias)      Gelu(x)  =>  FastGelu(x)
//
// FastGelu is the tanh approximation of GELU (|difference| < 5e-4 for any input, ~1e-3 at the
// outputs of a BERT layer stack): the CUDA kernel is one fused pass without erf, and what the
// original tool emitted on GPU. On CPU, ORT's FastGelu is no faster than BiasGelu, and BiasGelu is
// exact, so without --gpu_only the exact form stays. The other CUDA preferences are already the
// defaults (see README, "float16 / int32 / gpu_only").

#include "bertopt/ir/graph.h"
#include "bertopt/status.h"

namespace bertopt::passes {

/// Rewrites every com.microsoft BiasGelu and Gelu into FastGelu; returns how many.
StatusOr<int> ApplyGpuForms(ir::Graph& graph);

}  // namespace bertopt::passes
