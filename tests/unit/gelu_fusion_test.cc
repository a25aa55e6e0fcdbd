// erf GELU -> com.microsoft Gelu: each exporter layout, swapped operands, and what must not fuse.
#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "bertopt/ir/tensor.h"
#include "fusion_test_util.h"
#include "passes/fusions/fusions.h"
#include "test_models.h"

namespace bertopt::testing {
namespace {

using ::testing::HasSubstr;

int CountGelu(const onnx::ModelProto& m) { return CountOps(m, "Gelu", "com.microsoft"); }

// Fuses `text`, expects `gelus` Gelu nodes and nothing else of the subgraph left (`nodes` nodes in
// all), the same outputs through ORT, and a second run that finds nothing to do.
void ExpectFused(const char* text, int gelus, int nodes, const ParityOptions& parity = {}) {
  const onnx::ModelProto model = ParseModel(text);
  FusionRun run = RunFusion(model, passes::MakeGeluFusion());
  ASSERT_FALSE(run.stats.empty());
  EXPECT_EQ(run.stats[0].fused, gelus) << run.Misses();
  EXPECT_TRUE(run.stats[0].misses.empty()) << run.Misses();
  EXPECT_EQ(CountGelu(run.after), gelus);
  EXPECT_EQ(CountOps(run.after, "Erf"), 0);
  EXPECT_EQ(run.after.graph().node_size(), nodes);
  ExpectSameOutputs(model, run.after, parity);

  FusionRun again = RunFusion(run.after, passes::MakeGeluFusion());
  ASSERT_FALSE(again.stats.empty());
  EXPECT_EQ(again.stats[0].candidates, 0);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again.after, run.after));
}

// Expects no Gelu and one miss whose reason contains `why`.
void ExpectNotFused(const char* text, const std::string& why) {
  FusionRun run = RunFusion(ParseModel(text), passes::MakeGeluFusion());
  ASSERT_FALSE(run.stats.empty());
  EXPECT_EQ(run.stats[0].fused, 0);
  EXPECT_EQ(CountGelu(run.after), 0);
  EXPECT_EQ(CountOps(run.after, "Erf"), 1);
  ASSERT_EQ(run.stats[0].misses.size(), 1u) << run.Misses();
  EXPECT_THAT(run.stats[0].misses[0], HasSubstr(why));
}

// ---- Positive: one per layout (exporter-layouts 2.8, 3.7, 5.3) --------------------------------

TEST(GeluFusionTest, Torch113HalfFirstWithConstantNodes) {
  // h = Mul(x, 0.5); g = Mul(h, 1 + erf(x / √2)), scalars as Constant nodes (layouts 2.8).
  ExpectFused(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] x) => (float[B, 8] y)
{
  half = Constant<value = float {0.5}>()
  h = Mul(x, half)
  root2 = Constant<value = float {1.4142135381698608}>()
  dv = Div(x, root2)
  er = Erf(dv)
  one = Constant<value = float {1.0}>()
  a1 = Add(er, one)
  y = Mul(h, a1)
}
)",
              1, 1);
}

TEST(GeluFusionTest, HalfFirstWithEveryOperandSwappedAndRankZeroInitializers) {
  ExpectFused(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, 8] x) => (float[B, 8] y)
<float half = {0.5}, float inv_root2 = {0.7071067690849304}, float one = {1.0}>
{
  h = Mul(half, x)
  t = Mul(inv_root2, x)
  er = Erf(t)
  a1 = Add(one, er)
  y = Mul(a1, h)
}
)",
              1, 1);
}

TEST(GeluFusionTest, HalfLastWithShapeOneInitializers) {
  // ORT's pattern file (layouts 5.3): Div(x, 1.4142099618911743) → Erf → Add(·, 1) → Mul(x, ·) →
  // Mul(·, 0.5).
  ExpectFused(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, 8] x) => (float[B, 8] y)
