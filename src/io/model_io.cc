#include "bertopt/io/model_io.h"

#include <climits>
#include <exception>
#include <new>
#include <system_error>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "io/cleanup_on_signal.h"
#include "io/external_data.h"
#include "io/file_util.h"
#include "io/mapped_model.h"
#include "io/model_io_internal.h"
#include "io/split_model.h"

namespace bertopt::io {
namespace fs = std::filesystem;
namespace {

// Large blocks: a BERT-large file is 1.3 GB, and 8 KiB reads or writes would mean ~160k syscalls.
constexpr int kStreamBlockBytes = 1 << 20;

// Protobuf happily parses many non-ONNX byte strings as unknown fields; a real model has these.
Status CheckLooksLikeOnnx(const onnx::ModelProto& model, const std::string& label) {
  std::string missing;
  auto require = [&](bool present, const char* field) {
    if (!present) missing += (missing.empty() ? "" : ", ") + std::string(field);
  };
  require(model.has_graph(), "graph");
  require(model.ir_version() > 0, "ir_version");
  require(model.opset_import_size() > 0, "opset_import");
  if (!missing.empty()) return InvalidModel(label + ": not an ONNX model (no " + missing + ")");
  return Status::Ok();
}

// Checked before parsing, by both loaders.
Status CheckModelFileSize(int64_t size, const std::string& label) {
  if (size == 0) return InvalidModel(label + ": empty file, not an ONNX model");
  if (size > INT_MAX) {
    return InvalidModel(label + ": is " + std::to_string(size) +
                        " bytes; protobuf cannot parse a model file over 2 GB (weights that "
                        "large must be stored as external data)");
  }
  return Status::Ok();
}

// Streams the model from the file instead of reading it into a buffer first, so peak memory is
// the parsed model plus one block rather than twice the file.
StatusOr<onnx::ModelProto> ParseModelFile(const fs::path& path) {
  const std::string label = path.string();
  ASSIGN_OR_RETURN(InputFile input, InputFile::Open(path, label));
  RETURN_IF_ERROR(CheckModelFileSize(input.size(), label));

  onnx::ModelProto model;
  google::protobuf::io::FileInputStream file(input.fd(), kStreamBlockBytes);
  bool parsed = false;
  {
    google::protobuf::io::CodedInputStream in(&file);
    // The default limit has been 64 MB in older protobuf releases; BERT-large is 1.3 GB.
    in.SetTotalBytesLimit(INT_MAX);
    parsed = model.ParseFromCodedStream(&in) && in.ConsumedEntireMessage();
  }
  if (file.GetErrno() != 0) {
    return IoError(label + ": read failed (" + ErrnoText(file.GetErrno()) + ")");
  }
  if (!parsed) {
    return InvalidModel(label + ": truncated or not an ONNX model (protobuf parse failed)");
  }
  RETURN_IF_ERROR(CheckLooksLikeOnnx(model, label));
  return model;
}

// Refuses to replace `protect` or any external data file it refers to. Only targets that exist
// can be overwritten, so the (cheap, but not free) scan of `protect` runs only when one does.
Status CheckNotProtected(const std::vector<fs::path>& targets, const SaveOptions& options) {
  if (options.overwrite || options.protect.empty()) return Status::Ok();
  std::error_code ec;
  if (!fs::exists(options.protect, ec)) return Status::Ok();
  std::vector<fs::path> existing;
  for (const fs::path& target : targets) {
    if (fs::exists(target, ec)) existing.push_back(target);
  }
  if (existing.empty()) return Status::Ok();

  const std::string why = "; pass overwrite to allow it";
  for (const fs::path& target : existing) {
    if (fs::equivalent(target, options.protect, ec)) {
      return FailedPrecondition(target.string() + ": refusing to overwrite the input model '" +
                                options.protect.string() + "'" + why);
    }
  }
  StatusOr<std::vector<fs::path>> referenced = ListExternalDataFiles(options.protect);
  // An unreadable input cannot lose data to this write; its own load reports the problem.
  if (!referenced.ok()) return Status::Ok();
  for (const fs::path& target : existing) {
    for (const fs::path& data_file : *referenced) {
      if (fs::exists(data_file, ec) && fs::equivalent(target, data_file, ec)) {
        return FailedPrecondition(target.string() + ": refusing to overwrite '" +
                                  data_file.string() + "', external data of the input model '" +
                                  options.protect.string() + "'" + why);
      }
    }
  }
  return Status::Ok();
}

// Serializes straight into the file: no serialized copy of a 1.3 GB model in memory. Mapped
// payloads go from their file to this one in the kernel, between flushes of the stream.
Status WriteModel(const onnx::ModelProto& model, AtomicFile* file) {
  bool ok = false;
  Status payload_status;
  google::protobuf::io::FileOutputStream stream(file->fd(), kStreamBlockBytes);
  {
    google::protobuf::io::CodedOutputStream out(&stream);
    out.SetSerializationDeterministic(true);
    // Large raw_data strings go to write() directly instead of through the block buffer.
    out.EnableAliasing(true);
    if (HasMappedMarks(model)) {
      payload_status = SerializeResolved(
          model, &out,
          [&](google::protobuf::io::CodedOutputStream*, const ir::MappedPayload& payload) {
            if (!stream.Flush()) return file->WriteFailed(stream.GetErrno());
            return file->WritePayload(payload);
          });
      ok = payload_status.ok() && !out.HadError();
    } else {
      ok = model.SerializeToCodedStream(&out) && !out.HadError();
    }
  }
  if (!payload_status.ok()) return payload_status;
  ok = stream.Flush() && ok;
  if (!ok) {
    int err = stream.GetErrno();
    if (err != 0) return file->WriteFailed(err);
    return InternalError(file->target().string() + ": protobuf failed to serialize the model");
  }
  return Status::Ok();
}

Status SaveExternal(const SplitModel& split, const fs::path& path, const fs::path& data_path,
                    size_t inline_limit) {
  const size_t skeleton_size = split.skeleton.ByteSizeLong();
  if (skeleton_size > inline_limit) {
    return InvalidArgument(path.string() + ": even with external data the model is " +
                           std::to_string(skeleton_size) +
                           " bytes, over protobuf's 2 GB limit; lower the external threshold");
  }
  // Both files are complete and synced under temporary names before either is renamed, so an
  // error leaves the previous outputs (or nothing) rather than a model without its data. The
  // model's temporary comes first: a bad output folder should fail before gigabytes are written.
  ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> model, AtomicFile::Create(path));
  std::unique_ptr<AtomicFile> data;
  if (!split.chunks.empty()) {
    ASSIGN_OR_RETURN(data, AtomicFile::Create(data_path));
    for (const SplitModel::Chunk& chunk : split.chunks) {
      RETURN_IF_ERROR(data->WriteZeros(static_cast<size_t>(chunk.offset) - data->size()));
      RETURN_IF_ERROR(data->WritePayload(chunk.payload));
    }
    RETURN_IF_ERROR(data->Finish());
  }
  RETURN_IF_ERROR(WriteModel(split.skeleton, model.get()));
  RETURN_IF_ERROR(model->Finish());
  // One step as far as SIGINT / SIGTERM go: between the two renames the data would be in place
  // without its model.
  DeferSignals defer;
  if (data) {
    RETURN_IF_ERROR(data->Publish());
    TestSignalPoint("publish");
  }
  Status published = model->Publish();
  if (!published.ok() && data) {
    std::error_code ec;
    fs::remove(data_path, ec);
  }
  return published;
}

Status SaveModelImpl(const onnx::ModelProto& model, const fs::path& path,
                     const SaveOptions& options, size_t inline_limit) {
  const bool external =
      options.external_data || static_cast<size_t>(SerializedSize(model)) > inline_limit;
  if (!external) {
    RETURN_IF_ERROR(CheckNotProtected({path}, options));
    return WriteAtomically(path, [&](AtomicFile* file) { return WriteModel(model, file); });
  }
  const std::string data_name = path.filename().string() + ".data";
  const fs::path data_path = path.parent_path() / data_name;
  SplitModel split = SplitForExternalData(
      model, std::max<int64_t>(options.external_threshold_bytes, 0), data_name);
  if (!split.dead_mark.empty()) {
    return FailedPrecondition(path.string() + ": tensor " + split.dead_mark +
                              " refers to a mapped input file that is no longer open");
  }
  std::vector<fs::path> targets = {path};
  if (!split.chunks.empty()) targets.push_back(data_path);
  RETURN_IF_ERROR(CheckNotProtected(targets, options));
  return SaveExternal(split, path, data_path, inline_limit);
}

// Protobuf and std::filesystem report some failures (mostly allocation) by throwing.
template <typename F>
auto CatchExceptions(const fs::path& path, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return IoError(path.string() + ": out of memory");
  } catch (const std::exception& e) {
    return InternalError(path.string() + ": " + e.what());
  }
}

}  // namespace

