#include "passes/targets.h"

#include <charconv>
#include <optional>
#include <utility>

#include "fmt/format.h"

namespace bertopt::passes {
namespace {

// (major, minor) of "1.30" / "1.30.0"; nullopt when it does not parse.
std::optional<std::pair<int, int>> MajorMinor(std::string_view version) {
  int major = 0;
  int minor = 0;
  const char* end = version.data() + version.size();
  auto [p, ec] = std::from_chars(version.data(), end, major);
  if (ec != std::errc() || p == end || *p != '.') return std::nullopt;
  auto [q, ec2] = std::from_chars(p + 1, end, minor);
  if (ec2 != std::errc() || (q != end && *q != '.')) return std::nullopt;
  return std::pair(major, minor);
}

}  // namespace

const std::vector<TargetForms>& MeasuredTargets() {
  // bench/RESULTS.md, "Fused forms per ORT version": BERT-base, torch 1.13 export, opset 11,
  // S=128, 2 threads, ORT level all, each form against the others in one interleaved run.
  static const std::vector<TargetForms> kTargets = {
      {.ort_version = "1.29",
       .skip_layer_norm = true,
       .evidence = "ORT 1.29: SkipLayerNormalization is faster than Add + LayerNormalization"},
      {.ort_version = "1.30",
       .skip_layer_norm = false,
       .evidence = "ORT 1.30: Add + LayerNormalization is faster than SkipLayerNormalization "
                   "(its LayerNormalization kernel got about 6x faster, SkipLayerNormalization "
                   "about 3.7x slower)"},
  };
  return kTargets;
}

StatusOr<TargetForms> TargetFor(std::string_view version, std::string* note) {
  const auto wanted = MajorMinor(version);
  if (!wanted) {
    return InvalidArgument(fmt::format(
        "--target_ort_version {}: not a version (expected major.minor, e.g. 1.30)", version));
  }
  const TargetForms* best = nullptr;
  for (const TargetForms& t : MeasuredTargets()) {
    if (MajorMinor(t.ort_version) <= wanted) best = &t;
  }
  if (!best) {
    return InvalidArgument(fmt::format(
        "--target_ort_version {}: older than every measured ONNX Runtime (the oldest is {})",
        version, MeasuredTargets().front().ort_version));
  }
  if (note) {
    *note = MajorMinor(best->ort_version) == wanted
                ? std::string()
                : fmt::format(
                      "ORT {} is not measured; using the forms of {}, the newest measured "
                      "version before it",
                      version, best->ort_version);
  }
  return *best;
}

}  // namespace bertopt::passes
