#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "fusion_test_util.h"
#include "passes/fusions/fusions.h"
#include "test_models.h"

namespace bertopt::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The residual of a BERT layer (exporter-layouts 2.6, 2.8): dense layer, residual Add, LN.
constexpr const char* kDenseResidual = R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[B, S, 4] x, float[B, S, 4] h) => (float[B, S, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0},
 float[4, 4] w = {0.5, -0.25, 0.1, 0.3, -0.4, 0.2, 0.6, -0.1,
                  0.3, 0.3, -0.5, 0.2, 0.1, -0.6, 0.4, 0.25},
 float[4] bias = {0.05, -0.1, 0.2, -0.3}>
{
  mm = MatMul(h, w)
  dense = Add(mm, bias)
  sum = Add(dense, x)
  y = LayerNormalization<axis = -1, epsilon = 1e-12>(sum, gamma, beta)
}
)";

// torch 1.13 order: bias first in the dense Add, and (as in some layers) the residual first.
constexpr const char* kDenseResidualSwapped = R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[B, S, 4] x, float[B, S, 4] h) => (float[B, S, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0},
 float[4, 4] w = {0.5, -0.25, 0.1, 0.3, -0.4, 0.2, 0.6, -0.1,
                  0.3, 0.3, -0.5, 0.2, 0.1, -0.6, 0.4, 0.25},
 float[4] bias = {0.05, -0.1, 0.2, -0.3}>
{
  mm = MatMul(h, w)
  dense = Add(bias, mm)
  sum = Add(x, dense)
  y = LayerNormalization<axis = -1, epsilon = 1e-12>(sum, gamma, beta)
}
)";

// Two activations added, no dense layer.
constexpr const char* kPlainResidual = R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[B, S, 4] x, float[B, S, 4] h) => (float[B, S, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0}>
{
  sum = Add(x, h)
  y = LayerNormalization<epsilon = 1e-12>(sum, gamma, beta)
}
)";

// An opset-11 export: the LayerNorm is decomposed until layer_norm runs.
constexpr const char* kDecomposedAtOpset11 = R"(
<ir_version: 6, opset_import: ["" : 11]>
g (float[B, S, 4] x, float[B, S, 4] h) => (float[B, S, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0},
 float[4, 4] w = {0.5, -0.25, 0.1, 0.3, -0.4, 0.2, 0.6, -0.1,
                  0.3, 0.3, -0.5, 0.2, 0.1, -0.6, 0.4, 0.25},
 float[4] bias = {0.05, -0.1, 0.2, -0.3}>
{
  mm = MatMul(h, w)
  dense = Add(bias, mm)
  sum = Add(dense, x)
  two = Constant<value = float {2.0}>()
  eps = Constant<value = float {1e-12}>()
  mean = ReduceMean<axes = [-1]>(sum)
  d = Sub(sum, mean)
  sq = Pow(d, two)
  var = ReduceMean<axes = [-1]>(sq)
  var_eps = Add(var, eps)
  stddev = Sqrt(var_eps)
  normalized = Div(d, stddev)
  scaled = Mul(normalized, gamma)
  y = Add(scaled, beta)
}
)";

// The dense input comes from torch's merge-heads Reshape, whose target is built from Shape(t):
// ONNX shape inference knows nothing about `merged`, SymbolicDims proves it is [B, S, 4].
constexpr const char* kDenseAfterDynamicReshape = R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[B, S, 2, 2] t, float[B, S, 4] x) => (float[B, S, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0},
 float[4, 4] w = {0.5, -0.25, 0.1, 0.3, -0.4, 0.2, 0.6, -0.1,
                  0.3, 0.3, -0.5, 0.2, 0.1, -0.6, 0.4, 0.25},
 float[4] bias = {0.05, -0.1, 0.2, -0.3},
 int64 zero = {0}, int64 one = {1}, int64[1] axis0 = {0}, int64[1] hidden = {4}>
{
  shape_a = Shape(t)
  batch = Gather(shape_a, zero)
  shape_b = Shape(t)
  seq = Gather(shape_b, one)
  batch_1d = Unsqueeze(batch, axis0)
  seq_1d = Unsqueeze(seq, axis0)
  target = Concat<axis = 0>(batch_1d, seq_1d, hidden)
  merged = Reshape(t, target)
  mm = MatMul(merged, w)
  dense = Add(bias, mm)
  sum = Add(dense, x)
  y = LayerNormalization<epsilon = 1e-12>(sum, gamma, beta)
}
)";

