// End to end on TensorFlow layouts: keras2onnx 1.6.1 / 1.6.5 and tf2onnx 1.6 graphs built by
// tests/models/gen_tf_layouts.py (tf_test_matrix.txt), and real tf2onnx 1.17 exports committed in
// tests/models/tf2onnx/. Each fuses completely with --model_type auto (which picks the right
// type), keeps its outputs (compare through ORT, optimizations off, padded masks), loads in ORT at
// every level, and does not change when optimized again.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <sstream>

#include "bertopt/io/model_io.h"
#include "bertopt/optimize.h"
#include "e2e_util.h"
#include "ort/compare.h"
#include "ort/session.h"

namespace bertopt::e2e {
namespace {

namespace fs = std::filesystem;
constexpr int kLayers = 2;

struct TfModel {
  std::string label;
  std::string args;  ///< gen_tf_layouts.py arguments, or empty for a committed file
  fs::path file;     ///< the committed file, or empty
  std::string model_type;
  std::string gelu;       ///< the GELU op each layer fuses into
  bool embed_layer_norm;  ///< whether the layout allows EmbedLayerNormalization
  fs::path Path() const {
    return args.empty() ? file : GenerateModelWith("gen_tf_layouts.py", args);
  }
};

std::vector<TfModel> Models() {
  std::vector<TfModel> out;
  for (const std::string& args : MatrixLines("tf_test_matrix.txt")) {
    TfModel m{.label = args,
              .args = args,
              .file = {},
              .model_type = "bert_keras",
              .gelu = "BiasGelu",
              .embed_layer_norm = true};
    if (args.find("tf2onnx16") != std::string::npos) {
      // tf2onnx 1.6: a TF1 graph, tanh GELU, and word / position lookups through flattened 2-D
      // Gathers and a Slice of the table that EmbedLayerNormalization does not take (README).
      m.model_type = "bert_tf";
      m.gelu = "FastGelu";
      m.embed_layer_norm = false;
    }
    out.push_back(m);
  }
  for (const auto& entry : fs::directory_iterator(ModelsDir() / "tf2onnx")) {
    if (entry.path().extension() != ".onnx") continue;
    const std::string name = entry.path().stem().string();
    out.push_back({.label = name,
                   .args = {},
                   .file = entry.path(),
                   .model_type = "bert_tf",
                   .gelu = name.find("tanh") != std::string::npos ? "FastGelu" : "BiasGelu",
                   .embed_layer_norm = true});
  }
  for (TfModel& m : out) {
    for (char& c : m.label) {
      if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
    }
  }
  return out;
}

class OptimizeTf : public ::testing::TestWithParam<TfModel> {};

TEST_P(OptimizeTf, FusesCompletelyKeepsOutputsAndIsStable) {
  const TfModel& m = GetParam();
  const fs::path input = m.Path();
  auto model = io::LoadModel(input);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto report = Optimize(*model, {});
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  EXPECT_EQ(report->model_type.model_type, m.model_type) << report->model_type.evidence;
  EXPECT_TRUE(report->warnings.empty());
  EXPECT_EQ(report->verdict.layers, kLayers);
  EXPECT_EQ(FusedCount(*report, "Attention"), kLayers) << ExplainReport(*report);
  EXPECT_EQ(FusedCount(*report, m.gelu), kLayers) << ExplainReport(*report);
  EXPECT_EQ(FusedCount(*report, "Gelu") + FusedCount(*report, "FastGelu") +
                FusedCount(*report, "BiasGelu"),
            kLayers);
  if (m.embed_layer_norm) {
    EXPECT_EQ(FusedCount(*report, "EmbedLayerNormalization"), 1) << ExplainReport(*report);
    EXPECT_EQ(FusedCount(*report, "SkipLayerNormalization"), 2 * kLayers) << ExplainReport(*report);
    EXPECT_EQ(FusedCount(*report, "LayerNormalization"), 0) << ExplainReport(*report);
    EXPECT_TRUE(report->verdict.fully_optimized) << ExplainReport(*report);
  } else {
    // The embedding LayerNorm stays, as SkipLayerNormalization of word + position or as
    // LayerNormalization: the only thing the verdict misses.
    EXPECT_EQ(
        FusedCount(*report, "SkipLayerNormalization") + FusedCount(*report, "LayerNormalization"),
        2 * kLayers + 1)
        << ExplainReport(*report);
    EXPECT_EQ(report->verdict.missing, std::vector<std::string>{"EmbedLayerNormalization: 0 of 1"});
  }

  const fs::path dir = TempDir(m.label);
  const fs::path out = dir / "optimized.onnx";
  ASSERT_TRUE(io::SaveModel(*model, out).ok());
  ExpectSameOutputs(input, out, 10);

  for (auto level : {ort::OptLevel::kDisabled, ort::OptLevel::kBasic, ort::OptLevel::kExtended,
                     ort::OptLevel::kAll}) {
    auto session = ort::Session::Create(out, {.level = level, .intra_op_threads = 1});
    EXPECT_TRUE(session.ok()) << ort::OptLevelName(level) << ": " << session.status().ToString();
  }

  onnx::ModelProto again = *model;
  auto second = Optimize(again, {});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again, *model))
      << "a second optimize changed the model";
  EXPECT_EQ(second->fused_ops, report->fused_ops);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Layouts, OptimizeTf, ::testing::ValuesIn(Models()),
                         [](const auto& info) { return info.param.label; });

// The raw 2-D mask (any padding) on both TF families.
TEST(OptimizeTfRawMask, KerasAndTf2onnxKeepOutputs) {
  for (const fs::path& input :
       {GenerateModelWith("gen_tf_layouts.py", "--kind keras_seq --keras_version 1.6.1"),
        ModelsDir() / "tf2onnx" / "tf2onnx_seq_erf_op13_dynamic.onnx"}) {
    auto model = io::LoadModel(input);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    OptimizeOptions options;
    options.pass.use_raw_attention_mask = true;
    auto report = Optimize(*model, options);
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->verdict.fully_optimized) << input << "\n" << ExplainReport(*report);
    const fs::path dir = TempDir("tf_raw_mask");
    ASSERT_TRUE(io::SaveModel(*model, dir / "optimized.onnx").ok());
    ExpectSameOutputs(input, dir / "optimized.onnx", 5);
    fs::remove_all(dir);
  }
}

}  // namespace
}  // namespace bertopt::e2e
