// Reshape fusion: computed Reshape targets become constants with 0 / -1 entries when exact.
#include <gtest/gtest.h>

#include <string>

#include "bertopt/ir/graph.h"
#include "fmt/format.h"
#include "fusion_test_util.h"
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

// A piece that something else reads stays for that reader; the Reshape still gets a constant
// target (read entry by entry), which is exact whoever else reads the chain.
void ExpectFoldedWithChainKept(const std::string& text, const std::string& kept) {
  auto model = ParseModel(text);
  Result r = Fuse(model);
  EXPECT_EQ(r.target, (std::vector<int64_t>{0, 0, 2, 4})) << r.run.Misses();
  onnx::ModelProto copy = r.run.after;
  auto graph = std::move(ir::Graph::Build(&copy)).value();
  ASSERT_NE(graph->FindValue(kept), nullptr);
  EXPECT_NE(graph->FindValue(kept)->producer(), nullptr) << kept << " was removed";
  ExpectSameOutputs(model, r.run.after, Dims());
}

TEST(ReshapeFusionTest, PieceThatIsAGraphOutputStaysAndTheTargetFolds) {
  ExpectFoldedWithChainKept(
      HeadSplitModel(11, kDimsOfQ, "u0, u1, heads, head_size", ", int64[1] u1"), "u1");
}

TEST(ReshapeFusionTest, PieceReadElsewhereStaysAndTheTargetFolds) {
  ExpectFoldedWithChainKept(HeadSplitModel(11, std::string(kDimsOfQ) + "\n  twice = Add(u1, u1)",
                                           "u0, u1, heads, head_size", ", int64[1] twice"),
                            "u1");
}

// keras2onnx (3.5): int32 pieces, the batch size as Squeeze(Slice(Shape(x), 0, 1)), 1.6.1's
// Unsqueeze'd scalar pieces, the Concat Cast to int64.
TEST(ReshapeFusionTest, KerasInt32TargetWithSlicedBatchBecomesConstant) {
  auto model = ParseModel(HeadSplitModel(11, R"(
  sx = Shape(x)
  sx32 = Cast<to = 6>(sx)
  b1 = Slice(sx32, zero_1d, one_1d, zero_1d)
  b0 = Squeeze<axes = [0]>(b1)
  bu = Unsqueeze<axes = [0]>(b0)
  m1 = Unsqueeze<axes = [0]>(minus_one32)
  cat = Concat<axis = 0>(bu, m1, heads32, head_size32))",
                                         "cat", "", "",
                                         ", int32 minus_one32 = {-1}, int32[1] heads32 = {2}, "
                                         "int32[1] head_size32 = {4}"));
  // The Reshape reads Cast(cat) rather than a Concat.
  for (auto& node : *model.mutable_graph()->mutable_node()) {
    if (node.op_type() == "Concat" && node.output(0) == "shape") {
      node.set_op_type("Cast");
      node.clear_attribute();
      auto* to = node.add_attribute();
      to->set_name("to");
      to->set_type(onnx::AttributeProto::INT);
      to->set_i(onnx::TensorProto::INT64);
    }
  }
  Result r = Fuse(model);
  EXPECT_EQ(r.target, (std::vector<int64_t>{0, -1, 2, 4})) << r.run.Misses();
  ExpectSameOutputs(model, r.run.after, Dims());
}

// The sequence piece reads another graph input, `other`.
constexpr const char* kSequenceOfOther = R"(
  s0 = Shape(q)
  d0 = Gather<axis = 0>(s0, zero)
  u0 = Unsqueeze<axes = [0]>(d0)
  s1 = Shape(other)
  d1 = Gather<axis = 0>(s1, one)
  u1 = Unsqueeze<axes = [0]>(d1))";

// Inputs declared with the same dim_param have the same size in every run (ONNX), so x's S,
// which q has, is other's S.
TEST(ReshapeFusionTest, SameNamedDimOfAnotherInputBecomesZero) {
  auto model = ParseModel(HeadSplitModel(11, kSequenceOfOther, "u0, u1, heads, head_size"));
  Result r = Fuse(model);
  EXPECT_EQ(r.target, (std::vector<int64_t>{0, 0, 2, 4})) << r.run.Misses();
  ExpectSameOutputs(model, r.run.after, Dims());
}

TEST(ReshapeFusionTest, ShapeOfADifferentTensorIsLeftAlone) {
  auto text = HeadSplitModel(11, kSequenceOfOther, "u0, u1, heads, head_size");
  const std::string other = "float[B, S, 8] other";
  text.replace(text.find(other), other.size(), "float[B, T, 8] other");  // T: its own size
  ExpectUnchanged(text, "dimension 1 of 'other', which is not provably dimension 1");
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

}  // namespace
}  // namespace bertopt
