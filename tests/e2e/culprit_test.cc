// When the optimized model fails the last checks (ORT must load it; it must be a valid graph),
// optimize writes nothing and names the pass whose output first failed, found by rerunning the
// pipeline on the input (FindCulprit). A pass is made to break the model through the test hook
// BERTOPT_TEST_BREAK_AFTER_PASS (src/passes/optimize.cc): an attribute ORT does not know.
#include <gtest/gtest.h>

#include "bertopt/io/model_io.h"
#include "bertopt/optimize.h"
#include "e2e_util.h"
#include "fmt/format.h"
#include "passes/registry.h"

namespace bertopt::e2e {
namespace {

namespace fs = std::filesystem;

std::string Q(const fs::path& p) { return "'" + p.string() + "'"; }

class Culprit : public ::testing::TestWithParam<std::string> {};

TEST_P(Culprit, TheCliNamesThePassWhoseOutputOrtFirstRefuses) {
  const std::string pass = GetParam();
  const fs::path model = GenerateModel("--kind bert_seq --opset 11");
  const fs::path dir = TempDir("culprit_" + pass);
  const fs::path out = dir / "o.onnx";
  CommandResult r = RunBertopt("optimize --input " + Q(model) + " --output " + Q(out), "bertopt",
                               {{"BERTOPT_TEST_BREAK_AFTER_PASS", pass}});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("ONNX Runtime refuses the optimized model"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bertopt_test_broken_by"), std::string::npos) << "ORT's reason: " << r.err;
  EXPECT_NE(r.err.find("is pass '" + pass + "'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
  // The hook is what broke it: without it the same command writes the model.
  r = RunBertopt("optimize --input " + Q(model) + " --output " + Q(out));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  fs::remove_all(dir);
}

// The first and last steps, the fusions, and dead_code (which runs three times: the first run is
// named, with its step).
INSTANTIATE_TEST_SUITE_P(Passes, Culprit,
                         ::testing::Values("remove_identity", "dead_code", "layer_norm", "gelu",
                                           "attention", "embed_layer_norm", "skip_layer_norm",
                                           "bias_gelu", "topological_sort"),
                         [](const auto& info) { return info.param; });

// The names of the default pipeline's passes, in order (steps are 1-based positions in it).
std::vector<std::string> PipelineNames() {
  OptimizeOptions options;
  options.pass.model_type = "bert";
  auto pipeline = passes::MakePipeline(options);
  std::vector<std::string> names;
  if (pipeline.ok()) {
    for (const auto& pass : *pipeline) names.emplace_back(pass->name());
  }
  return names;
}

TEST(CulpritSearch, DeadCodeIsNamedAtItsFirstStep) {
  const std::vector<std::string> names = PipelineNames();
  const auto first = std::find(names.begin(), names.end(), "dead_code");
  ASSERT_NE(first, names.end());
  const std::string expected =
      fmt::format("is pass 'dead_code' (step {} of ", first - names.begin() + 1);
  const fs::path model = GenerateModel("--kind bert_seq --opset 11");
  const fs::path dir = TempDir("culprit_step");
  CommandResult r = RunBertopt("optimize --input " + Q(model) + " --output " + Q(dir / "o.onnx"),
                               "bertopt", {{"BERTOPT_TEST_BREAK_AFTER_PASS", "dead_code"}});
  EXPECT_NE(r.err.find(expected), std::string::npos) << r.err;
  fs::remove_all(dir);
}

// The library function with a check of our own: the first pass whose output holds an Attention
// node is the attention fusion; a check everything passes finds nothing, and neither does one the
// input already fails (the input is not the optimizer's fault).
TEST(CulpritSearch, FindsTheFirstPassWhoseOutputFailsAnyCheck) {
  auto model = io::LoadModel(GenerateModel("--kind bert_seq --opset 11"));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto has = [](const onnx::ModelProto& m, const std::string& op) {
    for (const auto& n : m.graph().node()) {
      if (n.op_type() == op) return true;
    }
    return false;
  };
  auto culprit = FindCulprit(*model, {}, [&](const onnx::ModelProto& m) {
    return has(m, "Attention") ? InternalError("has Attention") : Status::Ok();
  });
  ASSERT_TRUE(culprit.ok()) << culprit.status().ToString();
  ASSERT_TRUE(culprit->has_value());
  EXPECT_EQ((*culprit)->pass, "attention");
  const int passes = static_cast<int>(PipelineNames().size());
  EXPECT_EQ((*culprit)->steps, passes);

  // An input ORT reads by its rules for duplicates (a Constant given twice) is read so here too.
  onnx::ModelProto twice = *model;
  for (const auto& n : model->graph().node()) {
    if (n.op_type() == "Constant") {
      *twice.mutable_graph()->add_node() = n;
      break;
    }
  }
  culprit = FindCulprit(twice, {}, [&](const onnx::ModelProto& m) {
    return has(m, "SkipLayerNormalization") ? InternalError("has SkipLN") : Status::Ok();
  });
  ASSERT_TRUE(culprit.ok() && culprit->has_value());
  EXPECT_EQ((*culprit)->pass, "skip_layer_norm");

  // --float16: the conversion is one more step, after the passes.
  OptimizeOptions f16;
  f16.float16 = true;
  culprit = FindCulprit(*model, f16, [&](const onnx::ModelProto& m) {
    for (const auto& t : m.graph().initializer()) {
      if (t.data_type() == onnx::TensorProto::FLOAT16) return InternalError("float16");
    }
    return Status::Ok();
  });
  ASSERT_TRUE(culprit.ok() && culprit->has_value());
  EXPECT_EQ((*culprit)->pass, "convert");
  EXPECT_EQ((*culprit)->step, passes + 1);

  culprit = FindCulprit(*model, {}, [](const onnx::ModelProto&) { return Status::Ok(); });
  ASSERT_TRUE(culprit.ok());
  EXPECT_FALSE(culprit->has_value());
  culprit = FindCulprit(*model, {}, [&](const onnx::ModelProto& m) {
    return has(m, "Softmax") ? InternalError("has Softmax") : Status::Ok();
  });
  ASSERT_TRUE(culprit.ok());
  EXPECT_FALSE(culprit->has_value()) << "the input fails it: " << (*culprit)->pass;
}

}  // namespace
}  // namespace bertopt::e2e
