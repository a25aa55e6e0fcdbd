// The ORT version a model is optimized for, and `optimize --tune`, end to end: what each target
// emits, that it keeps the outputs, and that --tune builds, measures and reports every variant
// and writes one that passes compare. No assertion on which variant is fastest (that is timing).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "bertopt/io/model_io.h"
#include "bertopt/optimize.h"
#include "e2e_util.h"
#include "ort/compare.h"
#include "ort/session.h"

namespace bertopt::e2e {
namespace {

namespace fs = std::filesystem;

std::string Q(const fs::path& p) { return "'" + p.string() + "'"; }

bool SameOutputs(const fs::path& baseline, const fs::path& optimized, std::string* log_out) {
  const ort::CompareOptions c = SmallCompare(baseline, optimized, 5);
  std::ostringstream log;
  auto report = ort::CompareModels(c, log);
  *log_out = log.str() + (report.ok() ? "" : report.status().ToString());
  return report.ok() && report->AllPassed();
}

TEST(TargetsE2e, Ort130KeepsLayerNormalizationWithTheResidualAsSumAndTheOutputs) {
  const fs::path input = GenerateModel("--kind bert_seq --opset 14");
  auto model = io::LoadModel(input);
  ASSERT_TRUE(model.ok());
  OptimizeOptions options;
  options.target_ort_version = "1.30";
  auto report = Optimize(*model, options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->fused_ops.count("SkipLayerNormalization"), 0u);
  EXPECT_EQ(report->fused_ops.at("LayerNormalization"), 4);
  EXPECT_EQ(report->fused_ops.at("Attention"), 2);
  EXPECT_TRUE(report->verdict.fully_optimized);
  EXPECT_NE(report->target.find("ORT 1.30: residual Sum + LayerNormalization"), std::string::npos)
      << report->target;
  const fs::path dir = TempDir("target130");
  ASSERT_TRUE(io::SaveModel(*model, dir / "o.onnx").ok());
  std::string log;
  EXPECT_TRUE(SameOutputs(input, dir / "o.onnx", &log)) << log;
  fs::remove_all(dir);
}

int CountNodes(const onnx::ModelProto& model, const std::string& op) {
  int n = 0;
  for (const auto& node : model.graph().node()) n += node.op_type() == op;
  return n;
}

// ORT 1.32: the residual Add becomes Sum, so that ORT's own SkipLayerNormFusion (which matches
// Add only) leaves LayerNormalization in the graph it runs; the outputs are the same.
TEST(TargetsE2e, Ort132WritesTheResidualAsSumWhichOrtKeepsUnfused) {
  const fs::path input = GenerateModel("--kind bert_seq --opset 14");
  auto model = io::LoadModel(input);
  ASSERT_TRUE(model.ok());
  OptimizeOptions options;
  options.target_ort_version = "1.32";
  auto report = Optimize(*model, options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->fused_ops.count("SkipLayerNormalization"), 0u);
  EXPECT_EQ(report->fused_ops.at("LayerNormalization"), 4);
  EXPECT_EQ(report->fused_ops.at("Attention"), 2);
  EXPECT_TRUE(report->verdict.fully_optimized);
  EXPECT_EQ(CountNodes(*model, "Sum"), 4);
  EXPECT_NE(report->target.find("ORT 1.32: residual Sum + LayerNormalization"), std::string::npos)
      << report->target;
  const fs::path dir = TempDir("target132");
  ASSERT_TRUE(io::SaveModel(*model, dir / "o.onnx").ok());
  std::string log;
  EXPECT_TRUE(SameOutputs(input, dir / "o.onnx", &log)) << log;
  // What ORT makes of it at level all: still Sum + LayerNormalization, no SkipLayerNormalization.
  auto session =
      ort::Session::Create(dir / "o.onnx", {.level = ort::OptLevel::kAll,
                                            .intra_op_threads = 1,
                                            .use_gpu = false,
                                            .optimized_model_path = (dir / "ort.onnx").string()});
  ASSERT_TRUE(session.ok()) << session.status().ToString();
  auto ran = io::LoadModel(dir / "ort.onnx");
  ASSERT_TRUE(ran.ok()) << ran.status().ToString();
  EXPECT_EQ(CountNodes(*ran, "SkipLayerNormalization"), 0);
  EXPECT_EQ(CountNodes(*ran, "LayerNormalization"), 4);
  fs::remove_all(dir);
}

TEST(TargetsE2e, CliDefaultsToTheLinkedVersionAndChecksTheFlag) {
  const fs::path input = GenerateModel("--kind bert_seq --opset 11");
  const fs::path dir = TempDir("target_cli");
  CommandResult r = RunBertopt("optimize --input " + Q(input) + " --output " + Q(dir / "a.onnx"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("target: ORT 1."), std::string::npos) << r.out;
  r = RunBertopt("optimize --input " + Q(input) + " --output " + Q(dir / "b.onnx") +
                 " --target_ort_version 1.30 --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["fused_ops"].contains("SkipLayerNormalization"));
  EXPECT_NE(j["target"].get<std::string>().find("ORT 1.30"), std::string::npos);
  r = RunBertopt("optimize --input " + Q(input) + " --output " + Q(dir / "c.onnx") +
                 " --target_ort_version none --json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["fused_ops"]["SkipLayerNormalization"], 4);
  r = RunBertopt("optimize --input " + Q(input) + " --output " + Q(dir / "d.onnx") +
                 " --target_ort_version 0.9");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--target_ort_version 0.9"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "d.onnx"));
  fs::remove_all(dir);
}

TEST(TuneE2e, BuildsMeasuresAndReportsEveryVariantAndWritesOneThatKeepsTheOutputs) {
  const fs::path input = GenerateModel("--kind bert_seq --opset 14");
  const fs::path dir = TempDir("tune");
  CommandResult r = RunBertopt("optimize --input " + Q(input) + " --output " + Q(dir / "t.onnx") +
                               " --tune --batch_size 2 --sequence_length 16 --tune_test_times 3 "
                               "--intra_op_num_threads 1 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  const auto& tune = j["tune"];
  ASSERT_TRUE(tune.is_object()) << r.out;
  EXPECT_GT(tune["original_p50_ms"].get<double>(), 0);
  // The variants of a 1.29 target: the table's (every fusion), without SkipLayerNormalization,
  // Attention, EmbedLayerNormalization, BiasGelu, and no fusion at all.
  std::vector<std::string> names;
  for (const auto& v : tune["variants"]) {
    names.push_back(v["name"]);
    EXPECT_GT(v["p50_ms"].get<double>(), 0) << v.dump();
  }
  EXPECT_GE(names.size(), 6u) << r.out;
  EXPECT_NE(std::find(names.begin(), names.end(), "no fusion (cleanups only)"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), tune["chosen"].get<std::string>()), names.end());
  // Each variant really left its family out.
  for (const auto& v : tune["variants"]) {
    const std::string name = v["name"];
    if (name == "without Attention") EXPECT_FALSE(v["fused_ops"].contains("Attention"));
    if (name == "no fusion (cleanups only)") EXPECT_TRUE(v["fused_ops"].empty()) << v.dump();
  }
  std::string log;
  EXPECT_TRUE(SameOutputs(input, dir / "t.onnx", &log)) << log;
  EXPECT_NE(r.err.find("tune: measuring the original and"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bertopt::e2e
