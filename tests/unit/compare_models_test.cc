#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "ort/bert_inputs.h"
#include "ort/compare.h"
#include "ort/session.h"
#include "unit/tiny_models.h"

namespace bertopt::ort {
namespace {

using ::testing::HasSubstr;
using testing::MakeTempDir;
using testing::PerturbWeight;
using testing::SaveModel;
using testing::TinyBertModel;
using testing::TinyBertOptions;

constexpr int32_t kInt32 = onnx::TensorProto::INT32;

onnx::TensorProto ReadTensorFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  onnx::TensorProto proto;
  EXPECT_TRUE(in && proto.ParseFromIstream(&in)) << path;
  return proto;
}

class CompareModelsTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("compare_models_test"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path Save(const onnx::ModelProto& model, const std::string& file) {
    return SaveModel(model, dir_ / file);
  }

  CompareOptions Options(const std::filesystem::path& baseline,
                         const std::filesystem::path& optimized) {
    CompareOptions o;
    o.baseline_model = baseline;
    o.optimized_model = optimized;
    o.batch_size = 2;
    o.sequence_length = 16;
    o.samples = 10;
    o.output_dir = dir_ / "out";
    return o;
  }

  StatusOr<CompareReport> Compare(const CompareOptions& o) {
    log_.str("");
    return CompareModels(o, log_);
  }

  std::filesystem::path dir_;
  std::ostringstream log_;
};

TEST_F(CompareModelsTest, IdenticalModelsPass) {
  TinyBertOptions two;
  two.two_outputs = true;
  const auto baseline = Save(TinyBertModel(two), "baseline.onnx");
  const auto copy = Save(TinyBertModel(two), "copy.onnx");
  auto report = Compare(Options(baseline, copy));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->AllPassed());
  EXPECT_EQ(report->samples, 10);
  EXPECT_EQ(report->passed, 10);
  ASSERT_EQ(report->outputs.size(), 2u);
  EXPECT_EQ(report->outputs[0].name, "last_hidden_state");
  EXPECT_EQ(report->outputs[1].name, "summed");
  EXPECT_EQ(report->outputs[0].max_abs_diff, 0.0);
  EXPECT_THAT(log_.str(), HasSubstr("output 'last_hidden_state': max abs diff 0, max rel diff 0, "
                                    "0 samples failed\n"));
  EXPECT_THAT(log_.str(), HasSubstr("10 of 10 samples passed (rtol=0.001, atol=0.0001)\n"));
}

TEST_F(CompareModelsTest, OnePerturbedWeightFails) {
  const auto baseline = Save(TinyBertModel(), "baseline.onnx");
  const auto perturbed = Save(PerturbWeight(TinyBertModel(), "dense_weight", 3, 0.05F), "bad.onnx");
  auto report = Compare(Options(baseline, perturbed));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_FALSE(report->AllPassed());
  EXPECT_LT(report->passed, report->samples);
  EXPECT_GT(report->outputs[0].samples_failed, 0);
  EXPECT_GT(report->outputs[0].max_abs_diff, 1e-3);
  EXPECT_THAT(log_.str(), HasSubstr(" of 10 samples passed"));
  EXPECT_THAT(log_.str(), ::testing::Not(HasSubstr("10 of 10 samples passed")));
}

TEST_F(CompareModelsTest, ToleranceDecides) {
  const auto baseline = Save(TinyBertModel(), "baseline.onnx");
  const auto nudged = Save(PerturbWeight(TinyBertModel(), "dense_weight", 3, 1e-6F), "nudged.onnx");
  CompareOptions o = Options(baseline, nudged);
  auto loose = Compare(o);
  ASSERT_TRUE(loose.ok()) << loose.status().ToString();
  EXPECT_TRUE(loose->AllPassed());
  EXPECT_GT(loose->outputs[0].max_abs_diff, 0.0);  // different, but within tolerance
  o.atol = 0;
  o.rtol = 0;
  auto exact = Compare(o);
  ASSERT_TRUE(exact.ok());
  EXPECT_FALSE(exact->AllPassed());
}

