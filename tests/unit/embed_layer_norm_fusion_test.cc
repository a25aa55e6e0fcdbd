// EmbedLayerNormalization fusion: every position-id form (exporter-layouts 2.3), DistilBERT and
// RoBERTa embeddings (2.10), the shared attention mask index, and the must-not-fuse cases (5.2).
// Tables are tiny: V=10 words, P=16 positions, T=2 token types, H=4.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"
#include "fusion_test_util.h"
#include "passes/fusions/fusions.h"
#include "test_models.h"

namespace bertopt::passes {
namespace {

using testing::CountOps;
using testing::ExpectSameOutputs;
using testing::FusionRun;
using testing::ParityOptions;
using testing::ParseModel;
using testing::RunFusion;

// Deterministic table contents: n values in (-scale, scale) around `center`.
std::string Values(int n, int seed, double center = 0.0, double scale = 0.5) {
  std::string out;
  for (int i = 0; i < n; ++i) {
    const double v = center + scale * std::sin(1.7 * i + 0.9 * seed + 0.3);
    out += fmt::format("{}{:.4f}", i ? ", " : "", v);
  }
  return out;
}

// The embedding tables and LayerNorm weights as initializers; `type_rows` is T (1 for RoBERTa).
std::string Tables(int type_rows = 2) {
  return fmt::format(
      "float[10,4] word = {{{}}}, float[16,4] pos = {{{}}}, float[{},4] type = {{{}}}, "
      "float[4] gamma = {{{}}}, float[4] beta = {{{}}}",
      Values(40, 1), Values(64, 2), type_rows, Values(4 * type_rows, 3), Values(4, 4, 1.0, 0.2),
      Values(4, 5, 0.0, 0.2));
}

// A BERT embedding model: `signature` is the graph line, `extra` more initializers (with a leading
// ", "), `body` the nodes.
std::string Model(int opset, const std::string& signature, const std::string& body,
                  const std::string& extra = "", int type_rows = 2) {
  return fmt::format("<ir_version: 8, opset_import: [\"\" : {}]>\n{}\n<{}{}>\n{{\n{}}}\n", opset,
                     signature, Tables(type_rows), extra, body);
}

constexpr const char* kBertInputs =
    "embed (int64[batch, seq] input_ids, int64[batch, seq] token_type_ids) => "
    "(float[batch, seq, 4] y)";
constexpr const char* kStaticInputs =
    "embed (int64[2, 5] input_ids, int64[2, 5] token_type_ids) => (float[2, 5, 4] y)";

// word + position + token type, in the torch 1.13 order, then the LayerNorm.
constexpr const char* kSum = R"(
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  t = Gather(type, token_type_ids)
  e1 = Add(w, p)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";

// P1: HF arange(S).unsqueeze(0).expand_as(input_ids), opset >= 13 spelling.
constexpr const char* kRangeExpand = R"(
  shape = Shape(input_ids)
  one = Constant<value = int64 {1}>()
  seq = Gather<axis = 0>(shape, one)
  seq64 = Cast<to = 7>(seq)
  zero = Constant<value = int64 {0}>()
  step = Constant<value = int64 {1}>()
  range = Range(zero, seq64, step)
  axes0 = Constant<value = int64[1] {0}>()
  row = Unsqueeze(range, axes0)
  shape2 = Shape(input_ids)
  position_ids = Expand(row, shape2)
)";

ParityOptions Parity(int type_rows = 2) {
  ParityOptions o;
  o.int_high = {{"input_ids", 10}, {"token_type_ids", type_rows}, {"position_ids", 16}};
  return o;
}

const onnx::NodeProto* FindNode(const onnx::ModelProto& m, const std::string& op) {
  for (const auto& n : m.graph().node()) {
    if (n.op_type() == op) return &n;
  }
  return nullptr;
}

// Input `i` of the fused node, "" when absent.
std::string FusedInput(const onnx::ModelProto& m, int i) {
  const onnx::NodeProto* n = FindNode(m, "EmbedLayerNormalization");
  return n && i < n->input_size() ? n->input(i) : "";
}
int FusedInputs(const onnx::ModelProto& m) {
  const onnx::NodeProto* n = FindNode(m, "EmbedLayerNormalization");
  return n ? n->input_size() : 0;
}
int FusedOutputs(const onnx::ModelProto& m) {
  const onnx::NodeProto* n = FindNode(m, "EmbedLayerNormalization");
  return n ? n->output_size() : 0;
}

// Fuses once, expects exactly one EmbedLayerNormalization and no LayerNorm left, a second run that
// changes nothing, and the same outputs through ORT.
FusionRun ExpectFusedOnce(const std::string& text, const ParityOptions& parity = Parity()) {
  const onnx::ModelProto before = ParseModel(text);
  FusionRun run = RunFusion(before, MakeEmbedLayerNormFusion());
  EXPECT_EQ(CountOps(run.after, "EmbedLayerNormalization", "com.microsoft"), 1) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "LayerNormalization"), 0);
  FusionRun again = RunFusion(run.after, MakeEmbedLayerNormFusion());
  EXPECT_EQ(again.stats.at(0).fused, 0);
  EXPECT_EQ(again.after.graph().SerializeAsString(), run.after.graph().SerializeAsString())
      << "a second run changed the graph";
  ExpectSameOutputs(before, run.after, parity);
  return run;
}

