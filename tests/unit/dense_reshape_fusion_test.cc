// Dense-reshape fusion: TensorFlow's Tensordot dense layer, Reshape -> MatMul -> Reshape, becomes
// one MatMul on the 3-D input (exporter-layouts 3.4, 4.x). Hin = 4, Hout = 6 throughout.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"
#include "fusion_test_util.h"
#include "passes/fusions/fusions.h"
#include "test_models.h"

namespace bertopt::testing {
namespace {

using ::testing::HasSubstr;

// keras2onnx 1.6.5: each dense layer computes its own targets in int32 from Shape(x):
// [prod(x.shape[0:2]), prod(x.shape[2:])] for the flattening, [x.shape[0:2], Hout] after.
constexpr const char* kKeras165 = R"(
<ir_version: 6, opset_import: ["" : 11]>
g (float[B, S, 4] x) => (float[B, S, 6] y)
<float[4, 6] kernel = {KERNEL}, float[6] bias = {BIAS}, int32[2] free = {0, 1},
 int32[1] contracted = {2}, int32[1] units = {6}>
{
  shape = Shape(x)
  shape32 = Cast<to = 6>(shape)
  free_dims = Gather<axis = 0>(shape32, free)
  contracted_dims = Gather<axis = 0>(shape32, contracted)
  rows = ReduceProd<axes = [0], keepdims = 0>(free_dims)
  columns = ReduceProd<axes = [0], keepdims = 0>(contracted_dims)
  rows_1d = Unsqueeze<axes = [0]>(rows)
  columns_1d = Unsqueeze<axes = [0]>(columns)
  flat_shape32 = Concat<axis = 0>(rows_1d, columns_1d)
  flat_shape = Cast<to = 7>(flat_shape32)
  flat = Reshape(x, flat_shape)
  product = MatMul(flat, kernel)
  out_shape32 = Concat<axis = 0>(free_dims, units)
  out_shape = Cast<to = 7>(out_shape32)
  unflat = Reshape(product, out_shape)
  y = Add(unflat, bias)
}
)";

// keras2onnx 1.6.1, the attention output dense: the shape chain reads the merged [B, S, H]
// Reshape of the heads, but the flattening Reshape reads the 4-D heads themselves.
constexpr const char* kKeras161 = R"(
<ir_version: 6, opset_import: ["" : 10]>
g (float[B, 2, S, 2] context) => (float[B, S, 6] y)
<float[4, 6] kernel = {KERNEL}, float[6] bias = {BIAS}, int64[3] merge_shape = {0, -1, 4},
 int32[2] free = {0, 1}, int32[1] contracted = {2}, int32[1] units = {6}>
{
  context_t = Transpose<perm = [0, 2, 1, 3]>(context)
  merged = Reshape(context_t, merge_shape)
  shape = Shape(merged)
  shape32 = Cast<to = 6>(shape)
  free_dims = Gather<axis = 0>(shape32, free)
  contracted_dims = Gather<axis = 0>(shape32, contracted)
  rows = ReduceProd<axes = [0], keepdims = 0>(free_dims)
  columns = ReduceProd<axes = [0], keepdims = 0>(contracted_dims)
  rows_1d = Unsqueeze<axes = [0]>(rows)
  columns_1d = Unsqueeze<axes = [0]>(columns)
  flat_shape32 = Concat<axis = 0>(rows_1d, columns_1d)
  flat_shape = Cast<to = 7>(flat_shape32)
  flat = Reshape(context_t, flat_shape)
  product = MatMul(flat, kernel)
  out_shape32 = Concat<axis = 0>(free_dims, units)
  out_shape = Cast<to = 7>(out_shape32)
  unflat = Reshape(product, out_shape)
  y = Add(unflat, bias)
}
)";

// Static tf2onnx: the merge Reshape and the dense's were folded into one [B·S, H] target on the
// 4-D heads [B, S, N, Hd].
constexpr const char* kTf2onnxStaticHeads = R"(
<ir_version: 6, opset_import: ["" : 11]>
g (float[2, 2, 5, 2] context) => (float[2, 5, 6] y)
<float[4, 6] kernel = {KERNEL}, float[6] bias = {BIAS}, int64[2] flat_shape = {10, 4},
 int64[3] out_shape = {2, 5, 6}>
{
  context_t = Transpose<perm = [0, 2, 1, 3]>(context)
  flat = Reshape(context_t, flat_shape)
  product = MatMul(flat, kernel)
  unflat = Reshape(product, out_shape)
  y = Add(unflat, bias)
}
)";

