#pragma once
// Passes and their statistics. A pass runs over the graph and reports what it did; the ordered
// list of passes per model type lives in one registry (src/passes/registry.cc).

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "bertopt/ir/graph.h"
#include "bertopt/status.h"

namespace bertopt::passes {

/// What passes may need to know beyond the graph. Zero means "read it from the graph".
struct PassOptions {
  /// auto (detected from the model), bert (PyTorch), bert_tf (tf2onnx) or bert_keras (keras2onnx).
  std::string model_type = "auto";
  int num_heads = 0;
  int hidden_size = 0;
  /// Feed Attention the raw (B, S) int32 mask instead of the 1-D mask index (correct for any
  /// padding, not only right padding).
  bool use_raw_attention_mask = false;
};

/// Counters one pass reports.
struct PassStats {
  std::string name;
  int candidates = 0;  ///< anchors examined (fusions)
  int fused = 0;       ///< fusions done, or nodes changed (cleanup passes)
  /// Named counters ("nodes removed", "initializers removed", ...).
  std::map<std::string, int> counters;
  /// The first reason each candidate that did not fuse failed, prefixed with its anchor node.
  std::vector<std::string> misses;
  double seconds = 0;
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual std::string_view name() const = 0;
  /// Runs over the whole graph. Errors are for invalid models or contradictory user input; a
  /// pattern that does not match is not an error (it is a miss in `stats`).
  [[nodiscard]] virtual Status Run(const PassOptions& options, ir::Graph& graph,
                                   PassStats& stats) const = 0;
};

/// The outcome of trying one fusion at one anchor.
class FuseResult {
 public:
  static FuseResult Fused() { return FuseResult(Status::Ok(), {}); }
  static FuseResult Miss(std::string reason) { return FuseResult(Status::Ok(), std::move(reason)); }
  static FuseResult Error(Status status) { return FuseResult(std::move(status), {}); }
  bool fused() const { return status_.ok() && reason_.empty(); }
  const std::string& reason() const { return reason_; }
  const Status& status() const { return status_; }

 private:
  FuseResult(Status s, std::string r) : status_(std::move(s)), reason_(std::move(r)) {}
  Status status_;
  std::string reason_;
};

/// Base of every fusion: finds anchors (a distinctive op of the pattern, e.g. Softmax for
/// attention), tries each, counts, records the first reason per miss, and removes what the
/// fusions left dead.
class Fusion : public Pass {
 public:
  Status Run(const PassOptions& options, ir::Graph& graph, PassStats& stats) const final;

 protected:
  /// Nodes to try, in graph order.
  virtual std::vector<ir::Node*> Anchors(const ir::Graph& graph) const = 0;
  /// Tries to fuse the pattern around `anchor`; on success the graph is already rewritten.
  virtual FuseResult FuseAt(const PassOptions& options, ir::Graph& graph,
                            ir::Node* anchor) const = 0;
};

/// A fused node's name in the anchor's scope, so it reads like the exporter's:
/// "/bert/encoder/layer.0/attention/self/Softmax" + "Attention" ->
/// "/bert/encoder/layer.0/attention/self/Attention"; just `op_type` when the anchor has no scope.
std::string FusedNodeName(const ir::Node& anchor, std::string_view op_type);

/// One entry of a pipeline: the pass and whether the user disabled it.
using Pipeline = std::vector<std::unique_ptr<Pass>>;

}  // namespace bertopt::passes
