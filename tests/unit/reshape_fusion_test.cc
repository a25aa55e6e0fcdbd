// Reshape fusion: computed Reshape targets become constants with 0 / -1 entries when exact.
#include <gtest/gtest.h>

#include <string>

#include "bertopt/ir/graph.h"
#include "fmt/format.h"
#include "fusion_test_util.h"
#include "passes/fusions/dim_origin.h"
#include "passes/fusions/fusions.h"
#include "test_models.h"

namespace bertopt {
namespace {

using testing::CountOps;
using testing::ExpectSameOutputs;
using testing::ParseModel;
using testing::RunFusion;

// `n` deterministic values in [-1, 1) as ONNX text, so weights need no storage.
std::string Floats(int n, int seed) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    s += fmt::format("{}{:.4f}", i ? ", " : "", ((i * 37 + seed * 11) % 50) / 25.0 - 1.0);
  }
  return s;
}

// A head-split reshape as torch exports it dynamically (2.6): q = bias + x·W, target
// Concat(Shape(q)[0], Shape(q)[1], {2}, {4}), then the heads Transpose. `{PIECES}` are the
// Concat inputs, `{NODES}` extra nodes, `{OUTPUTS}` extra graph outputs.
std::string HeadSplitModel(int opset, const std::string& nodes, const std::string& pieces,
                           const std::string& outputs = "", const std::string& reshape_attr = "",
                           const std::string& initializers = "") {
  return fmt::format(R"(
<ir_version: 8, opset_import: ["" : {0}]>
g (float[B, S, 8] x, float[B, S, 8] other) => (float[B, 2, S, 4] y{1})
<float[8, 8] w = {{{2}}}, float[8] b = {{{3}}}, int64[1] heads = {{2}}, int64[1] head_size = {{4}},
 int64[1] minus_one = {{-1}}, int64 zero = {{0}}, int64 one = {{1}}, int64[1] one_1d = {{1}},
 int64[1] zero_1d = {{0}}, int64[1] axes0 = {{0}}{7}>
{{
  mm = MatMul(x, w)
  q = Add(b, mm)
{4}
  shape = Concat<axis = 0>({5})
  split = Reshape{6}(q, shape)
  y = Transpose<perm = [0, 2, 1, 3]>(split)
}}
)",
                     opset, outputs, Floats(64, 1), Floats(8, 2), nodes, pieces, reshape_attr,
                     initializers);
}

// Pieces read from Shape(q) with rank-0 indices and Unsqueeze axes as an attribute (opset < 13).
constexpr const char* kDimsOfQ = R"(
  s0 = Shape(q)
  d0 = Gather<axis = 0>(s0, zero)
  u0 = Unsqueeze<axes = [0]>(d0)
  s1 = Shape(q)
  d1 = Gather<axis = 0>(s1, one)
  u1 = Unsqueeze<axes = [0]>(d1))";

struct Result {
  testing::FusionRun run;
  std::vector<int64_t> target;  // the constant the head-split Reshape reads, empty if computed
};

Result Fuse(const onnx::ModelProto& model, const std::string& reshape_output = "split") {
  Result r{RunFusion(model, passes::MakeReshapeFusion()), {}};
  onnx::ModelProto copy = r.run.after;
  auto graph = std::move(ir::Graph::Build(&copy)).value();
  const ir::Node* reshape = graph->FindValue(reshape_output)->producer();
  if (auto values = graph->ConstantAsInts(reshape->input(1))) r.target = *values;
  return r;
}

testing::ParityOptions Dims() { return {.dims = {{"B", 2}, {"S", 5}}}; }

int ShapeChainNodes(const onnx::ModelProto& m) {
  return CountOps(m, "Shape") + CountOps(m, "Gather") + CountOps(m, "Unsqueeze") +
         CountOps(m, "Concat");
}

