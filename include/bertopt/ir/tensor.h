#pragma once
// Decoding and building onnx::TensorProto payloads: raw_data or the typed repeated fields,
// little-endian, float16 included. Used when a pass needs a constant's values.

#include <cstdint>
#include <optional>
#include <string>
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
