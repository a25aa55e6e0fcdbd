#include "passes/convert/float16.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "bertopt/ir/tensor.h"
#include "fusion_test_util.h"
#include "test_models.h"

namespace bertopt::passes {
namespace {

using onnx::TensorProto;
using testing::CountOps;
using testing::ExpectSameOutputs;
using testing::ParseModel;

struct Converted {
  onnx::ModelProto model;
  Float16Report report;
};

Converted Convert(const onnx::ModelProto& original, const Float16Options& options = {}) {
  Converted c{original, {}};
  auto graph = ir::Graph::Build(&c.model);
  EXPECT_TRUE(graph.ok()) << graph.status().ToString();
  auto report = ConvertToFloat16(**graph, options);
  EXPECT_TRUE(report.ok()) << report.status().ToString();
  if (report.ok()) c.report = *report;
  (*graph)->Commit();
  return c;
}

const TensorProto* Initializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

const onnx::NodeProto* Producer(const onnx::ModelProto& m, const std::string& value) {
  for (const auto& n : m.graph().node()) {
    for (const auto& o : n.output()) {
      if (o == value) return &n;
    }
  }
  return nullptr;
}

// No Cast reads the output of another Cast.
void ExpectNoCastPairs(const onnx::ModelProto& m) {
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "Cast") continue;
    const onnx::NodeProto* p = Producer(m, n.input(0));
    EXPECT_FALSE(p && p->op_type() == "Cast") << n.name() << " reads Cast " << p->name();
  }
}

int32_t InputType(const onnx::ModelProto& m, int i) {
  return m.graph().input(i).type().tensor_type().elem_type();
}
int32_t OutputType(const onnx::ModelProto& m, int i) {
  return m.graph().output(i).type().tensor_type().elem_type();
}

constexpr const char* kDense = R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 4] x) => (float[N, 4] y)
<float[4, 4] w = {0.5, -1, 2, 0.25, 1, 1, 1, 1, -2, 0.5, 0.125, 3, 0, 1, 0, -1},
 float[4] b = {0.1, 0.2, -0.3, 0.4}>
{
  m = MatMul(x, w)
  a = Add(m, b)
  y = Relu(a)
}
)";

TEST(Float16Test, ConvertsWeightsAndKeepsFloat32InputsAndOutputsWithOneCastEach) {
  const auto model = ParseModel(kDense);
  const Converted c = Convert(model);
  EXPECT_EQ(Initializer(c.model, "w")->data_type(), TensorProto::FLOAT16);
  EXPECT_EQ(Initializer(c.model, "b")->data_type(), TensorProto::FLOAT16);
  EXPECT_EQ(InputType(c.model, 0), TensorProto::FLOAT);
  EXPECT_EQ(OutputType(c.model, 0), TensorProto::FLOAT);
  EXPECT_EQ(CountOps(c.model, "Cast"), 2);
  EXPECT_EQ(c.report.casts_added, 2);
  EXPECT_EQ(c.report.tensors_converted, 2);
  EXPECT_EQ(c.report.values_converted, 20);
  EXPECT_TRUE(c.report.blocked_nodes.empty());
  ExpectNoCastPairs(c.model);
  ExpectSameOutputs(model, c.model, {.rtol = 1e-2, .atol = 1e-2});
}

TEST(Float16Test, NoKeepIoTypesMakesInputsAndOutputsFloat16WithoutCasts) {
  const auto model = ParseModel(kDense);
  const Converted c = Convert(model, {.keep_io_types = false});
  EXPECT_EQ(InputType(c.model, 0), TensorProto::FLOAT16);
  EXPECT_EQ(OutputType(c.model, 0), TensorProto::FLOAT16);
  EXPECT_EQ(CountOps(c.model, "Cast"), 0);
  ExpectSameOutputs(model, c.model, {.rtol = 1e-2, .atol = 1e-2});
}

TEST(Float16Test, ClampsOutOfRangeAndKeepsTinyValuesNonZeroAndReportsTheWorstTensor) {
  const auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[6] x) => (float[6] y)
