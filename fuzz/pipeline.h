#pragma once
// What both fuzz targets run on each input, and what the fuzz regression tests replay: the bytes
// as a model file through `bertopt optimize` and `bertopt quantize` in-process, with no ORT.

#include <filesystem>
#include <string>
#include <vector>

#include "bertopt/status.h"

namespace bertopt::fuzz {

struct PipelineResult {
  Status load;               ///< LoadModel of the bytes written to a file
  std::vector<Status> runs;  ///< one per configuration (empty when the load failed)
};

/// Writes `bytes` to `dir`/model.onnx, loads it, then for each configuration optimizes a copy
/// (every fusion, then int8; and every fusion, then --gpu_only --input_int32 --float16), saves it
/// (inline; with external data) and loads the result back. A failed step ends its configuration
/// with that step's error. A saved model that does not load back is kInternal: bertopt wrote a
/// file it cannot read.
PipelineResult RunPipeline(const std::string& bytes, const std::filesystem::path& dir);

/// An error that can only be a bug of bertopt (kInternal: a pass broke the graph, or the output
/// does not load back); the fuzz targets abort on it so that libFuzzer keeps the input.
bool IsBug(const PipelineResult& result);

/// A fresh folder for one fuzzing process's files (in /dev/shm when it exists: SaveModel syncs
/// each file, which on a disk would dominate every run), removed when the process exits.
const std::filesystem::path& ScratchDir();

/// The fuzz targets' body: RunPipeline in ScratchDir(), aborting on IsBug.
void FuzzOne(const std::string& bytes);

}  // namespace bertopt::fuzz
