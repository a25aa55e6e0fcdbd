// bertopt quantize: load, quantize to int8 (dynamic, for ORT's CPU kernels), report, save.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bertopt/io/model_io.h"
#include "commands.h"
#include "fmt/format.h"
#include "quantize_report.h"

namespace bertopt::cli {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

/// "12 QAttention, 36 DynamicQuantizeMatMul" from the counts whose op passes `keep`.
template <typename Keep>
std::string CountList(const std::map<std::string, int>& counts, Keep keep) {
  std::string out;
  for (const auto& [op, n] : counts) {
    if (n > 0 && keep(op)) out += fmt::format("{}{} {}", out.empty() ? "" : ", ", n, op);
  }
  return out.empty() ? "none" : out;
}

/// Indices of report.weights, largest relative error first.
std::vector<size_t> WorstFirst(const passes::QuantizeReport& r) {
  std::vector<size_t> order(r.weights.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return r.weights[a].relative_rms_error > r.weights[b].relative_rms_error;
  });
  return order;
}

double MeanError(const passes::QuantizeReport& r) {
  double sum = 0;
  for (const auto& w : r.weights) sum += w.relative_rms_error;
  return r.weights.empty() ? 0 : sum / static_cast<double>(r.weights.size());
}

int Fail(const std::string& name, const Status& s) {
  std::fprintf(stderr, "%s: %s\n", name.c_str(), s.message().c_str());
  return s.code() == StatusCode::kInternal ? kExitFailed : kExitBadInput;
}

}  // namespace

void AddQuantizeFlags(CLI::App& app, QuantizeFlags& flags) {
  app.add_option("--int8_exclude", flags.exclude,
                 "weights or nodes (comma-separated names) to keep in float32")
      ->delimiter(',');
  app.add_flag("--per_tensor", flags.per_tensor,
               "one scale per weight instead of one per output column");
  app.add_option("--matmul_form", flags.matmul_form,
                 "DynamicQuantizeMatMul (default) or MatMulIntegerToFloat (behind a "
                 "DynamicQuantizeLinear)")
      ->capture_default_str();
  app.add_option("--int8_max_error", flags.max_weight_error,
                 "also keep in float32 a weight whose own int8 rounding error (relative RMS) "
                 "would exceed this (0: no such rule)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_option("--int8_min_cosine", flags.calibration.min_cosine,
                 "calibrate: keep in float32 the fewest MatMul / Attention, largest measured "
                 "error first, for every output to stay at this cosine to float32 on generated "
                 "inputs (0: no calibration)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  app.add_option("--int8_calibration_samples", flags.calibration.samples,
                 "generated batches the calibration runs")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--worst", flags.worst, "how many of the worst-quantized weights to list")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
}

StatusOr<passes::QuantizeOptions> ToQuantizeOptions(const QuantizeFlags& flags) {
  passes::QuantizeOptions o;
  o.exclude = flags.exclude;
  o.per_channel = !flags.per_tensor;
  o.max_weight_error = flags.max_weight_error;
  ASSIGN_OR_RETURN(o.matmul_form, passes::ParseMatMulForm(flags.matmul_form));
  return o;
}

StatusOr<std::optional<ort::CalibrationReport>> CalibrateIfAsked(const onnx::ModelProto& model,
                                                                 const QuantizeFlags& flags,
                                                                 passes::QuantizeOptions& options) {
  if (flags.calibration.min_cosine <= 0) return std::optional<ort::CalibrationReport>();
  // Calibration hands the model to ORT in memory, which protobuf caps at 2 GB.
  if (!io::FitsOneMessage(model)) {
    std::fprintf(stderr,
                 "warning: int8 calibration skipped: the model is over 2 GB, more than ONNX "
                 "Runtime takes from memory; every candidate is int8 (--int8_exclude keeps one "
                 "float32, --int8_min_cosine 0 silences this)\n");
    return std::optional<ort::CalibrationReport>();
  }
  auto report = ort::CalibrateInt8(model, options, flags.calibration);
  if (!report.ok()) {
    return std::move(report).status().WithContext(
        "int8 calibration (--int8_min_cosine 0 skips it)");
  }
  return std::optional<ort::CalibrationReport>(*std::move(report));
}

