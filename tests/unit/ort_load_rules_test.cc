// Models ONNX Runtime loads with a warning though they name one value twice: bertopt reads them as
// ORT does (ir::FollowOrtLoadRules), and refuses only what ORT refuses, naming the node. Each case
// asks the linked ORT first, so the test fails if ORT's rule changes under us, and then checks
// that ORT computes the same on the model as we read it as on the model as given.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "bertopt/ir/graph.h"
#include "bertopt/ir/validate.h"
#include "ort/session.h"
#include "unit/tiny_models.h"

namespace bertopt::ir {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

// x and y are float[g_elements]; 32 floats make a 128-byte tensor, where ORT's rule for duplicates
// turns.
int g_elements = 2;

onnx::TensorProto Floats(const std::string& name, float value) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  t.add_dims(g_elements);
  for (int i = 0; i < g_elements; ++i) t.add_float_data(value);
  return t;
}

// The rules as we apply them; the warnings, or the error's message as the only line.
std::vector<std::string> Rules(onnx::ModelProto& m) {
  auto w = FollowOrtLoadRules(m);
  return w.ok() ? *w : std::vector<std::string>{w.status().message()};
}

onnx::NodeProto Node(const std::string& op, std::vector<std::string> inputs,
                     const std::string& output, const std::string& name = "") {
  onnx::NodeProto n;
  n.set_op_type(op);
  n.set_name(name);
  for (auto& in : inputs) n.add_input(in);
  n.add_output(output);
  return n;
}

onnx::NodeProto Constant(const std::string& output, float value) {
  onnx::NodeProto n = Node("Constant", {}, output);
  auto* a = n.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  *a->mutable_t() = Floats("", value);
  return n;
}

void AddInput(onnx::ModelProto& m, const std::string& name) {
  auto* in = m.mutable_graph()->add_input();
  in->set_name(name);
  auto* t = in->mutable_type()->mutable_tensor_type();
  t->set_elem_type(onnx::TensorProto::FLOAT);
  t->mutable_shape()->add_dim()->set_dim_value(g_elements);
}

// y = f(x) over float[2], opset 14, IR 8, with `nodes` and `inits`.
onnx::ModelProto Model(std::vector<onnx::NodeProto> nodes,
                       std::vector<onnx::TensorProto> inits = {}, int64_t ir_version = 8) {
  onnx::ModelProto m;
  m.set_ir_version(ir_version);
  m.add_opset_import()->set_version(ir_version < 4 ? 8 : 14);
  AddInput(m, "x");
  auto* out = m.mutable_graph()->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  for (auto& n : nodes) *m.mutable_graph()->add_node() = std::move(n);
  for (auto& t : inits) *m.mutable_graph()->add_initializer() = std::move(t);
  return m;
}

std::vector<float> RunOrt(const onnx::ModelProto& m) {
  const auto dir = testing::MakeTempDir("ort_load_rules");
  auto session = ort::Session::Create(testing::SaveModel(m, dir / "m.onnx"));
  std::filesystem::remove_all(dir);
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (!session.ok()) return {};
  // A graph input with a default (an initializer, or a Constant ORT turns into one) is not among
  // the inputs ORT's session lists: left out, its default is used.
  bool has_default = false;
  for (const auto& t : m.graph().initializer()) has_default |= t.name() == "x";
  for (const auto& n : m.graph().node())
    has_default |= n.op_type() == "Constant" && n.output(0) == "x";
  std::vector<std::pair<std::string, ort::Tensor>> feed;
  if (!has_default)
    feed.emplace_back("x", ort::Tensor::FromFloat({g_elements}, std::vector<float>(g_elements, 1)));
  auto out = (*session)->Run(feed);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? (*out)[0].ToFloat() : std::vector<float>{};
}

// ORT loads `m` (with a warning); we read it with `warnings` warnings into a valid model that
// ORT computes the same on.
void ExpectLoadedAsOrtDoes(const onnx::ModelProto& m, size_t warnings, const std::string& says) {
  ASSERT_TRUE(ort::CheckLoads(m.SerializeAsString()).ok()) << "ORT's rule changed";
  onnx::ModelProto ours = m;
  const std::vector<std::string> w = Rules(ours);
  ASSERT_THAT(w, SizeIs(warnings));
  if (warnings > 0) EXPECT_THAT(w[0], HasSubstr(says));
  EXPECT_TRUE(ValidateGraph(ours.graph()).ok()) << ValidateGraph(ours.graph()).ToString();
  onnx::ModelProto indexed = ours;  // Build takes the nodes out of the model it indexes
  EXPECT_TRUE(Graph::Build(&indexed).ok());
  EXPECT_EQ(RunOrt(ours), RunOrt(m));
}

// ORT refuses `m`; so do we, naming `mention`.
void ExpectRefusedAsOrtDoes(const onnx::ModelProto& m, const std::string& mention) {
  ASSERT_FALSE(ort::CheckLoads(m.SerializeAsString()).ok()) << "ORT's rule changed";
  onnx::ModelProto ours = m;
  auto rules = FollowOrtLoadRules(ours);
  const Status s = rules.ok() ? ValidateGraph(ours.graph()) : rules.status();
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(mention));
}

// Under 128 bytes the last one given wins (as ORT's warning says), from 128 bytes on the first.
class Duplicates : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override { g_elements = GetParam(); }
  void TearDown() override { g_elements = 2; }
  float Winner(float first, float last) const { return g_elements * 4 >= 128 ? first : last; }
};

