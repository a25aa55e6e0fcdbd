// libFuzzer target, structure-aware: the same pipeline as model_bytes_fuzzer (pipeline.h), but new
// inputs come from model_mutator.h, so they stay parseable models that reach the passes.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "model_mutator.h"
#include "pipeline.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

// Writes `model` over `data` if it fits in `max_size`; returns the new size, or 0 if it does not.
size_t Store(const onnx::ModelProto& model, uint8_t* data, size_t max_size) {
  std::string bytes;
  if (!model.SerializeToString(&bytes) || bytes.size() > max_size) return 0;
  std::memcpy(data, bytes.data(), bytes.size());
  return bytes.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  bertopt::fuzz::FuzzOne(std::string(reinterpret_cast<const char*>(data), size));
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  onnx::ModelProto model;
  // Not a model (a seed that is not, or a rare byte-level step below): byte-level mutation.
  if (!model.ParseFromArray(data, static_cast<int>(size))) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  bertopt::fuzz::Rng rng(seed);
  // Now and then a byte-level step on a valid model, for what no structural step reaches.
  if (rng() % 32 == 0) return LLVMFuzzerMutate(data, size, max_size);
  for (int attempt = 0; attempt < 4; ++attempt) {
    onnx::ModelProto mutated = model;
    bertopt::fuzz::MutateModel(mutated, rng);
    if (size_t new_size = Store(mutated, data, max_size); new_size > 0) return new_size;
  }
  return size;
}

extern "C" size_t LLVMFuzzerCustomCrossOver(const uint8_t* data1, size_t size1,
                                            const uint8_t* data2, size_t size2, uint8_t* out,
                                            size_t max_out_size, unsigned int seed) {
  onnx::ModelProto model;
  onnx::ModelProto other;
  if (!model.ParseFromArray(data1, static_cast<int>(size1)) ||
      !other.ParseFromArray(data2, static_cast<int>(size2))) {
    return 0;
  }
  bertopt::fuzz::Rng rng(seed);
  bertopt::fuzz::CrossOverModels(model, other, rng);
  return Store(model, out, max_out_size);
}
