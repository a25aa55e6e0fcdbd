// SymbolicDims: what the fusions rely on to call two dimensions equal. One test per rule family,
// then the policy on declared shapes.
#include "passes/symbolic_dims.h"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <vector>

#include "test_models.h"

namespace bertopt::passes {
namespace {

using testing::ParseModel;

// Adds value_info for `name` (as shape inference would); dims are sizes or dim_param names.
onnx::ModelProto Declare(onnx::ModelProto model, const std::string& name,
                         const std::vector<std::string>& dims) {
  onnx::ValueInfoProto* vi = model.mutable_graph()->add_value_info();
  vi->set_name(name);
  auto* tensor = vi->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(onnx::TensorProto::FLOAT);
  for (const std::string& d : dims) {
    auto* dim = tensor->mutable_shape()->add_dim();
    if (std::isdigit(d[0])) {
      dim->set_dim_value(std::stoll(d));
    } else {
      dim->set_dim_param(d);
    }
  }
  return model;
}

struct Fixture {
  explicit Fixture(const char* text) : Fixture(ParseModel(text)) {}
  explicit Fixture(onnx::ModelProto m) : model(std::move(m)) {
    graph = std::move(ir::Graph::Build(&model)).value();
    dims = std::make_unique<SymbolicDims>(*graph);
  }
  const ir::Value* operator[](const char* name) const { return graph->FindValue(name); }
  std::string Of(const char* value) {
    auto d = dims->Of((*this)[value]);
    return d ? ToString(*d) : "unknown";
  }
  bool Same(const char* a, const char* b) {
    auto da = dims->Of((*this)[a]);
    auto db = dims->Of((*this)[b]);
    return da && db && *da == *db;
  }
  bool SameDim(const char* a, int da, const char* b, int db) {
    return dims->SameDim((*this)[a], da, (*this)[b], db);
  }
  onnx::ModelProto model;
  std::unique_ptr<ir::Graph> graph;
  std::unique_ptr<SymbolicDims> dims;
};

// --- Reshape ---------------------------------------------------------------------------------

// The torch 1.13 merge-heads Reshape: its target is built from Shape(t) pieces, which ONNX shape
// inference cannot follow. Nothing here has value_info: every dim below is derived.
TEST(SymbolicDimsTest, ReshapeTargetFromShapePiecesCopiesTheDims) {
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, S, 2, 2] t, float[B, S, 4] x) => (float[B, S, 4] y)
<float[4, 4] w = {1,0,0,0, 0,1,0,0, 0,0,1,0, 0,0,0,1}, float[4] bias = {1, 2, 3, 4},
 int64 zero = {0}, int64 one = {1}, int64[1] zero_1d = {0}, int64[1] four = {4},
 int64[1] minus_one = {-1}>
{
  shape = Shape(t)
  b = Gather(shape, zero)
  s = Gather(shape, one)
  b1 = Unsqueeze(b, zero_1d)
  s1 = Unsqueeze(s, zero_1d)
  target = Concat<axis = 0>(b1, s1, four)
  merged = Reshape(t, target)
  projected = MatMul(merged, w)
  dense = Add(bias, projected)
  swapped_target = Concat<axis = 0>(s1, b1, four)
  swapped = Reshape(t, swapped_target)
  inferred_target = Concat<axis = 0>(b1, minus_one, four)
  inferred = Reshape(t, inferred_target)
  y = Add(dense, x)
}
)");
  EXPECT_EQ(f.Of("merged"), "[B, S, 4]");
  EXPECT_TRUE(f.Same("dense", "x"));
  // An entry read from a graph input's dim is that dim: graph inputs are never empty (policy).
  EXPECT_EQ(f.Of("swapped"), "[S, B, 4]");
  EXPECT_FALSE(f.Same("swapped", "x"));
  EXPECT_EQ(f.Of("inferred"), "[B, S, 4]") << "-1 is S: B·S·2·2 = B·(-1)·4";
}

