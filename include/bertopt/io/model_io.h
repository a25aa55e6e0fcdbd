#pragma once
// Loading and saving ONNX models: inline or external-data tensors, lossless round trips, atomic
// writes. Every error names the file and the problem in one line.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace bertopt::io {

/// Loads `path`. Tensors stored as external data (files beside the model, `location` / `offset` /
/// `length`) are read into `raw_data` and their external-data fields cleared, so passes see every
/// value; nothing else is changed, so a load → save of an inline model is byte-for-byte lossless.
/// Errors (kNotFound, kIoError, kInvalidModel) name the file: missing, a folder, empty, truncated,
/// not ONNX, external-data file missing or too short, an external location that is absolute or
/// leaves the model's folder. A file cut exactly between two top-level fields after opset_import
/// is still a valid protobuf and loads as a smaller model: protobuf has no end marker to check.
StatusOr<onnx::ModelProto> LoadModel(const std::filesystem::path& path);

class MappedFile;

/// A model whose large initializer payloads were left in its mapped file (and mapped external
/// data files) instead of being copied into memory: LoadModelMapped. The tensors are marked
/// (ir::MarkMapped); ir's decoders, SaveModel and SerializeModel read them as raw_data, so
/// passes see an ordinary model. The files stay mapped, read-only, for the lifetime of this
/// object; `model()` and every copy of its tensors must not be used after it.
class MappedModel {
 public:
  MappedModel(MappedModel&&) noexcept;
  MappedModel& operator=(MappedModel&&) noexcept;
  ~MappedModel();

  onnx::ModelProto& model() { return model_; }
  const onnx::ModelProto& model() const { return model_; }

 private:
  friend StatusOr<MappedModel> LoadModelMapped(const std::filesystem::path&, int64_t);
  MappedModel();
  std::vector<std::unique_ptr<MappedFile>> files_;
  onnx::ModelProto model_;  // after files_, so it goes first
};

/// Payloads smaller than this are copied: mapping a few bytes saves nothing, and small tensors
/// (shapes, axes) are the ones passes and shape inference read most.
inline constexpr int64_t kMapThresholdBytes = 4096;

/// LoadModel without copying large payloads: the file is mapped and parsed in place, and graph
/// initializers whose raw_data (or external data) has at least `map_threshold_bytes` bytes stay in
/// the mapping until they are written (SaveModel copies them file to file) or rewritten (see
/// ir::Graph::MutableInitializer). The same checks and errors as LoadModel, and the same model:
/// saving it writes the bytes LoadModel + SaveModel would. The input must not be truncated while
/// the result lives (mapped reads past the new end would fault); replacing it through a rename,
/// as SaveModel does, is safe.
StatusOr<MappedModel> LoadModelMapped(const std::filesystem::path& path,
                                      int64_t map_threshold_bytes = kMapThresholdBytes);

/// The serialized model with mapped payloads written as raw_data (what SaveModel would write
/// inline), for handing a model to ONNX Runtime in memory. Fails over protobuf's 2 GB limit.
StatusOr<std::string> SerializeModel(const onnx::ModelProto& model);

/// Whether SerializeModel can serialize `model`: its size within protobuf's 2 GB limit.
bool FitsOneMessage(const onnx::ModelProto& model);

/// The size SerializeModel's result (and an inline SaveModel) has: ByteSizeLong, with mapped
/// payloads counted.
int64_t SerializedSize(const onnx::ModelProto& model);

struct SaveOptions {
  /// Store large tensors in `<output file name>.data` beside the model even under 2 GB.
  bool external_data = false;
  /// Tensors at least this large go to the external file when external data is used (asked for,
  /// or forced by the 2 GB limit). Payloads are raw_data or a typed field whose elements are
  /// stored as-is (float_data of FLOAT, int64_data of INT64, ...); they start at 4 KiB-aligned
  /// offsets so each can be mmap'ed.
  int64_t external_threshold_bytes = 1024;
  /// Allow writing over `protect` (normally the input model) and the external data files it
  /// refers to.
  bool overwrite = false;
  /// The input model's path; writing to it, or to an external data file it refers to, is refused
  /// with kFailedPrecondition unless `overwrite`. Empty: nothing is protected.
  std::filesystem::path protect;
};

/// Writes `model` to `path` atomically (temporary file in the target folder, fsync, rename) with
/// deterministic serialization, streamed to the file without a serialized copy in memory. Models
/// whose serialized size would exceed protobuf's 2 GB limit are saved with external data; the
/// large payloads are written from `model` directly, not copied. On error no temporary file is
/// left and `path` keeps its previous content, if any (the one exception: should renaming the
/// model fail after its new data file was renamed into place, that data file is removed).
/// Tensors that already refer to external data (not loaded through LoadModel) are written
/// unchanged, so their files must be where the output expects them. Mapped payloads
/// (LoadModelMapped) are moved from their file in the kernel (splice through a pipe) where the
/// file system allows, else written from the mapping; either way they never enter private memory.
Status SaveModel(const onnx::ModelProto& model, const std::filesystem::path& path,
                 const SaveOptions& options = {});

/// Writes `bytes` to `path` atomically; used for models and for the test_data_set .pb files.
Status WriteFileAtomic(const std::filesystem::path& path, const std::string& bytes);

}  // namespace bertopt::io
