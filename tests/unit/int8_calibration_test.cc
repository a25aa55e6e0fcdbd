// int8 calibration (src/ort/int8_calibration.*): a MatMul whose input carries an outlier feature
// ranks first and is the one kept float32; a well-behaved model stays all int8 after one probe;
// the chosen model meets the target in an independent `compare` of the saved files; calibration
// never changes the model it is given.
#include "ort/int8_calibration.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sstream>

#include "bertopt/exit_codes.h"
#include "bertopt/io/model_io.h"
#include "commands.h"
#include "fmt/format.h"
#include "ort/compare.h"
#include "test_models.h"
#include "testdata_util.h"

namespace bertopt::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int kVocab = 50;
constexpr int kHidden = 8;

/// "{...}" with `n` values of a fixed pseudo-random sequence in [-0.5, 0.5].
std::string Values(int n, uint32_t seed, int outlier_every = 0, float outlier = 0) {
  std::string out = "{";
  uint32_t x = seed;
  for (int i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    float v = static_cast<float>(x >> 8) / static_cast<float>(1u << 24) - 0.5f;
    if (outlier_every > 0 && i % outlier_every == 0) v = outlier;
    out += fmt::format("{}{}", i ? ", " : "", v);
  }
  return out + "}";
}

/// ids -> Gather(emb) -> MatMul(w1) -> Tanh -> MatMul(w2). With an outlier, feature 0 of every
/// embedding row is `outlier` and w1 ignores it (row 0 all zeros): the first product then comes
/// from features that uint8 rounding over [-outlier, outlier] all but erases.
onnx::ModelProto TwoDense(float outlier, bool embedding_is_an_output = false) {
  std::string w1 = Values(kHidden * kHidden, 2);
  if (outlier != 0) {
    // Row 0 (the first kHidden values) zero: the product does not see the outlier feature.
    w1 = "{" + fmt::format("{}", fmt::join(std::vector<int>(kHidden, 0), ", ")) + ", " +
         Values(kHidden * (kHidden - 1), 2).substr(1);
  }
  return ParseModel(fmt::format(
      R"(
<ir_version: 8, opset_import: ["" : 14]>
g (int64[B, S] input_ids) => (float[B, S, {h}] y{x_out})
<float[{v}, {h}] emb = {emb}, float[{h}, {h}] w1 = {w1}, float[{h}, {h}] w2 = {w2}>
{{
  x = Gather(emb, input_ids)
  p = MatMul(x, w1)
  t = Tanh(p)
  y = MatMul(t, w2)
}}
)",
      fmt::arg("v", kVocab), fmt::arg("h", kHidden),
      fmt::arg("emb", Values(kVocab * kHidden, 1, outlier != 0 ? kHidden : 0, outlier)),
      fmt::arg("w1", w1), fmt::arg("w2", Values(kHidden * kHidden, 3)),
      fmt::arg("x_out", embedding_is_an_output ? fmt::format(", float[B, S, {}] x", kHidden)
                                               : std::string())));
}

/// Two float inputs and a MatMul: nothing to generate BERT inputs for.
const char* const kNoBertInputs = R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[B, 8] a, float[B, 8] b) => (float[B, 8] y)
<float[8, 8] w = {1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1}>
{
  s = Add(a, b)
  y = MatMul(s, w)
}
)";

ort::CalibrationOptions Small(double min_cosine) {
  ort::CalibrationOptions o;
  o.min_cosine = min_cosine;
  o.samples = 4;
  o.sequence_length = 16;
  return o;
}

TEST(Int8CalibrationTest, OutlierInputRanksFirstAndAloneStaysFloat) {
  const onnx::ModelProto model = TwoDense(100.0f);
  const onnx::ModelProto untouched = model;
  passes::QuantizeOptions options;
  auto report = ort::CalibrateInt8(model, options, Small(0.999));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(model.SerializeAsString(), untouched.SerializeAsString());
  EXPECT_EQ(report->candidates, 2);
  ASSERT_EQ(report->ranking.size(), 2u);
  // Unnamed nodes are keyed by their weight.
  EXPECT_EQ(report->ranking[0].key, "w1");
  EXPECT_EQ(report->ranking[1].key, "w2");
  EXPECT_GT(report->ranking[0].relative_error, 10 * report->ranking[1].relative_error);
  EXPECT_THAT(report->kept_float, ElementsAre("w1"));
  // Probe 0 (all int8) missed; bisection between 0 and 2 probed 1, which met the target.
  ASSERT_EQ(report->probes.size(), 2u);
  EXPECT_EQ(report->probes[0].kept_float, 0);
  EXPECT_LT(report->probes[0].min_cosine, 0.999);
  EXPECT_EQ(report->probes[1].kept_float, 1);
  EXPECT_GE(report->min_cosine, 0.999);
  ASSERT_EQ(options.keep_float.count("w1"), 1u);
  EXPECT_THAT(options.keep_float["w1"], HasSubstr("int8 calibration"));

  // The chosen model, quantized and saved, passes an independent compare on the same inputs.
  onnx::ModelProto quantized = model;
  auto q = passes::Quantize(quantized, options);
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  EXPECT_EQ(q->matmul_quantized, 1);
  ASSERT_EQ(q->kept_float.size(), 1u);
  EXPECT_THAT(q->kept_float[0].reason, HasSubstr("int8 calibration"));
  testutil::TempDir dir;
  ASSERT_TRUE(io::SaveModel(model, dir / "f.onnx").ok());
  ASSERT_TRUE(io::SaveModel(quantized, dir / "q.onnx").ok());
  ort::CompareOptions c;
  c.baseline_model = dir / "f.onnx";
  c.optimized_model = dir / "q.onnx";
  c.samples = report->options.samples;
  c.seed = report->options.seed;
  c.batch_size = report->options.batch_size;
  c.sequence_length = report->options.sequence_length;
  c.min_cosine = 0.999;
  c.write_test_data = false;
  std::ostringstream log;
  auto compared = ort::CompareModels(c, log);
  ASSERT_TRUE(compared.ok()) << compared.status().ToString();
  EXPECT_TRUE(compared->AllPassed()) << log.str();
}

