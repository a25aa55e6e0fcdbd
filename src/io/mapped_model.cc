#include "io/mapped_model.h"

#include <optional>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/wire_format.h"
#include "google/protobuf/wire_format_lite.h"
#include "io/tensor_walk.h"

namespace bertopt::io {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::MessageLite;
using google::protobuf::Reflection;
using google::protobuf::internal::WireFormat;
using google::protobuf::internal::WireFormatLite;
using google::protobuf::io::CodedInputStream;
using google::protobuf::io::CodedOutputStream;

const uint8_t* Bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

// Parses `bytes` into `msg`, except each length-delimited occurrence of field `number`, whose
// payload goes to `special`. Protobuf parses a message given in pieces split at field boundaries
// exactly as the whole (parsing merges), so every other field, unknown ones included, is
// protobuf's own work; only the special field is ours.
bool MergeExcept(std::string_view bytes, MessageLite* msg, int number,
                 const std::function<bool(std::string_view)>& special) {
  const int size = static_cast<int>(bytes.size());
  CodedInputStream in(Bytes(bytes), size);
  int span_start = 0;
  auto merge_span = [&](int end) {
    if (end == span_start) return true;
    CodedInputStream piece(Bytes(bytes) + span_start, end - span_start);
    return msg->MergePartialFromCodedStream(&piece) && piece.CurrentPosition() == end - span_start;
  };
  while (true) {
    const int field_start = in.CurrentPosition();
    const uint32_t tag = in.ReadTag();
    // The end, or a malformed tag that protobuf rejects when it parses the rest below.
    if (tag == 0) break;
    if (static_cast<int>(WireFormatLite::GetTagFieldNumber(tag)) != number ||
        WireFormatLite::GetTagWireType(tag) != WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      if (!WireFormatLite::SkipField(&in, tag)) return false;
      continue;
    }
    uint32_t length = 0;
    if (!in.ReadVarint32(&length)) return false;
    const int payload_start = in.CurrentPosition();
    if (length > static_cast<uint32_t>(size - payload_start)) return false;
    if (!merge_span(field_start)) return false;
    if (!special(bytes.substr(payload_start, length))) return false;
    in.Skip(static_cast<int>(length));
    span_start = in.CurrentPosition();
  }
  return merge_span(size);
}

class LeavingParser {
 public:
  LeavingParser(std::string_view file, int64_t threshold, std::vector<PendingView>* views)
      : file_(file), threshold_(threshold), views_(views) {}

  bool Model(std::string_view bytes, onnx::ModelProto* model) {
    return MergeExcept(
        bytes, model, onnx::ModelProto::kGraphFieldNumber,
        [&](std::string_view graph) { return Graph(graph, model->mutable_graph()); });
  }

 private:
  bool Graph(std::string_view bytes, onnx::GraphProto* graph) {
    return MergeExcept(bytes, graph, onnx::GraphProto::kInitializerFieldNumber,
                       [&](std::string_view t) { return Tensor(t, graph->add_initializer()); });
  }

  bool Tensor(std::string_view bytes, onnx::TensorProto* tensor) {
    // raw_data is a singular field: if it occurs more than once, the last occurrence counts.
    std::optional<std::string_view> left;
    const bool ok = MergeExcept(bytes, tensor, onnx::TensorProto::kRawDataFieldNumber,
                                [&](std::string_view raw) {
                                  if (static_cast<int64_t>(raw.size()) >= threshold_) {
                                    left = raw;
                                    tensor->clear_raw_data();
                                  } else {
                                    left.reset();
                                    tensor->set_raw_data(raw.data(), raw.size());
                                  }
                                  return true;
                                });
    if (!ok || !left) return ok;
    // A tensor that also claims external data is an error the loader reports with the bytes in
    // place, as it would for any file; and only a tensor without these fields can carry a mark.
    if (tensor->has_data_location() || tensor->external_data_size() > 0) {
      tensor->set_raw_data(left->data(), left->size());
      return true;
    }
    views_->push_back({tensor, left->data() - file_.data(), static_cast<int64_t>(left->size())});
    return true;
  }

  std::string_view file_;
  int64_t threshold_;
  std::vector<PendingView>* views_;
};

size_t LengthDelimitedFieldSize(int number, size_t payload) {
  return WireFormatLite::TagSize(number, WireFormatLite::TYPE_BYTES) +
         WireFormatLite::LengthDelimitedSize(payload);
}

// Size and serialization through reflection, field by field in field-number order and unknown
// fields last, as protobuf's generated code writes them; descending only into messages that can
// hold tensors, so everything else is serialized by protobuf itself.
class Resolver {
 public:
  size_t Size(const Message& m) const {
    if (m.GetDescriptor() == onnx::TensorProto::descriptor()) {
      const auto& t = static_cast<const onnx::TensorProto&>(m);
      std::optional<ir::MappedPayload> payload = ir::FindMappedPayload(t);
      if (!payload) return t.ByteSizeLong();
      size_t size =
          LengthDelimitedFieldSize(onnx::TensorProto::kRawDataFieldNumber, payload->bytes.size());
      for (const FieldDescriptor* f : Fields(t)) {
        if (!IsMarkField(f)) size += WireFormat::FieldByteSize(f, t);
      }
      return size + WireFormat::ComputeUnknownFieldsSize(Reflect(t).GetUnknownFields(t));
    }
    if (!holders_.MayHoldTensors(m.GetDescriptor())) return m.ByteSizeLong();
    size_t size = 0;
    for (const FieldDescriptor* f : Fields(m)) {
      if (!Descend(f)) {
        size += WireFormat::FieldByteSize(f, m);
        continue;
      }
      ForEachMessage(m, f, [&](const Message& child) {
        size += LengthDelimitedFieldSize(f->number(), Size(child));
      });
    }
    return size + WireFormat::ComputeUnknownFieldsSize(Reflect(m).GetUnknownFields(m));
  }