TEST(ReshapeFusionTest, DimsOfTheDataBecomeZerosAndTheChainIsRemoved) {
  auto model = ParseModel(HeadSplitModel(11, kDimsOfQ, "u0, u1, heads, head_size"));
  Result r = Fuse(model);
  EXPECT_EQ(r.target, (std::vector<int64_t>{0, 0, 2, 4})) << r.run.Misses();
  EXPECT_EQ(ShapeChainNodes(r.run.after), 0);
  EXPECT_EQ(r.run.stats[0].fused, 1);
  ExpectSameOutputs(model, r.run.after, Dims());
  // A second run finds no computed target left.
  Result again = Fuse(r.run.after);
  EXPECT_EQ(again.run.stats[0].candidates, 0);
  EXPECT_EQ(again.target, r.target);
}

TEST(ReshapeFusionTest, Opset14AxesAsInputAndAllowzeroZero) {
  auto model = ParseModel(HeadSplitModel(14, R"(
  s0 = Shape(q)
  d0 = Gather(s0, zero)
  u0 = Unsqueeze(d0, axes0)
  s1 = Shape(q)
  d1 = Gather(s1, one)
  u1 = Unsqueeze(d1, axes0))",
                                         "u0, u1, heads, head_size", "", "<allowzero = 0>"));
  Result r = Fuse(model);
  EXPECT_EQ(r.target, (std::vector<int64_t>{0, 0, 2, 4})) << r.run.Misses();
  EXPECT_EQ(ShapeChainNodes(r.run.after), 0);
  ExpectSameOutputs(model, r.run.after, Dims());
}

TEST(ReshapeFusionTest, GatherWithOneElementIndexNeedsNoUnsqueeze) {
  auto model = ParseModel(HeadSplitModel(13, R"(
  s = Shape(q)
  d0 = Gather(s, zero_1d)
  d1 = Gather(s, one_1d))",
                                         "d0, d1, heads, head_size"));
  Result r = Fuse(model);
  EXPECT_EQ(r.target, (std::vector<int64_t>{0, 0, 2, 4})) << r.run.Misses();
  EXPECT_EQ(ShapeChainNodes(r.run.after), 0);
  ExpectSameOutputs(model, r.run.after, Dims());
}

// DistilBERT (2.10): the pieces read the layer input x, whose leading dims flow through x·W + b
// into q unchanged; -1 stays.
TEST(ReshapeFusionTest, DimOfTheLayerInputThroughMatMulAndBiasBecomesZero) {
  auto model = ParseModel(HeadSplitModel(11, R"(
  sx = Shape(x)
  bsz = Gather<axis = 0>(sx, zero)
  u0 = Unsqueeze<axes = [0]>(bsz))",
                                         "u0, minus_one, heads, head_size"));
  Result r = Fuse(model);
  EXPECT_EQ(r.target, (std::vector<int64_t>{0, -1, 2, 4})) << r.run.Misses();
  EXPECT_EQ(ShapeChainNodes(r.run.after), 0);
  ExpectSameOutputs(model, r.run.after, Dims());
}

TEST(ReshapeFusionTest, AKnownSizeBecomesItsValue) {
  // Dimension 1 of an initializer is 4 whatever the inputs.
  auto model = ParseModel(HeadSplitModel(11, std::string(kDimsOfQ) + R"(
  sw = Shape(w84)
  d = Gather<axis = 0>(sw, one)
  u = Unsqueeze<axes = [0]>(d))",
                                         "u0, u1, heads, u", "", "",
                                         ", float[8, 4] w84 = {" + Floats(32, 3) + "}"));
  Result r = Fuse(model);
  EXPECT_EQ(r.target, (std::vector<int64_t>{0, 0, 2, 4})) << r.run.Misses();
  ExpectSameOutputs(model, r.run.after, Dims());
}

TEST(ReshapeFusionTest, RankZeroConstantPiecesKeepTheirValues) {
  // PyTorch 1.3 stores the N and Hd pieces as rank-0 initializers (2.11); ORT refuses that
  // Concat, so compare against the same model with [1] pieces.
  auto rank0 = ParseModel(
      HeadSplitModel(11, kDimsOfQ, "u0, u1, n0, h0", "", "", ", int64 n0 = {2}, int64 h0 = {4}"));
  auto reference = ParseModel(HeadSplitModel(11, kDimsOfQ, "u0, u1, heads, head_size"));
  Result r = Fuse(rank0);
  EXPECT_EQ(r.target, (std::vector<int64_t>{0, 0, 2, 4})) << r.run.Misses();
  ExpectSameOutputs(reference, r.run.after, Dims());
}

