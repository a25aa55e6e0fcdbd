// Dynamic int8 quantization: Attention -> QAttention, MatMul -> DynamicQuantizeMatMul or
// MatMulIntegerToFloat (diagrams and what stays float in quantize.h).
#include "passes/convert/quantize.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "bertopt/ir/graph.h"
#include "bertopt/ir/tensor.h"
#include "bertopt/passes/pass.h"
#include "fmt/format.h"
#include "onnx/defs/schema.h"

namespace bertopt::passes {
namespace {

constexpr float kInt8Max = 127;  // symmetric: -128 is never used, so -q is always representable

/// ai.onnx opset that introduced DynamicQuantizeLinear (QAttention's input needs it).
constexpr int64_t kDynamicQuantizeLinearOpset = 11;

/// ai.onnx ops whose opset-11 version only extends the opset-10 one (negative axes, more input
/// types, an optional input, new attributes whose defaults keep the old behaviour), so a model of
/// opset 10 computes the same when it imports 11. Not here, so a reason to keep opset 10: Clip,
/// Pad and Resize (inputs changed), OneHot (negative indices wrap), the pooling and convolution
/// ops, Scatter, and If / Loop / Scan (their bodies are not checked).
const std::unordered_set<std::string>& ExtendedAt11() {
  static const std::unordered_set<std::string> kOps = {
      "ArgMax",     "ArgMin",    "Compress",   "Concat",       "Constant",        "DepthToSpace",
      "Equal",      "Flatten",   "Gather",     "Gemm",         "Hardmax",         "LogSoftmax",
      "Softmax",    "ReduceL1",  "ReduceL2",   "ReduceLogSum", "ReduceLogSumExp", "ReduceMax",
      "ReduceMean", "ReduceMin", "ReduceProd", "ReduceSum",    "ReduceSumSquare", "Slice",
      "Split",      "Squeeze",   "TopK",       "Unsqueeze"};
  return kOps;
}

/// Attention attributes that QAttention (ORT 1.29) reads with the same meaning.
const std::unordered_set<std::string>& QAttentionAttributes() {
  static const std::unordered_set<std::string> kAttrs = {"num_heads", "scale", "mask_filter_value",
                                                         "unidirectional"};
  return kAttrs;
}

std::map<std::string, int> CountOps(const onnx::GraphProto& g) {
  std::map<std::string, int> counts;
  for (const auto& node : g.node()) ++counts[node.op_type()];
  return counts;
}

/// A weight after symmetric int8 rounding: q = round(w / s), s = max|w| / 127 per column or over
/// the whole tensor, and how far dequantized values are from the originals.
struct Int8Weight {
  std::vector<int8_t> values;
  std::vector<float> scales;
  double relative_rms_error = 0;
  double max_abs_error = 0;
};

Int8Weight QuantizeSymmetric(const std::vector<float>& w, int64_t rows, int64_t cols,
                             bool per_channel) {
  Int8Weight q;
  const int64_t groups = per_channel ? cols : 1;
  std::vector<float> amax(groups, 0.0f);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      float& m = amax[per_channel ? c : 0];
      m = std::max(m, std::fabs(w[r * cols + c]));
    }
  }
  q.scales.resize(groups);
  for (int64_t g = 0; g < groups; ++g) q.scales[g] = amax[g] > 0 ? amax[g] / kInt8Max : 1.0f;
  q.values.resize(w.size());
  double err2 = 0;
  double norm2 = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      const float s = q.scales[per_channel ? c : 0];
      // nearbyint rounds half to even, as ORT's QuantizeLinear does.
      const float v = std::clamp(std::nearbyint(w[i] / s), -kInt8Max, kInt8Max);
      q.values[i] = static_cast<int8_t>(v);
      const double d = static_cast<double>(w[i]) - static_cast<double>(v) * s;
      err2 += d * d;
      norm2 += static_cast<double>(w[i]) * w[i];
      q.max_abs_error = std::max(q.max_abs_error, std::fabs(d));
    }
  }
  q.relative_rms_error = norm2 > 0 ? std::sqrt(err2 / norm2) : 0;
  return q;
}

onnx::TensorProto MakeInt8Tensor(const std::string& name, const std::vector<int64_t>& dims,
                                 const std::vector<int8_t>& values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::INT8);
  for (int64_t d : dims) t.add_dims(d);
  t.set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size()));
  return t;
}