// One encoder layer once embed_layer_norm, attention and bias_gelu have run (exporter-layouts
// 1.2): ONNX shape inference knows none of the com.microsoft ops, so every residual operand's
// shape is proven through them.
constexpr const char* kFusedEncoderLayer = R"(
<ir_version: 8, opset_import: ["" : 17, "com.microsoft" : 1]>
g (int32[B, S] ids, int32[B, S] segment, int32[B, S] mask) => (float[B, S, 4] y)
<float[10, 4] word = {-0.26, 0.04, -0.13, 0.10, 0.13, -0.43, -0.49, 0.34, -0.24, -0.27, 0.50, -0.03,
   0.34, -0.02, 0.14, -0.35, 0.13, 0.37, 0.02, 0.24, 0.17, -0.44, 0.26, 0.09, -0.20, -0.47, 0.37,
   -0.03, 0.22, 0.38, 0.21, 0.42, -0.11, 0.30, -0.06, 0.44, 0.38, -0.40, -0.36, -0.28},
 float[8, 4] position = {0.47, -0.06, 0.13, -0.20, 0.01, -0.11, -0.15, 0.09, 0.08, 0.40, 0.18, 0.43,
   0.36, 0.49, 0.17, -0.34, 0.36, 0.46, 0.40, 0.07, 0.21, -0.29, 0.33, 0.07, -0.22, -0.44, 0.35,
   0.49, -0.41, 0.30, -0.09, -0.35},
 float[2, 4] segment_table = {-0.21, 0.27, 0.37, -0.46, 0.11, -0.46, 0.22, -0.17},
 float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0},
 float[4, 12] qkv = {0.38, 0.48, 0.01, 0.50, -0.19, -0.42, 0.10, -0.47, -0.30, -0.09, 0.11, -0.34,
   -0.46, 0.37, -0.19, 0.46, 0.40, -0.12, -0.04, 0.02, 0.14, 0.10, 0.06, 0.12, 0.44, 0.01, -0.07,
   0.22, -0.26, -0.20, 0.48, 0.02, 0.05, -0.49, -0.08, 0.08, -0.48, 0.12, 0.13, -0.44, 0.13, -0.03,
   0.18, -0.15, 0.21, 0.24, -0.48, -0.44},
 float[12] qkv_bias = {0.04, 0.09, -0.05, -0.01, 0.02, -0.04,
                       -0.03, -0.04, -0.03, 0.02, -0.04, -0.02},
 float[4, 4] wo = {0.27, -0.47, 0.07, 0.24, -0.19, -0.28, 0.30, -0.26, -0.31, -0.06, 0.20, -0.40,
   -0.18, -0.17, 0.33, -0.06},
 float[4] bo = {0.07, -0.07, -0.03, 0.03},
 float[4, 8] wi = {0.38, -0.05, -0.27, -0.38, 0.03, -0.31, 0.31, 0.34,
                   -0.32, -0.22, 0.31, 0.14, 0.31, -0.15, -0.37, -0.21,
                   0.29, -0.23, -0.15, -0.08, -0.08, -0.09, 0.42, -0.34,
                   -0.50, 0.44, 0.38, 0.49, -0.07, 0.45, 0.43, -0.28},
 float[8] bi = {0.05, 0.07, 0.03, 0.00, -0.04, -0.03, -0.05, -0.09},
 float[8, 4] wo2 = {0.09, -0.21, 0.31, -0.45, 0.40, 0.19, 0.42, 0.40,
                    0.40, 0.08, -0.49, 0.25, -0.33, -0.20, 0.16, 0.02,
                    -0.09, 0.44, 0.11, -0.16, -0.25, 0.36, -0.02, 0.28,
                    -0.15, -0.30, 0.03, 0.32, -0.33, 0.29, 0.42, 0.31},
 float[4] bo2 = {0.06, -0.10, 0.03, 0.07}>
{
  x0, mask_index = com.microsoft.EmbedLayerNormalization<epsilon = 1e-12>(
      ids, segment, word, position, segment_table, gamma, beta, mask)
  context = com.microsoft.Attention<num_heads = 2>(x0, qkv, qkv_bias, mask_index)
  attention_mm = MatMul(context, wo)
  attention_dense = Add(bo, attention_mm)
  sum1 = Add(attention_dense, x0)
  y1 = LayerNormalization<epsilon = 1e-12>(sum1, gamma, beta)
  intermediate_mm = MatMul(y1, wi)
  intermediate = com.microsoft.BiasGelu(intermediate_mm, bi)
  output_mm = MatMul(intermediate, wo2)
  output_dense = Add(bo2, output_mm)
  sum2 = Add(output_dense, y1)
  y = LayerNormalization<epsilon = 1e-12>(sum2, beta, gamma)
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
  return RunFusion(model, passes::MakeSkipLayerNormFusion());
}

