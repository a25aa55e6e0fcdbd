// bertopt optimize (also installed as bert_model_optimization): load, fuse, report, (verify), save.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "bertopt/io/model_io.h"
#include "bertopt/optimize.h"
#include "commands.h"
#include "fmt/format.h"
#include "io/cleanup_on_signal.h"
#include "ort/compare.h"
#include "ort/version.h"
#include "passes/targets.h"
#include "perf/tune.h"

namespace bertopt::cli {
namespace {

namespace fs = std::filesystem;

struct Flags {
  std::string input;
  std::string output;
  OptimizeOptions options;
  int sequence_length = 128;
  bool gpu_only = false;
  bool verbose = false;
  bool json = false;
  bool verify = false;
  bool overwrite = false;
  bool external_data = false;
  std::string target_ort_version;  ///< "" = the linked ORT's; "none" = every fusion
  bool tune = false;
  perf::TuneOptions tune_options;
};

nlohmann::json ReportJson(const Flags& f, const OptimizeReport& r) {
  nlohmann::json j;
  j["input"] = f.input;
  j["output"] = f.output;
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
  fs::remove_all(staging, ec);
  if (!fs::create_directory(staging, ec)) {
    return IoError(
        fmt::format("{}: cannot create {}: {}", f.output, staging.string(), ec.message()));
  }
  const fs::path candidate = staging / target.filename();
  // If a signal comes, the candidate (and its external data) and the folder go.
  const int folder_slot = io::RememberForCleanup(staging, /*is_folder=*/true);
  const int candidate_slot = io::RememberForCleanup(candidate);
  const int data_slot = io::RememberForCleanup(fs::path(candidate.string() + ".data"));
  Status s = io::SaveModel(model, candidate, save);
  io::TestSignalPoint("verify");
  ort::CompareOptions c;
  c.baseline_model = f.input;
  c.optimized_model = candidate;
  c.sequence_length = f.sequence_length;
  c.samples = 10;
  c.write_test_data = false;
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
  for (const fs::path& file : files) {
    if (!s.ok()) break;
    fs::rename(file, target.parent_path() / file.filename(), ec);
    if (ec) s = IoError(fmt::format("{}: {}", f.output, ec.message()));
  }
  fs::remove_all(staging, ec);
  for (int slot : {candidate_slot, data_slot, folder_slot}) io::ForgetCleanup(slot);
  return s;
}

// Measures the variants in a private folder (removed afterwards, whatever happens).
StatusOr<perf::TuneReport> TuneInto(const Flags& f, const onnx::ModelProto& model) {
  std::error_code ec;
  const fs::path work =
      fs::temp_directory_path() / fmt::format("bertopt-tune-{}-{}", ::getpid(), std::rand());
  fs::create_directories(work, ec);
  if (ec) return IoError(fmt::format("--tune: cannot create {}: {}", work.string(), ec.message()));
  const int slot = io::RememberForCleanup(work, /*is_folder=*/true);
  const int tsv_slot = io::RememberForCleanup(work / "tune.tsv");
  auto report = perf::Tune(f.input, model, f.options, f.tune_options, work, stderr);
  fs::remove_all(work, ec);
  io::ForgetCleanup(tsv_slot);
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
  app.add_flag("--gpu_only", f.gpu_only, "allow fusions only the GPU runs");
  app.add_flag("--disable_attention", f.options.disable_attention);
  app.add_flag("--disable_skip_layer_norm", f.options.disable_skip_layer_norm);
  app.add_flag("--disable_embed_layer_norm", f.options.disable_embed_layer_norm);
  app.add_flag("--disable_bias_gelu", f.options.disable_bias_gelu);
  app.add_flag("--disable_gelu", f.options.disable_gelu);
  app.add_flag("--disable_layer_norm", f.options.disable_layer_norm);
  app.add_flag("--use_raw_attention_mask", f.options.pass.use_raw_attention_mask,
               "feed Attention the raw 2-D mask (any padding) instead of a 1-D mask index");
  app.add_flag("--verify", f.verify, "compare with the input through ORT before writing");
  app.add_flag("--overwrite", f.overwrite, "allow --output to be the input file");
  app.add_flag("--external_data", f.external_data, "store weights in <output>.data");
  app.add_flag("--json", f.json, "print the report as one JSON object");
  app.add_flag("--verbose", f.verbose, "per-pass statistics and why each candidate did not fuse");
  const std::string name = fs::path(argv[0]).filename().string();
  if (auto exit_code = ParseFlags(app, name, argc, argv)) return *exit_code;
  if (f.gpu_only) return Fail(Unimplemented("--gpu_only: not available yet"));

  if (f.target_ort_version.empty()) f.target_ort_version = ort::RuntimeVersion();
  if (f.target_ort_version != "none") f.options.target_ort_version = f.target_ort_version;
  if (auto forms =
          passes::TargetFor(f.options.target_ort_version.empty() ? ort::RuntimeVersion()
                                                                 : f.options.target_ort_version);
      !forms.ok()) {
    return Fail(forms.status());
  }

  auto model = io::LoadModel(f.input);
  if (!model.ok()) return Fail(model.status());
  io::TestSignalPoint("load");
  std::optional<perf::TuneReport> tuned;
  if (f.tune) {
    f.tune_options.sequence_length = f.sequence_length;
    auto t = TuneInto(f, *model);
    if (!t.ok()) return Fail(std::move(t).status().WithContext(f.input));
    tuned = *std::move(t);
    f.options = tuned->variants[tuned->chosen].options;
  }
  auto report = Optimize(*model, f.options);
  if (!report.ok()) return Fail(std::move(report).status().WithContext(f.input));
  io::TestSignalPoint("passes");
  for (const std::string& warning : report->warnings) {
    std::fprintf(stderr, "bertopt optimize: warning: %s: %s\n", f.input.c_str(), warning.c_str());
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
    std::cout << j.dump(2) << "\n";
  } else {
    if (tuned) PrintTune(*tuned);
    PrintReport(f, *report);
  }
  return kExitOk;
}

}  // namespace bertopt::cli
