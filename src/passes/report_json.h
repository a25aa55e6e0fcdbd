#pragma once
// The optimize report as JSON: what `bertopt optimize --json` prints (besides the input and output
// paths) and what the Python package's `report` holds. One definition, so a field added to the
// report reaches both. Header-only: the Python module built without ORT links only the core.

#include <nlohmann/json.hpp>

#include "bertopt/optimize.h"

namespace bertopt {

inline nlohmann::json OptimizeReportJson(const OptimizeReport& r, const OptimizeOptions& o) {
  nlohmann::json j;
  j["model_type"] = r.model_type.model_type;
  j["model_type_evidence"] = r.model_type.evidence;
  j["warnings"] = r.warnings;
  j["target"] = r.target;
  j["fused_ops"] = r.fused_ops;
  j["layers"] = r.verdict.layers;
  j["fully_optimized"] = r.verdict.fully_optimized;
  j["missing"] = r.verdict.missing;
  j["nodes_before"] = r.nodes_before;
  j["nodes_after"] = r.nodes_after;
  j["bytes_before"] = r.bytes_before;
  j["bytes_after"] = r.bytes_after;
  if (r.float16) {
    const Float16Report& h = *r.float16;
    j["float16"] = {{"keep_io_types", o.float16_options.keep_io_types},
                    {"tensors_converted", h.tensors_converted},
                    {"values_converted", h.values_converted},
                    {"values_clamped", h.values_clamped},
                    {"values_raised", h.values_raised},
                    {"most_changed_tensor", h.most_changed_tensor},
                    {"most_changed_count", h.most_changed_count},
                    {"max_relative_change", h.max_relative_change},
                    {"worst_tensor", h.worst_tensor},
                    {"casts_added", h.casts_added},
                    {"casts_removed", h.casts_removed},
                    {"blocked_nodes", h.blocked_nodes},
                    {"cpu_float32_nodes", h.cpu_float32_nodes}};
  }
  if (o.gpu_only) j["gpu_only"] = {{"fast_gelus", r.gpu_fast_gelus}};
  if (o.input_int32) {
    j["input_int32"] = {{"inputs", r.int32_inputs}, {"casts_added", r.int32_casts_added}};
  }
  j["seconds"] = r.seconds;
  nlohmann::json passes = nlohmann::json::array();
  for (const auto& p : r.passes) {
    passes.push_back({{"name", p.name},
                      {"candidates", p.candidates},
                      {"fused", p.fused},
                      {"counters", p.counters},
                      {"misses", p.misses},
                      {"seconds", p.seconds}});
  }
  j["passes"] = passes;
  return j;
}

}  // namespace bertopt
