// Residual Add + LayerNormalization -> com.microsoft SkipLayerNormalization (exporter-layouts 1.3).
//
//   MatMul ─► Add(·, bias) ─► dense ─┐
//                        residual ───┴─► Add ─► sum ─► LayerNormalization(·, gamma, beta) ─► y
//   =>  SkipLayerNormalization(input = MatMul output, skip = residual, gamma, beta, bias) ─► y
//
// Either Add input order. The dense bias (a 1-D constant of length H, either side of its Add) is
// folded into input 4 when its Add feeds nothing but the residual Add; otherwise the operand
// itself is `input`. When the sum is also read elsewhere (or is a graph output), it becomes
// output 3, input_skip_bias_sum, with outputs 1 and 2 left empty.
//
// SkipLayerNormalization takes its output shape from `input` and broadcasts only `skip`, and only
// from (1,S,H) or (S,H). So both operands must provably have the same rank-3 shape, or `skip` one
// of those two and `input` the full shape (SymbolicDims; unknown shapes miss, never guess).
//
// Anchor: LayerNormalization, native in opset-17 exports and made by layer_norm before. The pass
// runs after embed_layer_norm; an embedding sum that one left alone becomes a
// SkipLayerNormalization here when its shapes are provable, which computes the same.
//
// Not handled: an Add with a constant operand (a bias or keras' position table, not a residual);
// a Cast between the sum and the LayerNormalization (fp16 exports); normalisation over other than
// the last axis; a LayerNormalization whose mean / inv_std_dev outputs are used; operands of rank
// other than 3 (skip may be 2-D), except two equal 2-D (tokens, H) operands (tf2onnx 1.6's 2-D
// encoder), which ORT's kernel takes as they are.
#include <algorithm>

#include "bertopt/pattern/pattern.h"
#include "fmt/format.h"
#include "passes/fusions/fusions.h"
#include "passes/symbolic_dims.h"

namespace bertopt::passes {
namespace {

using pattern::Any;
using pattern::Const;
using pattern::Op;
using pattern::P;

constexpr float kOnnxDefaultEpsilon = 1e-5f;

// The residual operands in the slots SkipLayerNormalization gives them.
struct Slots {
  ir::Value* input = nullptr;
  ir::Value* skip = nullptr;
  bool either_way = false;  // equal shapes: the operands may trade places
  std::string reason;       // non-empty when the shapes do not fit SkipLayerNormalization
};

Slots Fit(ir::Value* input, ir::Value* skip, bool either_way) {
  return Slots{input, skip, either_way, {}};
}
Slots Misfit(std::string reason) { return Slots{nullptr, nullptr, false, std::move(reason)}; }

Slots AssignSlots(SymbolicDims& dims, ir::Value* a, ir::Value* b) {
  const std::optional<Dims> da = dims.Of(a);
  const std::optional<Dims> db = dims.Of(b);
  for (auto [v, d] : {std::pair{a, &da}, std::pair{b, &db}}) {
    if (!*d) return Misfit(fmt::format("the shape of '{}' is unknown", v->name()));
  }
  const std::string shapes =
      fmt::format("'{}' is {} and '{}' is {}", a->name(), ToString(*da), b->name(), ToString(*db));
  // (S,H) or (1,S,H) `small` against (B,S,H) `full`.
  auto broadcasts_into = [](const Dims& small, const Dims& full) {
    if (full.size() != 3) return false;
    if (small.size() == 2) return small[0] == full[1] && small[1] == full[2];
    return small.size() == 3 && small[0].size == 1 && small[1] == full[1] && small[2] == full[2];
  };
  // (B, S, H), or tf2onnx 1.6's 2-D (B·S, H) encoder, which ORT's kernel takes as tokens.
  if ((da->size() == 3 || da->size() == 2) && *da == *db) return Fit(a, b, /*either_way=*/true);
  if (broadcasts_into(*db, *da)) return Fit(a, b, /*either_way=*/false);
  if (broadcasts_into(*da, *db)) return Fit(b, a, /*either_way=*/false);
  if (da->size() != 3 && db->size() != 3) {
    return Misfit(fmt::format("the residual operands are not 3-D: {}", shapes));
  }
  return Misfit(
      fmt::format("the residual operands' shapes are not provably equal, nor one "
                  "(1,S,H) or (S,H) of the other: {}",
                  shapes));
}

// Add(MatMul(...), bias) whose bias can move into SkipLayerNormalization's input 4.
struct DenseBias {
  ir::Node* add = nullptr;
  ir::Value* matmul_out = nullptr;
  ir::Value* bias = nullptr;
};

std::optional<DenseBias> FoldableBias(const ir::Graph& graph, SymbolicDims& dims, ir::Value* dense,
                                      int64_t hidden) {
  ir::Node* add = dense->producer();
  if (!add || !add->Is("Add") || add->num_inputs() != 2) return std::nullopt;
  // Another reader would lose the biased value once the Add is gone.
  if (dense->uses().size() != 1 || dense->is_graph_output()) return std::nullopt;
  for (int i : {0, 1}) {
    ir::Value* matmul_out = add->input(1 - i);
    ir::Value* bias = add->input(i);
    const ir::Node* matmul = matmul_out ? matmul_out->producer() : nullptr;
    if (!matmul || !matmul->Is("MatMul") || !graph.ConstantTensor(bias)) continue;
    const auto bias_shape = graph.Shape(bias);
    if (!bias_shape || *bias_shape != std::vector<int64_t>{hidden}) continue;
    // The bias must not broadcast the MatMul output up.
    const auto mm = dims.Of(matmul_out);
    const auto biased = dims.Of(dense);
    if (!mm || !biased || *mm != *biased) continue;
    return DenseBias{.add = add, .matmul_out = matmul_out, .bias = bias};
  }
  return std::nullopt;
}

class SkipLayerNormFusion : public Fusion {
 public:
  std::string_view name() const override { return "skip_layer_norm"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph& graph) const override {
    return graph.NodesOfType("LayerNormalization");
  }

