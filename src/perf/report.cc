#include "perf/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

namespace bertopt::perf {
namespace {

// Tables show 0.1 µs; the TSV keeps the clock's nanoseconds, so microsecond-scale models lose
// nothing to rounding when scripts compare runs.
std::string Ms(double v) { return fmt::format("{:.4f}", v); }
std::string MsPrecise(double v) { return fmt::format("{:.6f}", v); }
std::string Qps(double v) { return fmt::format("{:.2f}", v); }
std::string Ratio(double v) { return fmt::format("{:.4f}", v); }
const char* Bool(bool b) { return b ? "true" : "false"; }

// A tab or line break inside a model path would shift every later column, so they become spaces.
std::string TsvField(std::string text) {
  std::replace_if(
      text.begin(), text.end(), [](char c) { return c == '\t' || c == '\n' || c == '\r'; }, ' ');
  return text;
}

std::string JoinInts(const std::vector<int64_t>& values, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += separator;
    out += std::to_string(values[i]);
  }
  return out;
}

nlohmann::ordered_json RowToJson(const PerfRow& row) {
  nlohmann::ordered_json j;
  j["model"] = row.setting.model;
  j["batch_size"] = row.setting.batch_size;
  j["sequence_length"] = row.setting.sequence_length;
  j["intra_op_threads"] = row.setting.intra_op_threads;
  j["runs"] = row.latency.count;
  j["average_ms"] = row.latency.average_ms;
  j["p50_ms"] = row.latency.p50_ms;
  j["p75_ms"] = row.latency.p75_ms;
  j["p90_ms"] = row.latency.p90_ms;
  j["p95_ms"] = row.latency.p95_ms;
  j["p99_ms"] = row.latency.p99_ms;
  j["min_ms"] = row.latency.min_ms;
  j["max_ms"] = row.latency.max_ms;
  j["qps"] = row.qps;
  j["p50_ratio_to_first"] =
      row.p50_ratio_to_first ? nlohmann::ordered_json(*row.p50_ratio_to_first) : nullptr;
  return j;
}

// Lays out cells in columns wide enough for the widest cell; the first column is left-aligned (a
// name), the others right-aligned (numbers), as people read tables of measurements.
std::string AlignColumns(const std::vector<std::vector<std::string>>& lines) {
  std::vector<size_t> widths;
  for (const auto& cells : lines) {
    if (widths.size() < cells.size()) widths.resize(cells.size(), 0);
    for (size_t c = 0; c < cells.size(); ++c) widths[c] = std::max(widths[c], cells[c].size());
  }
  std::string out;
  for (const auto& cells : lines) {
    std::string line;
    for (size_t c = 0; c < cells.size(); ++c) {
      if (c == 0) {
        line += fmt::format("{:<{}}", cells[c], widths[c]);
      } else {
        line += fmt::format("  {:>{}}", cells[c], widths[c]);
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

bool SeveralModels(const std::vector<PerfRow>& rows) {
  return std::any_of(rows.begin(), rows.end(),
                     [](const PerfRow& r) { return r.setting.model_index != 0; });
}

// Per model: its median (P50) and ratio to the first model, per setting in "by_setting" and, when
// the run had a single (batch, sequence, threads), also at the top of the entry, where a script
// comparing two models reads it without knowing the setting.
nlohmann::ordered_json ModelsToJson(const PerfReport& report) {
  const std::vector<std::string> names = ModelDisplayNames(report.info.models);
  using Key = std::tuple<int64_t, int64_t, int>;
  std::vector<std::map<Key, const PerfRow*>> by_model(report.info.models.size());
  std::set<Key> settings;
  for (const PerfRow& row : report.rows) {
    const auto index = static_cast<size_t>(row.setting.model_index);
    if (index >= by_model.size()) continue;
    const Key key{row.setting.batch_size, row.setting.sequence_length,
                  row.setting.intra_op_threads};
    by_model[index][key] = &row;
    settings.insert(key);
  }
  auto ratio = [](const PerfRow& row) {
    return row.p50_ratio_to_first ? nlohmann::ordered_json(*row.p50_ratio_to_first) : nullptr;
  };
  nlohmann::ordered_json models = nlohmann::ordered_json::array();
  for (size_t m = 0; m < by_model.size(); ++m) {
    nlohmann::ordered_json entry;
    entry["name"] = names[m];
    entry["path"] = report.info.models[m];
    const bool single = settings.size() == 1 && by_model[m].size() == 1;
    entry["median_ms"] =
        single ? nlohmann::ordered_json(by_model[m].begin()->second->latency.p50_ms) : nullptr;
    entry["ratio_to_first"] = single ? ratio(*by_model[m].begin()->second) : nullptr;
    entry["by_setting"] = nlohmann::ordered_json::array();
    for (const auto& [key, row] : by_model[m]) {
      nlohmann::ordered_json s;
      s["batch_size"] = std::get<0>(key);
      s["sequence_length"] = std::get<1>(key);
      s["intra_op_threads"] = std::get<2>(key);
      s["median_ms"] = row->latency.p50_ms;
      s["ratio_to_first"] = ratio(*row);
      entry["by_setting"].push_back(s);
    }
    models.push_back(entry);
  }
  return models;
}

}  // namespace

std::string SettingLabel(int64_t batch_size, int64_t sequence_length, int intra_op_threads) {
  return fmt::format("B{} S{} T{}", batch_size, sequence_length, intra_op_threads);
}

void SortByAverage(std::vector<PerfRow>& rows) {
  std::stable_sort(rows.begin(), rows.end(), [](const PerfRow& a, const PerfRow& b) {
    return a.latency.average_ms < b.latency.average_ms;
  });
}

std::optional<size_t> BestLatencyRow(const std::vector<PerfRow>& rows) {
  if (rows.empty()) return std::nullopt;
  size_t best = 0;
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].latency.average_ms < rows[best].latency.average_ms) best = i;
  }
  return best;
}

std::optional<size_t> BestThroughputRow(const std::vector<PerfRow>& rows) {
  if (rows.empty()) return std::nullopt;
  size_t best = 0;
  for (size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].qps > rows[best].qps) best = i;
  }
  return best;
}

