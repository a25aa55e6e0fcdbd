#pragma once
// The order in which `bertopt perf` runs models. Comparing two models by timing all of A and then
// all of B lets anything that changes over time (clock boost, thermal throttling, another process
// waking up) land on one model only. Interleaving run by run, with every model on the same input at
// the same moment, spreads such drift over all models alike, so their medians stay comparable on a
// noisy machine.

#include <functional>
#include <span>
#include <vector>

#include "bertopt/status.h"

namespace bertopt::perf {

/// Performs one run on generated input number `sample` and returns the measured latency in ms. The
/// callable owns the clock, so it decides what is measured (only ORT's run, or also creating the
/// input tensors and reading the outputs); the scheduler never times anything itself.
using TimedRun = std::function<StatusOr<double>(int sample)>;

struct ScheduleOptions {
  int warmup = 5;        ///< untimed rounds first, to fill caches and let ORT allocate
  int test_times = 100;  ///< timed rounds; each model runs once per round
  int samples = 10;      ///< distinct inputs; round r uses sample r % samples
};

/// Called after each timed round (never inside a run) with rounds done and rounds in all.
using ProgressCallback = std::function<void(int rounds_done, int rounds_total)>;

/// Runs `runs` (one per model) in rounds: round r runs model 0, 1, ..., M-1 in turn, each on sample
/// r % samples. Warm-up rounds go the same way and are not recorded. Returns
/// latencies[model][round] with test_times entries per model, or the first error a run returned.
StatusOr<std::vector<std::vector<double>>> RunInterleaved(std::span<const TimedRun> runs,
                                                          const ScheduleOptions& options,
                                                          const ProgressCallback& progress = {});

}  // namespace bertopt::perf
