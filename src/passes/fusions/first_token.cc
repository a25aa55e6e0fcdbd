// Per-token layers whose result is only read at the first token compute only the first token.
//
// A BERT classifier reads the last encoder layer at one position: the pooler's
// Gather(axis = 1, index 0) of the [B, S, H] hidden states. Everything between the last
// Attention and that Gather works on each token alone (the dense layers' MatMul over the last
// axis, bias Adds, residual Adds, LayerNormalization over the last axis, the GELUs), so rows
// 1..S-1 of all of it are computed and thrown away: the output projection and the feed-forward
// layer of the last layer, about 9/12 of that layer's MatMul work.
//
//   attn ─► MatMul ─► SkipLN(·, h) ─► MatMul ─► BiasGelu ─► MatMul ─► SkipLN ─► Gather(axis 1, 0)
//   =>
//   attn ─► Slice[:, 0:1] ─► MatMul ─► SkipLN(·, Slice[:, 0:1](h)) ─► ... ─► SkipLN ─► Gather(axis
//   1, 0)
//
// The region is found backwards from the Gather: a node joins it when it is token-wise (below)
// and every reader of each of its outputs is in the region or is the Gather itself (no graph
// output, no other reader that needs every token). Its inputs that come from outside the region
// and carry tokens (the frontier: the Attention output, the layer's input h) are sliced to the
// first token once each; constants (weights, biases, gammas) are left as they are. The region's
// nodes are re-created on the sliced values under new output names, so no stale shape
// annotation can contradict the new [B, 1, ...] shapes; the old ones become dead.
//
// Exact: row 0 of every token-wise op is computed from row 0 of its inputs alone. The kernels
// may block the smaller MatMul differently, so results can differ in the last float bits.
//
// Token-wise here means: MatMul by a constant rank-2 weight; Add / Sub / Mul / Div / Sum whose
// constant operands have rank <= 1; LayerNormalization over the last axis; the com.microsoft
// SkipLayerNormalization, BiasGelu, FastGelu, Gelu; Gelu, Tanh, Relu, Erf, Cast. A frontier value
// must be known to be [batch, sequence, ...] (SequenceOnAxis1).
#include <algorithm>
#include <map>
#include <set>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"
#include "passes/fusions/fusions.h"

