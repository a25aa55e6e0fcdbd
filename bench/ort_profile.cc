// ort_profile: ONNX Runtime's own per-node profile of several BERT models, run alternately on the
// same inputs, so bench/profile_ops.py can say which ops' time a rewrite removed or added. perf
// gives the end-to-end ratio; this says where it comes from.
//   ort_profile <runs> <batch> <sequence> <threads> <out_prefix> <model.onnx>...
// Writes <out_prefix>_<k>.json (ORT's Chrome-trace profile of model k, level "all") and prints
// the file names, one a line. Inputs: every int32/int64 [batch, sequence] graph input; names
// with "mask" get ones, "type" or "segment" zeros, anything else ids (1 + i*7919 mod 1000: valid
// rows of any real vocabulary, the same for every model). The first run of each model is a
// warm-up and is profiled too; profile_ops.py drops it.
#include <onnxruntime_cxx_api.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

struct Model {
  std::unique_ptr<Ort::Session> session;
  std::vector<std::string> input_names;
  std::vector<std::string> output_names;
  std::vector<Ort::Value> inputs;
};

bool Contains(const std::string& text, const char* part) {
  return text.find(part) != std::string::npos;
}

Ort::Value MakeInput(const std::string& name, ONNXTensorElementDataType type, int64_t batch,
                     int64_t sequence) {
  const std::vector<int64_t> shape = {batch, sequence};
  std::vector<int64_t> values(static_cast<size_t>(batch * sequence));
  for (size_t i = 0; i < values.size(); ++i) {
    if (Contains(name, "mask")) {
      values[i] = 1;
    } else if (Contains(name, "type") || Contains(name, "segment")) {
      values[i] = 0;
    } else {
      values[i] = 1 + static_cast<int64_t>((i * 7919) % 1000);
    }
  }
  Ort::AllocatorWithDefaultOptions allocator;
  if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64) {
    Ort::Value v = Ort::Value::CreateTensor<int64_t>(allocator, shape.data(), shape.size());
    std::copy(values.begin(), values.end(), v.GetTensorMutableData<int64_t>());
    return v;
  }
  if (type == ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32) {
    Ort::Value v = Ort::Value::CreateTensor<int32_t>(allocator, shape.data(), shape.size());
    auto* out = v.GetTensorMutableData<int32_t>();
    for (size_t i = 0; i < values.size(); ++i) out[i] = static_cast<int32_t>(values[i]);
    return v;
  }
  throw std::runtime_error("input '" + name + "' is neither int32 nor int64");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 7) {
    std::fprintf(stderr,
                 "usage: %s <runs> <batch> <sequence> <threads> <out_prefix> <model.onnx>...\n",
                 argv[0]);
    return 2;
  }
  try {
    const int runs = std::stoi(argv[1]);
    const int64_t batch = std::stoll(argv[2]);
    const int64_t sequence = std::stoll(argv[3]);
    const int threads = std::stoi(argv[4]);
    const std::string prefix = argv[5];
    Ort::Env env(ORT_LOGGING_LEVEL_ERROR, "ort_profile");
    Ort::AllocatorWithDefaultOptions allocator;

    std::vector<Model> models;
    for (int k = 6; k < argc; ++k) {
      Ort::SessionOptions options;
      options.SetGraphOptimizationLevel(GraphOptimizationLevel::ORT_ENABLE_ALL);
      options.SetIntraOpNumThreads(threads);
      const std::string profile = prefix + "_" + std::to_string(k - 6);
      options.EnableProfiling(profile.c_str());
      Model m;
      m.session = std::make_unique<Ort::Session>(env, argv[k], options);
      for (size_t i = 0; i < m.session->GetInputCount(); ++i) {
        const std::string name = m.session->GetInputNameAllocated(i, allocator).get();
        const auto type =
            m.session->GetInputTypeInfo(i).GetTensorTypeAndShapeInfo().GetElementType();
        m.inputs.push_back(MakeInput(name, type, batch, sequence));
        m.input_names.push_back(name);
      }
      for (size_t i = 0; i < m.session->GetOutputCount(); ++i) {
        m.output_names.push_back(m.session->GetOutputNameAllocated(i, allocator).get());
      }
      models.push_back(std::move(m));
    }

    // Alternate models run by run, so a slow spell on a shared machine hits all of them.
    for (int r = 0; r < runs + 1; ++r) {
      for (Model& m : models) {
        std::vector<const char*> in_names, out_names;
        for (const auto& n : m.input_names) in_names.push_back(n.c_str());
        for (const auto& n : m.output_names) out_names.push_back(n.c_str());
        m.session->Run(Ort::RunOptions{nullptr}, in_names.data(), m.inputs.data(), m.inputs.size(),
                       out_names.data(), out_names.size());
      }
    }
    for (Model& m : models) {
      std::printf("%s\n", m.session->EndProfilingAllocated(allocator).get());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ort_profile: %s\n", e.what());
    return 1;
  }
  return 0;
}