const onnx::NodeProto& SkipLn(const onnx::ModelProto& model) {
  for (const auto& node : model.graph().node()) {
    if (node.op_type() == "SkipLayerNormalization") return node;
  }
  static const onnx::NodeProto kNone;
  ADD_FAILURE() << "no SkipLayerNormalization";
  return kNone;
}

std::vector<std::string> Inputs(const onnx::NodeProto& node) {
  return {node.input().begin(), node.input().end()};
}
std::vector<std::string> Outputs(const onnx::NodeProto& node) {
  return {node.output().begin(), node.output().end()};
}

float Epsilon(const onnx::NodeProto& node) {
  for (const auto& a : node.attribute()) {
    if (a.name() == "epsilon") return a.f();
  }
  ADD_FAILURE() << "no epsilon";
  return 0;
}

// What every positive test checks: `count` SkipLayerNormalization nodes in com.microsoft, no
// LayerNormalization left, a second run that changes nothing, and the same outputs through ORT.
FusionRun ExpectFused(const onnx::ModelProto& model, int count = 1) {
  FusionRun run = Fuse(model);
  EXPECT_EQ(CountOps(run.after, "SkipLayerNormalization", "com.microsoft"), count) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "LayerNormalization"), 0);
  FusionRun again = Fuse(run.after);
  EXPECT_EQ(again.stats.at(0).fused, 0);
  EXPECT_EQ(again.after.graph().node_size(), run.after.graph().node_size());
  EXPECT_TRUE(ExpectSameOutputs(model, run.after));
  return run;
}
FusionRun ExpectFused(const std::string& text, int count = 1) {
  return ExpectFused(ParseModel(text), count);
}

// What every negative test checks: nothing fused, the graph unchanged in size. Returns the misses.
std::string ExpectNotFused(const std::string& text) {
  const onnx::ModelProto model = ParseModel(text);
  FusionRun run = Fuse(model);
  EXPECT_EQ(CountOps(run.after, "SkipLayerNormalization", "com.microsoft"), 0);
  EXPECT_EQ(run.stats.at(0).fused, 0);
  EXPECT_EQ(run.after.graph().node_size(), model.graph().node_size());
  EXPECT_FALSE(run.Misses().empty());
  return run.Misses();
}

TEST(SkipLayerNormFusionTest, FoldsTheDenseBias) {
  FusionRun run = ExpectFused(kDenseResidual);
  const onnx::NodeProto& skip_ln = SkipLn(run.after);
  EXPECT_EQ(skip_ln.domain(), "com.microsoft");
  EXPECT_THAT(Inputs(skip_ln), ElementsAre("mm", "x", "gamma", "beta", "bias"));
  EXPECT_THAT(Outputs(skip_ln), ElementsAre("y"));
  EXPECT_FLOAT_EQ(Epsilon(skip_ln), 1e-12f);
  EXPECT_EQ(CountOps(run.after, "Add"), 0);
}

