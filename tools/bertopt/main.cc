// bertopt: one binary, four subcommands. The seed-named entry points (symlinks installed beside
// it) dispatch on argv[0]: bert_model_optimization -> optimize, compare_bert_results -> compare,
// bert_perf_test -> perf (quantize has no seed name).
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "commands.h"
#include "io/cleanup_on_signal.h"

namespace {

struct Command {
  const char* name;
  const char* alias;
  const char* summary;
  int (*main)(int, char**);
};

constexpr Command kCommands[] = {
    {"optimize", "bert_model_optimization", "fuse a BERT ONNX model into ORT's fused operators",
     bertopt::cli::OptimizeMain},
    {"compare", "compare_bert_results", "run original and optimized model and compare outputs",
     bertopt::cli::CompareMain},
    {"perf", "bert_perf_test", "measure latency and throughput across settings",
     bertopt::cli::PerfMain},
    {"quantize", nullptr, "int8 dynamic quantization for ONNX Runtime on CPU",
     bertopt::cli::QuantizeMain},
};

void PrintUsage(FILE* out) {
  std::fprintf(out, "usage: bertopt <command> [flags]   (bertopt <command> --help for flags)\n\n");
  for (const Command& c : kCommands) {
    if (c.alias) {
      std::fprintf(out, "  %-9s %s (also installed as %s)\n", c.name, c.summary, c.alias);
    } else {
      std::fprintf(out, "  %-9s %s\n", c.name, c.summary);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // SIGINT / SIGTERM remove the files being written before exiting 130 / 143.
  bertopt::io::InstallCleanupOnSignal();
  const std::string self = std::filesystem::path(argv[0]).filename().string();
  for (const Command& c : kCommands) {
    if (c.alias && self == c.alias) return c.main(argc, argv);
  }
  if (argc < 2) {
    PrintUsage(stderr);
    return bertopt::cli::kExitBadInput;
  }
  const std::string sub = argv[1];
  if (sub == "-h" || sub == "--help" || sub == "help") {
    PrintUsage(stdout);
    return bertopt::cli::kExitOk;
  }
  for (const Command& c : kCommands) {
    if (sub == c.name) {
      // The subcommand sees "bertopt optimize" as its program name and the rest as its flags.
      std::string display = "bertopt " + sub;
      std::vector<char*> args{display.data()};
      for (int i = 2; i < argc; ++i) args.push_back(argv[i]);
      return c.main(static_cast<int>(args.size()), args.data());
    }
  }
  std::fprintf(stderr, "bertopt: unknown command '%s'\n", sub.c_str());
  PrintUsage(stderr);
  return bertopt::cli::kExitBadInput;
}
