#pragma once
// float32 -> float16 conversion of a whole model: weights, Constant tensors and the computation.
//
// Every node computes in float16 except the blocked ones (an op block list, named nodes, ops whose
// ONNX schema has no float16 form, nodes with subgraphs, and unknown ops), which keep float32.
// Casts are added only where a value crosses between the two, and at graph inputs and outputs when
// their types are kept; a value needed in both types is cast once and shared.

#include <string>
#include <vector>

#include "bertopt/ir/graph.h"
#include "bertopt/optimize.h"
#include "bertopt/status.h"

namespace bertopt::passes {

/// Ops kept in float32 whatever the user adds: range-sensitive or without a float16 kernel in ORT
/// (the whole ai.onnx.ml domain is blocked too).
const std::vector<std::string>& DefaultFloat16OpBlockList();

/// Converts `graph` in place. Fails on a --node_block_list name that names no node, or on a float
/// value whose type cannot be told (naming it); the graph is unchanged then.
StatusOr<Float16Report> ConvertToFloat16(ir::Graph& graph, const Float16Options& options);

/// Removes Casts that do nothing (to the type their input already has) and folds Cast(Cast(x))
/// pairs whose inner Cast is exact (it widens x, e.g. float16 -> float32, int32 -> int64) into one
/// Cast of x, or into x itself when the pair is a round trip. Returns how many Casts went.
int RemoveRedundantCasts(ir::Graph& graph);

}  // namespace bertopt::passes
