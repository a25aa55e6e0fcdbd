// first_token: per-token layers read only by the pooler's Gather(axis 1, index 0) compute the
// first token alone; anything that needs the other tokens keeps them.
#include <gtest/gtest.h>

#include <string>

#include "fusion_test_util.h"
#include "passes/fusions/fusions.h"
#include "test_models.h"

namespace bertopt::testing {
namespace {

// The tail of a BERT classifier: output projection, residual LayerNormalization, a dense layer,
// then the pooler's first-token Gather. `extra` adds lines to the body, `outputs` the outputs.
std::string Tail(const std::string& opset, const std::string& outputs, const std::string& body) {
  return "<ir_version: 8, opset_import: [\"\" : " + opset + R"(]>
g (float[B, S, 4] attn, float[B, S, 4] h) => ()" +
         outputs + R"()
<float[4, 4] w = {0.5, -0.25, 0.1, 0.3, -0.4, 0.2, 0.6, -0.1,
                  0.3, 0.3, -0.5, 0.2, 0.1, -0.6, 0.4, 0.25},
 float[4, 4] w2 = {0.2, 0.1, -0.3, 0.4, 0.6, -0.2, 0.1, 0.1,
                   -0.5, 0.3, 0.2, 0.2, 0.3, 0.4, -0.1, -0.6},
 float[4] bias = {0.05, -0.1, 0.2, -0.3}, float[4] gamma = {1.5, 0.5, -1.0, 2.0},
 float[4] beta = {0.1, -0.2, 0.3, 0.0}, float[3, 4] table = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12},
 int64 zero = {0}, int64 one = {1}>
{
)" + body +
         "\n}\n";
}

constexpr const char* kBertTail = R"(
  mm = MatMul(attn, w)
  dense = Add(mm, bias)
  res = Add(dense, h)
  ln = LayerNormalization<axis = -1, epsilon = 1e-12>(res, gamma, beta)
  mm2 = MatMul(ln, w2)
  act = Tanh(mm2)
  out = Add(act, ln)
  y = Gather<axis = 1>(out, zero)
)";

int CountSlices(const onnx::ModelProto& m) { return CountOps(m, "Slice"); }

TEST(FirstTokenTest, TheLayersAfterAttentionComputeTheFirstTokenOnly) {
  const onnx::ModelProto before = ParseModel(Tail("17", "float[B, 4] y", kBertTail));
  FusionRun run = RunFusion(before, passes::MakeFirstTokenPass());
  ASSERT_EQ(run.stats.at(0).fused, 1) << run.Misses();
  EXPECT_EQ(CountSlices(run.after), 2) << "attn and h, each sliced once";
  EXPECT_EQ(CountOps(run.after, "MatMul"), 2) << "the old full-sequence nodes are gone";
  EXPECT_EQ(CountOps(run.after, "LayerNormalization"), 1);
  EXPECT_TRUE(ExpectSameOutputs(before, run.after, {.dims = {{"B", 2}, {"S", 5}}}));
  // A second run finds its own slices and changes nothing.
  FusionRun again = RunFusion(run.after, passes::MakeFirstTokenPass());
  EXPECT_EQ(again.stats.at(0).fused, 0);
  EXPECT_NE(again.Misses().find("already its first token only"), std::string::npos)
      << again.Misses();
}

