// tanh GELU -> com.microsoft FastGelu: the tf2onnx layout (with its bias), torch's gelu_new, the
// factored form from ORT's pattern files, and what must not fuse.
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

int CountFastGelu(const onnx::ModelProto& m) { return CountOps(m, "FastGelu", "com.microsoft"); }

// The inputs of the one FastGelu node in `m`.
std::vector<std::string> FastGeluInputs(const onnx::ModelProto& m) {
  for (const auto& node : m.graph().node()) {
    if (node.op_type() == "FastGelu") return {node.input().begin(), node.input().end()};
  }
  return {};
}

// Fuses `text`, expects one FastGelu, `nodes` nodes in all, no Tanh, parity through ORT, and a
// second run that changes nothing. Returns the fused model.
onnx::ModelProto ExpectFusedOnce(const char* text, int nodes) {
  const onnx::ModelProto model = ParseModel(text);
  FusionRun run = RunFusion(model, passes::MakeFastGeluFusion());
  EXPECT_FALSE(run.stats.empty());
  if (run.stats.empty()) return {};
  EXPECT_EQ(run.stats[0].fused, 1) << run.Misses();
  EXPECT_TRUE(run.stats[0].misses.empty()) << run.Misses();
  EXPECT_EQ(CountFastGelu(run.after), 1);
  EXPECT_EQ(CountOps(run.after, "Tanh"), 0);
  EXPECT_EQ(run.after.graph().node_size(), nodes);
  ExpectSameOutputs(model, run.after);

  FusionRun again = RunFusion(run.after, passes::MakeFastGeluFusion());
  EXPECT_FALSE(again.stats.empty());
  if (!again.stats.empty()) EXPECT_EQ(again.stats[0].candidates, 0);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(again.after, run.after));
  return run.after;
}

// Expects no FastGelu and one miss whose reason contains `why`.
void ExpectNotFused(const std::string& text, const std::string& why) {
  FusionRun run = RunFusion(ParseModel(text), passes::MakeFastGeluFusion());
  ASSERT_FALSE(run.stats.empty());
  EXPECT_EQ(run.stats[0].fused, 0);
  EXPECT_EQ(CountFastGelu(run.after), 0);
  EXPECT_EQ(CountOps(run.after, "Tanh"), 1);
  ASSERT_EQ(run.stats[0].misses.size(), 1u) << run.Misses();
  EXPECT_THAT(run.stats[0].misses[0], HasSubstr(why));
}

// ---- Positive ---------------------------------------------------------------------------------

// tf2onnx 1.6 (exporter-layouts 4.5): 2-D activations, constants as rank-0 initializers.
constexpr const char* kTf2onnx = R"(
<ir_version: 6, opset_import: ["" : 11]>
g (float[N, 2] a) => (float[N, 3] y)
<float[2, 3] w = {0.5, -1.0, 0.25, 1.5, 0.75, -0.5}, float[3] bias = {0.1, -0.2, 0.3},
 float three = {3.0}, float cubic = {0.044714998453855515}, float root = {0.7978845834732056},
 float half = {0.5}, float one = {1.0}>
{
  mm = MatMul(a, w)
  f = Add(mm, bias)
  p = Pow(f, three)
  c = Mul(cubic, p)
  s = Add(f, c)
  t = Mul(root, s)
  th = Tanh(t)
  a1 = Add(one, th)
  h = Mul(half, a1)
  y = Mul(f, h)
}
)";

TEST(FastGeluFusionTest, Tf2onnxLayoutAbsorbsTheBias) {
  const onnx::ModelProto after = ExpectFusedOnce(kTf2onnx, 2);
  EXPECT_THAT(FastGeluInputs(after), ElementsAre("mm", "bias"));
  EXPECT_EQ(CountOps(after, "Add"), 0);
}

TEST(FastGeluFusionTest, TorchGeluNewWithBiasFirstAndCubeAsMuls) {
  // HF gelu_new exported by torch: 0.5 applied to x first, bias at Add input 0; x³ = x·(x·x).
  const onnx::ModelProto after = ExpectFusedOnce(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, S, 2] a) => (float[B, S, 3] y)
