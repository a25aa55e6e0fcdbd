#pragma once
// Graph cleanups that every pipeline runs before (and after) fusing.

#include <memory>

#include "bertopt/passes/pass.h"

namespace bertopt::passes {

/// Removes Identity nodes (and Transposes with perm [0, 1, ..]), rewiring their consumers to the
/// Identity's input. An Identity whose output is a graph output stays unless its input's producer
/// can write the output name directly.
std::unique_ptr<Pass> MakeRemoveIdentityPass();
/// Removes nodes whose results nothing reads and initializers nothing reads.
std::unique_ptr<Pass> MakeDeadCodePass();
/// Turns Constant nodes into initializers (exact: the same tensor, moved), so every constant has
/// one form. Skipped for IR < 4, where initializers must also be graph inputs.
std::unique_ptr<Pass> MakeConstantToInitializerPass();
/// Folds small computations on constants (Sqrt, Cast, Unsqueeze, Range, Slice, ...) into
/// initializers, so fusions see one form of each constant.
std::unique_ptr<Pass> MakeFoldConstantsPass();
/// GlobalAveragePool of a rank-3 tensor -> ReduceMean over the last axis (tf2onnx's LayerNorm
/// mean).
std::unique_ptr<Pass> MakeGlobalPoolToReduceMeanPass();
/// Sorts the graph topologically (the last pass of every pipeline).
/// Transpose[1,0] of a 2-D initializer read only through such Transposes -> the transposed one.
std::unique_ptr<Pass> MakeTransposedWeightsPass();
std::unique_ptr<Pass> MakeTopologicalSortPass();

}  // namespace bertopt::passes
