#include "perf/runner.h"

#include <fmt/format.h>
#include <onnxruntime_cxx_api.h>

#include <filesystem>
#include <fstream>

namespace bertopt::perf {

using ort::BertInputs;
using ort::BertSample;
using ort::FindBertInputs;
using ort::FindSegmentVocabSize;
using ort::FindVocabSize;
using ort::kDefaultVocabSize;
using ort::MakeBertFeeds;
using ort::PreparedRun;
using ort::Session;
using ort::Tensor;
using ort::ValueInfo;
namespace {

double MillisecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

}  // namespace

StatusOr<PerfModelInfo> InspectPerfModel(const std::string& path, const BertInputs& overrides) {
  // Parsed here rather than through io::LoadModel: perf only needs the graph's structure, and
  // LoadModel would also read every external-data weight file into memory, which ORT then reads
  // again for itself.
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(fmt::format("{}: cannot open", path));
  onnx::ModelProto model;
  if (!model.ParseFromIstream(&in) || !model.has_graph()) {
    return InvalidModel(fmt::format("{}: not an ONNX model", path));
  }
  StatusOr<BertInputs> roles = FindBertInputs(model.graph(), overrides);
  if (!roles.ok()) return std::move(roles).status().WithContext(path);
  PerfModelInfo info;
  info.path = path;
  info.roles = *roles;
  info.vocab_size = FindVocabSize(model.graph(), info.roles.input_ids).value_or(kDefaultVocabSize);
  info.segment_vocab_size = FindSegmentVocabSize(model.graph(), info.roles.segment_ids).value_or(2);
  return info;
}

SettingRunner::~SettingRunner() = default;

StatusOr<std::unique_ptr<SettingRunner>> SettingRunner::Create(
    Session& session, const BertInputs& roles, const std::vector<BertSample>& samples,
    TimingMode mode) {
  if (samples.empty()) return InvalidArgument("no samples to run");
  std::unique_ptr<SettingRunner> runner(new SettingRunner(session, mode));
  for (const BertSample& sample : samples) {
    StatusOr<std::vector<std::pair<std::string, Tensor>>> feeds =
        MakeBertFeeds(sample, roles, session.inputs());
    if (!feeds.ok()) return std::move(feeds).status().WithContext(session.model_path().string());
    if (!mode.inclusive) {
      ASSIGN_OR_RETURN(std::unique_ptr<PreparedRun> prepared,
                       session.Prepare(*feeds, mode.io_binding));
      runner->prepared_.push_back(std::move(prepared));
    }
    runner->feeds_.push_back(std::move(feeds).value());
  }
  return runner;
}

StatusOr<double> SettingRunner::Run(int sample) {
  const size_t index = static_cast<size_t>(sample) % feeds_.size();
  if (!mode_.inclusive) {
    PreparedRun& prepared = *prepared_[index];
    const auto start = std::chrono::steady_clock::now();
    RETURN_IF_ERROR(prepared.Run());
    return MillisecondsSince(start);
  }
  const auto& feeds = feeds_[index];
  const auto start = std::chrono::steady_clock::now();
  if (mode_.io_binding) {
    RETURN_IF_ERROR(RunInclusiveWithBinding(feeds));
  } else {
    // Session::Run wraps the host buffers as ORT tensors, runs, and copies every output to host.
    StatusOr<std::vector<Tensor>> outputs = session_.Run(feeds);
    if (!outputs.ok()) return outputs.status();
  }
  return MillisecondsSince(start);
}

Status SettingRunner::RunInclusiveWithBinding(
    const std::vector<std::pair<std::string, Tensor>>& feeds) {
  try {
    Ort::Session& ort = session_.ort_session();
    const Ort::MemoryInfo host = Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
    Ort::IoBinding binding(ort);
    std::vector<Ort::Value> values;
    values.reserve(feeds.size());
    for (const auto& [name, tensor] : feeds) {
      // ORT only reads inputs, so wrapping the host bytes without a copy is safe.
      values.push_back(Ort::Value::CreateTensor(
          host, const_cast<uint8_t*>(tensor.bytes().data()), tensor.bytes().size(),
          tensor.shape().data(), tensor.shape().size(),
          static_cast<ONNXTensorElementDataType>(tensor.type())));
      binding.BindInput(name.c_str(), values.back());
    }
    for (const ValueInfo& output : session_.outputs()) {
      binding.BindOutput(output.name.c_str(), host);
    }
    ort.Run(Ort::RunOptions{}, binding);
    // Outputs bound to host memory are complete once Run returns; taking them is the "read".
    std::vector<Ort::Value> outputs = binding.GetOutputValues();
    if (outputs.size() != session_.outputs().size()) {
      return InternalError(fmt::format("{}: expected {} outputs, got {}",
                                       session_.model_path().string(), session_.outputs().size(),
                                       outputs.size()));
    }
    return Status::Ok();
  } catch (const Ort::Exception& e) {
    return RuntimeError(
        fmt::format("{}: run failed: {}", session_.model_path().string(), e.what()));
  }
}

}  // namespace bertopt::perf