TEST(SymbolicDimsTest, AComputedReshapeEntryIsOnlyTrustedWhereAZeroWouldCopyTheSame) {
  // At run time an entry of 0 copies the input dimension (allowzero=0), so a computed entry that
  // reads the count of non-zeros n (which may be 0 in a run) is the output's dim only when the
  // reshaped input has that dim too, or with allowzero=1. A graph input's dim is never 0.
  Fixture f(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[M, S] mask, float[B, S, 8] x) => (float[B, 1, 1, S] r, float[B, 1, 1, S] z,
                                           float[B, 1, 1, S] i)
<int64 zero = {0}, int64 one_scalar = {1}, int64[1] zero_axes = {0}, int64[1] one = {1},
 int64[1] minus_one = {-1}>
{
  nz = NonZero(x)
  snz = Shape(nz)
  n = Gather(snz, one_scalar)
  un = Unsqueeze(n, zero_axes)
  target = Concat<axis = 0>(un, one, one, minus_one)
  r = Reshape<allowzero = 0>(mask, target)
  z = Reshape<allowzero = 1>(mask, target)
  sx = Shape(x)
  b = Gather(sx, zero)
  ub = Unsqueeze(b, zero_axes)
  input_target = Concat<axis = 0>(ub, one, one, minus_one)
  i = Reshape<allowzero = 0>(mask, input_target)
}
)");
  EXPECT_FALSE(f.SameDim("r", 0, "snz", 0)) << f.Of("r");
  EXPECT_EQ(f.dims->At(f["r"], 1)->size, 1);
  EXPECT_EQ(f.Of("z").substr(0, 16), "[dim 1 of 'nz', ");
  EXPECT_TRUE(f.SameDim("i", 0, "x", 0)) << f.Of("i");
}

// The shape pieces exporters write besides Unsqueeze(Gather(Shape(t), i)): a [1] index, Shape
// with start (opset 15), a Cast of the whole target (keras/tf2onnx int32 shapes), and a dim of a
// tensor whose rank is unknown.
TEST(SymbolicDimsTest, OtherFormsOfShapePieces) {
  Fixture f(R"(
<ir_version: 8, opset_import: ["" : 15]>
g (float[B, S, 8] x, int64[2] computed) => (float[B, S, 8] y)
<int64[1] one_1d = {1}, int64[1] zero_1d = {0}, int64[1] eight = {8}>
{
  sx = Shape(x)
  b = Gather(sx, zero_1d)
  tail = Shape<start = 1>(x)
  target = Concat<axis = 0>(b, tail)
  y = Reshape(x, target)
  as_int32 = Cast<to = 6>(target)
  again = Reshape(x, as_int32)
  unknown = Reshape(x, computed)
  su = Shape(unknown)
  u1 = Gather(su, one_1d)
  from_unknown = Concat<axis = 0>(b, u1, eight)
  reshaped = Reshape(unknown, from_unknown)
}
)");
  EXPECT_EQ(f.Of("y"), "[B, S, 8]");
  EXPECT_EQ(f.Of("again"), "[B, S, 8]");
  EXPECT_EQ(f.Of("unknown"), "[dim 0 of 'unknown', dim 1 of 'unknown']") << "a length-2 target";
  EXPECT_EQ(f.Of("reshaped"), "[B, dim 1 of 'unknown', 8]") << "B: a graph input's dim";
  EXPECT_TRUE(f.SameDim("reshaped", 1, "unknown", 1));
}

// --- Broadcasting, MatMul, and ops that move dims ---------------------------------------------

TEST(SymbolicDimsTest, BroadcastOnlyClaimsWhatEveryRunAgreesOn) {
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, 1, S] a, float[B, 4, 1] b, float[T, 4, S] c, float[1, 1, 8] d) => (float[B, 4, S] y)
{
  ab = Add(a, b)
  ac = Add(a, c)
  ad = Mul(a, d)
  cc = Relu(c)
  both = Mul(cc, c)
  y = Add(ab, a)
}
)");
  EXPECT_EQ(f.Of("ab"), "[B, 4, S]") << "1 stretches";
  // B against T: either may be 1 in some run, so the sum's batch is neither.
  EXPECT_EQ(f.Of("ac"), "[dim 0 of 'ac', 4, S]");
  // S against 8: S is 1 or 8 in any run that works, so the result is 8.
  EXPECT_EQ(f.Of("ad"), "[B, 1, 8]");
  EXPECT_TRUE(f.Same("both", "c")) << "both operands are c's";
}

TEST(SymbolicDimsTest, MatMulTransposeGatherExpandRangeAndUnsqueeze) {
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (int64[B, S] ids, float[B, S, 4, 16] q, float[16] v) => (float[B, S, 4] y)
<float[100, 4] table = {}, int64 zero = {0}, int64 one = {1}>
{
  qt = Transpose<perm = [0, 2, 3, 1]>(q)
  k = Transpose<perm = [0, 2, 1, 3]>(q)
  scores = MatMul(k, qt)
  qv = MatMul(q, v)
  shape = Shape(ids)
  seq = Gather(shape, one)
  positions = Range(zero, seq, one)
  row = Unsqueeze<axes = [0]>(positions)
  position_ids = Expand(row, shape)
  y = Gather(table, position_ids)
  two = Concat<axis = -1>(y, y)
  squeezed = Squeeze<axes = [0]>(row)
}
)");
  EXPECT_EQ(f.Of("qt"), "[B, 4, 16, S]");
  EXPECT_EQ(f.Of("scores"), "[B, 4, S, S]");
  EXPECT_EQ(f.Of("qv"), "[B, S, 4]") << "a 1-D operand drops its dim";
  EXPECT_EQ(f.Of("positions"), "[S]");
  EXPECT_EQ(f.Of("row"), "[1, S]");
  EXPECT_EQ(f.Of("position_ids"), "[B, S]");
  EXPECT_EQ(f.Of("y"), "[B, S, 4]");
  EXPECT_EQ(f.Of("two"), "[B, S, 8]");
  EXPECT_EQ(f.Of("squeezed"), "[S]");
}

