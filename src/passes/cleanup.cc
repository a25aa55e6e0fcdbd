#include "passes/cleanup.h"

#include <map>
#include <optional>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"
#include "passes/symbolic_dims.h"

namespace bertopt::passes {
namespace {

class RemoveIdentityPass : public Pass {
 public:
  std::string_view name() const override { return "remove_identity"; }
  Status Run(const PassOptions&, ir::Graph& graph, PassStats& stats) const override {
    std::vector<ir::Node*> nodes = graph.NodesOfType("Identity");
    for (ir::Node* t : graph.NodesOfType("Transpose")) {
      // perm = [0, 1, ..] (dynamo's unoptimized exports) moves nothing.
      const auto perm = t->AttrInts("perm");
      bool identity = perm.has_value();
      for (size_t i = 0; identity && i < perm->size(); ++i) identity = (*perm)[i] == int64_t(i);
      if (identity) nodes.push_back(t);
    }
    for (ir::Node* node : nodes) {
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

// Transpose(W, perm=[1, 0]) of a 2-D initializer -> the transposed initializer.
//   I:W[out, in] ─► Transpose[1,0] ─► MatMul(x, ·)   =>   MatMul(x, I:W_t[in, out])
// dynamo's unoptimized export keeps torch's [out, in] Linear weights and transposes them in the
// graph; every fusion reads [in, out] constants. Only when every reader of W is such a Transpose:
// W then goes, so nothing is duplicated, and a weight shared by several layers (ALBERT) is
// transposed once. Bytes are moved, not converted: exact for every element type.
class TransposedWeightsPass : public Pass {
 public:
  std::string_view name() const override { return "transposed_weights"; }
  Status Run(const PassOptions&, ir::Graph& graph, PassStats& stats) const override {
    std::map<const ir::Value*, ir::Value*> transposed;
    for (ir::Node* t : graph.NodesOfType("Transpose")) {
      ir::Value* w = t->input(0);
      if (!w || !w->initializer() || w->is_graph_input() || !IsSwap(*t) ||
          t->output(0)->is_graph_output()) {
        continue;
      }
      ++stats.candidates;
      ir::Value*& wt = transposed[w];
      if (!wt) {
        std::string why = Transposable(*w);
        if (!why.empty()) {
          stats.misses.push_back(fmt::format("{}: {}", t->DisplayName(), why));
          continue;
        }
        std::optional<onnx::TensorProto> t_tensor =
            Transpose2d(*w->initializer(), graph.UniqueName(w->name() + "_t"));
        if (!t_tensor) {
          stats.misses.push_back(
              fmt::format("{}: '{}' cannot be read", t->DisplayName(), w->name()));
          continue;
        }
        wt = graph.AddInitializer(*std::move(t_tensor));
      }
      RETURN_IF_ERROR(graph.ReplaceAllUses(t->output(0), wt));
      graph.EraseNode(t);
      if (w->uses().empty() && !w->is_graph_output()) graph.RemoveInitializer(w);
      ++stats.fused;
    }
    return Status::Ok();
  }

 private:
  static bool IsSwap(const ir::Node& t) {
    return t.AttrInts("perm") == std::vector<int64_t>{1, 0} ||
           (!t.Attr("perm") && t.input(0)->initializer()->dims_size() == 2);
  }
  // Why W cannot be replaced by its transpose without keeping a copy.
  static std::string Transposable(const ir::Value& w) {
    const onnx::TensorProto& tensor = *w.initializer();
    if (tensor.dims_size() != 2 || ir::ElementSize(tensor.data_type()) <= 0) {
      return fmt::format("'{}' is not a 2-D tensor of a fixed-size type", w.name());
    }
    for (const ir::Use& use : w.uses()) {
      if (use.index == ir::Use::kImplicitUse || !use.node->Is("Transpose") || !IsSwap(*use.node)) {
        return fmt::format("'{}' is also read untransposed, by {}", w.name(),
                           use.node->DisplayName());
      }
    }
    return {};
  }
  static std::optional<onnx::TensorProto> Transpose2d(const onnx::TensorProto& w,
                                                      std::string name) {
    const int64_t rows = w.dims(0);
    const int64_t cols = w.dims(1);
    const size_t size = static_cast<size_t>(ir::ElementSize(w.data_type()));
    const std::optional<std::string> bytes = ir::PayloadBytes(w);
    if (!bytes) return std::nullopt;
    std::string out(bytes->size(), '\0');
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        out.replace((c * rows + r) * size, size, *bytes, (r * cols + c) * size, size);
      }
    }
    onnx::TensorProto t;
    t.set_name(std::move(name));
    t.set_data_type(w.data_type());
    t.add_dims(cols);
    t.add_dims(rows);
    t.set_raw_data(std::move(out));
    return t;
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
std::unique_ptr<Pass> MakeTransposedWeightsPass() {
  return std::make_unique<TransposedWeightsPass>();
}

std::unique_ptr<Pass> MakeTopologicalSortPass() { return std::make_unique<TopologicalSortPass>(); }
std::unique_ptr<Pass> MakeGlobalPoolToReduceMeanPass() {
  return std::make_unique<GlobalPoolToReduceMeanPass>();
}

}  // namespace bertopt::passes