TEST(SkipLayerNormFusionTest, EitherOperandOrderOfBothAdds) {
  FusionRun run = ExpectFused(kDenseResidualSwapped);
  EXPECT_THAT(Inputs(SkipLn(run.after)), ElementsAre("mm", "x", "gamma", "beta", "bias"));
}

TEST(SkipLayerNormFusionTest, PlainResidualWithoutDenseLayer) {
  FusionRun run = ExpectFused(kPlainResidual);
  EXPECT_THAT(Inputs(SkipLn(run.after)), ElementsAre("x", "h", "gamma", "beta"));
}

TEST(SkipLayerNormFusionTest, LayerNormWithoutBetaKeepsTheBiasInItsSlot) {
  FusionRun run =
      ExpectFused(Replaced(Replaced(kDenseResidual, "(sum, gamma, beta)", "(sum, gamma)"),
                           ", float[4] beta = {0.1, -0.2, 0.3, 0.0}", ""));
  EXPECT_THAT(Inputs(SkipLn(run.after)), ElementsAre("mm", "x", "gamma", "", "bias"));
}

TEST(SkipLayerNormFusionTest, DefaultEpsilonWhenTheAttributeIsAbsent) {
  FusionRun run = ExpectFused(Replaced(kPlainResidual, "<epsilon = 1e-12>", ""));
  EXPECT_FLOAT_EQ(Epsilon(SkipLn(run.after)), 1e-5f);
}

TEST(SkipLayerNormFusionTest, BiasAddReadElsewhereIsNotFolded) {
  // ORT's "partial" sample: a Neg also reads the biased dense output.
  const std::string text = Replaced(
      Replaced(kDenseResidual, "=> (float[B, S, 4] y)", "=> (float[B, S, 4] y, float[B, S, 4] z)"),
      "sum = Add(dense, x)", "sum = Add(dense, x)\n  z = Neg(dense)");
  FusionRun run = ExpectFused(text);
  EXPECT_THAT(Inputs(SkipLn(run.after)), ElementsAre("dense", "x", "gamma", "beta"));
  EXPECT_EQ(CountOps(run.after, "Add"), 1) << "the bias Add stays for the Neg";
}

TEST(SkipLayerNormFusionTest, BiasThatIsNot1DStaysOutside) {
  const std::string text = Replaced(kDenseResidual, "float[4] bias = {0.05, -0.1, 0.2, -0.3}",
                                    "float[1, 4] bias = {0.05, -0.1, 0.2, -0.3}");
  FusionRun run = ExpectFused(text);
  EXPECT_THAT(Inputs(SkipLn(run.after)), ElementsAre("dense", "x", "gamma", "beta"));
}

TEST(SkipLayerNormFusionTest, SumReadElsewhereBecomesOutput3) {
  const std::string text = Replaced(
      Replaced(kDenseResidual, "=> (float[B, S, 4] y)", "=> (float[B, S, 4] y, float[B, S, 4] z)"),
      "sum = Add(dense, x)", "sum = Add(dense, x)\n  z = Neg(sum)");
  FusionRun run = ExpectFused(text);
  const onnx::NodeProto& skip_ln = SkipLn(run.after);
  EXPECT_THAT(Inputs(skip_ln), ElementsAre("mm", "x", "gamma", "beta", "bias"));
  EXPECT_THAT(Outputs(skip_ln), ElementsAre("y", "", "", "sum"));
}

TEST(SkipLayerNormFusionTest, SumThatIsAGraphOutputBecomesOutput3) {
  const std::string text = Replaced(kPlainResidual, "=> (float[B, S, 4] y)",
                                    "=> (float[B, S, 4] y, float[B, S, 4] sum)");
  FusionRun run = ExpectFused(text);
  EXPECT_THAT(Outputs(SkipLn(run.after)), ElementsAre("y", "", "", "sum"));
}

TEST(SkipLayerNormFusionTest, BatchOfOneOperandGoesToSkip) {
  const std::string text = Replaced(kPlainResidual, "float[B, S, 4] h", "float[1, S, 4] h");
  for (const char* sum : {"Add(x, h)", "Add(h, x)"}) {
    SCOPED_TRACE(sum);
    FusionRun run = ExpectFused(Replaced(text, "Add(x, h)", sum));
    EXPECT_THAT(Inputs(SkipLn(run.after)), ElementsAre("x", "h", "gamma", "beta"));
  }
}

