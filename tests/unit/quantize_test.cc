// int8 dynamic quantization (src/passes/convert/quantize.*): each rewrite on a tiny graph, run
// through ORT with outputs close to float32 (cosine >= 0.99), the exclude list, weights that must
// stay float, the rounding-error report, and a second run that changes nothing.
#include "passes/convert/quantize.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"
#include "fusion_test_util.h"
#include "test_models.h"

namespace bertopt::testing {
namespace {

using passes::MatMulForm;
using passes::QuantizeOptions;
using passes::QuantizeReport;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

/// "{v1, v2, ...}": `n` seeded values in [-0.5, 0.5], for initializers in text syntax.
std::string Values(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(-0.5, 0.5);
  std::string out = "{";
  for (int i = 0; i < n; ++i) out += (i ? ", " : "") + std::to_string(dist(rng));
  return out + "}";
}

/// Replaces every `$name` in `text` with `Values(n, seed)` (longer names first, so `$qkv` does not
/// eat the start of `$qkv_bias`).
std::string WithValues(std::string text,
                       std::vector<std::tuple<std::string, int, uint32_t>> values) {
  std::sort(values.begin(), values.end(), [](const auto& a, const auto& b) {
    return std::get<0>(a).size() > std::get<0>(b).size();
  });
  for (const auto& [name, n, seed] : values) {
    const std::string key = "$" + name;
    for (size_t at = text.find(key); at != std::string::npos; at = text.find(key)) {
      text.replace(at, key.size(), Values(n, seed));
    }
  }
  return text;
}

/// `text` with the first `from` replaced by `to` (which must occur).
std::string Replaced(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

struct QuantizeRun {
  onnx::ModelProto after;
  QuantizeReport report;
};

QuantizeRun Quantized(const onnx::ModelProto& model, const QuantizeOptions& options = {}) {
  QuantizeRun run{model, {}};
  auto report = passes::Quantize(run.after, options);
  EXPECT_TRUE(report.ok()) << report.status().ToString();
  if (report.ok()) run.report = *report;
  return run;
}

const onnx::NodeProto* FindNode(const onnx::ModelProto& m, const std::string& op) {
  for (const auto& node : m.graph().node()) {
    if (node.op_type() == op) return &node;
  }
  return nullptr;
}

const onnx::TensorProto* FindInitializer(const onnx::ModelProto& m, const std::string& name) {
  for (const auto& t : m.graph().initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

std::vector<int64_t> Dims(const onnx::TensorProto* t) {
  return t ? std::vector<int64_t>(t->dims().begin(), t->dims().end()) : std::vector<int64_t>{-1};
}

ParityOptions Close() {
  ParityOptions p;
  p.min_cosine = 0.99;
  p.dims = {{"B", 2}, {"S", 5}};
  return p;
}

// A BERT FFN: MatMul + bias Add, a BiasGelu, MatMul + bias Add.
const std::string kDense =
    WithValues(R"(
<ir_version: 8, opset_import: ["" : 14, "com.microsoft" : 1]>
g (float[B, S, 8] x) => (float[B, S, 8] y)
<float[8, 16] w1 = $w1, float[16] b1 = $b1, float[16] b_gelu = $bg, float[16, 8] w2 = $w2,
 float[8] b2 = $b2>
{
  mm1 = MatMul(x, w1)
  h = Add(mm1, b1)
  g = com.microsoft.BiasGelu(h, b_gelu)
  mm2 = MatMul(g, w2)
  y = Add(b2, mm2)
}
)",
               {{"w1", 128, 1}, {"b1", 16, 2}, {"bg", 16, 3}, {"w2", 128, 4}, {"b2", 8, 5}});

TEST(QuantizeTest, MatMulWithBiasBecomesDynamicQuantizeMatMul) {
  const onnx::ModelProto model = ParseModel(kDense);
  QuantizeRun run = Quantized(model);
  EXPECT_EQ(CountOps(run.after, "DynamicQuantizeMatMul", "com.microsoft"), 2);
  EXPECT_EQ(CountOps(run.after, "MatMul"), 0);
  EXPECT_EQ(CountOps(run.after, "Add"), 0) << "both bias Adds (either operand order) fold";
  EXPECT_EQ(CountOps(run.after, "BiasGelu", "com.microsoft"), 1);
  EXPECT_EQ(run.report.matmul_quantized, 2);
  EXPECT_EQ(run.report.biases_folded, 2);
  EXPECT_TRUE(run.report.kept_float.empty());
  EXPECT_EQ(run.report.ops_before.at("MatMul"), 2);
  EXPECT_EQ(run.report.ops_after.at("DynamicQuantizeMatMul"), 2);
  EXPECT_EQ(run.report.ops_after.count("MatMul"), 0u);

  const onnx::NodeProto* dq = FindNode(run.after, "DynamicQuantizeMatMul");
  ASSERT_NE(dq, nullptr);
  EXPECT_THAT(dq->input(), ElementsAre("x", "w1_int8", "w1_scale", "", "b1"));
  EXPECT_EQ(dq->output(0), "h");
  const onnx::TensorProto* w = FindInitializer(run.after, "w1_int8");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->data_type(), onnx::TensorProto::INT8);
  EXPECT_EQ(Dims(w), (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(Dims(FindInitializer(run.after, "w1_scale")), (std::vector<int64_t>{16}))
      << "per channel: one scale per output column";
  EXPECT_EQ(FindInitializer(run.after, "w1"), nullptr) << "the float weight is gone";
  ASSERT_EQ(run.report.weights.size(), 2u);
  EXPECT_EQ(run.report.weights[0].weight, "w1");
  EXPECT_GT(run.report.weights[0].relative_rms_error, 0);
  EXPECT_LT(run.report.weights[0].relative_rms_error, 0.01);
  EXPECT_EQ(run.report.float_weight_bytes, 2 * 128 * 4);
  EXPECT_EQ(run.report.int8_weight_bytes, 2 * 128 + 4 * (16 + 8));
  ExpectSameOutputs(model, run.after, Close());
}

TEST(QuantizeTest, TheCosineCheckCatchesAWrongWeight) {
  const onnx::ModelProto model = ParseModel(kDense);
  QuantizeRun run = Quantized(model);
  for (auto& t : *run.after.mutable_graph()->mutable_initializer()) {
    if (t.name() != "w2_int8") continue;
    for (char& byte : *t.mutable_raw_data()) byte = static_cast<char>(-byte);
  }
  EXPECT_NONFATAL_FAILURE(ExpectSameOutputs(model, run.after, Close()), "min_cosine");
}

TEST(QuantizeTest, MatMulIntegerToFloatFormSharesOneDynamicQuantizeLinearPerInput) {
  // Two MatMuls read x: one DynamicQuantizeLinear serves both.
  const onnx::ModelProto model =
      ParseModel(WithValues(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[B, S, 8] x) => (float[B, S, 4] y, float[B, S, 4] z)
<float[8, 4] w1 = $w1, float[8, 4] w2 = $w2, float[4] b = $b>
{
  m = MatMul(x, w1)
  y = Add(m, b)
  z = MatMul(x, w2)
}
)",
                            {{"w1", 32, 6}, {"w2", 32, 7}, {"b", 4, 8}}));
  QuantizeOptions options;
  options.matmul_form = MatMulForm::kMatMulIntegerToFloat;
  QuantizeRun run = Quantized(model, options);
  EXPECT_EQ(CountOps(run.after, "MatMulIntegerToFloat", "com.microsoft"), 2);
  EXPECT_EQ(CountOps(run.after, "DynamicQuantizeLinear"), 1);
  EXPECT_EQ(CountOps(run.after, "MatMul"), 0);
  const onnx::NodeProto* mm = FindNode(run.after, "MatMulIntegerToFloat");
  ASSERT_NE(mm, nullptr);
  EXPECT_THAT(mm->input(),
              ElementsAre("x_uint8", "w1_int8", "x_scale", "w1_scale", "x_zero_point", "", "b"));
  ExpectSameOutputs(model, run.after, Close());
}

TEST(QuantizeTest, PerTensorHasOneScalarScale) {
  QuantizeOptions options;
  options.per_channel = false;
  const onnx::ModelProto model = ParseModel(kDense);
  QuantizeRun run = Quantized(model, options);
  EXPECT_EQ(CountOps(run.after, "DynamicQuantizeMatMul", "com.microsoft"), 2);
  const onnx::TensorProto* scale = FindInitializer(run.after, "w1_scale");
  ASSERT_NE(scale, nullptr);
  EXPECT_EQ(scale->dims_size(), 0);
  EXPECT_FALSE(run.report.weights[0].per_channel);
  ExpectSameOutputs(model, run.after, Close());
}

TEST(QuantizeTest, RoundingErrorIsMeasuredAgainstTheFloatWeight) {
  // Per tensor, max |w| = 1 gives s = 1/127: 0.5 / s = 63.5 rounds half to even to 64, and
  // dequantizes to 64/127, off by 0.5/127; 1.0 is exact. Relative RMS: (0.5/127) / sqrt(1.25).
  const onnx::ModelProto model = ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[B, 1] x) => (float[B, 2] y)
<float[1, 2] w = {1.0, 0.5}>
{
  y = MatMul(x, w)
}
)");
  QuantizeOptions options;
  options.per_channel = false;
  QuantizeRun run = Quantized(model, options);
  ASSERT_EQ(run.report.weights.size(), 1u);
  EXPECT_NEAR(run.report.weights[0].max_abs_error, 0.5 / 127, 1e-7);
  EXPECT_NEAR(run.report.weights[0].relative_rms_error, (0.5 / 127) / std::sqrt(1.25), 1e-7);
  const auto values = ir::DecodeAsInts(*FindInitializer(run.after, "w_int8"));
  ASSERT_TRUE(values);
  EXPECT_THAT(*values, ElementsAre(127, 64));
  // Per channel each column has its own max: both exact.
  QuantizeRun per_channel = Quantized(model);
  EXPECT_LT(per_channel.report.weights[0].max_abs_error, 1e-8);
  EXPECT_LT(per_channel.report.weights[0].relative_rms_error, 1e-8);
}

// A heavy-tailed weight (as trained FFN output layers are) rounds badly per column: above
// --int8_max_error (here 1 %; off by default) it stays float, with the error in the reason.
TEST(QuantizeTest, WeightThatWouldLoseTooMuchStaysFloat) {
  // Each column: one 1.0 sets the scale to 1/127, and fifteen ±0.0035 round to 0: 1.36 % lost.
  std::string w2 = "{";
  for (int r = 0; r < 16; ++r) {
    for (int c = 0; c < 8; ++c) {
      w2 += fmt::format("{}{}", r + c ? ", " : "", r == c ? 1.0 : ((r + c) % 2 ? 0.0035 : -0.0035));
    }
  }
  w2 += "}";
  const size_t at = kDense.find("float[16, 8] w2 = {");
  ASSERT_NE(at, std::string::npos);
  const size_t end = kDense.find('}', at);
  std::string text = kDense;
  text.replace(at, end + 1 - at, "float[16, 8] w2 = " + w2);
  const onnx::ModelProto model = ParseModel(text);

  QuantizeOptions one_percent;
  one_percent.max_weight_error = 0.01;
  QuantizeRun run = Quantized(model, one_percent);
  EXPECT_EQ(run.report.matmul_quantized, 1) << "w1 only";
  ASSERT_EQ(run.report.kept_float.size(), 1u);
  EXPECT_THAT(run.report.kept_float[0].reason, HasSubstr("weight 'w2' would lose 1.36 %"));
  EXPECT_THAT(run.report.kept_float[0].reason, HasSubstr("more than --int8_max_error 1.00 %"));
  ExpectSameOutputs(model, run.after, Close());

  EXPECT_EQ(Quantized(model).report.matmul_quantized, 2) << "the default quantizes both";
}

// keep_float (calibration's choice) keeps the named candidate float with the given reason, and
// the report lists each quantized candidate with its activation and weight.
TEST(QuantizeTest, KeepFloatKeepsTheNamedCandidateWithItsReason) {
  const onnx::ModelProto model = ParseModel(kDense);
  QuantizeRun all = Quantized(model);
  ASSERT_EQ(all.report.quantized.size(), 2u);
  EXPECT_EQ(all.report.quantized[0].op, "MatMul");
  EXPECT_EQ(all.report.quantized[0].weight, "w1");
  EXPECT_EQ(all.report.quantized[1].weight, "w2");
  EXPECT_FALSE(all.report.quantized[0].activation.empty());
  EXPECT_NE(all.report.quantized[0].activation, all.report.quantized[1].activation);

  QuantizeOptions options;
  // Text-format nodes have no names: the key is the weight's name.
  options.keep_float[all.report.quantized[1].key] = "measured: too lossy";
  QuantizeRun run = Quantized(model, options);
  EXPECT_EQ(run.report.matmul_quantized, 1);
  ASSERT_EQ(run.report.kept_float.size(), 1u);
  EXPECT_EQ(run.report.kept_float[0].reason, "measured: too lossy");
  ASSERT_EQ(run.report.quantized.size(), 1u);
  EXPECT_EQ(run.report.quantized[0].weight, "w1");
  ExpectSameOutputs(model, run.after, Close());
}

// One attention layer as the fusions leave it, with a raw (B, S) mask.
const std::string kAttention =
    WithValues(R"(
<ir_version: 8, opset_import: ["" : 14, "com.microsoft" : 1]>
g (float[B, S, 4] x, int32[B, S] mask) => (float[B, S, 4] y)
<float[4, 12] qkv = $qkv, float[12] qkv_bias = $qkv_bias, float[4, 4] wo = $wo, float[4] bo = $bo>
{
  context = com.microsoft.Attention<num_heads = 2, mask_filter_value = -1000.0>(x, qkv, qkv_bias, mask)
  dense = MatMul(context, wo)
  y = Add(dense, bo)
}
)",
               {{"qkv", 48, 11}, {"qkv_bias", 12, 12}, {"wo", 16, 13}, {"bo", 4, 14}});

