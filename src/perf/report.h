#pragma once
// What `bertopt perf` reports and how: one row per setting (model, batch, sequence, threads),
// sorted by average latency, written as TSV (for spreadsheets and scripts), JSON (one object on
// stdout) or an aligned table (for people). Everything here is plain data and formatting, so it is
// tested without ONNX Runtime.

#include <cstdint>
#include <ctime>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "bertopt/status.h"
#include "perf/stats.h"
#include "perf/svg_plot.h"

namespace bertopt::perf {

/// One measured configuration. Sessions are shared by settings with the same (model, threads).
struct PerfSetting {
  int model_index = 0;  ///< position in --model, so the same file given twice stays two models
  std::string model;    ///< the path as the user gave it
  int64_t batch_size = 1;
  int64_t sequence_length = 128;
  int intra_op_threads = 1;
};

/// "B1 S128 T2": the short label used in the table, the progress line and the plot.
std::string SettingLabel(int64_t batch_size, int64_t sequence_length, int intra_op_threads);

struct PerfRow {
  PerfSetting setting;
  LatencySummary latency;
  double qps = 0;  ///< batch_size * 1000 / average_ms
  /// With two or more models: this model's P50 over the first model's P50 for the same batch,
  /// sequence and threads (below 1 means faster than the first model). Unset with one model.
  std::optional<double> p50_ratio_to_first;
};

/// How the whole run was configured; printed once, repeated on every TSV row.
struct PerfRunInfo {
  std::vector<std::string> models;
  std::string provider = "CPU";  ///< "CPU" or "GPU"
  std::string opt_level = "all";
  bool io_binding = false;
  bool inclusive = false;
  int samples = 10;
  int test_times = 100;
  int warmup = 5;
  uint64_t seed = 0;
  std::string ort_version;
  std::string timestamp;  ///< local time the run started, "2025-01-02T03:04:05"
};

struct PerfReport {
  PerfRunInfo info;
  std::vector<PerfRow> rows;
};

/// Sorts rows by average latency, fastest first. Stable, so equal averages keep measurement order.
void SortByAverage(std::vector<PerfRow>& rows);

/// Index of the row with the lowest average latency (the first such row on ties); nullopt if empty.
std::optional<size_t> BestLatencyRow(const std::vector<PerfRow>& rows);
/// Index of the row with the highest QPS (the first such row on ties); nullopt if empty. Differs
/// from BestLatencyRow only when batch sizes differ: a larger batch takes longer but may serve
/// more.
std::optional<size_t> BestThroughputRow(const std::vector<PerfRow>& rows);

/// Sets p50_ratio_to_first on every row when the rows hold two or more models; rows whose
/// (batch, sequence, threads) has no row for model 0 keep it unset.
void FillRatiosToFirstModel(std::vector<PerfRow>& rows);

/// Names for people: each model's file name, or the path as given where two file names collide.
std::vector<std::string> ModelDisplayNames(const std::vector<std::string>& models);

/// The TSV columns, in order. Latencies are in ms with 6 decimals, qps with 2, ratio with 4 (empty
/// with one model), booleans as true/false.
const std::vector<std::string>& TsvColumns();
/// Header line plus one line per row, in row order, each ending in '\n'.
std::string FormatTsv(const PerfReport& report);

/// The report as one JSON object, keys in a fixed order for people reading it: run info, "models"
/// (per model: name, path, median_ms and ratio_to_first, both null unless the run had exactly one
/// (batch, sequence, threads) setting, and "by_setting" with the same per setting), "results"
/// (rows in order), "best_latency" and "best_throughput" (copies of the chosen rows, null when
/// there are none), and "output" / "plot" paths (null when not written).
nlohmann::ordered_json ReportToJson(const PerfReport& report, const std::string& output_path,
                                    const std::string& plot_path);

/// The report for a terminal: a header line, an aligned table, the comparison of models (with two
/// or more) and the best setting.
std::string FormatTable(const PerfReport& report);

/// The --plot chart: one group per (batch, sequence, threads) in ascending order, one bar per
/// model in --model order, P50 with a whisker to P90.
LatencyPlot BuildLatencyPlot(const PerfReport& report);

/// "20250102-030405" for file names (no ':' so it is valid everywhere).
std::string FileTimestamp(const std::tm& local_time);
/// "2025-01-02T03:04:05" for reports.
std::string IsoTimestamp(const std::tm& local_time);

/// perf_results_{CPU|GPU}_B{b}_S{s}_{timestamp}.tsv in the folder of `first_model`; several batch
/// sizes or sequence lengths are joined with '-' in the order given (B1-8-32).
std::filesystem::path DefaultOutputPath(const std::filesystem::path& first_model, bool use_gpu,
                                        const std::vector<int64_t>& batch_sizes,
                                        const std::vector<int64_t>& sequence_lengths,
                                        std::string_view file_timestamp);

}  // namespace bertopt::perf
