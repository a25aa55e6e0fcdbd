#include "passes/convert/gpu_only.h"

namespace bertopt::passes {

StatusOr<int> ApplyGpuForms(ir::Graph& graph) {
  int rewritten = 0;
  for (const char* op : {"BiasGelu", "Gelu"}) {
    for (ir::Node* node : graph.NodesOfType(op, ir::kMsDomain)) {
      // Same inputs in the same positions: FastGelu(X, bias?) adds the optional bias first.
      onnx::NodeProto fast = node->proto();
      fast.set_op_type("FastGelu");
      const std::string& name = node->name();
      const size_t at = name.rfind(op);
      if (at != std::string::npos && at + std::string(op).size() == name.size()) {
        fast.set_name(name.substr(0, at) + "FastGelu");
      }
      graph.EraseNode(node);
      graph.AddNode(std::move(fast));
      ++rewritten;
    }
  }
  if (rewritten > 0) RETURN_IF_ERROR(graph.TopologicalSort());
  return rewritten;
}

}  // namespace bertopt::passes
