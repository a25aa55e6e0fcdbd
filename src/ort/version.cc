#include "ort/version.h"

#include <onnxruntime_cxx_api.h>

namespace bertopt::ort {
std::string RuntimeVersion() { return Ort::GetVersionString(); }
}  // namespace bertopt::ort