  Status Write(const Message& m, CodedOutputStream* out, const PayloadWriter& write) const {
    const bool tensor = m.GetDescriptor() == onnx::TensorProto::descriptor();
    if (tensor && ir::HasMappedMark(static_cast<const onnx::TensorProto&>(m))) {
      return WriteMarked(static_cast<const onnx::TensorProto&>(m), out, write);
    }
    if (tensor || !holders_.MayHoldTensors(m.GetDescriptor())) {
      m.ByteSizeLong();  // serialization below reads the sizes this caches
      m.SerializeWithCachedSizes(out);
      return Status::Ok();
    }
    for (const FieldDescriptor* f : Fields(m)) {
      if (!Descend(f)) {
        WireFormat::FieldByteSize(f, m);
        WireFormat::SerializeFieldWithCachedSizes(f, m, out);
        continue;
      }
      Status status;
      ForEachMessage(m, f, [&](const Message& child) {
        if (!status.ok()) return;
        out->WriteTag(
            WireFormatLite::MakeTag(f->number(), WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
        out->WriteVarint64(Size(child));
        status = Write(child, out, write);
      });
      RETURN_IF_ERROR(status);
    }
    WireFormat::SerializeUnknownFields(Reflect(m).GetUnknownFields(m), out);
    return Status::Ok();
  }

 private:
  // The tensor without its mark, with raw_data at its place among the fields.
  Status WriteMarked(const onnx::TensorProto& t, CodedOutputStream* out,
                     const PayloadWriter& write) const {
    std::optional<ir::MappedPayload> payload = ir::FindMappedPayload(t);
    if (!payload) {
      return FailedPrecondition("tensor " + DescribeTensor(t) +
                                " refers to a mapped input file that is no longer open");
    }
    bool written = false;
    auto write_raw = [&]() -> Status {
      written = true;
      out->WriteTag(WireFormatLite::MakeTag(onnx::TensorProto::kRawDataFieldNumber,
                                            WireFormatLite::WIRETYPE_LENGTH_DELIMITED));
      out->WriteVarint64(payload->bytes.size());
      out->Trim();
      return write(out, *payload);
    };
    for (const FieldDescriptor* f : Fields(t)) {
      if (IsMarkField(f)) continue;
      if (!written && f->number() > onnx::TensorProto::kRawDataFieldNumber) {
        RETURN_IF_ERROR(write_raw());
      }
      WireFormat::FieldByteSize(f, t);
      WireFormat::SerializeFieldWithCachedSizes(f, t, out);
    }
    if (!written) RETURN_IF_ERROR(write_raw());
    WireFormat::SerializeUnknownFields(Reflect(t).GetUnknownFields(t), out);
    return Status::Ok();
  }

  static const Reflection& Reflect(const Message& m) { return *m.GetReflection(); }

  static std::vector<const FieldDescriptor*> Fields(const Message& m) {
    std::vector<const FieldDescriptor*> fields;
    Reflect(m).ListFields(m, &fields);  // set fields, in field-number order
    return fields;
  }

  static bool IsMarkField(const FieldDescriptor* f) {
    return f->number() == onnx::TensorProto::kDataLocationFieldNumber ||
           f->number() == onnx::TensorProto::kExternalDataFieldNumber;
  }

  bool Descend(const FieldDescriptor* f) const {
    return f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE &&
           f->type() == FieldDescriptor::TYPE_MESSAGE && holders_.MayHoldTensors(f->message_type());
  }

  template <typename F>
  static void ForEachMessage(const Message& m, const FieldDescriptor* f, F&& visit) {
    if (!f->is_repeated()) {
      visit(Reflect(m).GetMessage(m, f));
      return;
    }
    const int n = Reflect(m).FieldSize(m, f);
    for (int i = 0; i < n; ++i) visit(Reflect(m).GetRepeatedMessage(m, f, i));
  }

  TensorHolders holders_;
};

bool AnyMark(const Message& m, const TensorHolders& holders) {
  if (m.GetDescriptor() == onnx::TensorProto::descriptor()) {
    return ir::HasMappedMark(static_cast<const onnx::TensorProto&>(m));
  }
  const Reflection& r = *m.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  r.ListFields(m, &fields);
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE ||
        !holders.MayHoldTensors(f->message_type())) {
      continue;
    }
    if (!f->is_repeated()) {
      if (AnyMark(r.GetMessage(m, f), holders)) return true;
      continue;
    }
    const int n = r.FieldSize(m, f);
    for (int i = 0; i < n; ++i) {
      if (AnyMark(r.GetRepeatedMessage(m, f, i), holders)) return true;
    }
  }
  return false;
}

}  // namespace

bool ParseLeavingPayloads(std::string_view bytes, int64_t threshold, onnx::ModelProto* model,
                          std::vector<PendingView>* views) {
  return LeavingParser(bytes, threshold, views).Model(bytes, model);
}

bool HasMappedMarks(const onnx::ModelProto& model) { return AnyMark(model, TensorHolders()); }

size_t ResolvedByteSize(const onnx::ModelProto& model) { return Resolver().Size(model); }

Status SerializeResolved(const onnx::ModelProto& model, CodedOutputStream* out,
                         const PayloadWriter& write_payload) {
  return Resolver().Write(model, out, write_payload);
}

}  // namespace bertopt::io
