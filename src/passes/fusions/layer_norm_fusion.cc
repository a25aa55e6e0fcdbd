// Decomposed LayerNorm -> LayerNormalization(x, gamma, beta), axis -1, epsilon from the graph.
//
// PyTorch, opset <= 16 (exporter-layouts 2.5):
//
//   x ─┬─► ReduceMean ─► mean
//      └─► Sub(x, mean) ─► d ─┬─► Pow(d, 2) ─► ReduceMean ─► Add(eps) ─► Sqrt ─┐
//                             └───────────────────────────────────────────► Div(d, ·) ─┐
//   y ◄─ Add(·, beta) ◄─ Mul(·, gamma) ◄───────────────────────────────────────────────┘
//   =>  x ─► LayerNormalization(·, gamma, beta) ─► y
//
//   Older exports compute d twice (one Sub for Pow, one for Div); ORT's test files put a
//   Cast(to=float) between Sub and Pow/Div, which is accepted when it does not change the type.
//
// TF "moments/batchnorm" (exporter-layouts 3.3; keras2onnx, tf2onnx):
//
//   d = Sub(x, mean) or Sub(mean, x);  v = ReduceMean(Mul(d, d))
//   k = Mul(Reciprocal(Sqrt(Add(v, eps))), gamma)
//   y = Add(Mul(k, x), Sub(beta, Mul(k, mean)))
//
// Constants may sit on either side of each Add and Mul. x is whatever ReduceMean reads; every
// other use of x in the pattern must be that same value. Anchor: Sqrt (one per LayerNorm in both
// forms); the pattern is matched from the final Add.
//
// Not handled: LayerNorm without gamma or beta (elementwise_affine=False), gamma/beta that are not
// 1-D constants, Casts that change the element type (mixed-precision exports), reductions over
// more than the last axis, and epsilon <= 0 or > 1e-4 (except a float16 epsilon of 0: an fp16
// export whose 1e-12 underflowed keeps its 0).
// Opset-17 exports already have LayerNormalization nodes.
#include "bertopt/pattern/pattern.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "passes/fusions/fusions.h"
#include "passes/symbolic_dims.h"

