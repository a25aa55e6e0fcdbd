// Constant folding: the arithmetic on constants that keras2onnx and tf2onnx leave in a graph
// becomes initializers with exactly the values ORT computes; what must not be folded stays.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"
#include "fusion_test_util.h"
#include "passes/cleanup.h"
#include "test_models.h"

namespace bertopt::testing {
namespace {

FusionRun Fold(const onnx::ModelProto& model) {
  return RunFusion(model, passes::MakeFoldConstantsPass());
}

// The initializer `name` of `model`, or nullptr.
const onnx::TensorProto* Initializer(const onnx::ModelProto& model, const std::string& name) {
  for (const auto& t : model.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

std::vector<int64_t> DimsOf(const onnx::TensorProto& t) {
  return {t.dims().begin(), t.dims().end()};
}

// "0, 1, ..., n-1" times `step`, as ONNX text.
std::string Counting(int n, double step = 1) {
  std::string s;
  for (int i = 0; i < n; ++i) s += fmt::format("{}{}", i ? ", " : "", i * step);
  return s;
}

// Expects an initializer `name` of `type` and `dims` holding exactly `values`.
void ExpectInts(const onnx::ModelProto& model, const std::string& name, int32_t type,
                const std::vector<int64_t>& dims, const std::vector<int64_t>& values) {
  const onnx::TensorProto* t = Initializer(model, name);
  ASSERT_NE(t, nullptr) << "no initializer '" << name << "'";
  EXPECT_EQ(t->data_type(), type) << name;
  EXPECT_EQ(DimsOf(*t), dims) << name;
  EXPECT_EQ(ir::DecodeAsInts(*t), values) << name;
}

void ExpectFloats(const onnx::ModelProto& model, const std::string& name,
                  const std::vector<int64_t>& dims, const std::vector<float>& values) {
  const onnx::TensorProto* t = Initializer(model, name);
  ASSERT_NE(t, nullptr) << "no initializer '" << name << "'";
  EXPECT_EQ(t->data_type(), onnx::TensorProto::FLOAT) << name;
  EXPECT_EQ(DimsOf(*t), dims) << name;
  EXPECT_EQ(ir::DecodeFloats(*t), values) << name;  // exact: the value ORT computes
}

// What every positive test checks: `folded` nodes folded and `nodes_left` nodes left, a second
// run that folds nothing, and the same outputs through ORT. Returns the run.
FusionRun ExpectFolds(const onnx::ModelProto& model, int folded, int nodes_left,
                      const ParityOptions& parity = {}) {
  FusionRun run = Fold(model);
  EXPECT_EQ(run.stats.at(0).fused, folded);
  EXPECT_EQ(run.after.graph().node_size(), nodes_left);
  FusionRun again = Fold(run.after);
  EXPECT_EQ(again.stats.at(0).fused, 0);
  EXPECT_EQ(again.after.graph().SerializeAsString(), run.after.graph().SerializeAsString())
      << "a second run changed the graph";
  EXPECT_TRUE(ExpectSameOutputs(model, run.after, parity));
  return run;
}

// What every negative test checks: nothing folded and the graph as it was. The pass records no
// reason for a node it leaves (most nodes of a model are not on constants at all), so each test
// says why in its comment.
void ExpectNothingFolded(const onnx::ModelProto& model) {
  FusionRun run = Fold(model);
  EXPECT_EQ(run.stats.at(0).fused, 0);
  EXPECT_EQ(run.after.graph().node_size(), model.graph().node_size());
  EXPECT_EQ(run.after.graph().initializer_size(), model.graph().initializer_size());
  EXPECT_TRUE(ExpectSameOutputs(model, run.after));
}

// `model` with initializer `name` replaced by `tensor` (for tensors too large for the text).
onnx::ModelProto WithInitializer(onnx::ModelProto model, const onnx::TensorProto& tensor) {
  for (auto& t : *model.mutable_graph()->mutable_initializer()) {
    if (t.name() == tensor.name()) t = tensor;
  }
  return model;
}

// --- Folded ------------------------------------------------------------------------------------

// keras2onnx 1.6.5 (exporter-layouts 3.5, 3.7): Div(scores, Sqrt(I Hd)) and Div(f, Sqrt(I 2.0)).
TEST(FoldConstantsTest, SqrtOfAFloatScalar) {
  const onnx::ModelProto model = ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 2, S, S] qk, float[B, S, 4] f) => (float[B, 2, S, S] scores, float[B, S, 4] h)
<float head_size = {4.0}, float two = {2.0}>
{
  sqrt_head_size = Sqrt(head_size)
  scores = Div(qk, sqrt_head_size)
  sqrt_two = Sqrt(two)
  h = Div(f, sqrt_two)
}
)");
  FusionRun run = ExpectFolds(model, 2, 2);
  EXPECT_EQ(CountOps(run.after, "Sqrt"), 0);
  EXPECT_EQ(CountOps(run.after, "Div"), 2);
  ExpectFloats(run.after, "sqrt_head_size", {}, {2.0f});
  ExpectFloats(run.after, "sqrt_two", {}, {static_cast<float>(std::sqrt(2.0))});
  EXPECT_EQ(Initializer(run.after, "head_size"), nullptr) << "the operands are dead";
  EXPECT_EQ(Initializer(run.after, "two"), nullptr);
}

// keras2onnx 1.6.5 position ids (3.2): Range(I:i32 0, I:i32 S, I:i32 1) -> Unsqueeze[0] ->
// Slice({0}, {INT64_MAX}, {1}, {1}) is the int32 row 0..S-1 of shape [1, S].
TEST(FoldConstantsTest, RangeUnsqueezeSliceBecomesOneRow) {
  const onnx::ModelProto model = ParseModel(fmt::format(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 5, 4] words) => (float[B, 5, 4] y)
<float[16, 4] pos = {{{}}}, int32 start = {{0}}, int32 limit = {{5}}, int32 delta = {{1}},
 int64[1] slice_starts = {{0}}, int64[1] slice_ends = {{9223372036854775807}},
 int64[1] slice_axes = {{1}}, int64[1] slice_steps = {{1}}>
{{
  range = Range(start, limit, delta)
  row = Unsqueeze<axes = [0]>(range)
  position_ids = Slice(row, slice_starts, slice_ends, slice_axes, slice_steps)
  positions = Gather(pos, position_ids)
  y = Add(words, positions)
}}
)",
                                                        Counting(64, 0.125)));
  FusionRun run = ExpectFolds(model, 3, 2);
  EXPECT_EQ(CountOps(run.after, "Range") + CountOps(run.after, "Unsqueeze") +
                CountOps(run.after, "Slice"),
            0);
  ExpectInts(run.after, "position_ids", onnx::TensorProto::INT32, {1, 5}, {0, 1, 2, 3, 4});
  EXPECT_EQ(Initializer(run.after, "range"), nullptr) << "only the end of the chain is kept";
}