// The outlier activation is also a graph output: read from there, ranked and kept all the same.
TEST(Int8CalibrationTest, ActivationThatIsAGraphOutputIsReadFromIt) {
  const onnx::ModelProto model = TwoDense(100.0f, /*embedding_is_an_output=*/true);
  passes::QuantizeOptions options;
  auto report = ort::CalibrateInt8(model, options, Small(0.999));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  ASSERT_EQ(report->ranking.size(), 2u);
  EXPECT_EQ(report->ranking[0].key, "w1");
  EXPECT_THAT(report->kept_float, ElementsAre("w1"));
}

TEST(Int8CalibrationTest, WellBehavedModelStaysAllInt8AfterOneProbe) {
  const onnx::ModelProto model = TwoDense(0.0f);
  passes::QuantizeOptions options;
  auto report = ort::CalibrateInt8(model, options, Small(0.99));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->candidates, 2);
  ASSERT_EQ(report->probes.size(), 1u);
  EXPECT_GE(report->min_cosine, 0.99);
  EXPECT_TRUE(report->ranking.empty()) << "ranked only when the all-int8 model misses";
  EXPECT_TRUE(report->kept_float.empty());
  EXPECT_TRUE(options.keep_float.empty());
}

TEST(Int8CalibrationTest, ExcludedCandidatesAreNotCalibrated) {
  const onnx::ModelProto model = TwoDense(100.0f);
  passes::QuantizeOptions options;
  options.exclude = {"w1"};
  auto report = ort::CalibrateInt8(model, options, Small(0.999));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->candidates, 1) << "w1 is the user's to keep";
  EXPECT_TRUE(report->kept_float.empty());
}

TEST(Int8CalibrationTest, StaticInputDimsDecideTheShape) {
  onnx::ModelProto model = TwoDense(0.0f);
  auto* dims = model.mutable_graph()
                   ->mutable_input(0)
                   ->mutable_type()
                   ->mutable_tensor_type()
                   ->mutable_shape();
  dims->mutable_dim(0)->set_dim_value(2);
  dims->mutable_dim(1)->set_dim_value(7);
  passes::QuantizeOptions options;
  auto report = ort::CalibrateInt8(model, options, Small(0.99));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_EQ(report->options.batch_size, 2);
  EXPECT_EQ(report->options.sequence_length, 7);
}

TEST(Int8CalibrationTest, ModelWithoutBertInputsIsAnError) {
  onnx::ModelProto model = ParseModel(kNoBertInputs);
  ;
  passes::QuantizeOptions options;
  auto report = ort::CalibrateInt8(model, options, Small(0.99));
  EXPECT_FALSE(report.ok());
}

// Through the command: when calibration cannot run (no BERT inputs to generate), quantize fails
// naming it and the flag that skips it, writes nothing, and with that flag quantizes.
TEST(Int8CalibrationTest, QuantizeCommandNamesCalibrationWhenItCannotRun) {
  testutil::TempDir dir;
  ASSERT_TRUE(io::SaveModel(ParseModel(kNoBertInputs), dir / "in.onnx").ok());
  auto quantize = [&](std::vector<std::string> extra) {
    std::vector<std::string> args = {"quantize", "--input", (dir / "in.onnx").string(), "--output",
                                     (dir / "out.onnx").string()};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    ::testing::internal::CaptureStdout();
    ::testing::internal::CaptureStderr();
    const int rc = cli::QuantizeMain(static_cast<int>(argv.size()), argv.data());
    ::testing::internal::GetCapturedStdout();
    return std::make_pair(rc, ::testing::internal::GetCapturedStderr());
  };
  auto [rc, err] = quantize({});
  EXPECT_EQ(rc, kExitBadInput) << err;
  EXPECT_THAT(err, HasSubstr("int8 calibration (--int8_min_cosine 0 skips it)"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out.onnx"));
  auto [rc0, err0] = quantize({"--int8_min_cosine", "0"});
  EXPECT_EQ(rc0, kExitOk) << err0;
  EXPECT_TRUE(std::filesystem::exists(dir / "out.onnx"));
}

}  // namespace
}  // namespace bertopt::testing
