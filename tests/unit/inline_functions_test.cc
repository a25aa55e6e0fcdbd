// Local functions inlined per ONNX: positional binding, fresh internal names, attribute
// references, nested calls; and what is left as a call (with the reason) or refused.
#include "passes/inline_functions.h"

#include <gtest/gtest.h>

#include "fusion_test_util.h"
#include "test_models.h"

namespace bertopt::passes {
namespace {

using testing::CountOps;
using testing::ExpectSameOutputs;
using testing::ParseModel;

// Scale(x) = x * alpha (alpha from the caller, else Mul's... there is none: LeakyRelu's default
// 0.01 is used below); Twice calls Scale twice; the graph calls both and reuses the name "t"
// that the functions use inside.
constexpr const char* kModel = R"(
<ir_version: 8, opset_import: ["" : 15, "local" : 1]>
g (float[2, 3] x) => (float[2, 3] y, float[2, 3] z, float[2, 3] w)
{
  t = Neg(x)
  y = local.Leaky<alpha: float = 0.5>(t)
  z = local.Twice(x)
  w = local.Leaky(x)
}
<domain: "local", opset_import: ["" : 15]>
Leaky <alpha> (a) => (b)
{
  t = Identity(a)
  b = LeakyRelu<alpha: float = @alpha>(t)
}
<domain: "local", opset_import: ["" : 15, "local" : 1]>
Twice (a) => (b)
{
  t = local.Leaky<alpha: float = 0.25>(a)
  b = local.Leaky<alpha: float = 0.25>(t)
}
)";

TEST(InlineFunctionsTest, InlinesNestedCallsWithTheirAttributes) {
  const onnx::ModelProto original = ParseModel(kModel);
  onnx::ModelProto model = original;
  auto report = InlineLocalFunctions(model);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->calls, 5) << "Leaky twice from the graph, Twice once, Leaky twice in Twice";
  EXPECT_EQ(report->inlined, (std::vector<std::string>{"local.Leaky", "local.Twice"}));
  EXPECT_TRUE(report->kept.empty());
  EXPECT_EQ(model.functions_size(), 0);
  EXPECT_EQ(CountOps(model, "LeakyRelu"), 4);
  EXPECT_EQ(model.graph().node_size(), 1 + 4 * 2);
  // y's LeakyRelu has the caller's 0.5, w's none (the op's default 0.01).
  for (const auto& node : model.graph().node()) {
    if (node.op_type() != "LeakyRelu") continue;
    if (node.output(0) == "y") EXPECT_FLOAT_EQ(node.attribute(0).f(), 0.5f);
    if (node.output(0) == "w") EXPECT_EQ(node.attribute_size(), 0);
  }
  ExpectSameOutputs(original, model);
}

TEST(InlineFunctionsTest, FunctionOfAnotherOpsetIsKeptWithTheReason) {
  onnx::ModelProto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 15, "local" : 1]>
g (float[2, 3] x) => (float[2, 3] y)
{
  y = local.Old(x)
}
<domain: "local", opset_import: ["" : 13]>
Old (a) => (b)
{
  b = Neg(a)
}
)");
  auto report = InlineLocalFunctions(model);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->calls, 0);
  ASSERT_EQ(report->kept.size(), 1u);
  EXPECT_NE(report->kept[0].find("imports '' version 13, the model version 15"), std::string::npos)
      << report->kept[0];
  EXPECT_EQ(model.functions_size(), 1);
}

TEST(InlineFunctionsTest, RecursionIsAnError) {
  onnx::ModelProto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 15, "local" : 1]>
g (float[2, 3] x) => (float[2, 3] y)
{
  y = local.Loop(x)
}
<domain: "local", opset_import: ["" : 15, "local" : 1]>
Loop (a) => (b)
{
  b = local.Loop(a)
}
)");
  auto report = InlineLocalFunctions(model);
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().ToString().find("local.Loop"), std::string::npos);
}

}  // namespace
}  // namespace bertopt::passes
