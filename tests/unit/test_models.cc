#include "test_models.h"

#include <stdexcept>

#include "onnx/defs/parser.h"

namespace bertopt::testing {

onnx::ModelProto ParseModel(std::string_view text) {
  onnx::ModelProto model;
  const std::string copy(text);
  auto status = onnx::OnnxParser::Parse(model, copy.c_str());
  if (!status.IsOK()) throw std::runtime_error("bad test model: " + status.ErrorMessage());
  return model;
}

int CountOps(const onnx::ModelProto& model, std::string_view op_type, std::string_view domain) {
  int n = 0;
  for (const auto& node : model.graph().node()) {
    if (node.op_type() == op_type && node.domain() == domain) ++n;
  }
  return n;
}

}  // namespace bertopt::testing