TEST(QuantizeTest, AttentionBecomesQAttentionFedByDynamicQuantizeLinear) {
  const onnx::ModelProto model = ParseModel(kAttention);
  QuantizeRun run = Quantized(model);
  EXPECT_EQ(CountOps(run.after, "QAttention", "com.microsoft"), 1);
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), 0);
  EXPECT_EQ(CountOps(run.after, "DynamicQuantizeLinear"), 1);
  EXPECT_EQ(CountOps(run.after, "DynamicQuantizeMatMul", "com.microsoft"), 1);
  EXPECT_EQ(run.report.attention_quantized, 1);
  const onnx::NodeProto* q = FindNode(run.after, "QAttention");
  ASSERT_NE(q, nullptr);
  // input, weight, bias, input_scale, weight_scale, mask_index, input_zero_point
  EXPECT_THAT(q->input(), ElementsAre("x_uint8", "qkv_int8", "qkv_bias", "x_scale", "qkv_scale",
                                      "mask", "x_zero_point"));
  EXPECT_EQ(q->output(0), "context");
  ASSERT_EQ(q->attribute_size(), 2);
  EXPECT_EQ(q->attribute(0).name(), "num_heads");
  EXPECT_EQ(q->attribute(1).name(), "mask_filter_value");
  EXPECT_EQ(Dims(FindInitializer(run.after, "qkv_scale")), (std::vector<int64_t>{12}));
  ExpectSameOutputs(model, run.after, Close());
}

