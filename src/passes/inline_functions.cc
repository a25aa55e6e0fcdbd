#include "passes/inline_functions.h"

#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "fmt/format.h"

namespace bertopt::passes {
namespace {

// Deeper nesting than this is recursion, which ONNX does not allow.
constexpr int kMaxDepth = 32;

std::string Domain(std::string_view d) { return d == "ai.onnx" ? "" : std::string(d); }

std::string Key(std::string_view domain, std::string_view name) {
  return fmt::format("{}.{}", Domain(domain), name);
}

std::optional<int64_t> ImportedVersion(const onnx::ModelProto& model, std::string_view domain) {
  for (const auto& import : model.opset_import()) {
    if (Domain(import.domain()) == Domain(domain)) return import.version();
  }
  return std::nullopt;
}

// Why `f` cannot be inlined into `model`; empty when it can.
std::string Blocker(const onnx::FunctionProto& f, const onnx::ModelProto& model) {
  for (const auto& node : f.node()) {
    for (const auto& attr : node.attribute()) {
      if (attr.has_g() || attr.graphs_size() > 0) {
        return fmt::format("its node '{}' ({}) has a subgraph", node.name(), node.op_type());
      }
    }
  }
  for (const auto& import : f.opset_import()) {
    const std::optional<int64_t> version = ImportedVersion(model, import.domain());
    if (version && *version != import.version()) {
      return fmt::format("it imports '{}' version {}, the model version {}", import.domain(),
                         import.version(), *version);
    }
  }
  return {};
}

class Inliner {
 public:
  explicit Inliner(onnx::ModelProto& model) : model_(model) {
    for (const auto& f : model.functions()) {
      const std::string key = Key(f.domain(), f.name());
      functions_[key] = &f;
      if (std::string why = Blocker(f, model); !why.empty()) blocked_[key] = why;
    }
    const onnx::GraphProto& g = model.graph();
    for (const auto& v : g.input()) names_.insert(v.name());
    for (const auto& v : g.output()) names_.insert(v.name());
    for (const auto& t : g.initializer()) names_.insert(t.name());
    for (const auto& n : g.node()) {
      names_.insert(n.input().begin(), n.input().end());
      names_.insert(n.output().begin(), n.output().end());
    }
  }

  Status Run(InlineReport& report) {
    std::vector<onnx::NodeProto> nodes;
    for (const auto& node : model_.graph().node()) RETURN_IF_ERROR(Expand(node, 0, nodes));
    if (calls_ == 0) {
      for (const auto& [key, why] : blocked_) report.kept.push_back(key + ": " + why);
      return Status::Ok();
    }
    auto* graph_nodes = model_.mutable_graph()->mutable_node();
    graph_nodes->Clear();
    for (auto& node : nodes) *graph_nodes->Add() = std::move(node);
    // The inlined bodies' domains, where the model did not import them.
    for (const std::string& key : inlined_) {
      for (const auto& import : functions_[key]->opset_import()) {
        if (!ImportedVersion(model_, import.domain())) *model_.add_opset_import() = import;
      }
    }
    RemoveUncalledFunctions();
    report.calls = calls_;
    report.inlined.assign(inlined_.begin(), inlined_.end());
    for (const auto& [key, why] : blocked_) report.kept.push_back(key + ": " + why);
    return Status::Ok();
  }

 private:
  std::string Fresh(const std::string& base) {
    std::string name = base;
    for (int i = 1; names_.contains(name); ++i) name = fmt::format("{}_{}", base, i);
    names_.insert(name);
    return name;
  }

  // Appends `call` to `out`, or the body it stands for with its own calls expanded.
  Status Expand(const onnx::NodeProto& call, int depth, std::vector<onnx::NodeProto>& out) {
    const std::string key = Key(call.domain(), call.op_type());
    const auto it = functions_.find(key);
    if (it == functions_.end() || blocked_.contains(key)) {
      out.push_back(call);
      return Status::Ok();
    }
    if (depth >= kMaxDepth) {
      return InvalidModel(fmt::format(
          "local function {} calls nest deeper than {} (a recursive function?)", key, kMaxDepth));
    }
    const onnx::FunctionProto& f = *it->second;
    const std::string prefix = Fresh(call.name().empty() ? f.name() : call.name());
    std::unordered_map<std::string, std::string> rename;
    for (int i = 0; i < f.input_size(); ++i) {
      rename[f.input(i)] = i < call.input_size() ? call.input(i) : "";
    }
    for (int i = 0; i < f.output_size(); ++i) {
      rename[f.output(i)] = i < call.output_size() && !call.output(i).empty()
                                ? call.output(i)
                                : Fresh(prefix + "/" + f.output(i));
    }
    auto renamed = [&](const std::string& name) -> std::string {
      if (name.empty()) return name;
      auto [at, added] = rename.try_emplace(name);
      if (added) at->second = Fresh(prefix + "/" + name);
      return at->second;
    };
    std::map<std::string, const onnx::AttributeProto*> given;
    for (const auto& attr : call.attribute()) given[attr.name()] = &attr;

    for (onnx::NodeProto body : f.node()) {
      if (!body.name().empty()) body.set_name(Fresh(prefix + "/" + body.name()));
      for (std::string& in : *body.mutable_input()) in = renamed(in);
      for (std::string& o : *body.mutable_output()) o = renamed(o);
      auto* attrs = body.mutable_attribute();
      for (int i = attrs->size() - 1; i >= 0; --i) {
        onnx::AttributeProto& attr = attrs->at(i);
        if (attr.ref_attr_name().empty()) continue;
        if (const auto value = given.find(attr.ref_attr_name()); value != given.end()) {
          const std::string name = attr.name();
          attr = *value->second;
          attr.set_name(name);
        } else {
          attrs->DeleteSubrange(i, 1);  // not given: the op's own default
        }
      }
      if (body.domain() == "ai.onnx") body.clear_domain();
      RETURN_IF_ERROR(Expand(body, depth + 1, out));
    }
    ++calls_;
    inlined_.insert(key);
    return Status::Ok();
  }

  void RemoveUncalledFunctions() {
    // Reachable from the graph: its calls, and the calls in the bodies of those.
    std::set<std::string> called;
    std::vector<std::string> pending;
    for (const auto& n : model_.graph().node()) pending.push_back(Key(n.domain(), n.op_type()));
    while (!pending.empty()) {
      const std::string key = pending.back();
      pending.pop_back();
      const auto f = functions_.find(key);
      if (f == functions_.end() || !called.insert(key).second) continue;
      for (const auto& n : f->second->node()) pending.push_back(Key(n.domain(), n.op_type()));
    }
    auto* functions = model_.mutable_functions();
    for (int i = functions->size() - 1; i >= 0; --i) {
      const auto& f = functions->at(i);
      if (!called.contains(Key(f.domain(), f.name()))) functions->DeleteSubrange(i, 1);
    }
  }

  onnx::ModelProto& model_;
  std::map<std::string, const onnx::FunctionProto*> functions_;
  std::map<std::string, std::string> blocked_;
  std::set<std::string> names_;
  std::set<std::string> inlined_;
  int calls_ = 0;
};

}  // namespace

StatusOr<InlineReport> InlineLocalFunctions(onnx::ModelProto& model) {
  InlineReport report;
  if (model.functions_size() == 0) return report;
  Inliner inliner(model);
  RETURN_IF_ERROR(inliner.Run(report));
  return report;
}

}  // namespace bertopt::passes
