// tanh GELU -> com.microsoft FastGelu.
//
//   x ─┬─► Pow(·, 3) ─► Mul(·, 0.044715) ─► Add(x, ·) ─► Mul(·, √(2/π)) ─► Tanh ─► Add(·, 1) ─┐
//      └─► Mul(·, 0.5) ──────────────────────────────────────────────────────────────────► Mul ─► y
//   =>
//   x ─► FastGelu ─► y
//
// and when x = Add(MatMul(a, W), bias[F]) is read by nothing else, the bias goes in too:
//
//   a ─► MatMul(W) ─► Add(bias) ─► x ─► (GELU)   =>   a ─► MatMul(W) ─► FastGelu(·, bias) ─► y
//
// Also matched: x³ as Mul(x, Mul(x, x)); the factored form
// Mul(Mul(x, √(2/π)), Add(Mul(x, Mul(x, 0.044715)), 1)) (x² may be Mul(x, x)); the three ways of
// applying 0.5·x (gelu_common.h); every Mul/Add either way round. √(2/π) and 0.044715 ±1e-4.
// Anchor: a Tanh whose input is computed by a Mul (as in every form above); other Tanh nodes, such
// as BERT's pooler Gemm → Tanh or LSTM gates, are not candidates at all.
//
// Not handled: Casts inside the subgraph (mixed-precision exports).
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

constexpr double kSqrt2OverPi = 0.7978845608028654;
constexpr double kCubicCoefficient = 0.044715;
constexpr double kConstantTolerance = 1e-4;

class FastGeluFusion : public Fusion {
 public:
  std::string_view name() const override { return "fast_gelu"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph& graph) const override {
    std::vector<ir::Node*> anchors;
    for (ir::Node* tanh : graph.NodesOfType("Tanh")) {
      const ir::Value* in = tanh->input(0);
      if (in && in->producer() && in->producer()->Is("Mul")) anchors.push_back(tanh);
    }
    return anchors;
  }

  FuseResult FuseAt(const PassOptions&, ir::Graph& graph, ir::Node* tanh) const override {
    const P x = Any("x");
    const P cubic = gelu::ScalarNear(kCubicCoefficient, kConstantTolerance);
    const P root_2_over_pi = gelu::ScalarNear(kSqrt2OverPi, kConstantTolerance);
    const P one = Scalar(1.0, gelu::kUnitTolerance);
    // √(2/π)·(x + 0.044715·x³)
    const P x_cubed = OneOf({Op("Pow", {x, Scalar(3.0, gelu::kUnitTolerance)}),
                             Op("Mul", {x, Op("Mul", {x, x})}).Commutative()});
    const P polynomial =
        Op("Mul", {Op("Add", {x, Op("Mul", {x_cubed, cubic}).Commutative()}).Commutative(),
                   root_2_over_pi})
            .Commutative();
    // √(2/π)·x · (1 + 0.044715·x²)
    const P cubic_x_squared =
        OneOf({Op("Mul", {x, Op("Mul", {x, cubic}).Commutative()}).Commutative(),
               Op("Mul", {Op("Mul", {x, x}), cubic}).Commutative()});
    const P factored = Op("Mul", {Op("Mul", {x, root_2_over_pi}).Commutative(),
                                  Op("Add", {cubic_x_squared, one}).Commutative()})
                           .Commutative();
    const P one_plus_tanh =
        Op("Add", {Op("Tanh", {OneOf({polynomial, factored})}), one}).Commutative();

    // The Tanh's argument first, on its own: a miss there is the common case (a Tanh that is not
    // GELU), and the matcher's deepest failure across two alternative forms reads poorly without
    // saying which form was expected. The form with a constant operand is the polynomial one.
    ir::Node* argument = tanh->input(0)->producer();
    const bool looks_polynomial = graph.ConstantTensor(argument->input(0)) != nullptr ||
                                  graph.ConstantTensor(argument->input(1)) != nullptr;
    pattern::MatchResult inner =
        pattern::MatchPattern(graph, argument, looks_polynomial ? polynomial : factored);
    if (!inner.ok() &&
        !pattern::MatchPattern(graph, argument, looks_polynomial ? factored : polynomial).ok()) {
      return FuseResult::Miss(fmt::format(
          "the Tanh input '{}' is not sqrt(2/pi)*(x + 0.044715*x^3) (plain or factored): {}",
          tanh->input(0)->name(), inner.reason()));
    }

    ir::Node* add_one = gelu::ConsumerOfType(tanh->output(0), "Add");
    if (!add_one) {
      return FuseResult::Miss(fmt::format("'{}' is not added to 1", tanh->output(0)->name()));
    }
    pattern::MatchResult r = gelu::MatchHalfXTimes(graph, *add_one->output(0), x, one_plus_tanh);
    if (!r.ok()) return FuseResult::Miss(r.reason());
    const pattern::Match& m = r.match();
    ir::Value* x_value = m["x"];
    if (std::string why = gelu::FloatTypeReason(graph, *x_value); !why.empty()) {
      return FuseResult::Miss(why + " (com.microsoft FastGelu has no kernel for it)");
    }

    ir::Value* y = m.root()->output(0);
    std::vector<std::string> inputs = {x_value->name()};
    std::vector<ir::Node*> replaced = m.owned_nodes();
    // Absorbing the bias is an extra, not a condition: without it FastGelu(x) is just as exact.
    if (ir::Node* add = x_value->producer(); add && add->Is("Add")) {
      const gelu::BiasAdd bias = gelu::SplitBiasAdd(graph, *add);
      std::vector<ir::Node*> with_add = replaced;
      with_add.push_back(add);
      if (bias.reason.empty() && pattern::CheckContained(with_add, {y}).empty()) {
        inputs = {bias.input->name(), bias.bias->name()};
        replaced = std::move(with_add);
      }
    }

    const std::string y_name = y->name();
    const std::string node_name = FusedNodeName(*tanh, "FastGelu");
    for (ir::Node* node : replaced) graph.EraseNode(node);
    graph.AddNode("FastGelu", inputs, {y_name}, ir::kMsDomain, node_name);
    return FuseResult::Fused();
  }
};

}  // namespace

std::unique_ptr<Pass> MakeFastGeluFusion() { return std::make_unique<FastGeluFusion>(); }

}  // namespace bertopt::passes
