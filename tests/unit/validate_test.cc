// ValidateGraph and ValidateModel: what ONNX Runtime refuses is refused here too, naming the node
// and the value.
#include "bertopt/ir/validate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bertopt/optimize.h"
#include "test_models.h"

namespace bertopt {
namespace {

using ::testing::HasSubstr;
using testing::ParseModel;

constexpr const char* kValid = R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[N, 4] x) => (float[N, 8] y)
<float[4] w = {1, 2, 3, 4}>
{
  a = Relu(x)
  y = Concat<axis = 1>(a, x)
}
)";

TEST(ValidateGraphTest, AValidGraphAndOneOutOfOrderPass) {
  EXPECT_TRUE(ir::ValidateGraph(ParseModel(kValid).graph()).ok());
  onnx::ModelProto unsorted = ParseModel(kValid);
  unsorted.mutable_graph()->mutable_node()->SwapElements(0, 1);  // ORT sorts graphs itself
  EXPECT_TRUE(ir::ValidateGraph(unsorted.graph()).ok());
}

TEST(ValidateGraphTest, AnInputNothingDefinesNamesTheNodeAndTheValue) {
  onnx::ModelProto m = ParseModel(kValid);
  m.mutable_graph()->mutable_node(1)->set_input(1, "ghost");
  const Status s = ir::ValidateGraph(m.graph());
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_THAT(s.message(), HasSubstr("Concat node producing 'y' reads 'ghost'"));
}

TEST(ValidateGraphTest, TwoProducersOfOneValue) {
  onnx::ModelProto m = ParseModel(kValid);
  m.mutable_graph()->mutable_node(1)->set_output(0, "a");
  EXPECT_THAT(ir::ValidateGraph(m.graph()).message(), HasSubstr("writes 'a', which already"));
}

TEST(ValidateGraphTest, ConcatOfTwoElementTypes) {
  onnx::ModelProto m = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[N, 4] x, int64[N, 4] i) => (float[N, 8] y)
{
  y = Concat<axis = 1>(x, i)
}
)");
  EXPECT_THAT(ir::ValidateGraph(m.graph()).message(),
              HasSubstr("mixes element types: 'x' is FLOAT and 'i' is INT64"));
}

// Found by the structure fuzzer in CI: a Mul of an INT64 and a FLOAT Constant, neither declared,
// passed the input check and failed only once folding had typed them (an internal error).
TEST(ValidateGraphTest, ConstantsHaveTheirTensorsTypes) {
  onnx::ModelProto m = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[N, 4] x) => (float[N, 4] y)
{
  i = Constant<value = int64[1] {2}>()
  f = Constant<value_float = 0.5>()
  p = Mul(i, f)
  y = Add(x, p)
}
)");
  EXPECT_THAT(ir::ValidateGraph(m.graph()).message(),
              HasSubstr("mixes element types: 'i' is INT64 and 'f' is FLOAT"));
  // The structure fuzzer again: a Constant in "ai.onnx", the default domain by its other name,
  // which folding folds all the same.
  m.mutable_graph()->mutable_node(0)->set_domain("ai.onnx");
  EXPECT_THAT(ir::ValidateGraph(m.graph()).message(),
              HasSubstr("mixes element types: 'i' is INT64 and 'f' is FLOAT"));
}

TEST(ValidateGraphTest, ASubgraphSeesTheOuterScope) {
  onnx::ModelProto m = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (bool c, float[4] x) => (float[4] y)
{
  outer = Relu(x)
  y = If(c) <then_branch = t () => (float[4] a) { a = Identity(outer) },
             else_branch = e () => (float[4] b) { b = Neg(outer) }>
}
)");
  EXPECT_TRUE(ir::ValidateGraph(m.graph()).ok()) << ir::ValidateGraph(m.graph()).ToString();
  m.mutable_graph()->mutable_node(1)->mutable_attribute(0)->mutable_g()->mutable_node(0)->set_input(
      0, "nowhere");
  EXPECT_FALSE(ir::ValidateGraph(m.graph()).ok());
}