StatusOr<onnx::ModelProto> LoadModel(const fs::path& path) {
  return CatchExceptions(path, [&]() -> StatusOr<onnx::ModelProto> {
    ASSIGN_OR_RETURN(onnx::ModelProto model, ParseModelFile(path));
    RETURN_IF_ERROR(InlineExternalData(&model, path));
    return model;
  });
}

MappedModel::MappedModel() = default;
MappedModel::MappedModel(MappedModel&&) noexcept = default;
MappedModel& MappedModel::operator=(MappedModel&&) noexcept = default;
MappedModel::~MappedModel() = default;

StatusOr<MappedModel> LoadModelMapped(const fs::path& path, int64_t map_threshold_bytes) {
  return CatchExceptions(path, [&]() -> StatusOr<MappedModel> {
    const std::string label = path.string();
    ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path, label));
    RETURN_IF_ERROR(CheckModelFileSize(static_cast<int64_t>(file->bytes().size()), label));
    MappedModel result;
    std::vector<PendingView> views;
    if (!ParseLeavingPayloads(file->bytes(), std::max<int64_t>(map_threshold_bytes, 1),
                              &result.model_, &views)) {
      return InvalidModel(label + ": truncated or not an ONNX model (protobuf parse failed)");
    }
    RETURN_IF_ERROR(CheckLooksLikeOnnx(result.model_, label));
    // Before the inline payloads are marked: every external reference here is the file's own.
    RETURN_IF_ERROR(MapExternalData(&result.model_, path, std::max<int64_t>(map_threshold_bytes, 1),
                                    &result.files_));
    const std::string name = path.filename().string();
    for (const PendingView& view : views) {
      ir::MarkMapped(view.tensor, file->region(), view.offset, view.length, name);
    }
    result.files_.push_back(std::move(file));
    return result;
  });
}