<float[2, 3] w = {0.5, -1.0, 0.25, 1.5, 0.75, -0.5}, float[3] bias = {0.1, -0.2, 0.3},
 float cubic = {0.044715}, float root = {0.7978845608}, float half = {0.5}, float one = {1.0}>
{
  mm = MatMul(a, w)
  f = Add(bias, mm)
  h = Mul(f, half)
  sq = Mul(f, f)
  cu = Mul(sq, f)
  c = Mul(cu, cubic)
  s = Add(c, f)
  t = Mul(s, root)
  th = Tanh(t)
  a1 = Add(th, one)
  y = Mul(h, a1)
}
)",
                                                 2);
  EXPECT_THAT(FastGeluInputs(after), ElementsAre("mm", "bias"));
}

TEST(FastGeluFusionTest, FactoredFormFromOrtPatternFiles) {
  // Mul(x, 0.0447) → Mul(x, ·) → Add(·, 1) → Mul(Mul(x, 0.7978), ·) → Tanh → Add(·, 1) →
  // Mul(Mul(x, 0.5), ·) (exporter-layouts 5.3); x is a graph input, so there is no bias.
  const onnx::ModelProto after = ExpectFusedOnce(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, 8] x) => (float[B, 8] y)
<float[1] cubic = {0.044714998453855515}, float[1] root = {0.7978845834732056},
 float[1] half = {0.5}, float[1] one = {1.0}>
{
  q = Mul(x, cubic)
  q2 = Mul(x, q)
  s = Add(q2, one)
  k = Mul(x, root)
  t = Mul(k, s)
  th = Tanh(t)
  a1 = Add(th, one)
  h = Mul(x, half)
  y = Mul(h, a1)
}
)",
                                                 1);
  EXPECT_THAT(FastGeluInputs(after), ElementsAre("x"));
}

TEST(FastGeluFusionTest, FactoredFormSwappedWithSquareFirstAndHalfLast) {
  ExpectFusedOnce(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, 8] x) => (float[B, 8] y)
<float cubic = {0.044715}, float root = {0.7978845608}, float half = {0.5}, float one = {1.0}>
{
  sq = Mul(x, x)
  q2 = Mul(cubic, sq)
  s = Add(one, q2)
  k = Mul(root, x)
  t = Mul(s, k)
  th = Tanh(t)
  a1 = Add(one, th)
  m = Mul(a1, x)
  y = Mul(half, m)
}
)",
                  1);
}

TEST(FastGeluFusionTest, HalfOnTheSumFirstWithPow) {
  // keras-style 0.5 placement, Mul(x, Mul(s, 0.5)), on the polynomial form.
  ExpectFusedOnce(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, 8] x) => (float[B, 8] y)
<float three = {3.0}, float cubic = {0.044715}, float root = {0.7978845608}, float half = {0.5},
 float one = {1.0}>
{
  p = Pow(x, three)
  c = Mul(p, cubic)
  s = Add(x, c)
  t = Mul(s, root)
  th = Tanh(t)
  a1 = Add(th, one)
  h = Mul(a1, half)
  y = Mul(x, h)
}
)",
                  1);
}

TEST(FastGeluFusionTest, BiasAddReadElsewhereStaysAndFastGeluTakesItsOutput) {
  // f also feeds a residual Add, so the bias Add must stay; FastGelu(f) is still exact.
  const onnx::ModelProto after = ExpectFusedOnce(R"(
<ir_version: 6, opset_import: ["" : 11]>
g (float[N, 2] a) => (float[N, 3] y, float[N, 3] r)
<float[2, 3] w = {0.5, -1.0, 0.25, 1.5, 0.75, -0.5}, float[3] bias = {0.1, -0.2, 0.3},
 float three = {3.0}, float cubic = {0.044715}, float root = {0.7978845608}, float half = {0.5},
 float one = {1.0}>
{
  mm = MatMul(a, w)
  f = Add(mm, bias)
  r = Add(f, f)
  p = Pow(f, three)
  c = Mul(cubic, p)
  s = Add(f, c)
  t = Mul(root, s)
  th = Tanh(t)
  a1 = Add(one, th)
  h = Mul(half, a1)
  y = Mul(f, h)
}
)",
                                                 4);
  EXPECT_THAT(FastGeluInputs(after), ElementsAre("f"));
}