void PrintCalibration(const ort::CalibrationReport& r) {
  const ort::CalibrationOptions& o = r.options;
  std::printf(
      "\nint8 calibration: %d generated batches (B=%d, S=%d), target: every output at cosine >= "
      "%g to float32\n",
      o.samples, o.batch_size, o.sequence_length, o.min_cosine);
  for (const auto& p : r.probes) {
    std::printf("  %3d of %d candidates kept float32: lowest cosine %.6f%s\n", p.kept_float,
                r.candidates, p.min_cosine, p.min_cosine >= o.min_cosine ? "" : " (misses)");
  }
  std::printf("  chosen: %zu kept float32, lowest cosine %.6f, in %.2f s\n", r.kept_float.size(),
              r.min_cosine, r.seconds);
  if (!r.ranking.empty()) {
    std::printf("  largest product errors (activation uint8, weight int8):\n");
    const size_t shown = std::min(r.ranking.size(), std::max<size_t>(5, r.kept_float.size() + 2));
    for (size_t i = 0; i < shown; ++i) {
      std::printf("    %6.2f %%  %s (%s)%s\n", 100 * r.ranking[i].relative_error,
                  r.ranking[i].key.c_str(), r.ranking[i].op.c_str(),
                  i < r.kept_float.size() ? "  float32" : "");
    }
  }
}

nlohmann::json CalibrationJson(const ort::CalibrationReport& r) {
  nlohmann::json j;
  j["min_cosine_target"] = r.options.min_cosine;
  j["samples"] = r.options.samples;
  j["batch_size"] = r.options.batch_size;
  j["sequence_length"] = r.options.sequence_length;
  j["candidates"] = r.candidates;
  nlohmann::json probes = nlohmann::json::array();
  for (const auto& p : r.probes) {
    probes.push_back({{"kept_float", p.kept_float}, {"min_cosine", p.min_cosine}});
  }
  j["probes"] = probes;
  nlohmann::json ranking = nlohmann::json::array();
  for (const auto& e : r.ranking) {
    ranking.push_back({{"node", e.key}, {"op", e.op}, {"relative_error", e.relative_error}});
  }
  j["ranking"] = ranking;
  j["kept_float"] = r.kept_float;
  j["min_cosine"] = r.min_cosine;
  j["seconds"] = r.seconds;
  return j;
}

void PrintQuantizeReport(const passes::QuantizeReport& r, const passes::QuantizeOptions& o,
                         int worst, bool verbose) {
  std::printf("\nint8: weights symmetric int8 (%s), activations uint8 per tensor at run time\n",
              o.per_channel ? "one scale per output column" : "one scale per tensor");
  std::printf("\n  %-30s %7s %7s\n", "op", "before", "after");
  std::map<std::string, std::pair<int, int>> rows;
  for (const auto& [op, n] : r.ops_before) rows[op].first = n;
  for (const auto& [op, n] : r.ops_after) rows[op].second = n;
  for (const auto& [op, counts] : rows) {
    std::printf("  %-30s %7d %7d\n", op.c_str(), counts.first, counts.second);
  }
  std::printf(
      "\nint8 ops: %s (%d bias Add folded)\n",
      CountList(r.ops_after, [](const std::string& op) { return passes::IsInt8Op(op); }).c_str(),
      r.biases_folded);
  std::printf("stays float: %s\n", CountList(r.ops_after, [](const std::string& op) {
                                     return !passes::IsInt8Op(op);
                                   }).c_str());
  if (r.opset_raised_from) {
    std::printf(
        "ai.onnx opset %lld -> 11 (for DynamicQuantizeLinear; every op of the model "
        "means the same at 11)\n",
        static_cast<long long>(r.opset_raised_from));
  }
  if (!r.kept_float.empty()) {
    std::printf("kept in float32 (%zu):\n", r.kept_float.size());
    for (const auto& k : r.kept_float) {
      std::printf("  %s (%s): %s\n", k.node.c_str(), k.op.c_str(), k.reason.c_str());
    }
  }
  if (r.weights.empty()) {
    std::printf("weights: none quantized\n");
  } else {
    const auto order = WorstFirst(r);
    const auto& w0 = r.weights[order[0]];
    std::printf(
        "weights: %zu quantized, %.1f MB float32 -> %.1f MB int8; relative RMS error mean "
        "%.3g%%, worst %.3g%% ('%s')\n",
        r.weights.size(), r.float_weight_bytes / 1e6, r.int8_weight_bytes / 1e6, 100 * MeanError(r),
        100 * w0.relative_rms_error, w0.weight.c_str());
    const size_t shown = verbose ? order.size() : std::min<size_t>(order.size(), worst);
    if (shown > 0) {
      std::printf("\n  %-12s %-12s %-12s %-22s %s\n", "rel RMS err", "max abs err", "shape", "op",
                  "weight");
      for (size_t i = 0; i < shown; ++i) {
        const auto& w = r.weights[order[i]];
        std::printf("  %-12.4g %-12.4g %-12s %-22s %s\n", w.relative_rms_error, w.max_abs_error,
                    ShapeText(w.shape).c_str(), w.op.c_str(), w.weight.c_str());
      }
    }
  }
  std::printf("nodes %d -> %d in %.3f s\n", r.nodes_before, r.nodes_after, r.seconds);
}

