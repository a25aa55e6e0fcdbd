// --float16: the model's float32 values become float16, except where a node is kept in float32.
//
//   x(f32) ─► MatMul(W) ─► Add(b) ─► Range ─► ... ─► y(f32)
//   =>
//   x(f32) ─► Cast(f16) ─► MatMul(W f16) ─► Add(b f16) ─► Cast(f32) ─► Range ─► Cast(f16) ─► ...
//          ... ─► Cast(f32) ─► y(f32)                 (keep_io_types; Range is blocked)
//
// How: (1) tell every value's element type (ONNX schemas for standard ops, a table for the
// com.microsoft ops we emit, Cast/Constant/ConstantOfShape from their attributes); (2) decide which
// nodes keep float32 (blocked), and, for ORT's CPU provider (Float16Options::cpu), which compute
// in float32 for want of a CPU float16 kernel while their weights are stored in float16; (3) give
// each float32 value its new type: a converted node's outputs become float16, the others' stay
// float32, a weight becomes float16 unless only blocked readers read it; (4) wherever a reader
// wants the other type, read a Cast, made once per value and type,
// from the value's own source when it is a Cast already (so no Cast pair is ever built);
// (5) remove the Casts that turned out to do nothing.
//
// Not handled: values inside subgraphs (a node with a subgraph keeps float32 as a whole), float64
// and bfloat16 (left as they are), and external-data tensors (optimize loads them first).
#include "passes/convert/float16.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"
#include "onnx/defs/data_type_utils.h"
#include "onnx/defs/schema.h"

namespace bertopt::passes {
namespace {

using onnx::TensorProto;
constexpr int32_t kFloat = TensorProto::FLOAT;
constexpr int32_t kHalf = TensorProto::FLOAT16;
constexpr float kHalfMax = 65504.0f;
constexpr uint16_t kHalfSmallestBits = 0x0001;  // 2^-24, the smallest float16 subnormal

// What an input slot of a node accepts once the graph is converted.
// kFloatCompute: float32 for a node that computes in float32 only for want of an ORT CPU float16
// kernel; unlike a blocked node's float32, a weight it reads may still be stored in float16.
enum class Want { kAny, kFloat, kFloatCompute, kHalf };

// Ops with a float16 kernel in ORT's CPU provider (measured with ORT 1.29 and 1.32: the model
// loads and ORT inserts no Cast around them). ORT runs the other ops in float32 between Casts it
// inserts itself, one pair per node: a float16 MiniLM ran 2.2x slower than float32 with ORT 1.29.
bool HasCpuFloat16Kernel(const ir::Node& n) {
  static const std::set<std::string> kOnnx = {"LayerNormalization",
                                              "Gather",
                                              "Transpose",
                                              "Split",
                                              "ConstantOfShape",
                                              "Reshape",
                                              "Unsqueeze",
                                              "Squeeze",
                                              "Concat",
                                              "Slice",
                                              "Expand",
                                              "Shape",
                                              "Identity",
                                              "Flatten",
                                              "Max",
                                              "Min",
                                              "Clip",
                                              "Cast",
                                              "Constant"};
  if (n.domain() == ir::kMsDomain) return n.op_type() == "SkipLayerNormalization";
  return (n.domain().empty() || n.domain() == "ai.onnx") && kOnnx.count(n.op_type()) > 0;
}

// The com.microsoft ops bertopt emits, by what their type parameter T binds: the input slots of
// type T, and per output either "same as input k" (k >= 0) or a fixed type (-1 - type).
struct ContribTyping {
  std::vector<int> t_inputs;
  std::vector<int> outputs;
};
constexpr int Fixed(int32_t type) { return -1 - type; }

const std::map<std::string, ContribTyping>& ContribOps() {
  static const std::map<std::string, ContribTyping> kOps = {
      {"Attention", {{0, 1, 2, 4, 5}, {0, 0}}},
      {"MultiHeadAttention", {{0, 1, 2, 3, 5, 6, 7}, {0, 0, 0}}},
      {"EmbedLayerNormalization", {{2, 3, 4, 5, 6}, {2, Fixed(TensorProto::INT32), 2}}},
      {"SkipLayerNormalization", {{0, 1, 2, 3, 4}, {0, Fixed(kFloat), Fixed(kFloat), 0}}},
      {"SkipSimplifiedLayerNormalization", {{0, 1, 2, 3}, {0, Fixed(kFloat), Fixed(kFloat), 0}}},
      {"BiasGelu", {{0, 1}, {0}}},
      {"Gelu", {{0}, {0}}},
      {"FastGelu", {{0, 1}, {0}}},
  };
  return kOps;
}

// LayerNormalization is ONNX from opset 17; ORT also runs it in models of older opsets, where the
// ONNX registry has no schema for it. X, Scale, B and Y are T; Mean and InvStdDev are float.
const ContribTyping kLayerNormTyping = {{0, 1, 2}, {0, Fixed(kFloat), Fixed(kFloat)}};

bool HasSubgraph(const ir::Node& node) {
  for (const auto& a : node.proto().attribute()) {
    if (a.has_g() || a.graphs_size() > 0) return true;
  }
  return false;
}

int32_t TypeOfString(const std::string* type_str) {
  const onnx::TypeProto& t = onnx::Utils::DataTypeUtils::ToTypeProto(type_str);
  return t.has_tensor_type() ? t.tensor_type().elem_type() : 0;
}

bool Allows(const onnx::OpSchema::FormalParameter& p, int32_t type) {
  for (const std::string* s : p.GetTypes()) {
    if (TypeOfString(s) == type) return true;
  }
  return false;
}

// The formal parameter behind input (or output) slot `i`, the last one repeating when variadic.
const onnx::OpSchema::FormalParameter* Formal(
    const std::vector<onnx::OpSchema::FormalParameter>& params, int i) {
  if (params.empty()) return nullptr;
  if (i < static_cast<int>(params.size())) return &params[i];
  const auto& last = params.back();
  return last.GetOption() == onnx::OpSchema::Variadic ? &last : nullptr;
}

// How the conversion sees one node.
struct NodeTyping {
  const onnx::OpSchema* schema = nullptr;  // standard ops
  const ContribTyping* table = nullptr;    // com.microsoft ops and old-opset LayerNorm
};

class Converter {
 public:
  Converter(ir::Graph& graph, const Float16Options& options) : graph_(graph), options_(options) {}