namespace bertopt::passes {
namespace {

using pattern::Any;
using pattern::Const;
using pattern::Match;
using pattern::OneOf;
using pattern::Op;
using pattern::Optional;
using pattern::P;
using pattern::Scalar;

// The bound ORT's reference optimizer uses: a larger epsilon is not a LayerNorm's.
constexpr double kMaxEpsilon = 1e-4;

// The first consumer of `value` of type `op_type`, or nullptr. Only used to walk from the anchor
// to the node that ends the pattern; the matcher then checks nothing else reads what it replaces.
ir::Node* ConsumerOfType(const ir::Value* value, std::string_view op_type) {
  if (!value) return nullptr;
  for (const ir::Use& use : value->uses()) {
    if (use.node->Is(op_type)) return use.node;
  }
  return nullptr;
}

// `inner` or Cast(inner) where the Cast keeps the element type.
P NoOpCast(const P& inner) {
  return Optional(
      Op("Cast", {inner})
          .Where([](const ir::Graph& g, const ir::Node& cast, const Match&) -> std::string {
            const int32_t from = g.ElementType(cast.input(0));
            const int64_t to = cast.AttrInt("to").value_or(0);
            if (from == 0) return "the element type before the Cast is unknown";
            if (from != to) {
              return fmt::format("the Cast changes the element type ({} to {})", from, to);
            }
            return "";
          }),
      inner);
}

// PyTorch form; "diff" and "diff_for_variance" are the same Sub node or two Subs of (x, mean).
P TorchLayerNorm() {
  const P x = Any("x");
  const P mean = Op("ReduceMean", {x}, "mean");
  const P diff = NoOpCast(Op("Sub", {x, mean}, "diff"));
  const P diff_for_variance = NoOpCast(Op("Sub", {x, mean}, "diff_for_variance"));
  const P variance = Op("ReduceMean", {Op("Pow", {diff_for_variance, Scalar(2.0)})}, "variance");
  const P stddev = Op("Sqrt", {Op("Add", {variance, Const("epsilon")}).Commutative()});
  const P scaled = Op("Mul", {Op("Div", {diff, stddev}), Const("gamma")}).Commutative();
  return Op("Add", {scaled, Const("beta")}).Commutative();
}

// TF form; "scale" = gamma / stddev is read twice, "diff" squared by one Mul. The shift
// beta - mean·scale is Sub(beta, Mul(mean, scale)) (keras2onnx, tf2onnx with tf_keras) or
// Add(Mul(Neg(mean), scale), beta) (tf2onnx with Keras 3).
P TfLayerNorm() {
  const P x = Any("x");
  const P mean = Op("ReduceMean", {x}, "mean");
  const P diff = OneOf({Op("Sub", {x, mean}, "diff"), Op("Sub", {mean, x}, "diff")});
  const P variance = Op("ReduceMean", {Op("Mul", {diff, diff})}, "variance");
  const P stddev = Op("Sqrt", {Op("Add", {variance, Const("epsilon")}).Commutative()});
  const P scale = Op("Mul", {Op("Reciprocal", {stddev}), Const("gamma")}, "scale").Commutative();
  const P shift = OneOf({
      Op("Sub", {Const("beta"), Op("Mul", {mean, scale}).Commutative()}),
      Op("Add", {Op("Mul", {Op("Neg", {mean}), scale}).Commutative(), Const("beta")}).Commutative(),
  });
  return Op("Add", {Op("Mul", {x, scale}).Commutative(), shift}).Commutative();
}

// gamma / beta as a 1-D [H] constant: itself, or a new one with the leading 1s of a [1, 1, H]
// (tf2onnx with Keras 3) dropped, which broadcasts the same over an x of at least its rank;
// nullptr when the shape is another.
ir::Value* AsVector(ir::Graph& graph, ir::Value* v, int64_t x_rank) {
  const onnx::TensorProto* t = graph.ConstantTensor(v);
  if (!t || t->dims_size() == 0 || x_rank < 0 || t->dims_size() > x_rank) return nullptr;
  for (int i = 0; i + 1 < t->dims_size(); ++i) {
    if (t->dims(i) != 1) return nullptr;
  }
  if (t->dims_size() == 1) return v;
  const std::string name = v->name() + "_vector";
  if (ir::Value* existing = graph.FindValue(name); existing && existing->initializer()) {
    return existing;
  }
  onnx::TensorProto vector = *t;
  vector.set_name(name);
  vector.clear_dims();
  vector.add_dims(t->dims(t->dims_size() - 1));
  return graph.AddInitializer(std::move(vector));
}

// The reduced axes of a ReduceMean: the attribute, or input 1 from opset 18.
std::optional<std::vector<int64_t>> ReducedAxes(const ir::Graph& graph, const ir::Node& reduce) {
  if (auto axes = reduce.AttrInts("axes")) return axes;
  if (reduce.input(1)) return graph.ConstantAsInts(reduce.input(1));
  return std::nullopt;
}

// "" when `reduce` averages over the last axis only and keeps it, else why not.
std::string LastAxisOnlyReason(const ir::Graph& graph, const ir::Node& reduce, int64_t rank) {
  if (reduce.AttrInt("keepdims").value_or(1) != 1) {
    return fmt::format("{} does not keep the reduced dim (keepdims=0)", reduce.DisplayName());
  }
  auto axes = ReducedAxes(graph, reduce);
  if (!axes) return fmt::format("{} reduces over all axes", reduce.DisplayName());
  if (axes->size() == 1 && (*axes)[0] == -1) return "";
  if (axes->size() == 1 && rank >= 0 && (*axes)[0] == rank - 1) return "";
  if (axes->size() == 1 && (*axes)[0] >= 0 && rank < 0) {
    return fmt::format("{} reduces axis {}, and the rank of its input is unknown",
                       reduce.DisplayName(), (*axes)[0]);
  }
  return fmt::format("{} reduces axes [{}], not the last axis only", reduce.DisplayName(),
                     fmt::join(*axes, ", "));
}

class LayerNormFusion : public Fusion {
 public:
  std::string_view name() const override { return "layer_norm"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph& graph) const override {
    return graph.NodesOfType("Sqrt");
  }