  FuseResult FuseAt(const PassOptions&, ir::Graph& graph, ir::Node* ln) const override {
    // The sum may live on as output 3, so its Add is matched as shared (exempt from the
    // containment check) and erased by hand below.
    const P residual = Op("Add", {Any("a"), Any("b")}, "residual").Shared();
    const P root = Op("LayerNormalization", {residual, Const("gamma")});
    pattern::MatchResult r = pattern::MatchPattern(graph, ln, root);
    if (!r.ok()) return FuseResult::Miss(r.reason());
    const pattern::Match& m = r.match();
    ir::Node* add = m.node("residual");
    ir::Value* sum = m["residual"];
    ir::Value* a = m["a"];
    ir::Value* b = m["b"];
    for (ir::Value* operand : {a, b}) {
      if (graph.ConstantTensor(operand)) {
        return FuseResult::Miss(fmt::format(
            "'{}' is a constant: an Add of a constant is a bias or a table, not a residual",
            operand->name()));
      }
    }

    for (int i : {1, 2}) {
      const ir::Value* extra = ln->output(i);
      if (extra && (!extra->uses().empty() || extra->is_graph_output())) {
        return FuseResult::Miss(fmt::format(
            "'{}' (LayerNormalization output {}) is used; SkipLayerNormalization's differs",
            extra->name(), i));
      }
    }
    const auto gamma = graph.Shape(m["gamma"]);
    if (!gamma || gamma->size() != 1) {
      return FuseResult::Miss(fmt::format("gamma '{}' is not 1-D", m["gamma"]->name()));
    }
    const int64_t hidden = (*gamma)[0];
    ir::Value* beta = ln->input(2);
    if (beta && (!graph.ConstantTensor(beta) || graph.Shape(beta) != gamma)) {
      return FuseResult::Miss(
          fmt::format("beta '{}' is not a 1-D constant of length {}", beta->name(), hidden));
    }
    const int32_t type = graph.ElementType(m["gamma"]);
    if (type != onnx::TensorProto::FLOAT && type != onnx::TensorProto::FLOAT16) {
      return FuseResult::Miss(fmt::format("gamma '{}' is not float32 or float16 (element type {})",
                                          m["gamma"]->name(), type));
    }

    for (ir::Value* operand : {a, b}) {
      // SkipLayerNormalization has one type for all inputs (the ORT LayerNormalization it
      // replaces may scale float16 by float32).
      if (const int32_t t = graph.ElementType(operand); t != 0 && t != type) {
        return FuseResult::Miss(
            fmt::format("'{}' has element type {} but gamma {}", operand->name(), t, type));
      }
    }

    SymbolicDims dims(graph);
    Slots slots = AssignSlots(dims, a, b);
    if (!slots.reason.empty()) return FuseResult::Miss(slots.reason);
    const Dims input_dims = *dims.Of(slots.input);
    const int64_t axis = ln->AttrInt("axis").value_or(-1);
    if (axis != -1 && axis != static_cast<int64_t>(input_dims.size()) - 1) {
      return FuseResult::Miss(
          fmt::format("{} normalises from axis {} of a rank-{} input, not over the last axis only",
                      ln->DisplayName(), axis, input_dims.size()));
    }
    if (int64_t h = input_dims.back().size; h >= 0 && h != hidden) {
      return FuseResult::Miss(fmt::format("gamma has length {} but '{}' has last dim {}", hidden,
                                          slots.input->name(), h));
    }

    std::optional<DenseBias> dense;
    for (ir::Value* candidate : {slots.input, slots.skip}) {
      if (candidate == slots.skip && !slots.either_way) break;
      if ((dense = FoldableBias(graph, dims, candidate, hidden))) {
        if (candidate == slots.skip) std::swap(slots.input, slots.skip);
        break;
      }
    }

    const bool sum_needed =
        sum->is_graph_output() ||
        std::any_of(sum->uses().begin(), sum->uses().end(),
                    [ln](const ir::Use& use) { return use.node != ln || use.index != 0; });
    std::vector<std::string> inputs = {dense ? dense->matmul_out->name() : slots.input->name(),
                                       slots.skip->name(), m["gamma"]->name(),
                                       beta ? beta->name() : ""};
    if (dense) inputs.push_back(dense->bias->name());
    while (inputs.back().empty()) inputs.pop_back();
    std::vector<std::string> outputs = {ln->output(0)->name()};
    if (sum_needed) outputs.insert(outputs.end(), {"", "", sum->name()});
    const float epsilon = ln->AttrFloat("epsilon").value_or(kOnnxDefaultEpsilon);
    const std::string node_name = FusedNodeName(*ln, "SkipLayerNormalization");

    graph.EraseNode(ln);
    graph.EraseNode(add);
    if (dense) graph.EraseNode(dense->add);
    ir::Node* fused =
        graph.AddNode("SkipLayerNormalization", inputs, outputs, ir::kMsDomain, node_name);
    fused->SetAttr("epsilon", epsilon);
    return FuseResult::Fused();
  }
};

}  // namespace

std::unique_ptr<Pass> MakeSkipLayerNormFusion() { return std::make_unique<SkipLayerNormFusion>(); }

}  // namespace bertopt::passes
