#pragma once
// Factories of every fusion; each lives in its own file in this folder, which opens with a
// before/after diagram of the subgraph it rewrites. The pipeline order is in ../registry.cc.

#include <memory>

#include "bertopt/passes/pass.h"

namespace bertopt::passes {

/// Shape/Gather/Unsqueeze/Concat chains feeding Reshape -> constant shapes with 0 / -1.
std::unique_ptr<Pass> MakeReshapeFusion();
/// TensorFlow's Reshape -> MatMul -> Reshape dense layers -> one MatMul on the 3-D input.
std::unique_ptr<Pass> MakeDenseReshapeFusion();
/// Decomposed LayerNorm (PyTorch and TF forms) -> LayerNormalization.
std::unique_ptr<Pass> MakeLayerNormFusion();
/// erf GELU -> com.microsoft Gelu.
std::unique_ptr<Pass> MakeGeluFusion();
/// tanh GELU -> com.microsoft FastGelu.
std::unique_ptr<Pass> MakeFastGeluFusion();
/// Self-attention block -> com.microsoft Attention (with a shared int32 mask input).
std::unique_ptr<Pass> MakeAttentionFusion();
/// Embedding Gathers + Add + LayerNorm -> com.microsoft EmbedLayerNormalization.
std::unique_ptr<Pass> MakeEmbedLayerNormFusion();
/// Residual Add + LayerNorm (+ dense bias) -> com.microsoft SkipLayerNormalization.
std::unique_ptr<Pass> MakeSkipLayerNormFusion();
/// Residual Add feeding LayerNormalization -> Sum, which ORT does not refuse into
/// SkipLayerNormalization (for targets where that is the slow form).
std::unique_ptr<Pass> MakeResidualSumPass();
/// MatMul + Add(bias) + Gelu -> com.microsoft BiasGelu.
std::unique_ptr<Pass> MakeBiasGeluFusion();
/// Per-token layers read only at the first token (the pooler's Gather) -> computed for it alone.
std::unique_ptr<Pass> MakeFirstTokenPass();

}  // namespace bertopt::passes
