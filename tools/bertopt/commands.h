#pragma once
// One entry function per subcommand. Each parses its own flags (CLI11) from argv, where argv[0] is
// the command's display name ("bertopt optimize" or "bert_model_optimization"), and returns the
// process exit code: 0 success, 1 a check failed (compare mismatch, --verify failure), 2 bad input.

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "bertopt/exit_codes.h"

namespace bertopt::cli {

int OptimizeMain(int argc, char** argv);
int CompareMain(int argc, char** argv);
int PerfMain(int argc, char** argv);
int QuantizeMain(int argc, char** argv);

using ::bertopt::kExitBadInput;
using ::bertopt::kExitFailed;
using ::bertopt::kExitOk;

/// Parses the flags. Returns nullopt to go on, or the exit code to return: 0 after --help, 2 after
/// a one-line error naming the flag ("<name>: ... (see --help)").
std::optional<int> ParseFlags(CLI::App& app, const std::string& name, int argc, char** argv);

}  // namespace bertopt::cli