  StatusOr<Float16Report> Run() {
    RETURN_IF_ERROR(graph_.TopologicalSort());
    RETURN_IF_ERROR(CheckNodeBlockList());
    RETURN_IF_ERROR(InferTypes(graph_, types_));
    nodes_ = graph_.Nodes();
    for (ir::Node* n : nodes_) typing_[n] = TypingOf(*n);
    for (ir::Node* n : nodes_) {
      if (!TouchesFloat(*n)) continue;
      if (IsBlocked(*n)) {
        blocked_.insert(n);
        report_.blocked_nodes.push_back(fmt::format("{} ({})", n->DisplayName(), n->op_type()));
      } else if (options_.cpu && !HasCpuFloat16Kernel(*n)) {
        cpu_float32_.insert(n);
        ++report_.cpu_float32_nodes;
      }
    }
    ChooseNewTypes();
    RETURN_IF_ERROR(ConvertSources());
    RETURN_IF_ERROR(FixGraphOutputs());
    for (ir::Node* n : nodes_) {
      if (n->erased()) continue;
      for (int i = 0; i < n->num_inputs(); ++i) {
        ir::Value* v = n->input(i);
        if (!v || OriginalType(v) != kFloat) continue;
        const Want want = SlotWant(*n, i);
        if (want == Want::kAny) continue;
        const int32_t type = want == Want::kHalf ? kHalf : kFloat;  // kFloat, kFloatCompute
        if (NewType(v) != type) graph_.SetInput(n, i, GetAs(v, type));
      }
    }
    UpdateDeclaredTypes();
    graph_.RemoveDeadNodes();
    report_.casts_removed = RemoveRedundantCasts(graph_);
    graph_.RemoveDeadNodes();
    graph_.RemoveUnusedInitializers();
    RETURN_IF_ERROR(graph_.TopologicalSort());
    report_.casts_added = 0;
    for (const ir::Node* cast : graph_.NodesOfType("Cast")) {
      report_.casts_added += added_casts_.count(cast->name()) ? 1 : 0;
    }
    return report_;
  }

  // Element types of every value, from the graph's sources through each node in order.
  static Status InferTypes(const ir::Graph& graph,
                           std::unordered_map<const ir::Value*, int32_t>& types);