// Expects no fusion and a miss that mentions `cause`.
void ExpectMiss(const std::string& text, const std::string& cause) {
  FusionRun run = RunFusion(ParseModel(text), MakeEmbedLayerNormFusion());
  EXPECT_EQ(CountOps(run.after, "EmbedLayerNormalization", "com.microsoft"), 0);
  EXPECT_NE(run.Misses().find(cause), std::string::npos) << run.Misses();
}

// --- Position-id forms that mean 0..S-1: input 8 left out ----------------------------------------

TEST(EmbedLayerNormFusionTest, RangeExpandPositionsP1) {
  FusionRun run = ExpectFusedOnce(Model(17, kBertInputs, std::string(kRangeExpand) + kSum));
  EXPECT_EQ(FusedInputs(run.after), 7) << "no mask, default positions";
  EXPECT_EQ(FusedInput(run.after, 0), "input_ids_int32");
  EXPECT_EQ(FusedInput(run.after, 1), "token_type_ids_int32");
  EXPECT_EQ(FusedInput(run.after, 2), "word");
  EXPECT_EQ(FusedInput(run.after, 3), "pos");
  EXPECT_EQ(FusedInput(run.after, 4), "type");
  EXPECT_EQ(FusedOutputs(run.after), 2) << "ORT requires output 1 even when nothing reads it";
  EXPECT_EQ(CountOps(run.after, "Range"), 0) << "the position chain is dead";
  const onnx::NodeProto* fused = FindNode(run.after, "EmbedLayerNormalization");
  ASSERT_NE(fused, nullptr);
  ASSERT_EQ(fused->attribute_size(), 1);
  EXPECT_FLOAT_EQ(fused->attribute(0).f(), 1e-12f);
}

TEST(EmbedLayerNormFusionTest, RangeWithoutCastAndOpset11Unsqueeze) {
  const char* positions = R"(
  shape = Shape(input_ids)
  one = Constant<value = int64 {1}>()
  seq = Gather<axis = 0>(shape, one)
  zero = Constant<value = int64 {0}>()
  step = Constant<value = int64 {1}>()
  range = Range(zero, seq, step)
  row = Unsqueeze<axes = [0]>(range)
  shape2 = Shape(input_ids)
  position_ids = Expand(row, shape2)
)";
  FusionRun run = ExpectFusedOnce(Model(11, kBertInputs, std::string(positions) + kSum));
  EXPECT_EQ(FusedInputs(run.after), 7);
}

// PyTorch 1.3 (P5): the Expand shape is rebuilt from Shape(ids)[0] and Shape(ids)[1].
TEST(EmbedLayerNormFusionTest, RangeExpandToConcatOfDimsP5) {
  const char* positions = R"(
  shape = Shape(input_ids)
  zero_i = Constant<value = int64 {0}>()
  one_i = Constant<value = int64 {1}>()
  batch = Gather<axis = 0>(shape, zero_i)
  seq = Gather<axis = 0>(shape, one_i)
  zero = Constant<value = int64 {0}>()
  step = Constant<value = int64 {1}>()
  range = Range(zero, seq, step)
  row = Unsqueeze<axes = [0]>(range)
  b1 = Unsqueeze<axes = [0]>(batch)
  s1 = Unsqueeze<axes = [0]>(seq)
  target = Concat<axis = 0>(b1, s1)
  position_ids = Expand(row, target)
)";
  FusionRun run = ExpectFusedOnce(Model(11, kBertInputs, std::string(positions) + kSum));
  EXPECT_EQ(FusedInputs(run.after), 7);
}

// P2: opset 10 has no Range; the positions are the indices of S ones.
TEST(EmbedLayerNormFusionTest, NonZeroPositionsP2Opset10) {
  const char* positions = R"(
  shape = Shape(input_ids)
  one = Constant<value = int64 {1}>()
  seq = Gather<axis = 0>(shape, one)
  seq64 = Cast<to = 7>(seq)
  len = Unsqueeze<axes = [0]>(seq64)
  ones = ConstantOfShape<value = int64[1] {1}>(len)
  nz = NonZero(ones)
  nzt = Transpose<perm = [1, 0]>(nz)
  idx = Squeeze<axes = [1]>(nzt)
  idx64 = Cast<to = 7>(idx)
  row = Unsqueeze<axes = [0]>(idx64)
  shape2 = Shape(input_ids)
  position_ids = Expand(row, shape2)
)";
  FusionRun run = ExpectFusedOnce(Model(10, kBertInputs, std::string(positions) + kSum));
  EXPECT_EQ(FusedInputs(run.after), 7);
  EXPECT_EQ(CountOps(run.after, "NonZero"), 0);
}

// P3, static export at opset 10: NonZero of ConstantOfShape([S]).
TEST(EmbedLayerNormFusionTest, StaticNonZeroPositionsOpset10) {
  const char* positions = R"(
  len = Constant<value = int64[1] {5}>()
  ones = ConstantOfShape<value = int64[1] {1}>(len)
  nz = NonZero(ones)
  nzt = Transpose<perm = [1, 0]>(nz)
  idx = Squeeze<axes = [1]>(nzt)
  idx64 = Cast<to = 7>(idx)
  row = Unsqueeze<axes = [0]>(idx64)
  shape = Shape(input_ids)
  position_ids = Expand(row, shape)
)";
  FusionRun run = ExpectFusedOnce(Model(10, kStaticInputs, std::string(positions) + kSum));
  EXPECT_EQ(FusedInputs(run.after), 7);
}

