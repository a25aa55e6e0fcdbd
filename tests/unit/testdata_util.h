#pragma once
// Small models and temp folders for unit tests.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "onnx/onnx_pb.h"

namespace bertopt::testutil {

/// Parses ONNX text syntax (onnx::OnnxParser); fails the current test on a syntax error.
onnx::ModelProto ParseModelText(const std::string& text);

/// A FLOAT tensor with raw_data filled from `seed`, so different tensors have different bytes.
onnx::TensorProto FloatTensor(const std::string& name, const std::vector<int64_t>& dims,
                              uint32_t seed);

/// A small model that uses every part of ModelProto a saver could drop: several opset domains
/// (com.microsoft included), metadata_props, doc strings, value_info, a FunctionProto, an If
/// with subgraphs, a Constant, a sparse initializer, training_info and unknown fields (on the
/// model and on a tensor). Seven of its tensors hold at least 1024 bytes of raw_data.
onnx::ModelProto MakeSampleModel();

/// Number of tensors in MakeSampleModel() with at least 1024 bytes of raw_data.
inline constexpr int kSampleLargeTensors = 7;

/// A fresh, empty folder, removed with everything in it when this object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  /// File names in the folder, sorted: for checking that nothing stray was left behind.
  std::vector<std::string> List() const;

 private:
  std::filesystem::path path_;
};

/// Writes `bytes` to `path` (plain, non-atomic: test setup must not depend on the code tested).
void WriteFile(const std::filesystem::path& path, const std::string& bytes);
std::string ReadFile(const std::filesystem::path& path);

}  // namespace bertopt::testutil
