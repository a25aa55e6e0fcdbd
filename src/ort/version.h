#pragma once
#include <string>

namespace bertopt::ort {
/// The version of the ONNX Runtime library actually loaded (e.g. "1.29.0").
std::string RuntimeVersion();
}  // namespace bertopt::ort
