#include "bertopt/ir/graph.h"

#include <algorithm>
#include <functional>
#include <queue>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"

namespace bertopt::ir {
namespace {

// Names a subgraph defines itself: its inputs, initializers and node outputs (recursively).
void CollectSubgraphReads(const onnx::GraphProto& g, std::unordered_set<std::string>& defined,
                          std::vector<std::string>& reads) {
  for (const auto& i : g.input()) defined.insert(i.name());
  for (const auto& i : g.initializer()) defined.insert(i.name());
  for (const auto& n : g.node()) {
    for (const auto& o : n.output()) defined.insert(o);
  }
  auto read = [&](const std::string& name) {
    if (!name.empty() && !defined.count(name)) reads.push_back(name);
  };
  for (const auto& n : g.node()) {
    for (const auto& i : n.input()) read(i);
    for (const auto& a : n.attribute()) {
      if (a.has_g()) {
        auto inner = defined;
        CollectSubgraphReads(a.g(), inner, reads);
      }
      for (const auto& sg : a.graphs()) {
        auto inner = defined;
        CollectSubgraphReads(sg, inner, reads);
      }
    }
  }
  for (const auto& o : g.output()) read(o.name());
}

// std::erase_if for protobuf repeated fields.
template <typename Field, typename Pred>
void EraseIf(Field* field, Pred pred) {
  field->erase(std::remove_if(field->begin(), field->end(), pred), field->end());
}

}  // namespace

// --- Node --------------------------------------------------------------------------------------

std::string Node::DisplayName() const {
  if (!name().empty()) return name();
  return fmt::format("{} producing '{}'", op_type(),
                     outputs_.empty() || !outputs_[0] ? std::string("?") : outputs_[0]->name());
}

bool Node::Is(std::string_view op_type, std::string_view domain) const {
  const std::string& d = this->domain();
  const bool domain_ok = d == domain || (domain.empty() && d == "ai.onnx");
  return domain_ok && this->op_type() == op_type;
}

const onnx::AttributeProto* Node::Attr(std::string_view name) const {
  for (const auto& a : proto_.attribute()) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

std::optional<int64_t> Node::AttrInt(std::string_view name) const {
  const auto* a = Attr(name);
  if (!a || a->type() != onnx::AttributeProto::INT) return std::nullopt;
  return a->i();
}

std::optional<float> Node::AttrFloat(std::string_view name) const {
  const auto* a = Attr(name);
  if (!a || a->type() != onnx::AttributeProto::FLOAT) return std::nullopt;
  return a->f();
}

std::optional<std::string> Node::AttrString(std::string_view name) const {
  const auto* a = Attr(name);
  if (!a || a->type() != onnx::AttributeProto::STRING) return std::nullopt;
  return a->s();
}

std::optional<std::vector<int64_t>> Node::AttrInts(std::string_view name) const {
  const auto* a = Attr(name);
  if (!a || a->type() != onnx::AttributeProto::INTS) return std::nullopt;
  return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}

void Node::RemoveAttr(std::string_view name) {
  auto* attrs = proto_.mutable_attribute();
  for (int i = 0; i < attrs->size(); ++i) {
    if (attrs->Get(i).name() == name) {
      attrs->DeleteSubrange(i, 1);
      return;
    }
  }
}

namespace {
onnx::AttributeProto* ResetAttr(onnx::NodeProto& proto, std::string_view name,
                                onnx::AttributeProto::AttributeType type) {
  for (auto& a : *proto.mutable_attribute()) {
    if (a.name() == name) {
      a.Clear();
      a.set_name(std::string(name));
      a.set_type(type);
      return &a;
    }
  }
  auto* a = proto.add_attribute();
  a->set_name(std::string(name));
  a->set_type(type);
  return a;
}
}  // namespace

void Node::SetAttr(std::string_view name, int64_t value) {
  ResetAttr(proto_, name, onnx::AttributeProto::INT)->set_i(value);
}
void Node::SetAttr(std::string_view name, float value) {
  ResetAttr(proto_, name, onnx::AttributeProto::FLOAT)->set_f(value);
}
void Node::SetAttr(std::string_view name, const std::vector<int64_t>& value) {
  auto* a = ResetAttr(proto_, name, onnx::AttributeProto::INTS);
  for (int64_t v : value) a->add_ints(v);
}
void Node::SetAttr(std::string_view name, std::string_view value) {
  ResetAttr(proto_, name, onnx::AttributeProto::STRING)->set_s(std::string(value));
}

// --- Graph: construction -----------------------------------------------------------------------

StatusOr<std::unique_ptr<Graph>> Graph::Build(onnx::ModelProto* model) {
  std::unique_ptr<Graph> graph(new Graph(model));
  auto* g = model->mutable_graph();
  graph->nodes_.reserve(g->node_size());
  for (auto& proto : *g->mutable_node()) {
    auto node = std::make_unique<Node>();
    node->proto_.Swap(&proto);
    graph->nodes_.push_back(std::move(node));
  }
  g->clear_node();
  Status status = graph->Index();
  if (!status.ok()) {
    // Give the nodes back so the model is as it was.
    for (auto& node : graph->nodes_) g->add_node()->Swap(&node->proto_);
    return status;
  }
  return graph;
}

Graph::~Graph() = default;

void Graph::IndexValueInfos() {
  value_infos_.clear();
  auto* g = model_->mutable_graph();
  for (auto& vi : *g->mutable_value_info()) value_infos_[vi.name()] = &vi;
  for (auto& vi : *g->mutable_output()) value_infos_[vi.name()] = &vi;
  for (auto& vi : *g->mutable_input()) value_infos_[vi.name()] = &vi;
}

Status Graph::Index() {
  auto* g = model_->mutable_graph();
  for (const auto& in : g->input()) GetOrCreateValue(in.name())->is_graph_input_ = true;
  for (const auto& out : g->output()) GetOrCreateValue(out.name())->is_graph_output_ = true;
  for (auto& init : *g->mutable_initializer()) GetOrCreateValue(init.name())->initializer_ = &init;
  IndexValueInfos();
  for (auto& node : nodes_) {
    for (const auto& out : node->proto_.output()) {
      if (out.empty()) continue;
      const Value* v = FindValue(out);
      if (v && v->producer_) {
        return InvalidModel(fmt::format("value '{}' is produced by two nodes ('{}' and '{}')", out,
                                        v->producer_->DisplayName(), node->DisplayName()));
      }
      if (v && v->initializer_) {
        return InvalidModel(fmt::format("value '{}' is both an initializer and the output of '{}'",
                                        out, node->DisplayName()));
      }
    }
    AttachNode(node.get());
    ++num_live_nodes_;
  }
  return Status::Ok();
}

Value* Graph::GetOrCreateValue(std::string_view name) {
  auto it = values_.find(std::string(name));
  if (it != values_.end()) return it->second.get();
  auto value = std::make_unique<Value>(std::string(name));
  Value* raw = value.get();
  values_.emplace(std::string(name), std::move(value));
  return raw;
}

void Graph::AttachNode(Node* node) {
  if (!node->proto_.name().empty()) node_names_.insert(node->proto_.name());
  node->inputs_.clear();
  node->outputs_.clear();
  for (int i = 0; i < node->proto_.input_size(); ++i) {
    const std::string& name = node->proto_.input(i);
    Value* v = name.empty() ? nullptr : GetOrCreateValue(name);
    node->inputs_.push_back(v);
    if (v) v->uses_.push_back({node, i});
  }
  for (int i = 0; i < node->proto_.output_size(); ++i) {
    const std::string& name = node->proto_.output(i);
    Value* v = name.empty() ? nullptr : GetOrCreateValue(name);
    node->outputs_.push_back(v);
    if (v) {
      v->producer_ = node;
      v->producer_output_ = i;
    }
  }
  CollectImplicitInputs(node);
}

void Graph::CollectImplicitInputs(Node* node) {
  std::vector<std::string> reads;
  for (const auto& a : node->proto_.attribute()) {
    if (a.has_g()) {
      std::unordered_set<std::string> defined;
      CollectSubgraphReads(a.g(), defined, reads);
    }
    for (const auto& sg : a.graphs()) {
      std::unordered_set<std::string> defined;
      CollectSubgraphReads(sg, defined, reads);
    }
  }
  std::unordered_set<std::string> seen;
  for (const auto& name : reads) {
    if (!seen.insert(name).second) continue;
    Value* v = GetOrCreateValue(name);
    node->implicit_inputs_.push_back(v);
    v->uses_.push_back({node, Use::kImplicitUse});
  }
}

// --- Lookup ------------------------------------------------------------------------------------

std::vector<Node*> Graph::Nodes() const {
  std::vector<Node*> out;
  out.reserve(num_live_nodes_);
  for (const auto& n : nodes_) {
    if (!n->erased_) out.push_back(n.get());
  }
  return out;
}

std::vector<Node*> Graph::NodesOfType(std::string_view op_type, std::string_view domain) const {
  std::vector<Node*> out;
  for (const auto& n : nodes_) {
    if (!n->erased_ && n->Is(op_type, domain)) out.push_back(n.get());
  }
  return out;
}

Value* Graph::FindValue(std::string_view name) const {
  auto it = values_.find(std::string(name));
  return it == values_.end() ? nullptr : it->second.get();
}

std::vector<Value*> Graph::Inputs() const {
  std::vector<Value*> out;
  for (const auto& in : model_->graph().input()) {
    Value* v = FindValue(in.name());
    if (v && !v->initializer_) out.push_back(v);
  }
  return out;
}

std::vector<Value*> Graph::Outputs() const {
  std::vector<Value*> out;
  for (const auto& o : model_->graph().output()) out.push_back(FindValue(o.name()));
  return out;
}

int64_t Graph::OpsetVersion(std::string_view domain) const {
  for (const auto& op : model_->opset_import()) {
    if (op.domain() == domain || (domain.empty() && op.domain() == "ai.onnx")) return op.version();
  }
  return 0;
}

void Graph::EnsureOpsetImport(std::string_view domain, int64_t version) {
  if (OpsetVersion(domain) != 0) return;
  auto* op = model_->add_opset_import();
  op->set_domain(std::string(domain));
  op->set_version(version);
  modified_ = true;
}

// --- Constants ---------------------------------------------------------------------------------

const onnx::TensorProto* Graph::ConstantTensor(const Value* value) const {
  if (!value) return nullptr;
  // ONNX Runtime's rule (onnxruntime/core/graph/graph.cc, see ir::FollowOrtLoadRules): an
  // initializer that is also a graph input is a default a caller may override from IR version 4
  // on, and a constant below it (where every initializer had to be listed as an input).
  if (value->initializer_) {
    if (value->is_graph_input_ && model_->ir_version() >= 4) return nullptr;
    return value->initializer_;
  }
  const Node* p = value->producer_;
  if (p && p->Is("Constant")) {
    const auto* a = p->Attr("value");
    if (a && a->has_t()) return &a->t();
  }
  return nullptr;
}

std::optional<std::vector<double>> Graph::ConstantAsDoubles(const Value* value) const {
  const auto* t = ConstantTensor(value);
  if (!t) return std::nullopt;
  return DecodeAsDoubles(*t);
}

std::optional<std::vector<int64_t>> Graph::ConstantAsInts(const Value* value) const {
  const auto* t = ConstantTensor(value);
  if (!t) return std::nullopt;
  return DecodeAsInts(*t);
}

std::optional<double> Graph::ScalarValue(const Value* value) const {
  const auto* t = ConstantTensor(value);
  if (!t || NumElements(*t) != 1) return std::nullopt;
  auto values = DecodeAsDoubles(*t);
  if (!values || values->size() != 1) return std::nullopt;
  return (*values)[0];
}

std::optional<std::vector<int64_t>> Graph::Shape(const Value* value) const {
  if (!value) return std::nullopt;
  if (const auto* t = ConstantTensor(value)) {
    return std::vector<int64_t>(t->dims().begin(), t->dims().end());
  }
  auto it = value_infos_.find(value->name());
  if (it == value_infos_.end()) return std::nullopt;
  const auto& type = it->second->type();
  if (!type.has_tensor_type() || !type.tensor_type().has_shape()) return std::nullopt;
  std::vector<int64_t> dims;
  for (const auto& d : type.tensor_type().shape().dim()) {
    dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
  }
  return dims;
}

int32_t Graph::ElementType(const Value* value) const {
  if (!value) return 0;
  if (const auto* t = ConstantTensor(value)) return t->data_type();
  auto it = value_infos_.find(value->name());
  if (it == value_infos_.end() || !it->second->type().has_tensor_type()) return 0;
  return it->second->type().tensor_type().elem_type();
}

onnx::TensorProto* Graph::MutableInitializer(const Value* value) {
  if (!value || !value->initializer_) return nullptr;
  modified_ = true;
  // The caller rewrites the payload: it must be the tensor's own, not the mapped input's.
  MaterializeMapped(value->initializer_);
  return value->initializer_;
}

// --- Mutation ----------------------------------------------------------------------------------

std::string Graph::UniqueName(std::string_view base) {
  std::string b(base.empty() ? "v" : base);
  if (!values_.count(b) && !node_names_.count(b)) return b;
  while (true) {
    std::string candidate = fmt::format("{}_{}", b, ++name_counter_);
    if (!values_.count(candidate) && !node_names_.count(candidate)) return candidate;
  }
}

Node* Graph::AddNode(std::string_view op_type, const std::vector<std::string>& inputs,
                     const std::vector<std::string>& outputs, std::string_view domain,
                     std::string_view name) {
  onnx::NodeProto proto;
  proto.set_op_type(std::string(op_type));
  if (!domain.empty()) proto.set_domain(std::string(domain));
  proto.set_name(std::string(name));
  for (const auto& in : inputs) proto.add_input(in);
  for (const auto& out : outputs) proto.add_output(out);
  return AddNode(std::move(proto));
}

Node* Graph::AddNode(onnx::NodeProto proto) {
  auto node = std::make_unique<Node>();
  node->proto_ = std::move(proto);
  node->proto_.set_name(
      UniqueName(node->proto_.name().empty() ? node->proto_.op_type() : node->proto_.name()));
  for (const auto& out : node->proto_.output()) {
    assert(out.empty() || !FindValue(out) || !FindValue(out)->producer_);
    (void)out;
  }
  Node* raw = node.get();
  nodes_.push_back(std::move(node));
  AttachNode(raw);
  ++num_live_nodes_;
  modified_ = true;
  return raw;
}

void Graph::DetachUse(Value* value, Node* node, int index) {
  auto& uses = value->uses_;
  auto it = std::find(uses.begin(), uses.end(), Use{node, index});
  if (it != uses.end()) uses.erase(it);
}

void Graph::EraseNode(Node* node) {
  if (node->erased_) return;
  for (int i = 0; i < node->num_inputs(); ++i) {
    if (node->inputs_[i]) DetachUse(node->inputs_[i], node, i);
  }
  for (Value* v : node->implicit_inputs_) DetachUse(v, node, Use::kImplicitUse);
  for (Value* v : node->outputs_) {
    if (v && v->producer_ == node) v->producer_ = nullptr;
  }
  node->erased_ = true;
  node_names_.erase(node->name());
  --num_live_nodes_;
  modified_ = true;
}

void Graph::SetInput(Node* node, int index, Value* value) {
  assert(index >= 0);
  while (node->num_inputs() <= index) {
    node->inputs_.push_back(nullptr);
    node->proto_.add_input("");
  }
  if (Value* old = node->inputs_[index]) DetachUse(old, node, index);
  node->inputs_[index] = value;
  node->proto_.set_input(index, value ? value->name() : "");
  if (value) value->uses_.push_back({node, index});
  modified_ = true;
}

Status Graph::ReplaceAllUses(Value* from, Value* to) {
  if (from == to) return Status::Ok();
  if (from->is_graph_output_) {
    return FailedPrecondition(fmt::format("cannot replace graph output '{}'", from->name()));
  }
  for (const Use& use : from->uses_) {
    if (use.index == Use::kImplicitUse) {
      return FailedPrecondition(fmt::format("'{}' is read inside a subgraph of '{}'", from->name(),
                                            use.node->DisplayName()));
    }
  }
  const std::vector<Use> uses = from->uses_;
  for (const Use& use : uses) SetInput(use.node, use.index, to);
  return Status::Ok();
}

Value* Graph::AddInitializer(onnx::TensorProto tensor) {
  const Value* existing = FindValue(tensor.name());
  const bool reuse = existing && !tensor.name().empty() && !existing->producer_ &&
                     !existing->initializer_ && !existing->is_graph_input_;
  std::string name =
      reuse ? tensor.name() : UniqueName(tensor.name().empty() ? "const" : tensor.name());
  tensor.set_name(name);
  auto* init = model_->mutable_graph()->add_initializer();
  init->Swap(&tensor);
  Value* v = GetOrCreateValue(name);
  v->initializer_ = init;
  removed_initializers_.erase(name);
  modified_ = true;
  return v;
}

void Graph::RemoveInitializer(Value* value) {
  assert(value->initializer_ && value->uses_.empty());
  // Free the payload now, not at Commit: a fusion that replaces weights (attention packs Q, K, V)
  // would otherwise hold both copies until the end of the pipeline. Swapping releases the buffer,
  // which clear_raw_data() would keep.
  std::string().swap(*value->initializer_->mutable_raw_data());
  ClearMappedMark(value->initializer_);
  value->initializer_->clear_float_data();
  value->initializer_->clear_int64_data();
  value->initializer_->clear_int32_data();
  value->initializer_->clear_double_data();
  removed_initializers_.insert(value->name());
  value->initializer_ = nullptr;
  modified_ = true;
}

Status Graph::SetGraphInputType(Value* input, int32_t elem_type) {
  for (auto& in : *model_->mutable_graph()->mutable_input()) {
    if (in.name() == input->name()) {
      if (!in.type().has_tensor_type()) {
        return FailedPrecondition(fmt::format("graph input '{}' is not a tensor", in.name()));
      }
      in.mutable_type()->mutable_tensor_type()->set_elem_type(elem_type);
      modified_ = true;
      return Status::Ok();
    }
  }
  return NotFound(fmt::format("'{}' is not a graph input", input->name()));
}

// --- Whole-graph operations -------------------------------------------------------------------

int Graph::RemoveDeadNodes() {
  auto is_dead = [](const Node* n) {
    if (n->erased_ || n->outputs_.empty()) return false;
    for (const Value* v : n->outputs_) {
      if (v && (!v->uses_.empty() || v->is_graph_output_)) return false;
    }
    return true;
  };
  std::vector<Node*> work;
  for (const auto& n : nodes_) {
    if (is_dead(n.get())) work.push_back(n.get());
  }
  int removed = 0;
  while (!work.empty()) {
    Node* n = work.back();
    work.pop_back();
    if (!is_dead(n)) continue;
    std::vector<Value*> inputs = n->inputs_;
    inputs.insert(inputs.end(), n->implicit_inputs_.begin(), n->implicit_inputs_.end());
    EraseNode(n);
    ++removed;
    for (Value* in : inputs) {
      if (in && in->producer_ && is_dead(in->producer_)) work.push_back(in->producer_);
    }
  }
  return removed;
}

int Graph::RemoveUnusedInitializers() {
  int removed = 0;
  for (auto& [name, value] : values_) {
    if (value->initializer_ && value->uses_.empty() && !value->is_graph_output_) {
      RemoveInitializer(value.get());
      ++removed;
    }
  }
  return removed;
}

std::optional<std::vector<int64_t>> Graph::AttrOrInputInts(const Node& node, std::string_view attr,
                                                           int input) const {
  if (auto ints = node.AttrInts(attr)) return ints;
  return node.input(input) ? ConstantAsInts(node.input(input)) : std::nullopt;
}

Status Graph::CheckInputsDefined() const {
  for (const Node* node : Nodes()) {
    for (const Value* v : node->inputs()) {
      if (!v || v->producer_ || v->initializer_ || v->is_graph_input_) continue;
      return InvalidModel(fmt::format(
          "{} reads '{}', which is not a graph input, an initializer, or the output of a node",
          node->DisplayName(), v->name()));
    }
  }
  return Status::Ok();
}

Status Graph::TopologicalSort() {
  std::vector<Node*> live = Nodes();
  std::unordered_map<const Node*, size_t> position;
  for (size_t i = 0; i < live.size(); ++i) position[live[i]] = i;
  // in_degree = number of (input slot) edges from live producers; ready nodes leave in list order.
  std::vector<int> in_degree(live.size(), 0);
  auto for_each_consumer = [&](const Node* n, const std::function<void(size_t)>& fn) {
    for (const Value* out : n->outputs_) {
      if (!out) continue;
      for (const Use& use : out->uses_) fn(position.at(use.node));
    }
  };
  for (const Node* n : live) for_each_consumer(n, [&](size_t c) { ++in_degree[c]; });
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < live.size(); ++i) {
    if (in_degree[i] == 0) ready.push(i);
  }
  std::vector<Node*> order;
  order.reserve(live.size());
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    order.push_back(live[i]);
    for_each_consumer(live[i], [&](size_t c) {
      if (--in_degree[c] == 0) ready.push(c);
    });
  }
  if (order.size() != live.size()) {
    for (size_t i = 0; i < live.size(); ++i) {
      if (in_degree[i] > 0) {
        return InvalidModel(
            fmt::format("the graph has a cycle through node '{}'", live[i]->DisplayName()));
      }
    }
  }
  if (order != live) modified_ = true;
  // Rebuild nodes_ in the new order (erased nodes go to the end, they are dropped at Commit).
  std::unordered_map<Node*, std::unique_ptr<Node>> owned;
  for (auto& n : nodes_) owned[n.get()] = std::move(n);
  nodes_.clear();
  for (Node* n : order) nodes_.push_back(std::move(owned[n]));
  for (auto& [raw, n] : owned) {
    if (n) nodes_.push_back(std::move(n));
  }
  return Status::Ok();
}

