#include "bertopt/pattern/pattern.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "fmt/format.h"

namespace bertopt::pattern {

struct PatternNode {
  enum class Kind { kAny, kConst, kScalar, kOp, kOneOf };
  Kind kind = Kind::kAny;
  std::string op_type;
  std::string domain;
  std::vector<P> inputs;  // kOp: inputs; kOneOf: alternatives
  std::string bind;
  bool commutative = false;
  bool shared = false;
  int output = 0;
  double scalar = 0;
  double tolerance = 0;
  NodeCheck node_check;
  ValueCheck value_check;
};

namespace {

using Kind = PatternNode::Kind;

P Make(PatternNode node) { return P(std::make_shared<const PatternNode>(std::move(node))); }

P Modified(const P& p, const std::function<void(PatternNode&)>& edit) {
  PatternNode copy = *p.get();
  edit(copy);
  return Make(std::move(copy));
}

std::string Describe(const PatternNode& p) {
  switch (p.kind) {
    case Kind::kAny:
      return "any value";
    case Kind::kConst:
      return "a constant";
    case Kind::kScalar:
      return fmt::format("the constant {}", p.scalar);
    case Kind::kOp:
      return p.domain.empty() ? p.op_type : p.domain + "." + p.op_type;
    case Kind::kOneOf: {
      std::string s;
      for (const P& alt : p.inputs) s += (s.empty() ? "" : " or ") + Describe(*alt.get());
      return s;
    }
  }
  return "?";
}

std::string ValueName(const ir::Value* v) { return v ? "'" + v->name() + "'" : "(none)"; }

}  // namespace

P P::Commutative() const {
  return Modified(*this, [](PatternNode& n) { n.commutative = true; });
}
P P::Domain(std::string_view d) const {
  return Modified(*this, [d](PatternNode& n) { n.domain = std::string(d); });
}
P P::Output(int index) const {
  return Modified(*this, [index](PatternNode& n) { n.output = index; });
}
P P::Where(NodeCheck check) const {
  return Modified(*this, [&check](PatternNode& n) { n.node_check = std::move(check); });
}
P P::WhereValue(ValueCheck check) const {
  return Modified(*this, [&check](PatternNode& n) { n.value_check = std::move(check); });
}
P P::Shared() const {
  return Modified(*this, [](PatternNode& n) { n.shared = true; });
}
P P::Bind(std::string_view name) const {
  return Modified(*this, [name](PatternNode& n) { n.bind = std::string(name); });
}

P Any(std::string_view bind) { return Make({.kind = Kind::kAny, .bind = std::string(bind)}); }
P Const(std::string_view bind) { return Make({.kind = Kind::kConst, .bind = std::string(bind)}); }
P Scalar(double value, double tolerance, std::string_view bind) {
  return Make(
      {.kind = Kind::kScalar, .bind = std::string(bind), .scalar = value, .tolerance = tolerance});
}
P Op(std::string_view op_type, std::vector<P> inputs, std::string_view bind) {
  return Make({.kind = Kind::kOp,
               .op_type = std::string(op_type),
               .inputs = std::move(inputs),
               .bind = std::string(bind)});
}
P OneOf(std::vector<P> alternatives) {
  return Make({.kind = Kind::kOneOf, .inputs = std::move(alternatives)});
}
P Optional(P wrapper, P inner) { return OneOf({std::move(wrapper), std::move(inner)}); }

ir::Value* Match::value(std::string_view name) const {
  auto it = values_.find(name);
  return it == values_.end() ? nullptr : it->second;
}

ir::Node* Match::node(std::string_view name) const {
  auto it = nodes_.find(name);
  return it == nodes_.end() ? nullptr : it->second;
}

// Depth-first matcher with backtracking over commutative inputs and alternatives. On failure it
// keeps the reason from the attempt that got furthest (most nodes matched), which is the one a
// user wants to read.
class Matcher {
 public:
  explicit Matcher(const ir::Graph& graph) : graph_(graph) {}

  MatchResult Run(ir::Node* root, const P& pattern) {
    const PatternNode& p = *pattern.get();
    ir::Value* out = root->output(p.output);
    if (p.kind != Kind::kOp || !out) return MatchResult::Failure("pattern root is not an op");
    match_.root_ = root;
    if (!MatchValue(p, out, /*shared=*/false)) return MatchResult::Failure(best_reason_);
    std::vector<const ir::Value*> allowed;
    for (ir::Value* v : root->outputs()) allowed.push_back(v);
    std::string reason = CheckContained(match_.owned_, allowed);
    if (!reason.empty()) return MatchResult::Failure(reason);
    return MatchResult::Success(std::move(match_));
  }

 private:
  // `past_structure` ranks a failure on a value that did have the expected kind (a constant with
  // the wrong value) above a structural one at the same depth, so that a commutative pattern
  // reports "'half' is 0.6, expected 0.5" rather than its swapped attempt's "'x' is not a
  // constant".
  bool Fail(std::string reason, bool past_structure = false) {
    const size_t depth = 2 * (match_.owned_.size() + shared_count_) + (past_structure ? 1 : 0);
    if (best_reason_.empty() || depth >= best_depth_) {
      best_depth_ = depth;
      best_reason_ = std::move(reason);
    }
    return false;
  }

  bool BindValue(const std::string& name, ir::Value* v) {
    if (name.empty()) return true;
    auto [it, inserted] = match_.values_.emplace(name, v);
    if (!inserted && it->second != v) {
      return Fail(fmt::format("'{}' must be one value but is both {} and {}", name,
                              ValueName(it->second), ValueName(v)));
    }
    return true;
  }

