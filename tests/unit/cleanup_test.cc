#include "passes/cleanup.h"

#include <gtest/gtest.h>

#include "fusion_test_util.h"
#include "test_models.h"

namespace bertopt::passes {
namespace {

using testing::CountOps;
using testing::ExpectSameOutputs;
using testing::ParseModel;
using testing::RunFusion;

TEST(RemoveIdentityTest, RewiresConsumersAndKeepsGraphOutputNames) {
  auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 4] x) => (float[N, 4] y, float[N, 4] z)
{
  a = Identity(x)
  b = Relu(a)
  y = Identity(b)
  c = Neg(a)
  z = Identity(c)
}
)");
  auto run = RunFusion(model, MakeRemoveIdentityPass());
  EXPECT_EQ(CountOps(run.after, "Identity"), 0);
  EXPECT_EQ(run.stats[0].fused, 3);
  // The outputs keep their names: Relu and Neg now write y and z themselves.
  EXPECT_EQ(run.after.graph().output(0).name(), "y");
  EXPECT_EQ(run.after.graph().output(1).name(), "z");
  ExpectSameOutputs(model, run.after);
}

TEST(RemoveIdentityTest, KeepsAnIdentityBetweenGraphInputAndOutput) {
  auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 4] x) => (float[N, 4] y, float[N, 4] w)
{
  y = Identity(x)
  w = Identity(y)
}
)");
  auto run = RunFusion(model, MakeRemoveIdentityPass());
  // y is a graph output and x a graph input: neither can be renamed.
  EXPECT_EQ(CountOps(run.after, "Identity"), 2);
  ExpectSameOutputs(model, run.after);
}

TEST(RemoveIdentityTest, TransposeWithTheIdentityPermutationGoes) {
  auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 4] x) => (float[4, N] y)
{
  a = Transpose<perm = [0, 1]>(x)
  y = Transpose<perm = [1, 0]>(a)
}
)");
  auto run = RunFusion(model, MakeRemoveIdentityPass());
  EXPECT_EQ(CountOps(run.after, "Transpose"), 1);
  ExpectSameOutputs(model, run.after);
}

// dynamo without its optimizer: MatMul(x, Transpose(W[out, in])). W read twice (ALBERT's shared
// layers) is transposed once; W also read untransposed stays as it is.
TEST(TransposedWeightsTest, TransposesWeightsReadOnlyThroughTransposes) {
  auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 2] x, float[N, 3] u) => (float[N, 3] y, float[N, 2] z)
<float[3, 2] w = {1, 2, 3, 4, 5, 6}, float[2, 3] kept = {1, 0, 2, 0, 3, 0}>
{
  wt = Transpose<perm = [1, 0]>(w)
  h = MatMul(x, wt)
  wt2 = Transpose<perm = [1, 0]>(w)
  h2 = MatMul(x, wt2)
  y = Add(h, h2)
  kt = Transpose<perm = [1, 0]>(kept)
  z0 = MatMul(u, kt)
  z1 = MatMul(x, kept)
  z2 = MatMul(z1, kt)
  z = Add(z0, z2)
}
)");
  auto run = RunFusion(model, MakeTransposedWeightsPass());
  EXPECT_EQ(run.stats[0].fused, 2);
  EXPECT_EQ(CountOps(run.after, "Transpose"), 1) << "kept's Transpose stays";
  EXPECT_NE(run.stats[0].misses.front().find("also read untransposed"), std::string::npos);
  int weights = 0;
  for (const auto& init : run.after.graph().initializer()) weights += init.dims_size() == 2;
  EXPECT_EQ(weights, 2) << "w replaced by one transposed copy, kept as it was";
  ExpectSameOutputs(model, run.after);
}

TEST(ConstantToInitializerTest, MovesEveryConstantFormExactly) {
  auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 4] x) => (float[N, 4] y)
{
  t = Constant<value = float[4] {1.0, 2.0, 3.0, 4.0}>()
  s = Constant<value_float = 0.5>()
  shape = Constant<value_ints = [-1, 4]>()
  a = Mul(x, t)
  b = Mul(a, s)
  y = Reshape(b, shape)
}
)");
  auto run = RunFusion(model, MakeConstantToInitializerPass());
  EXPECT_EQ(CountOps(run.after, "Constant"), 0);
  EXPECT_EQ(run.after.graph().initializer_size(), 3);
  // The values keep their names, so nothing else in the graph had to change.
  EXPECT_EQ(run.after.graph().initializer(0).name(), "t");
  ExpectSameOutputs(model, run.after);
}

TEST(ConstantToInitializerTest, LeavesConstantsThatAreGraphOutputsOrOldIr) {
  auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[2] x) => (float[2] y, float[2] c)
{
  c = Constant<value = float[2] {1.0, 2.0}>()
  y = Add(x, c)
}
)");
  EXPECT_EQ(CountOps(RunFusion(model, MakeConstantToInitializerPass()).after, "Constant"), 1);
  model.set_ir_version(3);
  model.mutable_graph()->mutable_output()->RemoveLast();
  EXPECT_EQ(CountOps(RunFusion(model, MakeConstantToInitializerPass()).after, "Constant"), 1)
      << "IR 3 requires initializers to be graph inputs";
}

TEST(DeadCodeTest, RemovesUnusedNodesAndInitializersAndCountsThem) {
  auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[2] x) => (float[2] y)
<float[2] used = {1.0, 2.0}, float[2] unused = {3.0, 4.0}>
{
  y = Add(x, used)
  d1 = Neg(x)
  d2 = Relu(d1)
}
)");
  auto run = RunFusion(model, MakeDeadCodePass());
  EXPECT_EQ(run.stats[0].counters.at("nodes removed"), 2);
  EXPECT_EQ(run.stats[0].counters.at("initializers removed"), 1);
  EXPECT_EQ(run.after.graph().node_size(), 1);
  EXPECT_EQ(run.after.graph().initializer_size(), 1);
  ExpectSameOutputs(model, run.after);
}

}  // namespace
}  // namespace bertopt::passes
