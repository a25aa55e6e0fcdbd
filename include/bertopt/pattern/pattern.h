#pragma once
// Declarative subgraph patterns. A fusion writes the subgraph it matches as a tree of value
// patterns, rooted at the value its fused node will replace, and gets named bindings back:
//
//   P x = Any("x");
//   P mean = Op("ReduceMean", {x}, "mean");
//   P diff = Op("Sub", {x, mean}, "diff");
//   P root = Op("Div", {diff, Op("Sqrt", {...})});
//   MatchResult r = MatchPattern(graph, node, root);
//
// Rules the matcher enforces once for every fusion:
// - A name bound twice must bind the same value (or node) both times; that is how DAG-shaped
//   patterns (one value read by several matched nodes) are written.
// - Containment: every value computed by a matched node, other than the root's output, is read
//   only by matched nodes and is not a graph output (nodes under Shared() are exempt: they are read
//   but not replaced, and dead-code removal deletes them when nothing else reads them).
// A failed match returns the reason, naming the node where it failed.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bertopt/ir/graph.h"

namespace bertopt::pattern {

class Match;
struct PatternNode;

/// Extra check on a matched node (or, for Any/Const, on the value's producer-less value): returns
/// an empty string to accept, or the reason to reject.
using NodeCheck = std::function<std::string(const ir::Graph&, const ir::Node&, const Match&)>;
using ValueCheck = std::function<std::string(const ir::Graph&, const ir::Value&, const Match&)>;

/// A handle to an immutable pattern node; modifiers return a modified copy.
class P {
 public:
  P() = default;
  explicit P(std::shared_ptr<const PatternNode> node) : node_(std::move(node)) {}

  /// Op patterns with two inputs: also try them swapped.
  P Commutative() const;
  /// Op patterns: the node's domain (default: the ONNX domain).
  P Domain(std::string_view domain) const;
  /// Op patterns: the value must be output `index` of the node (default 0).
  P Output(int index) const;
  /// Op patterns: run `check` after the node and its inputs matched.
  P Where(NodeCheck check) const;
  /// Any/Const patterns: run `check` on the value.
  P WhereValue(ValueCheck check) const;
  /// Op patterns: the node and everything under it is read, not replaced (no containment check,
  /// not in Match::owned_nodes()).
  P Shared() const;
  /// Bind this pattern's value (and node, for Op) to `name`.
  P Bind(std::string_view name) const;

  const PatternNode* get() const { return node_.get(); }
  explicit operator bool() const { return node_ != nullptr; }

 private:
  std::shared_ptr<const PatternNode> node_;
};

/// Any value (not an omitted optional input).
P Any(std::string_view bind = {});
/// A constant value: an initializer or a Constant node's output.
P Const(std::string_view bind = {});
/// A constant with exactly one element equal to `value` within `tolerance` (absolute, scaled by
/// max(1, |value|)).
P Scalar(double value, double tolerance = 1e-6, std::string_view bind = {});
/// A value computed by a node of type `op_type` whose first inputs match `inputs` (the node may
/// have more inputs, e.g. the axes of an opset-13 Unsqueeze).
P Op(std::string_view op_type, std::vector<P> inputs, std::string_view bind = {});
/// The first alternative that matches.
P OneOf(std::vector<P> alternatives);
/// `pattern`, or the value itself when it is not produced that way: Optional(Op("Cast", {x}), x)
/// accepts x with or without a Cast in front.
P Optional(P wrapper, P inner);

class Match {
 public:
  ir::Node* root() const { return root_; }
  /// The value bound to `name`; nullptr when unbound.
  ir::Value* value(std::string_view name) const;
  ir::Value* operator[](std::string_view name) const { return value(name); }
  /// The node bound to `name`; nullptr when unbound.
  ir::Node* node(std::string_view name) const;
  bool has(std::string_view name) const { return value(name) != nullptr; }
  /// Nodes the fused node replaces (root included), in match order, without duplicates.
  const std::vector<ir::Node*>& owned_nodes() const { return owned_; }

 private:
  friend class Matcher;
  ir::Node* root_ = nullptr;
  std::map<std::string, ir::Value*, std::less<>> values_;
  std::map<std::string, ir::Node*, std::less<>> nodes_;
  std::vector<ir::Node*> owned_;
};

class MatchResult {
 public:
  static MatchResult Success(Match m) { return MatchResult(std::move(m), {}); }
  static MatchResult Failure(std::string reason) { return MatchResult({}, std::move(reason)); }
  bool ok() const { return reason_.empty(); }
  const Match& match() const { return match_; }
  const std::string& reason() const { return reason_; }

 private:
  MatchResult(Match m, std::string reason) : match_(std::move(m)), reason_(std::move(reason)) {}
  Match match_;
  std::string reason_;
};

/// Matches `pattern` (an Op pattern) at `root` and checks containment.
MatchResult MatchPattern(const ir::Graph& graph, ir::Node* root, const P& pattern);

/// Containment alone, for fusions that assemble a match by hand: every output of `nodes` other
/// than those in `allowed_outputs` is read only by `nodes` and is not a graph output. Returns ""
/// or the reason.
std::string CheckContained(const std::vector<ir::Node*>& nodes,
                           const std::vector<const ir::Value*>& allowed_outputs);

}  // namespace bertopt::pattern
