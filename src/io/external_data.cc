#include "io/external_data.h"

#include <unistd.h>

#include <charconv>
#include <climits>
#include <map>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl.h"
#include "google/protobuf/wire_format_lite.h"
#include "io/file_util.h"
#include "io/tensor_walk.h"

namespace bertopt::io {
namespace fs = std::filesystem;
namespace {

std::optional<int64_t> ParseNonNegative(const std::string& text) {
  int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end || value < 0 || text.empty()) return std::nullopt;
  return value;
}

class ExternalReader {
 public:
  explicit ExternalReader(const fs::path& model_path)
      : label_(model_path.string()), folder_(model_path.parent_path()) {}

  Status Read(onnx::TensorProto* tensor) {
    if (tensor->data_location() != onnx::TensorProto::EXTERNAL) return Status::Ok();
    ASSIGN_OR_RETURN(ExternalRef ref, ParseExternalRef(*tensor, label_));
    const std::string what =
        "external data file '" + ref.location + "' for tensor " + DescribeTensor(*tensor);
    if (tensor->has_raw_data()) {
      return InvalidModel(label_ + ": tensor " + DescribeTensor(*tensor) +
                          " has both raw_data and external data");
    }
    ASSIGN_OR_RETURN(const InputFile* file, Open(ref.location, what));
    const int64_t size = file->size();
    int64_t length = ref.length.value_or(size - ref.offset);
    if (ref.offset > size || length > size - ref.offset) {
      return InvalidModel(label_ + ": " + what + " is " + std::to_string(size) +
                          " bytes, needs offset " + std::to_string(ref.offset) + " + length " +
                          (ref.length ? std::to_string(*ref.length) : "to end of file"));
    }
    std::string* raw = tensor->mutable_raw_data();
    raw->resize(static_cast<size_t>(length));
    int64_t done = 0;
    while (done < length) {
      ssize_t n = ::pread(file->fd(), raw->data() + done, static_cast<size_t>(length - done),
                          ref.offset + done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        return IoError(label_ + ": reading " + what + " failed (" + ErrnoText(errno) + ")");
      }
      if (n == 0) return IoError(label_ + ": " + what + " ended early (changed while reading?)");
      done += n;
    }
    tensor->clear_data_location();
    tensor->clear_external_data();
    return Status::Ok();
  }

 private:
  // One open file per location: BERT keeps hundreds of tensors in a single file.
  StatusOr<const InputFile*> Open(const std::string& location, const std::string& what) {
    auto it = files_.find(location);
    if (it == files_.end()) {
      ASSIGN_OR_RETURN(InputFile file, InputFile::Open(folder_ / location, label_ + ": " + what));
      it = files_.emplace(location, std::move(file)).first;
    }
    return &it->second;
  }

  std::string label_;
  fs::path folder_;
  std::map<std::string, InputFile> files_;
};

// The same checks as ExternalReader, on mapped files: large payloads stay where they are.
class ExternalMapper {
 public:
  ExternalMapper(const fs::path& model_path, int64_t threshold,
                 std::vector<std::unique_ptr<MappedFile>>* files)
      : label_(model_path.string()),
        folder_(model_path.parent_path()),
        threshold_(threshold),
        files_(files) {}

  Status Map(onnx::TensorProto* tensor) {
    for (const onnx::StringStringEntryProto& entry : tensor->external_data()) {
      if (entry.key() == ir::kMappedRegionKey) {
        return InvalidModel(label_ + ": tensor " + DescribeTensor(*tensor) +
                            " uses the reserved external data key '" + entry.key() + "'");
      }
    }
    if (tensor->data_location() != onnx::TensorProto::EXTERNAL) return Status::Ok();
    ASSIGN_OR_RETURN(ExternalRef ref, ParseExternalRef(*tensor, label_));
    const std::string what =
        "external data file '" + ref.location + "' for tensor " + DescribeTensor(*tensor);
    if (tensor->has_raw_data()) {
      return InvalidModel(label_ + ": tensor " + DescribeTensor(*tensor) +
                          " has both raw_data and external data");
    }
    ASSIGN_OR_RETURN(const MappedFile* file, Open(ref.location, what));
    const auto size = static_cast<int64_t>(file->bytes().size());
    int64_t length = ref.length.value_or(size - ref.offset);
    if (ref.offset > size || length > size - ref.offset) {
      return InvalidModel(label_ + ": " + what + " is " + std::to_string(size) +
                          " bytes, needs offset " + std::to_string(ref.offset) + " + length " +
                          (ref.length ? std::to_string(*ref.length) : "to end of file"));
    }
    if (length >= threshold_) {
      ir::MarkMapped(tensor, file->region(), ref.offset, length, ref.location);
      return Status::Ok();
    }
    tensor->clear_data_location();
    tensor->clear_external_data();
    const std::string_view bytes = file->bytes().substr(ref.offset, length);
    tensor->set_raw_data(bytes.data(), bytes.size());
    return Status::Ok();
  }

 private:
  StatusOr<const MappedFile*> Open(const std::string& location, const std::string& what) {
    auto it = by_location_.find(location);
    if (it == by_location_.end()) {
      ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file,
                       MappedFile::Open(folder_ / location, label_ + ": " + what));
      files_->push_back(std::move(file));
      it = by_location_.emplace(location, files_->back().get()).first;
    }
    return it->second;
  }

