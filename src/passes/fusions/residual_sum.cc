// Residual Add feeding a LayerNormalization -> Sum, for ORT versions whose SkipLayerNormalization
// is the slow form (src/passes/targets.cc, residual_sum).
//
//   dense ────┐
//   residual ─┴─► Add ─► sum ─► LayerNormalization(·, gamma, beta) ─► y
//   =>
//   dense ────┐
//   residual ─┴─► Sum ─► sum ─► LayerNormalization(·, gamma, beta) ─► y
//
// Why not leave the Add: at ORT level extended and above, ORT's own SkipLayerNormFusion turns an
// Add of two rank-3 tensors of equal shape that feeds a LayerNormalization into
// SkipLayerNormalization, whether bertopt fused it or not. So `--disable_skip_layer_norm` alone
// changes nothing in the graph ORT executes. ORT's fusion only looks for Add; a two-input Sum
// computes the same element for element (same broadcasting from opset 8, one addition, so the
// result is bit-identical) and ORT leaves it alone, keeping its LayerNormalization kernel, which on
// ORT 1.32 is several times faster than its SkipLayerNormalization (bench/ort132_findings.md).
//
// Only the residual Add is rewritten: the dense bias Add before it stays, so the bias-Add patterns
// of quantize and of ORT's own fusions still see it. Same rules as skip_layer_norm for what a
// residual is: both operands non-constant (an Add of a constant is a bias or a table), the
// LayerNormalization's first input. The sum may have other readers (it keeps its name).
#include "fmt/format.h"
#include "passes/fusions/fusions.h"

namespace bertopt::passes {
namespace {

class ResidualSum : public Fusion {
 public:
  std::string_view name() const override { return "residual_sum"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph& graph) const override {
    return graph.NodesOfType("LayerNormalization");
  }

  FuseResult FuseAt(const PassOptions&, ir::Graph& graph, ir::Node* ln) const override {
    ir::Value* sum = ln->input(0);
    ir::Node* add = sum ? sum->producer() : nullptr;
    if (!add || !add->Is("Add") || add->num_inputs() != 2) {
      return FuseResult::Miss("the LayerNormalization's input is not an Add");
    }
    // Sum broadcasts like Add only from opset 8.
    if (const int64_t opset = graph.OpsetVersion(); opset < 8) {
      return FuseResult::Miss(
          fmt::format("opset {}: Sum does not broadcast before opset 8", opset));
    }
    for (int i : {0, 1}) {
      if (graph.ConstantTensor(add->input(i))) {
        return FuseResult::Miss(fmt::format(
            "'{}' is a constant: an Add of a constant is a bias or a table, not a residual",
            add->input(i)->name()));
      }
    }
    const std::vector<std::string> inputs = {add->input(0)->name(), add->input(1)->name()};
    const std::string output = sum->name();
    const std::string node_name = FusedNodeName(*add, "Sum");
    graph.EraseNode(add);
    graph.AddNode("Sum", inputs, {output}, ir::kOnnxDomain, node_name);
    return FuseResult::Fused();
  }
};

}  // namespace

std::unique_ptr<Pass> MakeResidualSumPass() { return std::make_unique<ResidualSum>(); }

}  // namespace bertopt::passes
