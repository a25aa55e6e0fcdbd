#pragma once
// Seams of model_io.cc that tests need but callers do not.

#include <cstddef>
#include <filesystem>

#include "bertopt/io/model_io.h"

namespace bertopt::io::internal {

/// Protobuf cannot serialize or parse a message of more than INT_MAX bytes.
inline constexpr size_t kMaxInlineModelBytes = 2147483647;

/// SaveModel with the inline size limit as a parameter, so the automatic switch to external data
/// can be tested with a small model instead of a 2 GB one.
[[nodiscard]] Status SaveModelWithInlineLimit(const onnx::ModelProto& model,
                                              const std::filesystem::path& path,
                                              const SaveOptions& options, size_t inline_limit);

}  // namespace bertopt::io::internal
