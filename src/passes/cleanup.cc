#include "passes/cleanup.h"

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"
#include "passes/symbolic_dims.h"

namespace bertopt::passes {
namespace {

class RemoveIdentityPass : public Pass {
 public:
  std::string_view name() const override { return "remove_identity"; }
  Status Run(const PassOptions&, ir::Graph& graph, PassStats& stats) const override {
    for (ir::Node* node : graph.NodesOfType("Identity")) {
      ir::Value* in = node->input(0);
      ir::Value* out = node->output(0);
      if (!in || !out) continue;
      if (!out->is_graph_output()) {
        bool implicit = false;
        for (const ir::Use& use : out->uses()) implicit |= use.index == ir::Use::kImplicitUse;
        if (implicit) continue;  // read by name inside a subgraph: renaming would break it
        RETURN_IF_ERROR(graph.ReplaceAllUses(out, in));
        graph.EraseNode(node);
        ++stats.fused;
        continue;
      }
      // A graph output: let the input's producer write the output name itself, when the input
      // is read by nothing else and is not an interface value.
      ir::Node* producer = in->producer();
      if (!producer || in->is_graph_output() || in->uses().size() != 1) continue;
      onnx::NodeProto rewired = producer->proto();
      rewired.set_output(in->producer_output(), out->name());
      graph.EraseNode(node);
      graph.EraseNode(producer);
      graph.AddNode(std::move(rewired));
      ++stats.fused;
    }
    return Status::Ok();
  }
};

class DeadCodePass : public Pass {
 public:
  std::string_view name() const override { return "dead_code"; }
  Status Run(const PassOptions&, ir::Graph& graph, PassStats& stats) const override {
    stats.counters["nodes removed"] = graph.RemoveDeadNodes();
    stats.counters["initializers removed"] = graph.RemoveUnusedInitializers();
    stats.fused = stats.counters["nodes removed"] + stats.counters["initializers removed"];
    return Status::Ok();
  }
};

// A Constant node's attribute as a tensor, for each attribute form the op allows.
std::optional<onnx::TensorProto> ConstantAsTensor(const ir::Node& node) {
  if (node.proto().attribute_size() != 1) return std::nullopt;
  const onnx::AttributeProto& a = node.proto().attribute(0);
  onnx::TensorProto t;
  if (a.name() == "value" && a.has_t()) {
    t = a.t();
  } else if (a.name() == "value_float") {
    t.set_data_type(onnx::TensorProto::FLOAT);
    t.add_float_data(a.f());
  } else if (a.name() == "value_int") {
    t.set_data_type(onnx::TensorProto::INT64);
    t.add_int64_data(a.i());
  } else if (a.name() == "value_floats") {
    t.set_data_type(onnx::TensorProto::FLOAT);
    t.add_dims(a.floats_size());
    for (float f : a.floats()) t.add_float_data(f);
  } else if (a.name() == "value_ints") {
    t.set_data_type(onnx::TensorProto::INT64);
    t.add_dims(a.ints_size());
    for (int64_t i : a.ints()) t.add_int64_data(i);
  } else {
    return std::nullopt;  // sparse or string constants stay nodes
  }
  if (t.data_location() == onnx::TensorProto::EXTERNAL) return std::nullopt;
  return t;
}

class ConstantToInitializerPass : public Pass {
 public:
  std::string_view name() const override { return "constant_to_initializer"; }
  Status Run(const PassOptions&, ir::Graph& graph, PassStats& stats) const override {
    if (graph.model().ir_version() < 4) return Status::Ok();
    for (ir::Node* node : graph.NodesOfType("Constant")) {
      ir::Value* out = node->output(0);
      if (!out || out->is_graph_output()) continue;
      std::optional<onnx::TensorProto> tensor = ConstantAsTensor(*node);
      if (!tensor) continue;
      bool implicit = false;
      for (const ir::Use& use : out->uses()) implicit |= use.index == ir::Use::kImplicitUse;
      if (implicit) continue;
      tensor->set_name(out->name());
      graph.EraseNode(node);
      ir::Value* init = graph.AddInitializer(*std::move(tensor));
      if (init != out) RETURN_IF_ERROR(graph.ReplaceAllUses(out, init));
      ++stats.fused;
    }
    return Status::Ok();
  }
};

// GlobalAveragePool averages every axis from 2 on, so on a rank-3 [B, S, H] tensor it is
// ReduceMean over the last axis, keepdims: the mean of a LayerNorm, as tf2onnx writes it.
class GlobalPoolToReduceMeanPass : public Pass {
 public:
  std::string_view name() const override { return "global_pool_to_reduce_mean"; }
  Status Run(const PassOptions&, ir::Graph& graph, PassStats& stats) const override {
    SymbolicDims dims(graph);
    for (ir::Node* pool : graph.NodesOfType("GlobalAveragePool")) {
      ++stats.candidates;
      const std::optional<Dims> in = dims.Of(pool->input(0));
      if (!in || in->size() != 3) {
        stats.misses.push_back(
            fmt::format("{}: the input is not known to be 3-D", pool->DisplayName()));
        continue;
      }
      const std::string input = pool->input(0)->name();
      const std::string output = pool->output(0)->name();
      const std::string node_name = pool->name();
      graph.EraseNode(pool);
      ir::Node* mean;
      if (graph.OpsetVersion() >= 18) {
        ir::Value* axes =
            graph.AddInitializer(ir::MakeInt64Tensor(graph.UniqueName(output + "_axes"), {1}, {2}));
        mean = graph.AddNode("ReduceMean", {input, axes->name()}, {output}, ir::kOnnxDomain,
                             node_name);
      } else {
        mean = graph.AddNode("ReduceMean", {input}, {output}, ir::kOnnxDomain, node_name);
        mean->SetAttr("axes", std::vector<int64_t>{2});
      }
      mean->SetAttr("keepdims", int64_t{1});
      ++stats.fused;
    }
    return Status::Ok();
  }
};

class TopologicalSortPass : public Pass {
 public:
  std::string_view name() const override { return "topological_sort"; }
  Status Run(const PassOptions&, ir::Graph& graph, PassStats&) const override {
    return graph.TopologicalSort();
  }
};

}  // namespace

std::unique_ptr<Pass> MakeRemoveIdentityPass() { return std::make_unique<RemoveIdentityPass>(); }
std::unique_ptr<Pass> MakeDeadCodePass() { return std::make_unique<DeadCodePass>(); }
std::unique_ptr<Pass> MakeConstantToInitializerPass() {
  return std::make_unique<ConstantToInitializerPass>();
}
std::unique_ptr<Pass> MakeTopologicalSortPass() { return std::make_unique<TopologicalSortPass>(); }
std::unique_ptr<Pass> MakeGlobalPoolToReduceMeanPass() {
  return std::make_unique<GlobalPoolToReduceMeanPass>();
}

}  // namespace bertopt::passes