// keras2onnx 1.6.1 shape pieces (3.5): Unsqueeze(I:i32[] N) as a Concat piece, axes as the
// attribute (opset < 13) or as an input (opset 13). The Concat also reads Shape(x): it stays.
std::string UnsqueezedScalarPieces(int opset) {
  const std::string unsqueeze = opset >= 13 ? "Unsqueeze({}, axes0)" : "Unsqueeze<axes = [0]>({})";
  return fmt::format(R"(
<ir_version: 8, opset_import: ["" : {0}]>
g (float[B, S, 8] x) => (float[B, S, 2, 4] y)
<int32 heads = {{2}}, int32 head_size = {{4}}, int64[1] zero_1d = {{0}}, int64[1] two_1d = {{2}}{3}>
{{
  shape = Shape(x)
  shape32 = Cast<to = 6>(shape)
  batch_seq = Slice(shape32, zero_1d, two_1d)
  heads_1d = {1}
  head_size_1d = {2}
  target32 = Concat<axis = 0>(batch_seq, heads_1d, head_size_1d)
  target = Cast<to = 7>(target32)
  y = Reshape(x, target)
}}
)",
                     opset, fmt::format(fmt::runtime(unsqueeze), "heads"),
                     fmt::format(fmt::runtime(unsqueeze), "head_size"),
                     opset >= 13 ? ", int64[1] axes0 = {0}" : "");
}

