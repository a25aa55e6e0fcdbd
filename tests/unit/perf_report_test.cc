#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "perf/report.h"

namespace bertopt::perf {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

PerfRow Row(int model_index, const std::string& model, int64_t batch, int64_t seq, int threads,
            double average_ms, double p50_ms) {
  PerfRow row;
  row.setting = {model_index, model, batch, seq, threads};
  row.latency.count = 100;
  row.latency.average_ms = average_ms;
  row.latency.p50_ms = p50_ms;
  row.latency.p75_ms = p50_ms + 0.1;
  row.latency.p90_ms = p50_ms + 0.2;
  row.latency.p95_ms = p50_ms + 0.3;
  row.latency.p99_ms = p50_ms + 0.4;
  row.latency.min_ms = p50_ms - 0.1;
  row.latency.max_ms = p50_ms + 1;
  row.qps = QueriesPerSecond(batch, average_ms);
  return row;
}

std::vector<std::string> Split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, separator)) parts.push_back(part);
  if (!text.empty() && text.back() == separator) parts.push_back("");
  return parts;
}

// Parses TSV text back into one map per row, keyed by the header's column names.
std::vector<std::map<std::string, std::string>> ParseTsv(const std::string& text) {
  std::vector<std::string> lines = Split(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  std::vector<std::map<std::string, std::string>> rows;
  if (lines.empty()) return rows;
  const std::vector<std::string> header = Split(lines[0], '\t');
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<std::string> fields = Split(lines[i], '\t');
    EXPECT_EQ(fields.size(), header.size()) << "line " << i << ": " << lines[i];
    std::map<std::string, std::string> row;
    for (size_t c = 0; c < header.size() && c < fields.size(); ++c) row[header[c]] = fields[c];
    rows.push_back(row);
  }
  return rows;
}

PerfReport TwoModelReport() {
  PerfReport report;
  report.info.models = {"base/model.onnx", "opt/model_opt.onnx"};
  report.info.provider = "CPU";
  report.info.opt_level = "basic";
  report.info.samples = 10;
  report.info.test_times = 100;
  report.info.warmup = 5;
  report.info.seed = 7;
  report.info.ort_version = "1.29.0";
  report.info.timestamp = "2025-01-02T03:04:05";
  report.rows = {Row(0, "base/model.onnx", 1, 128, 1, 4.0, 3.9),
                 Row(1, "opt/model_opt.onnx", 1, 128, 1, 3.0, 2.925),
                 Row(0, "base/model.onnx", 8, 128, 1, 20.0, 19.0),
                 Row(1, "opt/model_opt.onnx", 8, 128, 1, 10.0, 9.5)};
  FillRatiosToFirstModel(report.rows);
  SortByAverage(report.rows);
  return report;
}

TEST(PerfReportTest, SettingLabelIsShort) { EXPECT_EQ(SettingLabel(1, 128, 2), "B1 S128 T2"); }

TEST(PerfReportTest, SortsByAverageFastestFirstAndKeepsTiesInOrder) {
  std::vector<PerfRow> rows = {Row(0, "a", 1, 8, 1, 5, 5), Row(0, "a", 1, 16, 1, 2, 2),
                               Row(0, "a", 1, 32, 1, 5, 5), Row(0, "a", 1, 64, 1, 1, 1)};
  SortByAverage(rows);
  std::vector<int64_t> order;
  order.reserve(rows.size());
  for (const PerfRow& r : rows) order.push_back(r.setting.sequence_length);
  EXPECT_THAT(order, ElementsAre(64, 16, 8, 32));
}

TEST(PerfReportTest, BestLatencyAndBestThroughputDifferWhenBatchesDiffer) {
  // Batch 8 takes longer per run but serves 8 queries: 800 QPS against 250 for batch 1.
  std::vector<PerfRow> rows = {Row(0, "a", 8, 128, 1, 10, 10), Row(0, "a", 1, 128, 1, 4, 4),
                               Row(0, "a", 1, 128, 2, 4, 4)};
  EXPECT_EQ(BestLatencyRow(rows), 1u);  // first of the tied rows
  EXPECT_EQ(BestThroughputRow(rows), 0u);
  EXPECT_EQ(BestLatencyRow({}), std::nullopt);
  EXPECT_EQ(BestThroughputRow({}), std::nullopt);
}

