// End to end on real torch 2.x exports of Hugging Face transformers classes (tests/models/torch2/,
// TorchScript and dynamo exporters, opsets 14-20, eager and sdpa attention): every model keeps its
// outputs (compare through ORT, optimizations off, padded masks), loads in ORT at every level, is
// stable under a second optimize, and is fully fused: EmbedLayerNormalization, one Attention per
// layer (masks built by index arithmetic, proven equal to mask[:, None, None, :] by
// passes/key_mask.h; sdpa's split scale and NaN guard), SkipLayerNormalization from ONNX
// LayerNormalization, and a GELU op per layer.
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

std::vector<std::string> Files() {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(ModelsDir() / "torch2")) {
    if (entry.path().extension() == ".onnx") out.push_back(entry.path().stem().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class OptimizeTorch2 : public ::testing::TestWithParam<std::string> {};

TEST_P(OptimizeTorch2, KeepsOutputsFusesCompletelyAndIsStable) {
  const std::string name = GetParam();
  const fs::path input = ModelsDir() / "torch2" / (name + ".onnx");
  auto model = io::LoadModel(input);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto report = Optimize(*model, {});
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  EXPECT_EQ(report->model_type.model_type, "bert");
  EXPECT_EQ(report->verdict.layers, kLayers);
  EXPECT_EQ(FusedCount(*report, "EmbedLayerNormalization"), 1) << ExplainReport(*report);
  EXPECT_EQ(FusedCount(*report, "SkipLayerNormalization"), 2 * kLayers) << ExplainReport(*report);
  EXPECT_GE(FusedCount(*report, "BiasGelu") + FusedCount(*report, "FastGelu") +
                FusedCount(*report, "Gelu"),
            kLayers)
      << ExplainReport(*report);
  EXPECT_EQ(FusedCount(*report, "Attention"), kLayers) << ExplainReport(*report);
  EXPECT_TRUE(report->verdict.missing.empty()) << ExplainReport(*report);

  const fs::path dir = TempDir(name);
  const fs::path out = dir / "optimized.onnx";
  ASSERT_TRUE(io::SaveModel(*model, out).ok());
  ExpectSameOutputs(input, out, 5);
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
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Exports, OptimizeTorch2, ::testing::ValuesIn(Files()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace bertopt::e2e