<float[6] big = {1e6, -1e6, 1e-10, -1e-10, 0, 1}, float[6] fine = {1, 2, 3, 4, 5, 6}>
{
  a = Mul(x, big)
  y = Add(a, fine)
}
)");
  const Converted c = Convert(model);
  const TensorProto* big = Initializer(c.model, "big");
  ASSERT_NE(big, nullptr);
  auto bytes = ir::PayloadBytes(*big);
  ASSERT_TRUE(bytes.has_value());
  std::vector<uint16_t> bits(6);
  std::memcpy(bits.data(), bytes->data(), 12);
  EXPECT_EQ(bits, (std::vector<uint16_t>{0x7bff, 0xfbff, 0x0001, 0x8001, 0x0000, 0x3c00}));
  EXPECT_EQ(c.report.values_clamped, 2);
  EXPECT_EQ(c.report.values_raised, 2);
  EXPECT_EQ(c.report.most_changed_tensor, "big");
  EXPECT_EQ(c.report.most_changed_count, 4);
  // Rounding of the values float16 holds: 1, 2, ..., 6 and 0 and 1 are exact.
  EXPECT_EQ(c.report.max_relative_change, 0);
  EXPECT_EQ(c.report.worst_tensor, "");
}

TEST(Float16Test, ReportsTheLargestRoundingChangeAndItsTensor) {
  const auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[2] x) => (float[2] y)
<float[2] a = {1, 0.1}, float[2] b = {1, 1e-7}>
{
  s = Mul(x, a)
  y = Mul(s, b)
}
)");
  const Converted c = Convert(model);
  // 1e-7 is a float16 subnormal: 2 * 2^-24 = 1.19e-7, 19% off; 0.1 is only 0.02% off.
  EXPECT_EQ(c.report.worst_tensor, "b");
  EXPECT_NEAR(c.report.max_relative_change, 2 * std::ldexp(1.0, -24) / 1e-7 - 1, 1e-3);
  EXPECT_EQ(c.report.values_raised, 0);
}

constexpr const char* kRangeCumSum = R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[N] x) => (float[N] y, float[5] r)
<float start = {0}, float limit = {5}, float delta = {1}, int64 axis = {0},
 float[5] s = {1, 2, 3, 4, 5}>
{
  c = CumSum(x, axis)
  y = Mul(c, c)
  q = Range(start, limit, delta)
  r = Mul(q, s)
}
)";

TEST(Float16Test, RangeAndCumSumStayFloat32WithCastsOnlyAtTheirBoundaries) {
  const auto model = ParseModel(kRangeCumSum);
  const Converted c = Convert(model);
  // Range's operands are read by Range alone, so they stay float32; s is converted.
  EXPECT_EQ(Initializer(c.model, "start")->data_type(), TensorProto::FLOAT);
  EXPECT_EQ(Initializer(c.model, "limit")->data_type(), TensorProto::FLOAT);
  EXPECT_EQ(Initializer(c.model, "s")->data_type(), TensorProto::FLOAT16);
  EXPECT_EQ(c.report.blocked_nodes.size(), 2u);
  // CumSum reads the float32 input directly; its result and Range's are cast to float16 for the
  // Muls, whose results are cast back for the float32 outputs.
  EXPECT_EQ(Producer(c.model, "c")->op_type(), "CumSum");
  EXPECT_EQ(Producer(c.model, "c")->input(0), "x");
  EXPECT_EQ(CountOps(c.model, "Cast"), 4);
  ExpectNoCastPairs(c.model);
  ExpectSameOutputs(model, c.model, {.rtol = 1e-2, .atol = 1e-2});
}

TEST(Float16Test, OpAndNodeBlockListsKeepFloat32AndUnknownNodeNameIsAnError) {
  const auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[N, 4] x) => (float[N, 4] y)
{
  a = Softmax <axis = -1> (x)
  b = Exp(a)
  y = Tanh(b)
}
)");
  const Converted ops = Convert(model, {.op_block_list = {"Softmax", "Exp"}});
  // Softmax and Exp read and make float32 (x directly), only Tanh computes in float16.
  EXPECT_EQ(ops.report.blocked_nodes.size(), 2u);
  EXPECT_EQ(CountOps(ops.model, "Cast"), 2);
  ExpectNoCastPairs(ops.model);
  ExpectSameOutputs(model, ops.model, {.rtol = 1e-2, .atol = 1e-2});

  onnx::ModelProto named = model;
  named.mutable_graph()->mutable_node(2)->set_name("the_tanh");
  const Converted nodes = Convert(named, {.node_block_list = {"the_tanh"}});
  ASSERT_EQ(nodes.report.blocked_nodes.size(), 1u);
  EXPECT_EQ(nodes.report.blocked_nodes[0], "the_tanh (Tanh)");
  ExpectSameOutputs(model, nodes.model, {.rtol = 1e-2, .atol = 1e-2});

  onnx::ModelProto copy = model;
  auto graph = ir::Graph::Build(&copy);
  ASSERT_TRUE(graph.ok());
  auto bad = ConvertToFloat16(**graph, {.node_block_list = {"no_such_node"}});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("--node_block_list: no node named 'no_such_node'"),
            std::string::npos)
      << bad.status().message();
  auto empty = ConvertToFloat16(**graph, {.op_block_list = {"Exp", ""}});
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("--op_block_list"), std::string::npos);
}

