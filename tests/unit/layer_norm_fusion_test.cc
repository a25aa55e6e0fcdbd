#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "fusion_test_util.h"
#include "passes/convert/float16.h"
#include "passes/fusions/fusions.h"
#include "test_models.h"

namespace bertopt::testing {
namespace {

using ::testing::HasSubstr;

// torch 1.13 at opset 11 (exporter-layouts 2.5): every scalar a Constant node.
constexpr const char* kTorchLayerNorm = R"(
<ir_version: 6, opset_import: ["" : 11]>
g (float[N, S, 4] x) => (float[N, S, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0}>
{
  two = Constant<value = float {2.0}>()
  eps = Constant<value = float {1e-12}>()
  mean = ReduceMean<axes = [-1]>(x)
  d = Sub(x, mean)
  sq = Pow(d, two)
  var = ReduceMean<axes = [-1]>(sq)
  var_eps = Add(var, eps)
  stddev = Sqrt(var_eps)
  normalized = Div(d, stddev)
  scaled = Mul(normalized, gamma)
  y = Add(scaled, beta)
}
)";

// The same with every commutative Add/Mul written the other way round.
constexpr const char* kTorchSwapped = R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[N, S, 4] x) => (float[N, S, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0}>
{
  two = Constant<value = float {2.0}>()
  eps = Constant<value = float {1e-5}>()
  mean = ReduceMean<axes = [-1]>(x)
  d = Sub(x, mean)
  sq = Pow(d, two)
  var = ReduceMean<axes = [-1]>(sq)
  var_eps = Add(eps, var)
  stddev = Sqrt(var_eps)
  normalized = Div(d, stddev)
  scaled = Mul(gamma, normalized)
  y = Add(beta, scaled)
}
)";

// Older PyTorch: x - mean computed twice, once for the variance and once for the division.
constexpr const char* kTorchTwoSubs = R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[N, S, 4] x) => (float[N, S, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0}>
{
  two = Constant<value = float {2.0}>()
  eps = Constant<value = float {1e-12}>()
  mean = ReduceMean<axes = [-1]>(x)
  d_for_var = Sub(x, mean)
  d = Sub(x, mean)
  sq = Pow(d_for_var, two)
  var = ReduceMean<axes = [-1]>(sq)
  var_eps = Add(var, eps)
  stddev = Sqrt(var_eps)
  normalized = Div(d, stddev)
  scaled = Mul(normalized, gamma)
  y = Add(scaled, beta)
}
)";

// ORT's test variant: a Cast(to=float) of the float difference.
constexpr const char* kTorchCast = R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[N, S, 4] x) => (float[N, S, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0}>
{
  two = Constant<value = float {2.0}>()
  eps = Constant<value = float {1e-12}>()
  mean = ReduceMean<axes = [-1]>(x)
  d = Sub(x, mean)
  d_float = Cast<to = 1>(d)
  sq = Pow(d_float, two)
  var = ReduceMean<axes = [-1]>(sq)
  var_eps = Add(var, eps)
  stddev = Sqrt(var_eps)
  normalized = Div(d_float, stddev)
  scaled = Mul(normalized, gamma)
  y = Add(scaled, beta)
}
)";

// Opset 18 moved ReduceMean's axes to an input.
constexpr const char* kTorchOpset18 = R"(
<ir_version: 8, opset_import: ["" : 18]>
g (float[N, S, 4] x) => (float[N, S, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0},
 int64[1] last = {-1}, float two = {2.0}, float eps = {1e-12}>
{
  mean = ReduceMean(x, last)
  d = Sub(x, mean)
  sq = Pow(d, two)
  var = ReduceMean(sq, last)
  var_eps = Add(var, eps)
  stddev = Sqrt(var_eps)
  normalized = Div(d, stddev)
  scaled = Mul(normalized, gamma)
  y = Add(scaled, beta)
}
)";

// keras2onnx 1.6.5 / tf2onnx (exporter-layouts 3.3): scalars are initializers, axes positive.
constexpr const char* kTfLayerNorm = R"(
<ir_version: 6, opset_import: ["" : 11]>
g (float[N, 5, 4] x) => (float[N, 5, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0}, float eps = {1e-12}>
{
  mean = ReduceMean<axes = [2], keepdims = 1>(x)
  d = Sub(x, mean)
  sq = Mul(d, d)
  var = ReduceMean<axes = [2], keepdims = 1>(sq)
  var_eps = Add(var, eps)
  stddev = Sqrt(var_eps)
  inv = Reciprocal(stddev)
  k = Mul(inv, gamma)
  xk = Mul(x, k)
  mk = Mul(mean, k)
  shift = Sub(beta, mk)
  y = Add(xk, shift)
}
)";