TEST_P(Duplicates, TwoConstantNodesWritingOneName) {
  onnx::ModelProto m = Model({Constant("c", 10), Constant("c", 20), Node("Add", {"x", "c"}, "y")});
  ExpectLoadedAsOrtDoes(m, 1, "'c' is given 2 times");
  Rules(m);
  EXPECT_EQ(m.graph().node_size(), 2);
  EXPECT_EQ(m.graph().node(0).attribute(0).t().float_data(0), Winner(10, 20));
}

TEST_P(Duplicates, TwoInitializersOfOneName) {
  onnx::ModelProto m = Model({Node("Add", {"x", "w"}, "y")}, {Floats("w", 10), Floats("w", 20)});
  ExpectLoadedAsOrtDoes(m, 1, "'w' is given 2 times");
  Rules(m);
  ASSERT_EQ(m.graph().initializer_size(), 1);
  EXPECT_EQ(m.graph().initializer(0).float_data(0), Winner(10, 20));
}

// Constant nodes count after every initializer, wherever they stand.
TEST_P(Duplicates, AConstantNodeAndAnInitializerOfOneName) {
  ExpectLoadedAsOrtDoes(Model({Constant("w", 20), Node("Add", {"x", "w"}, "y")}, {Floats("w", 10)}),
                        1, "'w' is given 2 times");
  ExpectLoadedAsOrtDoes(Model({Node("Add", {"x", "w"}, "y"), Constant("w", 20)}, {Floats("w", 10)}),
                        1, "'w' is given 2 times");
}

INSTANTIATE_TEST_SUITE_P(Bytes, Duplicates, ::testing::Values(2, 31, 32, 64),
                         [](const auto& info) { return std::to_string(info.param * 4); });

TEST(OrtLoadRules, DuplicatesOfDifferentShapesAreRefused) {
  onnx::TensorProto longer = Floats("w", 20);
  longer.add_dims(1);
  ExpectRefusedAsOrtDoes(Model({Node("Add", {"x", "w"}, "y")}, {Floats("w", 10), longer}),
                         "'w' is given twice with different shapes or types");
}

TEST(OrtLoadRules, AConstantNodeWritingAGraphInputIsItsDefault) {
  onnx::ModelProto m = Model({Constant("x", 5), Node("Neg", {"x"}, "y")});
  ExpectLoadedAsOrtDoes(m, 2, "writes graph input 'x'");
  Rules(m);
  EXPECT_EQ(m.graph().node_size(), 1);
  ASSERT_EQ(m.graph().initializer_size(), 1);
  EXPECT_EQ(m.graph().initializer(0).name(), "x");
}

// From IR 4 on an initializer listed as a graph input may be fed: no constant to the fusions.
// Below IR 4 it is one (ORT refuses to feed it).
TEST(OrtLoadRules, AnInitializerThatIsAGraphInputIsAConstantOnlyBelowIr4) {
  for (int64_t ir : {3, 4, 8}) {
    onnx::ModelProto m = Model({Node("Add", {"x", "w"}, "y")}, {Floats("w", 10)}, ir);
    AddInput(m, "w");
    ASSERT_TRUE(ort::CheckLoads(m.SerializeAsString()).ok()) << ir;
    onnx::ModelProto ours = m;
    const auto warnings = Rules(ours);
    EXPECT_THAT(warnings, SizeIs(ir >= 4 ? 1 : 0)) << ir;
    if (ir >= 4) EXPECT_THAT(warnings[0], HasSubstr("may feed another value"));
    auto graph = Graph::Build(&ours);
    ASSERT_TRUE(graph.ok());
    const bool constant = (*graph)->ConstantTensor((*graph)->FindValue("w")) != nullptr;
    EXPECT_EQ(constant, ir < 4) << ir;
    (*graph)->Commit();
  }
}

TEST(OrtLoadRules, WhatOrtRefusesIsRefusedNamingTheNode) {
  ExpectRefusedAsOrtDoes(
      Model({Node("Add", {"x", "x"}, "y", "add"), Node("Mul", {"x", "x"}, "y", "mul")}),
      "node 'mul' (Mul) writes 'y'");
  ExpectRefusedAsOrtDoes(
      Model({Constant("t", 1), Node("Mul", {"x", "x"}, "t", "mul"), Node("Neg", {"t"}, "y")}),
      "writes 't', which already has a value");
  ExpectRefusedAsOrtDoes(Model({Node("Neg", {"x"}, "x", "neg"), Node("Neg", {"x"}, "y")}),
                         "node 'neg' (Neg) writes 'x'");
  ExpectRefusedAsOrtDoes(
      Model({Node("Neg", {"x"}, "w", "neg"), Node("Add", {"x", "w"}, "y")}, {Floats("w", 1)}),
      "node 'neg' (Neg) writes 'w'");
  ExpectRefusedAsOrtDoes(Model({Node("Neg", {"x"}, "t", "n"), Node("Neg", {"t"}, "y", "n")}),
                         "two nodes are named 'n'");
  onnx::ModelProto twice = Model({Node("Neg", {"x"}, "y")});
  AddInput(twice, "x");
  ExpectRefusedAsOrtDoes(twice, "graph input 'x' is declared twice");
}

TEST(OrtLoadRules, UnnamedNodesAndAnUnsortedGraphLoad) {
  ExpectLoadedAsOrtDoes(Model({Node("Neg", {"t"}, "y"), Node("Neg", {"x"}, "t")}), 0, "");
}

}  // namespace
}  // namespace bertopt::ir
