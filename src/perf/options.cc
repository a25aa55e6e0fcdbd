#include "perf/options.h"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <set>
#include <thread>

namespace bertopt::perf {

using ort::OptLevel;
using ort::ParseOptLevel;
namespace {

template <typename T>
std::vector<T> Deduplicate(const std::vector<T>& values) {
  std::vector<T> out;
  std::set<T> seen;
  for (const T& v : values) {
    if (seen.insert(v).second) out.push_back(v);
  }
  return out;
}

template <typename T>
Status RequireAllPositive(const std::string& flag, const std::vector<T>& values) {
  for (const T& v : values) {
    if (v <= 0) return InvalidArgument(fmt::format("{}: must be positive, got {}", flag, v));
  }
  return Status::Ok();
}

// Checked now rather than after the benchmark, so a read-only folder does not cost the whole run.
Status RequireWritableFolder(const std::string& flag, const std::filesystem::path& file) {
  std::filesystem::path folder = file.parent_path();
  if (folder.empty()) folder = ".";
  std::error_code ec;
  if (!std::filesystem::is_directory(folder, ec)) {
    return NotFound(fmt::format("{}: folder {} does not exist", flag, folder.string()));
  }
  if (access(folder.c_str(), W_OK) != 0) {
    return InvalidArgument(fmt::format("{}: folder {} is not writable", flag, folder.string()));
  }
  if (std::filesystem::is_directory(file, ec)) {
    return InvalidArgument(fmt::format("{}: {} is a folder, not a file name", flag, file.string()));
  }
  return Status::Ok();
}

}  // namespace

std::vector<int> DefaultThreadCounts() {
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  return Deduplicate(std::vector<int>{1, std::max(cores, 1)});
}

StatusOr<PerfOptions> ParsePerfArgs(int argc, const char* const* argv) {
  PerfOptions o;
  std::string opt_level = "all";
  const std::string name = argc > 0 && argv[0] != nullptr ? argv[0] : "bertopt perf";
  CLI::App app("Measure the inference latency of BERT ONNX models with ONNX Runtime.", name);
  app.footer(
      "Each setting (model, batch size, sequence length, threads) runs --warmup untimed runs, then "
      "--test_times timed runs cycling through --samples generated inputs. Latencies are in ms; "
      "percentiles interpolate linearly between closest ranks (numpy's default); "
      "QPS = batch_size * 1000 / average. With several --model, runs are interleaved (A, B, A, B, "
      "...) on the same inputs and each model's median is compared with the first model's.");
  app.add_option("--model", o.models, "ONNX model file(s); two or more are compared")
      ->required()
      ->expected(1, -1);
  app.add_option("--batch_size", o.batch_sizes, "batch size(s)")
      ->expected(1, -1)
      ->capture_default_str();
  app.add_option("--sequence_length", o.sequence_lengths, "sequence length(s)")
      ->expected(1, -1)
      ->capture_default_str();
  app.add_option("--samples", o.samples, "distinct generated inputs")->capture_default_str();
  app.add_option("--test_times", o.test_times, "timed runs per setting")->capture_default_str();
  app.add_option("--warmup", o.warmup, "untimed runs per setting before timing")
      ->capture_default_str();
  app.add_option("--intra_op_num_threads", o.intra_op_threads,
                 "ORT intra-op thread count(s) (default: 1 and all cores)")
      ->expected(1, -1);
  app.add_option("--opt_level", opt_level, "ORT graph optimization: disabled, basic, extended, all")
      ->capture_default_str();
  app.add_flag("--inclusive", o.inclusive,
               "also time creating the input tensors and reading the outputs");
  app.add_flag("--use_gpu", o.use_gpu, "run on the CUDA execution provider");
  app.add_flag("--use_io_binding", o.use_io_binding, "bind inputs and outputs with IoBinding");
  app.add_option("--seed", o.seed, "seed of the generated inputs")->capture_default_str();
  app.add_option("--input_ids_name", o.input_names.input_ids, "graph input holding token ids");
  app.add_option("--segment_ids_name", o.input_names.segment_ids,
                 "graph input holding segment (token type) ids");
  app.add_option("--input_mask_name", o.input_names.input_mask,
                 "graph input holding the attention mask");
  app.add_option("--output", o.output,
                 "TSV results (default: perf_results_{CPU|GPU}_B{b}_S{s}_{timestamp}.tsv beside "
                 "the first model)");
  app.add_flag("--json", o.json, "print the results as one JSON object instead of the table");
  app.add_option("--plot", o.plot, "write an SVG chart of P50 latency with P90 whiskers");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    o.help = true;
    o.help_text = app.help();
    return o;
  } catch (const CLI::ParseError& e) {
    return InvalidArgument(e.what());
  }

  // Models are not deduplicated: the same file given twice is an A/A run that shows the noise.
  o.batch_sizes = Deduplicate(o.batch_sizes);
  o.sequence_lengths = Deduplicate(o.sequence_lengths);
  if (o.intra_op_threads.empty()) o.intra_op_threads = DefaultThreadCounts();
  o.intra_op_threads = Deduplicate(o.intra_op_threads);

  RETURN_IF_ERROR(RequireAllPositive("--batch_size", o.batch_sizes));
  RETURN_IF_ERROR(RequireAllPositive("--sequence_length", o.sequence_lengths));
  RETURN_IF_ERROR(RequireAllPositive("--test_times", std::vector<int>{o.test_times}));
  RETURN_IF_ERROR(RequireAllPositive("--samples", std::vector<int>{o.samples}));
  RETURN_IF_ERROR(RequireAllPositive("--intra_op_num_threads", o.intra_op_threads));
  if (o.warmup < 0) {
    return InvalidArgument(fmt::format("--warmup: must be 0 or more, got {}", o.warmup));
  }
  StatusOr<OptLevel> level = ParseOptLevel(opt_level);
  if (!level.ok()) return std::move(level).status().WithContext("--opt_level");
  o.opt_level = *level;

  for (const std::string& model : o.models) {
    std::error_code ec;
    if (!std::filesystem::exists(model, ec)) {
      return NotFound(fmt::format("--model: no such file: {}", model));
    }
    if (!std::filesystem::is_regular_file(model, ec)) {
      return InvalidArgument(fmt::format("--model: not a file: {}", model));
    }
  }
  if (o.output.empty()) {
    RETURN_IF_ERROR(RequireWritableFolder("--output (default, beside the first model)",
                                          std::filesystem::path(o.models.front())));
  } else {
    RETURN_IF_ERROR(RequireWritableFolder("--output", o.output));
  }
  if (!o.plot.empty()) RETURN_IF_ERROR(RequireWritableFolder("--plot", o.plot));
  return o;
}

}  // namespace bertopt::perf