void FillRatiosToFirstModel(std::vector<PerfRow>& rows) {
  for (PerfRow& row : rows) row.p50_ratio_to_first.reset();
  if (!SeveralModels(rows)) return;
  using Key = std::tuple<int64_t, int64_t, int>;
  std::map<Key, double> first_p50;
  for (const PerfRow& row : rows) {
    if (row.setting.model_index == 0) {
      first_p50[{row.setting.batch_size, row.setting.sequence_length,
                 row.setting.intra_op_threads}] = row.latency.p50_ms;
    }
  }
  for (PerfRow& row : rows) {
    auto it = first_p50.find(
        {row.setting.batch_size, row.setting.sequence_length, row.setting.intra_op_threads});
    if (it != first_p50.end() && it->second > 0) {
      row.p50_ratio_to_first = row.latency.p50_ms / it->second;
    }
  }
}

std::vector<std::string> ModelDisplayNames(const std::vector<std::string>& models) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  bool collision = false;
  for (const std::string& m : models) {
    names.push_back(std::filesystem::path(m).filename().string());
    if (!seen.insert(names.back()).second) collision = true;
  }
  // Two different files both called model.onnx would be indistinguishable by file name; the same
  // file given twice (an A/A noise check) stays as given too, and the position tells them apart.
  if (collision) return models;
  return names;
}

const std::vector<std::string>& TsvColumns() {
  static const std::vector<std::string> kColumns = {"model",
                                                    "provider",
                                                    "opt_level",
                                                    "io_binding",
                                                    "inclusive",
                                                    "batch_size",
                                                    "sequence_length",
                                                    "intra_op_threads",
                                                    "samples",
                                                    "test_times",
                                                    "warmup",
                                                    "average_ms",
                                                    "p50_ms",
                                                    "p75_ms",
                                                    "p90_ms",
                                                    "p95_ms",
                                                    "p99_ms",
                                                    "qps",
                                                    "p50_ratio_to_first"};
  return kColumns;
}

std::string FormatTsv(const PerfReport& report) {
  const PerfRunInfo& info = report.info;
  std::string out;
  const auto& columns = TsvColumns();
  for (size_t i = 0; i < columns.size(); ++i) out += (i ? "\t" : "") + columns[i];
  out += "\n";
  for (const PerfRow& row : report.rows) {
    const LatencySummary& l = row.latency;
    const std::vector<std::string> fields = {
        TsvField(row.setting.model),
        info.provider,
        info.opt_level,
        Bool(info.io_binding),
        Bool(info.inclusive),
        std::to_string(row.setting.batch_size),
        std::to_string(row.setting.sequence_length),
        std::to_string(row.setting.intra_op_threads),
        std::to_string(info.samples),
        std::to_string(info.test_times),
        std::to_string(info.warmup),
        MsPrecise(l.average_ms),
        MsPrecise(l.p50_ms),
        MsPrecise(l.p75_ms),
        MsPrecise(l.p90_ms),
        MsPrecise(l.p95_ms),
        MsPrecise(l.p99_ms),
        Qps(row.qps),
        row.p50_ratio_to_first ? Ratio(*row.p50_ratio_to_first) : ""};
    for (size_t i = 0; i < fields.size(); ++i) out += (i ? "\t" : "") + fields[i];
    out += "\n";
  }
  return out;
}

