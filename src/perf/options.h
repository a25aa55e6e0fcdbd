#pragma once
// The flags of `bertopt perf` (also installed as bert_perf_test), parsed and checked before
// anything is loaded or timed, so a typo costs a one-line message instead of a half-finished
// benchmark.

#include <cstdint>
#include <string>
#include <vector>

#include "bertopt/status.h"
#include "ort/bert_inputs.h"
#include "ort/session.h"

namespace bertopt::perf {

using ort::BertInputs;
using ort::OptLevel;

struct PerfOptions {
  std::vector<std::string> models;
  std::vector<int64_t> batch_sizes = {1};
  std::vector<int64_t> sequence_lengths = {128};
  int samples = 10;
  int test_times = 100;
  int warmup = 5;
  /// Default {1, all cores}: the single-thread latency and what the whole machine gives.
  std::vector<int> intra_op_threads;
  OptLevel opt_level = OptLevel::kAll;
  bool inclusive = false;
  bool use_gpu = false;
  bool use_io_binding = false;
  uint64_t seed = 42;
  BertInputs input_names;  ///< --*_name overrides; "" means detect
  std::string output;      ///< TSV path; "" means the default name beside the first model
  bool json = false;
  std::string plot;  ///< SVG path; "" means no plot

  bool help = false;      ///< --help was given: print help_text and stop
  std::string help_text;  ///< CLI11's usage text for the display name
};

/// Parses argv (argv[0] is the display name) and checks every value: positive batch sizes,
/// sequence lengths, test_times, samples and threads, warmup >= 0, a known --opt_level, model files
/// that exist, and folders for --output / --plot (or beside the first model) that can be written.
/// Setting lists are deduplicated in the order given; models are not (an A/A comparison of one
/// file with itself is a fair way to see the noise). Errors are kInvalidArgument or kNotFound with
/// a one-line message that starts with the flag ("--batch_size: ...").
StatusOr<PerfOptions> ParsePerfArgs(int argc, const char* const* argv);

/// {1, hardware threads} without duplicates ({1} on a one-core machine).
std::vector<int> DefaultThreadCounts();

}  // namespace bertopt::perf