// P3: static export at opset >= 11: Expand of the constant 0..S-1.
TEST(EmbedLayerNormFusionTest, StaticConstantExpandP3) {
  const char* positions = R"(
  arange = Constant<value = int64[5] {0, 1, 2, 3, 4}>()
  shape = Shape(input_ids)
  position_ids = Expand(arange, shape)
)";
  FusionRun run = ExpectFusedOnce(Model(17, kStaticInputs, std::string(positions) + kSum));
  EXPECT_EQ(FusedInputs(run.after), 7);
}

// P4: a registered [1,P] buffer sliced to the ids' sequence length.
TEST(EmbedLayerNormFusionTest, SlicedBufferP4) {
  const char* positions = R"(
  shape = Shape(input_ids)
  one = Constant<value = int64 {1}>()
  seq = Gather<axis = 0>(shape, one)
  axes0 = Constant<value = int64[1] {0}>()
  end = Unsqueeze(seq, axes0)
  start = Constant<value = int64[1] {0}>()
  axis1 = Constant<value = int64[1] {1}>()
  step = Constant<value = int64[1] {1}>()
  position_ids = Slice(position_buffer, start, end, axis1, step)
)";
  const std::string buffer =
      ", int64[1,16] position_buffer = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}";
  FusionRun run = ExpectFusedOnce(Model(17, kBertInputs, std::string(positions) + kSum, buffer));
  EXPECT_EQ(FusedInputs(run.after), 7);
  EXPECT_EQ(CountOps(run.after, "Slice"), 0);
}

// `--position buffer --static`: the Slice folds into an i64[1,S] initializer.
TEST(EmbedLayerNormFusionTest, StaticRowInitializer) {
  FusionRun run = ExpectFusedOnce(
      Model(17, kStaticInputs, kSum, ", int64[1,5] position_ids = {0, 1, 2, 3, 4}"));
  EXPECT_EQ(FusedInputs(run.after), 7);
}

// P6: a [B,S] initializer with 0..S-1 in every row.
TEST(EmbedLayerNormFusionTest, BatchRowsInitializerP6) {
  FusionRun run = ExpectFusedOnce(
      Model(17, kStaticInputs, kSum, ", int64[2,5] position_ids = {0, 1, 2, 3, 4, 0, 1, 2, 3, 4}"));
  EXPECT_EQ(FusedInputs(run.after), 7);
}

// The reference's past-length form: S + 0 before the Unsqueeze of the Slice end.
TEST(EmbedLayerNormFusionTest, SlicedBufferWithZeroPastLength) {
  const char* positions = R"(
  shape = Shape(input_ids)
  one = Constant<value = int64 {1}>()
  seq = Gather<axis = 0>(shape, one)
  past = Constant<value = int64 {0}>()
  total = Add(seq, past)
  axes0 = Constant<value = int64[1] {0}>()
  end = Unsqueeze(total, axes0)
  start = Constant<value = int64[1] {0}>()
  axis1 = Constant<value = int64[1] {1}>()
  position_ids = Slice(position_buffer, start, end, axis1)
)";
  const std::string buffer =
      ", int64[1,16] position_buffer = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}";
  FusionRun run = ExpectFusedOnce(Model(17, kBertInputs, std::string(positions) + kSum, buffer));
  EXPECT_EQ(FusedInputs(run.after), 7);
}

// --- Position ids that are not provably 0..S-1 of the ids: input 8 -------------------------------

// A constant that is not 0..S-1 must not be taken for the default (parity would show it).
TEST(EmbedLayerNormFusionTest, OtherConstantPositionsGoToInput8) {
  FusionRun run = ExpectFusedOnce(
      Model(17, kStaticInputs, kSum, ", int64[1,5] position_ids = {0, 1, 2, 4, 3}"));
  ASSERT_EQ(FusedInputs(run.after), 9);
  EXPECT_EQ(FusedInput(run.after, 8), "position_ids_int32");
}

// A Range over another input's length: 0..S'-1 need not be 0..S-1 of the ids, so it is passed.
TEST(EmbedLayerNormFusionTest, RangeOverAnotherInputsLengthGoesToInput8) {
  const char* body = R"(
  shape = Shape(other)
  one = Constant<value = int64 {1}>()
  seq = Gather<axis = 0>(shape, one)
  zero = Constant<value = int64 {0}>()
  step = Constant<value = int64 {1}>()
  range = Range(zero, seq, step)
  axes0 = Constant<value = int64[1] {0}>()
  position_ids = Unsqueeze(range, axes0)
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  e = Add(w, p)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";
  FusionRun run = ExpectFusedOnce(Model(
      17,
      "embed (int64[batch, seq] input_ids, float[batch, seq2] other) => (float[batch, seq, 4] y)",
      body));
  ASSERT_EQ(FusedInputs(run.after), 9);
  EXPECT_EQ(FusedInput(run.after, 8), "position_ids_int32");
}

// Starting at 1 (a Range(1, S+1)) is not the default either.
TEST(EmbedLayerNormFusionTest, RangeFromOneGoesToInput8) {
  const char* positions = R"(
  shape = Shape(input_ids)
  one = Constant<value = int64 {1}>()
  seq = Gather<axis = 0>(shape, one)
  seq1 = Add(seq, one)
  range = Range(one, seq1, one)
  axes0 = Constant<value = int64[1] {0}>()
  row = Unsqueeze(range, axes0)
  shape2 = Shape(input_ids)
  position_ids = Expand(row, shape2)
)";
  FusionRun run = ExpectFusedOnce(Model(17, kBertInputs, std::string(positions) + kSum));
  ASSERT_EQ(FusedInputs(run.after), 9);
}