// keras2onnx 1.6.1: mean - x, and x / mean at input 1 of their Muls.
constexpr const char* kTf161LayerNorm = R"(
<ir_version: 6, opset_import: ["" : 10]>
g (float[N, 5, 4] x) => (float[N, 5, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0}, float eps = {1e-12}>
{
  mean = ReduceMean<axes = [2], keepdims = 1>(x)
  d = Sub(mean, x)
  sq = Mul(d, d)
  var = ReduceMean<axes = [2], keepdims = 1>(sq)
  var_eps = Add(eps, var)
  stddev = Sqrt(var_eps)
  inv = Reciprocal(stddev)
  k = Mul(inv, gamma)
  xk = Mul(k, x)
  mk = Mul(k, mean)
  shift = Sub(beta, mk)
  y = Add(xk, shift)
}
)";

// tf2onnx with Keras 3 (real tf2onnx 1.17 exports): the shift is Add(Mul(Neg(mean), k), beta), and
// gamma / beta are stored as [1, 1, H].
constexpr const char* kKeras3LayerNorm = R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 5, 4] x) => (float[N, 5, 4] y)
<float[1, 1, 4] gamma = {1.5, 0.5, -1.0, 2.0}, float[1, 1, 4] beta = {0.1, -0.2, 0.3, 0.0},
 float eps = {1e-6}>
{
  mean = ReduceMean<axes = [2], keepdims = 1>(x)
  neg_mean = Neg(mean)
  d = Sub(x, mean)
  sq = Mul(d, d)
  var = ReduceMean<axes = [2], keepdims = 1>(sq)
  var_eps = Add(var, eps)
  stddev = Sqrt(var_eps)
  inv = Reciprocal(stddev)
  k = Mul(inv, gamma)
  xk = Mul(x, k)
  mk = Mul(neg_mean, k)
  shift = Add(mk, beta)
  y = Add(xk, shift)
}
)";

// `text` with the first occurrence of `from` replaced by `to` (which must exist).
std::string Replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "test model has no '" << from << "'";
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

FusionRun Fuse(const onnx::ModelProto& model) {
  return RunFusion(model, passes::MakeLayerNormFusion());
}

const onnx::NodeProto* FindNode(const onnx::ModelProto& model, const std::string& op_type) {
  for (const auto& node : model.graph().node()) {
    if (node.op_type() == op_type) return &node;
  }
  return nullptr;
}

float FloatAttr(const onnx::NodeProto& node, const std::string& name) {
  for (const auto& a : node.attribute()) {
    if (a.name() == name) return a.f();
  }
  ADD_FAILURE() << "no attribute " << name;
  return 0;
}

// What every positive test checks: `count` LayerNormalization nodes and none of the decomposed
// math left, a second run that changes nothing, and the same outputs through ORT.
FusionRun ExpectFused(const std::string& text, int count = 1) {
  const onnx::ModelProto model = ParseModel(text);
  FusionRun run = Fuse(model);
  EXPECT_EQ(CountOps(run.after, "LayerNormalization"), count) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "ReduceMean"), 0);
  EXPECT_EQ(CountOps(run.after, "Sqrt"), 0);
  FusionRun again = Fuse(run.after);
  EXPECT_EQ(again.stats.at(0).fused, 0);
  EXPECT_EQ(again.after.graph().node_size(), run.after.graph().node_size());
  EXPECT_TRUE(ExpectSameOutputs(model, run.after));
  return run;
}

// What every negative test checks: nothing fused, the graph unchanged in size. Returns the misses.
std::string ExpectNotFused(const std::string& text) {
  const onnx::ModelProto model = ParseModel(text);
  FusionRun run = Fuse(model);
  EXPECT_EQ(CountOps(run.after, "LayerNormalization"), 0);
  EXPECT_EQ(run.stats.at(0).fused, 0);
  EXPECT_EQ(run.after.graph().node_size(), model.graph().node_size());
  EXPECT_FALSE(run.Misses().empty());
  return run.Misses();
}

