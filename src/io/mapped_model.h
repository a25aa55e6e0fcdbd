#pragma once
// The fast path of model I/O: parse a mapped model file without copying large initializer
// payloads out of it (the tensors are marked instead, ir::MarkMapped), and serialize a model whose
// tensors may carry such marks, writing each marked payload as the raw_data it was.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>
#include <vector>

#include "bertopt/ir/tensor.h"
#include "bertopt/status.h"
#include "google/protobuf/io/coded_stream.h"
#include "onnx/onnx_pb.h"

namespace bertopt::io {

/// A graph initializer whose raw_data was left in the file: `length` bytes at `offset`.
struct PendingView {
  onnx::TensorProto* tensor;
  int64_t offset;
  int64_t length;
};

/// Parses `bytes` (a whole serialized ModelProto) into the empty `model`, exactly as protobuf
/// would, except that the raw_data of a main-graph initializer of at least `threshold` bytes is
/// not copied: the tensor is left without data and listed in `views` (offsets into `bytes`).
/// Tensors that also have data_location or external_data get their bytes copied as usual. False
/// when `bytes` is not a valid protobuf message.
bool ParseLeavingPayloads(std::string_view bytes, int64_t threshold, onnx::ModelProto* model,
                          std::vector<PendingView>* views);

/// True when any tensor of `model` carries a mapped mark (ir::HasMappedMark).
bool HasMappedMarks(const onnx::ModelProto& model);

/// Serialized size of `model` with every marked tensor written as raw_data.
size_t ResolvedByteSize(const onnx::ModelProto& model);

/// Writes a marked payload at the current position; `out` holds nothing unwritten when called.
using PayloadWriter =
    std::function<Status(google::protobuf::io::CodedOutputStream* out, const ir::MappedPayload&)>;

/// Serializes `model` to `out` as protobuf would if every marked tensor held its payload as
/// raw_data (same bytes, same order), handing each payload to `write_payload`. A mark whose file
/// is no longer mapped is kFailedPrecondition.
[[nodiscard]] Status SerializeResolved(const onnx::ModelProto& model,
                                       google::protobuf::io::CodedOutputStream* out,
                                       const PayloadWriter& write_payload);

}  // namespace bertopt::io