// --- Sum orders ----------------------------------------------------------------------------------

class EmbedSumOrderTest : public ::testing::TestWithParam<const char*> {};

TEST_P(EmbedSumOrderTest, AnyNestingAndOperandOrder) {
  const std::string body = std::string(kRangeExpand) + R"(
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  t = Gather(type, token_type_ids)
)" + GetParam() + R"(
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";
  FusionRun run = ExpectFusedOnce(Model(17, kBertInputs, body));
  EXPECT_EQ(FusedInput(run.after, 0), "input_ids_int32");
  EXPECT_EQ(FusedInput(run.after, 1), "token_type_ids_int32");
  EXPECT_EQ(FusedInput(run.after, 3), "pos");
  EXPECT_EQ(FusedInputs(run.after), 7) << "positions recognised whatever the order";
}

INSTANTIATE_TEST_SUITE_P(Orders, EmbedSumOrderTest,
                         ::testing::Values("e1 = Add(p, w)\n e = Add(t, e1)",
                                           "e1 = Add(w, t)\n e = Add(e1, p)",
                                           "e1 = Add(t, p)\n e = Add(w, e1)",
                                           "e1 = Add(p, t)\n e = Add(e1, w)"));

// --- DistilBERT, RoBERTa, ids forms --------------------------------------------------------------

TEST(EmbedLayerNormFusionTest, DistilBertWordPlusPositionOnly) {
  const std::string body = std::string(kRangeExpand) + R"(
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  e = Add(w, p)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";
  FusionRun run = ExpectFusedOnce(
      Model(17, "embed (int64[batch, seq] input_ids) => (float[batch, seq, 4] y)", body));
  EXPECT_EQ(FusedInputs(run.after), 7);
  EXPECT_EQ(FusedInput(run.after, 1), "") << "no segment ids";
  EXPECT_EQ(FusedInput(run.after, 4), "") << "no segment table";
}

// RoBERTa (2.10): positions from a CumSum of ids != padding; they go to input 8 as int32 and the
// nodes computing them stay.
constexpr const char* kRobertaPositions = R"(
  pad = Constant<value = int64 {1}>()
  eq = Equal(input_ids, pad)
  ne = Not(eq)
  ne32 = Cast<to = 6>(ne)
  cs_axis = Constant<value = int32 {1}>()
  cs = CumSum(ne32, cs_axis)
  masked = Mul(cs, ne32)
  masked64 = Cast<to = 7>(masked)
  offset = Constant<value = int64 {1}>()
  position_ids = Add(masked64, offset)
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  e1 = Add(w, p)
)";

TEST(EmbedLayerNormFusionTest, RobertaCumSumPositionsGoToInput8) {
  const std::string body = std::string(kRobertaPositions) + R"(
  t = Gather(type, token_type_ids)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-5>(e, gamma, beta)
)";
  FusionRun run = ExpectFusedOnce(Model(17, kBertInputs, body, "", 1), Parity(1));
  ASSERT_EQ(FusedInputs(run.after), 9);
  EXPECT_EQ(FusedInput(run.after, 7), "") << "no mask";
  EXPECT_EQ(FusedInput(run.after, 8), "position_ids_int32");
  EXPECT_EQ(CountOps(run.after, "CumSum"), 1);
}

// RoBERTa without token_type_ids: the type Gather reads zeros shaped like the ids; it still adds
// type[0] everywhere, so the zeros go in as int32 segment ids with the table.
TEST(EmbedLayerNormFusionTest, RobertaZerosTokenTypesKeepTheTypeTable) {
  const std::string body = std::string(kRobertaPositions) + R"(
  shape = Shape(input_ids)
  zeros = ConstantOfShape<value = int64[1] {0}>(shape)
  t = Gather(type, zeros)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-5>(e, gamma, beta)
)";
  FusionRun run = ExpectFusedOnce(
      Model(17, "embed (int64[batch, seq] input_ids) => (float[batch, seq, 4] y)", body, "", 1),
      Parity(1));
  ASSERT_EQ(FusedInputs(run.after), 9);
  EXPECT_EQ(FusedInput(run.after, 1), "zeros_int32");
  EXPECT_EQ(FusedInput(run.after, 4), "type");
}

// A position_ids graph input: passed as input 8 (exact for any values).
TEST(EmbedLayerNormFusionTest, PositionIdsGraphInputGoesToInput8) {
  FusionRun run =
      ExpectFusedOnce(Model(17,
                            "embed (int64[batch, seq] input_ids, int64[batch, seq] token_type_ids, "
                            "int64[batch, seq] position_ids) => (float[batch, seq, 4] y)",
                            kSum));
  ASSERT_EQ(FusedInputs(run.after), 9);
  EXPECT_EQ(FusedInput(run.after, 0), "input_ids_int32");
  EXPECT_EQ(FusedInput(run.after, 1), "token_type_ids_int32");
  EXPECT_EQ(FusedInput(run.after, 8), "position_ids_int32");
}

