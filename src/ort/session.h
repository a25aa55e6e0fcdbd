#pragma once
// A thin ONNX Runtime session wrapper: the one place that turns ORT exceptions into Status, owns
// the process-wide Ort::Env, and moves tensors between bertopt (owned bytes, TensorProto) and
// Ort::Value. compare and perf both build on it; perf times PreparedRun::Run so input setup stays
// outside the clock.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace Ort {
struct Session;
struct SessionOptions;
}  // namespace Ort

namespace bertopt::ort {

/// ORT's graph optimization levels, named as ORT's tools name them.
enum class OptLevel { kDisabled, kBasic, kExtended, kAll };

/// "disabled", "basic", "extended" or "all"; anything else is kInvalidArgument listing the choices.
StatusOr<OptLevel> ParseOptLevel(std::string_view text);
const char* OptLevelName(OptLevel level);

struct SessionConfig {
  OptLevel level = OptLevel::kAll;
  /// 0 leaves the choice to ORT (one thread per physical core).
  int intra_op_threads = 0;
  /// Adds the CUDA execution provider; an error when this ORT build has none.
  bool use_gpu = false;
  /// When set, ORT writes the model it optimized (at `level`) to this path.
  std::string optimized_model_path;
};

/// Element types use ONNX TensorProto codes (ORT's ONNXTensorElementDataType uses the same
/// numbers).
using DataType = onnx::TensorProto::DataType;

/// Short lower-case name for messages ("float", "float16", "int64", ...).
std::string DataTypeName(int32_t type);

/// A dense tensor that owns its bytes. Supported element types: float, float16, int32, int64, bool.
class Tensor {
 public:
  Tensor() = default;

  /// Makes a tensor from raw little-endian bytes; the size must match shape and type.
  static StatusOr<Tensor> FromBytes(DataType type, std::vector<int64_t> shape,
                                    std::vector<uint8_t> bytes);

  /// Makes a tensor of `type` from values given as doubles (rounded to float16 or truncated to
  /// integers as the type requires). Used to feed the same values to models of different dtypes.
  static StatusOr<Tensor> FromValues(DataType type, std::vector<int64_t> shape,
                                     std::span<const double> values);

  /// Typed constructors for tests and input generation.
  static Tensor FromFloat(std::vector<int64_t> shape, const std::vector<float>& values);
  static Tensor FromInt32(std::vector<int64_t> shape, const std::vector<int32_t>& values);
  static Tensor FromInt64(std::vector<int64_t> shape, const std::vector<int64_t>& values);
  /// float16 from float values (round to nearest even).
  static Tensor FromFloatAsFloat16(std::vector<int64_t> shape, const std::vector<float>& values);

  /// Reads a TensorProto (raw_data or the typed fields). External data is not supported here.
  static StatusOr<Tensor> FromProto(const onnx::TensorProto& proto);
  /// A TensorProto with `name`, dims, data_type and raw_data, as test_data_set .pb files hold.
  onnx::TensorProto ToProto(const std::string& name) const;