  bool MatchValue(const PatternNode& p, ir::Value* v, bool shared) {
    if (!v) return Fail(fmt::format("expected {} but the input is missing", Describe(p)));
    switch (p.kind) {
      case Kind::kAny:
        if (p.value_check) {
          std::string why = p.value_check(graph_, *v, match_);
          if (!why.empty()) return Fail(why);
        }
        return BindValue(p.bind, v);
      case Kind::kConst:
      case Kind::kScalar:
        return MatchConstant(p, v);
      case Kind::kOneOf: {
        for (const P& alt : p.inputs) {
          Match saved = match_;
          const size_t saved_shared = shared_count_;
          if (MatchValue(*alt.get(), v, shared)) return true;
          match_ = std::move(saved);
          shared_count_ = saved_shared;
        }
        return false;
      }
      case Kind::kOp:
        return MatchOp(p, v, shared || p.shared);
    }
    return false;
  }

  bool MatchConstant(const PatternNode& p, ir::Value* v) {
    const std::string where = v->producer() ? " (from " + v->producer()->DisplayName() + ")" : "";
    if (!graph_.ConstantTensor(v)) {
      return Fail(fmt::format("{}{} is not a constant", ValueName(v), where));
    }
    if (p.kind == Kind::kScalar) {
      auto s = graph_.ScalarValue(v);
      if (!s) {
        return Fail(fmt::format("{}{} is not a scalar constant", ValueName(v), where), true);
      }
      if (std::abs(*s - p.scalar) > p.tolerance * std::max(1.0, std::abs(p.scalar))) {
        return Fail(fmt::format("{}{} is {}, expected {}", ValueName(v), where, *s, p.scalar),
                    true);
      }
    }
    if (p.value_check) {
      std::string why = p.value_check(graph_, *v, match_);
      if (!why.empty()) return Fail(why, true);
    }
    return BindValue(p.bind, v);
  }

  bool MatchOp(const PatternNode& p, ir::Value* v, bool shared) {
    ir::Node* n = v->producer();
    if (!n) {
      return Fail(fmt::format("expected {} to compute {}, but it is a graph input or constant",
                              Describe(p), ValueName(v)));
    }
    if (!n->Is(p.op_type, p.domain)) {
      return Fail(fmt::format("expected {} to compute {}, found {} '{}'", Describe(p), ValueName(v),
                              n->op_type(), n->DisplayName()));
    }
    if (n->output(p.output) != v) {
      return Fail(
          fmt::format("{} is not output {} of {}", ValueName(v), p.output, n->DisplayName()));
    }
    if (n->num_inputs() < static_cast<int>(p.inputs.size())) {
      return Fail(fmt::format("{} has {} inputs, expected {}", n->DisplayName(), n->num_inputs(),
                              p.inputs.size()));
    }
    if (!p.bind.empty()) {
      auto [it, inserted] = match_.nodes_.emplace(p.bind, n);
      if (!inserted) {
        if (it->second != n) {
          return Fail(fmt::format("'{}' must be one node but is both {} and {}", p.bind,
                                  it->second->DisplayName(), n->DisplayName()));
        }
        return true;  // the same node reached again through another path: already matched
      }
      if (!BindValue(p.bind, v)) return false;
    }
    if (shared) {
      ++shared_count_;
    } else if (std::find(match_.owned_.begin(), match_.owned_.end(), n) == match_.owned_.end()) {
      match_.owned_.push_back(n);
    }

    const bool swap_ok = p.commutative && p.inputs.size() == 2;
    for (int order = 0; order < (swap_ok ? 2 : 1); ++order) {
      Match saved = match_;
      const size_t saved_shared = shared_count_;
      bool ok = true;
      for (size_t i = 0; ok && i < p.inputs.size(); ++i) {
        const size_t input = order == 0 ? i : 1 - i;
        ok = MatchValue(*p.inputs[i].get(), n->input(static_cast<int>(input)), shared);
      }
      if (ok && p.node_check) {
        std::string why = p.node_check(graph_, *n, match_);
        if (!why.empty()) ok = Fail(fmt::format("{}: {}", n->DisplayName(), why));
      }
      if (ok) return true;
      match_ = std::move(saved);
      shared_count_ = saved_shared;
    }
    return false;
  }

  const ir::Graph& graph_;
  Match match_;
  size_t shared_count_ = 0;
  size_t best_depth_ = 0;
  std::string best_reason_;
};

MatchResult MatchPattern(const ir::Graph& graph, ir::Node* root, const P& pattern) {
  return Matcher(graph).Run(root, pattern);
}

std::string CheckContained(const std::vector<ir::Node*>& nodes,
                           const std::vector<const ir::Value*>& allowed_outputs) {
  std::unordered_set<const ir::Node*> inside(nodes.begin(), nodes.end());
  std::unordered_set<const ir::Value*> allowed(allowed_outputs.begin(), allowed_outputs.end());
  for (const ir::Node* n : nodes) {
    for (const ir::Value* out : n->outputs()) {
      if (!out || allowed.count(out)) continue;
      if (out->is_graph_output()) {
        return fmt::format("'{}' (output of {}) is a graph output", out->name(), n->DisplayName());
      }
      for (const ir::Use& use : out->uses()) {
        if (!inside.count(use.node)) {
          return fmt::format("'{}' (output of {}) is also read by {} outside the pattern",
                             out->name(), n->DisplayName(), use.node->DisplayName());
        }
      }
    }
  }
  return {};
}

}  // namespace bertopt::pattern