bool FitsOneMessage(const onnx::ModelProto& model) {
  return SerializedSize(model) <= static_cast<int64_t>(internal::kMaxInlineModelBytes);
}

StatusOr<std::string> SerializeModel(const onnx::ModelProto& model) {
  const int64_t size = SerializedSize(model);
  if (size > static_cast<int64_t>(internal::kMaxInlineModelBytes)) {
    return InvalidArgument("the model is " + std::to_string(size) +
                           " bytes, over protobuf's 2 GB limit for one message");
  }
  std::string bytes;
  bytes.reserve(static_cast<size_t>(size));
  Status status;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream out(&stream);
    out.SetSerializationDeterministic(true);
    status = SerializeResolved(
        model, &out,
        [](google::protobuf::io::CodedOutputStream* to, const ir::MappedPayload& payload) {
          to->WriteRaw(payload.bytes.data(), static_cast<int>(payload.bytes.size()));
          return Status::Ok();
        });
  }
  RETURN_IF_ERROR(status);
  return bytes;
}

int64_t SerializedSize(const onnx::ModelProto& model) {
  const size_t size = HasMappedMarks(model) ? ResolvedByteSize(model) : model.ByteSizeLong();
  return static_cast<int64_t>(size);
}

Status SaveModel(const onnx::ModelProto& model, const fs::path& path, const SaveOptions& options) {
  return internal::SaveModelWithInlineLimit(model, path, options, internal::kMaxInlineModelBytes);
}

Status WriteFileAtomic(const fs::path& path, const std::string& bytes) {
  return CatchExceptions(path, [&]() -> Status {
    return WriteAtomically(path, [&](AtomicFile* file) { return file->Write(bytes); });
  });
}

namespace internal {

Status SaveModelWithInlineLimit(const onnx::ModelProto& model, const fs::path& path,
                                const SaveOptions& options, size_t inline_limit) {
  return CatchExceptions(
      path, [&]() -> Status { return SaveModelImpl(model, path, options, inline_limit); });
}

}  // namespace internal
}  // namespace bertopt::io