TEST(SkipLayerNormFusionTest, TwoDimensionalOperandGoesToSkip) {
  const std::string text = Replaced(kPlainResidual, "float[B, S, 4] h", "float[S, 4] h");
  for (const char* sum : {"Add(x, h)", "Add(h, x)"}) {
    SCOPED_TRACE(sum);
    FusionRun run = ExpectFused(Replaced(text, "Add(x, h)", sum));
    EXPECT_THAT(Inputs(SkipLn(run.after)), ElementsAre("x", "h", "gamma", "beta"));
  }
}

TEST(SkipLayerNormFusionTest, ShapesProvenThroughADynamicReshape) {
  FusionRun run = ExpectFused(kDenseAfterDynamicReshape);
  EXPECT_THAT(Inputs(SkipLn(run.after)), ElementsAre("mm", "x", "gamma", "beta", "bias"));
}

TEST(SkipLayerNormFusionTest, AfterLayerNormFusionAtOpset11) {
  const onnx::ModelProto model = ParseModel(kDecomposedAtOpset11);
  std::vector<std::unique_ptr<passes::Pass>> passes;
  passes.push_back(passes::MakeLayerNormFusion());
  passes.push_back(passes::MakeSkipLayerNormFusion());
  FusionRun run = RunPasses(model, std::move(passes));
  EXPECT_EQ(CountOps(run.after, "SkipLayerNormalization", "com.microsoft"), 1) << run.Misses();
  EXPECT_EQ(run.after.graph().node_size(), 2) << "MatMul, SkipLayerNormalization";
  EXPECT_THAT(Inputs(SkipLn(run.after)), ElementsAre("mm", "x", "gamma", "beta", "bias"));
  EXPECT_TRUE(ExpectSameOutputs(model, run.after));
}

TEST(SkipLayerNormFusionTest, EveryResidualOfAChain) {
  // y1 feeds the next residual, as each layer's LN output does in BERT.
  const std::string text = Replaced(
      kDenseResidual, "y = LayerNormalization<axis = -1, epsilon = 1e-12>(sum, gamma, beta)",
      "y1 = LayerNormalization<axis = -1, epsilon = 1e-12>(sum, gamma, beta)\n"
      "  mm2 = MatMul(y1, w)\n"
      "  dense2 = Add(bias, mm2)\n"
      "  sum2 = Add(dense2, y1)\n"
      "  y = LayerNormalization<epsilon = 1e-12>(sum2, beta, gamma)");
  ExpectFused(text, 2);
}

TEST(SkipLayerNormFusionTest, BothResidualsOfAFusedEncoderLayer) {
  FusionRun run = ExpectFused(kFusedEncoderLayer, 2);
  std::vector<std::vector<std::string>> inputs;
  for (const auto& node : run.after.graph().node()) {
    if (node.op_type() == "SkipLayerNormalization") inputs.push_back(Inputs(node));
  }
  EXPECT_THAT(inputs, ElementsAre(ElementsAre("attention_mm", "x0", "gamma", "beta", "bo"),
                                  ElementsAre("output_mm", "y1", "beta", "gamma", "bo2")));
}

// --- Must not fuse -----------------------------------------------------------------------------

TEST(SkipLayerNormFusionTest, ConstantOperandIsNotAResidual) {
  // keras 1.6.1's Add(word, I:pos[1,S,H]).
  const std::string text = Replaced(
      Replaced(
          Replaced(kPlainResidual, "float[B, S, 4] x, float[B, S, 4] h", "float[B, 2, 4] x"),
          "float[4] beta = {0.1, -0.2, 0.3, 0.0}",
          "float[4] beta = {0.1, -0.2, 0.3, 0.0}, float[1, 2, 4] h = {1, 2, 3, 4, 5, 6, 7, 8}"),
      "=> (float[B, S, 4] y)", "=> (float[B, 2, 4] y)");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("'h' is a constant"));
}

