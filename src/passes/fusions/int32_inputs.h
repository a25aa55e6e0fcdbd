#pragma once
// The int32 views of BERT graph inputs that the fused ops read (ids, segment ids, mask), created
// once per graph and shared by every fused node, so 12 Attention nodes read one mask index.

#include "bertopt/ir/graph.h"

namespace bertopt::passes {

/// `value` itself when it is already int32, else the output of one shared Cast(to=int32) of it
/// (named "<value>_int32"; reused when it exists).
ir::Value* GetOrCreateInt32(ir::Graph& graph, ir::Value* value);

/// The mask input of Attention for `mask` (a (B, S) 0/1 tensor of any integer or float type):
/// raw = false: the 1-D mask index ReduceSum(int32 mask, axis 1) = valid length per row, which
/// assumes right padding (named "<mask>_mask_index"); raw = true: the (B, S) int32 mask itself.
/// Created once and reused.
ir::Value* GetOrCreateAttentionMask(ir::Graph& graph, ir::Value* mask, bool raw);

/// The ReduceSum node GetOrCreateAttentionMask made for `mask`, or nullptr; EmbedLayerNormalization
/// takes its place (its output 1 is the same mask index).
ir::Node* FindMaskIndexNode(const ir::Graph& graph, const ir::Value* mask);

}  // namespace bertopt::passes