TEST(FastGeluFusionTest, TwoDimensionalBiasIsNotAbsorbed) {
  const onnx::ModelProto after = ExpectFusedOnce(R"(
<ir_version: 6, opset_import: ["" : 11]>
g (float[N, 2] a) => (float[N, 3] y)
<float[2, 3] w = {0.5, -1.0, 0.25, 1.5, 0.75, -0.5}, float[1, 3] bias = {0.1, -0.2, 0.3},
 float three = {3.0}, float cubic = {0.044715}, float root = {0.7978845608}, float half = {0.5},
 float one = {1.0}>
{
  mm = MatMul(a, w)
  f = Add(mm, bias)
  p = Pow(f, three)
  c = Mul(cubic, p)
  s = Add(f, c)
  t = Mul(root, s)
  th = Tanh(t)
  a1 = Add(one, th)
  h = Mul(half, a1)
  y = Mul(f, h)
}
)",
                                                 3);
  EXPECT_THAT(FastGeluInputs(after), ElementsAre("f"));
}

// ---- Negative ---------------------------------------------------------------------------------

TEST(FastGeluFusionTest, PoolerTanhIsNotACandidate) {
  // BERT's pooler: Gemm → Tanh. A Tanh whose input no Mul computes is not even tried.
  const onnx::ModelProto model = ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[N, 2] a) => (float[N, 2] y)
<float[2, 2] w = {0.5, -1.0, 0.25, 1.5}, float[2] b = {0.1, -0.2}>
{
  d = Gemm<transB = 1>(a, w, b)
  y = Tanh(d)
}
)");
  FusionRun run = RunFusion(model, passes::MakeFastGeluFusion());
  ASSERT_FALSE(run.stats.empty());
  EXPECT_EQ(run.stats[0].candidates, 0);
  EXPECT_TRUE(run.stats[0].misses.empty()) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "Tanh"), 1);
  EXPECT_EQ(CountFastGelu(run.after), 0);
}

TEST(FastGeluFusionTest, TanhOfAScaledValueWithoutTheCubicIsAMiss) {
  // 0.5·x·(1 + tanh(0.7978·x)) looks like the start of the pattern but lacks the polynomial.
  ExpectNotFused(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, 8] x) => (float[B, 8] y)
<float root = {0.7978845608}, float half = {0.5}, float one = {1.0}>
{
  t = Mul(x, root)
  th = Tanh(t)
  a1 = Add(th, one)
  h = Mul(x, half)
  y = Mul(h, a1)
}
)",
                 "the Tanh input 't' is not sqrt(2/pi)*(x + 0.044715*x^3)");
}

// The tf2onnx layout with one piece replaced.
std::string Tf2onnxWith(const std::string& from, const std::string& to) {
  std::string text = kTf2onnx;
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

TEST(FastGeluFusionTest, WrongConstantsDoNotFuse) {
  ExpectNotFused(Tf2onnxWith("root = {0.7978845834732056}", "root = {0.8}"),
                 "'root' is 0.800000011920929, expected 0.797884");
  ExpectNotFused(Tf2onnxWith("cubic = {0.044714998453855515}", "cubic = {0.045}"),
                 "expected 0.044715");
  ExpectNotFused(Tf2onnxWith("three = {3.0}", "three = {2.0}"), "'three' is 2, expected 3");
  ExpectNotFused(Tf2onnxWith("half = {0.5}", "half = {0.25}"), "'half' is 0.25, expected 0.5");
  ExpectNotFused(Tf2onnxWith("a1 = Add(one, th)", "a1 = Add(three, th)"),
                 "'three' is 3, expected 1");
}

TEST(FastGeluFusionTest, IntermediateWithAnOutsideConsumerDoesNotFuse) {
  std::string text = Tf2onnxWith("=> (float[N, 3] y)", "=> (float[N, 3] y, float[N, 3] z)");
  text = text.replace(text.rfind('}'), 1, "  z = Neg(th)\n}");
  ExpectNotFused(text, "'th' (output of Tanh producing 'th') is also read by Neg");
}

TEST(FastGeluFusionTest, IntermediateThatIsAGraphOutputDoesNotFuse) {
  ExpectNotFused(Tf2onnxWith("=> (float[N, 3] y)", "=> (float[N, 3] y, float[N, 3] s)"),
                 "'s' (output of Add producing 's') is a graph output");
}

TEST(FastGeluFusionTest, DifferentXAtTwoUsesDoesNotFuse) {
  std::string text = Tf2onnxWith("p = Pow(f, three)", "p = Pow(mm, three)");
  ExpectNotFused(text, "'x' must be one value");
}

}  // namespace
}  // namespace bertopt::testing
