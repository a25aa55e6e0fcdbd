// residual_sum: the residual Add feeding a LayerNormalization becomes Sum (for ORT targets where
// ORT's own SkipLayerNormFusion would otherwise turn it into the slower SkipLayerNormalization).
#include <gtest/gtest.h>

#include <string>

#include "fusion_test_util.h"
#include "passes/fusions/fusions.h"
#include "test_models.h"

namespace bertopt::testing {
namespace {

// A BERT residual site: dense layer with its bias, residual Add, LayerNormalization.
constexpr const char* kResidual = R"(
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

const onnx::NodeProto* Producer(const onnx::ModelProto& m, const std::string& output) {
  for (const auto& n : m.graph().node()) {
    for (const auto& o : n.output()) {
      if (o == output) return &n;
    }
  }
  return nullptr;
}

TEST(ResidualSumTest, TheResidualAddBecomesSumAndTheBiasAddStays) {
  const onnx::ModelProto before = ParseModel(kResidual);
  FusionRun run = RunFusion(before, passes::MakeResidualSumPass());
  ASSERT_EQ(run.stats.at(0).fused, 1) << run.Misses();
  const onnx::NodeProto* sum = Producer(run.after, "sum");
  ASSERT_NE(sum, nullptr);
  EXPECT_EQ(sum->op_type(), "Sum");
  EXPECT_EQ(sum->domain(), "");
  ASSERT_EQ(sum->input_size(), 2);
  EXPECT_EQ(sum->input(0), "x");
  EXPECT_EQ(sum->input(1), "dense");
  EXPECT_EQ(CountOps(run.after, "Add"), 1) << "the dense bias Add is left to its own patterns";
  EXPECT_EQ(CountOps(run.after, "LayerNormalization"), 1);
  EXPECT_TRUE(ExpectSameOutputs(before, run.after));
}

// keras' position table: an Add of a constant before the LayerNormalization.
constexpr const char* kConstantAdd = R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[B, S, 4] h) => (float[B, S, 4] y)
<float[4] gamma = {1.5, 0.5, -1.0, 2.0}, float[4] beta = {0.1, -0.2, 0.3, 0.0},
 float[4] table = {0.05, -0.1, 0.2, -0.3}>
{
  sum = Add(h, table)
  y = LayerNormalization<axis = -1, epsilon = 1e-12>(sum, gamma, beta)
}
)";

TEST(ResidualSumTest, AnAddOfAConstantIsNotAResidual) {
  FusionRun run = RunFusion(ParseModel(kConstantAdd), passes::MakeResidualSumPass());
  EXPECT_EQ(run.stats.at(0).fused, 0);
  EXPECT_NE(run.Misses().find("is a constant"), std::string::npos) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "Sum"), 0);
}

}  // namespace
}  // namespace bertopt::testing
