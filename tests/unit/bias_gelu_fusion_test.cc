// Gelu(Add(MatMul, bias)) -> com.microsoft BiasGelu: both bias positions, a graph-input bias, the
// whole path from erf GELU, and what must not fuse.
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "fusion_test_util.h"
#include "passes/fusions/fusions.h"
#include "test_models.h"

namespace bertopt::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

int CountBiasGelu(const onnx::ModelProto& m) { return CountOps(m, "BiasGelu", "com.microsoft"); }

std::vector<std::string> BiasGeluInputs(const onnx::ModelProto& m) {
  for (const auto& node : m.graph().node()) {
    if (node.op_type() == "BiasGelu") return {node.input().begin(), node.input().end()};
  }
  return {};
}

// Fuses `text`, expects one BiasGelu reading (`input`, `bias`), `nodes` nodes in all, no Gelu,
// parity through ORT, and a second run that changes nothing.
void ExpectFusedOnce(const std::string& text, const std::string& input, const std::string& bias,
                     int nodes) {
  const onnx::ModelProto model = ParseModel(text);
  FusionRun run = RunFusion(model, passes::MakeBiasGeluFusion());
  ASSERT_FALSE(run.stats.empty());
  EXPECT_EQ(run.stats[0].fused, 1) << run.Misses();
  EXPECT_TRUE(run.stats[0].misses.empty()) << run.Misses();
  EXPECT_EQ(CountBiasGelu(run.after), 1);
  EXPECT_EQ(CountOps(run.after, "Gelu", "com.microsoft"), 0);
  EXPECT_THAT(BiasGeluInputs(run.after), ElementsAre(input, bias));
  EXPECT_EQ(run.after.graph().node_size(), nodes);
  ExpectSameOutputs(model, run.after);

  FusionRun again = RunFusion(run.after, passes::MakeBiasGeluFusion());
  ASSERT_FALSE(again.stats.empty());
  EXPECT_EQ(again.stats[0].candidates, 0);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again.after, run.after));
}

// Expects no BiasGelu and one miss whose reason contains `why`.
void ExpectNotFused(const std::string& text, const std::string& why) {
  FusionRun run = RunFusion(ParseModel(text), passes::MakeBiasGeluFusion());
  ASSERT_FALSE(run.stats.empty());
  EXPECT_EQ(run.stats[0].fused, 0);
  EXPECT_EQ(CountBiasGelu(run.after), 0);
  EXPECT_EQ(CountOps(run.after, "Gelu", "com.microsoft"), 1);
  ASSERT_EQ(run.stats[0].misses.size(), 1u) << run.Misses();
  EXPECT_THAT(run.stats[0].misses[0], HasSubstr(why));
}

// torch 1.13 after the gelu pass: the bias is Add input 0.
constexpr const char* kTorch = R"(
<ir_version: 7, opset_import: ["" : 11, "com.microsoft" : 1]>
g (float[B, S, 2] a) => (float[B, S, 3] y)
<float[2, 3] w = {0.5, -1.0, 0.25, 1.5, 0.75, -0.5}, float[3] bias = {0.1, -0.2, 0.3}>
{
  mm = MatMul(a, w)
  f = Add(bias, mm)
  y = com.microsoft.Gelu(f)
}
)";

std::string With(const std::string& from, const std::string& to) {
  std::string text = kTorch;
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

// ---- Positive ---------------------------------------------------------------------------------

TEST(BiasGeluFusionTest, Torch113BiasFirst) { ExpectFusedOnce(kTorch, "mm", "bias", 2); }

TEST(BiasGeluFusionTest, PyTorch13BiasSecond) {
  ExpectFusedOnce(With("f = Add(bias, mm)", "f = Add(mm, bias)"), "mm", "bias", 2);
}

TEST(BiasGeluFusionTest, BiasThatIsAGraphInputOfFixedLength) {
  // ORT's own fusion accepts this (exporter-layouts 5.3); BiasGelu computes the same Add.
  std::string text = kTorch;
  text = text.replace(text.find("(float[B, S, 2] a)"), 18, "(float[B, S, 2] a, float[3] b_in)");
  text = text.replace(text.find("f = Add(bias, mm)"), 17, "f = Add(mm, b_in)");
  ExpectFusedOnce(text, "mm", "b_in", 2);
}

TEST(BiasGeluFusionTest, InputFromAnotherOpWithAKnownLastDimension) {
  // The MatMul is the usual producer, not a condition: any input whose last dimension is known to
  // equal the bias length gives Gelu(input + bias).
  ExpectFusedOnce(With("mm = MatMul(a, w)", "mm0 = MatMul(a, w)\n  mm = Relu(mm0)"), "mm", "bias",
                  3);
}

TEST(BiasGeluFusionTest, FromErfGeluThroughBothPasses) {
  // The torch 1.13 FFN (exporter-layouts 2.8) through gelu then bias_gelu, as the pipeline runs
  // them: MatMul + BiasGelu is all that is left.
  const onnx::ModelProto model = ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, S, 2] a) => (float[B, S, 3] y)