TEST(FoldConstantsTest, UnsqueezeOfAnInt32Scalar) {
  for (int opset : {11, 13}) {
    SCOPED_TRACE(fmt::format("opset {}", opset));
    FusionRun run = ExpectFolds(ParseModel(UnsqueezedScalarPieces(opset)), 2, 6);
    EXPECT_EQ(CountOps(run.after, "Unsqueeze"), 0);
    EXPECT_EQ(CountOps(run.after, "Concat"), 1);
    ExpectInts(run.after, "heads_1d", onnx::TensorProto::INT32, {1}, {2});
    ExpectInts(run.after, "head_size_1d", onnx::TensorProto::INT32, {1}, {4});
  }
}

// tf2onnx / keras2onnx build shapes in int32 and Cast them to int64 for Reshape.
TEST(FoldConstantsTest, CastOfInt32ToInt64) {
  FusionRun run = ExpectFolds(ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] x) => (float[B, 2, 4] y)
<int32[3] target32 = {0, 2, -1}>
{
  target = Cast<to = 7>(target32)
  y = Reshape(x, target)
}
)"),
                              1, 1);
  EXPECT_EQ(CountOps(run.after, "Cast"), 0);
  ExpectInts(run.after, "target", onnx::TensorProto::INT64, {3}, {0, 2, -1});
}

// Add of [2, 1] and [3] is [2, 3]; Mul of [2, 1] by a scalar keeps [2, 1] (and its int32 type,
// which the Cast after it then widens).
TEST(FoldConstantsTest, IntegerAddAndMulBroadcast) {
  FusionRun run = ExpectFolds(ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (int64[2, 3] n) => (int64[2, 3] sum_out, int64[2, 3] product_out)
<int64[2, 1] column = {1, 2}, int64[3] row = {10, 20, 30}, int32[2, 1] factors = {3, -4},
 int32 five = {5}>
{
  sum = Add(column, row)
  product = Mul(factors, five)
  product64 = Cast<to = 7>(product)
  sum_out = Add(n, sum)
  product_out = Mul(n, product64)
}
)"),
                              3, 2);
  EXPECT_EQ(CountOps(run.after, "Add"), 1);
  EXPECT_EQ(CountOps(run.after, "Mul"), 1);
  ExpectInts(run.after, "sum", onnx::TensorProto::INT64, {2, 3}, {11, 21, 31, 12, 22, 32});
  ExpectInts(run.after, "product64", onnx::TensorProto::INT64, {2, 1}, {15, -20});
}

TEST(FoldConstantsTest, ConcatOfOneDimensionalPieces) {
  FusionRun run = ExpectFolds(ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 8] x) => (float[B, 2, 4] y)
<int64[1] minus_one = {-1}, int64[2] heads_and_size = {2, 4}>
{
  target = Concat<axis = 0>(minus_one, heads_and_size)
  y = Reshape(x, target)
}
)"),
                              1, 1);
  EXPECT_EQ(CountOps(run.after, "Concat"), 0);
  ExpectInts(run.after, "target", onnx::TensorProto::INT64, {3}, {-1, 2, 4});
}

// The limit is inclusive: a tensor of exactly 4096 elements is folded.
TEST(FoldConstantsTest, TensorOfExactlyTheLimitIsFolded) {
  const onnx::ModelProto model =
      WithInitializer(ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[4096] x) => (float[4096] y)
<float[1] squares = {1.0}>
{
  roots = Sqrt(squares)
  y = Add(x, roots)
}
)"),
                      ir::MakeFloatTensor("squares", {4096}, std::vector<float>(4096, 9)));
  FusionRun run = ExpectFolds(model, 1, 1);
  ExpectFloats(run.after, "roots", {4096}, std::vector<float>(4096, 3));
}

// --- Not folded --------------------------------------------------------------------------------

// float -> integer: ONNX leaves the rounding unspecified, so the fold could disagree with ORT.
TEST(FoldConstantsTest, FloatToIntCastIsNotFolded) {
  ExpectNothingFolded(ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (int64[B, 2] n) => (int64[B, 2] y)
<float[2] f = {2.5, -1.5}>
{
  c = Cast<to = 7>(f)
  y = Add(n, c)
}
)"));
}

