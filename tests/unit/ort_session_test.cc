#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>

#include "ort/session.h"
#include "test_models.h"
#include "unit/tiny_models.h"

namespace bertopt::ort {
namespace {

using testing::AddModel;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::MakeTempDir;
using testing::SaveModel;

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = MakeTempDir("ort_session_test"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<Session> Open(const onnx::ModelProto& model, SessionConfig config = {}) {
    const auto path = SaveModel(model, dir_ / "model.onnx");
    auto session = Session::Create(path, config);
    EXPECT_TRUE(session.ok()) << session.status().ToString();
    return session.ok() ? std::move(session).value() : nullptr;
  }

  std::filesystem::path dir_;
};

TEST_F(SessionTest, AddsFloat) {
  auto session = Open(AddModel(onnx::TensorProto::FLOAT));
  ASSERT_NE(session, nullptr);
  auto out = session->Run({{"a", Tensor::FromFloat({1, 3}, {1.5F, 2.0F, -3.0F})},
                           {"b", Tensor::FromFloat({1, 3}, {0.25F, 10.0F, 3.0F})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].type(), onnx::TensorProto::FLOAT);
  EXPECT_THAT((*out)[0].shape(), ElementsAre(1, 3));
  EXPECT_THAT((*out)[0].ToFloat(), ElementsAre(1.75F, 12.0F, 0.0F));
}

TEST_F(SessionTest, AddsFloat16) {
  auto session = Open(AddModel(onnx::TensorProto::FLOAT16));
  ASSERT_NE(session, nullptr);
  // Values exactly representable in float16, so the sum is exact.
  auto out = session->Run({{"a", Tensor::FromFloatAsFloat16({2, 3}, {1, 2, 3, 0.5F, -1, 100})},
                           {"b", Tensor::FromFloatAsFloat16({2, 3}, {1, 1, 1, 0.25F, -2, 28})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].type(), onnx::TensorProto::FLOAT16);
  EXPECT_THAT((*out)[0].shape(), ElementsAre(2, 3));
  EXPECT_THAT((*out)[0].ToFloat(), ElementsAre(2, 3, 4, 0.75F, -3, 128));
}

TEST_F(SessionTest, AddsInt32AndInt64) {
  {
    auto session = Open(AddModel(onnx::TensorProto::INT32));
    ASSERT_NE(session, nullptr);
    auto out = session->Run({{"b", Tensor::FromInt32({1, 3}, {5, -6, 7})},
                             {"a", Tensor::FromInt32({1, 3}, {1, 2, 2147483000})}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ((*out)[0].type(), onnx::TensorProto::INT32);
    EXPECT_THAT((*out)[0].ToInt64(), ElementsAre(6, -4, 2147483007));
  }
  {
    auto session = Open(AddModel(onnx::TensorProto::INT64));
    ASSERT_NE(session, nullptr);
    const int64_t big = int64_t{1} << 40;
    auto out = session->Run({{"a", Tensor::FromInt64({1, 3}, {big, 2, 3})},
                             {"b", Tensor::FromInt64({1, 3}, {1, -2, 30})}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ((*out)[0].type(), onnx::TensorProto::INT64);
    EXPECT_THAT((*out)[0].ToInt64(), ElementsAre(big + 1, 0, 33));
  }
}

TEST_F(SessionTest, ReportsInputAndOutputMetadata) {
  auto session = Open(AddModel(onnx::TensorProto::INT64));
  ASSERT_NE(session, nullptr);
  ASSERT_EQ(session->inputs().size(), 2u);
  const ValueInfo& a = session->inputs()[0];
  EXPECT_EQ(a.name, "a");
  EXPECT_EQ(a.type, onnx::TensorProto::INT64);
  EXPECT_THAT(a.dims, ElementsAre(-1, 3));
  EXPECT_THAT(a.symbolic_dims, ElementsAre("batch", ""));
  ASSERT_EQ(session->outputs().size(), 1u);
  EXPECT_EQ(session->outputs()[0].name, "y");
}

TEST_F(SessionTest, EveryOptimizationLevelCreatesASession) {
  for (OptLevel level :
       {OptLevel::kDisabled, OptLevel::kBasic, OptLevel::kExtended, OptLevel::kAll}) {
    SessionConfig config;
    config.level = level;
    config.intra_op_threads = 1;
    auto session = Open(AddModel(onnx::TensorProto::FLOAT), config);
    ASSERT_NE(session, nullptr) << OptLevelName(level);
    auto out = session->Run(
        {{"a", Tensor::FromFloat({1, 3}, {1, 2, 3})}, {"b", Tensor::FromFloat({1, 3}, {1, 1, 1})}});
    ASSERT_TRUE(out.ok()) << OptLevelName(level) << ": " << out.status().ToString();
    EXPECT_THAT((*out)[0].ToFloat(), ElementsAre(2, 3, 4));
  }
}

TEST_F(SessionTest, SavesOrtOptimizedModelWhenAsked) {
  SessionConfig config;
  config.optimized_model_path = (dir_ / "ort_optimized.onnx").string();
  auto session = Open(AddModel(onnx::TensorProto::FLOAT), config);
  ASSERT_NE(session, nullptr);
  EXPECT_TRUE(std::filesystem::exists(dir_ / "ort_optimized.onnx"));
}

TEST(OptLevelTest, ParsesAndPrintsEveryLevel) {
  for (OptLevel level :
       {OptLevel::kDisabled, OptLevel::kBasic, OptLevel::kExtended, OptLevel::kAll}) {
    auto parsed = ParseOptLevel(OptLevelName(level));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, level);
  }
  EXPECT_STREQ(OptLevelName(OptLevel::kExtended), "extended");
  auto bad = ParseOptLevel("max");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("'max'"));
}

TEST_F(SessionTest, MissingModelFileIsNotFoundNamingIt) {
  auto session = Session::Create(dir_ / "nope.onnx");
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(session.status().message(), HasSubstr("nope.onnx"));
}

TEST_F(SessionTest, GarbageModelFileGivesOrtMessageNamingTheFile) {
  const auto path = dir_ / "garbage.onnx";
  std::ofstream(path) << "this is not a protobuf";
  auto session = Session::Create(path);
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.status().code(), StatusCode::kRuntime);
  EXPECT_THAT(session.status().message(), HasSubstr("garbage.onnx"));
  EXPECT_THAT(session.status().message(), HasSubstr("ONNX Runtime cannot load the model"));
}

TEST_F(SessionTest, UseGpuWithoutCudaProviderIsAClearError) {
  const std::vector<std::string> providers = AvailableProviders();
  if (std::find(providers.begin(), providers.end(), "CUDAExecutionProvider") != providers.end()) {
    GTEST_SKIP() << "this ONNX Runtime build has CUDA";
  }
  const auto path = SaveModel(AddModel(onnx::TensorProto::FLOAT), dir_ / "model.onnx");
  SessionConfig config;
  config.use_gpu = true;
  auto session = Session::Create(path, config);
  ASSERT_FALSE(session.ok());
  EXPECT_EQ(session.status().message(),
            "--use_gpu: this ONNX Runtime build has no CUDA execution provider (available: "
            "CPUExecutionProvider)");
}

TEST_F(SessionTest, RunRejectsWrongNamesTypesAndMissingInputs) {
  auto session = Open(AddModel(onnx::TensorProto::FLOAT));
  ASSERT_NE(session, nullptr);
  const Tensor x = Tensor::FromFloat({1, 3}, {1, 2, 3});
  auto unknown = session->Run({{"a", x}, {"c", x}});
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(),
              HasSubstr("'c' is not an input of the model (inputs: a, b)"));
  auto missing = session->Run({{"a", x}});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("no value given for input 'b'"));
  auto wrong_type = session->Run({{"a", x}, {"b", Tensor::FromInt64({1, 3}, {1, 2, 3})}});
  ASSERT_FALSE(wrong_type.ok());
  EXPECT_THAT(wrong_type.status().message(), HasSubstr("'b' expects float, got int64"));
  auto wrong_shape = session->Run({{"a", x}, {"b", Tensor::FromFloat({3, 1}, {1, 2, 3})}});
  ASSERT_FALSE(wrong_shape.ok());
  EXPECT_EQ(wrong_shape.status().code(), StatusCode::kRuntime);
}

TEST_F(SessionTest, PreparedRunAndIoBindingGiveTheSameOutputs) {
  auto session = Open(AddModel(onnx::TensorProto::FLOAT));
  ASSERT_NE(session, nullptr);
  for (bool io_binding : {false, true}) {
    std::unique_ptr<PreparedRun> run;
    {
      // The inputs go out of scope before Run(): PreparedRun must own copies.
      std::vector<std::pair<std::string, Tensor>> inputs = {
          {"a", Tensor::FromFloat({2, 3}, {1, 2, 3, 4, 5, 6})},
          {"b", Tensor::FromFloat({2, 3}, {10, 20, 30, 40, 50, 60})}};
      auto prepared = session->Prepare(inputs, io_binding);
      ASSERT_TRUE(prepared.ok()) << prepared.status().ToString();
      run = std::move(prepared).value();
    }
    EXPECT_EQ(run->uses_io_binding(), io_binding);
    EXPECT_FALSE(run->Outputs().ok());
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(run->Run().ok());
    auto out = run->Outputs();
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    ASSERT_EQ(out->size(), 1u);
    EXPECT_THAT((*out)[0].shape(), ElementsAre(2, 3));
    EXPECT_THAT((*out)[0].ToFloat(), ElementsAre(11, 22, 33, 44, 55, 66));
  }
}

TEST(TensorTest, ProtoRoundTripKeepsTypeShapeAndValues) {
  const Tensor half = Tensor::FromFloatAsFloat16({2, 2}, {0.5F, -2, 1024, 0.125F});
  const Tensor ids = Tensor::FromInt64({1, 4}, {0, 7, 1LL << 35, -1});
  for (const Tensor& t : {half, ids, Tensor::FromInt32({3}, {1, -2, 3})}) {
    const onnx::TensorProto proto = t.ToProto("x");
    EXPECT_EQ(proto.name(), "x");
    auto back = Tensor::FromProto(proto);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, t);
  }
  EXPECT_THAT(half.ToFloat(), ElementsAre(0.5F, -2, 1024, 0.125F));
}

TEST(TensorTest, ReadsTypedProtoFieldsAndRejectsWrongSizes) {
  onnx::TensorProto proto;
  proto.set_data_type(onnx::TensorProto::FLOAT);
  proto.add_dims(2);
  proto.add_float_data(1.5F);
  proto.add_float_data(-4.0F);
  auto t = Tensor::FromProto(proto);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_THAT(t->ToFloat(), ElementsAre(1.5F, -4.0F));
  proto.add_dims(2);  // now claims 4 values but holds 2
  proto.set_name("w");
  auto bad = Tensor::FromProto(proto);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("tensor 'w'"));
}

TEST(TensorTest, FromValuesConvertsToEachType) {
  const std::vector<double> values = {1, 0, 3};
  for (auto type : {onnx::TensorProto::FLOAT, onnx::TensorProto::FLOAT16, onnx::TensorProto::INT32,
                    onnx::TensorProto::INT64, onnx::TensorProto::BOOL}) {
    auto t = Tensor::FromValues(type, {3}, values);
    ASSERT_TRUE(t.ok()) << DataTypeName(type);
    EXPECT_EQ(t->type(), type);
    EXPECT_EQ(t->bytes().size(), 3 * ElementSize(type));
    const float last = type == onnx::TensorProto::BOOL ? 1.0F : 3.0F;
    EXPECT_THAT(t->ToFloat(), ElementsAre(1, 0, last)) << DataTypeName(type);
  }
  EXPECT_FALSE(Tensor::FromValues(onnx::TensorProto::FLOAT, {2, 2}, values).ok());
}

}  // namespace
}  // namespace bertopt::ort

namespace bertopt::ort {
namespace {

// optimize's last check before writing: ORT must accept the model from memory.
TEST(CheckLoadsTest, AcceptsAValidModelAndNamesWhyAnInvalidOneIsRefused) {
  onnx::ModelProto model = testing::ParseModel(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (float[N, 4] x) => (float[N, 4] y)
{
  y = Relu(x)
}
)");
  EXPECT_TRUE(CheckLoads(model.SerializeAsString()).ok());
  // An op ORT does not know (a typo of a contrib op): refused, with ORT's message.
  model.mutable_graph()->mutable_node(0)->set_op_type("Reluu");
  const Status s = CheckLoads(model.SerializeAsString());
  EXPECT_EQ(s.code(), StatusCode::kRuntime);
  EXPECT_NE(s.message().find("Reluu"), std::string::npos) << s.message();
  EXPECT_FALSE(CheckLoads("not a model").ok());
}

}  // namespace
}  // namespace bertopt::ort
