// Placeholder until the perf command lands (issue: foundation / fusions).
#include <cstdio>

#include "commands.h"

namespace bertopt::cli {
int PerfMain(int, char**) {
  std::fprintf(stderr, "bertopt perf: not available yet\n");
  return kExitBadInput;
}
}  // namespace bertopt::cli