 private:
  static NodeTyping TypingOf(const ir::Node& n, int64_t opset) {
    NodeTyping t;
    if (n.domain() == ir::kMsDomain) {
      auto it = ContribOps().find(n.op_type());
      if (it != ContribOps().end()) t.table = &it->second;
      return t;
    }
    if (!n.domain().empty() && n.domain() != "ai.onnx") return t;
    t.schema = onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(opset), "");
    if (!t.schema && n.op_type() == "LayerNormalization") t.table = &kLayerNormTyping;
    return t;
  }
  NodeTyping TypingOf(const ir::Node& n) const { return TypingOf(n, graph_.OpsetVersion()); }

  Status CheckNodeBlockList() const {
    for (const std::string& name : options_.node_block_list) {
      bool found = false;
      for (const ir::Node* n : graph_.Nodes()) found |= n->name() == name;
      if (!found) {
        return NotFound(fmt::format(
            "--node_block_list: no node named '{}' in the optimized graph (fused nodes take new "
            "names; --verbose lists them)",
            name));
      }
    }
    return Status::Ok();
  }

  int32_t OriginalType(const ir::Value* v) const {
    auto it = types_.find(v);
    return it == types_.end() ? 0 : it->second;
  }
  int32_t NewType(const ir::Value* v) const {
    auto it = new_types_.find(v);
    return it == new_types_.end() ? OriginalType(v) : it->second;
  }

  bool TouchesFloat(const ir::Node& n) const {
    for (const ir::Value* v : n.inputs()) {
      if (v && OriginalType(v) == kFloat) return true;
    }
    for (const ir::Value* v : n.outputs()) {
      if (v && OriginalType(v) == kFloat) return true;
    }
    return false;
  }

  bool IsBlocked(const ir::Node& n) const {
    auto listed = [](const std::vector<std::string>& list, const std::string& s) {
      return std::find(list.begin(), list.end(), s) != list.end();
    };
    if (listed(options_.node_block_list, n.name())) return true;
    if (listed(DefaultFloat16OpBlockList(), n.op_type())) return true;
    if (listed(options_.op_block_list, n.op_type())) return true;
    if (n.domain() == "ai.onnx.ml" || HasSubgraph(n)) return true;
    if (n.Is("Cast") || n.Is("Constant") || n.Is("ConstantOfShape")) return false;
    const NodeTyping& t = typing_.at(&n);
    if (t.table) return false;
    if (!t.schema) return true;  // an op we cannot type: leave it as it is
    // A float slot whose type parameter is shared with other slots must allow float16.
    auto check = [&](const std::vector<onnx::OpSchema::FormalParameter>& params,
                     const std::vector<ir::Value*>& values) {
      for (int i = 0; i < static_cast<int>(values.size()); ++i) {
        if (!values[i] || OriginalType(values[i]) != kFloat) continue;
        const auto* p = Formal(params, i);
        if (!p) return true;
        if (!Allows(*p, kHalf) && IsShared(*t.schema, p->GetTypeStr())) return true;
      }
      return false;
    };
    return check(t.schema->inputs(), n.inputs()) || check(t.schema->outputs(), n.outputs());
  }

  // True when `type_str` names a type parameter used by more than one formal parameter.
  static bool IsShared(const onnx::OpSchema& s, const std::string& type_str) {
    int uses = 0;
    for (const auto& p : s.inputs()) uses += p.GetTypeStr() == type_str;
    for (const auto& p : s.outputs()) uses += p.GetTypeStr() == type_str;
    return uses > 1;
  }

  Want SlotWant(const ir::Node& n, int i) const {
    if (blocked_.count(&n)) return Want::kFloat;
    if (cpu_float32_.count(&n)) return Want::kFloatCompute;
    if (n.Is("Cast")) return Want::kAny;
    const NodeTyping& t = typing_.at(&n);
    if (t.table) {
      const auto& ti = t.table->t_inputs;
      return std::find(ti.begin(), ti.end(), i) != ti.end() ? Want::kHalf : Want::kAny;
    }
    if (!t.schema) return Want::kAny;
    const auto* p = Formal(t.schema->inputs(), i);
    if (!p) return Want::kAny;
    if (!Allows(*p, kHalf)) return Want::kFloat;  // e.g. Resize's scales: float32 only
    return IsShared(*t.schema, p->GetTypeStr()) ? Want::kHalf : Want::kAny;
  }