  FuseResult FuseAt(const PassOptions&, ir::Graph& graph, ir::Node* sqrt) const override {
    std::vector<ir::Node*> roots;
    P pattern;
    if (ir::Node* div = ConsumerOfType(sqrt->output(0), "Div")) {
      if (ir::Node* root = TorchRoot(div)) roots.push_back(root);
      pattern = TorchLayerNorm();
    } else if (ir::Node* reciprocal = ConsumerOfType(sqrt->output(0), "Reciprocal")) {
      roots = TfRoots(reciprocal);
      pattern = TfLayerNorm();
    } else {
      return FuseResult::Miss(fmt::format(
          "'{}' is not divided by (PyTorch form) or inverted (TF form)", sqrt->output(0)->name()));
    }
    if (roots.empty()) {
      return FuseResult::Miss(fmt::format(
          "'{}' does not reach a Mul(gamma) followed by an Add(beta)", sqrt->output(0)->name()));
    }
    pattern::MatchResult r = pattern::MatchResult::Failure("no root");
    for (ir::Node* root : roots) {
      pattern::MatchResult attempt = pattern::MatchPattern(graph, root, pattern);
      if (attempt.ok() || root == roots.front()) r = std::move(attempt);
      if (r.ok()) break;
    }
    if (!r.ok()) return FuseResult::Miss(r.reason());
    const Match& m = r.match();

    SymbolicDims dims(graph);
    const std::optional<Dims> x_dims = dims.Of(m["x"]);
    const int64_t rank = x_dims ? static_cast<int64_t>(x_dims->size()) : -1;
    for (const char* reduce : {"mean", "variance"}) {
      if (std::string why = LastAxisOnlyReason(graph, *m.node(reduce), rank); !why.empty()) {
        return FuseResult::Miss(why);
      }
    }

    const std::optional<double> epsilon = graph.ScalarValue(m["epsilon"]);
    if (!epsilon) {
      return FuseResult::Miss(fmt::format("epsilon '{}' is not a scalar", m["epsilon"]->name()));
    }
    // A float16 export computes with epsilon 0: BERT's 1e-12 underflowed when the model was
    // halved. Fusing keeps the 0 the model computes with (exactly its math), rather than
    // inventing a positive epsilon; only a float16 epsilon constant may be 0.
    const bool underflowed_fp16_epsilon =
        *epsilon == 0 && graph.ElementType(m["epsilon"]) == onnx::TensorProto::FLOAT16;
    if (!underflowed_fp16_epsilon && !(*epsilon > 0 && *epsilon <= kMaxEpsilon)) {
      return FuseResult::Miss(fmt::format("epsilon {:g} of '{}' is not in (0, {:g}]", *epsilon,
                                          m["epsilon"]->name(), kMaxEpsilon));
    }

    // LayerNormalization takes gamma and beta of exactly the normalised length; the decomposed
    // form would also broadcast other shapes, so those stay unfused. [1, ..., 1, H] is [H].
    ir::Value* gamma_vector = AsVector(graph, m["gamma"], rank);
    ir::Value* beta_vector = AsVector(graph, m["beta"], rank);
    if (!gamma_vector) {
      return FuseResult::Miss(fmt::format("gamma '{}' is not 1-D", m["gamma"]->name()));
    }
    if (!beta_vector) {
      return FuseResult::Miss(fmt::format("beta '{}' is not 1-D", m["beta"]->name()));
    }
    const std::optional<std::vector<int64_t>> gamma = graph.Shape(gamma_vector);
    const std::optional<std::vector<int64_t>> beta = graph.Shape(beta_vector);
    if (!gamma || gamma->size() != 1) {
      return FuseResult::Miss(fmt::format("gamma '{}' is not 1-D", m["gamma"]->name()));
    }
    if (!beta || *beta != *gamma) {
      return FuseResult::Miss(
          fmt::format("beta '{}' is not 1-D of gamma's length {}", m["beta"]->name(), (*gamma)[0]));
    }
    const int64_t hidden = x_dims && !x_dims->empty() ? x_dims->back().size : -1;
    if (hidden < 0) {
      return FuseResult::Miss(
          fmt::format("the last dim of '{}' is unknown, so gamma's length {} "
                      "cannot be checked against it",
                      m["x"]->name(), (*gamma)[0]));
    }
    if (hidden != (*gamma)[0]) {
      return FuseResult::Miss(fmt::format("gamma '{}' has length {}, but '{}' has last dim {}",
                                          m["gamma"]->name(), (*gamma)[0], m["x"]->name(), hidden));
    }

    const std::vector<std::string> inputs = {m["x"]->name(), gamma_vector->name(),
                                             beta_vector->name()};
    const std::string y = m.root()->output(0)->name();
    const std::string node_name = FusedNodeName(*sqrt, "LayerNormalization");
    for (ir::Node* node : m.owned_nodes()) graph.EraseNode(node);
    ir::Node* ln = graph.AddNode("LayerNormalization", inputs, {y}, ir::kOnnxDomain, node_name);
    ln->SetAttr("axis", int64_t{-1});
    ln->SetAttr("epsilon", static_cast<float>(*epsilon));
    return FuseResult::Fused();
  }

 private:
  // PyTorch form: Div ─► Mul(gamma) ─► Add(beta), the root.
  static ir::Node* TorchRoot(const ir::Node* div) {
    const ir::Node* mul = ConsumerOfType(div->output(0), "Mul");
    return mul ? ConsumerOfType(mul->output(0), "Add") : nullptr;
  }

  // TF form: Reciprocal ─► Mul(gamma) = scale, read by Mul(scale, x) ─► Add (the root) and by
  // Mul(scale, mean) ─► Sub ─► the same Add, or by Mul(scale, -mean) ─► Add(beta) ─► the same
  // Add. Candidates: each Mul's Add, and that Add's Add; the pattern decides.
  static std::vector<ir::Node*> TfRoots(const ir::Node* reciprocal) {
    std::vector<ir::Node*> roots;
    const ir::Node* scale = ConsumerOfType(reciprocal->output(0), "Mul");
    if (!scale) return roots;
    for (const ir::Use& use : scale->output(0)->uses()) {
      if (!use.node->Is("Mul")) continue;
      if (ir::Node* add = ConsumerOfType(use.node->output(0), "Add")) {
        roots.push_back(add);
        if (ir::Node* outer = ConsumerOfType(add->output(0), "Add")) roots.push_back(outer);
      }
    }
    return roots;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeLayerNormFusion() { return std::make_unique<LayerNormFusion>(); }

}  // namespace bertopt::passes
