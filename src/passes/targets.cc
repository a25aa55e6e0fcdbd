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
  // bench/RESULTS.md section 2c (bench/versions.sh, 2026-11-30): BERT-base, torch 1.13 export,
  // opset 11, S=128, 2 threads, ORT level all, both forms interleaved with the original.
  static const std::vector<TargetForms> kTargets = {
      {.ort_version = "1.29",
       .skip_layer_norm = true,
       .evidence = "ORT 1.29: SkipLayerNormalization and Add + LayerNormalization measured "
                   "equal (p50 0.958 / 0.950 of the original at B1, 0.928 / 0.928 at B8); the "
                   "fused form is kept"},
      {.ort_version = "1.30",
       .skip_layer_norm = false,
       .residual_sum = true,
       .evidence = "ORT 1.30 rewrote both kernels (per-op profile: LayerNormalization about 6x "
                   "faster, SkipLayerNormalization about 3.7x slower than 1.29), and its own "
                   "fusion turns a residual Add + LayerNormalization back into "
                   "SkipLayerNormalization; written as Sum it stays LayerNormalization: all "
                   "kernels 0.976 of the original against 1.043 (B1, 1 thread, "
                   "bench/ort132_findings.md)"},
      // bench/ort132_findings.md: the "equal" of section 2c was one graph measured twice (ORT's
      // own fusion turns a residual Add + LayerNormalization back into SkipLayerNormalization),
      // and on 1.32 that kernel is the cost; the residual as Sum keeps LayerNormalization.
      {.ort_version = "1.32",
       .skip_layer_norm = false,
       .residual_sum = true,
       .evidence = "ORT 1.32: its own SkipLayerNormFusion turns a residual Add + "
                   "LayerNormalization back into SkipLayerNormalization, about 8x slower there "
                   "(one site, B1: 0.75 against 0.09 ms); the residual written as Sum is left "
                   "alone: CPU time per run (1 thread) 1.015 / 0.989 of the original at B1 / B8, "
                   "against 1.054 / 1.034 for Add + LayerNormalization (A/A 0.985 / 1.007)"},
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