nlohmann::ordered_json ReportToJson(const PerfReport& report, const std::string& output_path,
                                    const std::string& plot_path) {
  const PerfRunInfo& info = report.info;
  nlohmann::ordered_json j;
  j["command"] = "perf";
  j["ort_version"] = info.ort_version;
  j["timestamp"] = info.timestamp;
  j["models"] = ModelsToJson(report);
  j["provider"] = info.provider;
  j["opt_level"] = info.opt_level;
  j["io_binding"] = info.io_binding;
  j["inclusive"] = info.inclusive;
  j["interleaved"] = info.models.size() > 1;
  j["samples"] = info.samples;
  j["test_times"] = info.test_times;
  j["warmup"] = info.warmup;
  j["seed"] = info.seed;
  j["percentile_method"] = "linear interpolation between closest ranks (numpy default)";
  j["results"] = nlohmann::ordered_json::array();
  for (const PerfRow& row : report.rows) j["results"].push_back(RowToJson(row));
  const auto best_latency = BestLatencyRow(report.rows);
  const auto best_throughput = BestThroughputRow(report.rows);
  j["best_latency"] = best_latency ? RowToJson(report.rows[*best_latency]) : nullptr;
  j["best_throughput"] = best_throughput ? RowToJson(report.rows[*best_throughput]) : nullptr;
  j["output"] =
      output_path.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(output_path);
  j["plot"] =
      plot_path.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(plot_path);
  return j;
}

std::string FormatTable(const PerfReport& report) {
  const PerfRunInfo& info = report.info;
  const std::vector<std::string> names = ModelDisplayNames(info.models);
  auto name_of = [&](const PerfSetting& s) {
    return s.model_index >= 0 && static_cast<size_t>(s.model_index) < names.size()
               ? names[static_cast<size_t>(s.model_index)]
               : s.model;
  };
  std::string out = fmt::format(
      "bertopt perf: {}, opt_level {}, {} timed runs per setting after {} warm-up, {} distinct "
      "inputs (seed {}), ONNX Runtime {}\n",
      info.provider, info.opt_level, info.test_times, info.warmup, info.samples, info.seed,
      info.ort_version);
  out += fmt::format("timed: {}{}\n",
                     info.inclusive ? "input tensor creation + run + output reads"
                                    : "the run only (inputs prepared before the clock starts)",
                     info.io_binding ? ", with IO binding" : "");
  if (info.models.size() > 1) {
    out += "models interleaved run by run on the same inputs\n";
  }
  out += "\n";

  const bool ratios = SeveralModels(report.rows);
  std::vector<std::vector<std::string>> lines;
  std::vector<std::string> header = {"model",  "batch",  "seq",    "threads", "avg ms", "p50 ms",
                                     "p75 ms", "p90 ms", "p95 ms", "p99 ms",  "QPS"};
  if (ratios) header.push_back("p50 vs first");
  lines.push_back(header);
  for (const PerfRow& row : report.rows) {
    const LatencySummary& l = row.latency;
    std::vector<std::string> cells = {name_of(row.setting),
                                      std::to_string(row.setting.batch_size),
                                      std::to_string(row.setting.sequence_length),
                                      std::to_string(row.setting.intra_op_threads),
                                      Ms(l.average_ms),
                                      Ms(l.p50_ms),
                                      Ms(l.p75_ms),
                                      Ms(l.p90_ms),
                                      Ms(l.p95_ms),
                                      Ms(l.p99_ms),
                                      Qps(row.qps)};
    if (ratios) {
      cells.push_back(row.p50_ratio_to_first ? fmt::format("{:.3f}", *row.p50_ratio_to_first)
                                             : "-");
    }
    lines.push_back(cells);
  }
  out += AlignColumns(lines);

  if (ratios && !names.empty()) {
    // One line per (batch, sequence, threads), in ascending order, so each line compares models
    // that ran interleaved with each other.
    out += fmt::format("\nmodel comparison (median latency; ratio to {}, below 1 is faster):\n",
                       names[0]);
    using Key = std::tuple<int64_t, int64_t, int>;
    std::map<Key, std::vector<const PerfRow*>> groups;
    for (const PerfRow& row : report.rows) {
      groups[{row.setting.batch_size, row.setting.sequence_length, row.setting.intra_op_threads}]
          .push_back(&row);
    }
    std::vector<std::vector<std::string>> comparison;
    for (auto& [key, group] : groups) {
      std::sort(group.begin(), group.end(), [](const PerfRow* a, const PerfRow* b) {
        return a->setting.model_index < b->setting.model_index;
      });
      std::vector<std::string> cells = {
          "  " + SettingLabel(std::get<0>(key), std::get<1>(key), std::get<2>(key))};
      for (const PerfRow* row : group) {
        cells.push_back(name_of(row->setting));
        cells.push_back(Ms(row->latency.p50_ms) + " ms");
        cells.push_back(row->p50_ratio_to_first ? fmt::format("({:.3f})", *row->p50_ratio_to_first)
                                                : "(-)");
      }
      comparison.push_back(cells);
    }
    out += AlignColumns(comparison);
  }

  const auto best_latency = BestLatencyRow(report.rows);
  const auto best_throughput = BestThroughputRow(report.rows);
  auto describe = [&](const PerfRow& row) {
    return fmt::format("{} {} ({} ms average, {} QPS)", name_of(row.setting),
                       SettingLabel(row.setting.batch_size, row.setting.sequence_length,
                                    row.setting.intra_op_threads),
                       Ms(row.latency.average_ms), Qps(row.qps));
  };
  if (best_latency) {
    out += "\n";
    if (best_throughput && *best_throughput != *best_latency) {
      out += "best latency:    " + describe(report.rows[*best_latency]) + "\n";
      out += "best throughput: " + describe(report.rows[*best_throughput]) + "\n";
    } else {
      out += "best setting: " + describe(report.rows[*best_latency]) + "\n";
    }
  }
  return out;
}

