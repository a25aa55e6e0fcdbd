#pragma once
// Error handling for the whole library: one Status type with a code and a message, and StatusOr<T>.
// Exceptions (protobuf, ORT, std) are caught at the library boundary and turned into a Status.

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace bertopt {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,     ///< bad flag or argument value
  kNotFound,            ///< a file, input or value that should exist does not
  kIoError,             ///< reading or writing a file failed
  kInvalidModel,        ///< the file is not a usable ONNX model
  kFailedPrecondition,  ///< the request makes no sense for this model (e.g. num_heads mismatch)
  kRuntime,             ///< ONNX Runtime refused or failed
  kUnimplemented,       ///< a feature that is not available yet
  kInternal,            ///< a bug in bertopt
};

const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  /// "invalid model: a.onnx: truncated file" style one-liner.
  std::string ToString() const;

  /// Prepends context ("while loading x: ") to the message; a no-op on Ok.
  Status WithContext(const std::string& context) &&;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status InvalidArgument(std::string m) {
  return {StatusCode::kInvalidArgument, std::move(m)};
}
inline Status NotFound(std::string m) { return {StatusCode::kNotFound, std::move(m)}; }
inline Status IoError(std::string m) { return {StatusCode::kIoError, std::move(m)}; }
inline Status InvalidModel(std::string m) { return {StatusCode::kInvalidModel, std::move(m)}; }
inline Status FailedPrecondition(std::string m) {
  return {StatusCode::kFailedPrecondition, std::move(m)};
}
inline Status RuntimeError(std::string m) { return {StatusCode::kRuntime, std::move(m)}; }
inline Status Unimplemented(std::string m) { return {StatusCode::kUnimplemented, std::move(m)}; }
inline Status InternalError(std::string m) { return {StatusCode::kInternal, std::move(m)}; }

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).ok()); }  // NOLINT
  StatusOr(T value) : v_(std::move(value)) {}                                              // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace bertopt

#define BERTOPT_CONCAT_INNER_(a, b) a##b
#define BERTOPT_CONCAT_(a, b) BERTOPT_CONCAT_INNER_(a, b)

/// Returns the Status from the enclosing function if `expr` is not ok.
#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::bertopt::Status status_macro_ = (expr);      \
    if (!status_macro_.ok()) return status_macro_; \
  } while (false)

/// `ASSIGN_OR_RETURN(auto x, F())`: binds the value or returns the error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL_(BERTOPT_CONCAT_(statusor_, __LINE__), lhs, expr)
#define ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                           \
  if (!tmp.ok()) return tmp.status();          \
  lhs = std::move(tmp).value()
