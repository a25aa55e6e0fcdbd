#include "bertopt/pattern/pattern.h"

#include <gtest/gtest.h>

#include "test_models.h"

namespace bertopt::pattern {
namespace {

using testing::ParseModel;

// y = (x - mean(x)) * 2, with the Sub read twice through one binding.
constexpr const char* kModel = R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[N, 4] x) => (float[N, 4] y)
{
  two = Constant<value = float {2.0}>()
  m = ReduceMean<axes = [-1]>(x)
  d = Sub(x, m)
  y = Mul(two, d)
}
)";

P Centered() {
  P x = Any("x");
  return Op("Sub", {x, Op("ReduceMean", {x}, "mean")}, "diff");
}

struct Fixture {
  explicit Fixture(const char* text) : model(ParseModel(text)) {
    graph = std::move(ir::Graph::Build(&model)).value();
  }
  ir::Node* Producer(const char* value) { return graph->FindValue(value)->producer(); }
  onnx::ModelProto model;
  std::unique_ptr<ir::Graph> graph;
};

TEST(PatternTest, MatchesDagWithBindingsAndCommutativeInputs) {
  Fixture f(kModel);
  MatchResult r = MatchPattern(*f.graph, f.Producer("y"),
                               Op("Mul", {Centered(), Scalar(2.0, 1e-6, "scale")}).Commutative());
  ASSERT_TRUE(r.ok()) << r.reason();
  EXPECT_EQ(r.match()["x"]->name(), "x");
  EXPECT_EQ(r.match()["scale"]->name(), "two");
  EXPECT_EQ(r.match().node("mean")->op_type(), "ReduceMean");
  EXPECT_EQ(r.match().owned_nodes().size(), 3u);  // Mul, Sub, ReduceMean (not the Constant)
}

TEST(PatternTest, WithoutCommutativeTheOrderMatters) {
  Fixture f(kModel);
  MatchResult r = MatchPattern(*f.graph, f.Producer("y"), Op("Mul", {Centered(), Scalar(2.0)}));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.reason().find("expected Sub"), std::string::npos) << r.reason();
}

TEST(PatternTest, WrongScalarSaysWhichValueAndWhy) {
  Fixture f(kModel);
  MatchResult r =
      MatchPattern(*f.graph, f.Producer("y"), Op("Mul", {Centered(), Scalar(0.5)}).Commutative());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.reason().find("'two'"), std::string::npos) << r.reason();
  EXPECT_NE(r.reason().find("expected 0.5"), std::string::npos) << r.reason();
}

TEST(PatternTest, WrongScalarNextToAnyIsReportedInEitherOperandOrder) {
  // Any() also matches the constant in the swapped attempt, whose failure ("'d' is not a
  // constant") must not hide the wrong value.
  for (const char* mul : {"y = Mul(two, d)", "y = Mul(d, two)"}) {
    std::string text = kModel;
    text.replace(text.find("y = Mul(two, d)"), 15, mul);
    Fixture f(text.c_str());
    MatchResult r =
        MatchPattern(*f.graph, f.Producer("y"), Op("Mul", {Any("x"), Scalar(0.5)}).Commutative());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.reason().find("is 2, expected 0.5"), std::string::npos)
        << mul << ": " << r.reason();
  }
}

TEST(PatternTest, OneNameMustBindOneValue) {
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[N, 4] x, float[N, 4] z) => (float[N, 4] y)
{
  m = ReduceMean<axes = [-1]>(z)
  y = Sub(x, m)
}
)");
  MatchResult r = MatchPattern(*f.graph, f.Producer("y"), Centered());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.reason().find("'x' must be one value"), std::string::npos) << r.reason();
}

TEST(PatternTest, IntermediateWithOutsideConsumerIsRejected) {
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[N, 4] x) => (float[N, 4] y, float[N, 1] z)
{
  m = ReduceMean<axes = [-1]>(x)
  y = Sub(x, m)
  z = Neg(m)
}
)");
  MatchResult r = MatchPattern(*f.graph, f.Producer("y"), Centered());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.reason().find("also read by"), std::string::npos) << r.reason();
  // The same subgraph with the mean marked Shared is fine: it is read, not replaced.
  P x = Any("x");
  MatchResult shared =
      MatchPattern(*f.graph, f.Producer("y"), Op("Sub", {x, Op("ReduceMean", {x}).Shared()}));
  EXPECT_TRUE(shared.ok()) << shared.reason();
  EXPECT_EQ(shared.match().owned_nodes().size(), 1u);
}

TEST(PatternTest, IntermediateThatIsAGraphOutputIsRejected) {
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[N, 4] x) => (float[N, 4] y, float[N, 1] m)
{
  m = ReduceMean<axes = [-1]>(x)
  y = Sub(x, m)
}
)");
  MatchResult r = MatchPattern(*f.graph, f.Producer("y"), Centered());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.reason().find("is a graph output"), std::string::npos) << r.reason();
}

TEST(PatternTest, OneOfAndOptionalAndChecks) {
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[N, 4] x) => (float[N, 4] y)
{
  c = Cast<to = 1>(x)
  y = Relu(c)
}
)");
  P x = Any("x");
  EXPECT_TRUE(
      MatchPattern(*f.graph, f.Producer("y"), Op("Relu", {Optional(Op("Cast", {x}), x)})).ok());
  MatchResult checked = MatchPattern(
      *f.graph, f.Producer("y"),
      Op("Relu", {Op("Cast", {x}).Where([](const ir::Graph&, const ir::Node& n, const Match&) {
           return n.AttrInt("to") == 6 ? std::string() : std::string("Cast is not to int32");
         })}));
  ASSERT_FALSE(checked.ok());
  EXPECT_NE(checked.reason().find("Cast is not to int32"), std::string::npos) << checked.reason();
  MatchResult alt = MatchPattern(*f.graph, f.Producer("y"),
                                 Op("Relu", {OneOf({Op("Neg", {x}), Op("Cast", {x}, "cast")})}));
  ASSERT_TRUE(alt.ok()) << alt.reason();
  EXPECT_NE(alt.match().node("cast"), nullptr);
}

}  // namespace
}  // namespace bertopt::pattern