// int32 graph inputs cast to int64 for the Gathers (keras/tf style): fed as they are.
TEST(EmbedLayerNormFusionTest, Int32IdsThroughCast) {
  const std::string body = R"(
  ids64 = Cast<to = 7>(input_ids)
  shape = Shape(ids64)
  one = Constant<value = int64 {1}>()
  seq = Gather<axis = 0>(shape, one)
  zero = Constant<value = int64 {0}>()
  step = Constant<value = int64 {1}>()
  range = Range(zero, seq, step)
  axes0 = Constant<value = int64[1] {0}>()
  row = Unsqueeze(range, axes0)
  w = Gather(word, ids64)
  p = Gather(pos, row)
  t = Gather(type, token_type_ids)
  e1 = Add(w, p)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";
  FusionRun run = ExpectFusedOnce(Model(17,
                                        "embed (int32[batch, seq] input_ids, int32[batch, seq] "
                                        "token_type_ids) => (float[batch, seq, 4] y)",
                                        body));
  EXPECT_EQ(FusedInputs(run.after), 7);
  EXPECT_EQ(FusedInput(run.after, 0), "input_ids");
  EXPECT_EQ(FusedInput(run.after, 1), "token_type_ids");
  EXPECT_EQ(CountOps(run.after, "Cast"), 0);
}

// keras2onnx 1.6.1 (3.2) and static tf2onnx: the position rows come pre-sliced, a constant term
// [1, S, H] (or [S, H]) added to the word Gather of int32 ids of static sequence length S.
constexpr const char* kKerasInputs =
    "embed (int32[N, 5] input_ids, int32[N, 5] token_type_ids) => (float[N, 5, 4] y)";
constexpr const char* kConstantPositions = R"(
  w = Gather(word, input_ids)
  e1 = Add(w, pos_rows)
  t = Gather(type, token_type_ids)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";

// The initializer `name` of `m`, or nullptr.
const onnx::TensorProto* FindInitializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

// True when some Add of `m` reads `name`.
bool AddReads(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& n : m.graph().node()) {
    if (n.op_type() == "Add" && (n.input(0) == name || n.input(1) == name)) return true;
  }
  return false;
}

// The rows are rows 0..S-1 of themselves as an [S, H] table: the default positions.
void ExpectConstantRowsAsPositionTable(const std::string& rows_type) {
  const std::string rows = Values(20, 6);
  FusionRun run = ExpectFusedOnce(
      Model(17, kKerasInputs, kConstantPositions, ", " + rows_type + " pos_rows = {" + rows + "}"));
  EXPECT_EQ(FusedInputs(run.after), 7) << "default positions: no input 8";
  EXPECT_EQ(FusedInput(run.after, 0), "input_ids");
  EXPECT_EQ(FusedInput(run.after, 2), "word");
  EXPECT_EQ(FusedInput(run.after, 4), "type");
  EXPECT_EQ(CountOps(run.after, "Gather") + CountOps(run.after, "Add"), 0);
  const onnx::TensorProto* table = FindInitializer(run.after, FusedInput(run.after, 3));
  ASSERT_NE(table, nullptr);
  EXPECT_EQ(std::vector<int64_t>(table->dims().begin(), table->dims().end()),
            (std::vector<int64_t>{5, 4}));
  const onnx::ModelProto before = ParseModel(
      Model(17, kKerasInputs, kConstantPositions, ", " + rows_type + " pos_rows = {" + rows + "}"));
  const onnx::TensorProto* original = FindInitializer(before, "pos_rows");
  ASSERT_NE(original, nullptr);
  EXPECT_EQ(ir::DecodeAsDoubles(*table), ir::DecodeAsDoubles(*original));
}

TEST(EmbedLayerNormFusionTest, KerasConstantPositionRows1SH) {
  ExpectConstantRowsAsPositionTable("float[1,5,4]");
}

TEST(EmbedLayerNormFusionTest, ConstantPositionRowsSH) {
  ExpectConstantRowsAsPositionTable("float[5,4]");
}

// --- LayerNorm details and the embedding sum -----------------------------------------------------

// Without an epsilon attribute (ORT's test files misspell it "epsion") ONNX's default 1e-5
// applies; this LN also has no beta.
TEST(EmbedLayerNormFusionTest, DefaultEpsilonAndMissingBeta) {
  const std::string body = std::string(kRangeExpand) + R"(
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  t = Gather(type, token_type_ids)
  e1 = Add(w, p)
  e = Add(e1, t)
  y = LayerNormalization(e, gamma)
)";
  FusionRun run = ExpectFusedOnce(Model(17, kBertInputs, body));
  const onnx::NodeProto* fused = FindNode(run.after, "EmbedLayerNormalization");
  ASSERT_NE(fused, nullptr);
  EXPECT_FLOAT_EQ(fused->attribute(0).f(), 1e-5f);
  EXPECT_EQ(fused->input(6), "gamma_zero_beta");
}

TEST(EmbedLayerNormFusionTest, SumReadElsewhereBecomesOutput2) {
  const std::string body = std::string(kRangeExpand) + kSum + "  e_scaled = Mul(e, gamma)\n";
  FusionRun run = ExpectFusedOnce(
      Model(17,
            "embed (int64[batch, seq] input_ids, int64[batch, seq] token_type_ids) => "
            "(float[batch, seq, 4] y, float[batch, seq, 4] e, float[batch, seq, 4] e_scaled)",
            body));
  const onnx::NodeProto* fused = FindNode(run.after, "EmbedLayerNormalization");
  ASSERT_NE(fused, nullptr);
  ASSERT_EQ(fused->output_size(), 3);
  EXPECT_EQ(fused->output(2), "e");
}

// --- The attention mask index --------------------------------------------------------------------

constexpr const char* kMaskInputs =
    "embed (int64[batch, seq] input_ids, int64[batch, seq] token_type_ids, "
    "int64[batch, seq] attention_mask) => (float[batch, seq, 4] y, float[batch] valid)";

