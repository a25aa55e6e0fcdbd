// The one place that says which passes run, in which order, for each model type.
#include "passes/registry.h"

#include "fmt/format.h"
#include "passes/cleanup.h"
#include "passes/fusions/fusions.h"

namespace bertopt::passes {

// One pipeline serves every model type: the layouts of PyTorch, tf2onnx and keras2onnx differ in
// spelling (operand order, constant forms, Reshape chains, mask paths), and each pass proves its
// own match exactly, so a variant that one exporter never emits costs nothing on the others. The
// type is checked here and reported; what differs per exporter lives in the patterns.
StatusOr<Pipeline> MakePipeline(const OptimizeOptions& options) {
  const std::string& type = options.pass.model_type;
  if (type != "bert" && type != "bert_tf" && type != "bert_keras" && type != "auto") {
    return InvalidArgument(
        fmt::format("--model_type {}: unknown (choose auto, bert, bert_tf or bert_keras)", type));
  }
  Pipeline p;
  auto add = [&p](bool enabled, std::unique_ptr<Pass> pass) {
    if (enabled) p.push_back(std::move(pass));
  };
  // Normalise: one form for constants, no Identity, nothing dead, constant reshape targets.
  add(true, MakeRemoveIdentityPass());
  add(true, MakeConstantToInitializerPass());
  add(true, MakeFoldConstantsPass());
  add(true, MakeTransposedWeightsPass());
  add(true, MakeGlobalPoolToReduceMeanPass());
  add(true, MakeDeadCodePass());
  add(true, MakeDenseReshapeFusion());
  add(true, MakeReshapeFusion());
  add(true, MakeDeadCodePass());
  // Leaf math first, so the bigger patterns see fused LayerNorm / Gelu nodes.
  add(!options.disable_layer_norm, MakeLayerNormFusion());
  add(!options.disable_gelu, MakeGeluFusion());
  add(!options.disable_gelu, MakeFastGeluFusion());
  // Attention creates the shared int32 mask index that EmbedLayerNormalization then takes over;
  // EmbedLayerNormalization must claim the embedding Add + LayerNorm before SkipLayerNorm sees it.
  add(!options.disable_attention, MakeAttentionFusion());
  add(!options.disable_embed_layer_norm, MakeEmbedLayerNormFusion());
  add(!options.disable_skip_layer_norm, MakeSkipLayerNormFusion());
  // What skip_layer_norm left (or was told to leave) stays Add + LayerNormalization in ORT too.
  add(options.residual_sum, MakeResidualSumPass());
  add(!options.disable_bias_gelu, MakeBiasGeluFusion());
  // Last: it re-creates the final per-token nodes, whatever form the fusions gave them.
  add(!options.disable_first_token, MakeFirstTokenPass());
  add(true, MakeDeadCodePass());
  add(true, MakeTopologicalSortPass());
  return p;
}

}  // namespace bertopt::passes
