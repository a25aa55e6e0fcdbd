// first_token on real exports: a classifier's last layer computes its first token only (the
// pooler reads nothing else) and keeps its outputs, in every ORT target's form; a model whose
// outputs read every token (question answering, the hidden states) is left as it was.
#include <gtest/gtest.h>

#include <sstream>

#include "bertopt/io/model_io.h"
#include "bertopt/optimize.h"
#include "e2e_util.h"
#include "ort/compare.h"

namespace bertopt::e2e {
namespace {

namespace fs = std::filesystem;

const passes::PassStats& FirstTokenStats(const OptimizeReport& report) {
  for (const passes::PassStats& p : report.passes) {
    if (p.name == "first_token") return p;
  }
  static const passes::PassStats none;
  ADD_FAILURE() << "no first_token pass in the report";
  return none;
}

int CountNodes(const onnx::ModelProto& model, const std::string& op) {
  int n = 0;
  for (const auto& node : model.graph().node()) n += node.op_type() == op;
  return n;
}

struct Case {
  const char* generator;
  const char* target;  // --target_ort_version
  bool first_token;    // whether the pass applies
  const char* miss;    // its reason when not
};

class FirstTokenE2e : public ::testing::TestWithParam<Case> {};

TEST_P(FirstTokenE2e, OnlyWhatIsReadIsComputedAndTheOutputsStay) {
  const Case& c = GetParam();
  const fs::path input = GenerateModel(c.generator);
  auto model = io::LoadModel(input);
  ASSERT_TRUE(model.ok());
  OptimizeOptions options;
  options.target_ort_version = std::string(c.target) == "none" ? "" : c.target;
  auto report = Optimize(*model, options);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->verdict.fully_optimized);
  const passes::PassStats& stats = FirstTokenStats(*report);
  EXPECT_EQ(stats.fused, c.first_token ? 1 : 0);
  EXPECT_EQ(CountNodes(*model, "Slice"), c.first_token ? 2 : 0)
      << "the last Attention's output and the layer's input";
  if (!c.first_token && c.miss) {
    ASSERT_EQ(stats.misses.size(), 1u);
    EXPECT_NE(stats.misses[0].find(c.miss), std::string::npos) << stats.misses[0];
  }
  const fs::path dir = TempDir("first_token");
  ASSERT_TRUE(io::SaveModel(*model, dir / "o.onnx").ok());
  std::ostringstream log;
  auto compared = ort::CompareModels(SmallCompare(input, dir / "o.onnx", 5), log);
  ASSERT_TRUE(compared.ok()) << compared.status().ToString();
  EXPECT_TRUE(compared->AllPassed()) << log.str();
  // A second optimize leaves it as it is.
  auto again = Optimize(*model, options);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(FirstTokenStats(*again).fused, 0);
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Exports, FirstTokenE2e,
    ::testing::Values(Case{"--kind bert_seq --opset 11", "none", true, nullptr},
                      Case{"--kind bert_seq --opset 14", "1.32", true, nullptr},
                      Case{"--kind distilbert --opset 14", "none", true, nullptr},
                      Case{"--kind bert_qa --opset 11", "none", false, nullptr},  // no pooler
                      Case{"--kind bert_base_model --opset 14", "none", false,
                           "read at every token"}),
    [](const ::testing::TestParamInfo<Case>& info) {
      std::string name = std::string(info.param.generator).substr(7);
      for (char& ch : name) {
        if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      return name + "_" + (std::string(info.param.target) == "none" ? "all" : "ort132");
    });

}  // namespace
}  // namespace bertopt::e2e
