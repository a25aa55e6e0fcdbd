#pragma once
// `bertopt perf` from argv to exit code, in the library so tests can run it with their own argv and
// streams. tools/bertopt/perf_cmd.cc only forwards to it.

#include <cstdio>
#include <ctime>

#include "bertopt/status.h"
#include "perf/options.h"
#include "perf/report.h"

namespace bertopt::perf {

/// Exit codes as in tools/bertopt/commands.h: 0 measured and written, 2 bad input (flags, model
/// files, shapes, no CUDA provider), 1 the measurement or writing the results failed.
int RunPerfCommand(int argc, const char* const* argv, std::FILE* out, std::FILE* err);

/// Everything after parsing: load, measure, and return the report (rows sorted, ratios filled),
/// dated `started`. `err` receives the progress line when it is a terminal.
StatusOr<PerfReport> MeasurePerf(const PerfOptions& options, const std::tm& started,
                                 std::FILE* err);

/// The exit code for a failed Status: 2 where the user can fix the input, 1 otherwise.
int ExitCodeFor(const Status& status);

}  // namespace bertopt::perf
