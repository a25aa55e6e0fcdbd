#include "bertopt/ir/validate.h"

#include <limits>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "bertopt/ir/tensor.h"
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

// A tensor whose inline payload is not what its shape and type say. ONNX's own shape inference,
// which Optimize runs first, copies raw_data into a buffer sized from it (onnx::ParseData) and
// writes past the end on such a tensor; ONNX Runtime refuses it too.
Status CheckTensor(const onnx::TensorProto& t, const std::string& what) {
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) return InvalidModel(fmt::format("{} has a negative dimension ({})", what, d));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
      return InvalidModel(fmt::format("{} has more elements than an int64 can count", what));
    }
    n *= d;
  }
  const int size = ElementSize(t.data_type());
  if (!t.has_raw_data() || t.data_location() == onnx::TensorProto::EXTERNAL || size == 0) {
    return Status::Ok();
  }
  if (n > std::numeric_limits<int64_t>::max() / size ||
      static_cast<int64_t>(t.raw_data().size()) != n * size) {
    return InvalidModel(fmt::format(
        "{} has {} bytes of raw_data where its shape and type ({}) "
        "need {} elements of {} bytes",
        what, t.raw_data().size(), onnx::TensorProto::DataType_Name(t.data_type()), n, size));
  }
  return Status::Ok();
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
    for (const auto& in : g.input()) {
      known.insert(in.name());
      declare(in);
    }
    for (const auto& init : g.initializer()) {
      RETURN_IF_ERROR(CheckTensor(init, fmt::format("initializer '{}'", init.name())));
      known.insert(init.name());
      types[init.name()] = init.data_type();
    }
    for (const auto& vi : g.value_info()) declare(vi);
    // A declared type (graph input or value_info) that contradicts an initializer's own: passes
    // read one or the other, so a converted graph would mix types nobody wrote.
    std::unordered_map<std::string_view, int32_t> initializer_types;
    for (const auto& init : g.initializer()) initializer_types[init.name()] = init.data_type();
    for (const auto* infos : {&g.input(), &g.value_info()}) {
      for (const auto& vi : *infos) {
        const int32_t declared = vi.type().tensor_type().elem_type();
        auto init = initializer_types.find(vi.name());
        if (declared == 0 || init == initializer_types.end() || init->second == declared) continue;
        return InvalidModel(fmt::format("initializer '{}' is {}, but the graph declares it {}",
                                        vi.name(), onnx::TensorProto::DataType_Name(init->second),
                                        onnx::TensorProto::DataType_Name(declared)));
      }
    }
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
        if (attr.has_t()) {
          RETURN_IF_ERROR(CheckTensor(
              attr.t(), fmt::format("attribute '{}' of {}", attr.name(), NodeName(node))));
        }
        for (const auto& t : attr.tensors()) {
          RETURN_IF_ERROR(
              CheckTensor(t, fmt::format("attribute '{}' of {}", attr.name(), NodeName(node))));
        }
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

}  // namespace

Status ValidateGraph(const onnx::GraphProto& graph) { return Validator().Check(graph, {}); }

}  // namespace bertopt::ir