  // What a converted node's output `k` becomes (its original type was float32).
  int32_t ConvertedOutputType(const ir::Node& n, int k) const {
    const NodeTyping& t = typing_.at(&n);
    if (t.table) {
      if (k >= static_cast<int>(t.table->outputs.size())) return kFloat;
      const int rule = t.table->outputs[k];
      if (rule < 0) return -1 - rule;
      return SlotWant(n, rule) == Want::kHalf ? kHalf : kFloat;
    }
    if (!t.schema) return kFloat;
    const auto* out = Formal(t.schema->outputs(), k);
    if (!out) return kFloat;
    for (int i = 0; i < n.num_inputs(); ++i) {
      const auto* in = Formal(t.schema->inputs(), i);
      if (in && in->GetTypeStr() == out->GetTypeStr() && n.input(i) &&
          OriginalType(n.input(i)) == kFloat && SlotWant(n, i) == Want::kHalf) {
        return kHalf;
      }
    }
    return kFloat;
  }

  // For values whose type is free (weights, Cast and ConstantOfShape outputs): float16 unless
  // every reader that cares wants float32. A weight stays float16 for readers that compute in
  // float32 only for want of a CPU kernel: they read a Cast of it, which ORT folds at load.
  int32_t TypeByReaders(const ir::Value* v, bool weight = false) const {
    bool wants_half = false;
    bool wants_float = false;
    if (v->is_graph_output()) (options_.keep_io_types ? wants_float : wants_half) = true;
    for (const ir::Use& use : v->uses()) {
      if (use.index == ir::Use::kImplicitUse) {
        wants_float = true;
        continue;
      }
      const Want w = SlotWant(*use.node, use.index);
      wants_half |= w == Want::kHalf || (weight && w == Want::kFloatCompute);
      wants_float |= w == Want::kFloat || (!weight && w == Want::kFloatCompute);
    }
    return wants_float && !wants_half ? kFloat : kHalf;
  }

  void ChooseNewTypes() {
    for (ir::Value* in : graph_.Inputs()) {
      if (OriginalType(in) == kFloat) new_types_[in] = options_.keep_io_types ? kFloat : kHalf;
    }
    for (const auto& init : graph_.model().graph().initializer()) {
      const ir::Value* v = graph_.FindValue(init.name());
      if (v && v->initializer() && !v->is_graph_input() && init.data_type() == kFloat) {
        new_types_[v] = TypeByReaders(v, /*weight=*/true);
      }
    }
    for (ir::Node* n : nodes_) {
      for (int k = 0; k < n->num_outputs(); ++k) {
        const ir::Value* out = n->output(k);
        if (!out || OriginalType(out) != kFloat) continue;
        if (blocked_.count(n) || cpu_float32_.count(n)) {
          new_types_[out] = kFloat;
        } else if (n->Is("Constant")) {
          new_types_[out] = TypeByReaders(out, /*weight=*/true);
        } else if (n->Is("Cast") || n->Is("ConstantOfShape")) {
          new_types_[out] = TypeByReaders(out);
        } else {
          new_types_[out] = ConvertedOutputType(*n, k);
        }
      }
    }
  }

  // float32 -> float16 of one tensor, clamping what float16 cannot hold, with the report's counts.
  Status ConvertTensor(TensorProto& t, const std::string& label) {
    auto values = ir::DecodeFloats(t);
    if (!values) {
      return InvalidModel(fmt::format("--float16: cannot read the float32 values of '{}'", label));
    }
    std::string raw(values->size() * 2, '\0');
    int64_t changed = 0;
    for (size_t i = 0; i < values->size(); ++i) {
      const float f = (*values)[i];
      uint16_t h;
      bool held = true;
      if (std::isfinite(f) && std::fabs(f) > kHalfMax) {
        h = ir::FloatToHalf(std::copysign(kHalfMax, f));
        ++report_.values_clamped;
        held = false;
      } else {
        h = ir::FloatToHalf(f);
        if (f != 0 && (h & 0x7fffu) == 0) {
          h = static_cast<uint16_t>((h & 0x8000u) | kHalfSmallestBits);
          ++report_.values_raised;
          held = false;
        }
      }
      changed += held ? 0 : 1;
      if (held && std::isfinite(f) && f != 0) {
        const double rel = std::fabs(double{ir::HalfToFloat(h)} - f) / std::fabs(double{f});
        if (rel > report_.max_relative_change) {
          report_.max_relative_change = rel;
          report_.worst_tensor = label;
        }
      }
      std::memcpy(raw.data() + 2 * i, &h, 2);  // little-endian hosts only, as ONNX raw_data
    }
    if (changed > report_.most_changed_count) {
      report_.most_changed_count = changed;
      report_.most_changed_tensor = label;
    }
    t.clear_float_data();
    t.set_raw_data(std::move(raw));
    t.set_data_type(kHalf);
    ++report_.tensors_converted;
    report_.values_converted += static_cast<int64_t>(values->size());
    return Status::Ok();
  }

