// --model_type auto: which exporter made a model, read from its producer name, else its layout;
// and the warning when an explicit type contradicts the producer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "bertopt/optimize.h"
#include "fmt/format.h"
#include "test_models.h"

namespace bertopt {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using testing::ParseModel;

// One token input `input` of `type` (int32 or int64), cast to float. `header` is extra model
// metadata such as `producer_name: "tf2onnx"`.
onnx::ModelProto TokenModel(const std::string& header, const std::string& type,
                            const std::string& input = "input_ids") {
  return ParseModel(fmt::format(R"(
<ir_version: 7, opset_import: ["" : 13]{0}>
g ({1}[batch, seq] {2}) => (float[batch, seq] y)
{{
  y = Cast<to = 1>({2})
}}
)",
                                header.empty() ? "" : ", " + header, type, input));
}

TEST(ModelTypeTest, Keras2onnxProducer) {
  const ModelTypeChoice c = DetectModelType(
      TokenModel(R"(producer_name: "keras2onnx", producer_version: "1.6.5")", "int64"));
  EXPECT_EQ(c.model_type, "bert_keras");
  EXPECT_EQ(c.evidence, "producer_name 'keras2onnx'");
}

TEST(ModelTypeTest, Tf2onnxProducer) {
  const ModelTypeChoice c = DetectModelType(TokenModel(R"(producer_name: "tf2onnx")", "int32"));
  EXPECT_EQ(c.model_type, "bert_tf") << "the producer decides before int32 inputs";
  EXPECT_EQ(c.evidence, "producer_name 'tf2onnx'");
}

TEST(ModelTypeTest, PytorchProducer) {
  // int32 input_ids would say keras2onnx; the producer says otherwise.
  const ModelTypeChoice c = DetectModelType(TokenModel(R"(producer_name: "pytorch")", "int32"));
  EXPECT_EQ(c.model_type, "bert");
  EXPECT_EQ(c.evidence, "producer_name 'pytorch'");
}

TEST(ModelTypeTest, NoProducerAndATensorFlowInputName) {
  // The text syntax has no ':' in names: rename after parsing.
  onnx::ModelProto model = TokenModel("", "int64", "input_ids_tensor");
  model.mutable_graph()->mutable_input(0)->set_name("input_ids_tensor:0");
  model.mutable_graph()->mutable_node(0)->set_input(0, "input_ids_tensor:0");
  const ModelTypeChoice c = DetectModelType(model);
  EXPECT_EQ(c.model_type, "bert_tf");
  EXPECT_THAT(c.evidence, HasSubstr("'input_ids_tensor:0'"));
}

TEST(ModelTypeTest, NoProducerAndInt32InputIds) {
  const ModelTypeChoice c = DetectModelType(TokenModel("", "int32"));
  EXPECT_EQ(c.model_type, "bert_keras");
  EXPECT_THAT(c.evidence, HasSubstr("'input_ids' is int32"));
}

TEST(ModelTypeTest, NoProducerAndNothingTensorFlowIsBert) {
  EXPECT_EQ(DetectModelType(TokenModel("", "int64")).model_type, "bert");
  // An int32 input of another name is not keras2onnx's.
  EXPECT_EQ(DetectModelType(TokenModel("", "int32", "tokens")).model_type, "bert");
  // Nor is an unknown producer evidence of anything.
  EXPECT_EQ(DetectModelType(TokenModel(R"(producer_name: "onnx-example")", "int64")).model_type,
            "bert");
}

OptimizeReport OptimizeAs(onnx::ModelProto model, const std::string& model_type) {
  OptimizeOptions options;
  options.pass.model_type = model_type;
  StatusOr<OptimizeReport> report = Optimize(model, options);
  EXPECT_TRUE(report.ok()) << report.status().ToString();
  return report.ok() ? std::move(report).value() : OptimizeReport{};
}

TEST(ModelTypeTest, ExplicitTypeThatContradictsTheProducerWarnsNamingBoth) {
  const OptimizeReport report =
      OptimizeAs(TokenModel(R"(producer_name: "keras2onnx")", "int32"), "bert");
  EXPECT_EQ(report.model_type.model_type, "bert") << "the user's type is the one run";
  ASSERT_EQ(report.warnings.size(), 1u);
  EXPECT_THAT(report.warnings[0], AllOf(HasSubstr("--model_type bert "), HasSubstr("keras2onnx"),
                                        HasSubstr("says bert_keras")));
}

TEST(ModelTypeTest, ExplicitTypeThatAgreesWithTheProducerDoesNotWarn) {
  const OptimizeReport report =
      OptimizeAs(TokenModel(R"(producer_name: "tf2onnx")", "int64"), "bert_tf");
  EXPECT_EQ(report.model_type.model_type, "bert_tf");
  EXPECT_TRUE(report.warnings.empty());
}

// A layout guess is not evidence enough to contradict the user.
TEST(ModelTypeTest, ExplicitTypeThatContradictsOnlyTheLayoutDoesNotWarn) {
  const OptimizeReport report = OptimizeAs(TokenModel("", "int32"), "bert");
  EXPECT_EQ(report.model_type.model_type, "bert");
  EXPECT_TRUE(report.warnings.empty());
}

TEST(ModelTypeTest, AutoReportsTheDetectedTypeAndWhy) {
  OptimizeReport report = OptimizeAs(TokenModel(R"(producer_name: "tf2onnx")", "int64"), "auto");
  EXPECT_EQ(report.model_type.model_type, "bert_tf");
  EXPECT_EQ(report.model_type.evidence, "producer_name 'tf2onnx'");
  EXPECT_TRUE(report.warnings.empty());

  report = OptimizeAs(TokenModel("", "int32"), "auto");
  EXPECT_EQ(report.model_type.model_type, "bert_keras");
  EXPECT_THAT(report.model_type.evidence, HasSubstr("int32"));
}

TEST(ModelTypeTest, AutoIsTheDefault) { EXPECT_EQ(OptimizeOptions{}.pass.model_type, "auto"); }

}  // namespace
}  // namespace bertopt