TEST(PerfReportTest, RatiosCompareEachModelWithTheFirstAtTheSameSetting) {
  const PerfReport report = TwoModelReport();
  std::map<std::pair<int, int64_t>, double> ratio;
  for (const PerfRow& r : report.rows) {
    ASSERT_TRUE(r.p50_ratio_to_first.has_value());
    ratio[{r.setting.model_index, r.setting.batch_size}] = *r.p50_ratio_to_first;
  }
  EXPECT_DOUBLE_EQ((ratio[{0, 1}]), 1.0);
  EXPECT_DOUBLE_EQ((ratio[{1, 1}]), 0.75);  // 2.925 / 3.9
  EXPECT_DOUBLE_EQ((ratio[{0, 8}]), 1.0);
  EXPECT_DOUBLE_EQ((ratio[{1, 8}]), 0.5);  // 9.5 / 19
}

TEST(PerfReportTest, NoRatiosWithOneModel) {
  std::vector<PerfRow> rows = {Row(0, "a", 1, 8, 1, 5, 5), Row(0, "a", 2, 8, 1, 6, 6)};
  FillRatiosToFirstModel(rows);
  for (const PerfRow& r : rows) EXPECT_FALSE(r.p50_ratio_to_first.has_value());
}

TEST(PerfReportTest, TsvParsesBackWithEveryColumn) {
  const PerfReport report = TwoModelReport();
  const std::string tsv = FormatTsv(report);
  const auto rows = ParseTsv(tsv);
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(Split(tsv, '\n')[0],
            "model\tprovider\topt_level\tio_binding\tinclusive\tbatch_size\t"
            "sequence_length\tintra_op_threads\tsamples\ttest_times\twarmup\t"
            "average_ms\tp50_ms\tp75_ms\tp90_ms\tp95_ms\tp99_ms\tqps\t"
            "p50_ratio_to_first");
  for (const auto& row : rows) EXPECT_EQ(row.size(), TsvColumns().size());
  // Sorted by average: 3, 4, 10, 20 ms.
  EXPECT_EQ(rows[0].at("model"), "opt/model_opt.onnx");
  EXPECT_EQ(rows[0].at("batch_size"), "1");
  EXPECT_EQ(rows[0].at("average_ms"), "3.000000");
  EXPECT_EQ(rows[0].at("p50_ms"), "2.925000");
  EXPECT_EQ(rows[0].at("p99_ms"), "3.325000");
  EXPECT_EQ(rows[0].at("qps"), "333.33");
  EXPECT_EQ(rows[0].at("p50_ratio_to_first"), "0.7500");
  EXPECT_EQ(rows[1].at("model"), "base/model.onnx");
  EXPECT_EQ(rows[1].at("p50_ratio_to_first"), "1.0000");
  EXPECT_EQ(rows[2].at("batch_size"), "8");
  EXPECT_EQ(rows[2].at("qps"), "800.00");
  EXPECT_EQ(rows[3].at("average_ms"), "20.000000");
  EXPECT_EQ(rows[3].at("provider"), "CPU");
  EXPECT_EQ(rows[3].at("opt_level"), "basic");
  EXPECT_EQ(rows[3].at("io_binding"), "false");
  EXPECT_EQ(rows[3].at("inclusive"), "false");
  EXPECT_EQ(rows[3].at("sequence_length"), "128");
  EXPECT_EQ(rows[3].at("intra_op_threads"), "1");
  EXPECT_EQ(rows[3].at("samples"), "10");
  EXPECT_EQ(rows[3].at("test_times"), "100");
  EXPECT_EQ(rows[3].at("warmup"), "5");
}