  // Re-adds `node` from an edited copy of its proto (attribute tensors have no setter).
  ir::Node* Replace(ir::Node* node, onnx::NodeProto proto) {
    graph_.EraseNode(node);
    ir::Node* added = graph_.AddNode(std::move(proto));
    std::replace(nodes_.begin(), nodes_.end(), node, added);
    typing_[added] = typing_[node];
    if (blocked_.erase(node)) blocked_.insert(added);
    if (cpu_float32_.erase(node)) cpu_float32_.insert(added);
    return added;
  }

  Status ConvertSources() {
    for (const auto& init : graph_.model().graph().initializer()) {
      const ir::Value* value = graph_.FindValue(init.name());
      if (!value || value->initializer() != &init || OriginalType(value) != kFloat ||
          NewType(value) != kHalf) {
        continue;
      }
      RETURN_IF_ERROR(ConvertTensor(*graph_.MutableInitializer(value), value->name()));
    }
    for (ir::Node*& n : nodes_) {
      const ir::Value* out = n->output(0);
      if (!out || NewType(out) != kHalf || OriginalType(out) != kFloat) continue;
      if (n->Is("Cast")) {
        n->SetAttr("to", int64_t{kHalf});
      } else if (n->Is("Constant") || n->Is("ConstantOfShape")) {
        onnx::NodeProto proto = n->proto();
        onnx::AttributeProto* value = nullptr;
        for (auto& a : *proto.mutable_attribute()) {
          if (a.name() == "value") value = &a;
        }
        if (!value && n->Is("ConstantOfShape")) {  // default: one float32 zero
          value = proto.add_attribute();
          value->set_name("value");
          value->set_type(onnx::AttributeProto::TENSOR);
          *value->mutable_t() = ir::MakeFloatTensor("value", {1}, {0.0f});
        }
        if (!value || !value->has_t()) {
          return InvalidModel(
              fmt::format("--float16: cannot convert the value of '{}'", n->DisplayName()));
        }
        RETURN_IF_ERROR(ConvertTensor(*value->mutable_t(), n->DisplayName()));
        n = Replace(n, std::move(proto));
      } else if (n->Is("Attention", ir::kMsDomain)) {
        // A float32 mask filter such as -3.4e38 (HF 4.x) is -inf in a float16 kernel; -65504
        // still gives masked positions zero weight after the softmax subtracts the row maximum.
        if (auto filter = n->AttrFloat("mask_filter_value"); filter && *filter < -kHalfMax) {
          n->SetAttr("mask_filter_value", -kHalfMax);
        }
      }
    }
    for (ir::Value* in : graph_.Inputs()) {
      if (OriginalType(in) == kFloat && NewType(in) == kHalf) {
        RETURN_IF_ERROR(graph_.SetGraphInputType(in, kHalf));
      }
    }
    return Status::Ok();
  }