TEST(ValidateGraphTest, OptimizeRefusesAnInvalidInput) {
  onnx::ModelProto m = ParseModel(kValid);
  m.mutable_graph()->mutable_node(0)->set_input(0, "ghost");
  auto report = Optimize(m, {});
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), StatusCode::kInvalidModel);
  EXPECT_THAT(report.status().message(), HasSubstr("the input is not a valid model"));
  EXPECT_THAT(report.status().message(), HasSubstr("'ghost'"));
}

// ValidateModel: every node against its ONNX schema, as ONNX Runtime checks it at session
// creation. Each refused graph here is one ONNX Runtime refuses too (checked with PyPI's 1.32).

void Declare(onnx::ModelProto& m, const std::string& name, int32_t elem_type) {
  auto* vi = m.mutable_graph()->add_value_info();
  vi->set_name(name);
  vi->mutable_type()->mutable_tensor_type()->set_elem_type(elem_type);
}

TEST(ValidateModelTest, AcceptsWhatTheSchemasAllow) {
  EXPECT_TRUE(ir::ValidateModel(ParseModel(kValid)).ok());
  // Split's outputs are variadic: one may go unnamed. Ops of other domains have no schema here.
  onnx::ModelProto m = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13, "com.microsoft" : 1]>
g (float[N, 4] x) => (float[N, 2] a, float[N, 4] g)
{
  a, b = Split<axis = 1>(x)
  g = com.microsoft.Gelu(x)
}
)");
  m.mutable_graph()->mutable_node(0)->set_output(1, "");
  EXPECT_TRUE(ir::ValidateModel(m).ok()) << ir::ValidateModel(m).ToString();
}

TEST(ValidateModelTest, AnInputCountTheSchemaDoesNotTake) {
  onnx::ModelProto m = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[N, 4] x) => (float[N, 4] y)
{
  y = Add(x, x, x)
}
)");
  m.mutable_graph()->mutable_node(0)->set_name("add");
  const Status s = ir::ValidateModel(m);
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_THAT(s.message(), HasSubstr("node 'add' (Add) has 3 inputs, where Add-14 takes 2"));
  EXPECT_TRUE(ir::ValidateGraph(m.graph()).ok());  // the graph alone says nothing of schemas

  onnx::ModelProto two_outputs = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[N, 4] x) => (float[N, 4] y)
{
  y, z = Relu(x)
}
)");
  EXPECT_THAT(ir::ValidateModel(two_outputs).message(),
              HasSubstr("the Relu node producing 'y' has 2 outputs, where Relu-14 gives 1"));
}

TEST(ValidateModelTest, ARequiredInputWithoutAName) {
  onnx::ModelProto m = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[N, 4] x) => (float[N, 4] y)
{
  y = Add(x, x)
}
)");
  m.mutable_graph()->mutable_node(0)->set_input(1, "");
  EXPECT_THAT(ir::ValidateModel(m).message(),
              HasSubstr("the Add node producing 'y': input 1 has no name, but Add-14 requires its "
                        "'B'"));
}

TEST(ValidateModelTest, ATypeTheParameterDoesNotAllow) {
  onnx::ModelProto m = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (bool[N, 4] b) => (bool[N, 4] y)
{
  y = Relu(b)
}
)");
  EXPECT_THAT(ir::ValidateModel(m).message(),
              HasSubstr("input 0 ('b') is tensor(bool), which Relu-14 does not allow for its T ("));
}