TEST(ReshapeFusionTest, MergeReshapeOfATensorWithThreeConsumers) {
  auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 11]>
g (float[B, 2, S, 4] ctx) => (float[B, S, 8] y)
<int64[1] hidden = {8}, int64 zero = {0}, int64 one = {1}>
{
  ct = Transpose<perm = [0, 2, 1, 3]>(ctx)
  s0 = Shape(ct)
  d0 = Gather<axis = 0>(s0, zero)
  u0 = Unsqueeze<axes = [0]>(d0)
  s1 = Shape(ct)
  d1 = Gather<axis = 0>(s1, one)
  u1 = Unsqueeze<axes = [0]>(d1)
  shape = Concat<axis = 0>(u0, u1, hidden)
  y = Reshape(ct, shape)
}
)");
  Result r = Fuse(model, "y");
  EXPECT_EQ(r.target, (std::vector<int64_t>{0, 0, 8})) << r.run.Misses();
  EXPECT_EQ(ShapeChainNodes(r.run.after), 0);
  ExpectSameOutputs(model, r.run.after, Dims());
}

// --- Negatives (5.3): the Reshape keeps its computed target, with the reason. -----------------

void ExpectUnchanged(const std::string& text, const std::string& reason) {
  auto model = ParseModel(text);
  Result r = Fuse(model);
  EXPECT_TRUE(r.target.empty()) << "fused to a constant of " << r.target.size() << " entries";
  EXPECT_EQ(r.run.stats[0].fused, 0);
  EXPECT_NE(r.run.Misses().find(reason), std::string::npos) << r.run.Misses();
}

TEST(ReshapeFusionTest, PieceThatIsAGraphOutputIsLeftAlone) {
  ExpectUnchanged(HeadSplitModel(11, kDimsOfQ, "u0, u1, heads, head_size", ", int64[1] u1"),
                  "'u1' (output of");
}

TEST(ReshapeFusionTest, PieceReadElsewhereIsLeftAlone) {
  ExpectUnchanged(HeadSplitModel(11, std::string(kDimsOfQ) + "\n  twice = Add(u1, u1)",
                                 "u0, u1, heads, head_size", ", int64[1] twice"),
                  "also read by");
}

TEST(ReshapeFusionTest, ShapeOfADifferentTensorIsLeftAlone) {
  ExpectUnchanged(HeadSplitModel(11, R"(
  s0 = Shape(q)
  d0 = Gather<axis = 0>(s0, zero)
  u0 = Unsqueeze<axes = [0]>(d0)
  s1 = Shape(other)
  d1 = Gather<axis = 0>(s1, one)
  u1 = Unsqueeze<axes = [0]>(d1))",
                                 "u0, u1, heads, head_size"),
                  "dimension 1 of 'other', which is not provably dimension 1");
}

TEST(ReshapeFusionTest, IndexThatIsNotThePositionIsLeftAlone) {
  ExpectUnchanged(HeadSplitModel(11, kDimsOfQ, "u1, u0, heads, head_size"),
                  "dimension 1 of 'q', which is not provably dimension 0");
}

TEST(ReshapeFusionTest, GraphInputPieceIsLeftAlone) {
  auto text = HeadSplitModel(11, kDimsOfQ, "u0, u1, heads, n_in");
  text.replace(text.find("float[B, S, 8] other"), 0, "int64[1] n_in, ");
  ExpectUnchanged(text, "'n_in', but it is a graph input");
}

TEST(ReshapeFusionTest, AllowzeroOneIsLeftAlone) {
  ExpectUnchanged(HeadSplitModel(14, kDimsOfQ, "u0, u1, heads, head_size", "", "<allowzero = 1>"),
                  "allowzero=1");
}

// --- DimTracer: what the fusion relies on to call two dimensions equal. -------------------------

struct Traced {
  explicit Traced(const std::string& text) : model(ParseModel(text)) {
    graph = std::move(ir::Graph::Build(&model)).value();
    tracer = std::make_unique<passes::DimTracer>(*graph);
  }
  const ir::Value* operator[](const char* name) const { return graph->FindValue(name); }
  onnx::ModelProto model;
  std::unique_ptr<ir::Graph> graph;
  std::unique_ptr<passes::DimTracer> tracer;
};