<float[1] root2 = {1.4142099618911743}, float[1] one = {1.0}, float[1] half = {0.5}>
{
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(er, one)
  m = Mul(x, a1)
  y = Mul(m, half)
}
)",
              1, 1);
}

TEST(GeluFusionTest, HalfLastSwapped) {
  ExpectFused(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, 8] x) => (float[B, 8] y)
<float root2 = {1.4142135381698608}, float one = {1.0}, float half = {0.5}>
{
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(one, er)
  m = Mul(a1, x)
  y = Mul(half, m)
}
)",
              1, 1);
}

TEST(GeluFusionTest, Keras161HalfOnTheSumFirst) {
  // t = Mul(0.7071, f); a = Add(e, 1); h = Mul(a, 0.5); g = Mul(h, f) (layouts 3.7).
  ExpectFused(R"(
<ir_version: 6, opset_import: ["" : 10]>
g (float[B, 8] x) => (float[B, 8] y)
<float inv_root2 = {0.7071067690849304}, float one = {1.0}, float half = {0.5}>
{
  t = Mul(inv_root2, x)
  er = Erf(t)
  a = Add(er, one)
  h = Mul(a, half)
  y = Mul(h, x)
}
)",
              1, 1);
}

TEST(GeluFusionTest, Keras165DivBySqrtOfTwo) {
  // t = Div(f, Sqrt(2.0)); a = Add(1, e); h = Mul(0.5, a); g = Mul(f, h) (layouts 3.7). The Sqrt
  // of a constant dies with the match.
  ExpectFused(R"(
<ir_version: 6, opset_import: ["" : 11]>
g (float[B, 8] x) => (float[B, 8] y)
<float two = {2.0}, float one = {1.0}, float half = {0.5}>
{
  root2 = Sqrt(two)
  t = Div(x, root2)
  er = Erf(t)
  a = Add(one, er)
  h = Mul(half, a)
  y = Mul(x, h)
}
)",
              1, 1);
}

TEST(GeluFusionTest, Float16RoundedSqrtTwoIsWithinTolerance) {
  // PyTorch 1.3's fp16 export stores √2 as 1.4140625; here in a float model, so the replaced math
  // differs from exact GELU by ~1e-5 and the parity check is loosened to match.
  ExpectFused(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] x) => (float[B, 8] y)
<float half = {0.5}, float root2 = {1.4140625}, float one = {1.0}>
{
  h = Mul(x, half)
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(er, one)
  y = Mul(h, a1)
}
)",
              1, 1, {.atol = 1e-4});
}

TEST(GeluFusionTest, Float16ModelAsPyTorch13ExportsIt) {
  // All values float16, √2 stored as 1.4140625 (exporter-layouts 2.11). The text syntax has no
  // float16 literals, so the float model is converted here.
  onnx::ModelProto model = ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] x) => (float[B, 8] y)
<float half = {0.5}, float root2 = {1.4140625}, float one = {1.0}>
{
  h = Mul(x, half)
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(er, one)
  y = Mul(h, a1)
}
)");
  onnx::GraphProto& g = *model.mutable_graph();
  for (onnx::TensorProto& t : *g.mutable_initializer()) {
    const float value = t.float_data(0);
    t.clear_float_data();
    t.set_data_type(onnx::TensorProto::FLOAT16);
    t.add_int32_data(ir::FloatToHalf(value));
  }
  for (auto* io : {g.mutable_input(0), g.mutable_output(0)}) {
    io->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT16);
  }
  FusionRun run = RunFusion(model, passes::MakeGeluFusion());
  EXPECT_EQ(CountGelu(run.after), 1) << run.Misses();
  EXPECT_EQ(run.after.graph().node_size(), 1);
  ExpectSameOutputs(model, run.after, {.rtol = 1e-2, .atol = 1e-3});
}

TEST(GeluFusionTest, ComputedInputWithOtherConsumersAndTwoGelus) {
  // x is the bias Add (read here 2x and by a residual); the second GELU reads the first one's
  // output. Only the intermediates must be private to the pattern, not x.
  ExpectFused(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] a, float[8] b) => (float[B, 8] y, float[B, 8] r)
