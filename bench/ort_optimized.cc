// ort_optimized: let ONNX Runtime optimize a model at a graph optimization level and save what it
// produced (SessionOptions::SetOptimizedModelFilePath). bench/inference.sh compares this file,
// ORT's own offline result, with the original and with `bertopt optimize`'s output.
//   ort_optimized <input.onnx> <output.onnx> [disabled|basic|extended|all]   (default: all)
#include <cstdio>
#include <string>

#include "ort/session.h"

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    std::fprintf(stderr, "usage: %s <input.onnx> <output.onnx> [disabled|basic|extended|all]\n",
                 argv[0]);
    return 2;
  }
  bertopt::ort::SessionConfig config;
  if (argc == 4) {
    auto level = bertopt::ort::ParseOptLevel(argv[3]);
    if (!level.ok()) {
      std::fprintf(stderr, "ort_optimized: %s\n", level.status().message().c_str());
      return 2;
    }
    config.level = *level;
  }
  config.optimized_model_path = argv[2];
  // Creating the session is what makes ORT optimize and write the model; nothing is run.
  auto session = bertopt::ort::Session::Create(argv[1], config);
  if (!session.ok()) {
    std::fprintf(stderr, "ort_optimized: %s\n", session.status().message().c_str());
    return 1;
  }
  return 0;
}
