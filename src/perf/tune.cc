#include "perf/tune.h"

#include <ctime>
#include <tuple>

#include "bertopt/io/model_io.h"
#include "fmt/format.h"
#include "io/cleanup_on_signal.h"
#include "passes/targets.h"
#include "perf/command.h"

namespace bertopt::perf {
namespace {

// The families a variant leaves out, the target table's choice applied: two variants with the
// same key build the same model.
auto Key(const OptimizeOptions& o) {
  bool skip_off = o.disable_skip_layer_norm;
  bool sum = o.residual_sum;
  if (!o.target_ort_version.empty()) {
    auto forms = passes::TargetFor(o.target_ort_version);
    skip_off |= forms.ok() && !forms->skip_layer_norm;
    sum |= forms.ok() && !forms->skip_layer_norm && forms->residual_sum;
  }
  return std::tuple(o.disable_attention, skip_off, skip_off && sum, o.disable_embed_layer_norm,
                    o.disable_bias_gelu, o.disable_gelu, o.disable_layer_norm);
}

}  // namespace

std::vector<TuneVariant> TuneVariants(const OptimizeOptions& base) {
  std::vector<TuneVariant> out;
  auto add = [&out](std::string name, const OptimizeOptions& o) {
    for (const TuneVariant& v : out) {
      if (Key(v.options) == Key(o)) return;
    }
    out.push_back({.name = std::move(name),
                   .options = o,
                   .file = {},
                   .fused_ops = {},
                   .p50_ms = 0,
                   .min_ms = 0});
  };
  add(base.target_ort_version.empty() ? "every fusion"
                                      : "target table (ORT " + base.target_ort_version + ")",
      base);
  OptimizeOptions all = base;
  all.target_ort_version.clear();
  add("every fusion", all);
  OptimizeOptions o = all;
  o.disable_skip_layer_norm = true;
  // The residual as Sum: a plain Add + LayerNormalization is turned back into
  // SkipLayerNormalization by ORT's own fusion, so it would measure the same as every fusion.
  o.residual_sum = true;
  add("without SkipLayerNormalization (Sum + LayerNormalization)", o);
  o = all;
  o.disable_attention = true;
  add("without Attention", o);
  o = all;
  o.disable_embed_layer_norm = true;
  add("without EmbedLayerNormalization", o);
  o = all;
  o.disable_bias_gelu = true;
  add("without BiasGelu (Add + Gelu)", o);
  o = all;
  o.disable_attention = o.disable_skip_layer_norm = o.disable_embed_layer_norm =
      o.disable_bias_gelu = o.disable_gelu = o.disable_layer_norm = true;
  add("no fusion (cleanups only)", o);
  return out;
}

StatusOr<TuneReport> Tune(const std::filesystem::path& input, const onnx::ModelProto& original,
                          const OptimizeOptions& base, const TuneOptions& options,
                          const std::filesystem::path& work_dir, std::FILE* err) {
  TuneReport report;
  report.variants = TuneVariants(base);
  // The variants go if a signal comes (the caller removes the folder otherwise).
  std::vector<int> slots;
  struct Forget {
    std::vector<int>& slots;
    ~Forget() {
      for (int s : slots) io::ForgetCleanup(s);
    }
  } forget{slots};
  for (size_t i = 0; i < report.variants.size(); ++i) {
    TuneVariant& v = report.variants[i];
    onnx::ModelProto model = original;
    auto optimized = Optimize(model, v.options);
    if (!optimized.ok()) {
      return std::move(optimized).status().WithContext(fmt::format("--tune variant '{}'", v.name));
    }
    v.fused_ops = optimized->fused_ops;
    v.file = work_dir / fmt::format("variant_{}.onnx", i);
    slots.push_back(io::RememberForCleanup(v.file));
    RETURN_IF_ERROR(io::SaveModel(model, v.file));
  }

  // One interleaved measurement: the original first (ratios are to it), then every variant.
  PerfOptions measure;
  measure.models = {input.string()};
  for (const TuneVariant& v : report.variants) measure.models.push_back(v.file.string());
  measure.batch_sizes = {options.batch_size};
  measure.sequence_lengths = {options.sequence_length};
  measure.test_times = options.test_times;
  measure.warmup = options.warmup;
  measure.samples = 5;
  measure.intra_op_threads = {options.intra_op_threads > 0 ? options.intra_op_threads
                                                           : DefaultThreadCounts().back()};
  if (err) {
    std::fprintf(err,
                 "tune: measuring the original and %zu variants, B=%lld S=%lld, %d runs each\n",
                 report.variants.size(), static_cast<long long>(options.batch_size),
                 static_cast<long long>(options.sequence_length), options.test_times);
  }
  const std::time_t now = std::time(nullptr);
  std::tm started{};
  localtime_r(&now, &started);
  ASSIGN_OR_RETURN(PerfReport measured, MeasurePerf(measure, started, nullptr));
  for (const PerfRow& row : measured.rows) {
    const int index = row.setting.model_index;
    if (index == 0) {
      report.original_p50_ms = row.latency.p50_ms;
    } else if (index - 1 < static_cast<int>(report.variants.size())) {
      report.variants[index - 1].p50_ms = row.latency.p50_ms;
      report.variants[index - 1].min_ms = row.latency.min_ms;
    }
  }
  for (size_t i = 0; i < report.variants.size(); ++i) {
    if (report.chosen < 0 || report.variants[i].p50_ms < report.variants[report.chosen].p50_ms) {
      report.chosen = static_cast<int>(i);
    }
  }
  return report;
}

}  // namespace bertopt::perf
