#include "perf/stats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace bertopt::perf {
namespace {

// Expected values below are worked by hand from h = (n - 1) * p / 100 and match what
// numpy.percentile returns with its default method.

TEST(StatsTest, OneSampleIsEveryPercentile) {
  const std::vector<double> one = {4.25};
  auto s = SummarizeLatencies(one);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->count, 1);
  EXPECT_DOUBLE_EQ(s->average_ms, 4.25);
  EXPECT_DOUBLE_EQ(s->min_ms, 4.25);
  EXPECT_DOUBLE_EQ(s->max_ms, 4.25);
  for (double p : {s->p50_ms, s->p75_ms, s->p90_ms, s->p95_ms, s->p99_ms})
    EXPECT_DOUBLE_EQ(p, 4.25);
}

TEST(StatsTest, OddCountMedianIsTheMiddleValue) {
  const std::vector<double> odd = {5, 1, 3};  // unsorted on purpose
  auto s = SummarizeLatencies(odd);
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->average_ms, 3);
  EXPECT_DOUBLE_EQ(s->p50_ms, 3);    // h = 1
  EXPECT_DOUBLE_EQ(s->p75_ms, 4);    // h = 1.5: 3 + 0.5 * 2
  EXPECT_DOUBLE_EQ(s->p90_ms, 4.6);  // h = 1.8: 3 + 0.8 * 2
  EXPECT_DOUBLE_EQ(s->p99_ms, 4.96);
}

TEST(StatsTest, EvenCountInterpolatesBetweenClosestRanks) {
  const std::vector<double> even = {4, 2, 3, 1};
  auto s = SummarizeLatencies(even);
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->average_ms, 2.5);
  EXPECT_DOUBLE_EQ(s->p50_ms, 2.5);   // mean of the two middle values
  EXPECT_DOUBLE_EQ(s->p75_ms, 3.25);  // h = 2.25
  EXPECT_DOUBLE_EQ(s->p90_ms, 3.7);   // h = 2.7
  EXPECT_DOUBLE_EQ(s->p95_ms, 3.85);  // h = 2.85
  EXPECT_DOUBLE_EQ(s->p99_ms, 3.97);  // h = 2.97
  EXPECT_DOUBLE_EQ(s->min_ms, 1);
  EXPECT_DOUBLE_EQ(s->max_ms, 4);
}

TEST(StatsTest, NumpyDocumentationExample) {
  // numpy's own percentile example: [[10, 7, 4], [3, 2, 1]] flattened has median 3.5.
  EXPECT_DOUBLE_EQ(Median(std::vector<double>{10, 7, 4, 3, 2, 1}), 3.5);
}

TEST(StatsTest, HundredValues) {
  std::vector<double> v(100);
  std::iota(v.begin(), v.end(), 1.0);  // 1..100
  auto s = SummarizeLatencies(v);
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->average_ms, 50.5);
  EXPECT_DOUBLE_EQ(s->p50_ms, 50.5);
  EXPECT_NEAR(s->p90_ms, 90.1, 1e-9);   // h = 89.1
  EXPECT_NEAR(s->p95_ms, 95.05, 1e-9);  // h = 94.05
  EXPECT_NEAR(s->p99_ms, 99.01, 1e-9);  // h = 98.01
}

TEST(StatsTest, PercentileEndsAreMinAndMax) {
  const std::vector<double> sorted = {1, 2, 10};
  EXPECT_DOUBLE_EQ(PercentileOfSorted(sorted, 0), 1);
  EXPECT_DOUBLE_EQ(PercentileOfSorted(sorted, 100), 10);
  EXPECT_DOUBLE_EQ(PercentileOfSorted(sorted, 50), 2);
}

TEST(StatsTest, RejectsEmptyNegativeAndNonFinite) {
  EXPECT_EQ(SummarizeLatencies(std::vector<double>{}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_FALSE(SummarizeLatencies(std::vector<double>{1, -0.5}).ok());
  EXPECT_FALSE(
      SummarizeLatencies(std::vector<double>{std::numeric_limits<double>::quiet_NaN()}).ok());
  EXPECT_FALSE(
      SummarizeLatencies(std::vector<double>{std::numeric_limits<double>::infinity()}).ok());
}

TEST(StatsTest, QpsIsBatchTimesThousandOverAverage) {
  EXPECT_DOUBLE_EQ(QueriesPerSecond(1, 10), 100);
  EXPECT_DOUBLE_EQ(QueriesPerSecond(8, 4), 2000);
  EXPECT_DOUBLE_EQ(QueriesPerSecond(32, 0.5), 64000);
  EXPECT_DOUBLE_EQ(QueriesPerSecond(4, 0), 0);  // no rate from a zero average
}

}  // namespace
}  // namespace bertopt::perf
