// bertopt optimize (also installed as bert_model_optimization): load, fuse, report, (verify), save.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "bertopt/io/model_io.h"
#include "bertopt/optimize.h"
#include "commands.h"
#include "fmt/format.h"
#include "ort/compare.h"
#include "quantize_report.h"

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
  bool int8 = false;  // then quantize (bertopt quantize)
  QuantizeFlags quantize;
};

nlohmann::json ReportJson(const Flags& f, const OptimizeReport& r) {
  nlohmann::json j;
  j["input"] = f.input;
  j["output"] = f.output;
  j["model_type"] = r.model_type.model_type;
  j["model_type_evidence"] = r.model_type.evidence;
  j["warnings"] = r.warnings;
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
  Status s = io::SaveModel(model, candidate, save);
  ort::CompareOptions c;
  c.baseline_model = f.input;
  c.optimized_model = candidate;
  c.sequence_length = f.sequence_length;
  c.samples = 10;
  c.write_test_data = false;
  if (f.int8) c.min_cosine = 0.99;  // int8 cannot pass allclose: the tolerance mode
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
  return s;
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
  app.add_option("--sequence_length", f.sequence_length, "sequence length used by --verify")
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
  app.add_flag("--int8", f.int8, "then quantize to int8, as bertopt quantize (flags below)");
  AddQuantizeFlags(app, f.quantize);
  const std::string name = fs::path(argv[0]).filename().string();
  if (auto exit_code = ParseFlags(app, name, argc, argv)) return *exit_code;
  if (f.gpu_only) return Fail(Unimplemented("--gpu_only: not available yet"));
  for (const char* flag : {"--int8_exclude", "--per_tensor", "--matmul_form", "--worst"}) {
    if (!f.int8 && app.count(flag)) return Fail(InvalidArgument(fmt::format("{} needs --int8", flag)));
  }
  auto quantize_options = ToQuantizeOptions(f.quantize);
  if (!quantize_options.ok()) return Fail(quantize_options.status());

  auto model = io::LoadModel(f.input);
  if (!model.ok()) return Fail(model.status());
  auto report = Optimize(*model, f.options);
  if (!report.ok()) return Fail(std::move(report).status().WithContext(f.input));
  for (const std::string& warning : report->warnings) {
    std::fprintf(stderr, "bertopt optimize: warning: %s: %s\n", f.input.c_str(), warning.c_str());
  }
  StatusOr<passes::QuantizeReport> int8 = passes::QuantizeReport{};
  if (f.int8) int8 = passes::Quantize(*model, *quantize_options);
  if (!int8.ok()) return Fail(std::move(int8).status().WithContext(f.input));

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
    if (f.int8) j["int8"] = QuantizeReportJson(*int8, *quantize_options);
    std::cout << j.dump(2) << "\n";
  } else {
    PrintReport(f, *report);
    if (f.int8) PrintQuantizeReport(*int8, *quantize_options, f.quantize.worst, f.verbose);
  }
  return kExitOk;
}

}  // namespace bertopt::cli
