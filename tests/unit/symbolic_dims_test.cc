#include "passes/fusions/symbolic_dims.h"

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
  std::string Of(const char* value) {
    auto d = dims->Of(graph->FindValue(value));
    return d ? dims->ToString(*d) : "unknown";
  }
  bool Same(const char* a, const char* b) {
    auto da = dims->Of(graph->FindValue(a));
    auto db = dims->Of(graph->FindValue(b));
    return da && db && dims->Same(*da, *db);
  }
  onnx::ModelProto model;
  std::unique_ptr<ir::Graph> graph;
  std::unique_ptr<SymbolicDims> dims;
};

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
  EXPECT_EQ(f.Of("swapped"), "[S, B, 4]");
  EXPECT_FALSE(f.Same("swapped", "x"));
  EXPECT_EQ(f.Of("inferred"), "[B, S, 4]") << "-1 is S: B·S·2·2 = B·(-1)·4";
}

TEST(SymbolicDimsTest, BroadcastOnlyClaimsWhatEveryRunAgreesOn) {
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, 1, S] a, float[B, 4, 1] b, float[T, 4, S] c, float[1, 1, 8] d) => (float[B, 4, S] y)
{
  ab = Add(a, b)
  ac = Add(a, c)
  ad = Mul(a, d)
  y = Add(ab, a)
}
)");
  EXPECT_EQ(f.Of("ab"), "[B, 4, S]");
  // B against T: either may be 1 in some run, so the sum's batch is neither.
  EXPECT_EQ(f.Of("ac"), "[dim 0 of 'ac', 4, S]");
  // S against 8: S is 1 or 8 in any run that works, so the result is 8.
  EXPECT_EQ(f.Of("ad"), "[B, 1, 8]");
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

TEST(SymbolicDimsTest, DeclaredAndDerivedDimsOfOneAxisAreTheSame) {
  Fixture f(Declare(ParseModel(kProjection), "z", {"B2", "S2", "8"}));
  EXPECT_EQ(f.Of("z"), "[B, S, 8]");
  EXPECT_TRUE(f.dims->Same(SymbolicDims::Dim::Named("$B2"), SymbolicDims::Dim::Named("$B")));
  EXPECT_TRUE(f.dims->Same(SymbolicDims::Dim::Named("$S2"), SymbolicDims::Dim::Named("$S")));
  EXPECT_FALSE(f.dims->Same(SymbolicDims::Dim::Named("$B2"), SymbolicDims::Dim::Named("$S")));
}

TEST(SymbolicDimsTest, DeclaredGraphOutputShapesAreNotTrusted) {
  // Exporters leave stale output dims (the PyTorch 1.3 files declare 128 for any S).
  Fixture f(kProjection);
  EXPECT_EQ(f.Of("y"), "[B, S, 8]");
  EXPECT_EQ(f.dims->SizeOf(SymbolicDims::Dim::Named("$S")), -1);
}

TEST(SymbolicDimsTest, ConflictingSizesClaimNothing) {
  Fixture f(Declare(ParseModel(kProjection), "z", {"B", "S", "9"}));
  EXPECT_EQ(f.Of("z"), "[B, S, dim 2 of 'z']");
  Fixture g(Declare(ParseModel(kProjection), "z", {"B", "S"}));
  EXPECT_EQ(g.Of("z"), "unknown");
}

TEST(SymbolicDimsTest, TransposeGatherExpandRangeAndUnsqueeze) {
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (int64[B, S] ids, float[B, S, 4, 16] q) => (float[B, S, 4] y)
<float[100, 4] table = {}, int64 zero = {0}, int64 one = {1}>
{
  qt = Transpose<perm = [0, 2, 3, 1]>(q)
  shape = Shape(ids)
  seq = Gather(shape, one)
  positions = Range(zero, seq, one)
  row = Unsqueeze<axes = [0]>(positions)
  position_ids = Expand(row, shape)
  y = Gather(table, position_ids)
}
)");
  EXPECT_EQ(f.Of("qt"), "[B, 4, 16, S]");
  EXPECT_EQ(f.Of("positions"), "[S]");
  EXPECT_EQ(f.Of("row"), "[1, S]");
  EXPECT_EQ(f.Of("position_ids"), "[B, S]");
  EXPECT_EQ(f.Of("y"), "[B, S, 4]");
}

TEST(SymbolicDimsTest, SliceAndConstantOfShape) {
  // Position ids from a registered buffer (P4) and token types from a zeros ConstantOfShape.
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 11]>
g (int64[B, S] ids, float[B, 6, 4] x) => (float[B, 2, 4] y)
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
  zeros = ConstantOfShape(shape)
  y = Identity(first_two)
}
)");
  EXPECT_EQ(f.Of("positions"), "[1, dim 1 of 'positions']") << "min(S, 16): not provably S";
  EXPECT_EQ(f.Of("ids_again"), "[B, S]");
  EXPECT_EQ(f.Of("whole"), "[B, 6, 4]");
  EXPECT_EQ(f.Of("first_two"), "[B, 2, 4]");
  EXPECT_EQ(f.Of("all_but_last"), "[B, 5, 4]");
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
  y = com.microsoft.SkipLayerNormalization(a, skip, gamma, beta)
}
)");
  EXPECT_EQ(f.Of("e"), "[B, S, 4]");
  EXPECT_EQ(f.Of("mask_index"), "[B]");
  EXPECT_EQ(f.Of("a"), "[B, S, 4]");
  EXPECT_TRUE(f.Same("y", "skip"));
}

TEST(SymbolicDimsTest, NoRuleAndNoDeclarationIsUnknown) {
  Fixture f(R"(
<ir_version: 7, opset_import: ["" : 13]>
g (float[B, S, 4] x) => (int64[3, N] y)
{
  z = NonZero(x)
  y = Identity(z)
}
)");
  EXPECT_EQ(f.Of("z"), "unknown");
  EXPECT_EQ(f.Of("y"), "[3, N]") << "declared";
}

}  // namespace
}  // namespace bertopt::passes