TEST(LayerNormFusionTest, TorchFormBecomesOneLayerNormalization) {
  FusionRun run = ExpectFused(kTorchLayerNorm);
  const onnx::NodeProto* ln = FindNode(run.after, "LayerNormalization");
  ASSERT_NE(ln, nullptr);
  EXPECT_EQ(ln->domain(), "");
  ASSERT_EQ(ln->input_size(), 3);
  EXPECT_EQ(ln->input(0), "x");
  EXPECT_EQ(ln->input(1), "gamma");
  EXPECT_EQ(ln->input(2), "beta");
  EXPECT_EQ(ln->output(0), "y");
  EXPECT_FLOAT_EQ(FloatAttr(*ln, "epsilon"), 1e-12f);
  EXPECT_EQ(run.after.graph().node_size(), 1) << "the Constants die with the pattern";
}

TEST(LayerNormFusionTest, ConstantsOnEitherSideOfAddAndMul) {
  FusionRun run = ExpectFused(kTorchSwapped);
  const onnx::NodeProto* ln = FindNode(run.after, "LayerNormalization");
  ASSERT_NE(ln, nullptr);
  EXPECT_FLOAT_EQ(FloatAttr(*ln, "epsilon"), 1e-5f);
}

TEST(LayerNormFusionTest, TwoSubNodesOfTheSameInputs) { ExpectFused(kTorchTwoSubs); }

TEST(LayerNormFusionTest, CastToTheSameTypeAfterSub) { ExpectFused(kTorchCast); }

TEST(LayerNormFusionTest, AxesAsInputAtOpset18) { ExpectFused(kTorchOpset18); }

TEST(LayerNormFusionTest, LastAxisAsAPositiveNumberWhenTheRankIsKnown) {
  ExpectFused(Replaced(Replaced(kTorchLayerNorm, "axes = [-1]", "axes = [2]"), "axes = [-1]",
                       "axes = [2]"));
}

TEST(LayerNormFusionTest, TfFormKeras165) {
  FusionRun run = ExpectFused(kTfLayerNorm);
  const onnx::NodeProto* ln = FindNode(run.after, "LayerNormalization");
  ASSERT_NE(ln, nullptr);
  EXPECT_EQ(ln->input(0), "x");
}

TEST(LayerNormFusionTest, TfFormKeras161FindsXByTheReduceMeanNotByPosition) {
  FusionRun run = ExpectFused(kTf161LayerNorm);
  const onnx::NodeProto* ln = FindNode(run.after, "LayerNormalization");
  ASSERT_NE(ln, nullptr);
  EXPECT_EQ(ln->input(0), "x") << "input 0 of Mul(k, x) is k, not x";
}

TEST(LayerNormFusionTest, TfFormKeras3NegatedMeanShift) {
  FusionRun run = ExpectFused(kKeras3LayerNorm);
  const onnx::NodeProto* ln = FindNode(run.after, "LayerNormalization");
  ASSERT_NE(ln, nullptr);
  EXPECT_EQ(ln->input(0), "x");
  EXPECT_FLOAT_EQ(FloatAttr(*ln, "epsilon"), 1e-6f);
  EXPECT_EQ(CountOps(run.after, "Neg"), 0);
  EXPECT_EQ(run.after.graph().node_size(), 1);
}

TEST(LayerNormFusionTest, TfFormKeras3EitherOrderOfTheOuterAdds) {
  ExpectFused(Replaced(kKeras3LayerNorm, "y = Add(xk, shift)", "y = Add(shift, xk)"));
  ExpectFused(Replaced(kKeras3LayerNorm, "shift = Add(mk, beta)", "shift = Add(beta, mk)"));
  ExpectFused(Replaced(Replaced(kKeras3LayerNorm, "y = Add(xk, shift)", "y = Add(shift, xk)"),
                       "mk = Mul(neg_mean, k)", "mk = Mul(k, neg_mean)"));
}

TEST(LayerNormFusionTest, EveryLayerNormOfAChain) {
  // Two LayerNorms in a row: the second one reads the first one's output.
  const std::string second = R"(
  two2 = Constant<value = float {2.0}>()
  eps2 = Constant<value = float {1e-12}>()
  mean2 = ReduceMean<axes = [-1]>(y1)
  d2 = Sub(y1, mean2)
  sq2 = Pow(d2, two2)
  var2 = ReduceMean<axes = [-1]>(sq2)
  var_eps2 = Add(var2, eps2)
  stddev2 = Sqrt(var_eps2)
  normalized2 = Div(d2, stddev2)
  scaled2 = Mul(normalized2, beta)
  y = Add(scaled2, gamma)
}
)";
  std::string text =
      Replaced(kTorchLayerNorm, "y = Add(scaled, beta)\n}\n", "y1 = Add(scaled, beta)\n");
  ExpectFused(text + second, 2);
}

