#pragma once
// Tensors stored outside the .onnx file (TensorProto.data_location = EXTERNAL): reading them back
// into raw_data, and listing the files a model refers to.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace bertopt::io {

class MappedFile;

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

/// As InlineExternalData, with the same checks and errors, except that each file is mapped
/// (once, into `files`) and a payload of at least `threshold` bytes is not read: the tensor is
/// marked as a view of its file instead (ir::MarkMapped). A tensor that carries the mark's
/// reserved key in the file is invalid.
[[nodiscard]] Status MapExternalData(onnx::ModelProto* model,
                                     const std::filesystem::path& model_path, int64_t threshold,
                                     std::vector<std::unique_ptr<MappedFile>>* files);

/// The files (model folder / location) that the model at `model_path` refers to, without parsing
/// its tensor bytes: the wire format is walked and everything but external_data entries skipped,
/// so this stays cheap for a 1 GB model with inline weights.
StatusOr<std::vector<std::filesystem::path>> ListExternalDataFiles(
    const std::filesystem::path& model_path);

}  // namespace bertopt::io