  // Graph outputs keep their names: when an output must differ from what its producer now makes,
  // the producer writes a new value and a Cast makes the output from it.
  Status FixGraphOutputs() {
    for (ir::Value* out : graph_.Outputs()) {
      if (!out || OriginalType(out) != kFloat) continue;
      const int32_t want = options_.keep_io_types ? kFloat : kHalf;
      if (NewType(out) == want) continue;
      ir::Node* producer = out->producer();
      if (!producer) continue;  // an input or weight passed straight through keeps its type
      const std::string inner =
          graph_.UniqueName(out->name() + (want == kFloat ? "_fp16" : "_fp32"));
      onnx::NodeProto proto = producer->proto();
      proto.set_output(out->producer_output(), inner);
      Replace(producer, std::move(proto));
      ir::Value* inner_value = graph_.FindValue(inner);
      const std::vector<ir::Use> uses = out->uses();
      for (const ir::Use& use : uses) {
        if (use.index == ir::Use::kImplicitUse) {
          return FailedPrecondition(
              fmt::format("--float16: graph output '{}' is read inside a subgraph", out->name()));
        }
        graph_.SetInput(use.node, use.index, inner_value);
      }
      types_[inner_value] = kFloat;
      new_types_[inner_value] = NewType(out);
      ir::Node* cast =
          graph_.AddNode("Cast", {inner}, {out->name()}, ir::kOnnxDomain, out->name() + "_cast");
      cast->SetAttr("to", int64_t{want});
      new_types_[out] = want;
      cache_[{inner_value, want}] = out;
      added_casts_.insert(cast->name());
    }
    return Status::Ok();
  }

  // `v` as `type`: itself, a Cast made earlier, or a new Cast of v's own source.
  ir::Value* GetAs(ir::Value* v, int32_t type) {
    if (NewType(v) == type) return v;
    if (auto it = cache_.find({v, type}); it != cache_.end()) return it->second;
    ir::Value* source = v;
    if (ir::Node* p = v->producer(); p && p->Is("Cast") && p->input(0)) {
      source = p->input(0);
      if (NewType(source) == type) return cache_[{v, type}] = source;
    }
    const std::string name = graph_.UniqueName(v->name() + (type == kHalf ? "_fp16" : "_fp32"));
    ir::Node* cast = graph_.AddNode("Cast", {source->name()}, {name}, ir::kOnnxDomain, name);
    cast->SetAttr("to", int64_t{type});
    ir::Value* out = cast->output(0);
    types_[out] = kFloat;
    new_types_[out] = type;
    added_casts_.insert(cast->name());
    return cache_[{v, type}] = out;
  }

  // value_info, graph outputs: the declared element type follows the new type.
  void UpdateDeclaredTypes() {
    auto update = [&](onnx::ValueInfoProto& vi) {
      const ir::Value* v = graph_.FindValue(vi.name());
      if (!v || !vi.type().has_tensor_type()) return;
      if (OriginalType(v) == kFloat && NewType(v) != kFloat) {
        vi.mutable_type()->mutable_tensor_type()->set_elem_type(NewType(v));
      }
    };
    auto* g = graph_.model().mutable_graph();
    for (auto& vi : *g->mutable_value_info()) update(vi);
    for (auto& vi : *g->mutable_output()) update(vi);
  }