// --- Must not fuse -----------------------------------------------------------------------------

TEST(LayerNormFusionTest, IntermediateReadOutsideThePattern) {
  const std::string text = Replaced(
      Replaced(kTorchLayerNorm, "=> (float[N, S, 4] y)", "=> (float[N, S, 4] y, float[N, S, 4] z)"),
      "y = Add(scaled, beta)", "y = Add(scaled, beta)\n  z = Neg(d)");
  EXPECT_THAT(ExpectNotFused(text),
              HasSubstr("'d' (output of Sub producing 'd') is also read by Neg"));
}

TEST(LayerNormFusionTest, IntermediateIsAGraphOutput) {
  const std::string text = Replaced(kTorchLayerNorm, "=> (float[N, S, 4] y)",
                                    "=> (float[N, S, 4] y, float[N, S, 1] mean)");
  EXPECT_THAT(ExpectNotFused(text),
              HasSubstr("'mean' (output of ReduceMean producing 'mean') is a graph output"));
}

TEST(LayerNormFusionTest, GammaIsAGraphInput) {
  const std::string text = Replaced(
      Replaced(kTorchLayerNorm, "(float[N, S, 4] x)", "(float[N, S, 4] x, float[4] gamma)"),
      "<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, ", "<");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("'gamma' is not a constant"));
}

// tf2onnx with Keras 3 stores gamma and beta as [1, 1, H]: over a 3-D x that is [H].
TEST(LayerNormFusionTest, GammaWithLeadingOnesIsAVector) {
  const std::string text = Replaced(kTorchLayerNorm, "float[4] gamma = {1.5, 0.5, -1.0, 2.0}",
                                    "float[1, 1, 4] gamma = {1.5, 0.5, -1.0, 2.0}");
  ExpectFused(text);
}

TEST(LayerNormFusionTest, GammaNot1D) {
  const std::string text = Replaced(kTorchLayerNorm, "float[4] gamma = {1.5, 0.5, -1.0, 2.0}",
                                    "float[2, 4] gamma = {1.5, 0.5, -1.0, 2.0, 1, 1, 1, 1}");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("gamma 'gamma' is not 1-D"));
}

// A [1, 1, 1, H] gamma over a 3-D x makes the result 4-D: not a LayerNormalization.
TEST(LayerNormFusionTest, GammaOfHigherRankThanX) {
  const std::string text = Replaced(kTorchLayerNorm, "float[4] gamma = {1.5, 0.5, -1.0, 2.0}",
                                    "float[1, 1, 1, 4] gamma = {1.5, 0.5, -1.0, 2.0}");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("gamma 'gamma' is not 1-D"));
}

TEST(LayerNormFusionTest, GammaThatBroadcastsInsteadOfMatchingTheHiddenSize) {
  const std::string text = Replaced(
      Replaced(kTorchLayerNorm, "float[4] gamma = {1.5, 0.5, -1.0, 2.0}", "float[1] gamma = {1.5}"),
      "float[4] beta = {0.1, -0.2, 0.3, 0.0}", "float[1] beta = {0.1}");
  EXPECT_THAT(ExpectNotFused(text),
              HasSubstr("gamma 'gamma' has length 1, but 'x' has last dim 4"));
}

TEST(LayerNormFusionTest, UnknownHiddenSize) {
  const std::string text =
      Replaced(Replaced(kTorchLayerNorm, "(float[N, S, 4] x)", "(float[N, S, H] x)"),
               "=> (float[N, S, 4] y)", "=> (float[N, S, H] y)");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("the last dim of 'x' is unknown"));
}

TEST(LayerNormFusionTest, ReductionOverMoreThanTheLastAxis) {
  const std::string text = Replaced(kTorchLayerNorm, "mean = ReduceMean<axes = [-1]>",
                                    "mean = ReduceMean<axes = [-2, -1]>");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("reduces axes [-2, -1], not the last axis only"));
}

TEST(LayerNormFusionTest, ReductionOverAnotherAxis) {
  const std::string text =
      Replaced(kTorchLayerNorm, "var = ReduceMean<axes = [-1]>", "var = ReduceMean<axes = [1]>");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("reduces axes [1], not the last axis only"));
}

