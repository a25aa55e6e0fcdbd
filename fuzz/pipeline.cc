#include "pipeline.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "bertopt/io/model_io.h"
#include "bertopt/optimize.h"
#include "passes/convert/quantize.h"

namespace bertopt::fuzz {
namespace fs = std::filesystem;
namespace {

struct Configuration {
  OptimizeOptions optimize;
  bool int8 = false;
  io::SaveOptions save;
};

std::vector<Configuration> Configurations() {
  Configuration fusions_int8;
  fusions_int8.int8 = true;
  fusions_int8.save.overwrite = true;

  Configuration converted;
  converted.optimize.target_ort_version = "1.30";  // the table's forms, with its fallbacks
  converted.optimize.gpu_only = true;
  converted.optimize.input_int32 = true;
  converted.optimize.float16 = true;
  converted.save.external_data = true;
  converted.save.overwrite = true;
  return {fusions_int8, converted};
}

Status Run(const onnx::ModelProto& input, const Configuration& config, const fs::path& output) {
  onnx::ModelProto model = input;
  RETURN_IF_ERROR(Optimize(model, config.optimize).status());
  if (config.int8) RETURN_IF_ERROR(passes::Quantize(model, {}).status());
  RETURN_IF_ERROR(io::SaveModel(model, output, config.save));
  if (StatusOr<onnx::ModelProto> reloaded = io::LoadModel(output); !reloaded.ok()) {
    return InternalError("the saved model does not load back: " + reloaded.status().message());
  }
  return Status::Ok();
}

}  // namespace

PipelineResult RunPipeline(const std::string& bytes, const fs::path& dir) {
  PipelineResult result;
  const fs::path input_path = dir / "model.onnx";
  result.load = io::WriteFileAtomic(input_path, bytes);
  if (!result.load.ok()) return result;
  StatusOr<onnx::ModelProto> input = io::LoadModel(input_path);
  result.load = input.status();
  if (!input.ok()) return result;
  for (const Configuration& config : Configurations()) {
    result.runs.push_back(Run(*input, config, dir / "optimized.onnx"));
  }
  return result;
}

bool IsBug(const PipelineResult& result) {
  if (result.load.code() == StatusCode::kInternal) return true;
  for (const Status& run : result.runs) {
    if (run.code() == StatusCode::kInternal) return true;
  }
  return false;
}

const fs::path& ScratchDir() {
  static const fs::path dir = [] {
    std::error_code ec;
    const fs::path base =
        fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::string pattern = (base / "bertopt-fuzz-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) {
      std::perror("bertopt fuzz: mkdtemp");
      std::abort();
    }
    std::atexit([] {
      std::error_code ignored;
      fs::remove_all(ScratchDir(), ignored);
    });
    return fs::path(pattern);
  }();
  return dir;
}

void FuzzOne(const std::string& bytes) {
  const PipelineResult result = RunPipeline(bytes, ScratchDir());
  if (!IsBug(result)) return;
  std::fprintf(stderr, "bertopt fuzz: internal error: %s\n", [&] {
    if (result.load.code() == StatusCode::kInternal) return result.load.message().c_str();
    for (const Status& run : result.runs) {
      if (run.code() == StatusCode::kInternal) return run.message().c_str();
    }
    return "";
  }());
  std::abort();
}

}  // namespace bertopt::fuzz
