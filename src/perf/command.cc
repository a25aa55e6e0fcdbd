#include "perf/command.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "bertopt/exit_codes.h"
#include "bertopt/io/model_io.h"
#include "ort/session.h"
#include "ort/version.h"
#include "perf/progress.h"
#include "perf/runner.h"
#include "perf/schedule.h"

namespace bertopt::perf {

using ort::BertInputGenerator;
using ort::BertSample;
using ort::CheckBertInputShapes;
using ort::OptLevelName;
using ort::Session;
using ort::SessionConfig;
namespace {

std::tm LocalTime(std::chrono::system_clock::time_point when) {
  const std::time_t t = std::chrono::system_clock::to_time_t(when);
  std::tm local{};
  localtime_r(&t, &local);
  return local;
}

// A model ORT refuses is a problem with the input file, not with the measurement.
StatusOr<std::unique_ptr<Session>> CreateSession(const std::string& model, const PerfOptions& o,
                                                 int threads) {
  SessionConfig config;
  config.level = o.opt_level;
  config.intra_op_threads = threads;
  config.use_gpu = o.use_gpu;
  StatusOr<std::unique_ptr<Session>> session = Session::Create(model, config);
  if (!session.ok() && session.status().code() == StatusCode::kRuntime) {
    return InvalidModel(session.status().message());
  }
  return session;
}

// Every (batch, sequence) is checked against every model before the first timed run, so a static
// shape that does not fit stops the command at once instead of after earlier settings ran.
Status CheckShapes(const PerfOptions& o, const std::vector<PerfModelInfo>& models,
                   const std::vector<std::unique_ptr<Session>>& sessions) {
  for (size_t m = 0; m < models.size(); ++m) {
    for (int64_t batch : o.batch_sizes) {
      for (int64_t sequence : o.sequence_lengths) {
        Status s = CheckBertInputShapes(models[m].roles, sessions[m]->inputs(), batch, sequence);
        if (!s.ok()) {
          return InvalidArgument(
              fmt::format("--batch_size/--sequence_length: {}: {}", models[m].path, s.message()));
        }
      }
    }
  }
  return Status::Ok();
}

std::vector<BertSample> MakeSamples(const PerfOptions& o, int64_t batch, int64_t sequence,
                                    int64_t vocab_size, int64_t segment_vocab) {
  // One generator per (batch, sequence): every model and every thread count sees the same values.
  BertInputGenerator generator(batch, sequence, vocab_size, o.seed, segment_vocab);
  std::vector<BertSample> samples;
  samples.reserve(static_cast<size_t>(o.samples));
  for (int i = 0; i < o.samples; ++i) samples.push_back(generator.Next());
  return samples;
}

}  // namespace

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case StatusCode::kOk:
      return kExitOk;
    case StatusCode::kInvalidArgument:
    case StatusCode::kNotFound:
    case StatusCode::kInvalidModel:
    case StatusCode::kFailedPrecondition:
    case StatusCode::kUnimplemented:
      return kExitBadInput;
    default:
      return kExitFailed;
  }
}

