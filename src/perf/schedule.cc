#include "perf/schedule.h"

#include <string>

namespace bertopt::perf {

StatusOr<std::vector<std::vector<double>>> RunInterleaved(std::span<const TimedRun> runs,
                                                          const ScheduleOptions& options,
                                                          const ProgressCallback& progress) {
  if (runs.empty()) return InvalidArgument("nothing to run: no models");
  if (options.samples < 1 || options.test_times < 1 || options.warmup < 0) {
    return InvalidArgument("schedule needs samples >= 1, test_times >= 1 and warmup >= 0");
  }
  for (int round = 0; round < options.warmup; ++round) {
    for (size_t m = 0; m < runs.size(); ++m) {
      StatusOr<double> ignored = runs[m](round % options.samples);
      if (!ignored.ok()) {
        return std::move(ignored).status().WithContext("warm-up run " + std::to_string(round + 1));
      }
    }
  }
  std::vector<std::vector<double>> latencies(runs.size());
  for (auto& per_model : latencies) per_model.reserve(static_cast<size_t>(options.test_times));
  for (int round = 0; round < options.test_times; ++round) {
    for (size_t m = 0; m < runs.size(); ++m) {
      StatusOr<double> ms = runs[m](round % options.samples);
      if (!ms.ok()) {
        return std::move(ms).status().WithContext("timed run " + std::to_string(round + 1));
      }
      latencies[m].push_back(*ms);
    }
    if (progress) progress(round + 1, options.test_times);
  }
  return latencies;
}

}  // namespace bertopt::perf