LatencyPlot BuildLatencyPlot(const PerfReport& report) {
  const PerfRunInfo& info = report.info;
  LatencyPlot plot;
  plot.title = "Latency per setting (P50, whisker to P90)";
  plot.subtitle = fmt::format(
      "{}, opt_level {}, {} timed runs{}{}, ONNX Runtime {}{}", info.provider, info.opt_level,
      info.test_times, info.inclusive ? ", inclusive" : "", info.io_binding ? ", IO binding" : "",
      info.ort_version, info.timestamp.empty() ? "" : ", " + info.timestamp);
  plot.series = ModelDisplayNames(info.models);
  using Key = std::tuple<int64_t, int64_t, int>;
  std::map<Key, std::vector<PlotCell>> groups;
  for (const PerfRow& row : report.rows) {
    auto& cells =
        groups[{row.setting.batch_size, row.setting.sequence_length, row.setting.intra_op_threads}];
    cells.resize(plot.series.size());
    const auto index = static_cast<size_t>(row.setting.model_index);
    if (index < cells.size()) cells[index] = {true, row.latency.p50_ms, row.latency.p90_ms};
  }
  for (const auto& [key, cells] : groups) {
    plot.categories.push_back(SettingLabel(std::get<0>(key), std::get<1>(key), std::get<2>(key)));
    plot.cells.push_back(cells);
  }
  return plot;
}

std::string FileTimestamp(const std::tm& t) {
  return fmt::format("{:04}{:02}{:02}-{:02}{:02}{:02}", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                     t.tm_hour, t.tm_min, t.tm_sec);
}

std::string IsoTimestamp(const std::tm& t) {
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}", t.tm_year + 1900, t.tm_mon + 1,
                     t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec);
}

std::filesystem::path DefaultOutputPath(const std::filesystem::path& first_model, bool use_gpu,
                                        const std::vector<int64_t>& batch_sizes,
                                        const std::vector<int64_t>& sequence_lengths,
                                        std::string_view file_timestamp) {
  const std::string name =
      fmt::format("perf_results_{}_B{}_S{}_{}.tsv", use_gpu ? "GPU" : "CPU",
                  JoinInts(batch_sizes, "-"), JoinInts(sequence_lengths, "-"), file_timestamp);
  return first_model.parent_path() / name;
}

}  // namespace bertopt::perf
