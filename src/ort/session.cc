#include "ort/session.h"

#include <fmt/format.h>
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <optional>
#include <set>

namespace bertopt::ort {
namespace {

// ORT allows one environment per process and sessions must not outlive it; a lazily created static
// is the simplest owner that satisfies both (and the only global state in src/ort).
Ort::Env& GlobalEnv() {
  static Ort::Env env(ORT_LOGGING_LEVEL_WARNING, "bertopt");
  return env;
}

constexpr const char* kCudaProvider = "CUDAExecutionProvider";

bool IsSupported(int32_t type) { return ElementSize(type) != 0; }

std::string JoinShape(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

StatusOr<int64_t> CountElements(const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) return InvalidArgument("negative dimension in shape " + JoinShape(shape));
    count *= d;
  }
  return count;
}

std::vector<std::string> Names(const std::vector<ValueInfo>& infos) {
  std::vector<std::string> names;
  names.reserve(infos.size());
  for (const ValueInfo& info : infos) names.push_back(info.name);
  return names;
}

ValueInfo ReadValueInfo(const std::string& name, const Ort::TypeInfo& type_info) {
  ValueInfo info;
  info.name = name;
  if (type_info.GetONNXType() != ONNX_TYPE_TENSOR) return info;
  auto tensor_info = type_info.GetTensorTypeAndShapeInfo();
  info.type = static_cast<int32_t>(tensor_info.GetElementType());
  info.dims = tensor_info.GetShape();
  for (const char* symbol : tensor_info.GetSymbolicDimensions()) {
    info.symbolic_dims.emplace_back(symbol != nullptr ? symbol : "");
  }
  return info;
}

// Copies an ORT output into an owned Tensor; ORT's buffers die with the Ort::Value.
StatusOr<Tensor> ToTensor(const Ort::Value& value, const std::string& name) {
  if (!value.IsTensor()) return Unimplemented(fmt::format("output '{}' is not a tensor", name));
  if (value.GetTensorMemoryInfo().GetDeviceType() != OrtMemoryInfoDeviceType_CPU) {
    return FailedPrecondition(fmt::format("output '{}' is in device memory", name));
  }
  auto info = value.GetTensorTypeAndShapeInfo();
  const auto type = static_cast<int32_t>(info.GetElementType());
  if (!IsSupported(type)) {
    return Unimplemented(
        fmt::format("output '{}' has unsupported element type {}", name, DataTypeName(type)));
  }
  const auto* data = static_cast<const uint8_t*>(value.GetTensorRawData());
  std::vector<uint8_t> bytes(data, data + value.GetTensorSizeInBytes());
  return Tensor::FromBytes(static_cast<DataType>(type), info.GetShape(), std::move(bytes));
}

GraphOptimizationLevel ToOrtLevel(OptLevel level) {
  switch (level) {
    case OptLevel::kDisabled:
      return ORT_DISABLE_ALL;
    case OptLevel::kBasic:
      return ORT_ENABLE_BASIC;
    case OptLevel::kExtended:
      return ORT_ENABLE_EXTENDED;
    case OptLevel::kAll:
      return ORT_ENABLE_ALL;
  }
  return ORT_ENABLE_ALL;
}

template <typename T>
void AppendAs(std::vector<uint8_t>& bytes, T value) {
  const size_t at = bytes.size();
  bytes.resize(at + sizeof(T));
  std::memcpy(bytes.data() + at, &value, sizeof(T));
}

template <typename T>
T ReadAt(const std::vector<uint8_t>& bytes, int64_t index) {
  T value;
  std::memcpy(&value, bytes.data() + index * sizeof(T), sizeof(T));
  return value;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// OptLevel

StatusOr<OptLevel> ParseOptLevel(std::string_view text) {
  for (OptLevel level :
       {OptLevel::kDisabled, OptLevel::kBasic, OptLevel::kExtended, OptLevel::kAll}) {
    if (text == OptLevelName(level)) return level;
  }
  return InvalidArgument(fmt::format(
      "unknown optimization level '{}' (choose disabled, basic, extended or all)", text));
}

const char* OptLevelName(OptLevel level) {
  switch (level) {
    case OptLevel::kDisabled:
      return "disabled";
    case OptLevel::kBasic:
      return "basic";
    case OptLevel::kExtended:
      return "extended";
    case OptLevel::kAll:
      return "all";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// Tensor

std::string DataTypeName(int32_t type) {
  switch (type) {
    case onnx::TensorProto::FLOAT:
      return "float";
    case onnx::TensorProto::FLOAT16:
      return "float16";
    case onnx::TensorProto::INT32:
      return "int32";
    case onnx::TensorProto::INT64:
      return "int64";
    case onnx::TensorProto::BOOL:
      return "bool";
    default:
      if (onnx::TensorProto::DataType_IsValid(type)) {
        std::string name = onnx::TensorProto::DataType_Name(static_cast<DataType>(type));
        std::transform(name.begin(), name.end(), name.begin(),
                       [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        return name;
      }
      return fmt::format("type {}", type);
  }
}

size_t ElementSize(int32_t type) {
  switch (type) {
    case onnx::TensorProto::FLOAT:
      return 4;
    case onnx::TensorProto::FLOAT16:
      return 2;
    case onnx::TensorProto::INT32:
      return 4;
    case onnx::TensorProto::INT64:
      return 8;
    case onnx::TensorProto::BOOL:
      return 1;
    default:
      return 0;
  }
}

StatusOr<Tensor> Tensor::FromBytes(DataType type, std::vector<int64_t> shape,
                                   std::vector<uint8_t> bytes) {
  if (!IsSupported(type)) {
    return Unimplemented("unsupported tensor element type " + DataTypeName(type));
  }
  ASSIGN_OR_RETURN(int64_t count, CountElements(shape));
  const auto expected = static_cast<size_t>(count) * ElementSize(type);
  if (bytes.size() != expected) {
    return InvalidArgument(fmt::format("{} tensor of shape {} needs {} bytes, got {}",
                                       DataTypeName(type), JoinShape(shape), expected,
                                       bytes.size()));
  }
  return Tensor(type, std::move(shape), std::move(bytes));
}

StatusOr<Tensor> Tensor::FromValues(DataType type, std::vector<int64_t> shape,
                                    std::span<const double> values) {
  if (!IsSupported(type)) {
    return Unimplemented("unsupported tensor element type " + DataTypeName(type));
  }
  ASSIGN_OR_RETURN(int64_t count, CountElements(shape));
  if (static_cast<int64_t>(values.size()) != count) {
    return InvalidArgument(
        fmt::format("shape {} holds {} values, got {}", JoinShape(shape), count, values.size()));
  }
  std::vector<uint8_t> bytes;
  bytes.reserve(values.size() * ElementSize(type));
  for (double v : values) {
    switch (type) {
      case onnx::TensorProto::FLOAT:
        AppendAs(bytes, static_cast<float>(v));
        break;
      case onnx::TensorProto::FLOAT16:
        AppendAs(bytes, Ort::Float16_t(static_cast<float>(v)).val);
        break;
      case onnx::TensorProto::INT32:
        AppendAs(bytes, static_cast<int32_t>(v));
        break;
      case onnx::TensorProto::INT64:
        AppendAs(bytes, static_cast<int64_t>(v));
        break;
      case onnx::TensorProto::BOOL:
        AppendAs(bytes, static_cast<uint8_t>(v != 0.0));
        break;
      default:
        break;
    }
  }
  return Tensor(type, std::move(shape), std::move(bytes));
}

Tensor Tensor::FromFloat(std::vector<int64_t> shape, const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(float));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return Tensor(onnx::TensorProto::FLOAT, std::move(shape), std::move(bytes));
}

Tensor Tensor::FromInt32(std::vector<int64_t> shape, const std::vector<int32_t>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(int32_t));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return Tensor(onnx::TensorProto::INT32, std::move(shape), std::move(bytes));
}

Tensor Tensor::FromInt64(std::vector<int64_t> shape, const std::vector<int64_t>& values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(int64_t));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return Tensor(onnx::TensorProto::INT64, std::move(shape), std::move(bytes));
}

Tensor Tensor::FromFloatAsFloat16(std::vector<int64_t> shape, const std::vector<float>& values) {
  std::vector<uint8_t> bytes;
  bytes.reserve(values.size() * 2);
  for (float v : values) AppendAs(bytes, Ort::Float16_t(v).val);
  return Tensor(onnx::TensorProto::FLOAT16, std::move(shape), std::move(bytes));
}

StatusOr<Tensor> Tensor::FromProto(const onnx::TensorProto& proto) {
  const int32_t type = proto.data_type();
  const std::string label = proto.name().empty() ? "tensor" : "tensor '" + proto.name() + "'";
  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    return Unimplemented(label + " stores its data externally");
  }
  if (!IsSupported(type)) {
    return Unimplemented(label + " has unsupported element type " + DataTypeName(type));
  }
  std::vector<int64_t> shape(proto.dims().begin(), proto.dims().end());
  const auto dtype = static_cast<DataType>(type);
  if (proto.has_raw_data()) {
    const std::string& raw = proto.raw_data();
    auto result = FromBytes(dtype, std::move(shape), std::vector<uint8_t>(raw.begin(), raw.end()));
    if (!result.ok()) return std::move(result).status().WithContext(label);
    return result;
  }
  // Typed fields: float in float_data, int64 in int64_data, and the narrow types (int32, bool,
  // float16 as raw bits) in int32_data, as onnx.proto specifies.
  std::vector<uint8_t> bytes;
  switch (type) {
    case onnx::TensorProto::FLOAT:
      for (float v : proto.float_data()) AppendAs(bytes, v);
      break;
    case onnx::TensorProto::INT64:
      for (int64_t v : proto.int64_data()) AppendAs(bytes, v);
      break;
    case onnx::TensorProto::INT32:
      for (int32_t v : proto.int32_data()) AppendAs(bytes, v);
      break;
    case onnx::TensorProto::FLOAT16:
      for (int32_t v : proto.int32_data()) AppendAs(bytes, static_cast<uint16_t>(v));
      break;
    case onnx::TensorProto::BOOL:
      for (int32_t v : proto.int32_data()) AppendAs(bytes, static_cast<uint8_t>(v != 0));
      break;
    default:
      break;
  }
  auto result = FromBytes(dtype, std::move(shape), std::move(bytes));
  if (!result.ok()) return std::move(result).status().WithContext(label);
  return result;
}

onnx::TensorProto Tensor::ToProto(const std::string& name) const {
  onnx::TensorProto proto;
  proto.set_name(name);
  proto.set_data_type(type_);
  for (int64_t d : shape_) proto.add_dims(d);
  proto.set_raw_data(bytes_.data(), bytes_.size());
  return proto;
}

int64_t Tensor::ElementCount() const {
  const size_t size = ElementSize(type_);
  return size == 0 ? 0 : static_cast<int64_t>(bytes_.size() / size);
}

std::vector<float> Tensor::ToFloat() const {
  const int64_t n = ElementCount();
  std::vector<float> values(n);
  for (int64_t i = 0; i < n; ++i) {
    switch (type_) {
      case onnx::TensorProto::FLOAT:
        values[i] = ReadAt<float>(bytes_, i);
        break;
      case onnx::TensorProto::FLOAT16:
        values[i] = Ort::Float16_t::FromBits(ReadAt<uint16_t>(bytes_, i)).ToFloat();
        break;
      case onnx::TensorProto::INT32:
        values[i] = static_cast<float>(ReadAt<int32_t>(bytes_, i));
        break;
      case onnx::TensorProto::INT64:
        values[i] = static_cast<float>(ReadAt<int64_t>(bytes_, i));
        break;
      case onnx::TensorProto::BOOL:
        values[i] = ReadAt<uint8_t>(bytes_, i) != 0 ? 1.0F : 0.0F;
        break;
      default:
        break;
    }
  }
  return values;
}

std::vector<int64_t> Tensor::ToInt64() const {
  const int64_t n = ElementCount();
  std::vector<int64_t> values;
  if (type_ != onnx::TensorProto::INT32 && type_ != onnx::TensorProto::INT64 &&
      type_ != onnx::TensorProto::BOOL) {
    return values;
  }
  values.resize(n);
  for (int64_t i = 0; i < n; ++i) {
    switch (type_) {
      case onnx::TensorProto::INT32:
        values[i] = ReadAt<int32_t>(bytes_, i);
        break;
      case onnx::TensorProto::INT64:
        values[i] = ReadAt<int64_t>(bytes_, i);
        break;
      case onnx::TensorProto::BOOL:
        values[i] = ReadAt<uint8_t>(bytes_, i);
        break;
      default:
        break;
    }
  }
  return values;
}

// ---------------------------------------------------------------------------------------------
// Session

std::vector<std::string> AvailableProviders() {
  try {
    return Ort::GetAvailableProviders();
  } catch (const Ort::Exception&) {
    return {};
  }
}

struct Session::Impl {
  explicit Impl(Ort::Session s) : session(std::move(s)) {}
  Ort::Session session;
  std::vector<std::string> input_names;
  std::vector<std::string> output_names;
  std::vector<const char*> output_name_ptrs;
  Ort::RunOptions run_options;
};

Session::Session(std::filesystem::path model_path, SessionConfig config, std::unique_ptr<Impl> impl)
    : model_path_(std::move(model_path)), config_(std::move(config)), impl_(std::move(impl)) {}

Session::~Session() = default;

Ort::Session& Session::ort_session() { return impl_->session; }

Status CheckLoads(const std::string& bytes) {
  try {
    Ort::SessionOptions options;
    options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_DISABLE_ALL);
    options.SetIntraOpNumThreads(1);
    Ort::Session session(GlobalEnv(), bytes.data(), bytes.size(), options);
  } catch (const Ort::Exception& e) {
    return RuntimeError(e.what());
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<Session>> Session::Create(const std::filesystem::path& model_path,
                                                   const SessionConfig& config) {
  const std::string file = model_path.string();
  std::error_code ec;
  if (!std::filesystem::is_regular_file(model_path, ec)) {
    return std::filesystem::exists(model_path, ec) ? InvalidArgument(file + ": not a file")
                                                   : NotFound(file + ": no such file");
  }
  return Open(model_path, config, [&](const Ort::SessionOptions& options) {
    return Ort::Session(GlobalEnv(), model_path.c_str(), options);
  });
}

StatusOr<std::unique_ptr<Session>> Session::CreateFromMemory(const std::string& bytes,
                                                             const std::filesystem::path& label,
                                                             const SessionConfig& config) {
  return Open(label, config, [&](const Ort::SessionOptions& options) {
    return Ort::Session(GlobalEnv(), bytes.data(), bytes.size(), options);
  });
}

StatusOr<std::unique_ptr<Session>> Session::Open(
    const std::filesystem::path& model_path, const SessionConfig& config,
    const std::function<Ort::Session(const Ort::SessionOptions&)>& make) {
  const std::string file = model_path.string();
  try {
    Ort::SessionOptions options;
    options.SetGraphOptimizationLevel(ToOrtLevel(config.level));
    if (config.intra_op_threads > 0) options.SetIntraOpNumThreads(config.intra_op_threads);
    if (!config.optimized_model_path.empty()) {
      options.SetOptimizedModelFilePath(config.optimized_model_path.c_str());
    }
    if (config.use_gpu) {
      const std::vector<std::string> providers = AvailableProviders();
      if (std::find(providers.begin(), providers.end(), kCudaProvider) == providers.end()) {
        return InvalidArgument(fmt::format(
            "--use_gpu: this ONNX Runtime build has no CUDA execution provider (available: {})",
            fmt::join(providers, ", ")));
      }
      OrtCUDAProviderOptions cuda_options{};
      options.AppendExecutionProvider_CUDA(cuda_options);
    }

    auto impl = std::make_unique<Impl>(make(options));
    std::unique_ptr<Session> session(new Session(model_path, config, std::move(impl)));
    Ort::Session& ort = session->impl_->session;
    Ort::AllocatorWithDefaultOptions allocator;
    for (size_t i = 0; i < ort.GetInputCount(); ++i) {
      const std::string name = ort.GetInputNameAllocated(i, allocator).get();
      session->inputs_.push_back(ReadValueInfo(name, ort.GetInputTypeInfo(i)));
      session->impl_->input_names.push_back(name);
    }
    for (size_t i = 0; i < ort.GetOutputCount(); ++i) {
      const std::string name = ort.GetOutputNameAllocated(i, allocator).get();
      session->outputs_.push_back(ReadValueInfo(name, ort.GetOutputTypeInfo(i)));
      session->impl_->output_names.push_back(name);
    }
    for (const std::string& name : session->impl_->output_names) {
      session->impl_->output_name_ptrs.push_back(name.c_str());
    }
    return session;
  } catch (const Ort::Exception& e) {
    return RuntimeError(fmt::format("{}: ONNX Runtime cannot load the model: {}", file, e.what()));
  } catch (const std::exception& e) {
    return RuntimeError(fmt::format("{}: {}", file, e.what()));
  }
}

Status Session::CheckInputs(const std::vector<std::pair<std::string, Tensor>>& inputs) const {
  std::set<std::string> seen;
  for (const auto& [name, tensor] : inputs) {
    // A plain reference: clang before C++20 support cannot capture structured bindings.
    const std::string& wanted = name;
    auto it = std::find_if(inputs_.begin(), inputs_.end(),
                           [&](const ValueInfo& info) { return info.name == wanted; });
    if (it == inputs_.end()) {
      return InvalidArgument(fmt::format("{}: '{}' is not an input of the model (inputs: {})",
                                         model_path_.string(), name,
                                         fmt::join(Names(inputs_), ", ")));
    }
    if (!seen.insert(name).second) {
      return InvalidArgument(fmt::format("{}: input '{}' given twice", model_path_.string(), name));
    }
    if (it->type != tensor.type()) {
      return InvalidArgument(fmt::format("{}: input '{}' expects {}, got {}", model_path_.string(),
                                         name, DataTypeName(it->type),
                                         DataTypeName(tensor.type())));
    }
  }
  for (const ValueInfo& info : inputs_) {
    if (seen.count(info.name) == 0) {
      return InvalidArgument(
          fmt::format("{}: no value given for input '{}'", model_path_.string(), info.name));
    }
  }
  return Status::Ok();
}

StatusOr<std::vector<Tensor>> Session::Run(
    const std::vector<std::pair<std::string, Tensor>>& inputs) {
  RETURN_IF_ERROR(CheckInputs(inputs));
  try {
    const Ort::MemoryInfo cpu = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    std::vector<const char*> names;
    std::vector<Ort::Value> values;
    for (const auto& [name, tensor] : inputs) {
      names.push_back(name.c_str());
      // ORT only reads inputs, so wrapping our bytes without a copy is safe.
      values.push_back(Ort::Value::CreateTensor(
          cpu, const_cast<uint8_t*>(tensor.bytes().data()), tensor.bytes().size(),
          tensor.shape().data(), tensor.shape().size(),
          static_cast<ONNXTensorElementDataType>(tensor.type())));
    }
    std::vector<Ort::Value> outputs =
        impl_->session.Run(impl_->run_options, names.data(), values.data(), values.size(),
                           impl_->output_name_ptrs.data(), impl_->output_name_ptrs.size());
    std::vector<Tensor> result;
    for (size_t i = 0; i < outputs.size(); ++i) {
      ASSIGN_OR_RETURN(Tensor t, ToTensor(outputs[i], impl_->output_names[i]));
      result.push_back(std::move(t));
    }
    return result;
  } catch (const Ort::Exception& e) {
    return RuntimeError(fmt::format("{}: run failed: {}", model_path_.string(), e.what()));
  } catch (const std::exception& e) {
    return RuntimeError(fmt::format("{}: run failed: {}", model_path_.string(), e.what()));
  }
}

// ---------------------------------------------------------------------------------------------
// PreparedRun

struct PreparedRun::Impl {
  Ort::Session* session = nullptr;
  std::string model;
  std::vector<std::string> input_names;
  std::vector<const char*> input_name_ptrs;
  std::vector<Ort::Value> inputs;
  std::vector<std::string> output_names;
  std::vector<const char*> output_name_ptrs;
  std::vector<Ort::Value> outputs;
  std::optional<Ort::IoBinding> binding;
  Ort::RunOptions run_options;
  bool has_run = false;
};

PreparedRun::PreparedRun(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
PreparedRun::~PreparedRun() = default;

bool PreparedRun::uses_io_binding() const { return impl_->binding.has_value(); }

StatusOr<std::unique_ptr<PreparedRun>> Session::Prepare(
    const std::vector<std::pair<std::string, Tensor>>& inputs, bool io_binding) {
  RETURN_IF_ERROR(CheckInputs(inputs));
  try {
    auto impl = std::make_unique<PreparedRun::Impl>();
    impl->session = &impl_->session;
    impl->model = model_path_.string();
    Ort::AllocatorWithDefaultOptions allocator;
    for (const auto& [name, tensor] : inputs) {
      impl->input_names.push_back(name);
      // ORT-owned copies: the caller's tensors may go away while the PreparedRun lives.
      Ort::Value value =
          Ort::Value::CreateTensor(allocator, tensor.shape().data(), tensor.shape().size(),
                                   static_cast<ONNXTensorElementDataType>(tensor.type()));
      if (!tensor.bytes().empty()) {
        std::memcpy(value.GetTensorMutableRawData(), tensor.bytes().data(), tensor.bytes().size());
      }
      impl->inputs.push_back(std::move(value));
    }
    for (const std::string& name : impl->input_names) impl->input_name_ptrs.push_back(name.c_str());
    impl->output_names = impl_->output_names;
    for (const std::string& name : impl->output_names) {
      impl->output_name_ptrs.push_back(name.c_str());
    }
    if (io_binding) {
      impl->binding.emplace(impl_->session);
      for (size_t i = 0; i < impl->inputs.size(); ++i) {
        impl->binding->BindInput(impl->input_name_ptrs[i], impl->inputs[i]);
      }
      const Ort::MemoryInfo device =
          config_.use_gpu ? Ort::MemoryInfo("Cuda", OrtDeviceAllocator, 0, OrtMemTypeDefault)
                          : Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
      for (const char* name : impl->output_name_ptrs) impl->binding->BindOutput(name, device);
    }
    return std::unique_ptr<PreparedRun>(new PreparedRun(std::move(impl)));
  } catch (const Ort::Exception& e) {
    return RuntimeError(
        fmt::format("{}: preparing inputs failed: {}", model_path_.string(), e.what()));
  } catch (const std::exception& e) {
    return RuntimeError(
        fmt::format("{}: preparing inputs failed: {}", model_path_.string(), e.what()));
  }
}

Status PreparedRun::Run() {
  try {
    if (impl_->binding) {
      impl_->session->Run(impl_->run_options, *impl_->binding);
    } else {
      impl_->outputs = impl_->session->Run(
          impl_->run_options, impl_->input_name_ptrs.data(), impl_->inputs.data(),
          impl_->inputs.size(), impl_->output_name_ptrs.data(), impl_->output_name_ptrs.size());
    }
    impl_->has_run = true;
    return Status::Ok();
  } catch (const Ort::Exception& e) {
    return RuntimeError(fmt::format("{}: run failed: {}", impl_->model, e.what()));
  } catch (const std::exception& e) {
    return RuntimeError(fmt::format("{}: run failed: {}", impl_->model, e.what()));
  }
}

StatusOr<std::vector<Tensor>> PreparedRun::Outputs() const {
  if (!impl_->has_run) return FailedPrecondition("no outputs yet: Run() has not succeeded");
  try {
    const std::vector<Ort::Value> bound =
        impl_->binding ? impl_->binding->GetOutputValues() : std::vector<Ort::Value>{};
    const std::vector<Ort::Value>& values = impl_->binding ? bound : impl_->outputs;
    std::vector<Tensor> result;
    for (size_t i = 0; i < values.size(); ++i) {
      ASSIGN_OR_RETURN(Tensor t, ToTensor(values[i], impl_->output_names[i]));
      result.push_back(std::move(t));
    }
    return result;
  } catch (const Ort::Exception& e) {
    return RuntimeError(fmt::format("{}: reading outputs failed: {}", impl_->model, e.what()));
  }
}

}  // namespace bertopt::ort
