#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include "bertopt/ir/graph.h"
#include "bertopt/ir/tensor.h"
#include "test_models.h"

namespace bertopt::ir {
namespace {

using testing::CountOps;
using testing::ParseModel;

constexpr const char* kChain = R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[N, 4] x) => (float[N, 4] y)
<float[4] bias = {1.0, 2.0, 3.0, 4.0}, float[4] unused = {0.0, 0.0, 0.0, 0.0}>
{
  two = Constant<value = float {2.0}>()
  a = Identity(x)
  b = Mul(a, two)
  dead = Neg(b)
  y = Add(b, bias)
}
)";

std::unique_ptr<Graph> BuildOrDie(onnx::ModelProto* m) {
  auto g = Graph::Build(m);
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return std::move(g).value();
}

// Every use list matches the node inputs and every producer matches the node outputs.
void ExpectIndexConsistent(const Graph& g) {
  for (Node* n : g.Nodes()) {
    for (int i = 0; i < n->num_inputs(); ++i) {
      Value* v = n->input(i);
      EXPECT_EQ(n->proto().input(i), v ? v->name() : "");
      if (!v) continue;
      int found = 0;
      for (const Use& u : v->uses()) found += u.node == n && u.index == i;
      EXPECT_EQ(found, 1) << v->name() << " use by " << n->DisplayName();
    }
    for (Value* v : n->outputs()) {
      if (v) EXPECT_EQ(v->producer(), n);
    }
  }
}

TEST(GraphTest, IndexesProducersUsesInputsOutputsAndInitializers) {
  auto model = ParseModel(kChain);
  auto g = BuildOrDie(&model);
  EXPECT_EQ(g->NumNodes(), 5);
  EXPECT_EQ(model.graph().node_size(), 0) << "nodes are moved into the Graph";
  Value* b = g->FindValue("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->producer()->op_type(), "Mul");
  EXPECT_EQ(b->uses().size(), 2u);
  EXPECT_TRUE(g->FindValue("x")->is_graph_input());
  EXPECT_TRUE(g->FindValue("y")->is_graph_output());
  EXPECT_NE(g->FindValue("bias")->initializer(), nullptr);
  ASSERT_EQ(g->Inputs().size(), 1u);
  EXPECT_EQ(g->Inputs()[0]->name(), "x");
  EXPECT_EQ(g->OpsetVersion(), 13);
  ExpectIndexConsistent(*g);
}

TEST(GraphTest, ConstantsFromInitializersAndConstantNodes) {
  auto model = ParseModel(kChain);
  auto g = BuildOrDie(&model);
  EXPECT_EQ(g->ScalarValue(g->FindValue("two")), 2.0);
  auto bias = g->ConstantAsDoubles(g->FindValue("bias"));
  ASSERT_TRUE(bias);
  EXPECT_EQ(*bias, (std::vector<double>{1, 2, 3, 4}));
  EXPECT_FALSE(g->ScalarValue(g->FindValue("bias"))) << "four elements are not a scalar";
  EXPECT_EQ(g->ConstantTensor(g->FindValue("x")), nullptr) << "a graph input is not constant";
  EXPECT_EQ(g->ConstantTensor(g->FindValue("b")), nullptr) << "a computed value is not constant";
  EXPECT_EQ(*g->Shape(g->FindValue("x")), (std::vector<int64_t>{-1, 4}));
  EXPECT_EQ(g->ElementType(g->FindValue("bias")), onnx::TensorProto::FLOAT);
}

TEST(GraphTest, RoundTripWithoutChangesIsLossless) {
  auto model = ParseModel(kChain);
  model.add_metadata_props()->set_key("k");
  model.mutable_graph()->add_value_info()->set_name("b");
  const onnx::ModelProto original = model;
  auto g = BuildOrDie(&model);
  g->Commit();
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(model, original));
  EXPECT_FALSE(g->modified());
}

TEST(GraphTest, ReplaceAllUsesRewiresConsumersAndKeepsIndexes) {
  auto model = ParseModel(kChain);
  auto g = BuildOrDie(&model);
  Value* a = g->FindValue("a");
  Value* x = g->FindValue("x");
  ASSERT_TRUE(g->ReplaceAllUses(a, x).ok());
  EXPECT_TRUE(a->uses().empty());
  EXPECT_EQ(x->uses().size(), 2u);  // the Identity and the Mul
  ExpectIndexConsistent(*g);
  EXPECT_FALSE(g->ReplaceAllUses(g->FindValue("y"), x).ok()) << "graph outputs keep their names";
}

TEST(GraphTest, EraseAndAddNodeReproducingAValue) {
  auto model = ParseModel(kChain);
  auto g = BuildOrDie(&model);
  Node* mul = g->FindValue("b")->producer();
  g->EraseNode(mul);
  EXPECT_TRUE(mul->erased());
  EXPECT_EQ(g->FindValue("b")->producer(), nullptr);
  EXPECT_TRUE(g->FindValue("two")->uses().empty());
  Node* add = g->AddNode("Add", {"a", "two"}, {"b"});
  EXPECT_EQ(g->FindValue("b")->producer(), add);
  EXPECT_EQ(g->NumNodes(), 5);
  ExpectIndexConsistent(*g);
  ASSERT_TRUE(g->TopologicalSort().ok());
  g->Commit();
  EXPECT_EQ(CountOps(model, "Mul"), 0);
  EXPECT_EQ(CountOps(model, "Add"), 2);
}

