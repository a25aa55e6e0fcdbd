#include "perf/stats.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>
#include <string>

namespace bertopt::perf {

double PercentileOfSorted(std::span<const double> sorted_values, double p) {
  assert(!sorted_values.empty());
  const size_t n = sorted_values.size();
  const double clamped = std::clamp(p, 0.0, 100.0);
  const double rank = static_cast<double>(n - 1) * clamped / 100.0;
  const auto lower = static_cast<size_t>(std::floor(rank));
  if (lower + 1 >= n) return sorted_values[n - 1];
  const double fraction = rank - static_cast<double>(lower);
  return sorted_values[lower] + fraction * (sorted_values[lower + 1] - sorted_values[lower]);
}

double Median(std::span<const double> values) {
  std::vector<double> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  return PercentileOfSorted(sorted, 50);
}

StatusOr<LatencySummary> SummarizeLatencies(std::span<const double> latencies_ms) {
  if (latencies_ms.empty()) return InvalidArgument("no latencies to summarize");
  for (double v : latencies_ms) {
    if (!std::isfinite(v) || v < 0) {
      return InvalidArgument("latency " + std::to_string(v) +
                             " ms is not a finite, non-negative "
                             "duration");
    }
  }
  std::vector<double> sorted(latencies_ms.begin(), latencies_ms.end());
  std::sort(sorted.begin(), sorted.end());
  LatencySummary s;
  s.count = static_cast<int64_t>(sorted.size());
  // Summing the sorted values adds small numbers first, which loses less precision.
  s.average_ms = std::accumulate(sorted.begin(), sorted.end(), 0.0) / static_cast<double>(s.count);
  s.min_ms = sorted.front();
  s.max_ms = sorted.back();
  s.p50_ms = PercentileOfSorted(sorted, 50);
  s.p75_ms = PercentileOfSorted(sorted, 75);
  s.p90_ms = PercentileOfSorted(sorted, 90);
  s.p95_ms = PercentileOfSorted(sorted, 95);
  s.p99_ms = PercentileOfSorted(sorted, 99);
  return s;
}

double QueriesPerSecond(int64_t batch_size, double average_ms) {
  if (!(average_ms > 0)) return 0;
  return static_cast<double>(batch_size) * 1000.0 / average_ms;
}

}  // namespace bertopt::perf
