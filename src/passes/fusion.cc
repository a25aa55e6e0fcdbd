#include "bertopt/passes/pass.h"
#include "fmt/format.h"

namespace bertopt::passes {

std::string FusedNodeName(const ir::Node& anchor, std::string_view op_type) {
  const std::string& name = anchor.name();
  const size_t slash = name.rfind('/');
  if (slash == std::string::npos) return std::string(op_type);
  return name.substr(0, slash + 1) + std::string(op_type);
}

Status Fusion::Run(const PassOptions& options, ir::Graph& graph, PassStats& stats) const {
  for (ir::Node* anchor : Anchors(graph)) {
    if (anchor->erased()) continue;  // consumed by an earlier fusion in this pass
    ++stats.candidates;
    const std::string where = anchor->DisplayName();
    FuseResult result = FuseAt(options, graph, anchor);
    if (!result.status().ok()) {
      return Status(result.status()).WithContext(fmt::format("{} at {}", name(), where));
    }
    if (result.fused()) {
      ++stats.fused;
    } else {
      stats.misses.push_back(fmt::format("{} at {}: {}", name(), where, result.reason()));
    }
  }
  if (stats.fused > 0) {
    stats.counters["dead nodes removed"] += graph.RemoveDeadNodes();
  }
  return Status::Ok();
}

}  // namespace bertopt::passes