TEST(Float16Test, AiOnnxMlOpsStayFloat32) {
  const auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13, "ai.onnx.ml" : 1]>
g (float[2, 3] x) => (float[2, 3] y)
{
  n = ai.onnx.ml.Normalizer <norm = "L2"> (x)
  y = Relu(n)
}
)");
  const Converted c = Convert(model);
  ASSERT_EQ(c.report.blocked_nodes.size(), 1u);
  EXPECT_EQ(Producer(c.model, "n")->input(0), "x");  // reads the float32 input itself
  ExpectNoCastPairs(c.model);
  ExpectSameOutputs(model, c.model, {.rtol = 1e-2, .atol = 1e-2});
}

// Every fused op bertopt emits, converted, loads and runs in ORT on CPU, which has float16
// kernels only for some of them and runs the others in float32 through Casts it inserts itself.
// LayerNormalization sits in an opset-13 model, where only ORT (not ONNX) defines it.
TEST(Float16Test, FusedOpsRunInOrtOnCpuAndMatch) {
  const auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13, "com.microsoft" : 1]>
g (float[2, 3, 4] x) => (float[2, 3, 4] y)
<float[4] g = {1.5, 0.5, -1, 2}, float[4] b = {0.1, -0.2, 0.3, 0}, float[4, 12] w = {
   0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9, 0.1, 0.2, -0.3,
   0.5, 0.6, -0.7, 0.8, 0.9, -0.1, 0.2, 0.3, -0.4, 0.5, 0.6, 0.7,
   -0.9, 0.1, 0.2, -0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 0.1, 0.2,
   0.3, -0.4, 0.5, 0.6, -0.7, 0.8, 0.9, -0.1, 0.2, 0.3, -0.4, 0.5},
 float[12] wb = {0.1, 0, -0.1, 0.2, 0, -0.2, 0.1, 0, -0.1, 0.2, 0, -0.2}>
{
  n = LayerNormalization <axis = -1, epsilon = 1e-5> (x, g, b)
  a = com.microsoft.Attention <num_heads = 2> (n, w, wb)
  s = com.microsoft.SkipLayerNormalization <epsilon = 1e-12> (a, n, g, b)
  e = com.microsoft.Gelu(s)
  f = com.microsoft.FastGelu(e, b)
  y = com.microsoft.BiasGelu(f, b)
}
)");
  const Converted c = Convert(model);
  EXPECT_TRUE(c.report.blocked_nodes.empty());
  EXPECT_EQ(CountOps(c.model, "Cast"), 2);
  for (const auto& t : c.model.graph().initializer())
    EXPECT_EQ(t.data_type(), TensorProto::FLOAT16);
  ExpectSameOutputs(model, c.model, {.rtol = 1e-2, .atol = 1e-2});
}

// For ORT's CPU provider: MatMul and Add have no float16 CPU kernel, so they compute in float32 on
// float16 weights (Casts of the weights, which ORT folds at load); the LayerNorm has one and
// computes in float16, with Casts at its two boundaries.
TEST(Float16Test, CpuTargetComputesInFloat32WhereOrtHasNoFloat16Kernel) {
  const auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 17]>
g (float[N, 4] x) => (float[N, 4] y)
<float[4, 4] w = {0.5, -1, 2, 0.25, 1, 1, 1, 1, -2, 0.5, 0.125, 3, 0, 1, 0, -1},
 float[4] b = {0.1, 0.2, -0.3, 0.4}, float[4] g = {1, 2, 3, 4}>
{
  m = MatMul(x, w)
  a = Add(m, b)
  y = LayerNormalization(a, g, b)
}
)");
  const Converted c = Convert(model, {.cpu = true});
  EXPECT_EQ(c.report.cpu_float32_nodes, 2);
  for (const auto& t : c.model.graph().initializer()) {
    EXPECT_EQ(t.data_type(), TensorProto::FLOAT16) << t.name();
  }
  EXPECT_EQ(Producer(c.model, "m")->input(0), "x");  // MatMul reads the float32 input itself
  // w and b cast for MatMul and Add (b is read by the LayerNorm as float16 too), a cast to
  // float16 for the LayerNorm, its result cast back for the float32 output.
  EXPECT_EQ(CountOps(c.model, "Cast"), 4);
  ExpectNoCastPairs(c.model);
  ExpectSameOutputs(model, c.model, {.rtol = 1e-2, .atol = 1e-2});
}