<float[2, 3] w = {0.5, -1.0, 0.25, 1.5, 0.75, -0.5}, float[3] bias = {0.1, -0.2, 0.3}>
{
  mm = MatMul(a, w)
  f = Add(bias, mm)
  half = Constant<value = float {0.5}>()
  h = Mul(f, half)
  root2 = Constant<value = float {1.4142135381698608}>()
  dv = Div(f, root2)
  er = Erf(dv)
  one = Constant<value = float {1.0}>()
  a1 = Add(er, one)
  y = Mul(h, a1)
}
)");
  std::vector<std::unique_ptr<passes::Pass>> list;
  list.push_back(passes::MakeGeluFusion());
  list.push_back(passes::MakeBiasGeluFusion());
  FusionRun run = RunPasses(model, std::move(list));
  ASSERT_GE(run.stats.size(), 2u);
  EXPECT_EQ(run.stats[0].fused, 1) << run.Misses();
  EXPECT_EQ(run.stats[1].fused, 1) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "Gelu", "com.microsoft"), 0);
  EXPECT_THAT(BiasGeluInputs(run.after), ElementsAre("mm", "bias"));
  EXPECT_EQ(run.after.graph().node_size(), 2);
  ExpectSameOutputs(model, run.after);
}

// ---- Negative ---------------------------------------------------------------------------------

TEST(BiasGeluFusionTest, TwoDimensionalBiasDoesNotFuse) {
  ExpectNotFused(With("float[3] bias", "float[1, 3] bias"),
                 "bias 'bias' has shape [1,3], expected 1-D");
}

TEST(BiasGeluFusionTest, BiasAddWithAnotherConsumerDoesNotFuse) {
  std::string text = With("=> (float[B, S, 3] y)", "=> (float[B, S, 3] y, float[B, S, 3] z)");
  text = text.replace(text.rfind('}'), 1, "  z = Neg(f)\n}");
  ExpectNotFused(text, "'f' (output of Add producing 'f') is also read by Neg");
}

TEST(BiasGeluFusionTest, AddOfTwoComputedValuesDoesNotFuse) {
  ExpectNotFused(With("f = Add(bias, mm)", "r = Relu(mm)\n  f = Add(r, mm)"),
                 "adds two computed values 'r' and 'mm'");
}

TEST(BiasGeluFusionTest, GeluInputThatIsNotAnAddDoesNotFuse) {
  ExpectNotFused(With("y = com.microsoft.Gelu(f)", "y = com.microsoft.Gelu(mm)"),
                 "expected Add to compute 'mm', found MatMul");
}

TEST(BiasGeluFusionTest, BiasThatBroadcastsAgainstALastDimensionOfOneDoesNotFuse) {
  // mm is [B, S, 1]: the Add broadcasts it to 3 columns, which BiasGelu would not.
  std::string text =
      With("float[2, 3] w = {0.5, -1.0, 0.25, 1.5, 0.75, -0.5}", "float[2, 1] w = {0.5, -1.0}");
  ExpectNotFused(text, "bias 'bias' has 3 elements but 'mm' has last dimension 1");
}

TEST(BiasGeluFusionTest, GraphInputBiasOfSymbolicLengthDoesNotFuse) {
  std::string text = kTorch;
  text = text.replace(text.find("(float[B, S, 2] a)"), 18, "(float[B, S, 2] a, float[F] b_in)");
  text = text.replace(text.find("f = Add(bias, mm)"), 17, "f = Add(mm, b_in)");
  ExpectNotFused(text, "bias 'b_in' has a symbolic length");
}

}  // namespace
}  // namespace bertopt::testing