  std::string label_;
  fs::path folder_;
  int64_t threshold_;
  std::vector<std::unique_ptr<MappedFile>>* files_;
  std::map<std::string, const MappedFile*> by_location_;
};

using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;

// Walks one message of `type` on the wire, descending only into fields that can hold tensors and
// collecting the `location` values of TensorProto.external_data entries.
bool ScanLocations(CodedInputStream* in, const google::protobuf::Descriptor* type,
                   const TensorHolders& holders, std::vector<std::string>* locations) {
  const google::protobuf::FieldDescriptor* external_data =
      onnx::TensorProto::descriptor()->FindFieldByNumber(
          onnx::TensorProto::kExternalDataFieldNumber);
  while (true) {
    uint32_t tag = in->ReadTag();
    if (tag == 0) return true;  // end of message (limit) or of file
    const google::protobuf::FieldDescriptor* field =
        type->FindFieldByNumber(static_cast<int>(WireFormatLite::GetTagFieldNumber(tag)));
    const bool wanted =
        field != nullptr &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED &&
        (field == external_data ||
         (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE &&
          holders.MayHoldTensors(field->message_type())));
    if (!wanted) {
      if (!WireFormatLite::SkipField(in, tag)) return false;
      continue;
    }
    uint32_t length = 0;
    if (!in->ReadVarint32(&length)) return false;
    auto limit = in->PushLimit(static_cast<int>(length));
    if (field == external_data) {
      onnx::StringStringEntryProto entry;
      if (!entry.MergeFromCodedStream(in)) return false;
      if (entry.key() == "location") locations->push_back(entry.value());
    } else {
      if (!in->IncrementRecursionDepth()) return false;
      if (!ScanLocations(in, field->message_type(), holders, locations)) return false;
      in->DecrementRecursionDepth();
    }
    // Bytes left before the limit mean the file ended inside this field: truncated.
    if (!in->ConsumedEntireMessage() || in->BytesUntilLimit() != 0) return false;
    in->PopLimit(limit);
  }
}

}  // namespace

StatusOr<ExternalRef> ParseExternalRef(const onnx::TensorProto& tensor,
                                       const std::string& model_label) {
  const std::string prefix = model_label + ": tensor " + DescribeTensor(tensor);
  ExternalRef ref;
  bool has_location = false;
  for (const onnx::StringStringEntryProto& entry : tensor.external_data()) {
    if (entry.key() == "location") {
      ref.location = entry.value();
      has_location = true;
    } else if (entry.key() == "offset" || entry.key() == "length") {
      std::optional<int64_t> value = ParseNonNegative(entry.value());
      if (!value) {
        return InvalidModel(prefix + ": external data " + entry.key() + " '" + entry.value() +
                            "' is not a non-negative integer");
      }
      if (entry.key() == "offset") {
        ref.offset = *value;
      } else {
        ref.length = *value;
      }
    }
    // Other keys (e.g. "checksum") carry nothing needed to read the bytes.
  }
  if (!has_location || ref.location.empty()) {
    return InvalidModel(prefix + " is stored as external data but has no location");
  }
  fs::path location(ref.location);
  if (location.has_root_path()) {
    return InvalidModel(prefix + ": external data location '" + ref.location +
                        "' is absolute; it must be relative to the model's folder");
  }
  fs::path normal = location.lexically_normal();
  if (normal.empty() || *normal.begin() == ".." || normal == ".") {
    return InvalidModel(prefix + ": external data location '" + ref.location +
                        "' is not a file inside the model's folder");
  }
  return ref;
}

Status InlineExternalData(onnx::ModelProto* model, const fs::path& model_path) {
  ExternalReader reader(model_path);
  return ForEachTensor(model, [&](onnx::TensorProto* t) { return reader.Read(t); });
}

Status MapExternalData(onnx::ModelProto* model, const fs::path& model_path, int64_t threshold,
                       std::vector<std::unique_ptr<MappedFile>>* files) {
  ExternalMapper mapper(model_path, threshold, files);
  return ForEachTensor(model, [&](onnx::TensorProto* t) { return mapper.Map(t); });
}

StatusOr<std::vector<fs::path>> ListExternalDataFiles(const fs::path& model_path) {
  const std::string label = model_path.string();
  ASSIGN_OR_RETURN(InputFile model, InputFile::Open(model_path, label));
  std::vector<std::string> locations;
  bool ok = false;
  {
    google::protobuf::io::FileInputStream file(model.fd(), 1 << 16);
    CodedInputStream in(&file);
    in.SetTotalBytesLimit(INT_MAX);
    ok = ScanLocations(&in, onnx::ModelProto::descriptor(), TensorHolders(), &locations);
  }
  if (!ok) return InvalidModel(label + ": truncated or not an ONNX model (protobuf parse failed)");
  std::vector<fs::path> files;
  files.reserve(locations.size());
  for (const std::string& location : locations) {
    files.push_back(model_path.parent_path() / location);
  }
  return files;
}

}  // namespace bertopt::io