TEST_F(CompareModelsTest, Int32InputModelComparesWithInt64Original) {
  TinyBertOptions narrow;
  narrow.id_type = kInt32;
  const auto baseline = Save(TinyBertModel(), "baseline.onnx");
  const auto optimized = Save(TinyBertModel(narrow), "int32.onnx");
  auto report = Compare(Options(baseline, optimized));
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->AllPassed());
  // The test data are for the optimized model, so they are int32.
  EXPECT_EQ(ReadTensorFile(report->test_data_dir / "input_0.pb").data_type(), kInt32);
}

TEST_F(CompareModelsTest, Float16OutputsAreComparedAsFloat) {
  TinyBertOptions half;
  half.float16_output = true;
  half.two_outputs = true;
  TinyBertOptions two;
  two.two_outputs = true;
  const auto baseline = Save(TinyBertModel(two), "baseline.onnx");
  const auto optimized = Save(TinyBertModel(half), "half.onnx");
  CompareOptions o = Options(baseline, optimized);
  o.rtol = 1e-3;  // float16 keeps 11 significant bits: relative error <= 2^-11 ~ 4.9e-4
  o.atol = 1e-4;
  auto report = Compare(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->AllPassed());
  EXPECT_GT(report->outputs[0].max_abs_diff, 0.0);  // rounding happened
  EXPECT_LE(report->outputs[0].max_rel_diff, 4.9e-4);
  EXPECT_EQ(report->outputs[1].max_abs_diff, 0.0);  // "summed" stays float
  o.rtol = 1e-5;
  o.atol = 0;
  auto strict = Compare(o);
  ASSERT_TRUE(strict.ok());
  EXPECT_FALSE(strict->AllPassed());
  EXPECT_EQ(strict->outputs[1].samples_failed, 0);
}

TEST_F(CompareModelsTest, TwoAndOneInputModels) {
  TinyBertOptions two;
  two.with_segment = false;
  TinyBertOptions one = two;
  one.with_mask = false;
  for (const TinyBertOptions& o : {two, one}) {
    const auto baseline = Save(TinyBertModel(o), "baseline.onnx");
    const auto copy = Save(TinyBertModel(o), "copy.onnx");
    auto report = Compare(Options(baseline, copy));
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_TRUE(report->AllPassed());
    auto perturbed = Save(PerturbWeight(TinyBertModel(o), "dense_weight", 0, 0.1F), "bad.onnx");
    auto failing = Compare(Options(baseline, perturbed));
    ASSERT_TRUE(failing.ok());
    EXPECT_FALSE(failing->AllPassed());
  }
}

TEST_F(CompareModelsTest, InputsFoundPerModelByGraphUsage) {
  TinyBertOptions renamed;
  renamed.ids_name = "z";
  renamed.segment_name = "x";
  renamed.mask_name = "y";
  const auto baseline = Save(TinyBertModel(), "baseline.onnx");
  const auto optimized = Save(TinyBertModel(renamed), "renamed.onnx");
  CompareOptions o = Options(baseline, optimized);
  o.verbose = true;
  auto report = Compare(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->AllPassed());
  EXPECT_THAT(log_.str(), HasSubstr("optimized inputs: input_ids: 'z' (graph usage"));
  EXPECT_THAT(log_.str(), HasSubstr("vocabulary size: 50"));
  // A renamed model whose weights differ still fails: the roles, not the names, drive the feeds.
  const auto bad = Save(PerturbWeight(TinyBertModel(renamed), "dense_weight", 5, 0.5F), "b.onnx");
  auto failing = Compare(Options(baseline, bad));
  ASSERT_TRUE(failing.ok()) << failing.status().ToString();
  EXPECT_FALSE(failing->AllPassed());
}

