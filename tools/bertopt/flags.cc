#include <iostream>

#include "commands.h"

namespace bertopt::cli {

std::optional<int> ParseFlags(CLI::App& app, const std::string& name, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      app.exit(e);  // --help
      return kExitOk;
    }
    std::cerr << name << ": " << e.what() << " (see --help)\n";
    return kExitBadInput;
  }
  return std::nullopt;
}

}  // namespace bertopt::cli