namespace bertopt::passes {
namespace {

// Which inputs of a token-wise node carry tokens; nullopt when the node is not token-wise. Its
// other inputs must be constants that cannot vary along the sequence: a rank-2 MatMul weight,
// biases and scales of rank <= 1 (checked here for the elementwise ops; the layer norms' and
// GELUs' contracts make theirs 1-D).
std::optional<std::vector<int>> TokenInputs(const ir::Graph& graph, const ir::Node& node) {
  auto is_const = [&](int i) {
    return node.input(i) && graph.ConstantTensor(node.input(i)) != nullptr;
  };
  auto const_rank = [&](int i) { return graph.ConstantTensor(node.input(i))->dims_size(); };
  if (node.Is("MatMul")) {
    if (node.num_inputs() != 2 || is_const(0) || !is_const(1) || const_rank(1) != 2) {
      return std::nullopt;
    }
    return std::vector<int>{0};
  }
  if (node.Is("Add") || node.Is("Sub") || node.Is("Mul") || node.Is("Div") || node.Is("Sum")) {
    std::vector<int> tokens;
    for (int i = 0; i < node.num_inputs(); ++i) {
      if (!node.input(i)) return std::nullopt;
      if (!is_const(i)) {
        tokens.push_back(i);
      } else if (const_rank(i) > 1) {
        return std::nullopt;  // could vary along the sequence axis
      }
    }
    if (tokens.empty()) return std::nullopt;
    return tokens;
  }
  auto rest_constant = [&](int first_constant, std::vector<int> tokens) {
    for (int i = first_constant; i < node.num_inputs(); ++i) {
      if (node.input(i) && !is_const(i)) return std::optional<std::vector<int>>();
    }
    return std::optional<std::vector<int>>(std::move(tokens));
  };
  if (node.Is("LayerNormalization")) {
    const int64_t axis = node.AttrInt("axis").value_or(-1);
    if (axis != -1) return std::nullopt;  // a positive axis: the rank decides; not needed here
    return rest_constant(1, {0});
  }
  if (node.Is("SkipLayerNormalization", ir::kMsDomain)) return rest_constant(2, {0, 1});
  if (node.Is("BiasGelu", ir::kMsDomain) || node.Is("FastGelu", ir::kMsDomain) ||
      node.Is("Gelu", ir::kMsDomain)) {
    return rest_constant(1, {0});
  }
  for (std::string_view op : {"Gelu", "Tanh", "Relu", "Erf", "Cast"}) {
    if (node.Is(op) && node.num_inputs() == 1) return std::vector<int>{0};
  }
  return std::nullopt;
}

// Evidence that `value` is laid out [batch, sequence, ...] with the sequence on axis 1: a rank-3
// shape annotation, an op whose contract gives [B, S, H] (Attention, SkipLayerNormalization,
// EmbedLayerNormalization), or a token-wise op (which keeps the rank of its token inputs) of such
// values. ONNX 1.12's shape inference knows neither the com.microsoft ops nor LayerNormalization
// below opset 17, so the annotation alone rarely reaches the last layer.
// `known` memoizes (the residual paths reach each layer twice); past `depth` 1000 it gives up.
bool SequenceOnAxis1(const ir::Graph& graph, const ir::Value* value,
                     std::map<const ir::Value*, bool>& known, int depth = 0) {
  if (auto it = known.find(value); it != known.end()) return it->second;
  bool result = false;
  const ir::Node* p = value->producer();
  if (auto shape = graph.Shape(value)) {
    result = shape->size() == 3;
  } else if (!p || depth > 1000) {
    result = false;
  } else if (p->Is("Attention", ir::kMsDomain) || p->Is("SkipLayerNormalization", ir::kMsDomain) ||
             p->Is("EmbedLayerNormalization", ir::kMsDomain)) {
    result = value->producer_output() == 0;
  } else if (const auto tokens = TokenInputs(graph, *p); tokens && value->producer_output() == 0) {
    result = std::all_of(tokens->begin(), tokens->end(), [&](int i) {
      return p->input(i) && SequenceOnAxis1(graph, p->input(i), known, depth + 1);
    });
  }
  known[value] = result;
  return result;
}

// A Slice of axis 1 from 0 to 1: what this pass inserts (so a second run leaves it alone).
bool IsFirstTokenSlice(const ir::Graph& graph, const ir::Node* node) {
  if (!node || !node->Is("Slice")) return false;
  const std::optional<std::vector<int64_t>> one = std::vector<int64_t>{1};
  const std::optional<std::vector<int64_t>> zero = std::vector<int64_t>{0};
  if (node->num_inputs() >= 4) {
    return graph.ConstantAsInts(node->input(1)) == zero &&
           graph.ConstantAsInts(node->input(2)) == one &&
           graph.ConstantAsInts(node->input(3)) == one;
  }
  return node->AttrInts("starts") == zero && node->AttrInts("ends") == one &&
         node->AttrInts("axes") == one;
}

class FirstToken : public Fusion {
 public:
  std::string_view name() const override { return "first_token"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph& graph) const override {
    std::vector<ir::Node*> anchors;
    for (ir::Node* g : graph.NodesOfType("Gather")) {
      const auto index = g->num_inputs() == 2 ? graph.ConstantAsInts(g->input(1)) : std::nullopt;
      const onnx::TensorProto* t =
          g->num_inputs() == 2 ? graph.ConstantTensor(g->input(1)) : nullptr;
      if (g->AttrInt("axis").value_or(0) == 1 && index && index->size() == 1 && (*index)[0] == 0 &&
          t && t->dims_size() == 0) {
        anchors.push_back(g);
      }
    }
    return anchors;
  }