TEST_F(CompareModelsTest, OverridesDecideWhichInputGetsWhichValues) {
  // Names mislead: "mask_b" is the segment input, "type_c" the mask.
  TinyBertOptions misleading;
  misleading.segment_name = "mask_b";
  misleading.mask_name = "type_c";
  const auto model = Save(TinyBertModel(misleading), "model.onnx");
  CompareOptions o = Options(model, model);
  o.samples = 1;  // sample 0 has segment ids all 0 and a mask starting with 1
  auto guessed = Compare(o);
  ASSERT_TRUE(guessed.ok()) << guessed.status().ToString();
  EXPECT_EQ(ReadTensorFile(guessed->test_data_dir / "input_1.pb").name(), "mask_b");
  auto as_mask = Tensor::FromProto(ReadTensorFile(guessed->test_data_dir / "input_1.pb"));
  EXPECT_EQ(as_mask->ToInt64()[0], 1);

  o.segment_ids_name = "mask_b";
  o.input_mask_name = "type_c";
  auto overridden = Compare(o);
  ASSERT_TRUE(overridden.ok()) << overridden.status().ToString();
  auto segment = Tensor::FromProto(ReadTensorFile(overridden->test_data_dir / "input_1.pb"));
  auto mask = Tensor::FromProto(ReadTensorFile(overridden->test_data_dir / "input_2.pb"));
  EXPECT_EQ(segment->ToInt64(), std::vector<int64_t>(32, 0));
  EXPECT_EQ(mask->ToInt64()[0], 1);

  o.input_mask_name = "attention_mask";
  auto bad = Compare(o);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("--input_mask_name 'attention_mask' is not an "
                                                "input of the model (inputs: input_ids, mask_b, "
                                                "type_c)"));
  EXPECT_THAT(bad.status().message(), HasSubstr("model.onnx"));
}

TEST_F(CompareModelsTest, TestDataSetParsesBackToTheFirstSample) {
  TinyBertOptions two;
  two.two_outputs = true;
  const auto baseline = Save(TinyBertModel(two), "baseline.onnx");
  const auto copy = Save(TinyBertModel(two), "copy.onnx");
  CompareOptions o = Options(baseline, copy);
  o.output_dir.clear();  // beside the optimized model
  o.seed = 17;
  auto report = Compare(o);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  const auto data = dir_ / "batch_2_seq_16" / "test_data_set_0";
  EXPECT_EQ(report->test_data_dir, data);
  EXPECT_THAT(log_.str(), HasSubstr("test data: " + data.string()));

  // The same first sample, generated independently, fed to the baseline.
  auto session = Session::Create(baseline);
  ASSERT_TRUE(session.ok());
  BertInputGenerator generator(2, 16, 50, 17);
  auto feeds = MakeBertFeeds(generator.Next(), {"input_ids", "token_type_ids", "attention_mask"},
                             (*session)->inputs());
  ASSERT_TRUE(feeds.ok());
  auto outputs = (*session)->Run(*feeds);
  ASSERT_TRUE(outputs.ok());

  for (size_t k = 0; k < 3; ++k) {
    const auto proto = ReadTensorFile(data / ("input_" + std::to_string(k) + ".pb"));
    EXPECT_EQ(proto.name(), (*feeds)[k].first);
    auto tensor = Tensor::FromProto(proto);
    ASSERT_TRUE(tensor.ok());
    EXPECT_EQ(*tensor, (*feeds)[k].second) << "input " << k;
  }
  const char* output_names[] = {"last_hidden_state", "summed"};
  for (size_t k = 0; k < 2; ++k) {
    const auto proto = ReadTensorFile(data / ("output_" + std::to_string(k) + ".pb"));
    EXPECT_EQ(proto.name(), output_names[k]);
    auto tensor = Tensor::FromProto(proto);
    ASSERT_TRUE(tensor.ok());
    EXPECT_EQ(*tensor, (*outputs)[k]) << "output " << k;
  }
  EXPECT_FALSE(std::filesystem::exists(data / "input_3.pb"));
  EXPECT_FALSE(std::filesystem::exists(data / "output_2.pb"));

  // The mask rows are right-padded prefixes of at least ceil(2 * 16 / 3) = 11 ones.
  const std::vector<int64_t> mask = (*feeds)[2].second.ToInt64();
  for (int row = 0; row < 2; ++row) {
    int length = 0;
    while (length < 16 && mask[row * 16 + length] == 1) ++length;
    EXPECT_GE(length, 11);
    for (int p = length; p < 16; ++p) EXPECT_EQ(mask[row * 16 + p], 0);
  }
}

