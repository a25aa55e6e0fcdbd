#include "io/split_model.h"

#include <bit>
#include <optional>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "io/tensor_walk.h"

namespace bertopt::io {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// ONNX external data is little-endian; the typed repeated fields are written straight from memory.
static_assert(std::endian::native == std::endian::little,
              "external data writing assumes a little-endian host");

struct Payload {
  std::string_view bytes;
  int field_number = 0;  // the TensorProto field the bytes come from
};

template <typename T>
std::string_view AsBytes(const google::protobuf::RepeatedField<T>& values) {
  return {reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T)};
}

// The bytes a tensor would store as external data; empty for string tensors and for types whose
// typed field holds wider elements than the type (e.g. FLOAT16 in int32_data).
Payload FindPayload(const onnx::TensorProto& t) {
  using TP = onnx::TensorProto;
  if (t.has_raw_data()) return {t.raw_data(), TP::kRawDataFieldNumber};
  switch (t.data_type()) {
    case TP::FLOAT:
    case TP::COMPLEX64:
      return {AsBytes(t.float_data()), TP::kFloatDataFieldNumber};
    case TP::DOUBLE:
    case TP::COMPLEX128:
      return {AsBytes(t.double_data()), TP::kDoubleDataFieldNumber};
    case TP::INT64:
      return {AsBytes(t.int64_data()), TP::kInt64DataFieldNumber};
    case TP::INT32:
      return {AsBytes(t.int32_data()), TP::kInt32DataFieldNumber};
    case TP::UINT64:
      return {AsBytes(t.uint64_data()), TP::kUint64DataFieldNumber};
    default:
      return {};
  }
}