TEST(QuantizeTest, AttentionWithoutBiasGetsAZeroBias) {
  onnx::ModelProto model = ParseModel(kAttention);
  for (auto& node : *model.mutable_graph()->mutable_node()) {
    if (node.op_type() == "Attention") node.set_input(2, "");
  }
  QuantizeRun run = Quantized(model);
  const onnx::NodeProto* q = FindNode(run.after, "QAttention");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->input(2), "qkv_zero_bias");
  // ORT 1.29's float Attention kernel crashes without a bias, so the reference is the same model
  // with an explicit zero bias.
  const onnx::ModelProto zero_bias = ParseModel(
      Replaced(kAttention, "float[12] qkv_bias = ",
               "float[12] qkv_bias = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, float[12] unused = "));
  ExpectSameOutputs(zero_bias, run.after, Close());
}

TEST(QuantizeTest, ExcludeKeepsNamedWeightsAndNodesInFloat) {
  const onnx::ModelProto model = ParseModel(kAttention);
  QuantizeOptions by_weight;
  by_weight.exclude = {"qkv"};
  QuantizeRun run = Quantized(model, by_weight);
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), 1);
  EXPECT_EQ(CountOps(run.after, "QAttention", "com.microsoft"), 0);
  EXPECT_EQ(CountOps(run.after, "DynamicQuantizeLinear"), 0);
  EXPECT_EQ(CountOps(run.after, "DynamicQuantizeMatMul", "com.microsoft"), 1);
  ASSERT_EQ(run.report.kept_float.size(), 1u);
  EXPECT_EQ(run.report.kept_float[0].op, "Attention");
  EXPECT_THAT(run.report.kept_float[0].reason, HasSubstr("--int8_exclude"));
  ExpectSameOutputs(model, run.after, Close());

  // A node name works too; the MatMul here is unnamed in text syntax, so name it.
  onnx::ModelProto named = model;
  for (auto& node : *named.mutable_graph()->mutable_node()) {
    if (node.op_type() == "MatMul") node.set_name("output_dense");
  }
  QuantizeOptions by_node;
  by_node.exclude = {"output_dense"};
  QuantizeRun node_run = Quantized(named, by_node);
  EXPECT_EQ(CountOps(node_run.after, "MatMul"), 1);
  EXPECT_EQ(CountOps(node_run.after, "QAttention", "com.microsoft"), 1);
  ASSERT_EQ(node_run.report.kept_float.size(), 1u);
  EXPECT_EQ(node_run.report.kept_float[0].node, "output_dense");
}