  FuseResult FuseAt(const PassOptions&, ir::Graph& graph, ir::Node* gather) const override {
    ir::Value* hidden = gather->input(0);
    if (!hidden || !hidden->producer()) {
      return FuseResult::Miss("the Gather does not read a computed value");
    }
    // Backwards from the Gather: a node joins once every reader of its outputs has joined (or is
    // the Gather); each time one joins, the producers of its token inputs are (re)considered, so
    // the graph's node order does not matter.
    std::set<const ir::Node*> region;
    std::map<const ir::Node*, std::vector<int>> token_inputs;
    auto first_token_only = [&](const ir::Value* v) {
      if (v->is_graph_output()) return false;
      for (const ir::Use& u : v->uses()) {
        if (u.node == gather && u.index == 0) continue;
        if (!region.count(u.node)) return false;
        const std::vector<int>& tokens = token_inputs.at(u.node);
        if (std::find(tokens.begin(), tokens.end(), u.index) == tokens.end()) return false;
      }
      return true;
    };
    std::vector<const ir::Node*> pending = {hidden->producer()};
    while (!pending.empty()) {
      const ir::Node* n = pending.back();
      pending.pop_back();
      if (region.count(n)) continue;
      auto tokens = TokenInputs(graph, *n);
      if (!tokens || std::any_of(tokens->begin(), tokens->end(),
                                 [&](int i) { return n->input(i) == nullptr; })) {
        continue;
      }
      bool only_first = true;
      for (const ir::Value* out : n->outputs()) {
        if (out) only_first &= first_token_only(out);
      }
      if (!only_first) continue;
      region.insert(n);
      token_inputs[n] = *tokens;
      for (int i : *tokens) {
        if (const ir::Node* p = n->input(i)->producer()) pending.push_back(p);
      }
    }
    if (!region.count(hidden->producer())) {
      return FuseResult::Miss(fmt::format(
          "'{}' is read at every token (another reader or a graph output) or its producer {} "
          "is not token-wise",
          hidden->name(), hidden->producer()->DisplayName()));
    }
    // In graph order, so names come out the same on every run.
    std::vector<ir::Node*> ordered;
    for (ir::Node* n : graph.Nodes()) {
      if (region.count(n)) ordered.push_back(n);
    }
    int matmuls = 0;
    std::vector<ir::Value*> frontier;
    for (const ir::Node* n : ordered) {
      matmuls += n->Is("MatMul");
      for (int i : token_inputs.at(n)) {
        ir::Value* v = n->input(i);
        const ir::Node* p = v->producer();
        if ((!p || !region.count(p)) &&
            std::find(frontier.begin(), frontier.end(), v) == frontier.end()) {
          frontier.push_back(v);
        }
      }
    }
    if (matmuls == 0) {
      return FuseResult::Miss("no MatMul works on the discarded tokens: nothing to save");
    }
    std::map<const ir::Value*, bool> known;
    for (const ir::Value* v : frontier) {
      if (IsFirstTokenSlice(graph, v->producer())) {
        return FuseResult::Miss(fmt::format("'{}' is already its first token only", v->name()));
      }
      if (!SequenceOnAxis1(graph, v, known)) {
        return FuseResult::Miss(fmt::format(
            "cannot tell that '{}' has the sequence on axis 1 (no rank-3 shape known)", v->name()));
      }
    }
    // Slice each frontier value to its first token, then re-create the region in graph order
    // on the sliced values.
    std::map<std::string, std::string> renamed;
    // From opset 10 the bounds are inputs: [0] for starts, [1] for ends and axes, shared.
    ir::Value* zero = nullptr;
    ir::Value* one = nullptr;
    if (graph.OpsetVersion() >= 10) {
      zero = graph.AddInitializer(
          ir::MakeInt64Tensor(graph.UniqueName("first_token_start"), {1}, {0}));
      one =
          graph.AddInitializer(ir::MakeInt64Tensor(graph.UniqueName("first_token_end"), {1}, {1}));
    }
    for (ir::Value* v : frontier) {
      const std::string sliced = graph.UniqueName(v->name() + "_first_token");
      if (zero) {
        graph.AddNode("Slice", {v->name(), zero->name(), one->name(), one->name()}, {sliced},
                      ir::kOnnxDomain, FusedNodeName(*gather, "FirstToken"));
      } else {
        ir::Node* slice = graph.AddNode("Slice", {v->name()}, {sliced}, ir::kOnnxDomain,
                                        FusedNodeName(*gather, "FirstToken"));
        slice->SetAttr("starts", std::vector<int64_t>{0});
        slice->SetAttr("ends", std::vector<int64_t>{1});
        slice->SetAttr("axes", std::vector<int64_t>{1});
      }
      renamed[v->name()] = sliced;
    }
    // New names for every output first: the node list need not be in topological order.
    for (const ir::Node* n : ordered) {
      for (const ir::Value* out : n->outputs()) {
        if (out) renamed[out->name()] = graph.UniqueName(out->name() + "_first_token");
      }
    }
    for (const ir::Node* n : ordered) {
      onnx::NodeProto proto = n->proto();
      for (int i : token_inputs.at(n)) proto.set_input(i, renamed.at(proto.input(i)));
      for (int o = 0; o < proto.output_size(); ++o) {
        if (!proto.output(o).empty()) proto.set_output(o, renamed.at(proto.output(o)));
      }
      graph.AddNode(std::move(proto));
    }
    graph.SetInput(gather, 0, graph.FindValue(renamed.at(hidden->name())));
    return FuseResult::Fused();
  }
};

}  // namespace

std::unique_ptr<Pass> MakeFirstTokenPass() { return std::make_unique<FirstToken>(); }

}  // namespace bertopt::passes