// What GetOrCreateAttentionMask builds (int32_inputs.cc), read here by a stand-in for Attention.
constexpr const char* kMaskIndex = R"(
  attention_mask_int32 = Cast<to = 6>(attention_mask)
  attention_mask_mask_index = ReduceSum<keepdims = 0>(attention_mask_int32, mask_axes)
  valid = Cast<to = 1>(attention_mask_mask_index)
)";

TEST(EmbedLayerNormFusionTest, TakesOverTheAttentionMaskIndex) {
  FusionRun run =
      ExpectFusedOnce(Model(17, kMaskInputs, std::string(kRangeExpand) + kSum + kMaskIndex,
                            ", int64[1] mask_axes = {1}"));
  ASSERT_EQ(FusedInputs(run.after), 8);
  EXPECT_EQ(FusedInput(run.after, 7), "attention_mask_int32");
  const onnx::NodeProto* fused = FindNode(run.after, "EmbedLayerNormalization");
  ASSERT_NE(fused, nullptr);
  ASSERT_EQ(fused->output_size(), 2);
  EXPECT_EQ(CountOps(run.after, "ReduceSum"), 0) << "the ReduceSum is replaced by output 1";
  const onnx::NodeProto* reader = FindNode(run.after, "Cast");
  for (const auto& n : run.after.graph().node()) {
    if (n.output(0) == "valid") reader = &n;
  }
  EXPECT_EQ(reader->input(0), fused->output(1));
}

TEST(EmbedLayerNormFusionTest, MaskIndexWithRobertaPositions) {
  const std::string body = std::string(kRobertaPositions) + R"(
  t = Gather(type, token_type_ids)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-5>(e, gamma, beta)
)" + kMaskIndex;
  FusionRun run =
      ExpectFusedOnce(Model(17, kMaskInputs, body, ", int64[1] mask_axes = {1}", 1), Parity(1));
  ASSERT_EQ(FusedInputs(run.after), 9);
  EXPECT_EQ(FusedInput(run.after, 7), "attention_mask_int32");
  EXPECT_EQ(FusedInput(run.after, 8), "position_ids_int32");
  EXPECT_EQ(CountOps(run.after, "ReduceSum"), 0);
}

// Attention with the raw (B,S) mask (use_raw_attention_mask) leaves no mask index to replace.
TEST(EmbedLayerNormFusionTest, RawMaskLeavesNoMaskInput) {
  const std::string mask = R"(
  attention_mask_int32 = Cast<to = 6>(attention_mask)
  valid = ReduceMax<keepdims = 0, axes = [1]>(attention_mask_int32)
)";
  const std::string sig =
      "embed (int64[batch, seq] input_ids, int64[batch, seq] token_type_ids, "
      "int64[batch, seq] attention_mask) => (float[batch, seq, 4] y, int32[batch] valid)";
  FusionRun run = ExpectFusedOnce(Model(17, sig, std::string(kRangeExpand) + kSum + mask));
  EXPECT_EQ(FusedInputs(run.after), 7);
  EXPECT_EQ(CountOps(run.after, "ReduceMax"), 1);
}

// A mask of another length than the ids (past/total sequence) cannot be EmbedLN's input 7: fuse
// without it and keep the ReduceSum.
TEST(EmbedLayerNormFusionTest, MaskOfOtherShapeIsNotTakenOver) {
  const std::string sig =
      "embed (int64[batch, seq] input_ids, int64[batch, seq] token_type_ids, "
      "int64[batch, total] attention_mask) => (float[batch, seq, 4] y, float[batch] valid)";
  FusionRun run = ExpectFusedOnce(
      Model(17, sig, std::string(kRangeExpand) + kSum + kMaskIndex, ", int64[1] mask_axes = {1}"));
  EXPECT_EQ(FusedInputs(run.after), 7);
  EXPECT_EQ(CountOps(run.after, "ReduceSum"), 1);
}

// --- Must not fuse (exporter-layouts 5.2) --------------------------------------------------------

TEST(EmbedLayerNormFusionTest, MissWhenAnIntermediateIsReadOutside) {
  ExpectMiss(Model(17,
                   "embed (int64[batch, seq] input_ids, int64[batch, seq] token_type_ids) => "
                   "(float[batch, seq, 4] y, float[batch, seq, 4] e1_twice)",
                   std::string(kRangeExpand) + kSum + "  e1_twice = Add(e1, e1)\n"),
             "'e1' (output of Add producing 'e1') is also read by");
}

TEST(EmbedLayerNormFusionTest, MissWhenAGatherIsAGraphOutput) {
  ExpectMiss(Model(17,
                   "embed (int64[batch, seq] input_ids, int64[batch, seq] token_type_ids) => "
                   "(float[batch, seq, 4] y, float[batch, seq, 4] w)",
                   std::string(kRangeExpand) + kSum),
             "'w' (output of Gather producing 'w') is a graph output");
}

TEST(EmbedLayerNormFusionTest, MissWhenTheWordTableIsAnInput) {
  const std::string body = std::string(kRangeExpand) + R"(
  w = Gather(words, input_ids)
  p = Gather(pos, position_ids)
  t = Gather(type, token_type_ids)
  e1 = Add(w, p)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";
  ExpectMiss(Model(17,
                   "embed (int64[batch, seq] input_ids, int64[batch, seq] token_type_ids, "
                   "float[10, 4] words) => (float[batch, seq, 4] y)",
                   body),
             "'words' is not a constant");
}

