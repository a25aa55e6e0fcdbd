#pragma once
// --input_int32: the model's int64 (B, S) inputs (ids, segment ids, mask) become int32.
//
//   input_ids(i64) ─┬─► Cast(to=int32) ─► EmbedLayerNormalization
//                   ├─► Shape
//                   └─► Add(·, C:i64)
//   =>
//   input_ids(i32) ─┬─► EmbedLayerNormalization
//                   ├─► Shape
//                   └─► Cast(to=int64) ─► Add(·, C:i64)
//
// The Casts to int32 that fed the fused ops go; readers that take int32 as well (Gather indices,
// Shape, Cast) read the input directly, a comparison with an int64 constant compares with an int32
// copy of it; every other reader gets one shared Cast back to int64, so the graph still
// type-checks.

#include <string>
#include <vector>

#include "bertopt/ir/graph.h"
#include "bertopt/status.h"

namespace bertopt::passes {

struct InputInt32Result {
  std::vector<std::string> inputs;  ///< the graph inputs made int32
  int casts_removed = 0;            ///< Cast(to=int32) nodes that read them
  int casts_added = 0;              ///< Cast(to=int64) nodes for readers that need int64
};

/// Converts every int64 graph input of rank 2 (not an initializer) to int32, in place.
StatusOr<InputInt32Result> ConvertInputsToInt32(ir::Graph& graph);

}  // namespace bertopt::passes