StatusOr<PerfReport> MeasurePerf(const PerfOptions& o, const std::tm& started, std::FILE* err) {
  std::vector<PerfModelInfo> models;
  for (const std::string& path : o.models) {
    ASSIGN_OR_RETURN(PerfModelInfo info, InspectPerfModel(path, o.input_names));
    models.push_back(std::move(info));
  }
  // Ids must be valid rows of every model's embedding, so the smallest vocabulary bounds them.
  int64_t vocab_size = models.front().vocab_size;
  int64_t segment_vocab = 2;
  for (const PerfModelInfo& m : models) {
    vocab_size = std::min(vocab_size, m.vocab_size);
    segment_vocab = std::min(segment_vocab, m.segment_vocab_size);
  }

  PerfReport report;
  PerfRunInfo& info = report.info;
  info.models = o.models;
  info.provider = o.use_gpu ? "GPU" : "CPU";
  info.opt_level = OptLevelName(o.opt_level);
  info.io_binding = o.use_io_binding;
  info.inclusive = o.inclusive;
  info.samples = o.samples;
  info.test_times = o.test_times;
  info.warmup = o.warmup;
  info.seed = o.seed;
  info.ort_version = ort::RuntimeVersion();
  info.timestamp = IsoTimestamp(started);

  PerfProgress progress(err, err != nullptr && isatty(fileno(err)) != 0);
  const int group_count = static_cast<int>(o.intra_op_threads.size() * o.batch_sizes.size() *
                                           o.sequence_lengths.size());
  int group = 0;
  const TimingMode mode{o.inclusive, o.use_io_binding};
  const ScheduleOptions schedule{o.warmup, o.test_times, o.samples};
  const std::string models_note =
      models.size() > 1 ? fmt::format(" ({} models interleaved)", models.size()) : "";

  for (size_t t = 0; t < o.intra_op_threads.size(); ++t) {
    const int threads = o.intra_op_threads[t];
    // Sessions are made once per (model, threads) and reused by every batch and sequence. With
    // several models their sessions live side by side, and ORT's workers spin for a moment after
    // a run (session.intra_op.allow_spinning), which may take a core from the next model's run.
    // Alternation spreads that over all models alike, so ratios stay fair; absolute multi-thread
    // latencies of an interleaved run can be a little higher than those of one model alone.
    std::vector<std::unique_ptr<Session>> sessions;
    for (const PerfModelInfo& m : models) {
      progress.Show(fmt::format("[{}/{}] loading {} with {} thread(s)", group + 1, group_count,
                                m.path, threads),
                    /*force=*/true);
      ASSIGN_OR_RETURN(std::unique_ptr<Session> session, CreateSession(m.path, o, threads));
      sessions.push_back(std::move(session));
    }
    if (t == 0) RETURN_IF_ERROR(CheckShapes(o, models, sessions));

    for (int64_t batch : o.batch_sizes) {
      for (int64_t sequence : o.sequence_lengths) {
        ++group;
        const std::string label = SettingLabel(batch, sequence, threads);
        const std::vector<BertSample> samples =
            MakeSamples(o, batch, sequence, vocab_size, segment_vocab);
        std::vector<std::unique_ptr<SettingRunner>> runners;
        std::vector<TimedRun> runs;
        runners.reserve(models.size());
        runs.reserve(models.size());
        for (size_t m = 0; m < models.size(); ++m) {
          ASSIGN_OR_RETURN(std::unique_ptr<SettingRunner> runner,
                           SettingRunner::Create(*sessions[m], models[m].roles, samples, mode));
          runs.push_back([r = runner.get()](int sample) { return r->Run(sample); });
          runners.push_back(std::move(runner));
        }
        progress.ShowRuns(group, group_count, label + models_note, 0, o.test_times);
        StatusOr<std::vector<std::vector<double>>> latencies =
            RunInterleaved(runs, schedule, [&](int done, int total) {
              progress.ShowRuns(group, group_count, label + models_note, done, total);
            });
        if (!latencies.ok()) return std::move(latencies).status().WithContext(label);
        for (size_t m = 0; m < models.size(); ++m) {
          ASSIGN_OR_RETURN(LatencySummary summary, SummarizeLatencies((*latencies)[m]));
          PerfRow row;
          row.setting = {static_cast<int>(m), models[m].path, batch, sequence, threads};
          row.latency = summary;
          row.qps = QueriesPerSecond(batch, summary.average_ms);
          report.rows.push_back(row);
        }
      }
    }
  }
  progress.Clear();
  FillRatiosToFirstModel(report.rows);
  SortByAverage(report.rows);
  return report;
}

namespace {

// RunPerfCommand without its last-resort catch.
int RunPerfCommandOrThrow(int argc, const char* const* argv, std::FILE* out, std::FILE* err,
                          const std::function<int(const Status&)>& fail) {
  StatusOr<PerfOptions> parsed = ParsePerfArgs(argc, argv);
  if (!parsed.ok()) return fail(parsed.status());
  const PerfOptions& o = *parsed;
  if (o.help) {
    std::fputs(o.help_text.c_str(), out);
    return kExitOk;
  }
  // One start time names the default file and dates the report, so the two always agree.
  const std::tm started = LocalTime(std::chrono::system_clock::now());
  const std::string output = !o.output.empty()
                                 ? o.output
                                 : DefaultOutputPath(o.models.front(), o.use_gpu, o.batch_sizes,
                                                     o.sequence_lengths, FileTimestamp(started))
                                       .string();

  StatusOr<PerfReport> report = MeasurePerf(o, started, err);
  if (!report.ok()) return fail(report.status());

  // Results are printed even when a file cannot be written, so a long run is never lost.
  Status written = io::WriteFileAtomic(output, FormatTsv(*report));
  Status plotted = Status::Ok();
  if (!o.plot.empty()) {
    plotted = io::WriteFileAtomic(o.plot, RenderLatencyPlotSvg(BuildLatencyPlot(*report)));
  }
  if (o.json) {
    const std::string text =
        ReportToJson(*report, written.ok() ? output : "", plotted.ok() ? o.plot : "").dump(2);
    std::fprintf(out, "%s\n", text.c_str());
  } else {
    std::fputs(FormatTable(*report).c_str(), out);
    if (written.ok()) std::fprintf(out, "\nresults: %s\n", output.c_str());
    if (!o.plot.empty() && plotted.ok()) std::fprintf(out, "plot: %s\n", o.plot.c_str());
  }
  std::fflush(out);
  if (!written.ok()) return fail(written);
  if (!plotted.ok()) return fail(plotted);
  return kExitOk;
}

}  // namespace

int RunPerfCommand(int argc, const char* const* argv, std::FILE* out, std::FILE* err) {
  const std::string display = argc > 0 && argv[0] != nullptr ? argv[0] : "bertopt perf";
  auto fail = [&](const Status& status) {
    std::fprintf(err, "%s: %s\n", display.c_str(), status.message().c_str());
    return ExitCodeFor(status);
  };
  // Session and io turn their exceptions into Status; this catches what is left (bad_alloc on a
  // huge batch, say) so the CLI still ends with one line and an exit code.
  try {
    return RunPerfCommandOrThrow(argc, argv, out, err, fail);
  } catch (const std::exception& e) {
    return fail(InternalError(e.what()));
  }
}

}  // namespace bertopt::perf
