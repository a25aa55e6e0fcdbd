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

int Count(const OptimizeReport& r, const std::string& op) {
  return r.fused_ops.count(op) ? r.fused_ops.at(op) : 0;
}

std::string Explain(const OptimizeReport& r) {
  std::ostringstream s;
  for (const auto& m : r.verdict.missing) s << "missing: " << m << "\n";
  for (const auto& p : r.passes) {
    for (const auto& m : p.misses) s << m << "\n";
  }
  return s.str();
}

ort::CompareReport CompareOrDie(const fs::path& baseline, const fs::path& optimized,
                                double rtol = 1e-3, double atol = 1e-4) {
  ort::CompareOptions c;
  c.rtol = rtol;
  c.atol = atol;
  c.baseline_model = baseline;
  c.optimized_model = optimized;
  c.batch_size = 2;  // the static exports are fixed at (2, 16)
  c.sequence_length = 16;
  c.samples = 10;
  c.write_test_data = false;
  std::ostringstream log;
  auto report = ort::CompareModels(c, log);
  EXPECT_TRUE(report.ok()) << report.status().ToString();
  if (!report.ok()) return {};
  EXPECT_TRUE(report->AllPassed()) << log.str();
  return *report;
}

class OptimizeBert : public ::testing::TestWithParam<GeneratedModel> {};

TEST_P(OptimizeBert, FusesCompletelyKeepsOutputsAndIsStable) {
  const GeneratedModel& m = GetParam();
  auto model = io::LoadModel(m.Path());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto report = Optimize(*model, {});
  ASSERT_TRUE(report.ok()) << report.status().ToString();

  EXPECT_EQ(report->verdict.layers, kLayers);
  EXPECT_EQ(Count(*report, "EmbedLayerNormalization"), 1) << Explain(*report);
  EXPECT_EQ(Count(*report, "Attention"), kLayers) << Explain(*report);
  EXPECT_EQ(Count(*report, "BiasGelu"), kLayers) << Explain(*report);
  EXPECT_EQ(Count(*report, "SkipLayerNormalization"), 2 * kLayers) << Explain(*report);
  EXPECT_EQ(Count(*report, "LayerNormalization"), 0) << Explain(*report);
  EXPECT_TRUE(report->verdict.fully_optimized) << Explain(*report);

  const fs::path dir = TempDir(m.Label());
  const fs::path out = dir / "optimized.onnx";
  ASSERT_TRUE(io::SaveModel(*model, out).ok());
  // A float16 export's original rounds to float16 after every op (ORT on CPU runs most of them in
  // float32 between Casts); the fused ops round only their results: equal to float16 precision.
  if (m.args.find("--half") != std::string::npos) {
    CompareOrDie(m.Path(), out, 1e-2, 1e-2);
  } else {
    CompareOrDie(m.Path(), out);
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

TEST_P(RawMask, FusesWithRawMaskAndKeepsOutputs) {
  const fs::path path = GenerateModel(GetParam());
  auto model = io::LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  OptimizeOptions options;
  options.pass.use_raw_attention_mask = true;
  auto report = Optimize(*model, options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(Count(*report, "Attention"), kLayers) << Explain(*report);
  EXPECT_TRUE(report->verdict.fully_optimized) << Explain(*report);
  const fs::path dir = TempDir("raw_mask");
  ASSERT_TRUE(io::SaveModel(*model, dir / "optimized.onnx").ok());
  CompareOrDie(path, dir / "optimized.onnx");
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Layouts, RawMask,
                         ::testing::Values("--kind bert_seq --opset 11",
                                           "--kind bert_seq --opset 14 --static",
                                           "--kind distilbert --opset 14",
                                           "--kind roberta --opset 17"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& c : s) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return s;
                         });

}  // namespace
}  // namespace bertopt::e2e
