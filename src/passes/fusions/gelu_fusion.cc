// erf GELU -> com.microsoft Gelu.
//
//   x ─┬─► Div(·, √2) ─► Erf ─► Add(·, 1) ─┐              x ─► Gelu ─► y
//      │   (or Mul(·, 1/√2))               │      =>
//      └─► Mul(·, 0.5) ───────────────────► Mul ─► y
//
// The 0.5 may also be applied last, Mul(Mul(x, s), 0.5), or to s first, Mul(x, Mul(s, 0.5)), and
// every Mul/Add may have its operands either way round (gelu_common.h). √2 may be a constant
// (1.4142135, fp16 1.4140625, ±1e-3) or keras' Sqrt(2.0); 1/√2 ±1e-3; 0.5 and 1.0 exact.
// Anchor: Erf.
//
// The ONNX Gelu op (opset 20) becomes com.microsoft Gelu, or FastGelu for approximate="tanh".
//
// Not handled: Casts inside the subgraph (mixed-precision exports), and erf GELU with the bias
// folded in: that is bias_gelu's job once this pass has made the Gelu.
#include <cmath>

#include "fmt/format.h"
#include "passes/fusions/fusions.h"
#include "passes/fusions/gelu_common.h"

namespace bertopt::passes {
namespace {

using pattern::Any;
using pattern::OneOf;
using pattern::Op;
using pattern::P;
using pattern::Scalar;

constexpr double kSqrt2 = 1.4142135623730951;
constexpr double kConstantTolerance = 1e-3;

class GeluFusion : public Fusion {
 public:
  std::string_view name() const override { return "gelu"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph& graph) const override {
    std::vector<ir::Node*> anchors = graph.NodesOfType("Erf");
    for (ir::Node* gelu : graph.NodesOfType("Gelu")) anchors.push_back(gelu);
    return anchors;
  }

  FuseResult FuseAt(const PassOptions&, ir::Graph& graph, ir::Node* erf) const override {
    if (erf->Is("Gelu")) return FromOnnxGelu(graph, erf);
    const P x = Any("x");
    // keras' Sqrt(2.0) first, so that a wrong or non-constant √2 reports the constant's reason.
    const P root2 = OneOf({Op("Sqrt", {Scalar(2.0, gelu::kUnitTolerance)}).Shared(),
                           gelu::ScalarNear(kSqrt2, kConstantTolerance)});
    const P x_over_root2 =
        OneOf({Op("Div", {x, root2}),
               Op("Mul", {x, gelu::ScalarNear(1 / kSqrt2, kConstantTolerance)}).Commutative()});
    const P one_plus_erf =
        Op("Add", {Op("Erf", {x_over_root2}), Scalar(1.0, gelu::kUnitTolerance)}).Commutative();

    ir::Node* add_one = gelu::ConsumerOfType(erf->output(0), "Add");
    if (!add_one) {
      return FuseResult::Miss(fmt::format("'{}' is not added to 1", erf->output(0)->name()));
    }
    pattern::MatchResult r = gelu::MatchHalfXTimes(graph, *add_one->output(0), x, one_plus_erf);
    if (!r.ok()) return FuseResult::Miss(r.reason());
    const pattern::Match& m = r.match();
    if (std::string why = gelu::FloatTypeReason(graph, *m["x"]); !why.empty()) {
      return FuseResult::Miss(why + " (com.microsoft Gelu has no kernel for it)");
    }

    const std::string x_name = m["x"]->name();
    const std::string y_name = m.root()->output(0)->name();
    const std::string node_name = FusedNodeName(*erf, "Gelu");
    for (ir::Node* node : m.owned_nodes()) graph.EraseNode(node);
    graph.AddNode("Gelu", {x_name}, {y_name}, ir::kMsDomain, node_name);
    return FuseResult::Fused();
  }

 private:
  // ONNX Gelu (opset 20; what torch 2.x's dynamo exporter writes there): approximate="none" is
  // com.microsoft Gelu, "tanh" is FastGelu (the same formula), which bias_gelu / fast_gelu then
  // fold the dense bias into.
  static FuseResult FromOnnxGelu(ir::Graph& graph, ir::Node* gelu) {
    // The Erf form's matcher proves its wiring; an ONNX Gelu is taken as written, so check it.
    if (!gelu->input(0) || !gelu->output(0)) {
      return FuseResult::Miss("the Gelu node has no input or no output");
    }
    const std::string approximate = gelu->AttrString("approximate").value_or("none");
    if (approximate != "none" && approximate != "tanh") {
      return FuseResult::Miss(fmt::format("approximate='{}' is unknown", approximate));
    }
    if (std::string why = gelu::FloatTypeReason(graph, *gelu->input(0)); !why.empty()) {
      return FuseResult::Miss(why + " (com.microsoft Gelu has no kernel for it)");
    }
    const std::string x = gelu->input(0)->name();
    const std::string y = gelu->output(0)->name();
    const std::string name = gelu->name();
    graph.EraseNode(gelu);
    graph.AddNode(approximate == "none" ? "Gelu" : "FastGelu", {x}, {y}, ir::kMsDomain, name);
    return FuseResult::Fused();
  }
};

}  // namespace

std::unique_ptr<Pass> MakeGeluFusion() { return std::make_unique<GeluFusion>(); }

}  // namespace bertopt::passes