TEST(DimTracerTest, FollowsDimensionsThroughAComputedHeadSplit) {
  // No value_info at all: ranks and dimensions come from the producers alone.
  Traced t(HeadSplitModel(11, kDimsOfQ, "u0, u1, heads, head_size"));
  passes::DimTracer& dims = *t.tracer;
  EXPECT_EQ(dims.Rank(t["y"]), 4);
  EXPECT_TRUE(dims.SameDim(t["y"], 0, t["x"], 0))
      << "batch: Transpose <- Reshape 0 <- Add <- MatMul";
  EXPECT_TRUE(dims.SameDim(t["y"], 2, t["x"], 1)) << "sequence: the piece Shape(q)[1] is q's own";
  EXPECT_EQ(dims.Size(t["y"], 1), 2);
  EXPECT_EQ(dims.Size(t["y"], 3), 4);
  EXPECT_FALSE(dims.SameDim(t["y"], 0, t["x"], 1));
  EXPECT_FALSE(dims.SameDim(t["x"], 0, t["other"], 0)) << "equal symbols are not trusted";
}

TEST(DimTracerTest, BroadcastKeepsTheDimensionOperandsAgreeOnOrOneStretches) {
  Traced t(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[B, 1, 8] a, float[B, S, 8] c, float[B, S, 8] d) => (float[B, S, 8] sum, float[B, S, 8] both)
{
  sum = Add(a, c)
  cc = Relu(c)
  both = Mul(cc, c)
}
)");
  passes::DimTracer& dims = *t.tracer;
  EXPECT_TRUE(dims.SameDim(t["sum"], 1, t["c"], 1)) << "a's 1 stretches";
  EXPECT_FALSE(dims.SameDim(t["sum"], 0, t["c"], 0)) << "a's B and c's B are not provably equal";
  EXPECT_TRUE(dims.SameDim(t["both"], 0, t["c"], 0)) << "both operands are c's";
}

TEST(DimTracerTest, AComputedReshapeEntryIsOnlyTrustedWhereAZeroWouldCopyTheSame) {
  // At run time an entry of 0 copies the input dimension (allowzero=0), so a computed entry that
  // reads x's batch is the output's batch only when the reshaped input has that batch too.
  Traced t(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[B, S] mask, float[B, S, 8] x) => (float[B, 1, 1, S] r, float[B, 1, 1, S] z)
<int64 zero = {0}, int64[1] zero_axes = {0}, int64[1] one = {1}, int64[1] minus_one = {-1}>
{
  sx = Shape(x)
  b = Gather(sx, zero)
  ub = Unsqueeze(b, zero_axes)
  target = Concat<axis = 0>(ub, one, one, minus_one)
  r = Reshape<allowzero = 0>(mask, target)
  z = Reshape<allowzero = 1>(mask, target)
}
)");
  passes::DimTracer& dims = *t.tracer;
  EXPECT_FALSE(dims.SameDim(t["r"], 0, t["x"], 0));
  EXPECT_TRUE(dims.SameDim(t["z"], 0, t["x"], 0));
  EXPECT_EQ(dims.Size(t["r"], 1), 1);
}

TEST(DimTracerTest, ReductionsKeepTheirOtherDimensions) {
  Traced t(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[B, S, 8] x, int64[1] axes) => (float[B, S, 1] mean, float[B, 8] sum, float[B, S, 8] r)
<int64[1] last = {-1}, int64[1] one = {1}>
{
  mean = ReduceMean<axes = [-1]>(x)
  sum = ReduceSum<keepdims = 0>(x, one)
  r = ReduceSum(x, axes)
}
)");
  passes::DimTracer& dims = *t.tracer;
  EXPECT_TRUE(dims.SameDim(t["mean"], 1, t["x"], 1));
  EXPECT_EQ(dims.Size(t["mean"], 2), 1);
  EXPECT_TRUE(dims.SameDim(t["sum"], 1, t["x"], 2));
  EXPECT_NE(dims.Size(t["r"], 0), 1) << "computed axes are unknown, not 'all'";
}

}  // namespace
}  // namespace bertopt