  DataType type() const { return type_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  int64_t ElementCount() const;
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  std::vector<uint8_t>& mutable_bytes() { return bytes_; }

  /// Every element as float (float16 widened, integers converted), for numeric comparison.
  std::vector<float> ToFloat() const;
  /// Every element as int64; only for integer and bool tensors (empty otherwise).
  std::vector<int64_t> ToInt64() const;

  bool operator==(const Tensor& other) const = default;

 private:
  Tensor(DataType type, std::vector<int64_t> shape, std::vector<uint8_t> bytes)
      : type_(type), shape_(std::move(shape)), bytes_(std::move(bytes)) {}

  DataType type_ = onnx::TensorProto::UNDEFINED;
  std::vector<int64_t> shape_;
  std::vector<uint8_t> bytes_;
};

/// Bytes per element of a supported type, 0 for the rest.
size_t ElementSize(int32_t type);

/// Name, element type and shape of a model input or output as ORT sees it.
struct ValueInfo {
  std::string name;
  int32_t type = 0;                        ///< TensorProto code; 0 for non-tensor values
  std::vector<int64_t> dims;               ///< -1 where the dimension is symbolic or unknown
  std::vector<std::string> symbolic_dims;  ///< per dimension; "" where static or unnamed
};

/// The execution providers this ORT build offers ("CPUExecutionProvider", ...).
std::vector<std::string> AvailableProviders();

class PreparedRun;

/// One ORT inference session over a model file.
/// Whether ONNX Runtime accepts the serialized model `bytes`: creates a session from memory
/// (graph optimizations off, nothing run). Ok, or kRuntime with ORT's own message.
Status CheckLoads(const std::string& bytes);

class Session {
 public:
  /// Loads `model_path` into ORT. Errors name the file and carry ORT's message.
  static StatusOr<std::unique_ptr<Session>> Create(const std::filesystem::path& model_path,
                                                   const SessionConfig& config = {});
  /// Loads a serialized model held in memory; `label` stands for the file in messages.
  static StatusOr<std::unique_ptr<Session>> CreateFromMemory(const std::string& bytes,
                                                             const std::filesystem::path& label,
                                                             const SessionConfig& config = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const std::filesystem::path& model_path() const { return model_path_; }
  const SessionConfig& config() const { return config_; }
  const std::vector<ValueInfo>& inputs() const { return inputs_; }
  const std::vector<ValueInfo>& outputs() const { return outputs_; }

  /// Runs with exactly the model's inputs (any order) and returns every output in model order.
  StatusOr<std::vector<Tensor>> Run(const std::vector<std::pair<std::string, Tensor>>& inputs);

  /// Copies `inputs` into ORT-owned values once so that PreparedRun::Run() measures only ORT's
  /// run. With `io_binding` the inputs and outputs are bound once through Ort::IoBinding and the
  /// outputs stay on the session's device (CUDA memory with use_gpu), so a GPU run does not copy
  /// them back to the host; the inputs are host tensors that ORT copies to the device per run.
  /// The PreparedRun must not outlive this Session.
  StatusOr<std::unique_ptr<PreparedRun>> Prepare(
      const std::vector<std::pair<std::string, Tensor>>& inputs, bool io_binding = false);

  /// The underlying ORT session, for callers that need ORT features not wrapped here.
  Ort::Session& ort_session();

 private:
  friend class PreparedRun;
  struct Impl;
  Session(std::filesystem::path model_path, SessionConfig config, std::unique_ptr<Impl> impl);
  /// Create's and CreateFromMemory's shared body: `make` builds the Ort::Session from options.
  static StatusOr<std::unique_ptr<Session>> Open(
      const std::filesystem::path& model_path, const SessionConfig& config,
      const std::function<Ort::Session(const Ort::SessionOptions&)>& make);

  /// Checks that `inputs` names every model input exactly once with the declared element type.
  Status CheckInputs(const std::vector<std::pair<std::string, Tensor>>& inputs) const;

  std::filesystem::path model_path_;
  SessionConfig config_;
  std::vector<ValueInfo> inputs_;
  std::vector<ValueInfo> outputs_;
  std::unique_ptr<Impl> impl_;
};

/// Inputs already converted to Ort::Value (and optionally bound), ready to run repeatedly.
class PreparedRun {
 public:
  ~PreparedRun();
  PreparedRun(const PreparedRun&) = delete;
  PreparedRun& operator=(const PreparedRun&) = delete;

  /// One ORT run; the only work is ORT's. The outputs of the last run are kept.
  Status Run();
  /// The outputs of the last Run(), in model order, copied into Tensors.
  StatusOr<std::vector<Tensor>> Outputs() const;
  bool uses_io_binding() const;

 private:
  friend class Session;
  struct Impl;
  explicit PreparedRun(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace bertopt::ort
