#include "bertopt/ir/validate.h"

#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "fmt/format.h"

namespace bertopt::ir {
namespace {

// Ops of the default domain whose listed inputs must all have one element type (their type
// constraint T covers every one of them).
bool SameTypeInputs(const onnx::NodeProto& node, std::vector<int>* inputs) {
  static const std::unordered_set<std::string_view> kAll = {
      "Concat",      "Add",  "Sub", "Mul",   "Div",     "Sum",  "Max",
      "Min",         "Mean", "Pow", "Equal", "Greater", "Less", "GreaterOrEqual",
      "LessOrEqual", "And",  "Or",  "Xor",   "MatMul"};
  if (!node.domain().empty() && node.domain() != "ai.onnx") return false;
  inputs->clear();
  if (node.op_type() == "Pow") {
    return false;  // T and T1 differ
  }
  if (node.op_type() == "Where") {
    *inputs = {1, 2};
    return true;
  }
  if (!kAll.count(node.op_type())) return false;
  for (int i = 0; i < node.input_size(); ++i) inputs->push_back(i);
  return true;
}

std::string NodeName(const onnx::NodeProto& n) {
  if (!n.name().empty()) return fmt::format("node '{}' ({})", n.name(), n.op_type());
  return fmt::format("the {} node producing '{}'", n.op_type(),
                     n.output_size() ? n.output(0) : std::string("nothing"));
}

class Validator {
 public:
  // `outer`: names visible from enclosing graphs.
  Status Check(const onnx::GraphProto& g, const std::unordered_set<std::string>& outer) {
    std::unordered_set<std::string> known = outer;
    std::unordered_map<std::string, int32_t> types;
    auto declare = [&types](const onnx::ValueInfoProto& vi) {
      if (vi.type().has_tensor_type() && vi.type().tensor_type().elem_type() != 0) {
        types[vi.name()] = vi.type().tensor_type().elem_type();
      }
    };
    std::unordered_set<std::string> initializers;
    for (const auto& init : g.initializer()) {
      initializers.insert(init.name());
      types[init.name()] = init.data_type();
    }
    for (const auto& in : g.input()) {
      // ORT refuses a graph input declared twice ("Duplicate definition-site"), unless it is an
      // initializer too.
      if (!known.insert(in.name()).second && !initializers.count(in.name()) &&
          !outer.count(in.name())) {
        return InvalidModel(fmt::format("graph input '{}' is declared twice", in.name()));
      }
      declare(in);
    }
    known.insert(initializers.begin(), initializers.end());
    // ORT refuses two nodes with one name ("two nodes with same node name"); unnamed ones are fine.
    std::unordered_set<std::string> node_names;
    for (const auto& node : g.node()) {
      if (!node.name().empty() && !node_names.insert(node.name()).second) {
        return InvalidModel(fmt::format("two nodes are named '{}' (the second is {} writing '{}')",
                                        node.name(), node.op_type(),
                                        node.output_size() ? node.output(0) : std::string()));
      }
    }
    for (const auto& vi : g.value_info()) declare(vi);
    // Every output first: ONNX Runtime sorts a graph itself, so node order is not validity.
    std::unordered_set<std::string> produced;
    for (const auto& node : g.node()) {
      for (const std::string& out : node.output()) {
        if (out.empty()) continue;
        if (!produced.insert(out).second || (known.count(out) && !outer.count(out))) {
          return InvalidModel(
              fmt::format("{} writes '{}', which already has a value", NodeName(node), out));
        }
      }
    }
    known.insert(produced.begin(), produced.end());
    std::vector<int> same;
    for (const auto& node : g.node()) {
      for (const std::string& in : node.input()) {
        if (in.empty() || known.count(in)) continue;
        return InvalidModel(fmt::format(
            "{} reads '{}', which is not a graph input, an initializer, or the output of a node",
            NodeName(node), in));
      }
      if (SameTypeInputs(node, &same)) {
        int32_t first = 0;
        std::string first_name;
        for (int i : same) {
          if (i >= node.input_size() || node.input(i).empty()) continue;
          auto t = types.find(node.input(i));
          if (t == types.end()) continue;
          if (first == 0) {
            first = t->second;
            first_name = node.input(i);
          } else if (t->second != first) {
            return InvalidModel(fmt::format("{} mixes element types: '{}' is {} and '{}' is {}",
                                            NodeName(node), first_name,
                                            onnx::TensorProto::DataType_Name(first), node.input(i),
                                            onnx::TensorProto::DataType_Name(t->second)));
          }
        }
      }
      for (const auto& attr : node.attribute()) {
        if (attr.has_g()) RETURN_IF_ERROR(Check(attr.g(), known));
        for (const auto& sub : attr.graphs()) RETURN_IF_ERROR(Check(sub, known));
      }
    }
    for (const auto& out : g.output()) {
      if (!known.count(out.name())) {
        return InvalidModel(
            fmt::format("graph output '{}' is computed by no node and is no input", out.name()));
      }
    }
    return Status::Ok();
  }
};

bool IsConstantNode(const onnx::NodeProto& node) {
  return node.op_type() == "Constant" && (node.domain().empty() || node.domain() == "ai.onnx") &&
         node.input_size() == 0 && node.output_size() == 1;
}

const onnx::TensorProto* ConstantValue(const onnx::NodeProto& node) {
  for (const auto& a : node.attribute()) {
    if (a.name() == "value" && a.has_t()) return &a.t();
  }
  return nullptr;
}

}  // namespace

// ORT's rules, from onnxruntime/core/graph/graph.cc (Graph's constructor, 1.29 and 1.32 alike,
// checked by tests/unit/ort_load_rules_test.cc against the linked ORT):
// - Constant nodes are turned into initializers after the graph's own initializers, and a name
//   met again replaces the earlier tensor: "Duplicate initializer (dense, sparse or ConstantNode):
//   '<name>' the model will use the latest encountered initializer". So the last Constant node
//   writing a name wins, else the last initializer of that name.
// - A Constant node writing a graph input is such an initializer too: the input's default value.
// - An initializer that is also a graph input "will not be treated as constant value/weight" from
//   IR version 4 on (the caller may feed it); below IR 4 every initializer had to be listed as an
//   input, and ORT treats it as a constant (feeding it is refused).
// - A name written by a node other than a Constant and by anything else is refused ("Duplicate
//   definition of name"): not changed here, ValidateGraph names the node.
std::vector<std::string> FollowOrtLoadRules(onnx::ModelProto& model) {
  std::vector<std::string> warnings;
  onnx::GraphProto* g = model.mutable_graph();
  std::unordered_set<std::string> written_by_other;  // outputs of nodes that are not Constants
  std::unordered_map<std::string, int> last_constant;
  for (int i = 0; i < g->node_size(); ++i) {
    const auto& node = g->node(i);
    if (IsConstantNode(node) && ConstantValue(node)) {
      last_constant[node.output(0)] = i;
    } else {
      written_by_other.insert(node.output().begin(), node.output().end());
    }
  }
  std::unordered_set<std::string> inputs;
  for (const auto& in : g->input()) inputs.insert(in.name());

  // Constant nodes: the earlier writers of a name go; one writing a graph input becomes its
  // initializer (placed after the initializers, so it wins below as in ORT).
  std::vector<onnx::TensorProto> from_constants;
  auto* nodes = g->mutable_node();
  int kept = 0;
  for (int i = 0; i < nodes->size(); ++i) {
    const onnx::NodeProto& node = nodes->Get(i);
    bool drop = false;
    if (IsConstantNode(node) && ConstantValue(node) && !written_by_other.count(node.output(0))) {
      const std::string& name = node.output(0);
      if (last_constant.at(name) != i) {
        warnings.push_back(fmt::format(
            "{} writes '{}', and so does a later Constant node: the later one is used, as ONNX "
            "Runtime does",
            NodeName(node), name));
        drop = true;
      } else if (inputs.count(name)) {
        warnings.push_back(fmt::format(
            "{} writes graph input '{}': it is that input's initializer (its default value), as "
            "ONNX Runtime reads it",
            NodeName(node), name));
        from_constants.push_back(*ConstantValue(node));
        from_constants.back().set_name(name);
        drop = true;
      }
    }
    if (!drop) {
      if (kept != i) nodes->SwapElements(kept, i);
      ++kept;
    }
  }
  while (nodes->size() > kept) nodes->RemoveLast();
  for (auto& t : from_constants) *g->add_initializer() = std::move(t);

  // Initializers: the last of a name wins, and a kept Constant node beats them all.
  std::unordered_map<std::string, int> last_init;
  for (int i = 0; i < g->initializer_size(); ++i) last_init[g->initializer(i).name()] = i;
  auto* inits = g->mutable_initializer();
  kept = 0;
  for (int i = 0; i < inits->size(); ++i) {
    const std::string& name = inits->Get(i).name();
    const bool constant_wins =
        last_constant.count(name) && !written_by_other.count(name) && !inputs.count(name);
    if (constant_wins || last_init.at(name) != i) {
      warnings.push_back(fmt::format(
          "initializer '{}' is given again later{}: the later one is used, as ONNX Runtime does",
          name, constant_wins ? " by a Constant node" : ""));
      continue;
    }
    if (kept != i) inits->SwapElements(kept, i);
    ++kept;
  }
  while (inits->size() > kept) inits->RemoveLast();

  if (model.ir_version() >= 4) {
    for (const auto& init : g->initializer()) {
      if (!inputs.count(init.name())) continue;
      warnings.push_back(fmt::format(
          "initializer '{}' is also a graph input (IR version {}): a caller may feed another "
          "value, so it is not a constant to the fusions, as in ONNX Runtime",
          init.name(), model.ir_version()));
    }
  }
  return warnings;
}

Status ValidateGraph(const onnx::GraphProto& graph) { return Validator().Check(graph, {}); }

}  // namespace bertopt::ir
