// The compare command in-process (unit_tests links the CLI library): real flag parsing and exit
// codes without spawning a process.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "commands.h"
#include "unit/tiny_models.h"

namespace bertopt::cli {
namespace {

using ::testing::HasSubstr;
using testing::MakeTempDir;
using testing::PerturbWeight;
using testing::SaveModel;
using testing::TinyBertModel;

int RunCompare(std::vector<std::string> args) {
  args.insert(args.begin(), "compare_bert_results");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  return CompareMain(static_cast<int>(argv.size()), argv.data());
}

class CompareCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("compare_cli_test");
    baseline_ = SaveModel(TinyBertModel(), dir_ / "baseline.onnx").string();
    copy_ = SaveModel(TinyBertModel(), dir_ / "copy.onnx").string();
    bad_ = SaveModel(PerturbWeight(TinyBertModel(), "dense_weight", 1, 0.2F), dir_ / "bad.onnx")
               .string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::vector<std::string> Flags(const std::string& optimized) {
    return {"--baseline_model",  baseline_,
            "--optimized_model", optimized,
            "--samples",         "3",
            "--sequence_length", "8",
            "--output_dir",      (dir_ / "out").string()};
  }

  std::filesystem::path dir_;
  std::string baseline_, copy_, bad_;
};

TEST_F(CompareCliTest, ExitZeroWhenAllPassOneWhenNot) {
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(RunCompare(Flags(copy_)), kExitOk);
  EXPECT_THAT(::testing::internal::GetCapturedStdout(),
              HasSubstr("3 of 3 samples passed (rtol=0.001, atol=0.0001)"));
  ::testing::internal::CaptureStdout();
  EXPECT_EQ(RunCompare(Flags(bad_)), kExitFailed);
  ::testing::internal::GetCapturedStdout();
  EXPECT_TRUE(
      std::filesystem::exists(dir_ / "out" / "batch_1_seq_8" / "test_data_set_0" / "output_0.pb"));
}

TEST_F(CompareCliTest, BadInputIsExitTwoWithAOneLineErrorNamingIt) {
  struct Case {
    std::vector<std::string> args;
    std::string mentions;
  };
  std::vector<std::string> bad_number = Flags(copy_);
  bad_number.insert(bad_number.end(), {"--batch_size", "two"});
  std::vector<std::string> zero_samples = Flags(copy_);
  zero_samples.insert(zero_samples.end(), {"--samples", "0"});
  std::vector<std::string> unknown = Flags(copy_);
  unknown.push_back("--no_such_flag");
  std::vector<std::string> wrong_override = Flags(copy_);
  wrong_override.insert(wrong_override.end(), {"--input_ids_name", "ids"});
  const std::vector<Case> cases = {
      {bad_number, "--batch_size"},
      {zero_samples, "--samples"},
      {unknown, "--no_such_flag"},
      {{"--baseline_model", baseline_}, "--optimized_model"},
      {Flags((dir_ / "absent.onnx").string()), "absent.onnx"},
      {wrong_override, "--input_ids_name 'ids'"},
  };
  for (const Case& c : cases) {
    ::testing::internal::CaptureStderr();
    ::testing::internal::CaptureStdout();
    EXPECT_EQ(RunCompare(c.args), kExitBadInput) << c.mentions;
    ::testing::internal::GetCapturedStdout();
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_THAT(err, HasSubstr(c.mentions));
    EXPECT_THAT(err, ::testing::StartsWith("compare_bert_results: "));
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  }
}

}  // namespace
}  // namespace bertopt::cli