TEST(SkipLayerNormFusionTest, OperandShapesThatDiffer) {
  const std::string text = Replaced(kPlainResidual, "float[B, S, 4] h", "float[B, T, 4] h");
  EXPECT_THAT(ExpectNotFused(text),
              HasSubstr("not provably equal, nor one (1,S,H) or (S,H) of the other: 'x' is [B, S, "
                        "4] and 'h' is [B, T, 4]"));
}

TEST(SkipLayerNormFusionTest, BroadcastAlongTheSequence) {
  const std::string text = Replaced(kPlainResidual, "float[B, S, 4] h", "float[B, 1, 4] h");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("'h' is [B, 1, 4]"));
}

TEST(SkipLayerNormFusionTest, UnknownShape) {
  // The target shape is a graph input: even its length is unknown.
  const std::string text =
      Replaced(Replaced(kPlainResidual, "float[B, S, 4] h", "float[B, S, 4] h, int64[R] target"),
               "sum = Add(x, h)", "reshaped = Reshape(h, target)\n  sum = Add(x, reshaped)");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("the shape of 'reshaped' is unknown"));
}

// tf2onnx 1.6 runs its encoder on 2-D (tokens, H) tensors; ORT's kernel takes equal 2-D operands.
TEST(SkipLayerNormFusionTest, EqualTwoDimensionalOperands) {
  const std::string text =
      Replaced(Replaced(Replaced(kPlainResidual, "float[B, S, 4] x", "float[T, 4] x"),
                        "float[B, S, 4] h", "float[T, 4] h"),
               "=> (float[B, S, 4] y)", "=> (float[T, 4] y)");
  ExpectFused(text);
}

TEST(SkipLayerNormFusionTest, RankOtherThanThreeOrTwo) {
  const std::string text =
      Replaced(Replaced(Replaced(kPlainResidual, "float[B, S, 4] x", "float[A, B, S, 4] x"),
                        "float[B, S, 4] h", "float[A, B, S, 4] h"),
               "=> (float[B, S, 4] y)", "=> (float[A, B, S, 4] y)");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("the residual operands are not 3-D"));
}

TEST(SkipLayerNormFusionTest, NormalisationOverANonLastAxis) {
  const std::string text =
      Replaced(kPlainResidual, "<epsilon = 1e-12>", "<axis = 1, epsilon = 1e-12>");
  EXPECT_THAT(ExpectNotFused(text),
              HasSubstr("normalises from axis 1 of a rank-3 input, not over the last axis only"));
}

TEST(SkipLayerNormFusionTest, GammaIsAGraphInput) {
  const std::string text =
      Replaced(Replaced(kPlainResidual, "float[B, S, 4] h)", "float[B, S, 4] h, float[4] gamma)"),
               "float[4] gamma = {1.5, 0.5, -1.0, 2.0}, ", "");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("'gamma' is not a constant"));
}

TEST(SkipLayerNormFusionTest, OperandsOfAnotherTypeThanGamma) {
  const std::string text =
      Replaced(Replaced(Replaced(kPlainResidual, "float[B, S, 4] x", "float16[B, S, 4] x"),
                        "float[B, S, 4] h", "float16[B, S, 4] h"),
               "=> (float[B, S, 4] y)", "=> (float16[B, S, 4] y)");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("'x' has element type 10 but gamma 1"));
}

TEST(SkipLayerNormFusionTest, MeanOutputOfTheLayerNormIsUsed) {
  const std::string text = Replaced(Replaced(kPlainResidual, "=> (float[B, S, 4] y)",
                                             "=> (float[B, S, 4] y, float[B, S, 1] mean)"),
                                    "y = LayerNormalization", "y, mean = LayerNormalization");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("'mean' (LayerNormalization output 1) is used"));
}

TEST(SkipLayerNormFusionTest, LayerNormOfANonSum) {
  const std::string text = Replaced(kPlainResidual, "sum = Add(x, h)", "sum = Mul(x, h)");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("expected Add to compute 'sum', found Mul"));
}

}  // namespace
}  // namespace bertopt::testing