TEST(QuantizeTest, ExcludingAnUnknownNameIsAnErrorNamingIt) {
  onnx::ModelProto model = ParseModel(kDense);
  const onnx::ModelProto before = model;
  QuantizeOptions options;
  options.exclude = {"w1", "no_such_weight"};
  auto report = passes::Quantize(model, options);
  ASSERT_FALSE(report.ok());
  EXPECT_EQ(report.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(report.status().message(), HasSubstr("--int8_exclude: 'no_such_weight'"));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(model, before));
}

TEST(QuantizeTest, WeightsThatAreNotConstantFloat2DStayFloat) {
  const onnx::ModelProto model = ParseModel(WithValues(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[B, S, 4] x, float[4, 4] w_input) => (float[B, S, 4] a, float[B, S, 4] b, float[2, S, 4] c, float[B, S, 4] d)
<float[4, 4] w = $w, float[2, 4, 4] w3 = $w3, int32[4, 4] wi = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}>
{
  a = MatMul(x, w_input)
  w_computed = Neg(w)
  b = MatMul(x, w_computed)
  c = MatMul(x, w3)
  xi = Cast<to = 6>(x)
  di = MatMul(xi, wi)
  d = Cast<to = 1>(di)
}
)",
                                                       {{"w", 16, 21}, {"w3", 32, 22}}));
  QuantizeRun run = Quantized(model);
  EXPECT_EQ(CountOps(run.after, "MatMul"), 4);
  EXPECT_EQ(CountOps(run.after, "DynamicQuantizeMatMul", "com.microsoft"), 0);
  ASSERT_EQ(run.report.kept_float.size(), 4u);
  EXPECT_THAT(run.report.kept_float[0].reason, HasSubstr("weight 'w_input' is not a constant"));
  EXPECT_THAT(run.report.kept_float[1].reason, HasSubstr("weight 'w_computed' is not a constant"));
  EXPECT_THAT(run.report.kept_float[2].reason, HasSubstr("weight 'w3' has rank 3, not 2"));
  EXPECT_THAT(run.report.kept_float[3].reason, HasSubstr("weight 'wi' is INT32, not float32"));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(run.after, model))
      << "nothing quantized, nothing changed";
}