TEST(EmbedLayerNormFusionTest, MissWhenTablesDifferInWidth) {
  // Width 1 broadcasts in the Add but EmbedLayerNormalization needs equal widths.
  const std::string narrow = R"(
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  t = Gather(narrow_type, token_type_ids)
  e1 = Add(w, p)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";
  ExpectMiss(Model(17, kBertInputs, std::string(kRangeExpand) + narrow,
                   ", float[2,1] narrow_type = {0.5, -0.5}"),
             "table 'narrow_type' has width 1, the word table 4");
}

TEST(EmbedLayerNormFusionTest, MissWhenWordIdsAreComputed) {
  const std::string body = std::string(kRangeExpand) + R"(
  one_more = Constant<value = int64 {1}>()
  shifted = Add(input_ids, one_more)
  w = Gather(word, shifted)
  p = Gather(pos, position_ids)
  t = Gather(type, token_type_ids)
  e1 = Add(w, p)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";
  ExpectMiss(Model(17, kBertInputs, body), "word lookup");
}

TEST(EmbedLayerNormFusionTest, MissWhenSegmentIdsAreComputed) {
  const std::string body = std::string(kRangeExpand) + R"(
  flip = Constant<value = int64 {1}>()
  other = Sub(flip, token_type_ids)
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  t = Gather(type, other)
  e1 = Add(w, p)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";
  ExpectMiss(Model(17, kBertInputs, body), "token type lookup");
}

TEST(EmbedLayerNormFusionTest, MissWhenSegmentIsShapedUnlikeTheIds) {
  ExpectMiss(Model(17,
                   "embed (int64[batch, seq] input_ids, int64[batch, 1] token_type_ids) => "
                   "(float[batch, seq, 4] y)",
                   std::string(kRangeExpand) + kSum),
             "segment ids 'token_type_ids' are declared [batch,1]");
}

// Static positions 0..15 against a dynamic sequence length: only right when S = 16.
TEST(EmbedLayerNormFusionTest, MissWhenStaticPositionsMeetDynamicIds) {
  const std::string positions = R"(
  arange = Constant<value = int64[16] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}>()
  shape = Shape(input_ids)
  position_ids = Expand(arange, shape)
)";
  ExpectMiss(Model(17, kBertInputs, positions + kSum), "cannot be passed as (B,S) or (1,S)");
}

// 1..S (not 0..S-1) as a 1-D tensor: neither the default nor valid as input 8.
TEST(EmbedLayerNormFusionTest, MissWhenPositionsAreShiftedAndOneDimensional) {
  const std::string positions = R"(
  shape = Shape(input_ids)
  one = Constant<value = int64 {1}>()
  seq = Gather<axis = 0>(shape, one)
  start = Constant<value = int64 {1}>()
  seq1 = Add(seq, start)
  step = Constant<value = int64 {1}>()
  position_ids = Range(start, seq1, step)
)";
  ExpectMiss(Model(17, kBertInputs, positions + kSum),
             "position ids 'position_ids' are not 0..S-1");
}

// A [1, 1, H] constant adds one row to every position: not the rows 0..S-1 of a table. It stays
// an Add of the constant (no Gather is made for it), and the sum is not an embedding.
TEST(EmbedLayerNormFusionTest, MissWhenAConstantTermIsNotSRows) {
  const std::string text = Model(17, kKerasInputs, kConstantPositions,
                                 ", float[1,1,4] pos_rows = {" + Values(4, 6) + "}");
  ExpectMiss(text, "term 'pos_rows' (a graph input or constant) of the sum is not a Gather");
  const onnx::ModelProto before = ParseModel(text);
  FusionRun run = RunFusion(before, MakeEmbedLayerNormFusion());
  EXPECT_EQ(CountOps(run.after, "Gather"), 2);
  EXPECT_TRUE(AddReads(run.after, "pos_rows"));
  EXPECT_EQ(run.after.graph().node_size(), before.graph().node_size());
}

// Constant [1, S, H] rows, but the fusion misses for a reason found after the sum was read (beta
// is fed): the graph must be left as it was, the rows still added as a constant.
TEST(EmbedLayerNormFusionTest, MissWithConstantPositionRowsLeavesThemAsTheyWere) {
  std::string text = Model(17,
                           "embed (int32[N, 5] input_ids, int32[N, 5] token_type_ids, "
                           "float[4] beta_in) => (float[N, 5, 4] y)",
                           kConstantPositions, ", float[1,5,4] pos_rows = {" + Values(20, 6) + "}");
  const std::string ln_inputs = "(e, gamma, beta)";
  text.replace(text.find(ln_inputs), ln_inputs.size(), "(e, gamma, beta_in)");
  const onnx::ModelProto before = ParseModel(text);
  FusionRun run = RunFusion(before, MakeEmbedLayerNormFusion());
  EXPECT_EQ(CountOps(run.after, "EmbedLayerNormalization", "com.microsoft"), 0);
  EXPECT_NE(run.Misses().find("'beta_in' is not a constant"), std::string::npos) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "Gather"), 2) << "no Gather made for the rows";
  EXPECT_TRUE(AddReads(run.after, "pos_rows"));
  EXPECT_EQ(run.after.graph().node_size(), before.graph().node_size());
}

