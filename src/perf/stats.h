#pragma once
// Latency statistics for `bertopt perf`.
//
// Percentiles use linear interpolation between closest ranks, the method numpy.percentile uses by
// default ("linear", Hyndman & Fan type 7): for n sorted values x[0..n-1] and p in [0, 100],
//   h = (n - 1) * p / 100,  P(p) = x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]).
// So P0 is the minimum, P100 the maximum, P50 the usual median (mean of the two middle values for
// an even count), and a single sample is every percentile. We chose it because users compare our
// numbers with ones they compute in numpy or pandas, which default to the same rule.

#include <cstdint>
#include <span>
#include <vector>

#include "bertopt/status.h"

namespace bertopt::perf {

/// Percentile `p` (0..100) of `sorted_values` (ascending, non-empty) by the rule above.
double PercentileOfSorted(std::span<const double> sorted_values, double p);

/// Median of `values` (any order, non-empty): PercentileOfSorted at 50 after sorting a copy.
double Median(std::span<const double> values);

/// What perf reports for one setting; every latency in milliseconds.
struct LatencySummary {
  int64_t count = 0;
  double average_ms = 0;
  double min_ms = 0;
  double max_ms = 0;
  double p50_ms = 0;
  double p75_ms = 0;
  double p90_ms = 0;
  double p95_ms = 0;
  double p99_ms = 0;
};

/// Summarizes latencies in milliseconds (any order). kInvalidArgument when empty or when a value is
/// negative or not finite, since such a value can only come from a broken clock or a bug.
StatusOr<LatencySummary> SummarizeLatencies(std::span<const double> latencies_ms);

/// Queries per second: each run handles `batch_size` queries in `average_ms`, so
/// QPS = batch_size * 1000 / average_ms. 0 when the average is not positive (no meaningful rate).
double QueriesPerSecond(int64_t batch_size, double average_ms);

}  // namespace bertopt::perf