// A static export of any dense layer: two constant targets.
constexpr const char* kStaticPair = R"(
<ir_version: 6, opset_import: ["" : 11]>
g (float[2, 5, 4] x) => (float[2, 5, 6] y)
<float[4, 6] kernel = {KERNEL}, float[6] bias = {BIAS}, int64[2] flat_shape = {10, 4},
 int64[3] out_shape = {2, 5, 6}>
{
  flat = Reshape(x, flat_shape)
  product = MatMul(flat, kernel)
  unflat = Reshape(product, out_shape)
  y = Add(unflat, bias)
}
)";

// `n` deterministic values in [-1, 1) as ONNX text.
std::string Floats(int n, int seed) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    s += fmt::format("{}{:.4f}", i ? ", " : "", ((i * 37 + seed * 11) % 50) / 25.0 - 1.0);
  }
  return s;
}

// `text` with the first occurrence of `from` replaced by `to` (which must exist).
std::string Replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << "test model has no '" << from << "'";
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

// `text` with the weights' values filled in where it declares them.
onnx::ModelProto Model(std::string text) {
  for (const auto& [from, to] :
       {std::pair<std::string, std::string>{"{KERNEL}", Floats(24, 1)}, {"{BIAS}", Floats(6, 2)}}) {
    if (const size_t at = text.find(from); at != std::string::npos) {
      text.replace(at, from.size(), "{" + to + "}");
    }
  }
  return ParseModel(text);
}

FusionRun Fuse(const onnx::ModelProto& model) {
  return RunFusion(model, passes::MakeDenseReshapeFusion());
}

const onnx::NodeProto* FindNode(const onnx::ModelProto& model, const std::string& op_type) {
  for (const auto& node : model.graph().node()) {
    if (node.op_type() == op_type) return &node;
  }
  return nullptr;
}

// What every positive test checks: one MatMul left reading `x` and the kernel, `reshapes`
// Reshapes and `nodes` nodes in all, a second run that changes nothing, and ORT parity.
FusionRun ExpectFused(const std::string& text, const std::string& x, int reshapes, int nodes) {
  const onnx::ModelProto model = Model(text);
  FusionRun run = Fuse(model);
  EXPECT_EQ(run.stats.at(0).fused, 1) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "MatMul"), 1);
  EXPECT_EQ(CountOps(run.after, "Reshape"), reshapes);
  EXPECT_EQ(CountOps(run.after, "Add"), 1);
  EXPECT_EQ(run.after.graph().node_size(), nodes);
  if (const onnx::NodeProto* matmul = FindNode(run.after, "MatMul")) {
    EXPECT_EQ(matmul->input(0), x);
    EXPECT_EQ(matmul->input(1), "kernel");
  }
  FusionRun again = Fuse(run.after);
  EXPECT_EQ(again.stats.at(0).fused, 0);
  EXPECT_EQ(again.after.graph().SerializeAsString(), run.after.graph().SerializeAsString())
      << "a second run changed the graph";
  EXPECT_TRUE(ExpectSameOutputs(model, run.after, {.dims = {{"B", 2}, {"S", 5}}}));
  return run;
}

// What every negative test checks: nothing fused, the graph as it was. Returns the misses.
std::string ExpectNotFused(const std::string& text) {
  const onnx::ModelProto model = Model(text);
  FusionRun run = Fuse(model);
  EXPECT_EQ(run.stats.at(0).fused, 0);
  EXPECT_EQ(run.after.graph().node_size(), model.graph().node_size());
  EXPECT_EQ(CountOps(run.after, "Reshape"), CountOps(model, "Reshape"));
  EXPECT_FALSE(run.Misses().empty());
  return run.Misses();
}

TEST(DenseReshapeFusionTest, Keras165TensordotBecomesMatMulAndAdd) {
  FusionRun run = ExpectFused(kKeras165, "x", 0, 2);
  EXPECT_EQ(CountOps(run.after, "Shape") + CountOps(run.after, "Cast"), 0) << "the chain is dead";
  const onnx::NodeProto* matmul = FindNode(run.after, "MatMul");
  ASSERT_NE(matmul, nullptr);
  EXPECT_EQ(matmul->output(0), "unflat") << "takes over the second Reshape's output";
}

// Reshape(t, s) is Reshape(Reshape(t, u), s): the MatMul reads the merged sibling instead.
TEST(DenseReshapeFusionTest, Keras161FlattensTheHeadsBesideTheMergedReshape) {
  ExpectFused(kKeras161, "merged", 1, 4);
}