TEST(Float16Test, CastsFollowTheNewTypesAndNoOpCastsGo) {
  // The BERT mask chain (Cast to float of an int64 mask), plus a Cast to float of a float value
  // (a no-op some exporters leave), plus a ConstantOfShape with its default float32 zero.
  const auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (int64[2, 3] mask, float[2, 3] x) => (float[2, 3] y)
<float one = {1}, float big = {-10000}, int64[2] shape = {2, 3}>
{
  f = Cast <to = 1> (mask)
  s = Sub(one, f)
  m = Mul(s, big)
  x2 = Cast <to = 1> (x)
  z = ConstantOfShape(shape)
  a = Add(x2, m)
  y = Add(a, z)
}
)");
  const Converted c = Convert(model);
  EXPECT_EQ(Producer(c.model, "f")->attribute(0).i(), TensorProto::FLOAT16);
  const onnx::NodeProto* zeros = Producer(c.model, "z");
  ASSERT_NE(zeros, nullptr);
  ASSERT_EQ(zeros->attribute_size(), 1);
  EXPECT_EQ(zeros->attribute(0).t().data_type(), TensorProto::FLOAT16);
  // x2 = Cast(x) became Cast to float16 of x: the only Cast at the input; then one at the output.
  EXPECT_EQ(CountOps(c.model, "Cast"), 3);
  ExpectNoCastPairs(c.model);
  ExpectSameOutputs(model, c.model, {.rtol = 1e-2, .atol = 1e-2});
}

TEST(Float16Test, RemoveRedundantCastsFoldsExactPairsAndKeepsLossyOnes) {
  const auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float16[3] h, float[3] f) => (float16[3] y, float16[3] z)
{
  w = Cast <to = 1> (h)
  y = Cast <to = 10> (w)
  n = Cast <to = 10> (f)
  m = Cast <to = 1> (n)
  z = Cast <to = 10> (m)
}
)");
  onnx::ModelProto copy = model;
  auto graph = ir::Graph::Build(&copy);
  ASSERT_TRUE(graph.ok());
  // h -> float -> float16 is exact: y reads h (one Cast stays, to keep the output name of a
  // graph input). n -> float -> float16 is exact too, so z = Cast(f, to=float16): one Cast where
  // there were three. f -> float16 itself is lossy and stays.
  const int removed = RemoveRedundantCasts(**graph);
  (*graph)->Commit();
  EXPECT_EQ(removed, 3);
  EXPECT_EQ(CountOps(copy, "Cast"), 2);
  EXPECT_EQ(Producer(copy, "y")->input(0), "h");
  EXPECT_EQ(Producer(copy, "z")->input(0), "f");
  ExpectSameOutputs(model, copy);
}

TEST(Float16Test, ValueInfoAndGraphOutputTypesFollow) {
  auto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 13]>
g (float[2] x) => (float[2] y, float[2] t)
<float[2] w = {1, 2}>
{
  t = Mul(x, w)
  y = Relu(t)
}
)");
  auto* vi = model.mutable_graph()->add_value_info();
  vi->set_name("t");
  vi->mutable_type()->mutable_tensor_type()->set_elem_type(TensorProto::FLOAT);
  // t is both an output and read by Relu: Relu reads the float16 value, the output a Cast of it.
  const Converted keep = Convert(model);
  EXPECT_EQ(OutputType(keep.model, 1), TensorProto::FLOAT);
  EXPECT_EQ(Producer(keep.model, "t")->op_type(), "Cast");
  ExpectSameOutputs(model, keep.model, {.rtol = 1e-2, .atol = 1e-2});

  const Converted half = Convert(model, {.keep_io_types = false});
  EXPECT_EQ(OutputType(half.model, 1), TensorProto::FLOAT16);
  EXPECT_EQ(half.model.graph().value_info(0).type().tensor_type().elem_type(),
            TensorProto::FLOAT16);
}

}  // namespace
}  // namespace bertopt::passes