std::string TypeName(int32_t type) {
  const auto* descriptor = onnx::TensorProto::DataType_descriptor();
  const auto* value = descriptor->FindValueByNumber(type);
  return value ? value->name() : std::to_string(type);
}

class Quantizer {
 public:
  Quantizer(ir::Graph& graph, const QuantizeOptions& options, QuantizeReport& report)
      : graph_(graph),
        options_(options),
        report_(report),
        exclude_(options.exclude.begin(), options.exclude.end()) {}

  Status CheckExcludeNames() const {
    std::unordered_set<std::string> known;
    for (const ir::Node* node : graph_.Nodes()) known.insert(node->name());
    for (const auto& init : graph_.model().graph().initializer()) known.insert(init.name());
    for (const std::string& name : options_.exclude) {
      if (!known.count(name)) {
        return InvalidArgument(fmt::format(
            "--int8_exclude: '{}' names no node and no initializer of the model", name));
      }
    }
    return Status::Ok();
  }

  void Run() {
    for (ir::Node* node : graph_.Nodes()) {
      if (node->erased()) continue;
      std::string reason;
      if (node->Is("Attention", ir::kMsDomain)) {
        reason = TryAttention(node);
        if (reason.empty()) ++report_.attention_quantized;
      } else if (node->Is("MatMul")) {
        reason = TryMatMul(node);
        if (reason.empty()) ++report_.matmul_quantized;
      } else {
        continue;
      }
      if (!reason.empty())
        report_.kept_float.push_back({node->DisplayName(), node->op_type(), reason});
    }
    for (ir::Node* node : graph_.Nodes()) {
      if (node->domain() == ir::kMsDomain) {
        graph_.EnsureOpsetImport(ir::kMsDomain, 1);
        break;
      }
    }
  }

 private:
  /// QuantizedNode::key of a candidate.
  static std::string Key(const ir::Node* node) {
    if (!node->name().empty() || !node->input(1)) return node->name();
    return node->input(1)->name();
  }

  void RecordQuantized(const ir::Node* node) {
    report_.quantized.push_back(
        {Key(node), node->op_type(), node->input(0)->name(), node->input(1)->name()});
  }

  bool Excluded(const ir::Node* node, const ir::Value* weight) const {
    return exclude_.count(node->name()) || (weight && exclude_.count(weight->name()));
  }

  /// Why `weight` cannot be quantized ("" when it can): it must be a constant float32 2-D tensor
  /// of finite values.
  std::string WeightProblem(const ir::Value* weight) const {
    if (!weight) return "it has no weight input";
    const onnx::TensorProto* t = graph_.ConstantTensor(weight);
    if (!t) return fmt::format("weight '{}' is not a constant", weight->name());
    if (t->data_type() != onnx::TensorProto::FLOAT) {
      return fmt::format("weight '{}' is {}, not float32", weight->name(),
                         TypeName(t->data_type()));
    }
    if (t->dims_size() != 2) {
      return fmt::format("weight '{}' has rank {}, not 2", weight->name(), t->dims_size());
    }
    return "";
  }

  /// An activation input must be float32 (or of unknown type, then the weight's type decides).
  std::string ActivationProblem(const ir::Value* x) const {
    if (!x) return "it has no input";
    const int32_t type = graph_.ElementType(x);
    if (type != 0 && type != onnx::TensorProto::FLOAT) {
      return fmt::format("input '{}' is {}, not float32", x->name(), TypeName(type));
    }
    return "";
  }

  /// Why a MatMul or Attention (activation input 0, weight input 1) stays float, before anything
  /// op-specific: excluded, or a weight or input of the wrong kind ("" when none of these).
  std::string CandidateProblem(const ir::Node* node) const {
    if (Excluded(node, node->input(1))) return "excluded by --int8_exclude";
    if (auto it = options_.keep_float.find(Key(node)); it != options_.keep_float.end()) {
      return it->second;
    }
    if (std::string p = WeightProblem(node->input(1)); !p.empty()) return p;
    return ActivationProblem(node->input(0));
  }