TEST(DenseReshapeFusionTest, Tf2onnxStaticHeadsGetAMergeReshape) {
  FusionRun run = ExpectFused(kTf2onnxStaticHeads, "context_t_merged", 1, 4);
  const onnx::NodeProto* merge = FindNode(run.after, "Reshape");
  ASSERT_NE(merge, nullptr);
  EXPECT_EQ(merge->input(0), "context_t");
  const onnx::TensorProto* target = nullptr;
  for (const auto& t : run.after.graph().initializer()) {
    if (t.name() == merge->input(1)) target = &t;
  }
  ASSERT_NE(target, nullptr);
  EXPECT_EQ(ir::DecodeAsInts(*target), (std::vector<int64_t>{0, 0, 4}))
      << "Reshape(heads, [0, 0, N·Hd])";
}

TEST(DenseReshapeFusionTest, StaticPairOfConstantTargets) { ExpectFused(kStaticPair, "x", 0, 2); }

// --- Must not fuse -----------------------------------------------------------------------------

// [S, B, Hout] is a real reshape of the [B·S, Hout] product, not x's leading dims restored.
TEST(DenseReshapeFusionTest, OuterTargetThatSwapsTheLeadingDims) {
  const std::string text =
      Replaced(Replaced(Replaced(kKeras165, "int32[1] units = {6}",
                                 "int32[1] units = {6}, int32[2] swapped = {1, 0}"),
                        "out_shape32 = Concat<axis = 0>(free_dims, units)",
                        "swapped_dims = Gather<axis = 0>(shape32, swapped)\n"
                        "  out_shape32 = Concat<axis = 0>(swapped_dims, units)"),
               "=> (float[B, S, 6] y)", "=> (float[S, B, 6] y)");
  EXPECT_THAT(ExpectNotFused(text),
              HasSubstr("entry 0 of the product's target is not provably dim 0 of 'x'"));
}

// [B, -1, 3]: valid for the [B·S, 6] product (it is [B, 2S, 3]) but not a dense layer's output.
TEST(DenseReshapeFusionTest, OuterTargetWithAnotherHout) {
  const std::string text =
      Replaced(Replaced(Replaced(kKeras165, "int32[1] units = {6}",
                                 "int32[1] first = {0}, int32[2] rest = {-1, 3}"),
                        "out_shape32 = Concat<axis = 0>(free_dims, units)",
                        "batch = Gather<axis = 0>(shape32, first)\n"
                        "  out_shape32 = Concat<axis = 0>(batch, rest)"),
               "=> (float[B, S, 6] y)", "=> (float[B, M, 3] y)");
  EXPECT_THAT(ExpectNotFused(Replaced(text, "float[6] bias", "float[3] bias")),
              HasSubstr("the product is not reshaped to 6 columns"));
}

TEST(DenseReshapeFusionTest, ProductReadBySecondNode) {
  const std::string text =
      Replaced(Replaced(kStaticPair, "=> (float[2, 5, 6] y)",
                        "=> (float[2, 5, 6] y, float[10, 6] product_negated)"),
               "y = Add(unflat, bias)", "y = Add(unflat, bias)\n  product_negated = Neg(product)");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("'product' is not read by exactly one Reshape"));
}

TEST(DenseReshapeFusionTest, WeightIsAGraphInput) {
  const std::string text = Replaced(
      Replaced(kStaticPair, "(float[2, 5, 4] x)", "(float[2, 5, 4] x, float[4, 6] kernel)"),
      "float[4, 6] kernel = {KERNEL}, ", "");
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("the weight 'kernel' is not a 2-D constant"));
}

// x is [B, 8, 2]: flattening to [-1, 4] regroups its elements, so the MatMul does not act on x's
// last axis. A sibling Reshape of x to [B, 16] does not help either.
TEST(DenseReshapeFusionTest, FlattenedInputWhoseLastDimIsNotHin) {
  const std::string text = R"(
<ir_version: 6, opset_import: ["" : 11]>
g (float[B, 8, 2] x) => (float[B, 4, 6] y, float[B, 16] rows)
<float[4, 6] kernel = {KERNEL}, float[6] bias = {BIAS}, int64[2] flat_shape = {-1, 4},
 int64[2] row_shape = {0, 16}, int64[1] first = {0}, int64[2] rest = {4, 6}>
{
  rows = Reshape(x, row_shape)
  shape = Shape(x)
  batch = Gather<axis = 0>(shape, first)
  out_shape = Concat<axis = 0>(batch, rest)
  flat = Reshape(x, flat_shape)
  product = MatMul(flat, kernel)
  unflat = Reshape(product, out_shape)
  y = Add(unflat, bias)
}
)";
  EXPECT_THAT(ExpectNotFused(text), HasSubstr("whose last dim is not the weight's 4 rows"));
}

}  // namespace
}  // namespace bertopt::testing