void Graph::Commit() {
  auto* g = model_->mutable_graph();
  // Drop erased nodes for good.
  std::erase_if(nodes_, [](const std::unique_ptr<Node>& n) { return n->erased_; });
  g->clear_node();
  g->mutable_node()->Reserve(static_cast<int>(nodes_.size()));
  for (const auto& n : nodes_) *g->add_node() = n->proto_;

  if (!removed_initializers_.empty()) {
    auto* inits = g->mutable_initializer();
    int kept = 0;
    for (int i = 0; i < inits->size(); ++i) {
      if (!removed_initializers_.count(inits->Get(i).name())) inits->SwapElements(i, kept++);
    }
    inits->DeleteSubrange(kept, inits->size() - kept);
    // Graph inputs that only declared a removed initializer go too.
    auto* inputs = g->mutable_input();
    EraseIf(inputs, [&](const onnx::ValueInfoProto& in) {
      const Value* v = FindValue(in.name());
      return removed_initializers_.count(in.name()) && v && v->uses_.empty() && !v->producer_;
    });
    // Re-point the surviving values at their (moved) initializer protos.
    for (auto& init : *inits) GetOrCreateValue(init.name())->initializer_ = &init;
    removed_initializers_.clear();
  }

  if (modified_) {
    EraseIf(g->mutable_value_info(), [&](const onnx::ValueInfoProto& vi) {
      const Value* v = FindValue(vi.name());
      return !v || (!v->producer_ && !v->initializer_ && !v->is_graph_input_);
    });
  }
  IndexValueInfos();
}

}  // namespace bertopt::ir