  /// The int8 values and scale of `weight` as initializers (made once per weight and shared by
  /// every node that reads it), with the rounding error recorded in the report. nullopt (and
  /// `reason` set) when the payload cannot be read or is not finite.
  struct Int8Names {
    std::string values;
    std::string scale;
  };
  std::optional<Int8Names> Int8(const ir::Value* weight, const ir::Node* reader,
                                std::string_view op, std::string& reason) {
    if (auto it = int8_.find(weight->name()); it != int8_.end()) return it->second;
    const onnx::TensorProto* t = graph_.ConstantTensor(weight);
    auto floats = ir::DecodeFloats(*t);
    if (!floats) {
      reason =
          fmt::format("weight '{}' cannot be decoded (external or malformed data)", weight->name());
      return std::nullopt;
    }
    for (float v : *floats) {
      if (!std::isfinite(v)) {
        reason = fmt::format("weight '{}' holds a non-finite value", weight->name());
        return std::nullopt;
      }
    }
    const std::vector<int64_t> dims(t->dims().begin(), t->dims().end());
    const Int8Weight q = QuantizeSymmetric(*floats, dims[0], dims[1], options_.per_channel);
    if (options_.max_weight_error > 0 && q.relative_rms_error > options_.max_weight_error) {
      reason = fmt::format(
          "weight '{}' would lose {:.2f} % in int8 (relative RMS), more than --int8_max_error "
          "{:.2f} %",
          weight->name(), 100 * q.relative_rms_error, 100 * options_.max_weight_error);
      return std::nullopt;
    }
    const int64_t scale_count = static_cast<int64_t>(q.scales.size());
    Int8Names names;
    names.values =
        graph_.AddInitializer(MakeInt8Tensor(weight->name() + "_int8", dims, q.values))->name();
    const std::vector<int64_t> scale_dims =
        options_.per_channel ? std::vector<int64_t>{scale_count} : std::vector<int64_t>{};
    names.scale =
        graph_.AddInitializer(ir::MakeFloatTensor(weight->name() + "_scale", scale_dims, q.scales))
            ->name();
    report_.weights.push_back({weight->name(), reader->DisplayName(), std::string(op), dims,
                               options_.per_channel, q.relative_rms_error, q.max_abs_error});
    report_.float_weight_bytes += static_cast<int64_t>(floats->size() * sizeof(float));
    report_.int8_weight_bytes += static_cast<int64_t>(q.values.size() + 4 * q.scales.size());
    int8_.emplace(weight->name(), names);
    return names;
  }

  /// DynamicQuantizeLinear of `x` (one per activation, shared): its uint8 values, scale and zero
  /// point.
  std::array<std::string, 3> QuantizedActivation(const ir::Value* x, const ir::Node* reader) {
    if (auto it = activations_.find(x->name()); it != activations_.end()) return it->second;
    const std::string base = x->name();
    std::array<std::string, 3> out = {graph_.UniqueName(base + "_uint8"),
                                      graph_.UniqueName(base + "_scale"),
                                      graph_.UniqueName(base + "_zero_point")};
    graph_.AddNode("DynamicQuantizeLinear", {x->name()}, {out[0], out[1], out[2]}, ir::kOnnxDomain,
                   FusedNodeName(*reader, "DynamicQuantizeLinear"));
    activations_.emplace(x->name(), out);
    return out;
  }

  /// Makes the model import an ai.onnx opset with DynamicQuantizeLinear (11), raising opset 10 to
  /// 11 when every op of the model means the same there; else says why not (`user` needs it).
  std::string NeedDynamicQuantizeLinear(std::string_view user) {
    const int64_t opset = graph_.OpsetVersion();
    if (opset >= kDynamicQuantizeLinearOpset) return "";
    if (!opset_problem_) opset_problem_ = OpsetRaiseProblem(opset);
    if (!opset_problem_->empty()) {
      return fmt::format(
          "the model imports ai.onnx opset {} and {}; the DynamicQuantizeLinear "
          "that feeds {} needs {}",
          opset, *opset_problem_, user, kDynamicQuantizeLinearOpset);
    }
    for (auto& import : *graph_.model().mutable_opset_import()) {
      if (import.domain().empty() || import.domain() == "ai.onnx") {
        import.set_version(kDynamicQuantizeLinearOpset);
      }
    }
    report_.opset_raised_from = opset;
    return "";
  }

