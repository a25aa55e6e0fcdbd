#pragma once
// Decoding and building onnx::TensorProto payloads: raw_data or the typed repeated fields,
// little-endian, float16 included. Used when a pass needs a constant's values.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "onnx/onnx_pb.h"

namespace bertopt::ir {

/// Number of elements implied by the dims (1 for a scalar).
int64_t NumElements(const onnx::TensorProto& tensor);
/// Size in bytes of one element of `data_type`, or 0 for strings / unknown types.
int ElementSize(int32_t data_type);

/// All elements as double; nullopt for non-numeric types, external data, or a payload whose size
/// does not match the dims.
std::optional<std::vector<double>> DecodeAsDoubles(const onnx::TensorProto& tensor);
/// All elements of an integer or bool tensor as int64; nullopt otherwise.
std::optional<std::vector<int64_t>> DecodeAsInts(const onnx::TensorProto& tensor);
/// All elements of a float32 tensor (raw or float_data); nullopt for other types.
std::optional<std::vector<float>> DecodeFloats(const onnx::TensorProto& tensor);

/// The payload as little-endian bytes, element by element, for fixed-width numeric types whether
/// stored in raw_data or in a typed field (float16 in int32_data included); bit-exact, no
/// conversion through another type. nullopt for strings, external data or a size mismatch.
std::optional<std::string> PayloadBytes(const onnx::TensorProto& tensor);
/// The same bytes without copying them, when the tensor stores them as such (raw_data, or left in
/// a mapped file); nullopt otherwise (a typed field: use PayloadBytes). Valid until the tensor
/// changes.
std::optional<std::string_view> PayloadView(const onnx::TensorProto& tensor);

// --- Payloads left in a mapped file ----------------------------------------------------------
// io::LoadModelMapped leaves the bytes of large initializers in the mapped input file instead of
// copying them into raw_data. Such a tensor is marked as external data whose entry
// kMappedRegionKey names a live MappedRegion; everything above reads it as if the bytes were its
// raw_data, and io::SaveModel writes them back as raw_data. A mark whose region is gone (or that
// names no region: a model from elsewhere) reads as external data, never as stale bytes.

inline constexpr std::string_view kMappedRegionKey = "bertopt_mapped_region";

/// Makes `bytes` (memory the caller keeps valid, e.g. a mapped file open as `fd`) readable through
/// marked tensors for the lifetime of this object.
class MappedRegion {
 public:
  MappedRegion(std::string_view bytes, int fd);
  ~MappedRegion();
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;

  uint64_t id() const { return id_; }
  std::string_view bytes() const { return bytes_; }
  int fd() const { return fd_; }

 private:
  uint64_t id_;
  std::string_view bytes_;
  int fd_;
};

/// Where a marked tensor's payload is: its bytes, and the same bytes as a range of a file (so a
/// writer can copy them file to file without touching the mapping).
struct MappedPayload {
  std::string_view bytes;
  int fd = -1;
  int64_t offset = 0;
};

/// True when `tensor` carries the mark, whether or not its region still lives.
bool HasMappedMark(const onnx::TensorProto& tensor);
/// The payload of a marked tensor while its region lives; nullopt otherwise.
std::optional<MappedPayload> FindMappedPayload(const onnx::TensorProto& tensor);
/// Marks `tensor` (which must have no raw_data, data_location or external_data) as holding the
/// `length` bytes at `offset` of `region`. `location` names the file in messages only.
void MarkMapped(onnx::TensorProto* tensor, const MappedRegion& region, int64_t offset,
                int64_t length, const std::string& location);
/// Drops the mark (and with it the payload); the tensor is left without data.
void ClearMappedMark(onnx::TensorProto* tensor);
/// Copies a marked tensor's payload into raw_data and drops the mark, for code that rewrites a
/// tensor in place. False (tensor unchanged) when the region is gone.
bool MaterializeMapped(onnx::TensorProto* tensor);

/// IEEE binary16 conversions (round to nearest even; overflow saturates to infinity).
uint16_t FloatToHalf(float value);
float HalfToFloat(uint16_t bits);

/// Builders: a tensor named `name` with `dims`, payload in raw_data.
onnx::TensorProto MakeFloatTensor(const std::string& name, const std::vector<int64_t>& dims,
                                  const std::vector<float>& values);
onnx::TensorProto MakeInt64Tensor(const std::string& name, const std::vector<int64_t>& dims,
                                  const std::vector<int64_t>& values);
onnx::TensorProto MakeInt32Tensor(const std::string& name, const std::vector<int64_t>& dims,
                                  const std::vector<int32_t>& values);

}  // namespace bertopt::ir
