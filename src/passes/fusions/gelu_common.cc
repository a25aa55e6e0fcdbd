#include "passes/fusions/gelu_common.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "fmt/format.h"
#include "fmt/ranges.h"

namespace bertopt::passes::gelu {

using pattern::MatchResult;
using pattern::Op;
using pattern::P;

P ScalarNear(double value, double abs_tolerance, std::string_view bind) {
  return pattern::Scalar(value, abs_tolerance / std::max(1.0, std::abs(value)), bind);
}

ir::Node* ConsumerOfType(const ir::Value* value, std::string_view op_type) {
  if (!value) return nullptr;
  for (const ir::Use& use : value->uses()) {
    if (use.index != ir::Use::kImplicitUse && use.node->Is(op_type)) return use.node;
  }
  return nullptr;
}

namespace {

// The input of a two-input node that is not `value` (the first one when both are).
const ir::Value* OtherInput(const ir::Node& node, const ir::Value* value) {
  return node.input(0) == value ? node.input(1) : node.input(0);
}

std::string Consumers(const ir::Value& value) {
  std::string out;
  for (const ir::Use& use : value.uses()) {
    out += (out.empty() ? "" : ", ") + use.node->DisplayName();
  }
  return out.empty() ? "nothing" : out;
}

}  // namespace

MatchResult MatchHalfXTimes(const ir::Graph& graph, const ir::Value& s, const P& x,
                            const P& s_pattern) {
  ir::Node* times_s = ConsumerOfType(&s, "Mul");
  if (!times_s) {
    return MatchResult::Failure(
        fmt::format("'{}' is read by {}, not by a Mul with x and 0.5", s.name(), Consumers(s)));
  }
  const P half = pattern::Scalar(0.5, kUnitTolerance);
  struct Form {
    ir::Node* root;
    P pattern;
  };
  std::vector<Form> forms = {
      {times_s, Op("Mul", {Op("Mul", {x, half}).Commutative(), s_pattern}).Commutative()}};
  ir::Node* outer = ConsumerOfType(times_s->output(0), "Mul");
  size_t looks_like = 0;
  if (outer) {
    forms.push_back(
        {outer, Op("Mul", {Op("Mul", {x, s_pattern}).Commutative(), half}).Commutative()});
    forms.push_back(
        {outer, Op("Mul", {x, Op("Mul", {s_pattern, half}).Commutative()}).Commutative()});
    if (graph.ConstantTensor(OtherInput(*times_s, &s))) {
      looks_like = 2;  // s·0.5 first
    } else if (graph.ConstantTensor(OtherInput(*outer, times_s->output(0)))) {
      looks_like = 1;  // x·s, then a constant
    }
  }
  MatchResult reported =
      pattern::MatchPattern(graph, forms[looks_like].root, forms[looks_like].pattern);
  if (reported.ok()) return reported;
  for (size_t i = 0; i < forms.size(); ++i) {
    if (i == looks_like) continue;
    MatchResult result = pattern::MatchPattern(graph, forms[i].root, forms[i].pattern);
    if (result.ok()) return result;
  }
  return reported;
}

std::string FloatTypeReason(const ir::Graph& graph, const ir::Value& value) {
  const int32_t type = graph.ElementType(&value);
  if (type == onnx::TensorProto::FLOAT || type == onnx::TensorProto::FLOAT16) return {};
  if (type == 0) return fmt::format("the element type of '{}' is unknown", value.name());
  return fmt::format("'{}' is {}, not float or float16", value.name(),
                     onnx::TensorProto::DataType_Name(type));
}

namespace {

// The last dimension of `value` when it is known: from shape inference, or for a MatMul output
// from the weight's declared shape (what survives when inference gave up on the graph).
std::optional<int64_t> LastDim(const ir::Graph& graph, const ir::Value& value) {
  if (auto shape = graph.Shape(&value); shape && !shape->empty() && shape->back() > 0) {
    return shape->back();
  }
  const ir::Node* producer = value.producer();
  if (producer && producer->Is("MatMul")) {
    if (auto w = graph.Shape(producer->input(1)); w && w->size() >= 2 && w->back() > 0) {
      return w->back();
    }
  }
  return std::nullopt;
}

// "" when `bias` is a 1-D bias of `input`'s last dimension.
std::string BiasReason(const ir::Graph& graph, const ir::Value& input, const ir::Value& bias) {
  const auto shape = graph.Shape(&bias);
  if (!shape) return fmt::format("the shape of bias '{}' is unknown", bias.name());
  if (shape->size() != 1) {
    return fmt::format("bias '{}' has shape [{}], expected 1-D", bias.name(),
                       fmt::join(*shape, ","));
  }
  if ((*shape)[0] <= 0) {
    return fmt::format("bias '{}' has a symbolic length, so it cannot be checked against '{}'",
                       bias.name(), input.name());
  }
  const std::optional<int64_t> last = LastDim(graph, input);
  if (!last) return fmt::format("the last dimension of '{}' is unknown", input.name());
  if (*last != (*shape)[0]) {
    return fmt::format("bias '{}' has {} elements but '{}' has last dimension {}", bias.name(),
                       (*shape)[0], input.name(), *last);
  }
  return {};
}

}  // namespace

BiasAdd SplitBiasAdd(const ir::Graph& graph, const ir::Node& add) {
  ir::Value* a = add.input(0);
  ir::Value* b = add.input(1);
  if (!add.Is("Add") || !a || !b) {
    return {.reason = fmt::format("{} is not a two-input Add", add.DisplayName())};
  }
  // Constants are the usual bias; a graph input of fixed shape [F] is the same computation fed at
  // run time. Try constants first so that Add(x[F] input, b[F] constant) keeps x as the input.
  std::vector<std::pair<ir::Value*, ir::Value*>> candidates;  // (bias, input)
  for (auto [bias, input] : {std::pair{b, a}, std::pair{a, b}}) {
    if (graph.ConstantTensor(bias)) candidates.emplace_back(bias, input);
  }
  for (auto [bias, input] : {std::pair{b, a}, std::pair{a, b}}) {
    if (bias->is_graph_input() && !graph.ConstantTensor(bias)) candidates.emplace_back(bias, input);
  }
  if (candidates.empty()) {
    return {
        .reason = fmt::format(
            "{} adds two computed values '{}' and '{}'; neither is a constant or graph-input bias",
            add.DisplayName(), a->name(), b->name())};
  }
  std::string first_reason;
  for (auto [bias, input] : candidates) {
    std::string why = BiasReason(graph, *input, *bias);
    if (why.empty()) return {.input = input, .bias = bias, .reason = {}};
    if (first_reason.empty()) first_reason = std::move(why);
  }
  return {.reason = std::move(first_reason)};
}

}  // namespace bertopt::passes::gelu