TEST(EmbedLayerNormFusionTest, MissWhenGammaIsAnInput) {
  const std::string body = std::string(kRangeExpand) + R"(
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  t = Gather(type, token_type_ids)
  e1 = Add(w, p)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-12>(e, g, beta)
)";
  ExpectMiss(Model(17,
                   "embed (int64[batch, seq] input_ids, int64[batch, seq] token_type_ids, "
                   "float[4] g) => (float[batch, seq, 4] y)",
                   body),
             "'g' is not a constant");
}

TEST(EmbedLayerNormFusionTest, MissWhenGammaHasTheWrongLength) {
  const std::string body = std::string(kRangeExpand) + R"(
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  t = Gather(type, token_type_ids)
  e1 = Add(w, p)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma1, beta)
)";
  ExpectMiss(Model(17, kBertInputs, body, ", float[1] gamma1 = {1.5}"),
             "'gamma1' is not a vector of the hidden size 4 of the word table's type");
}

TEST(EmbedLayerNormFusionTest, MissWhenGatherIsAlongAxis1) {
  const std::string body = std::string(kRangeExpand) + R"(
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  t = Gather<axis = 1>(square, token_type_ids)
  e1 = Add(w, p)
  e = Add(e1, t)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";
  ExpectMiss(Model(17, kBertInputs, body, ", float[4,4] square = {" + Values(16, 6) + "}"),
             "gathers along axis 1");
}

TEST(EmbedLayerNormFusionTest, MissWhenNormalizingAnotherAxis) {
  const std::string body = std::string(kRangeExpand) + R"(
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  t = Gather(type, token_type_ids)
  e1 = Add(w, p)
  e = Add(e1, t)
  y = LayerNormalization<axis = 1, epsilon = 1e-12>(e, gamma, beta)
)";
  ExpectMiss(Model(17, kBertInputs, body), "LayerNorm over axis 1");
}

TEST(EmbedLayerNormFusionTest, MissWhenTheLayerNormMeanIsUsed) {
  const std::string body = std::string(kRangeExpand) + R"(
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  t = Gather(type, token_type_ids)
  e1 = Add(w, p)
  e = Add(e1, t)
  y, mean = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";
  ExpectMiss(Model(17,
                   "embed (int64[batch, seq] input_ids, int64[batch, seq] token_type_ids) => "
                   "(float[batch, seq, 4] y, float[batch, seq, 1] mean)",
                   body),
             "LayerNorm statistic 'mean' is used");
}

TEST(EmbedLayerNormFusionTest, MissWhenTheSumHasAFourthTerm) {
  const std::string body = std::string(kRangeExpand) + R"(
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  t = Gather(type, token_type_ids)
  e1 = Add(w, p)
  e2 = Add(e1, t)
  e = Add(e2, beta)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";
  ExpectMiss(Model(17, kBertInputs, body), "term 'beta' (a graph input or constant) of the sum");
}

// float16 exports fuse too: ORT's CPU kernel is float32 only, and ORT runs a float16 one with
// Casts it inserts itself. Tables, gamma and beta must share one type. (The text parser has no
// float16 literals: converted below.)
TEST(EmbedLayerNormFusionTest, Float16TablesFuseAndMixedTypesMiss) {
  const std::string body = std::string(kRangeExpand) + R"(
  w = Gather(word, input_ids)
  p = Gather(pos, position_ids)
  e = Add(w, p)
  y = LayerNormalization<epsilon = 1e-12>(e, gamma, beta)
)";
  onnx::ModelProto model = ParseModel(
      Model(17, "embed (int64[batch, seq] input_ids) => (float16[batch, seq, 4] y)", body));
  onnx::ModelProto mixed = model;
  for (auto* m : {&model, &mixed}) {
    for (auto& init : *m->mutable_graph()->mutable_initializer()) {
      if (init.data_type() != onnx::TensorProto::FLOAT) continue;
      if (m == &mixed && init.name() == "gamma") continue;
      std::string raw;
      for (float f : init.float_data()) {
        const uint16_t h = ir::FloatToHalf(f);
        raw.append(reinterpret_cast<const char*>(&h), 2);
      }
      init.clear_float_data();
      init.set_data_type(onnx::TensorProto::FLOAT16);
      init.set_raw_data(raw);
    }
  }
  FusionRun run = RunFusion(model, MakeEmbedLayerNormFusion());
  EXPECT_EQ(CountOps(run.after, "EmbedLayerNormalization", "com.microsoft"), 1) << run.Misses();
  ExpectSameOutputs(model, run.after,
                    {.rtol = 1e-2, .atol = 1e-2, .int_high = {{"input_ids", 10}}});

  FusionRun miss = RunFusion(mixed, MakeEmbedLayerNormFusion());
  EXPECT_EQ(CountOps(miss.after, "EmbedLayerNormalization", "com.microsoft"), 0);
  EXPECT_NE(miss.Misses().find("'gamma' is not a vector of the hidden size 4 of the word table's"),
            std::string::npos)
      << miss.Misses();
}

// The encoder's residual LayerNorms are not candidates at all.
TEST(EmbedLayerNormFusionTest, ResidualLayerNormIsNoCandidate) {
  FusionRun run = RunFusion(ParseModel(R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[batch, seq, 4] x, float[batch, seq, 4] r) => (float[batch, seq, 4] y)
<float[4] gamma = {1, 1, 1, 1}, float[4] beta = {0, 0, 0, 0}>
{
  s = Add(x, r)
  y = LayerNormalization(s, gamma, beta)
}
)"),
                            MakeEmbedLayerNormFusion());
  EXPECT_EQ(run.stats.at(0).candidates, 0);
}

}  // namespace
}  // namespace bertopt::passes