TEST_F(CompareModelsTest, SameSeedSameTestDataOtherSeedOtherData) {
  const auto baseline = Save(TinyBertModel(), "baseline.onnx");
  auto read_ids = [&](uint64_t seed, const std::string& sub) {
    CompareOptions o = Options(baseline, baseline);
    o.samples = 1;
    o.seed = seed;
    o.output_dir = dir_ / sub;
    EXPECT_TRUE(Compare(o).ok());
    std::ifstream in(dir_ / sub / "batch_2_seq_16" / "test_data_set_0" / "input_0.pb",
                     std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  const std::string a = read_ids(5, "a");
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, read_ids(5, "b"));
  EXPECT_NE(a, read_ids(6, "c"));
}

TEST_F(CompareModelsTest, OutputsMustMatchInCountAndNames) {
  TinyBertOptions two;
  two.two_outputs = true;
  const auto one_output = Save(TinyBertModel(), "one.onnx");
  const auto two_outputs = Save(TinyBertModel(two), "two.onnx");
  auto count = Compare(Options(one_output, two_outputs));
  ASSERT_FALSE(count.ok());
  EXPECT_THAT(count.status().message(),
              HasSubstr("has [last_hidden_state]; " + two_outputs.string() +
                        " has [last_hidden_state, summed]"));

  onnx::ModelProto renamed = TinyBertModel();
  renamed.mutable_graph()->mutable_output(0)->set_name("hidden");
  renamed.mutable_graph()->mutable_node(renamed.graph().node_size() - 1)->set_output(0, "hidden");
  auto names = Compare(Options(one_output, Save(renamed, "renamed.onnx")));
  ASSERT_FALSE(names.ok());
  EXPECT_THAT(names.status().message(), HasSubstr("has [hidden]"));
}

TEST_F(CompareModelsTest, BadRequestsAreErrorsNamingTheProblem) {
  const auto baseline = Save(TinyBertModel(), "baseline.onnx");
  auto missing = Compare(Options(baseline, dir_ / "missing.onnx"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("missing.onnx"));

  CompareOptions zero = Options(baseline, baseline);
  zero.samples = 0;
  auto no_samples = Compare(zero);
  ASSERT_FALSE(no_samples.ok());
  EXPECT_THAT(no_samples.status().message(), HasSubstr("--samples"));

  TinyBertOptions fixed;
  fixed.static_batch = 1;
  fixed.static_sequence = 16;
  const auto static_model = Save(TinyBertModel(fixed), "static.onnx");
  auto wrong_shape = Compare(Options(static_model, static_model));  // batch 2
  ASSERT_FALSE(wrong_shape.ok());
  EXPECT_THAT(wrong_shape.status().message(),
              HasSubstr("input 'input_ids' has dims [1,16], which do not fit the requested "
                        "batch_size 2 and sequence_length 16"));
  CompareOptions fits = Options(static_model, static_model);
  fits.batch_size = 1;
  auto ok = Compare(fits);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_TRUE(ok->AllPassed());
}

TEST_F(CompareModelsTest, ModelsWithDifferentOptionalInputsAreAnError) {
  TinyBertOptions no_segment;
  no_segment.with_segment = false;
  auto report = Compare(
      Options(Save(TinyBertModel(), "full.onnx"), Save(TinyBertModel(no_segment), "partial.onnx")));
  ASSERT_FALSE(report.ok());
  EXPECT_THAT(report.status().message(), HasSubstr("the models take different BERT inputs"));
}

}  // namespace
}  // namespace bertopt::ort