  /// Why opset `opset` cannot be raised to 11 without changing what an op computes ("" if it can).
  std::string OpsetRaiseProblem(int64_t opset) const {
    if (opset != kDynamicQuantizeLinearOpset - 1) return "raising it to 11 is checked from 10 only";
    for (const ir::Node* node : graph_.Nodes()) {
      if (!node->domain().empty() && node->domain() != "ai.onnx") continue;
      const auto* before = onnx::OpSchemaRegistry::Schema(node->op_type(), opset);
      const auto* after =
          onnx::OpSchemaRegistry::Schema(node->op_type(), kDynamicQuantizeLinearOpset);
      // Neither defined (an op ORT registers itself, e.g. LayerNormalization before 17), or one
      // definition for both versions: the same meaning.
      if (!before && !after) continue;
      if (before && after && before->since_version() == after->since_version()) continue;
      if (ExtendedAt11().count(node->op_type())) continue;
      return fmt::format("its {} ({}) changed meaning at 11", node->op_type(), node->DisplayName());
    }
    return "";
  }

  /// Erases `node` and a Constant that produced `weight` when nothing else reads it.
  void Erase(ir::Node* node, ir::Value* weight) {
    graph_.EraseNode(node);
    ir::Node* producer = weight ? weight->producer() : nullptr;
    if (producer && producer->Is("Constant") && weight->uses().empty() &&
        !weight->is_graph_output()) {
      graph_.EraseNode(producer);
    }
  }

  std::string TryAttention(ir::Node* attention) {
    ir::Value* x = attention->input(0);
    ir::Value* weight = attention->input(1);
    if (std::string p = CandidateProblem(attention); !p.empty()) return p;
    for (int i = 4; i < attention->num_inputs(); ++i) {
      if (attention->input(i)) {
        return fmt::format(
            "input {} ('{}', past state or attention bias) has no QAttention "
            "counterpart",
            i, attention->input(i)->name());
      }
    }
    if (attention->output(1)) return "its present output has no QAttention counterpart";
    for (const auto& attr : attention->proto().attribute()) {
      if (!QAttentionAttributes().count(attr.name())) {
        return fmt::format("attribute '{}' has no QAttention counterpart", attr.name());
      }
    }
    const onnx::TensorProto* w = graph_.ConstantTensor(weight);
    if (w->dims(1) % 3 != 0) {
      return fmt::format("weight '{}' has {} columns, not 3 equal Q, K, V parts", weight->name(),
                         w->dims(1));
    }
    if (std::string p = NeedDynamicQuantizeLinear("QAttention"); !p.empty()) return p;
    std::string reason;
    auto int8 = Int8(weight, attention, "QAttention", reason);
    if (!int8) return reason;

    std::string bias = attention->input(2) ? attention->input(2)->name() : "";
    if (bias.empty()) {  // QAttention requires one
      bias = graph_
                 .AddInitializer(ir::MakeFloatTensor(weight->name() + "_zero_bias", {w->dims(1)},
                                                     std::vector<float>(w->dims(1), 0.0f)))
                 ->name();
    }
    const auto [x_q, x_scale, x_zero_point] = QuantizedActivation(x, attention);
    const std::string mask = attention->input(3) ? attention->input(3)->name() : "";

    onnx::NodeProto q;
    q.set_op_type("QAttention");
    q.set_domain(std::string(ir::kMsDomain));
    q.set_name(FusedNodeName(*attention, "QAttention"));
    for (const std::string& in :
         {x_q, int8->values, bias, x_scale, int8->scale, mask, x_zero_point}) {
      q.add_input(in);
    }
    q.add_output(attention->output(0)->name());
    *q.mutable_attribute() = attention->proto().attribute();
    RecordQuantized(attention);
    Erase(attention, weight);
    graph_.AddNode(std::move(q));
    return "";
  }

  /// The Add that adds a 1-D constant float bias of `columns` to `product` and is its only
  /// reader, or nullptr.
  ir::Node* BiasAdd(const ir::Value* product, int64_t columns, ir::Value** bias) const {
    if (product->is_graph_output() || product->uses().size() != 1) return nullptr;
    const ir::Use use = product->uses()[0];
    if (!use.node->Is("Add") || use.node->num_inputs() != 2) return nullptr;
    ir::Value* other = use.node->input(1 - use.index);
    const onnx::TensorProto* t = graph_.ConstantTensor(other);
    if (!t || other == product || t->data_type() != onnx::TensorProto::FLOAT ||
        t->dims_size() != 1 || t->dims(0) != columns) {
      return nullptr;
    }
    *bias = other;
    return use.node;
  }

