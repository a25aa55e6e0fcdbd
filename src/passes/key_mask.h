#pragma once
// Proves that a computed boolean attention mask is the user's (B, S) mask repeated over heads and
// queries: cond[b, h, q, k] == (mask[b, k] != 0) at every index of cond's [B, 1|N, 1|Q, S].
//
// transformers 4.5x+ (masking_utils) builds the mask by index arithmetic instead of Unsqueeze:
//   TorchScript: Gather(Flatten(mask, 2), b·S + k) over Range(B)[:, None, None, None] and
//                Range(S)[None, None, None, :], Reshaped to [B, 1, 1, S];
//   dynamo:      GatherND(mask, Concat(b[.., None], k[.., None], axis -1));
// both And-ed with always-true terms (Range(S)[:, None] >= 0, ConstantOfShape(true), a true
// initializer) and Expanded over the queries. The prover evaluates the graph symbolically: every
// element of a value is described as a function of that value's own coordinates (an affine
// function of them with dim-valued coefficients, the constant true, or mask[affine, affine]),
// through the ops those two forms use. Anything else, or any step it cannot show exact for every
// size (a broadcast that could repeat a coordinate, an index that could leave its range), is a
// failure with the reason.
#include <string>

#include "bertopt/ir/graph.h"
#include "passes/symbolic_dims.h"

namespace bertopt::passes {

struct KeyMask {
  ir::Value* mask = nullptr;  ///< the 2-D integer or bool graph input; null on failure
  std::string reason;         ///< why cond is not provably mask[:, None, None, :]
};

/// `cond`: a rank-4 boolean value. The mask must be a 2-D integer or bool graph input (0/1 by the
/// convention Attention shares), read through Casts.
KeyMask ProveKeyMask(const ir::Graph& graph, ir::Value* cond, SymbolicDims& dims);

}  // namespace bertopt::passes