TEST(PerfReportTest, TsvLeavesTheRatioEmptyWithOneModelAndKeepsColumnsWithOddPaths) {
  PerfReport report;
  report.info.models = {"dir with\ttab/m.onnx"};
  report.rows = {Row(0, "dir with\ttab/m.onnx", 1, 8, 1, 5, 5)};
  const auto rows = ParseTsv(FormatTsv(report));
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].at("model"), "dir with tab/m.onnx");
  EXPECT_EQ(rows[0].at("p50_ratio_to_first"), "");
}

TEST(PerfReportTest, JsonParsesBackWithResultsInOrderAndTheBestSettings) {
  const PerfReport report = TwoModelReport();
  const std::string text = ReportToJson(report, "/tmp/out.tsv", "").dump();
  const nlohmann::json j = nlohmann::json::parse(text);
  EXPECT_EQ(j.at("command"), "perf");
  EXPECT_EQ(j.at("provider"), "CPU");
  EXPECT_EQ(j.at("opt_level"), "basic");
  EXPECT_EQ(j.at("seed"), 7);
  EXPECT_EQ(j.at("interleaved"), true);
  ASSERT_EQ(j.at("models").size(), 2u);
  const auto& opt = j.at("models")[1];
  EXPECT_EQ(opt.at("name"), "model_opt.onnx");
  EXPECT_EQ(opt.at("path"), "opt/model_opt.onnx");
  EXPECT_TRUE(opt.at("median_ms").is_null());  // two batch sizes: no single median
  ASSERT_EQ(opt.at("by_setting").size(), 2u);
  EXPECT_EQ(opt.at("by_setting")[0].at("batch_size"), 1);
  EXPECT_DOUBLE_EQ(opt.at("by_setting")[0].at("median_ms").get<double>(), 2.925);
  EXPECT_DOUBLE_EQ(opt.at("by_setting")[0].at("ratio_to_first").get<double>(), 0.75);
  EXPECT_EQ(opt.at("by_setting")[1].at("batch_size"), 8);
  EXPECT_DOUBLE_EQ(opt.at("by_setting")[1].at("ratio_to_first").get<double>(), 0.5);
  EXPECT_EQ(j.at("output"), "/tmp/out.tsv");
  EXPECT_TRUE(j.at("plot").is_null());
  const auto& results = j.at("results");
  ASSERT_EQ(results.size(), 4u);
  for (const auto& r : results) {
    for (const char* key : {"model", "batch_size", "sequence_length", "intra_op_threads", "runs",
                            "average_ms", "p50_ms", "p75_ms", "p90_ms", "p95_ms", "p99_ms",
                            "min_ms", "max_ms", "qps", "p50_ratio_to_first"}) {
      EXPECT_TRUE(r.contains(key)) << key;
    }
  }
  EXPECT_DOUBLE_EQ(results[0].at("average_ms").get<double>(), 3.0);
  EXPECT_DOUBLE_EQ(results[0].at("p50_ratio_to_first").get<double>(), 0.75);
  EXPECT_DOUBLE_EQ(results[3].at("average_ms").get<double>(), 20.0);
  EXPECT_EQ(j.at("best_latency").at("model"), "opt/model_opt.onnx");
  EXPECT_EQ(j.at("best_latency").at("batch_size"), 1);
  EXPECT_EQ(j.at("best_throughput").at("batch_size"), 8);
  EXPECT_EQ(j.at("best_throughput").at("model"), "opt/model_opt.onnx");
}

TEST(PerfReportTest, JsonGivesEachModelItsMedianWhenThereIsOneSetting) {
  PerfReport report;
  report.info.models = {"a/base.onnx", "b/opt.onnx"};
  report.rows = {Row(1, "b/opt.onnx", 1, 128, 4, 2.1, 2.0), Row(0, "a/base.onnx", 1, 128, 4, 5, 4)};
  FillRatiosToFirstModel(report.rows);
  const nlohmann::json j = nlohmann::json::parse(ReportToJson(report, "", "").dump());
  const auto& models = j.at("models");
  ASSERT_EQ(models.size(), 2u);
  EXPECT_EQ(models[0].at("name"), "base.onnx");
  EXPECT_DOUBLE_EQ(models[0].at("median_ms").get<double>(), 4);
  EXPECT_DOUBLE_EQ(models[0].at("ratio_to_first").get<double>(), 1);
  EXPECT_EQ(models[1].at("name"), "opt.onnx");
  EXPECT_DOUBLE_EQ(models[1].at("median_ms").get<double>(), 2);
  EXPECT_DOUBLE_EQ(models[1].at("ratio_to_first").get<double>(), 0.5);
  EXPECT_EQ(models[1].at("by_setting").size(), 1u);
}

