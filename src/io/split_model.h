#pragma once
// Splitting a model for external-data saving without copying its weights: a copy of everything
// but the large tensor payloads (the "skeleton"), plus views of those payloads in the original.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "bertopt/ir/tensor.h"
#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace bertopt::io {

/// Offsets in the external file are multiples of this, so each tensor can be mmap'ed in place.
inline constexpr int64_t kExternalAlignment = 4096;

struct SplitModel {
  /// The model with each moved tensor's payload replaced by data_location = EXTERNAL and
  /// location / offset / length entries.
  onnx::ModelProto skeleton;
  struct Chunk {
    /// Points into the source model (fd -1) or a mapped file it refers to; either must outlive
    /// this.
    ir::MappedPayload payload;
    int64_t offset = 0;
  };
  /// In increasing offset order.
  std::vector<Chunk> chunks;
  /// A tensor whose mapped payload (ir::MarkMapped) could not be found because its file was
  /// closed: it was copied with its mark, and the split must not be written. Empty when none.
  std::string dead_mark;
};

/// Moves every tensor payload of at least `threshold_bytes` (raw_data, or a typed field whose
/// element width matches data_type, e.g. float_data of a FLOAT tensor) to `location`.
/// Tensors marked as views of a mapped file count as raw_data (moved from the mapping, or
/// written inline as raw_data when under the threshold).
/// Tensors that already refer to external data, string tensors and payloads whose in-memory
/// layout differs from ONNX's (e.g. FLOAT16 kept in int32_data) stay as they are.
SplitModel SplitForExternalData(const onnx::ModelProto& model, int64_t threshold_bytes,
                                const std::string& location);

}  // namespace bertopt::io