TEST(QuantizeTest, BiasFoldsOnlyForAOneDimensionalBiasThatIsTheOnlyReader) {
  const onnx::ModelProto model =
      ParseModel(WithValues(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[B, S, 4] x) => (float[B, S, 4] y, float[B, S, 4] z, float[B, S, 4] m2)
<float[4, 4] w1 = $w1, float[4, 4] w2 = $w2, float[1, 4] row_bias = $rb, float[4] bias = $b>
{
  m1 = MatMul(x, w1)
  y = Add(m1, row_bias)
  m2 = MatMul(x, w2)
  z = Add(m2, bias)
}
)",
                            {{"w1", 16, 31}, {"w2", 16, 32}, {"rb", 4, 33}, {"b", 4, 34}}));
  QuantizeRun run = Quantized(model);
  EXPECT_EQ(CountOps(run.after, "DynamicQuantizeMatMul", "com.microsoft"), 2);
  EXPECT_EQ(CountOps(run.after, "Add"), 2) << "a [1, N] bias and a graph-output product stay";
  EXPECT_EQ(run.report.biases_folded, 0);
  ExpectSameOutputs(model, run.after, Close());
}

TEST(QuantizeTest, SharedWeightIsQuantizedOnce) {
  const onnx::ModelProto model = ParseModel(WithValues(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[B, S, 4] x) => (float[B, S, 4] z)
<float[4, 4] w = $w>
{
  y = MatMul(x, w)
  z = MatMul(y, w)
}
)",
                                                       {{"w", 16, 41}}));
  QuantizeRun run = Quantized(model);
  EXPECT_EQ(CountOps(run.after, "DynamicQuantizeMatMul", "com.microsoft"), 2);
  EXPECT_EQ(run.report.weights.size(), 1u);
  EXPECT_EQ(run.after.graph().initializer_size(), 2) << "w_int8 and w_scale";
  ExpectSameOutputs(model, run.after, Close());
}