TEST(SymbolicDimsTest, ReductionsKeepTheirOtherDimensions) {
  Fixture f(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[B, S, 8] x, int64[1] axes) => (float[B, S, 1] mean, float[B, 8] sum, float[B, S, 8] r)
<int64[1] last = {-1}, int64[1] one = {1}>
{
  mean = ReduceMean<axes = [-1]>(x)
  sum = ReduceSum<keepdims = 0>(x, one)
  r = ReduceSum(x, axes)
  all = ReduceMax(x)
}
)");
  EXPECT_EQ(f.Of("mean"), "[B, S, 1]");
  EXPECT_EQ(f.Of("sum"), "[B, 8]");
  EXPECT_EQ(f.Of("r"), "[dim 0 of 'r', dim 1 of 'r', dim 2 of 'r']")
      << "computed axes are unknown, not 'all' (and the output's declaration is not trusted)";
  EXPECT_EQ(f.Of("all"), "[1, 1, 1]");
}

TEST(SymbolicDimsTest, SliceAndConstantOfShape) {
  // Position ids from a registered buffer (P4) and token types from a zeros ConstantOfShape.
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (int64[B, S] ids, float[B, 6, 4] x, int64[1] computed_axes) => (float[B, 2, 4] y)
<int64[1, 16] buffer = {}, int64 one = {1}, int64[1] axis0 = {0}, int64[1] axis1 = {1},
 int64[1] start = {0}, int64[1] end_big = {9223372036854775807}, int64[1] end_2 = {2},
 int64[1] end_minus_1 = {-1}>
{
  shape = Shape(ids)
  seq = Gather(shape, one)
  seq_1d = Unsqueeze<axes = [0]>(seq)
  positions = Slice(buffer, start, seq_1d, axis1, axis1)
  ids_again = Slice(ids, start, seq_1d, axis1, axis1)
  whole = Slice(x, start, end_big, axis1)
  first_two = Slice(x, start, end_2, axis1)
  all_but_last = Slice(x, start, end_minus_1, axis1)
  somewhere = Slice(x, start, end_2, computed_axes)
  zeros = ConstantOfShape(shape)
  with_ids = Add(ids, positions)
  y = Identity(first_two)
}
)");
  EXPECT_EQ(f.Of("positions"), "[1, min(S, 16)]") << "not provably S";
  EXPECT_EQ(f.Of("with_ids"), "[B, S]") << "min(S, 16) broadcasts against S only where it is S";
  EXPECT_EQ(f.Of("ids_again"), "[B, S]");
  EXPECT_EQ(f.Of("whole"), "[B, 6, 4]");
  EXPECT_EQ(f.Of("first_two"), "[B, 2, 4]");
  EXPECT_EQ(f.Of("all_but_last"), "[B, 5, 4]");
  EXPECT_EQ(f.Of("somewhere"),
            "[dim 0 of 'somewhere', dim 1 of 'somewhere', dim 2 of 'somewhere']");
  EXPECT_EQ(f.Of("zeros"), "[B, S]");
}

TEST(SymbolicDimsTest, FusedOpsKeepTheirInputsDims) {
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 13, "com.microsoft" : 1]>
g (int32[B, S] ids, float[B, S, 4] skip) => (float[B, S, 4] y)
<float[50, 4] word = {}, float[16, 4] position = {}, float[4] gamma = {}, float[4] beta = {},
 float[4, 12] qkv = {}>
{
  e, mask_index = com.microsoft.EmbedLayerNormalization(ids, , word, position, , gamma, beta)
  a = com.microsoft.Attention(e, qkv)
  g = com.microsoft.FastGelu(a)
  y = com.microsoft.SkipLayerNormalization(g, skip, gamma, beta)
}
)");
  EXPECT_EQ(f.Of("e"), "[B, S, 4]");
  EXPECT_EQ(f.Of("mask_index"), "[B]");
  EXPECT_EQ(f.Of("a"), "[B, S, 4]");
  EXPECT_TRUE(f.Same("y", "skip"));
}

// --- Policy: what declared shapes count for --------------------------------------------------

