#include "passes/convert/input_int32.h"

#include <gtest/gtest.h>

#include "fusion_test_util.h"
#include "test_models.h"

namespace bertopt::passes {
namespace {

using onnx::TensorProto;
using testing::CountOps;
using testing::ExpectSameOutputs;
using testing::ParseModel;

onnx::ModelProto Convert(const onnx::ModelProto& original, InputInt32Result* result = nullptr) {
  onnx::ModelProto m = original;
  auto graph = ir::Graph::Build(&m);
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  auto r = ConvertInputsToInt32(**graph);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  if (r.ok() && result) *result = *r;
  (*graph)->Commit();
  return m;
}

TEST(InputInt32Test, FusedOpsReadTheInputsDirectlyAndInt64ReadersShareOneCast) {
  // ids feed a fused-style Cast to int32 (removed), a Gather (takes int32 as is), a Shape, and an
  // Add with an int64 constant (needs int64: one Cast). The mask feeds a Cast to float.
  const auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (int64[B, S] ids, int64[B, S] mask)
  => (float[B, S, 2] e, int32[B, S] i, int64[2] s, int64[B, S] p, int64[B, S] q, float[B, S] f)
<float[8, 2] table = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, int64 one = {1}>
{
  i = Cast <to = 6> (ids)
  e = Gather(table, ids)
  s = Shape(ids)
  p = Add(ids, one)
  q = Mul(ids, one)
  f = Cast <to = 1> (mask)
}
)");
  InputInt32Result r;
  const auto m = Convert(model, &r);
  EXPECT_EQ(r.inputs, (std::vector<std::string>{"ids", "mask"}));
  EXPECT_EQ(r.casts_removed, 0);  // i is a graph output: its Cast stays to keep the name
  EXPECT_EQ(r.casts_added, 1);
  EXPECT_EQ(m.graph().input(0).type().tensor_type().elem_type(), TensorProto::INT32);
  EXPECT_EQ(m.graph().input(1).type().tensor_type().elem_type(), TensorProto::INT32);
  EXPECT_EQ(CountOps(m, "Cast"), 3);
  ExpectSameOutputs(model, m, {.int_high = {{"ids", 8}}});
}

TEST(InputInt32Test, RemovesTheInt32CastsAndNarrowsComparedConstants) {
  const auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (int64[B, S] input_ids) => (int32[B, S] y, bool[B, S] pad)
<int64 pad_id = {1}>
{
  c = Cast <to = 6> (input_ids)
  y = Add(c, c)
  pad = Equal(input_ids, pad_id)
}
)");
  InputInt32Result r;
  const auto m = Convert(model, &r);
  EXPECT_EQ(r.casts_removed, 1);
  EXPECT_EQ(r.casts_added, 0);
  EXPECT_EQ(CountOps(m, "Cast"), 0);
  ASSERT_EQ(m.graph().initializer_size(), 1);
  EXPECT_EQ(m.graph().initializer(0).data_type(), TensorProto::INT32);
  ExpectSameOutputs(model, m, {.int_high = {{"input_ids", 4}}});
}

TEST(InputInt32Test, LeavesOtherInputsAlone) {
  const auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (int64[B] lengths, float[B, S] x, int32[B, S] ids) => (int64[B] y, float[B, S] z, int32[B, S] w)
{
  y = Neg(lengths)
  z = Neg(x)
  w = Neg(ids)
}
)");
  InputInt32Result r;
  const auto m = Convert(model, &r);
  EXPECT_TRUE(r.inputs.empty());
  EXPECT_EQ(m.graph().input(0).type().tensor_type().elem_type(), TensorProto::INT64);
}

}  // namespace
}  // namespace bertopt::passes