namespace bertopt::ort {
namespace {

// The tolerance mode for quantized models: a small perturbation fails allclose but keeps the
// outputs' direction (cosine) and stays under a loose max_abs_diff; each bar decides alone.
class CompareToleranceModeTest : public CompareModelsTest {};

TEST_F(CompareToleranceModeTest, CosineAndMaxAbsDiffDecideInsteadOfAllclose) {
  const auto baseline = Save(TinyBertModel(), "baseline.onnx");
  const auto perturbed = Save(PerturbWeight(TinyBertModel(), "dense_weight", 3, 0.05F), "bad.onnx");
  CompareOptions o = Options(baseline, perturbed);
  auto allclose = Compare(o);
  ASSERT_TRUE(allclose.ok()) << allclose.status().ToString();
  ASSERT_FALSE(allclose->AllPassed());
  const double diff = allclose->outputs[0].max_abs_diff;
  const double cosine = allclose->outputs[0].min_cosine;
  EXPECT_LT(cosine, 1.0);
  EXPECT_GE(allclose->outputs[0].mean_cosine, cosine);

  o.min_cosine = cosine - 1e-6;
  auto by_cosine = Compare(o);
  ASSERT_TRUE(by_cosine.ok());
  EXPECT_TRUE(by_cosine->AllPassed()) << log_.str();
  EXPECT_EQ(by_cosine->outputs[0].min_cosine, cosine) << "the same samples, the same numbers";
  EXPECT_THAT(log_.str(), HasSubstr("10 of 10 samples passed (min_cosine="));
  EXPECT_THAT(log_.str(), HasSubstr("output 'last_hidden_state': cosine min "));

  o.min_cosine = std::min(1.0, cosine + 1e-6);
  auto too_strict = Compare(o);
  ASSERT_TRUE(too_strict.ok());
  EXPECT_FALSE(too_strict->AllPassed());

  o.min_cosine.reset();
  o.max_abs_diff = diff;
  auto by_diff = Compare(o);
  ASSERT_TRUE(by_diff.ok());
  EXPECT_TRUE(by_diff->AllPassed()) << log_.str();
  EXPECT_THAT(log_.str(), HasSubstr("(min_cosine=-, max_abs_diff="));
  o.max_abs_diff = diff / 2;
  auto too_small = Compare(o);
  ASSERT_TRUE(too_small.ok());
  EXPECT_FALSE(too_small->AllPassed());
}

TEST_F(CompareToleranceModeTest, IdenticalModelsHaveCosineOneAndBadBarsAreErrors) {
  const auto baseline = Save(TinyBertModel(), "baseline.onnx");
  CompareOptions o = Options(baseline, baseline);
  o.min_cosine = 1.0 - 1e-9;  // dot / sqrt(|a|²|b|²) of equal vectors may round below 1
  o.max_abs_diff = 0.0;
  auto same = Compare(o);
  ASSERT_TRUE(same.ok()) << same.status().ToString();
  EXPECT_TRUE(same->AllPassed());
  EXPECT_NEAR(same->outputs[0].min_cosine, 1.0, 1e-12);

  o.min_cosine = 1.5;
  EXPECT_THAT(Compare(o).status().message(), HasSubstr("--min_cosine"));
  o.min_cosine = 0.9;
  o.max_abs_diff = -1;
  EXPECT_THAT(Compare(o).status().message(), HasSubstr("--max_abs_diff"));
}

}  // namespace
}  // namespace bertopt::ort