<float half = {0.5}, float root2 = {1.4142135381698608}, float one = {1.0}>
{
  x = Add(b, a)
  h = Mul(x, half)
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(er, one)
  g1 = Mul(h, a1)
  r = Add(x, g1)
  h2 = Mul(g1, half)
  dv2 = Div(g1, root2)
  er2 = Erf(dv2)
  a2 = Add(er2, one)
  y = Mul(h2, a2)
}
)",
              2, 4);
}

TEST(GeluFusionTest, GeluReadsTheSameInputAndWritesTheOutputName) {
  const onnx::ModelProto model = ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] x) => (float[B, 8] y)
<float half = {0.5}, float root2 = {1.4142135381698608}, float one = {1.0}>
{
  h = Mul(x, half)
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(er, one)
  y = Mul(h, a1)
}
)");
  FusionRun run = RunFusion(model, passes::MakeGeluFusion());
  ASSERT_EQ(run.after.graph().node_size(), 1);
  const onnx::NodeProto& gelu = run.after.graph().node(0);
  EXPECT_EQ(gelu.domain(), "com.microsoft");
  ASSERT_EQ(gelu.input_size(), 1);
  EXPECT_EQ(gelu.input(0), "x");
  EXPECT_EQ(gelu.output(0), "y");
  EXPECT_EQ(run.after.graph().initializer_size(), 0) << "the dead constants are removed";
  bool imports_ms = false;
  for (const auto& opset : run.after.opset_import())
    imports_ms |= opset.domain() == "com.microsoft";
  EXPECT_TRUE(imports_ms);
}

// ---- Negative ---------------------------------------------------------------------------------

// The torch 1.13 layout with its constants as given.
std::string TorchLayoutWith(const std::string& root2, const std::string& one,
                            const std::string& half) {
  std::string text = R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] x) => (float[B, 8] y)
<float half = {HALF}, float root2 = {ROOT2}, float one = {ONE}>
{
  h = Mul(x, half)
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(er, one)
  y = Mul(h, a1)
}
)";
  for (const auto& [key, value] : {std::pair{"HALF", half}, {"ROOT2", root2}, {"ONE", one}}) {
    text.replace(text.find(key), std::string(key).size(), value);
  }
  return text;
}

TEST(GeluFusionTest, WrongConstantsDoNotFuse) {
  ExpectNotFused(TorchLayoutWith("2.0", "1.0", "0.5").c_str(), "'root2' is 2, expected 1.414");
  ExpectNotFused(TorchLayoutWith("1.4162", "1.0", "0.5").c_str(), "expected 1.414");
  ExpectNotFused(TorchLayoutWith("1.4142135", "2.0", "0.5").c_str(), "'one' is 2, expected 1");
  ExpectNotFused(TorchLayoutWith("1.4142135", "1.0", "0.6").c_str(), "'half' is 0.600000");
  ExpectNotFused(TorchLayoutWith("1.4142135", "1.0", "0.50001").c_str(), "expected 0.5");
}

TEST(GeluFusionTest, WrongConstantInTheHalfLastFormIsReported) {
  ExpectNotFused(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, 8] x) => (float[B, 8] y)
<float root2 = {1.4142135381698608}, float one = {1.0}, float half = {0.25}>
{
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(er, one)
  m = Mul(x, a1)
  y = Mul(m, half)
}
)",
                 "'half' is 0.25, expected 0.5");
}

TEST(GeluFusionTest, ScaleThatIsNotAConstantDoesNotFuse) {
  ExpectNotFused(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] x, float root2) => (float[B, 8] y)
<float half = {0.5}, float one = {1.0}>
{
  h = Mul(x, half)
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(er, one)
  y = Mul(h, a1)
}
)",
                 "'root2' is not a constant");
}

