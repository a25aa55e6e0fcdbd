// End to end on real torch exports: every model of the test matrix fuses completely, keeps its
// outputs (compare through ORT with optimizations disabled, padded masks), loads in ORT at every
// level, and does not change when optimized again.
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
constexpr int kLayers = 2;  // the generator's default

class OptimizeBert : public ::testing::TestWithParam<GeneratedModel> {};

TEST_P(OptimizeBert, FusesCompletelyKeepsOutputsAndIsStable) {
  const GeneratedModel& m = GetParam();
  auto model = io::LoadModel(m.Path());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto report = Optimize(*model, {});
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  EXPECT_EQ(report->verdict.layers, kLayers);
  EXPECT_EQ(FusedCount(*report, "EmbedLayerNormalization"), 1) << ExplainReport(*report);
  EXPECT_EQ(FusedCount(*report, "Attention"), kLayers) << ExplainReport(*report);
  EXPECT_EQ(FusedCount(*report, "BiasGelu"), kLayers) << ExplainReport(*report);
  EXPECT_EQ(FusedCount(*report, "SkipLayerNormalization"), 2 * kLayers) << ExplainReport(*report);
  EXPECT_EQ(FusedCount(*report, "LayerNormalization"), 0) << ExplainReport(*report);
  EXPECT_TRUE(report->verdict.fully_optimized) << ExplainReport(*report);

  const fs::path dir = TempDir(m.Label());
  const fs::path out = dir / "optimized.onnx";
  ASSERT_TRUE(io::SaveModel(*model, out).ok());
  // A float16 export's original rounds to float16 after every op (ORT on CPU runs most of them in
  // float32 between Casts); the fused ops round only their results: equal to float16 precision.
  if (m.args.find("--half") != std::string::npos) {
    ExpectSameOutputs(m.Path(), out, 10, 1e-2, 1e-2);
  } else {
    ExpectSameOutputs(m.Path(), out);
  }

  for (auto level : {ort::OptLevel::kDisabled, ort::OptLevel::kBasic, ort::OptLevel::kExtended,
                     ort::OptLevel::kAll}) {
    auto session = ort::Session::Create(out, {.level = level, .intra_op_threads = 1});
    EXPECT_TRUE(session.ok()) << ort::OptLevelName(level) << ": " << session.status().ToString();
  }

  // Optimizing the output again changes nothing.
  onnx::ModelProto again = *model;
  auto second = Optimize(again, {});
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again, *model))
      << "a second optimize changed the model";
  EXPECT_EQ(second->fused_ops, report->fused_ops);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Matrix, OptimizeBert, ::testing::ValuesIn(MatrixModels()),
                         [](const auto& info) { return info.param.Label(); });

// The raw 2-D mask is exact for any padding; check it on the layouts with different mask paths.
class RawMask : public ::testing::TestWithParam<std::string> {};

// Generator options as a test name: "--kind bert_seq" -> "__kind_bert_seq".
std::string ParamName(const ::testing::TestParamInfo<std::string>& info) {
  std::string s = info.param;
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

TEST_P(RawMask, FusesWithRawMaskAndKeepsOutputs) {
  const fs::path path = GenerateModel(GetParam());
  auto model = io::LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  OptimizeOptions options;
  options.pass.use_raw_attention_mask = true;
  auto report = Optimize(*model, options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(FusedCount(*report, "Attention"), kLayers) << ExplainReport(*report);
  EXPECT_TRUE(report->verdict.fully_optimized) << ExplainReport(*report);
  const fs::path dir = TempDir("raw_mask");
  ASSERT_TRUE(io::SaveModel(*model, dir / "optimized.onnx").ok());
  ExpectSameOutputs(path, dir / "optimized.onnx");
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Layouts, RawMask,
                         ::testing::Values("--kind bert_seq --opset 11",
                                           "--kind bert_seq --opset 14 --static",
                                           "--kind distilbert --opset 14",
                                           "--kind roberta --opset 17"),
                         ParamName);

// torch.onnx.export(export_modules_as_functions=...): each encoder layer an ONNX local function.
// Inlined before matching, then fused completely; no function is left in the output.
class LocalFunctions : public ::testing::TestWithParam<std::string> {};

TEST_P(LocalFunctions, AreInlinedThenFusedCompletely) {
  const fs::path path = GenerateModel(GetParam() + " --functions");
  auto model = io::LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  // One function per distinct layer body (DistilBERT's two layers differ in constants).
  ASSERT_GE(model->functions_size(), 1);
  auto report = Optimize(*model, {});
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->verdict.fully_optimized) << ExplainReport(*report);
  EXPECT_EQ(FusedCount(*report, "Attention"), kLayers) << ExplainReport(*report);
  EXPECT_EQ(model->functions_size(), 0);
  ASSERT_FALSE(report->warnings.empty());
  EXPECT_NE(report->warnings.front().find("inlined 2 call(s)"), std::string::npos)
      << report->warnings.front();
  const fs::path dir = TempDir("functions");
  ASSERT_TRUE(io::SaveModel(*model, dir / "optimized.onnx").ok());
  ExpectSameOutputs(path, dir / "optimized.onnx");
  fs::remove_all(dir);
}

// torch 1.13 crashes exporting RoBERTa's layers as functions; these two export.
INSTANTIATE_TEST_SUITE_P(Layouts, LocalFunctions,
                         ::testing::Values("--kind bert_seq --opset 15",
                                           "--kind distilbert --opset 17"),
                         ParamName);

}  // namespace
}  // namespace bertopt::e2e