TEST(ValidateModelTest, OneTypeParameterBoundToTwoTypes) {
  // PRelu is not among the ops ValidateGraph knows to take one type: only its schema says so.
  onnx::ModelProto m = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[N, 4] x, int64[4] slope) => (float[N, 4] y)
{
  y = PRelu(x, slope)
}
)");
  EXPECT_TRUE(ir::ValidateGraph(m.graph()).ok());
  EXPECT_THAT(ir::ValidateModel(m).message(),
              HasSubstr("input 0 ('x') is tensor(float) but input 1 ('slope') is tensor(int64), "
                        "and PRelu-9 takes one type T for both"));
}

// The class the structure fuzzer kept finding: a value declared INT64 that its producers make
// FLOAT, which only constant folding revealed. The schemas derive it through the chain, in graph
// order whatever the order of the node list.
TEST(ValidateModelTest, ADerivedTypeThatContradictsTheDeclaredOne) {
  onnx::ModelProto m = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[N, 4] x) => (float[N, 4] y)
<int64[1] axes = {0}>
{
  s = Shape(x)
  f = Cast<to = 1>(s)
  u = Unsqueeze(f, axes)
  y = Identity(x)
}
)");
  Declare(m, "u", onnx::TensorProto::INT64);
  EXPECT_TRUE(ir::ValidateGraph(m.graph()).ok());
  m.mutable_graph()->mutable_node()->SwapElements(0, 2);
  const Status s = ir::ValidateModel(m);
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_THAT(s.message(), HasSubstr("the Unsqueeze node producing 'u' makes output 0 ('u') "
                                     "tensor(float), but the graph declares it tensor(int64)"));

  onnx::ModelProto output = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[N, 4] x) => (float[2] y)
{
  y = Shape(x)
}
)");
  EXPECT_THAT(ir::ValidateModel(output).message(),
              HasSubstr("makes output 0 ('y') tensor(int64), but the graph declares it "
                        "tensor(float)"));
}

// Above opset 17 (ONNX 1.12's last) only what a type parameter binds is checked: counts and
// allowed types may have grown since the schema ONNX 1.12 has.
TEST(ValidateModelTest, AboveTheOpsetsOnnxKnowsOnlyTypeParameters) {
  onnx::ModelProto reduce = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 18]>
g (float[N, 4] x) => (float[N, 1] y)
<int64[1] axes = {1}>
{
  y = ReduceMean(x, axes)
}
)");
  EXPECT_TRUE(ir::ValidateModel(reduce).ok()) << ir::ValidateModel(reduce).ToString();

  onnx::ModelProto m = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 20]>
g (float[N, 4] x) => (float[N, 4] y)
<float[4] bias = {1, 2, 3, 4}, int64[1] axes = {0}>
{
  u = Unsqueeze(bias, axes)
  y = Add(x, bias)
}
)");
  Declare(m, "u", onnx::TensorProto::INT64);
  EXPECT_THAT(ir::ValidateModel(m).message(),
              HasSubstr("makes output 0 ('u') tensor(float), but the graph declares it "
                        "tensor(int64)"));

  // An Add of three inputs: the third is past the schema's list, but not past ValidateGraph's
  // rule for Add, now with the derived types.
  onnx::ModelProto add = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 20]>
g (float[N, 4] x) => (float[N, 4] y)
<float[4] bias = {1, 2, 3, 4}, int64[1] k = {2}, int64[1] axes = {0}>
{
  c = Unsqueeze(k, axes)
  y = Add(x, bias, c)
}
)");
  EXPECT_THAT(ir::ValidateModel(add).message(),
              HasSubstr("mixes element types: 'x' is tensor(float) and 'c' is tensor(int64)"));
}

TEST(ValidateModelTest, OptimizeRefusesASchemaMismatchAsInvalidInput) {
  onnx::ModelProto m = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[N, 4] x) => (float[N, 4] y)
{
  y = Add(x, x, x)
}
)");
  auto report = Optimize(m, {});
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), StatusCode::kInvalidModel);
  EXPECT_THAT(report.status().message(),
              HasSubstr("the input is not a valid model: the Add node producing 'y' has 3 inputs"));
}

}  // namespace
}  // namespace bertopt