TEST(GeluFusionTest, IntermediateWithAnOutsideConsumerDoesNotFuse) {
  ExpectNotFused(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] x) => (float[B, 8] y, float[B, 8] z)
<float half = {0.5}, float root2 = {1.4142135381698608}, float one = {1.0}>
{
  h = Mul(x, half)
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(er, one)
  y = Mul(h, a1)
  z = Neg(er)
}
)",
                 "'er' (output of Erf producing 'er') is also read by Neg");
}

TEST(GeluFusionTest, IntermediateThatIsAGraphOutputDoesNotFuse) {
  ExpectNotFused(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] x) => (float[B, 8] y, float[B, 8] a1)
<float half = {0.5}, float root2 = {1.4142135381698608}, float one = {1.0}>
{
  h = Mul(x, half)
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(er, one)
  y = Mul(h, a1)
}
)",
                 "'a1' (output of Add producing 'a1') is a graph output");
}

TEST(GeluFusionTest, DifferentXAtTwoUsesDoesNotFuse) {
  ExpectNotFused(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] x, float[B, 8] z) => (float[B, 8] y)
<float half = {0.5}, float root2 = {1.4142135381698608}, float one = {1.0}>
{
  h = Mul(z, half)
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(er, one)
  y = Mul(h, a1)
}
)",
                 "'x' must be one value");
}

TEST(GeluFusionTest, DoubleHasNoGeluKernel) {
  ExpectNotFused(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (double[B, 8] x) => (double[B, 8] y)
<double half = {0.5}, double root2 = {1.4142135381698608}, double one = {1.0}>
{
  h = Mul(x, half)
  dv = Div(x, root2)
  er = Erf(dv)
  a1 = Add(er, one)
  y = Mul(h, a1)
}
)",
                 "'x' is DOUBLE, not float or float16");
}

TEST(GeluFusionTest, ErfNotAddedToOneIsAMissWithItsReason) {
  ExpectNotFused(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] x) => (float[B, 8] y)
<float root2 = {1.4142135381698608}>
{
  dv = Div(x, root2)
  er = Erf(dv)
  y = Neg(er)
}
)",
                 "'er' is not added to 1");
}

// torch 2.x's dynamo exporter at opset 20 writes the ONNX Gelu op: approximate="none" is
// com.microsoft Gelu, "tanh" FastGelu, both exactly (bias_gelu / fast_gelu then fold the bias).
TEST(GeluFusionTest, OnnxGeluOpOfOpset20) {
  ExpectFused(R"(
<ir_version: 9, opset_import: ["" : 20]>
g (float[N, 8] x) => (float[N, 8] y)
{
  y = Gelu(x)
}
)",
              1, 1);
  const onnx::ModelProto tanh = ParseModel(R"(
<ir_version: 9, opset_import: ["" : 20]>
g (float[N, 8] x) => (float[N, 8] y)
{
  y = Gelu<approximate = "tanh">(x)
}
)");
  FusionRun run = RunFusion(tanh, passes::MakeGeluFusion());
  EXPECT_EQ(CountOps(run.after, "FastGelu", "com.microsoft"), 1) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "Gelu"), 0);
  ExpectSameOutputs(tanh, run.after);
}

TEST(GeluFusionTest, OnnxGeluOfAnIntegerTypeOrUnknownApproximationStays) {
  const onnx::ModelProto odd = ParseModel(R"(
<ir_version: 9, opset_import: ["" : 20]>
g (float[N, 8] x) => (float[N, 8] y)
{
  y = Gelu<approximate = "cubic">(x)
}
)");
  FusionRun run = RunFusion(odd, passes::MakeGeluFusion());
  EXPECT_EQ(run.stats[0].fused, 0);
  EXPECT_THAT(run.Misses(), HasSubstr("approximate='cubic' is unknown"));
  EXPECT_EQ(CountOps(run.after, "Gelu"), 1);
}

}  // namespace
}  // namespace bertopt::testing