// Whole numbers convert exactly (dynamo's CastLike(0.0, n) Range bounds); CastLike casts to its
// second input's type, which need not be constant; Expand of one element is that element repeated.
TEST(FoldConstantsTest, WholeFloatToIntCastLikeAndExpandOfOneElement) {
  FusionRun run = ExpectFolds(ParseModel(R"(
<ir_version: 8, opset_import: ["" : 15]>
g (int64[B, 2] n, float[B, 2] x) => (int64[B, 2] y, float[B, 2] z)
<float[2] f = {2.0, -1.0}, float half = {0.5}, int64[2] shape = {1, 2}>
{
  c = CastLike(f, n)
  y = Add(n, c)
  h = CastLike(half, x)
  e = Expand(h, shape)
  z = Mul(x, e)
}
)"),
                              3, 2);
  ExpectInts(run.after, "c", onnx::TensorProto::INT64, {2}, {2, -1});
  EXPECT_EQ(CountOps(run.after, "CastLike") + CountOps(run.after, "Expand"), 0);
}

// Above 4096 elements a constant is a weight: it is neither decoded nor duplicated, even by an op
// that only reads its dims (Shape); and a result above the limit is not made from small operands.
TEST(FoldConstantsTest, TensorsAboveTheLimitAreNotFolded) {
  const onnx::ModelProto big_input =
      WithInitializer(ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[4097] x) => (float[4097] y)
<float[1] squares = {1.0}>
{
  roots = Sqrt(squares)
  y = Add(x, roots)
}
)"),
                      ir::MakeFloatTensor("squares", {4097}, std::vector<float>(4097, 9)));
  ExpectNothingFolded(big_input);

  const onnx::ModelProto shape_of_weight =
      WithInitializer(ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[64, 65] x) => (float[64, 65] y)
<float[1] weight = {1.0}>
{
  dims = Shape(weight)
  y = Reshape(x, dims)
}
)"),
                      ir::MakeFloatTensor("weight", {64, 65}, std::vector<float>(64 * 65, 1)));
  ExpectNothingFolded(shape_of_weight);

  ExpectNothingFolded(ParseModel(fmt::format(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (int64[65, 64] n) => (int64[65, 64] y)
<int64[65, 1] column = {{{}}}, int64[1, 64] row = {{{}}}>
{{
  table = Mul(column, row)
  y = Add(n, table)
}}
)",
                                             Counting(65), Counting(64))));
}

// A graph output keeps the node that makes it (its name is the model's interface; an initializer
// cannot be a graph output in every IR version ORT loads). The Sqrt before it still folds.
TEST(FoldConstantsTest, GraphOutputIsNotFolded) {
  const onnx::ModelProto model = ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 4] x) => (float[] minus_two, float[B, 4] y)
<float four = {4.0}>
{
  two = Sqrt(four)
  minus_two = Neg(two)
  y = Mul(x, two)
}
)");
  FusionRun run = ExpectFolds(model, 1, 2);
  EXPECT_EQ(CountOps(run.after, "Sqrt"), 0);
  EXPECT_EQ(CountOps(run.after, "Neg"), 1) << "its output is a graph output";
  ExpectFloats(run.after, "two", {}, {2.0f});

  ExpectNothingFolded(ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 4] x) => (float[] two, float[B, 4] y)
<float four = {4.0}>
{
  two = Sqrt(four)
  y = Mul(x, two)
}
)"));
}

// float16 is not decoded (fp16 exports are folded by the exporter or left as they are).
TEST(FoldConstantsTest, Float16IsNotFolded) {
  onnx::TensorProto half;
  half.set_name("half");
  half.set_data_type(onnx::TensorProto::FLOAT16);
  half.add_dims(2);
  for (float v : {1.5f, -0.25f}) half.add_int32_data(ir::FloatToHalf(v));
  ExpectNothingFolded(WithInitializer(ParseModel(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (float[B, 2] x) => (float[B, 2] y)
<float[2] half = {0.0, 0.0}>
{
  widened = Cast<to = 1>(half)
  y = Add(x, widened)
}
)"),
                                      half));
}

}  // namespace
}  // namespace bertopt::testing