TEST(FirstTokenTest, BeforeOpset10TheSliceTakesAttributes) {
  const onnx::ModelProto before = ParseModel(Tail("9", "float[B, 4] y", R"(
  mm = MatMul(attn, w)
  dense = Add(mm, bias)
  res = Add(dense, h)
  act = Tanh(res)
  y = Gather<axis = 1>(act, zero)
)"));
  FusionRun run = RunFusion(before, passes::MakeFirstTokenPass());
  ASSERT_EQ(run.stats.at(0).fused, 1) << run.Misses();
  for (const auto& n : run.after.graph().node()) {
    if (n.op_type() == "Slice") EXPECT_EQ(n.input_size(), 1) << "opset 9 Slice has no inputs";
  }
  EXPECT_EQ(CountSlices(run.after), 2);
  EXPECT_TRUE(ExpectSameOutputs(before, run.after, {.dims = {{"B", 2}, {"S", 5}}}));
}

TEST(FirstTokenTest, HiddenStatesThatAreAlsoAnOutputKeepEveryToken) {
  const onnx::ModelProto before =
      ParseModel(Tail("17", "float[B, 4] y, float[B, S, 4] out", kBertTail));
  FusionRun run = RunFusion(before, passes::MakeFirstTokenPass());
  EXPECT_EQ(run.stats.at(0).fused, 0);
  EXPECT_NE(run.Misses().find("read at every token"), std::string::npos) << run.Misses();
  EXPECT_EQ(CountSlices(run.after), 0);
}

TEST(FirstTokenTest, AnotherReaderOfAnInnerValueStopsTheRegionThere) {
  // ln is also reduced over the sequence: it and what precedes it keep every token; the layers
  // after ln still shrink (their frontier is ln itself, whose rank-3 shape is declared).
  const onnx::ModelProto before = ParseModel(Tail("17", "float[B, 4] y, float[B, 1, 4] mean", R"(
  mm = MatMul(attn, w)
  dense = Add(mm, bias)
  res = Add(dense, h)
  ln = LayerNormalization<axis = -1, epsilon = 1e-12>(res, gamma, beta)
  mean = ReduceMean<axes = [1]>(ln)
  mm2 = MatMul(ln, w2)
  act = Tanh(mm2)
  out = Add(act, ln)
  y = Gather<axis = 1>(out, zero)
)"));
  FusionRun run = RunFusion(before, passes::MakeFirstTokenPass());
  ASSERT_EQ(run.stats.at(0).fused, 1) << run.Misses();
  EXPECT_EQ(CountSlices(run.after), 1) << "ln only";
  EXPECT_EQ(CountOps(run.after, "LayerNormalization"), 1);
  EXPECT_TRUE(ExpectSameOutputs(before, run.after, {.dims = {{"B", 2}, {"S", 3}}}));
}

TEST(FirstTokenTest, OpsAcrossTokensAreNotTokenWise) {
  // A Softmax over the sequence axis and an Add of a per-position table need every token.
  for (const char* body : {R"(
  mm = MatMul(attn, w)
  sm = Softmax<axis = 1>(mm)
  y = Gather<axis = 1>(sm, zero)
)",
                           R"(
  mm = MatMul(attn, w)
  pos = Add(mm, table)
  y = Gather<axis = 1>(pos, zero)
)"}) {
    const onnx::ModelProto before = ParseModel(Tail("17", "float[B, 4] y", body));
    FusionRun run = RunFusion(before, passes::MakeFirstTokenPass());
    EXPECT_EQ(run.stats.at(0).fused, 0) << body;
    EXPECT_NE(run.Misses().find("is not token-wise"), std::string::npos) << run.Misses();
  }
}

TEST(FirstTokenTest, NothingToSaveWithoutAMatMulAndOtherIndicesAreNotAnchors) {
  FusionRun run = RunFusion(ParseModel(Tail("17", "float[B, 4] y", R"(
  res = Add(attn, h)
  act = Tanh(res)
  y = Gather<axis = 1>(act, zero)
)")),
                            passes::MakeFirstTokenPass());
  EXPECT_EQ(run.stats.at(0).fused, 0);
  EXPECT_NE(run.Misses().find("nothing to save"), std::string::npos) << run.Misses();

  run = RunFusion(ParseModel(Tail("17", "float[B, 4] y", R"(
  mm = MatMul(attn, w)
  y = Gather<axis = 1>(mm, one)
)")),
                  passes::MakeFirstTokenPass());
  EXPECT_EQ(run.stats.at(0).candidates, 0) << "only index 0 is the first token";
  EXPECT_EQ(CountSlices(run.after), 0);
}

}  // namespace
}  // namespace bertopt::testing
