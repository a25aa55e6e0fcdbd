#include "passes/convert/gpu_only.h"

#include <gtest/gtest.h>

#include "fusion_test_util.h"
#include "test_models.h"

namespace bertopt::passes {
namespace {

using testing::CountOps;
using testing::ExpectSameOutputs;
using testing::ParseModel;

TEST(GpuOnlyTest, BiasGeluAndGeluBecomeFastGeluWithTheSameInputs) {
  const auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13, "com.microsoft" : 1]>
g (float[N, 4] x) => (float[N, 4] y)
<float[4] bias = {0.1, -0.2, 0.3, 0.5}>
{
  a = com.microsoft.BiasGelu(x, bias)
  y = com.microsoft.Gelu(a)
}
)");
  onnx::ModelProto m = model;
  auto graph = ir::Graph::Build(&m);
  ASSERT_TRUE(graph.ok());
  auto n = ApplyGpuForms(**graph);
  ASSERT_TRUE(n.ok());
  (*graph)->Commit();
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(CountOps(m, "FastGelu", "com.microsoft"), 2);
  EXPECT_EQ(CountOps(m, "BiasGelu", "com.microsoft"), 0);
  ASSERT_EQ(m.graph().node(0).input_size(), 2);
  EXPECT_EQ(m.graph().node(0).input(1), "bias");
  // The tanh approximation: within 1e-3 of erf GELU on inputs in [-1, 1].
  ExpectSameOutputs(model, m, {.rtol = 0, .atol = 1e-3});
}

}  // namespace
}  // namespace bertopt::passes