  ir::Graph& graph_;
  const Float16Options& options_;
  Float16Report report_;
  std::vector<ir::Node*> nodes_;
  std::unordered_map<const ir::Value*, int32_t> types_;
  std::unordered_map<const ir::Value*, int32_t> new_types_;
  std::unordered_map<const ir::Node*, NodeTyping> typing_;
  std::unordered_set<const ir::Node*> blocked_;
  std::unordered_set<const ir::Node*> cpu_float32_;  // options_.cpu: no float16 CPU kernel
  std::map<std::pair<const ir::Value*, int32_t>, ir::Value*> cache_;
  std::unordered_set<std::string> added_casts_;  // by node name: cleanup may re-add nodes
};

// Output types of one node from its input types; 0 where they cannot be told.
std::vector<int32_t> OutputTypes(const ir::Graph& graph, const ir::Node& n,
                                 const std::vector<int32_t>& in) {
  std::vector<int32_t> out(n.num_outputs(), 0);
  if (out.empty()) return out;
  auto input_type = [&](int i) { return i < static_cast<int>(in.size()) ? in[i] : 0; };
  if (n.Is("Cast")) {
    out[0] = static_cast<int32_t>(n.AttrInt("to").value_or(0));
  } else if (n.Is("CastLike")) {
    out[0] = input_type(1);
  } else if (n.Is("Constant")) {
    if (const onnx::TensorProto* t = graph.ConstantTensor(n.output(0))) {
      out[0] = t->data_type();
    } else if (n.Attr("value_float") || n.Attr("value_floats")) {
      out[0] = kFloat;
    } else if (n.Attr("value_int") || n.Attr("value_ints")) {
      out[0] = TensorProto::INT64;
    }
  } else if (n.Is("ConstantOfShape")) {
    const auto* a = n.Attr("value");
    out[0] = a && a->has_t() ? a->t().data_type() : kFloat;
  } else if (n.Is("EyeLike") || n.Is("RandomNormalLike") || n.Is("RandomUniformLike")) {
    out[0] = static_cast<int32_t>(n.AttrInt("dtype").value_or(input_type(0)));
  } else if (n.Is("RandomNormal") || n.Is("RandomUniform")) {
    out[0] = static_cast<int32_t>(n.AttrInt("dtype").value_or(kFloat));
  } else {
    const ContribTyping* table = nullptr;
    const onnx::OpSchema* schema = nullptr;
    if (n.domain() == ir::kMsDomain) {
      auto it = ContribOps().find(n.op_type());
      if (it != ContribOps().end()) table = &it->second;
    } else {
      const std::string domain = n.domain() == "ai.onnx" ? "" : n.domain();
      schema = onnx::OpSchemaRegistry::Schema(n.op_type(),
                                              static_cast<int>(graph.OpsetVersion(domain)), domain);
      if (!schema && n.Is("LayerNormalization")) table = &kLayerNormTyping;
    }
    if (table) {
      for (int k = 0; k < n.num_outputs() && k < static_cast<int>(table->outputs.size()); ++k) {
        const int rule = table->outputs[k];
        out[k] = rule < 0 ? -1 - rule : input_type(rule);
      }
    } else if (schema) {
      for (int k = 0; k < n.num_outputs(); ++k) {
        const auto* o = Formal(schema->outputs(), k);
        if (!o) continue;
        for (int i = 0; i < n.num_inputs() && out[k] == 0; ++i) {
          const auto* p = Formal(schema->inputs(), i);
          if (p && p->GetTypeStr() == o->GetTypeStr()) out[k] = input_type(i);
        }
        if (out[k] == 0 && o->GetTypes().size() == 1) out[k] = TypeOfString(*o->GetTypes().begin());
      }
    }
  }
  // What the model declares fills the gaps (ops we cannot type, e.g. other contrib ops).
  for (int k = 0; k < n.num_outputs(); ++k) {
    if (out[k] == 0 && n.output(k)) out[k] = graph.ElementType(n.output(k));
  }
  return out;
}

Status Converter::InferTypes(const ir::Graph& graph,
                             std::unordered_map<const ir::Value*, int32_t>& types) {
  for (const ir::Value* in : graph.Inputs()) types[in] = graph.ElementType(in);
  for (const auto& init : graph.model().graph().initializer()) {
    if (const ir::Value* v = graph.FindValue(init.name())) types[v] = init.data_type();
  }
  for (const ir::Node* n : graph.Nodes()) {
    std::vector<int32_t> in;
    for (const ir::Value* v : n->inputs()) {
      auto it = v ? types.find(v) : types.end();
      in.push_back(it == types.end() ? 0 : it->second);
    }
    const std::vector<int32_t> out = OutputTypes(graph, *n, in);
    for (int k = 0; k < n->num_outputs(); ++k) {
      if (!n->output(k)) continue;
      if (out[k] == 0 && !n->output(k)->uses().empty()) {
        return FailedPrecondition(fmt::format(
            "--float16: cannot tell the element type of '{}' (output of node '{}', op {}{}{})",
            n->output(k)->name(), n->DisplayName(), n->domain(),
            n->domain().empty() ? "" : "::", n->op_type()));
      }
      // A model whose declared types its ops contradict (a Reshape missing its data input, say)
      // cannot be converted consistently: readers would follow one type and the graph the other.
      const int32_t declared = graph.ElementType(n->output(k));
      if (out[k] != 0 && declared != 0 && declared != out[k]) {
        return InvalidModel(fmt::format(
            "--float16: '{}' is declared {}, but node '{}' ({}) computes {} from its inputs",
            n->output(k)->name(), TensorProto::DataType_Name(declared), n->DisplayName(),
            n->op_type(), TensorProto::DataType_Name(out[k])));
      }
      types[n->output(k)] = out[k];
    }
  }
  return Status::Ok();
}

// True when every value of type `from` is exactly a value of type `to`.
bool Widens(int32_t from, int32_t to) {
  using T = TensorProto;
  if (from == to) return true;
  static const std::map<int32_t, std::set<int32_t>> kExact = {
      {T::BOOL,
       {T::INT8, T::UINT8, T::INT16, T::UINT16, T::INT32, T::UINT32, T::INT64, T::UINT64,
        T::FLOAT16, T::FLOAT, T::DOUBLE}},
      {T::INT8, {T::INT16, T::INT32, T::INT64, T::FLOAT16, T::FLOAT, T::DOUBLE}},
      {T::UINT8,
       {T::INT16, T::UINT16, T::INT32, T::UINT32, T::INT64, T::UINT64, T::FLOAT16, T::FLOAT,
        T::DOUBLE}},
      {T::INT16, {T::INT32, T::INT64, T::FLOAT, T::DOUBLE}},
      {T::UINT16, {T::INT32, T::UINT32, T::INT64, T::UINT64, T::FLOAT, T::DOUBLE}},
      {T::INT32, {T::INT64, T::DOUBLE}},
      {T::UINT32, {T::INT64, T::UINT64, T::DOUBLE}},
      {T::FLOAT16, {T::FLOAT, T::DOUBLE}},
      {T::FLOAT, {T::DOUBLE}},
  };
  auto it = kExact.find(from);
  return it != kExact.end() && it->second.count(to);
}

}  // namespace