nlohmann::json QuantizeReportJson(const passes::QuantizeReport& r,
                                  const passes::QuantizeOptions& o) {
  nlohmann::json j;
  j["per_channel"] = o.per_channel;
  j["matmul_form"] = std::string(passes::MatMulFormName(o.matmul_form));
  j["exclude"] = o.exclude;
  j["ops_before"] = r.ops_before;
  j["ops_after"] = r.ops_after;
  nlohmann::json int8_ops = nlohmann::json::object();
  nlohmann::json float_ops = nlohmann::json::object();
  for (const auto& [op, n] : r.ops_after) (passes::IsInt8Op(op) ? int8_ops : float_ops)[op] = n;
  j["int8_ops"] = int8_ops;
  j["float_ops"] = float_ops;
  j["attention_quantized"] = r.attention_quantized;
  j["matmul_quantized"] = r.matmul_quantized;
  j["biases_folded"] = r.biases_folded;
  j["opset_raised_from"] = r.opset_raised_from;
  nlohmann::json kept = nlohmann::json::array();
  for (const auto& k : r.kept_float) {
    kept.push_back({{"node", k.node}, {"op", k.op}, {"reason", k.reason}});
  }
  j["kept_float"] = kept;
  nlohmann::json weights = nlohmann::json::array();
  for (const auto& w : r.weights) {
    weights.push_back({{"weight", w.weight},
                       {"node", w.node},
                       {"op", w.op},
                       {"shape", w.shape},
                       {"per_channel", w.per_channel},
                       {"relative_rms_error", w.relative_rms_error},
                       {"max_abs_error", w.max_abs_error}});
  }
  j["weights"] = weights;
  j["mean_relative_rms_error"] = MeanError(r);
  if (!r.weights.empty()) j["worst_weight"] = r.weights[WorstFirst(r)[0]].weight;
  j["float_weight_bytes"] = r.float_weight_bytes;
  j["int8_weight_bytes"] = r.int8_weight_bytes;
  j["nodes_before"] = r.nodes_before;
  j["nodes_after"] = r.nodes_after;
  j["seconds"] = r.seconds;
  return j;
}

int QuantizeMain(int argc, char** argv) {
  const std::string name = std::filesystem::path(argv[0]).filename().string();
  CLI::App app{
      "Quantize a (fused) BERT ONNX model to int8 for ONNX Runtime on CPU: Attention -> "
      "QAttention, MatMul with a constant 2-D weight -> DynamicQuantizeMatMul; the rest stays "
      "float32",
      name};
  std::string input, output;
  QuantizeFlags qflags;
  bool json = false, verbose = false, overwrite = false, external_data = false;
  app.add_option("--input", input, "input ONNX model (usually bertopt optimize's output)")
      ->required();
  app.add_option("--output", output, "output ONNX model")->required();
  AddQuantizeFlags(app, qflags);
  app.add_flag("--overwrite", overwrite, "allow --output to be the input file");
  app.add_flag("--external_data", external_data, "store weights in <output>.data");
  app.add_flag("--json", json, "print the report as one JSON object");
  app.add_flag("--verbose", verbose, "list every quantized weight's error");
  if (auto exit_code = ParseFlags(app, name, argc, argv)) return *exit_code;
  auto options = ToQuantizeOptions(qflags);
  if (!options.ok()) return Fail(name, options.status());

  auto model = io::LoadModel(input);
  if (!model.ok()) return Fail(name, model.status());
  auto calibration = CalibrateIfAsked(*model, qflags, *options);
  if (!calibration.ok()) return Fail(name, std::move(calibration).status().WithContext(input));
  auto report = passes::Quantize(*model, *options);
  if (!report.ok()) return Fail(name, std::move(report).status().WithContext(input));

  io::SaveOptions save;
  save.protect = input;
  save.overwrite = overwrite;
  save.external_data = external_data;
  if (Status s = io::SaveModel(*model, output, save); !s.ok()) return Fail(name, s);

  if (json) {
    nlohmann::json j = QuantizeReportJson(*report, *options);
    if (*calibration) j["calibration"] = CalibrationJson(**calibration);
    j["input"] = input;
    j["output"] = output;
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("%s -> %s\n", input.c_str(), output.c_str());
    if (*calibration) PrintCalibration(**calibration);
    PrintQuantizeReport(*report, *options, qflags.worst, verbose);
  }
  return kExitOk;
}

}  // namespace bertopt::cli
