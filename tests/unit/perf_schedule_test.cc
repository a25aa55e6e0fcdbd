#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "perf/schedule.h"

namespace bertopt::perf {
namespace {

using ::testing::ElementsAre;

// Each fake model appends "<name><sample>" to a shared log and reports a latency derived from the
// call count, so the test sees both the order of calls and which value landed where.
struct CallLog {
  std::vector<std::string> calls;
  TimedRun Model(const std::string& name, double base_ms) {
    return [this, name, base_ms](int sample) -> StatusOr<double> {
      calls.push_back(name + std::to_string(sample));
      return base_ms + static_cast<double>(calls.size());
    };
  }
};

TEST(PerfScheduleTest, TwoModelsAlternateRunByRunOnTheSameSample) {
  CallLog log;
  const std::vector<TimedRun> runs = {log.Model("A", 0), log.Model("B", 100)};
  auto result = RunInterleaved(runs, {.warmup = 1, .test_times = 4, .samples = 3});
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  // Warm-up A0 B0, then rounds 0..3 on samples 0, 1, 2, 0.
  EXPECT_THAT(log.calls, ElementsAre("A0", "B0", "A0", "B0", "A1", "B1", "A2", "B2", "A0", "B0"));
  // Warm-up results are dropped; each model keeps its own timed results in round order.
  EXPECT_THAT((*result)[0], ElementsAre(3, 5, 7, 9));
  EXPECT_THAT((*result)[1], ElementsAre(104, 106, 108, 110));
}

TEST(PerfScheduleTest, ThreeModelsKeepTheirOrderInEveryRound) {
  CallLog log;
  const std::vector<TimedRun> runs = {log.Model("A", 0), log.Model("B", 0), log.Model("C", 0)};
  auto result = RunInterleaved(runs, {.warmup = 0, .test_times = 2, .samples = 10});
  ASSERT_TRUE(result.ok());
  EXPECT_THAT(log.calls, ElementsAre("A0", "B0", "C0", "A1", "B1", "C1"));
  EXPECT_EQ(result->size(), 3u);
}

TEST(PerfScheduleTest, OneModelCyclesThroughSamples) {
  CallLog log;
  const std::vector<TimedRun> runs = {log.Model("A", 0)};
  auto result = RunInterleaved(runs, {.warmup = 2, .test_times = 5, .samples = 2});
  ASSERT_TRUE(result.ok());
  EXPECT_THAT(log.calls, ElementsAre("A0", "A1", "A0", "A1", "A0", "A1", "A0"));
  EXPECT_EQ((*result)[0].size(), 5u);
}

TEST(PerfScheduleTest, ProgressIsReportedAfterEachTimedRound) {
  CallLog log;
  const std::vector<TimedRun> runs = {log.Model("A", 0), log.Model("B", 0)};
  std::vector<std::string> progress;
  auto result =
      RunInterleaved(runs, {.warmup = 3, .test_times = 3, .samples = 1}, [&](int done, int total) {
        // Recorded with the number of calls so far: progress must come
        // after both models ran in a round, never in between.
        progress.push_back(std::to_string(done) + "/" + std::to_string(total) + "@" +
                           std::to_string(log.calls.size()));
      });
  ASSERT_TRUE(result.ok());
  EXPECT_THAT(progress, ElementsAre("1/3@8", "2/3@10", "3/3@12"));
}

TEST(PerfScheduleTest, FirstErrorStopsTheScheduleAndSaysWhichRun) {
  int calls = 0;
  const std::vector<TimedRun> runs = {[&](int) -> StatusOr<double> {
    if (++calls == 3) return RuntimeError("ORT failed");
    return 1.0;
  }};
  auto result = RunInterleaved(runs, {.warmup = 1, .test_times = 5, .samples = 1});
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kRuntime);
  EXPECT_EQ(result.status().message(), "timed run 2: ORT failed");
  EXPECT_EQ(calls, 3);
}

TEST(PerfScheduleTest, RejectsEmptyOrNonsenseSchedules) {
  EXPECT_FALSE(RunInterleaved({}, {}).ok());
  const std::vector<TimedRun> runs = {[](int) -> StatusOr<double> { return 1.0; }};
  EXPECT_FALSE(RunInterleaved(runs, {.warmup = 0, .test_times = 0, .samples = 1}).ok());
  EXPECT_FALSE(RunInterleaved(runs, {.warmup = 0, .test_times = 1, .samples = 0}).ok());
}

}  // namespace
}  // namespace bertopt::perf
