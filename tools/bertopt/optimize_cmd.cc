// Placeholder until the optimize command lands (issue: foundation / fusions).
#include <cstdio>

#include "commands.h"

namespace bertopt::cli {
int OptimizeMain(int, char**) {
  std::fprintf(stderr, "bertopt optimize: not available yet\n");
  return kExitBadInput;
}
}  // namespace bertopt::cli
