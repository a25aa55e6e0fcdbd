// TensorFlow's Tensordot dense layer -> one MatMul on the un-flattened input
// (exporter-layouts 3.4).
//
//   x [B, S, Hin] ─► Reshape(·, [B·S, Hin]) ─► MatMul(·, W[Hin, Hout]) ─► Reshape(·, [B, S, Hout])
//   ─► y
//   =>
//   x [B, S, Hin] ─► MatMul(·, W) ─► y
//
// MatMul multiplies the last axis and keeps the leading ones, so the two Reshapes around it are
// the identity whenever the first one only merges x's leading dims (its target has 2 entries and
// x's last dim is Hin) and the second one restores them (its entries are provably x's leading dims,
// then Hout; SymbolicDims reads keras2onnx's Cast / Gather / ReduceProd / Concat chains). The
// fused bias Add, BiasGelu, Attention and SkipLayerNormalization then see the same
// Add(MatMul(x, W), b) as in a PyTorch export.
//
// keras2onnx 1.6.1 flattens the attention context for the output dense from the 4-D transposed
// heads [B, S, N, Hd] rather than from the merged [B, S, H] Reshape of it, whose output is read
// only for its Shape. Reshape(t, s) equals Reshape(Reshape(t, u), s), so the first Reshape may read
// any sibling Reshape of its input instead: the one that gives [B, S, Hin] is used as x.
//
// Static tf2onnx exports flatten the attention context [B, S, N, Hd] itself (the merge Reshape and
// the dense's were folded into one): a merge Reshape(·, [0, 0, N·Hd]) is put back in front of the
// MatMul, which is what the attention fusion then takes over.
//
// With an empty sequence (S = 0) the original's second Reshape fails where the MatMul gives an
// empty [B, 0, Hout]; that is the only difference, for inputs no BERT is run on.
//
// Not handled: weights that are not 2-D constants, MatMuls whose output has other readers than
// the one Reshape, a first Reshape that does not merge all leading dims.
#include <optional>
#include <string>
#include <vector>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"
#include "passes/fusions/fusions.h"
#include "passes/symbolic_dims.h"

namespace bertopt::passes {
namespace {

class DenseReshapeFusion : public Fusion {
 public:
  std::string_view name() const override { return "dense_reshape"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph& graph) const override {
    std::vector<ir::Node*> anchors;
    // MatMuls between two Reshapes.
    for (ir::Node* matmul : graph.NodesOfType("MatMul")) {
      const ir::Node* flatten = matmul->input(0) ? matmul->input(0)->producer() : nullptr;
      bool unflattened = false;
      for (const ir::Use& use : matmul->output(0)->uses()) unflattened |= use.node->Is("Reshape");
      if (flatten && flatten->Is("Reshape") && unflattened) anchors.push_back(matmul);
    }
    return anchors;
  }

