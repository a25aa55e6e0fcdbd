#include "bertopt/status.h"

namespace bertopt {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kInvalidArgument:
      return "invalid argument";
    case StatusCode::kNotFound:
      return "not found";
    case StatusCode::kIoError:
      return "i/o error";
    case StatusCode::kInvalidModel:
      return "invalid model";
    case StatusCode::kFailedPrecondition:
      return "failed precondition";
    case StatusCode::kRuntime:
      return "onnxruntime error";
    case StatusCode::kUnimplemented:
      return "not available";
    case StatusCode::kInternal:
      return "internal error";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(StatusCodeName(code_)) + ": " + message_;
}

Status Status::WithContext(const std::string& context) && {
  if (ok()) return std::move(*this);
  return {code_, context + ": " + message_};
}

}  // namespace bertopt