TEST(GraphTest, DeadCodeRemovalFollowsChainsAndKeepsOutputs) {
  auto model = ParseModel(kChain);
  auto g = BuildOrDie(&model);
  EXPECT_EQ(g->RemoveDeadNodes(), 1);           // Neg
  EXPECT_EQ(g->RemoveUnusedInitializers(), 1);  // unused
  g->Commit();
  EXPECT_EQ(CountOps(model, "Neg"), 0);
  EXPECT_EQ(model.graph().initializer_size(), 1);
  EXPECT_EQ(model.graph().initializer(0).name(), "bias");
  // Removing the output's only consumer chain must not remove the output's producer.
  EXPECT_EQ(g->RemoveDeadNodes(), 0);
}

TEST(GraphTest, TopologicalSortOrdersNodesAndDetectsCycles) {
  auto model = ParseModel(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[2] x) => (float[2] z)
{
  z = Relu(y)
  y = Neg(x)
}
)");
  auto g = BuildOrDie(&model);
  ASSERT_TRUE(g->TopologicalSort().ok());
  g->Commit();
  EXPECT_EQ(model.graph().node(0).op_type(), "Neg");
  EXPECT_EQ(model.graph().node(1).op_type(), "Relu");

  auto cyclic = ParseModel(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[2] x) => (float[2] z)
{
  a = Add(x, b)
  b = Neg(a)
  z = Relu(b)
}
)");
  auto cg = BuildOrDie(&cyclic);
  Status s = cg->TopologicalSort();
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_NE(s.message().find("cycle"), std::string::npos);
}

TEST(GraphTest, RejectsTwoProducersOfOneValue) {
  auto model = ParseModel(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[2] x) => (float[2] y)
{
  y = Neg(x)
  y = Relu(x)
}
)");
  const onnx::ModelProto original = model;
  auto g = Graph::Build(&model);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("'y' is produced by two nodes"), std::string::npos);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(model, original))
      << "a failed Build gives the nodes back";
}

TEST(GraphTest, SubgraphReadsCountAsImplicitUses) {
  auto model = ParseModel(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (bool c, float[2] x) => (float[2] y)
{
  outer = Neg(x)
  y = If(c) <then_branch = t () => (float[2] r) { r = Identity(outer) },
             else_branch = e () => (float[2] r2) { r2 = Identity(x) }>
}
)");
  auto g = BuildOrDie(&model);
  Value* outer = g->FindValue("outer");
  ASSERT_EQ(outer->uses().size(), 1u);
  EXPECT_EQ(outer->uses()[0].index, Use::kImplicitUse);
  EXPECT_EQ(g->RemoveDeadNodes(), 0) << "Neg is read inside the If";
}

TEST(GraphTest, UniqueNamesAndNewInitializers) {
  auto model = ParseModel(kChain);
  auto g = BuildOrDie(&model);
  EXPECT_NE(g->UniqueName("b"), "b");
  EXPECT_EQ(g->UniqueName("fresh"), "fresh");
  Value* w = g->AddInitializer(MakeFloatTensor("bias", {2}, {5, 6}));
  EXPECT_NE(w->name(), "bias");
  EXPECT_EQ(*g->ConstantAsDoubles(w), (std::vector<double>{5, 6}));
}

TEST(TensorTest, HalfConversionRoundsToNearestEven) {
  EXPECT_EQ(FloatToHalf(1.0f), 0x3c00);
  EXPECT_EQ(FloatToHalf(-2.0f), 0xc000);
  EXPECT_EQ(FloatToHalf(65504.0f), 0x7bff);
  EXPECT_EQ(FloatToHalf(1e6f), 0x7c00) << "overflow saturates to infinity";
  EXPECT_EQ(FloatToHalf(1e-12f), 0x0000) << "BERT's epsilon underflows in float16";
  EXPECT_EQ(FloatToHalf(5.9604645e-8f), 0x0001) << "smallest subnormal";
  EXPECT_FLOAT_EQ(HalfToFloat(FloatToHalf(1.41421356f)), 1.4140625f);
  for (uint16_t h : {0x0001, 0x03ff, 0x0400, 0x3555, 0x7bff, 0x8001, 0xfbff}) {
    EXPECT_EQ(FloatToHalf(HalfToFloat(h)), h) << std::hex << h;
  }
}

TEST(TensorTest, PayloadBytesAreTheSameForRawAndTypedStorage) {
  onnx::TensorProto raw = MakeFloatTensor("w", {2}, {1.5f, -2.0f});
  onnx::TensorProto typed;
  typed.set_data_type(onnx::TensorProto::FLOAT);
  typed.add_dims(2);
  typed.add_float_data(1.5f);
  typed.add_float_data(-2.0f);
  ASSERT_TRUE(PayloadBytes(raw));
  EXPECT_EQ(PayloadBytes(raw), PayloadBytes(typed));

  onnx::TensorProto half;  // float16 in int32_data, one value per element
  half.set_data_type(onnx::TensorProto::FLOAT16);
  half.add_dims(2);
  half.add_int32_data(0x3c00);
  half.add_int32_data(0xc000);
  EXPECT_EQ(PayloadBytes(half), std::string("\x00\x3c\x00\xc0", 4));

  typed.add_float_data(3.0f);  // three values for two elements
  EXPECT_FALSE(PayloadBytes(typed));
}

}  // namespace
}  // namespace bertopt::ir