// Copies one field that needs no recursion (scalars, strings, and messages without tensors).
void CopyField(const Message& src, Message* dst, const FieldDescriptor* f) {
  const Reflection* in = src.GetReflection();
  const Reflection* out = dst->GetReflection();
  if (f->is_repeated()) {
    const int n = in->FieldSize(src, f);
    for (int i = 0; i < n; ++i) {
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          out->AddInt32(dst, f, in->GetRepeatedInt32(src, f, i));
          break;
        case FieldDescriptor::CPPTYPE_INT64:
          out->AddInt64(dst, f, in->GetRepeatedInt64(src, f, i));
          break;
        case FieldDescriptor::CPPTYPE_UINT32:
          out->AddUInt32(dst, f, in->GetRepeatedUInt32(src, f, i));
          break;
        case FieldDescriptor::CPPTYPE_UINT64:
          out->AddUInt64(dst, f, in->GetRepeatedUInt64(src, f, i));
          break;
        case FieldDescriptor::CPPTYPE_DOUBLE:
          out->AddDouble(dst, f, in->GetRepeatedDouble(src, f, i));
          break;
        case FieldDescriptor::CPPTYPE_FLOAT:
          out->AddFloat(dst, f, in->GetRepeatedFloat(src, f, i));
          break;
        case FieldDescriptor::CPPTYPE_BOOL:
          out->AddBool(dst, f, in->GetRepeatedBool(src, f, i));
          break;
        case FieldDescriptor::CPPTYPE_ENUM:
          out->AddEnumValue(dst, f, in->GetRepeatedEnumValue(src, f, i));
          break;
        case FieldDescriptor::CPPTYPE_STRING:
          out->AddString(dst, f, in->GetRepeatedString(src, f, i));
          break;
        case FieldDescriptor::CPPTYPE_MESSAGE:
          out->AddMessage(dst, f)->CopyFrom(in->GetRepeatedMessage(src, f, i));
          break;
      }
    }
    return;
  }
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      out->SetInt32(dst, f, in->GetInt32(src, f));
      break;
    case FieldDescriptor::CPPTYPE_INT64:
      out->SetInt64(dst, f, in->GetInt64(src, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      out->SetUInt32(dst, f, in->GetUInt32(src, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      out->SetUInt64(dst, f, in->GetUInt64(src, f));
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      out->SetDouble(dst, f, in->GetDouble(src, f));
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      out->SetFloat(dst, f, in->GetFloat(src, f));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out->SetBool(dst, f, in->GetBool(src, f));
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      out->SetEnumValue(dst, f, in->GetEnumValue(src, f));
      break;
    case FieldDescriptor::CPPTYPE_STRING:
      out->SetString(dst, f, in->GetString(src, f));
      break;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      out->MutableMessage(dst, f)->CopyFrom(in->GetMessage(src, f));
      break;
  }
}

class Splitter {
 public:
  Splitter(int64_t threshold, std::string location, SplitModel* out)
      : threshold_(threshold), location_(std::move(location)), out_(out) {}

  // Copies `src` into the empty `dst`, descending only where tensors can be, so everything
  // without tensors is copied wholesale and only tensor payloads are left out.
  void Copy(const Message& src, Message* dst) {
    const google::protobuf::Descriptor* type = src.GetDescriptor();
    if (type == onnx::TensorProto::descriptor()) {
      CopyTensor(static_cast<const onnx::TensorProto&>(src), static_cast<onnx::TensorProto*>(dst));
    } else if (!holders_.MayHoldTensors(type)) {
      dst->CopyFrom(src);
    } else {
      CopyFieldsExcept(src, dst, /*skip_number=*/0);
    }
  }

 private:
  void CopyFieldsExcept(const Message& src, Message* dst, int skip_number) {
    const Reflection* in = src.GetReflection();
    const Reflection* out = dst->GetReflection();
    std::vector<const FieldDescriptor*> fields;
    in->ListFields(src, &fields);  // set fields only, in field-number order
    for (const FieldDescriptor* f : fields) {
      if (f->number() == skip_number) continue;
      bool descend = f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
                     holders_.MayHoldTensors(f->message_type());
      if (!descend) {
        CopyField(src, dst, f);
      } else if (f->is_repeated()) {
        const int n = in->FieldSize(src, f);
        for (int i = 0; i < n; ++i) {
          Copy(in->GetRepeatedMessage(src, f, i), out->AddMessage(dst, f));
        }
      } else {
        Copy(in->GetMessage(src, f), out->MutableMessage(dst, f));
      }
    }
    out->MutableUnknownFields(dst)->MergeFrom(in->GetUnknownFields(src));
  }

  void CopyTensor(const onnx::TensorProto& src, onnx::TensorProto* dst) {
    if (ir::HasMappedMark(src)) {
      CopyMarkedTensor(src, dst);
      return;
    }
    const Payload payload = FindPayload(src);
    if (src.data_location() == onnx::TensorProto::EXTERNAL || payload.bytes.empty() ||
        static_cast<int64_t>(payload.bytes.size()) < threshold_) {
      dst->CopyFrom(src);
      return;
    }
    CopyFieldsExcept(src, dst, payload.field_number);
    MoveOut(dst, {payload.bytes, -1, 0});
  }

  void CopyMarkedTensor(const onnx::TensorProto& src, onnx::TensorProto* dst) {
    std::optional<ir::MappedPayload> payload = ir::FindMappedPayload(src);
    if (!payload) {
      if (out_->dead_mark.empty()) out_->dead_mark = DescribeTensor(src);
      dst->CopyFrom(src);
      return;
    }
    dst->CopyFrom(src);  // without payload: the bytes are in the mapped file
    if (static_cast<int64_t>(payload->bytes.size()) >= threshold_ && !payload->bytes.empty()) {
      MoveOut(dst, *payload);
      return;
    }
    ir::ClearMappedMark(dst);
    dst->set_raw_data(payload->bytes.data(), payload->bytes.size());
  }

  // Points `dst` at `payload`'s place in the external file.
  void MoveOut(onnx::TensorProto* dst, const ir::MappedPayload& payload) {
    const int64_t offset =
        (next_offset_ + kExternalAlignment - 1) / kExternalAlignment * kExternalAlignment;
    const auto length = static_cast<int64_t>(payload.bytes.size());
    dst->set_data_location(onnx::TensorProto::EXTERNAL);
    // Stale entries from an earlier external save (or a mapped mark) would shadow or duplicate
    // the new ones.
    dst->clear_external_data();
    AddEntry(dst, "location", location_);
    AddEntry(dst, "offset", std::to_string(offset));
    AddEntry(dst, "length", std::to_string(length));
    out_->chunks.push_back({payload, offset});
    next_offset_ = offset + length;
  }

  static void AddEntry(onnx::TensorProto* t, const std::string& key, const std::string& value) {
    onnx::StringStringEntryProto* entry = t->add_external_data();
    entry->set_key(key);
    entry->set_value(value);
  }

  TensorHolders holders_;
  int64_t threshold_;
  std::string location_;
  SplitModel* out_;
  int64_t next_offset_ = 0;
};

}  // namespace

SplitModel SplitForExternalData(const onnx::ModelProto& model, int64_t threshold_bytes,
                                const std::string& location) {
  SplitModel split;
  Splitter(threshold_bytes, location, &split).Copy(model, &split.skeleton);
  return split;
}

}  // namespace bertopt::io
