// Placeholder until the compare command lands (issue: foundation / fusions).
#include <cstdio>

#include "commands.h"

namespace bertopt::cli {
int CompareMain(int, char**) {
  std::fprintf(stderr, "bertopt compare: not available yet\n");
  return kExitBadInput;
}
}  // namespace bertopt::cli