/// kAttention at ai.onnx opset 10, with its output going through `op` (e.g. "Softmax").
onnx::ModelProto AttentionAtOpset10Then(const std::string& op) {
  return ParseModel(Replaced(Replaced(kAttention, "\"\" : 14", "\"\" : 10"), "  y = Add(dense, bo)",
                             "  biased = Add(dense, bo)\n  y = " + op + "(biased)"));
}

TEST(QuantizeTest, Opset10IsRaisedTo11WhenEveryOpMeansTheSame) {
  // DynamicQuantizeLinear, which QAttention's input needs, is ai.onnx 11. Softmax got an opset-11
  // version that only extends the opset-10 one (negative axes), so the model may import 11.
  const onnx::ModelProto model = AttentionAtOpset10Then("Softmax<axis = 2>");
  QuantizeRun run = Quantized(model);
  EXPECT_EQ(run.report.opset_raised_from, 10);
  EXPECT_EQ(run.after.opset_import(0).version(), 11);
  EXPECT_EQ(CountOps(run.after, "QAttention", "com.microsoft"), 1);
  EXPECT_TRUE(run.report.kept_float.empty());
  ExpectSameOutputs(model, run.after, Close());
}

TEST(QuantizeTest, Opset10StaysWhenAnOpChangedMeaningAt11) {
  // Clip's bounds moved from attributes to inputs at 11: the model keeps opset 10 and its
  // Attention stays float; MatMuls still quantize through DynamicQuantizeMatMul, which quantizes
  // its input itself.
  const onnx::ModelProto model = AttentionAtOpset10Then("Clip<min = -1.0, max = 1.0>");
  QuantizeRun run = Quantized(model);
  EXPECT_EQ(run.report.opset_raised_from, 0);
  EXPECT_EQ(run.after.opset_import(0).version(), 10);
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), 1);
  EXPECT_EQ(CountOps(run.after, "DynamicQuantizeMatMul", "com.microsoft"), 1);
  ASSERT_EQ(run.report.kept_float.size(), 1u);
  EXPECT_THAT(run.report.kept_float[0].reason,
              HasSubstr("the model imports ai.onnx opset 10 and its Clip"));
  ExpectSameOutputs(model, run.after, Close());
}

TEST(QuantizeTest, AttentionWithAttributesQAttentionLacksStaysFloat) {
  const onnx::ModelProto model = ParseModel(
      Replaced(kAttention, "num_heads = 2,", "num_heads = 2, qkv_hidden_sizes = [4, 4, 4],"));
  QuantizeRun run = Quantized(model);
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), 1);
  ASSERT_EQ(run.report.kept_float.size(), 1u);
  EXPECT_THAT(run.report.kept_float[0].reason, HasSubstr("'qkv_hidden_sizes'"));
}

TEST(QuantizeTest, SecondRunChangesNothing) {
  QuantizeRun once = Quantized(ParseModel(kAttention));
  QuantizeRun twice = Quantized(once.after);
  EXPECT_EQ(twice.report.attention_quantized + twice.report.matmul_quantized, 0);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(twice.after, once.after));
}

TEST(QuantizeTest, ParsesMatMulForms) {
  EXPECT_EQ(*passes::ParseMatMulForm("MatMulIntegerToFloat"), MatMulForm::kMatMulIntegerToFloat);
  EXPECT_EQ(*passes::ParseMatMulForm("DynamicQuantizeMatMul"), MatMulForm::kDynamicQuantizeMatMul);
  auto bad = passes::ParseMatMulForm("MatMulInteger");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("--matmul_form MatMulInteger"));
  EXPECT_TRUE(passes::IsInt8Op("QAttention"));
  EXPECT_FALSE(passes::IsInt8Op("SkipLayerNormalization"));
}

}  // namespace
}  // namespace bertopt::testing