TEST(PerfReportTest, JsonWithNoRowsHasNullBest) {
  PerfReport report;
  const nlohmann::json j = ReportToJson(report, "", "");
  EXPECT_TRUE(j.at("results").empty());
  EXPECT_TRUE(j.at("best_latency").is_null());
  EXPECT_TRUE(j.at("output").is_null());
}

TEST(PerfReportTest, TableNamesTheBestSettingsAndComparesModels) {
  const std::string table = FormatTable(TwoModelReport());
  EXPECT_THAT(table, HasSubstr("models interleaved run by run"));
  EXPECT_THAT(table, HasSubstr("p50 vs first"));
  EXPECT_THAT(table, HasSubstr("model comparison"));
  EXPECT_THAT(table, HasSubstr("model_opt.onnx  2.9250 ms  (0.750)"));
  EXPECT_THAT(
      table,
      HasSubstr("best latency:    model_opt.onnx B1 S128 T1 (3.0000 ms average, 333.33 QPS)"));
  EXPECT_THAT(table, HasSubstr("best throughput: model_opt.onnx B8 S128 T1"));
}

TEST(PerfReportTest, TableWithOneBatchSizeNamesOneBestSetting) {
  PerfReport report;
  report.info.models = {"m.onnx"};
  report.rows = {Row(0, "m.onnx", 1, 8, 1, 2, 2), Row(0, "m.onnx", 1, 8, 4, 1, 1)};
  const std::string table = FormatTable(report);
  EXPECT_THAT(table, HasSubstr("best setting: m.onnx B1 S8 T4 (1.0000 ms average, 1000.00 QPS)"));
  EXPECT_THAT(table, ::testing::Not(HasSubstr("vs first")));
}

TEST(PerfReportTest, DisplayNamesUseFileNamesUnlessTheyCollide) {
  EXPECT_THAT(ModelDisplayNames({"a/x.onnx", "b/y.onnx"}), ElementsAre("x.onnx", "y.onnx"));
  EXPECT_THAT(ModelDisplayNames({"a/x.onnx", "b/x.onnx"}), ElementsAre("a/x.onnx", "b/x.onnx"));
}

TEST(PerfReportTest, TimestampsAreZeroPadded) {
  std::tm t{};
  t.tm_year = 2025 - 1900;
  t.tm_mon = 0;
  t.tm_mday = 2;
  t.tm_hour = 3;
  t.tm_min = 4;
  t.tm_sec = 5;
  EXPECT_EQ(FileTimestamp(t), "20250102-030405");
  EXPECT_EQ(IsoTimestamp(t), "2025-01-02T03:04:05");
}

TEST(PerfReportTest, DefaultOutputNameSitsBesideTheFirstModel) {
  EXPECT_EQ(DefaultOutputPath("models/bert.onnx", false, {1}, {128}, "20250102-030405"),
            std::filesystem::path("models/perf_results_CPU_B1_S128_20250102-030405.tsv"));
  EXPECT_EQ(DefaultOutputPath("/m/bert.onnx", true, {1, 8, 32}, {128, 384}, "20250102-030405"),
            std::filesystem::path("/m/perf_results_GPU_B1-8-32_S128-384_20250102-030405.tsv"));
  EXPECT_EQ(DefaultOutputPath("bert.onnx", false, {4}, {64}, "T"),
            std::filesystem::path("perf_results_CPU_B4_S64_T.tsv"));
}

}  // namespace
}  // namespace bertopt::perf