const std::vector<std::string>& DefaultFloat16OpBlockList() {
  // Range, CumSum: positions and counts, exact only below 2048 in float16. TopK,
  // NonMaxSuppression, RoiAlign: ranking and box coordinates. Upsample, Resize: no float16
  // kernel in ORT on CPU for every mode. ai.onnx.ml ops are blocked by domain.
  static const std::vector<std::string> kList = {
      "Range", "CumSum", "TopK", "NonMaxSuppression", "RoiAlign", "Upsample", "Resize"};
  return kList;
}

StatusOr<Float16Report> ConvertToFloat16(ir::Graph& graph, const Float16Options& options) {
  for (const auto* list : {&options.op_block_list, &options.node_block_list}) {
    for (const std::string& name : *list) {
      if (name.empty()) {
        return InvalidArgument(
            fmt::format("--{}: empty name in the list",
                        list == &options.op_block_list ? "op_block_list" : "node_block_list"));
      }
    }
  }
  Converter converter(graph, options);
  return converter.Run();
}

int RemoveRedundantCasts(ir::Graph& graph) {
  const int before = static_cast<int>(graph.NodesOfType("Cast").size());
  for (bool changed = true; changed;) {
    changed = false;
    std::unordered_map<const ir::Value*, int32_t> types;
    if (!Converter::InferTypes(graph, types).ok()) break;
    auto type_of = [&](const ir::Value* v) {
      auto it = types.find(v);
      return it == types.end() ? 0 : it->second;
    };
    for (ir::Node* cast : graph.NodesOfType("Cast")) {
      ir::Value* x = cast->input(0);
      ir::Value* y = cast->output(0);
      if (!x || !y || type_of(x) == 0) continue;
      const int32_t to = static_cast<int32_t>(cast->AttrInt("to").value_or(0));
      // Cast(Cast(w, to=X), to=A) where the inner one is exact: Cast(w, to=A).
      if (ir::Node* inner = x->producer(); inner && inner->Is("Cast") && inner->input(0) &&
                                           type_of(inner->input(0)) != 0 &&
                                           Widens(type_of(inner->input(0)), type_of(x))) {
        graph.SetInput(cast, 0, inner->input(0));
        graph.RemoveDeadNodes();
        changed = true;
        break;  // types changed: recompute
      }
      if (type_of(x) != to) continue;
      if (!y->is_graph_output()) {
        if (!graph.ReplaceAllUses(y, x).ok()) continue;
        graph.EraseNode(cast);
        changed = true;
        break;
      }
      // The output keeps its name: its input's producer writes it directly when nothing else
      // reads the input.
      ir::Node* producer = x->producer();
      if (!producer || x->is_graph_output() || x->uses().size() != 1) continue;
      onnx::NodeProto rewired = producer->proto();
      rewired.set_output(x->producer_output(), y->name());
      graph.EraseNode(cast);
      graph.EraseNode(producer);
      graph.AddNode(std::move(rewired));
      changed = true;
      break;
    }
  }
  return before - static_cast<int>(graph.NodesOfType("Cast").size());
}

}  // namespace bertopt::passes
