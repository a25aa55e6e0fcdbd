#include "ort/bert_inputs.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <limits>
#include <map>
#include <set>

namespace bertopt::ort {
namespace {

constexpr const char* kMsDomain = "com.microsoft";

bool IsMsOp(const onnx::NodeProto& node, const char* op) {
  return node.op_type() == op && node.domain() == kMsDomain;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

/// Producers, consumers and constant tables of one graph, built once per query.
class GraphIndex {
 public:
  explicit GraphIndex(const onnx::GraphProto& graph) : graph_(graph) {
    std::set<std::string> initializers;
    for (const auto& init : graph.initializer()) {
      initializers.insert(init.name());
      tables_[init.name()] = &init;
    }
    // Old exporters list initializers as graph inputs too; those are weights, not feeds.
    for (const auto& input : graph.input()) {
      if (initializers.count(input.name()) == 0) inputs_.push_back(input.name());
    }
    for (const auto& node : graph.node()) {
      for (const auto& out : node.output()) producer_[out] = &node;
      for (int i = 0; i < node.input_size(); ++i) {
        if (!node.input(i).empty()) consumers_[node.input(i)].push_back({&node, i});
      }
      if (node.op_type() == "Constant" && node.domain().empty() && node.output_size() == 1) {
        for (const auto& attr : node.attribute()) {
          if (attr.name() == "value" && attr.has_t()) tables_[node.output(0)] = &attr.t();
        }
      }
    }
  }

  const std::vector<std::string>& inputs() const { return inputs_; }
  bool IsInput(const std::string& name) const {
    return std::find(inputs_.begin(), inputs_.end(), name) != inputs_.end();
  }

  /// Follows `name` back through Cast nodes; the graph input it comes from, or "".
  std::string TraceBackThroughCast(std::string name) const {
    for (int guard = 0; guard < 16; ++guard) {
      if (IsInput(name)) return name;
      auto it = producer_.find(name);
      if (it == producer_.end() || it->second->op_type() != "Cast" ||
          it->second->input_size() < 1) {
        return "";
      }
      name = it->second->input(0);
    }
    return "";
  }

  struct Use {
    const onnx::NodeProto* node;
    int input_index;
  };

  /// The uses of `name`, looking through Cast nodes to what consumes their outputs.
  std::vector<Use> UsesThroughCast(const std::string& name) const {
    std::vector<Use> uses;
    std::function<void(const std::string&, int)> visit = [&](const std::string& value, int depth) {
      auto it = consumers_.find(value);
      if (it == consumers_.end()) return;
      for (const Use& use : it->second) {
        if (use.node->op_type() == "Cast" && use.node->domain().empty() && depth < 16) {
          for (const auto& out : use.node->output()) visit(out, depth + 1);
        } else {
          uses.push_back(use);
        }
      }
    };
    visit(name, 0);
    return uses;
  }

  /// Rows (first dimension) of a constant table, or nullopt when it is not a known constant.
  std::optional<int64_t> TableRows(const std::string& name) const {
    auto it = tables_.find(name);
    if (it == tables_.end() || it->second->dims_size() < 1) return std::nullopt;
    return it->second->dims(0);
  }

  /// The EmbedLayerNormalization nodes of a fused model.
  std::vector<const onnx::NodeProto*> EmbedLayerNorms() const {
    std::vector<const onnx::NodeProto*> nodes;
    for (const auto& node : graph_.node()) {
      if (IsMsOp(node, "EmbedLayerNormalization")) nodes.push_back(&node);
    }
    return nodes;
  }

 private:
  const onnx::GraphProto& graph_;
  std::vector<std::string> inputs_;
  std::map<std::string, const onnx::NodeProto*> producer_;
  std::map<std::string, std::vector<Use>> consumers_;
  std::map<std::string, const onnx::TensorProto*> tables_;
};

enum class Role { kIds, kSegment, kMask };

const char* RoleName(Role role) {
  switch (role) {
    case Role::kIds:
      return "input_ids";
    case Role::kSegment:
      return "segment_ids";
    case Role::kMask:
      return "input_mask";
  }
  return "?";
}

/// The role → input assignment being built, refusing to give a role or an input twice.
class Assignment {
 public:
  Assignment(const GraphIndex& index, std::vector<std::string>* how) : index_(index), how_(how) {}

  bool RoleFree(Role role) const { return Get(role).empty(); }
  bool InputFree(const std::string& name) const {
    return !name.empty() && index_.IsInput(name) && role_of_.count(name) == 0;
  }
  std::vector<std::string> FreeInputs() const {
    std::vector<std::string> free;
    for (const auto& name : index_.inputs()) {
      if (role_of_.count(name) == 0) free.push_back(name);
    }
    return free;
  }

  /// Assigns when both the role and the input are still free; returns whether it did.
  bool Assign(Role role, const std::string& name, const std::string& reason) {
    if (!RoleFree(role) || !InputFree(name)) return false;
    Get(role) = name;
    role_of_[name] = role;
    if (how_ != nullptr)
      how_->push_back(fmt::format("{}: '{}' ({})", RoleName(role), name, reason));
    return true;
  }

  const BertInputs& result() const { return result_; }

 private:
  std::string& Get(Role role) {
    switch (role) {
      case Role::kIds:
        return result_.input_ids;
      case Role::kSegment:
        return result_.segment_ids;
      case Role::kMask:
        return result_.input_mask;
    }
    return result_.input_ids;
  }
  const std::string& Get(Role role) const { return const_cast<Assignment*>(this)->Get(role); }

  const GraphIndex& index_;
  std::vector<std::string>* how_;
  BertInputs result_;
  std::map<std::string, Role> role_of_;
};

Status ApplyOverrides(const GraphIndex& index, const BertInputs& overrides, Assignment& a) {
  const std::pair<Role, const std::string*> wanted[] = {{Role::kIds, &overrides.input_ids},
                                                        {Role::kSegment, &overrides.segment_ids},
                                                        {Role::kMask, &overrides.input_mask}};
  for (const auto& [role, name] : wanted) {
    if (name->empty()) continue;
    if (!index.IsInput(*name)) {
      return InvalidArgument(fmt::format("--{}_name '{}' is not an input of the model (inputs: {})",
                                         RoleName(role), *name, fmt::join(index.inputs(), ", ")));
    }
    if (!a.Assign(role, *name, "override")) {
      return InvalidArgument(
          fmt::format("--{}_name '{}' is already given for another role", RoleName(role), *name));
    }
  }
  return Status::Ok();
}

void ApplyEmbedLayerNorm(const GraphIndex& index, Assignment& a) {
  for (const onnx::NodeProto* node : index.EmbedLayerNorms()) {
    const std::pair<Role, int> slots[] = {{Role::kIds, 0}, {Role::kSegment, 1}, {Role::kMask, 7}};
    for (const auto& [role, slot] : slots) {
      if (node->input_size() <= slot || node->input(slot).empty()) continue;
      const std::string source = index.TraceBackThroughCast(node->input(slot));
      if (!source.empty()) {
        a.Assign(role, source, fmt::format("EmbedLayerNormalization input {}", slot));
      }
    }
  }
}

void ApplyNames(Assignment& a) {
  auto assign_unique = [&](Role role, const std::vector<std::string>& keys) {
    // The last free input of a model still lacking ids is the ids, whatever its name says
    // (a one-input model whose input is called "tokens").
    if (!a.RoleFree(role) || (a.RoleFree(Role::kIds) && a.FreeInputs().size() <= 1)) return;
    std::vector<std::string> matches;
    for (const auto& name : a.FreeInputs()) {
      const std::string lower = Lower(name);
      for (const auto& key : keys) {
        if (lower.find(key) != std::string::npos) {
          matches.push_back(name);
          break;
        }
      }
    }
    if (matches.size() == 1) a.Assign(role, matches[0], "name");
  };
  assign_unique(Role::kMask, {"mask"});
  assign_unique(Role::kSegment, {"token", "segment", "type"});
  const std::vector<std::string> rest = a.FreeInputs();
  if (rest.size() == 1 && a.RoleFree(Role::kIds))
    a.Assign(Role::kIds, rest[0], "the remaining input");
}

bool IsMaskUse(const GraphIndex::Use& use) {
  static const std::set<std::string> kMaskOps = {"Unsqueeze", "Sub", "Equal",   "Mul",
                                                 "ReduceSum", "Not", "Greater", "Less"};
  const onnx::NodeProto& node = *use.node;
  if (node.domain().empty() && kMaskOps.count(node.op_type()) != 0) return true;
  return (IsMsOp(node, "Attention") && use.input_index == 3) ||
         (IsMsOp(node, "MultiHeadAttention") && use.input_index == 4) ||
         (IsMsOp(node, "EmbedLayerNormalization") && use.input_index == 7);
}

void ApplyGraphUsage(const GraphIndex& index, Assignment& a) {
  struct Usage {
    std::string name;
    int64_t largest_table = -1;  // rows of the largest Gather table this input indexes
    bool mask_like = false;
  };
  std::vector<Usage> usages;
  for (const auto& name : a.FreeInputs()) {
    Usage u{name};
    for (const auto& use : index.UsesThroughCast(name)) {
      const onnx::NodeProto& node = *use.node;
      if (node.op_type() == "Gather" && node.domain().empty() && use.input_index == 1) {
        u.largest_table = std::max(u.largest_table, index.TableRows(node.input(0)).value_or(-1));
      } else if (IsMsOp(node, "EmbedLayerNormalization") && use.input_index <= 1) {
        u.largest_table =
            std::max(u.largest_table,
                     index.TableRows(node.input(use.input_index == 0 ? 2 : 4)).value_or(-1));
      } else if (IsMaskUse(use)) {
        u.mask_like = true;
      }
    }
    usages.push_back(u);
  }

  // ids: the unique input indexing the largest table of more than 2 rows.
  const Usage* ids = nullptr;
  bool tie = false;
  for (const Usage& u : usages) {
    if (u.largest_table <= 2) continue;
    if (ids == nullptr || u.largest_table > ids->largest_table) {
      ids = &u;
      tie = false;
    } else if (u.largest_table == ids->largest_table) {
      tie = true;
    }
  }
  if (ids != nullptr && !tie) {
    a.Assign(Role::kIds, ids->name,
             fmt::format("graph usage: indexes a {}-row Gather table", ids->largest_table));
  }
  std::vector<const Usage*> segments;
  std::vector<const Usage*> masks;
  for (const Usage& u : usages) {
    if (u.largest_table >= 1 && u.largest_table <= 2) segments.push_back(&u);
    if (u.largest_table < 0 && u.mask_like) masks.push_back(&u);
  }
  if (segments.size() == 1) {
    a.Assign(Role::kSegment, segments[0]->name,
             fmt::format("graph usage: indexes a {}-row Gather table", segments[0]->largest_table));
  }
  if (masks.size() == 1) a.Assign(Role::kMask, masks[0]->name, "graph usage: mask arithmetic");
}

std::string ShapeText(const std::vector<int64_t>& dims) {
  std::vector<std::string> parts;
  parts.reserve(dims.size());
  for (int64_t d : dims) parts.push_back(d < 0 ? "?" : std::to_string(d));
  return fmt::format("[{}]", fmt::join(parts, ","));
}

}  // namespace

StatusOr<BertInputs> FindBertInputs(const onnx::GraphProto& graph, const BertInputs& overrides,
                                    std::vector<std::string>* how) {
  const GraphIndex index(graph);
  if (index.inputs().empty()) return InvalidModel("the model has no inputs");
  Assignment a(index, how);
  RETURN_IF_ERROR(ApplyOverrides(index, overrides, a));
  ApplyEmbedLayerNorm(index, a);
  ApplyNames(a);
  ApplyGraphUsage(index, a);

  const std::vector<std::string> rest = a.FreeInputs();
  if (!rest.empty()) {
    return InvalidArgument(fmt::format(
        "model inputs not recognised as BERT inputs: {} (found input_ids '{}', segment_ids '{}', "
        "input_mask '{}'; name them with --input_ids_name, --segment_ids_name, --input_mask_name)",
        fmt::join(rest, ", "), a.result().input_ids, a.result().segment_ids,
        a.result().input_mask));
  }
  if (a.result().input_ids.empty()) {
    return InvalidArgument(fmt::format(
        "cannot tell which input is input_ids (inputs: {}); name it with --input_ids_name",
        fmt::join(index.inputs(), ", ")));
  }
  return a.result();
}

namespace {

// Rows of the largest table `input` indexes: through EmbedLayerNormalization (the input at
// `embed_input`, its table at `embed_table`) or through a Gather (directly or behind a Cast).
std::optional<int64_t> IndexedTableRows(const onnx::GraphProto& graph, const std::string& input,
                                        int embed_input, int embed_table) {
  if (input.empty()) return std::nullopt;
  const GraphIndex index(graph);
  std::optional<int64_t> rows;
  auto consider = [&](std::optional<int64_t> r) {
    if (r && *r > 0 && (!rows || *r > *rows)) rows = r;
  };
  for (const onnx::NodeProto* node : index.EmbedLayerNorms()) {
    if (node->input_size() > embed_table &&
        index.TraceBackThroughCast(node->input(embed_input)) == input) {
      consider(index.TableRows(node->input(embed_table)));
    }
  }
  if (rows) return rows;
  for (const auto& use : index.UsesThroughCast(input)) {
    if (use.node->op_type() == "Gather" && use.node->domain().empty() && use.input_index == 1) {
      consider(index.TableRows(use.node->input(0)));
    }
  }
  return rows;
}

}  // namespace

std::optional<int64_t> FindVocabSize(const onnx::GraphProto& graph, const std::string& input_ids) {
  return IndexedTableRows(graph, input_ids, /*embed_input=*/0, /*embed_table=*/2);
}

std::optional<int64_t> FindSegmentVocabSize(const onnx::GraphProto& graph,
                                            const std::string& segment_ids) {
  return IndexedTableRows(graph, segment_ids, /*embed_input=*/1, /*embed_table=*/4);
}

// ---------------------------------------------------------------------------------------------
// Generation

BertInputGenerator::BertInputGenerator(int64_t batch_size, int64_t sequence_length,
                                       int64_t vocab_size, uint64_t seed, int64_t segment_vocab)
    : batch_size_(batch_size),
      sequence_length_(sequence_length),
      vocab_size_(std::max<int64_t>(vocab_size, 1)),
      second_segment_(segment_vocab >= 2 ? 1 : 0),
      rng_(seed) {}

int64_t BertInputGenerator::UniformInt(int64_t lo, int64_t hi) {
  const uint64_t range = static_cast<uint64_t>(hi - lo) + 1;
  if (range == 0) return static_cast<int64_t>(rng_());  // the full 64-bit range
  // Draws below `threshold` would make small values more likely than large ones; redraw them.
  const uint64_t threshold = (0 - range) % range;
  uint64_t x = rng_();
  while (x < threshold) x = rng_();
  return lo + static_cast<int64_t>(x % range);
}

BertSample BertInputGenerator::Next() {
  const int64_t k = next_index_++;
  const int64_t s = sequence_length_;
  BertSample sample;
  sample.batch_size = batch_size_;
  sample.sequence_length = s;
  const auto n = static_cast<size_t>(batch_size_ * s);
  sample.input_ids.assign(n, 0);
  sample.segment_ids.assign(n, 0);
  sample.input_mask.assign(n, 0);
  const int64_t min_length = (2 * s + 2) / 3;  // ceil(2S/3)
  for (int64_t row = 0; row < batch_size_; ++row) {
    int64_t* ids = sample.input_ids.data() + row * s;
    int64_t* segment = sample.segment_ids.data() + row * s;
    int64_t* mask = sample.input_mask.data() + row * s;
    for (int64_t p = 0; p < s; ++p) ids[p] = UniformInt(0, vocab_size_ - 1);
    if (s == 0) continue;
    const int64_t length = UniformInt(min_length, s);
    std::fill(mask, mask + length, 1);
    if (k % 2 == 1 && length >= 2) {
      const int64_t split = UniformInt(1, length - 1);
      std::fill(segment + split, segment + length, second_segment_);
    }
  }
  return sample;
}

Status CheckBertInputShapes(const BertInputs& inputs, const std::vector<ValueInfo>& model_inputs,
                            int64_t batch_size, int64_t sequence_length) {
  for (const std::string* name : {&inputs.input_ids, &inputs.segment_ids, &inputs.input_mask}) {
    if (name->empty()) continue;
    auto it = std::find_if(model_inputs.begin(), model_inputs.end(),
                           [&](const ValueInfo& info) { return info.name == *name; });
    if (it == model_inputs.end()) return NotFound(fmt::format("no model input '{}'", *name));
    const std::vector<int64_t>& dims = it->dims;
    if (dims.empty()) continue;  // no declared shape: ORT accepts any
    const bool rank_ok = dims.size() == 2;
    const bool batch_ok = rank_ok && (dims[0] < 0 || dims[0] == batch_size);
    const bool sequence_ok = rank_ok && (dims[1] < 0 || dims[1] == sequence_length);
    if (!batch_ok || !sequence_ok) {
      return InvalidArgument(
          fmt::format("input '{}' has dims {}, which do not fit the requested batch_size {} and "
                      "sequence_length {}",
                      *name, ShapeText(dims), batch_size, sequence_length));
    }
  }
  return Status::Ok();
}

StatusOr<std::vector<std::pair<std::string, Tensor>>> MakeBertFeeds(
    const BertSample& sample, const BertInputs& inputs,
    const std::vector<ValueInfo>& model_inputs) {
  std::vector<std::pair<std::string, Tensor>> feeds;
  const std::vector<int64_t> shape = {sample.batch_size, sample.sequence_length};
  for (const ValueInfo& info : model_inputs) {
    const std::vector<int64_t>* values = nullptr;
    if (info.name == inputs.input_ids) values = &sample.input_ids;
    if (info.name == inputs.segment_ids) values = &sample.segment_ids;
    if (info.name == inputs.input_mask) values = &sample.input_mask;
    if (values == nullptr) {
      return InvalidArgument(fmt::format("model input '{}' is not a BERT input", info.name));
    }
    const std::vector<double> as_double(values->begin(), values->end());
    auto tensor = Tensor::FromValues(static_cast<DataType>(info.type), shape, as_double);
    if (!tensor.ok()) return std::move(tensor).status().WithContext("input '" + info.name + "'");
    feeds.emplace_back(info.name, std::move(tensor).value());
  }
  return feeds;
}

}  // namespace bertopt::ort
