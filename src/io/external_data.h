#pragma once
// Tensors stored outside the .onnx file (TensorProto.data_location = EXTERNAL): reading them back
// into raw_data, and listing the files a model refers to.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace bertopt::io {

/// Where one tensor's bytes are, as written in its `external_data` key/value pairs.
struct ExternalRef {
  std::string location;  ///< relative to the model's folder, already checked not to escape it
  int64_t offset = 0;
  std::optional<int64_t> length;  ///< absent: up to the end of the file
};

/// Reads and checks the `external_data` entries of `tensor`. `model_label` prefixes errors.
StatusOr<ExternalRef> ParseExternalRef(const onnx::TensorProto& tensor,
                                       const std::string& model_label);

/// Reads every external tensor of `model` (loaded from `model_path`) into raw_data and clears its
/// external-data fields.
[[nodiscard]] Status InlineExternalData(onnx::ModelProto* model,
                                        const std::filesystem::path& model_path);

/// The files (model folder / location) that the model at `model_path` refers to, without parsing
/// its tensor bytes: the wire format is walked and everything but external_data entries skipped,
/// so this stays cheap for a 1 GB model with inline weights.
StatusOr<std::vector<std::filesystem::path>> ListExternalDataFiles(
    const std::filesystem::path& model_path);

}  // namespace bertopt::io
