#include "passes/fusions/int32_inputs.h"

#include "bertopt/ir/tensor.h"

namespace bertopt::passes {
namespace {

std::string MaskIndexName(const ir::Value* mask) { return mask->name() + "_mask_index"; }

}  // namespace

ir::Value* GetOrCreateInt32(ir::Graph& graph, ir::Value* value) {
  if (graph.ElementType(value) == onnx::TensorProto::INT32) return value;
  const std::string name = value->name() + "_int32";
  if (ir::Value* existing = graph.FindValue(name); existing && existing->producer())
    return existing;
  ir::Node* cast = graph.AddNode("Cast", {value->name()}, {graph.UniqueName(name)});
  cast->SetAttr("to", static_cast<int64_t>(onnx::TensorProto::INT32));
  return cast->output(0);
}

ir::Value* GetOrCreateAttentionMask(ir::Graph& graph, ir::Value* mask, bool raw) {
  ir::Value* mask32 = GetOrCreateInt32(graph, mask);
  if (raw) return mask32;
  if (ir::Node* existing = FindMaskIndexNode(graph, mask)) return existing->output(0);
  const std::string out = graph.UniqueName(MaskIndexName(mask));
  ir::Node* sum;
  if (graph.OpsetVersion() >= 13) {
    ir::Value* axes = graph.AddInitializer(ir::MakeInt64Tensor(out + "_axes", {1}, {1}));
    sum = graph.AddNode("ReduceSum", {mask32->name(), axes->name()}, {out});
  } else {
    sum = graph.AddNode("ReduceSum", {mask32->name()}, {out});
    sum->SetAttr("axes", std::vector<int64_t>{1});
  }
  sum->SetAttr("keepdims", static_cast<int64_t>(0));
  return sum->output(0);
}

ir::Node* FindMaskIndexNode(const ir::Graph& graph, const ir::Value* mask) {
  const ir::Value* v = graph.FindValue(MaskIndexName(mask));
  return v && v->producer() && v->producer()->Is("ReduceSum") ? v->producer() : nullptr;
}

}  // namespace bertopt::passes
