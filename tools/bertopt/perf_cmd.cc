// `bertopt perf` / bert_perf_test: the work lives in src/perf/command.cc so the tests can run
// it.
#include <cstdio>

#include "commands.h"
#include "perf/command.h"

namespace bertopt::cli {

int PerfMain(int argc, char** argv) {
  return bertopt::perf::RunPerfCommand(argc, argv, stdout, stderr);
}

}  // namespace bertopt::cli