// torch 2.x's mask arithmetic: Flatten, GatherND, and TorchScript's expand(-1, ..) idiom
// Where(Equal(t, ones·-1), ones, t) that turns the -1 entries of a target into 1.
TEST(SymbolicDimsTest, FlattenGatherNdAndTheExpandIdiom) {
  Fixture f(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (bool[B, S] m, int64[B, 1, 1, S, 2] pairs, float[B, 1, S, S] x) => (float[B, 1, S, S] y)
<int64 zero = {0}, int64 one = {1}, int64[1] minus_one = {-1}, int64[1] axis0 = {0}>
{
  flat = Flatten<axis = 2>(m)
  flat1 = Flatten<axis = 1>(m)
  picked = GatherND(m, pairs)
  shape = Shape(m)
  b = Gather(shape, zero)
  s = Gather(shape, one)
  b1 = Unsqueeze(b, axis0)
  s1 = Unsqueeze(s, axis0)
  target = Concat<axis = 0>(b1, minus_one, s1, s1)
  target_shape = Shape(target)
  ones = ConstantOfShape<value = int64[1] {1}>(target_shape)
  minus_ones = Mul(ones, minus_one)
  is_infer = Equal(target, minus_ones)
  fixed = Where(is_infer, ones, target)
  expanded = Expand(picked, fixed)
  y = Identity(x)
}
)");
  EXPECT_EQ(f.Of("flat"), "[dim 0 of 'flat', 1]") << "B·S is no one symbol";
  EXPECT_EQ(f.Of("flat1"), "[B, S]");
  EXPECT_EQ(f.Of("picked"), "[B, 1, 1, S]");
  EXPECT_EQ(f.Of("expanded"), "[B, 1, S, S]");
}

TEST(SymbolicDimsTest, EqualNamesOnGraphInputsAreTheSameSize) {
  // ONNX gives one dim_param one size throughout a model; shape inference's unk__N are not names.
  Fixture f(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[B, S, 8] x, float[B, S, 8] other, float[unk__1, 8] u, float[unk__1, 8] v) => (float[B, S, 8] y)
{
  y = Add(x, other)
}
)");
  EXPECT_TRUE(f.SameDim("x", 0, "other", 0));
  EXPECT_TRUE(f.Same("y", "x"));
  EXPECT_FALSE(f.SameDim("x", 0, "other", 1));
  EXPECT_FALSE(f.SameDim("u", 0, "v", 0));
  EXPECT_TRUE(f.SameDim("u", 0, "u", 0)) << "a dim is always itself";
}

constexpr const char* kProjection = R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, S, 4] x) => (float[B, 128, 8] y)
<float[4, 8] w = {}>
{
  z = MatMul(x, w)
  y = Relu(z)
}
)";

TEST(SymbolicDimsTest, ValueInfoGivesSizesButNotNames) {
  Fixture names(Declare(ParseModel(kProjection), "z", {"B2", "S2", "8"}));
  EXPECT_EQ(names.Of("z"), "[B, S, 8]");
  Fixture size(Declare(ParseModel(kProjection), "z", {"B2", "16", "8"}));
  EXPECT_EQ(size.Of("z"), "[B, 16, 8]");
  EXPECT_EQ(size.Of("y"), "[B, 16, 8]");
}

TEST(SymbolicDimsTest, ConflictingSizesClaimNothing) {
  Fixture f(Declare(ParseModel(kProjection), "z", {"B", "S", "9"}));
  EXPECT_EQ(f.Of("z"), "[B, S, dim 2 of 'z']");
  Fixture g(Declare(ParseModel(kProjection), "z", {"B", "S"}));
  EXPECT_EQ(g.Of("z"), "unknown");
}

TEST(SymbolicDimsTest, DeclaredGraphOutputShapesAreNotTrusted) {
  // Exporters leave stale output dims (the PyTorch 1.3 files declare 128 for any S).
  Fixture f(kProjection);
  EXPECT_EQ(f.Of("y"), "[B, S, 8]");
}

TEST(SymbolicDimsTest, NoRuleGivesOnlyADeclaredRank) {
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, S, 4] x) => (int64[3, N] y)
{
  z = NonZero(x)
  y = Identity(z)
}
)");
  EXPECT_EQ(f.Of("z"), "unknown");
  EXPECT_EQ(f.Of("y"), "[dim 0 of 'y', dim 1 of 'y']") << "a graph output's rank, nothing else";
  EXPECT_TRUE(f.SameDim("z", 1, "z", 1)) << "dim 1 of z is itself, rank or not";
  EXPECT_FALSE(f.SameDim("z", 1, "y", 1));
}

}  // namespace
}  // namespace bertopt::passes
