#pragma once
// Loading and saving ONNX models: inline or external-data tensors, lossless round trips, atomic
// writes. Every error names the file and the problem in one line.

#include <cstdint>
#include <filesystem>

#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace bertopt::io {

/// Loads `path`. Tensors stored as external data (files beside the model, `location` / `offset` /
/// `length`) are read into `raw_data` and their external-data fields cleared, so passes see every
/// value; nothing else is changed, so a load → save of an inline model is byte-for-byte lossless.
/// Errors (kNotFound, kIoError, kInvalidModel) name the file: missing, a folder, empty, truncated,
/// not ONNX, external-data file missing or too short.
StatusOr<onnx::ModelProto> LoadModel(const std::filesystem::path& path);

struct SaveOptions {
  /// Store large tensors in `<output file name>.data` beside the model even under 2 GB.
  bool external_data = false;
  /// Tensors at least this large go to the external file when external data is used.
  int64_t external_threshold_bytes = 1024;
  /// Allow writing over `protect` (normally the input model).
  bool overwrite = false;
  /// The input model's path; writing to it is refused unless `overwrite`.
  std::filesystem::path protect;
};

/// Writes `model` to `path` atomically (temporary file in the target folder, then rename). Models
/// whose serialized size would exceed protobuf's 2 GB limit are saved with external data. On error
/// nothing is left at `path` (or beside it).
Status SaveModel(const onnx::ModelProto& model, const std::filesystem::path& path,
                 const SaveOptions& options = {});

/// Writes `bytes` to `path` atomically; used for models and for the test_data_set .pb files.
Status WriteFileAtomic(const std::filesystem::path& path, const std::string& bytes);

}  // namespace bertopt::io