  FuseResult FuseAt(const PassOptions&, ir::Graph& graph, ir::Node* matmul) const override {
    ir::Node* flatten = matmul->input(0)->producer();
    const ir::Value* product = matmul->output(0);
    const std::optional<std::vector<int64_t>> w = graph.Shape(matmul->input(1));
    if (!graph.ConstantTensor(matmul->input(1)) || !w || w->size() != 2) {
      return FuseResult::Miss(
          fmt::format("the weight '{}' is not a 2-D constant", matmul->input(1)->name()));
    }
    const int64_t hidden_in = (*w)[0];
    const int64_t hidden_out = (*w)[1];
    if (product->is_graph_output() || product->uses().size() != 1 ||
        !product->uses()[0].node->Is("Reshape") || product->uses()[0].index != 0) {
      return FuseResult::Miss(
          fmt::format("'{}' is not read by exactly one Reshape", product->name()));
    }
    ir::Node* unflatten = product->uses()[0].node;
    for (const ir::Node* reshape : {flatten, unflatten}) {
      if (reshape->AttrInt("allowzero").value_or(0) != 0) {
        return FuseResult::Miss(fmt::format("{} has allowzero=1", reshape->DisplayName()));
      }
    }

    SymbolicDims dims(graph);
    const auto flat_target = dims.ElementsOf(flatten->input(1));
    if (!flat_target || flat_target->size() != 2) {
      return FuseResult::Miss(fmt::format("{} does not reshape to 2-D", flatten->DisplayName()));
    }
    const auto out_target = dims.ElementsOf(unflatten->input(1));
    if (!out_target) {
      return FuseResult::Miss(
          fmt::format("the entries of {}'s target are unknown", unflatten->DisplayName()));
    }

    // x: the flattened tensor, or a sibling Reshape of it (1.6.1), with last dim Hin and leading
    // dims that the second Reshape restores.
    std::vector<ir::Value*> sources = {flatten->input(0)};
    for (const ir::Use& use : flatten->input(0)->uses()) {
      if (use.node != flatten && use.node->Is("Reshape") && use.index == 0) {
        sources.push_back(use.node->output(0));
      }
    }
    const std::string y = unflatten->output(0)->name();
    const std::string node_name = matmul->name();
    ir::Value* weight = matmul->input(1);
    std::string reason;
    for (ir::Value* x : sources) {
      reason = Restores(dims.Of(x), *x, *out_target, hidden_in, hidden_out);
      if (!reason.empty()) continue;
      graph.EraseNode(unflatten);
      graph.EraseNode(matmul);
      graph.AddNode("MatMul", {x->name(), weight->name()}, {y}, ir::kOnnxDomain, node_name);
      return FuseResult::Fused();
    }
    // Static tf2onnx exports flatten the attention context [B, S, N, Hd] for the output dense with
    // no merged [B, S, H] Reshape beside it: make one, Reshape(t, [0, 0, N·Hd]).
    ir::Value* heads = flatten->input(0);
    const std::optional<Dims> h = dims.Of(heads);
    if (h && h->size() == 4 && (*h)[2].known() && (*h)[3].known() &&
        (*h)[2].size * (*h)[3].size == hidden_in) {
      const Dims merged = {(*h)[0], (*h)[1], Dim::Known(hidden_in)};
      if (Restores(merged, *heads, *out_target, hidden_in, hidden_out).empty()) {
        ir::Value* target = graph.AddInitializer(ir::MakeInt64Tensor(
            graph.UniqueName(heads->name() + "_merge_shape"), {3}, {0, 0, hidden_in}));
        const std::string x = graph.UniqueName(heads->name() + "_merged");
        graph.AddNode("Reshape", {heads->name(), target->name()}, {x}, ir::kOnnxDomain,
                      graph.UniqueName(node_name + "_merge_heads"));
        graph.EraseNode(unflatten);
        graph.EraseNode(matmul);
        graph.AddNode("MatMul", {x, weight->name()}, {y}, ir::kOnnxDomain, node_name);
        return FuseResult::Fused();
      }
    }
    return FuseResult::Miss(reason);
  }

 private:
  // "" when MatMul(x, W[hin, hout]) with x of `x_dims` has the dims that `target` gives the
  // product, else why not.
  static std::string Restores(const std::optional<Dims>& x_dims, const ir::Value& xv,
                              const SymbolicDims::Elements& target, int64_t hidden_in,
                              int64_t hidden_out) {
    const ir::Value* x = &xv;
    if (!x_dims || x_dims->size() < 2) {
      return fmt::format("the rank of '{}' is unknown or below 2", x->name());
    }
    if (x_dims->back() != Dim::Known(hidden_in)) {
      return fmt::format("'{}' is {}, whose last dim is not the weight's {} rows", x->name(),
                         ToString(*x_dims), hidden_in);
    }
    if (target.size() != x_dims->size()) {
      return fmt::format("the product is reshaped to {} dims, '{}' has {}", target.size(),
                         x->name(), x_dims->size());
    }
    const std::optional<Dim>& last = target.back();
    if (!last || *last != Dim::Known(hidden_out)) {
      return fmt::format("the product is not reshaped to {} columns", hidden_out);
    }
    for (size_t d = 0; d + 1 < target.size(); ++d) {
      const std::optional<Dim>& e = target[d];
      if (!e || SymbolicDims::IsInfer(e) || *e != (*x_dims)[d] || e->size == 0) {
        return fmt::format("entry {} of the product's target is not provably dim {} of '{}' ({})",
                           d, d, x->name(), ToString(*x_dims));
      }
    }
    return {};
  }
};

}  // namespace

std::unique_ptr<Pass> MakeDenseReshapeFusion() { return std::make_unique<DenseReshapeFusion>(); }

}  // namespace bertopt::passes
