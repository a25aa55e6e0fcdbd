#pragma once
// Tiny models for unit tests, written in ONNX text syntax so a reader sees the whole graph.

#include <string>
#include <string_view>

#include "onnx/onnx_pb.h"

namespace bertopt::testing {

/// Parses ONNX text syntax (onnx::OnnxParser); a syntax error fails the calling test by throwing
/// std::runtime_error with the parser's message.
onnx::ModelProto ParseModel(std::string_view text);

/// Number of nodes of `op_type` in `domain` in the main graph.
int CountOps(const onnx::ModelProto& model, std::string_view op_type, std::string_view domain = "");

}  // namespace bertopt::testing