TEST(LayerNormFusionTest, ReductionWithoutKeepdims) {
  const std::string text = Replaced(kTorchLayerNorm, "var = ReduceMean<axes = [-1]>",
                                    "var = ReduceMean<axes = [-1], keepdims = 0>");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("keepdims=0"));
}

TEST(LayerNormFusionTest, PowerOtherThanTwo) {
  const std::string text = Replaced(kTorchLayerNorm, "float {2.0}", "float {3.0}");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("is 3, expected 2"));
}

TEST(LayerNormFusionTest, EpsilonTooLarge) {
  const std::string text = Replaced(kTorchLayerNorm, "float {1e-12}", "float {0.01}");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("epsilon 0.01 of 'eps' is not in (0, 0.0001]"));
}

TEST(LayerNormFusionTest, EpsilonZeroInAFloat32Model) {
  const std::string text = Replaced(kTorchLayerNorm, "float {1e-12}", "float {0.0}");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("epsilon 0 of 'eps' is not in (0, 0.0001]"));
}

// A model.half() export: every value float16, BERT's 1e-12 underflowed to a float16 0
// (exporter-layouts 2.11). It fuses with the 0 it computes with. (The text syntax has no float16
// literals: the float32 model is converted, inputs and outputs included.)
TEST(LayerNormFusionTest, Float16EpsilonZeroAsInFloat16Exports) {
  onnx::ModelProto model = ParseModel(Replaced(kTorchLayerNorm, "float {1e-12}", "float {0.0}"));
  auto graph = ir::Graph::Build(&model);
  ASSERT_TRUE(graph.ok());
  ASSERT_TRUE(passes::ConvertToFloat16(**graph, {.keep_io_types = false}).ok());
  (*graph)->Commit();
  FusionRun run = Fuse(model);
  ASSERT_EQ(CountOps(run.after, "LayerNormalization"), 1) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "ReduceMean"), 0);
  EXPECT_FLOAT_EQ(FloatAttr(*FindNode(run.after, "LayerNormalization"), "epsilon"), 0.0f);
  ExpectSameOutputs(model, run.after, {.rtol = 1e-2, .atol = 1e-2});
}

TEST(LayerNormFusionTest, SubReadsAnotherTensorThanTheReduceMean) {
  // ORT's sample: mean of x + x2, but the difference taken from x alone.
  const std::string text = Replaced(
      Replaced(kTorchLayerNorm, "(float[N, S, 4] x)", "(float[N, S, 4] x, float[N, S, 4] x2)"),
      "mean = ReduceMean<axes = [-1]>(x)",
      "x_sum = Add(x, x2)\n  mean = ReduceMean<axes = [-1]>(x_sum)");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("'x' must be one value"));
}

TEST(LayerNormFusionTest, CastThatChangesTheType) {
  // float16 x - mean, cast to float: LayerNormalization(x) would compute and return float16.
  const std::string text = Replaced(kTorchCast, "(float[N, S, 4] x)", "(float16[N, S, 4] x)");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("the Cast changes the element type (10 to 1)"));
}

TEST(LayerNormFusionTest, TfSquareOfTwoDifferentValues) {
  // d * (mean - x) is -d^2: not a variance.
  const std::string text =
      Replaced(kTfLayerNorm, "sq = Mul(d, d)", "neg_d = Sub(mean, x)\n  sq = Mul(d, neg_d)");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("'diff' must be one node"));
}

// Keras 3 form whose shift negates the mean of another tensor: y = x·k - mean(x2)·k + beta.
TEST(LayerNormFusionTest, TfKeras3NegOfAnotherMean) {
  const std::string text = Replaced(
      Replaced(kKeras3LayerNorm, "(float[N, 5, 4] x)", "(float[N, 5, 4] x, float[N, 5, 4] x2)"),
      "neg_mean = Neg(mean)",
      "mean2 = ReduceMean<axes = [2], keepdims = 1>(x2)\n  neg_mean = Neg(mean2)");
  EXPECT_THAT(ExpectNotFused(text),
              HasSubstr("'mean' must be one node but is both ReduceMean producing 'mean' and "
                        "ReduceMean producing 'mean2'"));
}

TEST(LayerNormFusionTest, SqrtOutsideALayerNorm) {
  const std::string text = R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[4] x) => (float[4] y)
{
  y = Sqrt(x)
}
)";
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("'y' is not divided by"));
}

}  // namespace
}  // namespace bertopt::testing
