// `bertopt compare` / compare_bert_results: run a baseline and an optimized BERT model on the same
// random inputs and report whether their outputs agree. Exit 0 all samples passed, 1 some did not,
// 2 bad input (flags, files, models).
#include <CLI/CLI.hpp>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "commands.h"
#include "ort/compare.h"

namespace bertopt::cli {
namespace {

// NaN (a non-finite output) has no JSON spelling: null.
}  // namespace

int CompareMain(int argc, char** argv) {
  // "bertopt compare", or the alias name without the folder it was run from.
  const std::string name =
      argc > 0 ? std::filesystem::path(argv[0]).filename().string() : "compare";
  CLI::App app{
      "Run a baseline and an optimized BERT model through ONNX Runtime (graph "
      "optimizations disabled) on the same random inputs and compare every output.",
      name};
  // Ranges (at least 1 sample, ...) are checked by CompareModels, which optimize --verify also
  // calls; CLI11 only converts.
  ort::CompareOptions o;
  std::string baseline, optimized, output_dir;
  app.add_option("--baseline_model", baseline, "the original model")->required();
  app.add_option("--optimized_model", optimized, "the optimized model")->required();
  app.add_option("--batch_size", o.batch_size, "batch size of each sample")->capture_default_str();
  app.add_option("--sequence_length", o.sequence_length, "sequence length of each sample")
      ->capture_default_str();
  app.add_option("--samples", o.samples, "number of random samples")->capture_default_str();
  app.add_option("--seed", o.seed, "seed of the random inputs")->capture_default_str();
  app.add_option("--rtol", o.rtol, "relative tolerance")->capture_default_str();
  app.add_option("--atol", o.atol, "absolute tolerance")->capture_default_str();
  app.add_flag("--use_gpu", o.use_gpu, "run on the CUDA execution provider");
  app.add_option("--output_dir", output_dir,
                 "where batch_B_seq_S/test_data_set_0 goes (default: beside the optimized model)");
  app.add_option("--input_ids_name", o.input_ids_name, "graph input holding the token ids");
  app.add_option("--segment_ids_name", o.segment_ids_name, "graph input holding the segment ids");
  app.add_option("--input_mask_name", o.input_mask_name, "graph input holding the attention mask");
  app.add_flag("--verbose", o.verbose, "also print how inputs were found and failing samples");
  double min_cosine = 0, max_abs_diff = 0;
  CLI::Option* cosine_flag = app.add_option(
      "--min_cosine", min_cosine,
      "tolerance mode (quantized models): lowest cosine similarity of each output to the "
      "baseline's, per sample");
  CLI::Option* abs_flag = app.add_option(
      "--max_abs_diff", max_abs_diff,
      "tolerance mode (quantized models): largest absolute difference of any element");
  bool json = false;
  app.add_flag("--json", json, "print the result as one JSON object (the log goes to stderr)");

  if (auto exit_code = ParseFlags(app, name, argc, argv)) return *exit_code;
  if (*cosine_flag) o.min_cosine = min_cosine;
  if (*abs_flag) o.max_abs_diff = max_abs_diff;
  if (o.tolerance_mode() && (app.count("--rtol") || app.count("--atol"))) {
    std::cerr << name << ": --rtol/--atol set the allclose mode and cannot be combined with "
              << "--min_cosine/--max_abs_diff (see --help)\n";
    return kExitBadInput;
  }
  o.baseline_model = baseline;
  o.optimized_model = optimized;
  o.output_dir = output_dir;

  auto report = ort::CompareModels(o, json ? std::cerr : std::cout);
  if (!report.ok()) {
    std::cerr << name << ": " << report.status().ToString() << "\n";
    return kExitBadInput;
  }
  if (json) std::cout << ort::CompareReportToJson(o, *report).dump(2) << "\n";
  return report->AllPassed() ? kExitOk : kExitFailed;
}

}  // namespace bertopt::cli