  std::string TryMatMul(ir::Node* matmul) {
    ir::Value* a = matmul->input(0);
    ir::Value* weight = matmul->input(1);
    if (std::string p = CandidateProblem(matmul); !p.empty()) return p;
    const bool integer_to_float = options_.matmul_form == MatMulForm::kMatMulIntegerToFloat;
    if (integer_to_float) {
      if (std::string p = NeedDynamicQuantizeLinear("MatMulIntegerToFloat"); !p.empty()) return p;
    }
    std::string reason;
    auto int8 = Int8(weight, matmul, MatMulFormName(options_.matmul_form), reason);
    if (!int8) return reason;

    const int64_t columns = graph_.ConstantTensor(weight)->dims(1);
    ir::Value* bias = nullptr;
    ir::Node* add = BiasAdd(matmul->output(0), columns, &bias);
    const std::string output = add ? add->output(0)->name() : matmul->output(0)->name();
    const std::string bias_name = bias ? bias->name() : "";
    const std::string op(MatMulFormName(options_.matmul_form));
    std::vector<std::string> inputs;
    if (integer_to_float) {
      const auto [a_q, a_scale, a_zero_point] = QuantizedActivation(a, matmul);
      inputs = {a_q, int8->values, a_scale, int8->scale, a_zero_point, "", bias_name};
    } else {
      inputs = {a->name(), int8->values, int8->scale, "", bias_name};
    }
    while (inputs.back().empty()) inputs.pop_back();
    const std::string name = FusedNodeName(*matmul, op);
    if (add) {
      graph_.EraseNode(add);
      ++report_.biases_folded;
    }
    RecordQuantized(matmul);
    Erase(matmul, weight);
    graph_.AddNode(op, inputs, {output}, ir::kMsDomain, name);
    return "";
  }

  ir::Graph& graph_;
  const QuantizeOptions& options_;
  QuantizeReport& report_;
  std::unordered_set<std::string> exclude_;
  std::unordered_map<std::string, Int8Names> int8_;
  std::unordered_map<std::string, std::array<std::string, 3>> activations_;
  std::optional<std::string> opset_problem_;  // OpsetRaiseProblem, computed once
};

}  // namespace

StatusOr<QuantizeReport> Quantize(onnx::ModelProto& model, const QuantizeOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  QuantizeReport report;
  report.ops_before = CountOps(model.graph());
  report.nodes_before = model.graph().node_size();
  ASSIGN_OR_RETURN(auto graph, ir::Graph::Build(&model));
  Quantizer quantizer(*graph, options, report);
  Status names = quantizer.CheckExcludeNames();
  if (!names.ok()) {
    graph->Commit();  // nothing changed; give the nodes back to the model
    return names;
  }
  quantizer.Run();
  graph->RemoveUnusedInitializers();
  Status sorted = graph->TopologicalSort();
  graph->Commit();
  RETURN_IF_ERROR(sorted);
  report.ops_after = CountOps(model.graph());
  report.nodes_after = model.graph().node_size();
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

std::vector<float> RoundTripInt8(const std::vector<float>& w, int64_t rows, int64_t cols,
                                 bool per_channel) {
  const Int8Weight q = QuantizeSymmetric(w, rows, cols, per_channel);
  std::vector<float> out(w.size());
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      const int64_t i = r * cols + c;
      out[i] = static_cast<float>(q.values[i]) * q.scales[per_channel ? c : 0];
    }
  }
  return out;
}

bool IsInt8Op(std::string_view op_type) {
  return op_type == "QAttention" || op_type == "DynamicQuantizeMatMul" ||
         op_type == "MatMulIntegerToFloat" || op_type == "DynamicQuantizeLinear" ||
         op_type == "MatMulInteger";
}

StatusOr<MatMulForm> ParseMatMulForm(std::string_view text) {
  if (text == "DynamicQuantizeMatMul") return MatMulForm::kDynamicQuantizeMatMul;
  if (text == "MatMulIntegerToFloat") return MatMulForm::kMatMulIntegerToFloat;
  return InvalidArgument(fmt::format(
      "--matmul_form {}: unknown (choose DynamicQuantizeMatMul or MatMulIntegerToFloat)", text));
}

std::string_view MatMulFormName(MatMulForm form) {
  return form == MatMulForm::kMatMulIntegerToFloat ? "MatMulIntegerToFloat"
                                                   : "DynamicQuantizeMatMul";
}

}  // namespace bertopt::passes
