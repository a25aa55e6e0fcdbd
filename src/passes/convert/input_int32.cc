#include "passes/convert/input_int32.h"

#include <climits>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"

namespace bertopt::passes {
namespace {

using onnx::TensorProto;

// Readers for which an int32 input means the same as the int64 one, with no type change after.
bool TakesInt32(const ir::Node& node, int index) {
  if (node.Is("Shape") || node.Is("Size") || node.Is("Cast")) return true;
  if ((node.Is("Gather") || node.Is("GatherElements")) && index == 1) return true;
  if (node.Is("EmbedLayerNormalization", ir::kMsDomain)) {
    return index == 0 || index == 1 || index == 7 || index == 8;
  }
  if (node.Is("Attention", ir::kMsDomain)) return index == 3;
  return false;
}

// A comparison of the input with an int64 constant (RoBERTa's Equal(input_ids, 1)) compares the
// same with the constant as int32, when every element fits; returns that int32 constant.
ir::Value* Int32Operand(ir::Graph& graph, const ir::Node& reader, int index) {
  const bool comparison = reader.Is("Equal") || reader.Is("Less") || reader.Is("Greater") ||
                          reader.Is("LessOrEqual") || reader.Is("GreaterOrEqual");
  ir::Value* other = reader.input(1 - index);
  if (!comparison || reader.num_inputs() != 2 || !other ||
      graph.ElementType(other) != TensorProto::INT64) {
    return nullptr;
  }
  const auto values = graph.ConstantAsInts(other);
  const auto dims = graph.Shape(other);
  if (!values || !dims) return nullptr;
  std::vector<int32_t> narrow;
  for (int64_t v : *values) {
    if (v < INT32_MIN || v > INT32_MAX) return nullptr;
    narrow.push_back(static_cast<int32_t>(v));
  }
  return graph.AddInitializer(ir::MakeInt32Tensor(other->name() + "_int32", *dims, narrow));
}

}  // namespace

StatusOr<InputInt32Result> ConvertInputsToInt32(ir::Graph& graph) {
  InputInt32Result result;
  for (ir::Value* input : graph.Inputs()) {
    const auto shape = graph.Shape(input);
    if (graph.ElementType(input) != TensorProto::INT64 || !shape || shape->size() != 2) continue;
    RETURN_IF_ERROR(graph.SetGraphInputType(input, TensorProto::INT32));
    result.inputs.push_back(input->name());
    ir::Value* as_int64 = nullptr;
    const std::vector<ir::Use> uses = input->uses();
    for (const ir::Use& use : uses) {
      if (use.index == ir::Use::kImplicitUse) {
        return FailedPrecondition(
            fmt::format("--input_int32: input '{}' is read inside a subgraph of '{}'",
                        input->name(), use.node->DisplayName()));
      }
      ir::Node* reader = use.node;
      if (reader->Is("Cast") && reader->AttrInt("to") == TensorProto::INT32 &&
          !reader->output(0)->is_graph_output()) {
        RETURN_IF_ERROR(graph.ReplaceAllUses(reader->output(0), input));
        graph.EraseNode(reader);
        ++result.casts_removed;
        continue;
      }
      if (TakesInt32(*reader, use.index)) continue;
      if (ir::Value* narrow = Int32Operand(graph, *reader, use.index)) {
        graph.SetInput(reader, 1 - use.index, narrow);
        continue;
      }
      if (!as_int64) {
        const std::string name = graph.UniqueName(input->name() + "_int64");
        ir::Node* cast = graph.AddNode("Cast", {input->name()}, {name}, ir::kOnnxDomain, name);
        cast->SetAttr("to", int64_t{TensorProto::INT64});
        as_int64 = cast->output(0);
        ++result.casts_added;
      }
      graph.SetInput(reader, use.index, as_int64);
    }
  }
  graph.RemoveDeadNodes();
  graph.RemoveUnusedInitializers();
  RETURN_IF_ERROR(graph.TopologicalSort());
  return result;
}

}  // namespace bertopt::passes
