// bertopt optimize (also installed as bert_model_optimization): load, fuse, report, (verify), save.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "bertopt/io/model_io.h"
#include "bertopt/ir/validate.h"
#include "bertopt/optimize.h"
#include "commands.h"
#include "fmt/format.h"
#include "io/cleanup_on_signal.h"
#include "ort/compare.h"
#include "ort/session.h"
#include "ort/version.h"
#include "passes/report_json.h"
#include "passes/targets.h"
#include "perf/tune.h"
#include "quantize_report.h"

namespace bertopt::cli {
namespace {

namespace fs = std::filesystem;

struct Flags {
  std::string input;
  std::string output;
  OptimizeOptions options;
  int sequence_length = 128;
  bool verbose = false;
  bool json = false;
  bool verify = false;
  bool overwrite = false;
  bool external_data = false;
  std::string target_ort_version;  ///< "" = the linked ORT's; "none" = every fusion
  bool tune = false;
  bool skip_ort_check = false;
  perf::TuneOptions tune_options;
  bool int8 = false;  // then quantize (bertopt quantize)
  QuantizeFlags quantize;
};

nlohmann::json ReportJson(const Flags& f, const OptimizeReport& r) {
  nlohmann::json j = OptimizeReportJson(r, f.options);
  j["input"] = f.input;
  j["output"] = f.output;
  return j;
}

void PrintReport(const Flags& f, const OptimizeReport& r) {
  if (r.model_type.evidence.empty()) {
    std::printf("%s -> %s (model_type %s)\n", f.input.c_str(), f.output.c_str(),
                r.model_type.model_type.c_str());
  } else {
    std::printf("%s -> %s (model_type %s, detected from %s)\n", f.input.c_str(), f.output.c_str(),
                r.model_type.model_type.c_str(), r.model_type.evidence.c_str());
  }
  if (!r.target.empty()) std::printf("target: %s\n", r.target.c_str());
  if (f.verbose) {
    std::printf("\n  %-26s %10s %6s %9s\n", "pass", "candidates", "fused", "time (ms)");
    for (const auto& p : r.passes) {
      std::printf("  %-26s %10d %6d %9.1f\n", p.name.c_str(), p.candidates, p.fused,
                  p.seconds * 1e3);
    }
    bool any_miss = false;
    for (const auto& p : r.passes) {
      for (const auto& m : p.misses) {
        if (!any_miss) std::printf("\nnot fused:\n");
        any_miss = true;
        std::printf("  %s\n", m.c_str());
      }
    }
  }
  std::printf("\n  %-26s %5s\n", "fused operator", "count");
  for (const std::string& op : ReportedOpTypes()) {
    const int n = r.fused_ops.count(op) ? r.fused_ops.at(op) : 0;
    std::printf("  %-26s %5d\n", op.c_str(), n);
  }
  if (r.verdict.fully_optimized) {
    std::printf("\nverdict: fully optimized (%d layers)\n", r.verdict.layers);
  } else {
    std::string missing;
    for (const auto& m : r.verdict.missing) missing += (missing.empty() ? "" : "; ") + m;
    std::printf("\nverdict: not fully optimized: %s\n", missing.c_str());
  }
  std::printf("nodes %d -> %d in %.3f s\n", r.nodes_before, r.nodes_after, r.seconds);
  if (f.options.input_int32) {
    std::string names;
    for (const auto& n : r.int32_inputs) names += (names.empty() ? "" : ", ") + n;
    std::printf("input_int32: %s now int32; %d Cast(to=int64) added for int64 readers\n",
                names.empty() ? "no int64 (B, S) input" : names.c_str(), r.int32_casts_added);
  }
  if (f.options.gpu_only) {
    std::printf("gpu_only: %d BiasGelu/Gelu emitted as FastGelu (tanh approximation)\n",
                r.gpu_fast_gelus);
  }
  if (r.float16) {
    const Float16Report& h = *r.float16;
    std::printf(
        "float16: %d tensors (%lld values) converted, %d Casts added, %d removed, "
        "inputs/outputs %s\n",
        h.tensors_converted, static_cast<long long>(h.values_converted), h.casts_added,
        h.casts_removed, f.options.float16_options.keep_io_types ? "kept float32" : "float16");
    std::printf(
        "  out of float16 range: %lld clamped to +-65504, %lld tiny values raised to "
        "+-2^-24",
        static_cast<long long>(h.values_clamped), static_cast<long long>(h.values_raised));
    if (h.most_changed_count > 0) {
      std::printf(" (%lld of them in %s)", static_cast<long long>(h.most_changed_count),
                  h.most_changed_tensor.c_str());
    }
    std::printf("\n  rounding: largest relative change %.3g%s%s\n", h.max_relative_change,
                h.worst_tensor.empty() ? "" : " in ", h.worst_tensor.c_str());
    std::string blocked;
    for (const auto& b : h.blocked_nodes) blocked += (blocked.empty() ? "" : ", ") + b;
    std::printf("  kept in float32: %s\n", blocked.empty() ? "nothing" : blocked.c_str());
    if (!f.options.gpu_only) {
      std::printf(
          "  %d nodes compute in float32 on float16 weights: ORT's CPU provider has no float16 "
          "kernel for them (--gpu_only computes them in float16)\n",
          h.cpu_float32_nodes);
    }
  }
  std::printf("size %.2f MB -> %.2f MB\n", static_cast<double>(r.bytes_before) / 1e6,
              static_cast<double>(r.bytes_after) / 1e6);
}

// "A,B" -> {"A", "B"}; an empty entry is kept (and rejected by the conversion, naming the flag).
std::vector<std::string> SplitList(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find(',', start);
    out.push_back(text.substr(start, comma - start));
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

// Saves the model under its final file name in a private folder beside the target (so an external
// data file keeps the name the model refers to), compares it with the input through ORT, and only
// then moves it into place. A failed comparison is kFailedPrecondition.
Status SaveVerified(const Flags& f, const onnx::ModelProto& model, io::SaveOptions save) {
  const fs::path target = fs::absolute(f.output);
  std::error_code ec;
  if (!f.overwrite && fs::equivalent(f.input, target, ec)) {
    return InvalidArgument(fmt::format(
        "{}: is the input model; refusing to write over it (use --overwrite)", f.output));
  }
  const fs::path staging = target.parent_path() / (".bertopt-verify-" + target.filename().string());
  const fs::path candidate = staging / target.filename();
  // If a signal comes, the candidate (and its external data) and the folder go. Registered before
  // the folder exists, so a signal just after it is created cannot leave it behind.
  const int folder_slot = io::RememberForCleanup(staging, /*is_folder=*/true);
  const int candidate_slot = io::RememberForCleanup(candidate);
  const int data_slot = io::RememberForCleanup(fs::path(candidate.string() + ".data"));
  const auto forget = [&] {
    for (int slot : {candidate_slot, data_slot, folder_slot}) io::ForgetCleanup(slot);
  };
  fs::remove_all(staging, ec);
  if (!fs::create_directory(staging, ec)) {
    forget();
    return IoError(
        fmt::format("{}: cannot create {}: {}", f.output, staging.string(), ec.message()));
  }
  Status s = io::SaveModel(model, candidate, save);
  io::TestSignalPoint("verify");
  ort::CompareOptions c;
  c.baseline_model = f.input;
  c.optimized_model = candidate;
  c.sequence_length = f.sequence_length;
  c.samples = 10;
  c.write_test_data = false;
  if (f.int8) {
    c.min_cosine = 0.99;  // int8 cannot pass allclose: the tolerance mode
  } else if (f.options.float16 || f.options.gpu_only) {
    // float16 keeps 11 significant bits, and FastGelu approximates erf GELU: what "unchanged"
    // means for them (the bar for both).
    c.rtol = 1e-2;
    c.atol = 1e-2;
  }
  std::ostringstream log;
  if (s.ok()) {
    auto report = ort::CompareModels(c, log);
    if (!report.ok()) {
      s = report.status();
    } else if (!report->AllPassed()) {
      std::fputs(log.str().c_str(), stderr);
      s = FailedPrecondition(fmt::format(
          "--verify: the optimized model does not match {}; nothing written (rerun without "
          "--verify to write it anyway, or disable the fusion at fault with --disable_*)",
          f.input));
    } else if (f.verbose) {
      std::fputs(log.str().c_str(), stderr);
    }
  }
  // External data first, the model last: the model never points at a missing or old data file.
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(staging, ec)) {
    if (entry.path() != candidate) files.push_back(entry.path());
  }
  files.push_back(candidate);
  {
    // One step as far as SIGINT / SIGTERM go (a signal meanwhile is handled after it, with the
    // output complete): between the renames the data would be in place without its model.
    io::DeferSignals defer;
    for (const fs::path& file : files) {
      if (!s.ok()) break;
      fs::rename(file, target.parent_path() / file.filename(), ec);
      if (ec) s = IoError(fmt::format("{}: {}", f.output, ec.message()));
      if (file != candidate) io::TestSignalPoint("move");
    }
    fs::remove_all(staging, ec);
    forget();
  }
  return s;
}

// Measures the variants in a private folder (removed afterwards, whatever happens).
StatusOr<perf::TuneReport> TuneInto(const Flags& f, const onnx::ModelProto& model) {
  std::error_code ec;
  const fs::path work =
      fs::temp_directory_path() / fmt::format("bertopt-tune-{}-{}", ::getpid(), std::rand());
  // Registered first, so a signal just after the folder is created cannot leave it behind.
  const int slot = io::RememberForCleanup(work, /*is_folder=*/true);
  fs::create_directories(work, ec);
  if (ec) {
    io::ForgetCleanup(slot);
    return IoError(fmt::format("--tune: cannot create {}: {}", work.string(), ec.message()));
  }
  auto report = perf::Tune(f.input, model, f.options, f.tune_options, work, stderr);
  fs::remove_all(work, ec);
  io::ForgetCleanup(slot);
  return report;
}

nlohmann::json TuneJson(const Flags& f, const perf::TuneReport& t) {
  nlohmann::json j;
  j["batch_size"] = f.tune_options.batch_size;
  j["sequence_length"] = f.tune_options.sequence_length;
  j["original_p50_ms"] = t.original_p50_ms;
  j["chosen"] = t.variants[t.chosen].name;
  nlohmann::json variants = nlohmann::json::array();
  for (const auto& v : t.variants) {
    variants.push_back({{"name", v.name},
                        {"p50_ms", v.p50_ms},
                        {"min_ms", v.min_ms},
                        {"ratio_to_original", v.p50_ms / t.original_p50_ms},
                        {"fused_ops", v.fused_ops}});
  }
  j["variants"] = variants;
  return j;
}

void PrintTune(const perf::TuneReport& t) {
  std::printf("tune: original p50 %.2f ms\n", t.original_p50_ms);
  for (size_t i = 0; i < t.variants.size(); ++i) {
    const auto& v = t.variants[i];
    std::printf("  %s %-58s p50 %9.2f ms  %.3f of the original\n",
                static_cast<int>(i) == t.chosen ? "*" : " ", v.name.c_str(), v.p50_ms,
                v.p50_ms / t.original_p50_ms);
  }
  std::printf("tune: chose '%s'\n\n", t.variants[t.chosen].name.c_str());
}

// After the optimized model failed `check`: reruns the passes on a fresh copy of the input to find
// the first one whose output fails it (FindCulprit), and says what to do about it.
std::string Blame(const Flags& f, const std::function<Status(const onnx::ModelProto&)>& check) {
  auto original = io::LoadModel(f.input);
  if (!original.ok()) return "Please report it.";
  auto culprit = FindCulprit(*original, f.options, check);
  if (!culprit.ok()) {
    return fmt::format("Finding the pass at fault failed too ({}); please report it.",
                       culprit.status().message());
  }
  if (!culprit->has_value()) {
    if (f.int8) {
      return "Every pass's output passes; the int8 quantization is at fault: please report it.";
    }
    return "Rerun with the --disable_* flags one at a time to find the fusion at fault, and "
           "please report it.";
  }
  const Culprit& c = **culprit;
  std::string flag;
  for (const char* fusion :
       {"attention", "skip_layer_norm", "embed_layer_norm", "bias_gelu", "gelu", "layer_norm"}) {
    if (c.pass == fusion) flag = fmt::format(" (--disable_{} switches it off)", fusion);
  }
  if (c.pass == "fast_gelu") flag = " (--disable_gelu switches it off)";
  return fmt::format(
      "The first step whose output fails is pass '{}' (step {} of {}, found by rerunning the "
      "pipeline on the input); please report it{}.",
      c.pass, c.step, c.steps, flag);
}

int Fail(const Status& s) {
  std::fprintf(stderr, "bertopt optimize: %s\n", s.message().c_str());
  return s.code() == StatusCode::kInternal ? kExitFailed : kExitBadInput;
}

}  // namespace

int OptimizeMain(int argc, char** argv) {
  Flags f;
  CLI::App app{"Fuse a BERT ONNX model into ONNX Runtime's fused operators", argv[0]};
  app.add_option("--input", f.input, "input ONNX model")->required();
  app.add_option("--output", f.output, "output ONNX model")->required();
  app.add_option("--model_type", f.options.pass.model_type,
                 "auto (default: from the producer and layout), bert (PyTorch), bert_tf "
                 "(tf2onnx) or bert_keras (keras2onnx)")
      ->check(CLI::IsMember({"auto", "bert", "bert_tf", "bert_keras"}));
  app.add_option("--num_heads", f.options.pass.num_heads,
                 "attention heads (checked against the graph)")
      ->check(CLI::PositiveNumber);
  app.add_option("--hidden_size", f.options.pass.hidden_size,
                 "hidden size (checked against the graph)")
      ->check(CLI::PositiveNumber);
  app.add_option("--sequence_length", f.sequence_length,
                 "sequence length used by --verify and --tune")
      ->check(CLI::PositiveNumber);
  app.add_option("--target_ort_version", f.target_ort_version,
                 "the ONNX Runtime the model will run on (default: the linked one, " +
                     ort::RuntimeVersion() +
                     "): fusions slower there than what they replace are left out; 'none' "
                     "emits every fusion");
  app.add_flag("--skip_ort_check", f.skip_ort_check,
               "do not check that ONNX Runtime loads the output before writing it (the check "
               "runs for models below 256 MB)");
  app.add_flag("--tune", f.tune,
               "measure the fused-form variants on this machine with the linked ONNX Runtime "
               "and keep the fastest");
  app.add_option("--batch_size", f.tune_options.batch_size, "batch size --tune measures")
      ->check(CLI::PositiveNumber);
  app.add_option("--intra_op_num_threads", f.tune_options.intra_op_threads,
                 "threads --tune measures with (default: every hardware thread)")
      ->check(CLI::PositiveNumber);
  app.add_option("--tune_test_times", f.tune_options.test_times, "timed runs per variant")
      ->check(CLI::PositiveNumber);
  app.add_flag("--input_int32", f.options.input_int32, "make the model inputs int32");
  app.add_flag("--float16", f.options.float16, "convert the model to float16");
  app.add_flag("--keep_io_types,!--no_keep_io_types", f.options.float16_options.keep_io_types,
               "--float16: keep float32 graph inputs/outputs, with Casts (default on)");
  std::string op_block_list;
  std::string node_block_list;
  app.add_option("--op_block_list", op_block_list,
                 "--float16: op types to keep in float32, comma-separated (added to the defaults)");
  app.add_option("--node_block_list", node_block_list,
                 "--float16: node names to keep in float32, comma-separated");
  app.add_flag("--gpu_only", f.options.gpu_only,
               "emit the forms ORT's CUDA kernels prefer (FastGelu for erf GELU)");
  app.add_flag("--disable_attention", f.options.disable_attention);
  app.add_flag("--disable_skip_layer_norm", f.options.disable_skip_layer_norm);
  app.add_flag("--disable_embed_layer_norm", f.options.disable_embed_layer_norm);
  app.add_flag("--disable_bias_gelu", f.options.disable_bias_gelu);
  app.add_flag("--disable_gelu", f.options.disable_gelu);
  app.add_flag("--disable_layer_norm", f.options.disable_layer_norm);
  app.add_flag("--disable_first_token", f.options.disable_first_token,
               "compute every token in the layers after the last Attention even when only the "
               "first token is read (the pooler)");
  app.add_flag("--residual_sum", f.options.residual_sum,
               "write a residual Add + LayerNormalization left unfused as Sum + "
               "LayerNormalization, which ORT does not turn into SkipLayerNormalization");
  app.add_flag("--use_raw_attention_mask", f.options.pass.use_raw_attention_mask,
               "feed Attention the raw 2-D mask (any padding) instead of a 1-D mask index");
  app.add_flag("--verify", f.verify, "compare with the input through ORT before writing");
  app.add_flag("--overwrite", f.overwrite, "allow --output to be the input file");
  app.add_flag("--external_data", f.external_data, "store weights in <output>.data");
  app.add_flag("--json", f.json, "print the report as one JSON object");
  app.add_flag("--verbose", f.verbose, "per-pass statistics and why each candidate did not fuse");
  app.add_flag("--int8", f.int8, "then quantize to int8, as bertopt quantize (flags below)");
  AddQuantizeFlags(app, f.quantize);
  const std::string name = fs::path(argv[0]).filename().string();
  if (auto exit_code = ParseFlags(app, name, argc, argv)) return *exit_code;
  if (!op_block_list.empty()) f.options.float16_options.op_block_list = SplitList(op_block_list);
  if (!node_block_list.empty()) {
    f.options.float16_options.node_block_list = SplitList(node_block_list);
  }
  if (!f.options.float16) {
    const char* flag = app.count("--op_block_list") > 0           ? "--op_block_list"
                       : app.count("--node_block_list") > 0       ? "--node_block_list"
                       : !f.options.float16_options.keep_io_types ? "--no_keep_io_types"
                                                                  : nullptr;
    if (flag) return Fail(InvalidArgument(fmt::format("{}: only applies with --float16", flag)));
  }

  if (f.target_ort_version.empty()) f.target_ort_version = ort::RuntimeVersion();
  if (f.target_ort_version != "none") f.options.target_ort_version = f.target_ort_version;
  if (auto forms =
          passes::TargetFor(f.options.target_ort_version.empty() ? ort::RuntimeVersion()
                                                                 : f.options.target_ort_version);
      !forms.ok()) {
    return Fail(forms.status());
  }
  for (const char* flag : {"--int8_exclude", "--per_tensor", "--matmul_form", "--worst",
                           "--int8_max_error", "--int8_min_cosine", "--int8_calibration_samples"}) {
    if (!f.int8 && app.count(flag))
      return Fail(InvalidArgument(fmt::format("{} needs --int8", flag)));
  }
  auto quantize_options = ToQuantizeOptions(f.quantize);
  if (!quantize_options.ok()) return Fail(quantize_options.status());

  // Mapped: the weights no pass rewrites go from the input file to the output without being
  // copied into memory (README, "I/O").
  auto loaded = io::LoadModelMapped(f.input);
  if (!loaded.ok()) return Fail(loaded.status());
  onnx::ModelProto* model = &loaded->model();
  io::TestSignalPoint("load");
  std::optional<perf::TuneReport> tuned;
  if (f.tune) {
    f.tune_options.sequence_length = f.sequence_length;
    auto t = TuneInto(f, *model);
    if (!t.ok()) return Fail(std::move(t).status().WithContext(f.input));
    tuned = *std::move(t);
    f.options = tuned->variants[tuned->chosen].options;
  }
  const int64_t bytes_before = io::SerializedSize(*model);
  auto report = Optimize(*model, f.options);
  if (!report.ok() && report.status().code() == StatusCode::kInternal) {
    // A pass broke the graph (our fault, not the input's): say which one first did.
    std::fprintf(stderr, "bertopt optimize: %s: %s. %s\n", f.input.c_str(),
                 report.status().message().c_str(),
                 Blame(f, [](const onnx::ModelProto& m) { return ir::ValidateModel(m); }).c_str());
    return kExitFailed;
  }
  if (!report.ok()) return Fail(std::move(report).status().WithContext(f.input));
  // Optimize() counts ByteSizeLong, which leaves out the payloads still in the mapped input.
  report->bytes_before = bytes_before;
  report->bytes_after = io::SerializedSize(*model);
  io::TestSignalPoint("passes");
  for (const std::string& warning : report->warnings) {
    std::fprintf(stderr, "bertopt optimize: warning: %s: %s\n", f.input.c_str(), warning.c_str());
  }
  StatusOr<passes::QuantizeReport> int8 = passes::QuantizeReport{};
  std::optional<ort::CalibrationReport> calibration;
  if (f.int8) {
    auto calibrated = CalibrateIfAsked(*model, f.quantize, *quantize_options);
    if (!calibrated.ok()) return Fail(std::move(calibrated).status().WithContext(f.input));
    calibration = *std::move(calibrated);
    int8 = passes::Quantize(*model, *quantize_options);
  }
  if (!int8.ok()) return Fail(std::move(int8).status().WithContext(f.input));

  // The last line of defence: ORT itself must accept what we are about to write. It holds the
  // serialized bytes and ORT's own copy beside the model (about 3x its size: 2.7 s and 1.4 GB
  // instead of 1.6 s and 0.46 GB for BERT-base here), so it runs below 256 MB only; --verify
  // loads any model through ORT anyway.
  constexpr size_t kOrtCheckLimit = size_t{256} << 20;
  if (!f.skip_ort_check && static_cast<size_t>(io::SerializedSize(*model)) < kOrtCheckLimit) {
    auto bytes = io::SerializeModel(*model);
    if (!bytes.ok()) return Fail(bytes.status());
    if (Status s = ort::CheckLoads(*bytes); !s.ok()) {
      // ORT may refuse the input already (an op it does not know, a type our checks do not
      // cover): that is bad input, not a fault of ours.
      ort::SessionConfig unoptimized;
      unoptimized.level = ort::OptLevel::kDisabled;
      auto input = ort::Session::Create(f.input, unoptimized);
      if (!input.ok()) {
        return Fail(InvalidModel(fmt::format("{}: ONNX Runtime refuses the input model: {}",
                                             f.input, input.status().message())));
      }
      std::fprintf(stderr,
                   "bertopt optimize: %s: ONNX Runtime refuses the optimized model (%s); nothing "
                   "is written. %s\n",
                   f.input.c_str(), s.message().c_str(),
                   Blame(f, [](const onnx::ModelProto& m) {
                     RETURN_IF_ERROR(ir::ValidateModel(m));
                     return ort::CheckLoads(m.SerializeAsString());
                   }).c_str());
      return kExitFailed;
    }
  }

  io::SaveOptions save;
  save.protect = f.input;
  save.overwrite = f.overwrite;
  save.external_data = f.external_data;
  if (f.verify) {
    Status s = SaveVerified(f, *model, save);
    if (!s.ok()) {
      if (s.code() != StatusCode::kFailedPrecondition) return Fail(s);
      std::fprintf(stderr, "bertopt optimize: %s\n", s.message().c_str());
      return kExitFailed;
    }
  } else {
    Status s = io::SaveModel(*model, f.output, save);
    if (!s.ok()) return Fail(s);
  }

  if (f.json) {
    nlohmann::json j = ReportJson(f, *report);
    if (tuned) j["tune"] = TuneJson(f, *tuned);
    if (f.int8) j["int8"] = QuantizeReportJson(*int8, *quantize_options);
    if (calibration) j["int8"]["calibration"] = CalibrationJson(*calibration);
    std::cout << j.dump(2) << "\n";
  } else {
    if (tuned) PrintTune(*tuned);
    PrintReport(f, *report);
    if (calibration) PrintCalibration(*calibration);
    if (f.int8) PrintQuantizeReport(*int8, *quantize_options, f.quantize.worst, f.verbose);
  }
  return kExitOk;
}

}  // namespace bertopt::cli
