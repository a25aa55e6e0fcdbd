#pragma once
// Graph cleanups that every pipeline runs before (and after) fusing.

#include <memory>

#include "bertopt/passes/pass.h"

namespace bertopt::passes {

/// Removes Identity nodes, rewiring their consumers to the Identity's input. An Identity whose
/// output is a graph output stays unless its input's producer can write the output name directly.
std::unique_ptr<Pass> MakeRemoveIdentityPass();
/// Removes nodes whose results nothing reads and initializers nothing reads.
std::unique_ptr<Pass> MakeDeadCodePass();
/// Turns Constant nodes into initializers (exact: the same tensor, moved), so every constant has
/// one form. Skipped for IR < 4, where initializers must also be graph inputs.
std::unique_ptr<Pass> MakeConstantToInitializerPass();
/// Sorts the graph topologically (the last pass of every pipeline).
std::unique_ptr<Pass> MakeTopologicalSortPass();

}  // namespace bertopt::passes
