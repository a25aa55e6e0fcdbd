#pragma once
// Small ONNX models built in code for the ORT tests, so each test shows the whole graph it runs.

#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <string>
#include <variant>
#include <vector>

#include "onnx/onnx_pb.h"

namespace bertopt::testing {

/// A dimension: a fixed size or a symbolic name.
using Dim = std::variant<int64_t, std::string>;

/// Builds a ModelProto node by node (opset 17 plus com.microsoft 1).
class ModelBuilder {
 public:
  ModelBuilder();

  ModelBuilder& Input(const std::string& name, int32_t type, std::vector<Dim> dims);
  ModelBuilder& Output(const std::string& name, int32_t type, std::vector<Dim> dims);
  /// An initializer of `type` (float, int64 or int32) from `values`.
  ModelBuilder& Initializer(const std::string& name, int32_t type, std::vector<int64_t> dims,
                            const std::vector<float>& values);
  /// A node; `int_attrs` adds integer attributes such as Cast's "to".
  ModelBuilder& Node(const std::string& op, std::vector<std::string> inputs,
                     std::vector<std::string> outputs,
                     std::vector<std::pair<std::string, int64_t>> int_attrs = {},
                     const std::string& domain = "");

  onnx::ModelProto& model() { return model_; }
  onnx::GraphProto& graph() { return *model_.mutable_graph(); }
  /// Serializes to `path` and returns it.
  std::filesystem::path Save(const std::filesystem::path& path) const;

 private:
  onnx::ModelProto model_;
};

/// Saves `model` to `path` (serialized bytes), returning the path.
std::filesystem::path SaveModel(const onnx::ModelProto& model, const std::filesystem::path& path);

/// A fresh, empty temporary folder per call, removed at exit of the test binary is not promised.
std::filesystem::path MakeTempDir(const std::string& prefix);

/// y = a + b, with a, b, y of `type` and shape (batch, 3) with symbolic batch.
onnx::ModelProto AddModel(int32_t type);

/// Options for a tiny BERT-like graph:
///   word[V,H][ids] + type[2,H][segment]  →  * Unsqueeze(Cast(mask), -1)  →  MatMul(W[H,H])  → out
/// with a second output (the embedding sum) when `two_outputs`.
struct TinyBertOptions {
  int64_t vocab = 50;
  int64_t hidden = 8;
  int32_t id_type = onnx::TensorProto::INT64;
  bool with_segment = true;
  bool with_mask = true;
  bool two_outputs = false;
  /// Cast last_hidden_state to float16, as a float16-converted model would return it.
  bool float16_output = false;
  std::string ids_name = "input_ids";
  std::string segment_name = "token_type_ids";
  std::string mask_name = "attention_mask";
  /// Static (batch, sequence) dims instead of symbolic ones when > 0.
  int64_t static_batch = 0, static_sequence = 0;
  /// Seed of the weight values, so two builds with equal seeds are identical.
  uint32_t weight_seed = 7;
};
onnx::ModelProto TinyBertModel(const TinyBertOptions& options = {});

/// The same model with one element of initializer `name` changed by `delta`.
onnx::ModelProto PerturbWeight(onnx::ModelProto model, const std::string& name, int64_t index,
                               float delta);

}  // namespace bertopt::testing
