// bertopt perf end to end through RunPerfCommand: argument errors (exit code 2 and a one-line
// message naming the flag or file), and real runs on tiny BERT-like models built in code. Nothing
// here compares times: only that rows exist, values are positive and files have the right form.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "ort/session.h"
#include "perf/command.h"
#include "unit/testdata_util.h"
#include "unit/tiny_models.h"

namespace bertopt::perf {

using ort::OptLevel;
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(std::FILE* file) {
  std::rewind(file);
  std::string text;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) text.append(buffer, n);
  return text;
}

// Runs the command with argv[0] = "bert_perf_test"; tmpfile() streams are not terminals, so no
// progress line is expected on err.
CommandResult RunPerf(const std::vector<std::string>& args) {
  std::vector<const char*> argv = {"bert_perf_test"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  CommandResult result;
  result.exit_code = RunPerfCommand(static_cast<int>(argv.size()), argv.data(), out, err);
  result.out = ReadAll(out);
  result.err = ReadAll(err);
  std::fclose(out);
  std::fclose(err);
  return result;
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// TSV rows as maps from column name to field.
std::vector<std::map<std::string, std::string>> ParseTsv(const std::string& text) {
  auto split = [](const std::string& line) {
    std::vector<std::string> fields;
    std::string field;
    std::istringstream in(line);
    while (std::getline(in, field, '\t')) fields.push_back(field);
    if (!line.empty() && line.back() == '\t') fields.push_back("");
    return fields;
  };
  const std::vector<std::string> lines = SplitLines(text);
  std::vector<std::map<std::string, std::string>> rows;
  if (lines.empty()) return rows;
  const std::vector<std::string> header = split(lines[0]);
  for (size_t i = 1; i < lines.size(); ++i) {
    const std::vector<std::string> fields = split(lines[i]);
    EXPECT_EQ(fields.size(), header.size()) << lines[i];
    std::map<std::string, std::string> row;
    for (size_t c = 0; c < header.size() && c < fields.size(); ++c) row[header[c]] = fields[c];
    rows.push_back(row);
  }
  return rows;
}

class PerfCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = testing::SaveModel(testing::TinyBertModel(), dir_ / "tiny.onnx").string();
  }

  // Small and fast: the point is that the pipeline runs, not what it measures.
  std::vector<std::string> Quick(std::vector<std::string> args) const {
    for (const char* a :
         {"--samples", "3", "--test_times", "6", "--warmup", "1", "--intra_op_num_threads", "1"}) {
      args.emplace_back(a);
    }
    return args;
  }

  void ExpectBadInput(const std::vector<std::string>& args, const std::string& message) {
    SCOPED_TRACE(::testing::PrintToString(args));
    const CommandResult r = RunPerf(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, AllOf(StartsWith("bert_perf_test: "), HasSubstr(message)));
    EXPECT_EQ(SplitLines(r.err).size(), 1u) << r.err;  // one line, no usage dump
    EXPECT_EQ(r.out, "");
  }

  testutil::TempDir temp_;
  const std::filesystem::path& dir_ = temp_.path();
  std::string model_;
};

TEST_F(PerfCommandTest, ArgumentErrorsExitWithTwoAndNameTheFlagOrFile) {
  const std::string missing = (dir_ / "missing.onnx").string();
  ExpectBadInput({"--model", missing}, "--model: no such file: " + missing);
  ExpectBadInput({"--model", dir_.string()}, "--model: not a file: " + dir_.string());
  ExpectBadInput({"--model", model_, "--opt_level", "fastest"},
                 "--opt_level: unknown optimization level 'fastest'");
  ExpectBadInput({"--model", model_, "--batch_size", "0"}, "--batch_size: must be positive, got 0");
  ExpectBadInput({"--model", model_, "--batch_size", "1", "-2"},
                 "--batch_size: must be positive, got -2");
  ExpectBadInput({"--model", model_, "--sequence_length", "0"},
                 "--sequence_length: must be positive, got 0");
  ExpectBadInput({"--model", model_, "--test_times", "0"}, "--test_times: must be positive, got 0");
  ExpectBadInput({"--model", model_, "--test_times", "-5"},
                 "--test_times: must be positive, got -5");
  ExpectBadInput({"--model", model_, "--samples", "0"}, "--samples: must be positive");
  ExpectBadInput({"--model", model_, "--warmup", "-1"}, "--warmup: must be 0 or more");
  ExpectBadInput({"--model", model_, "--intra_op_num_threads", "0"},
                 "--intra_op_num_threads: must be positive");
  ExpectBadInput({"--model", model_, "--batch_size", "two"}, "--batch_size");
  ExpectBadInput({"--model", model_, "--output", (dir_ / "no_dir" / "r.tsv").string()},
                 "--output: folder " + (dir_ / "no_dir").string() + " does not exist");
  ExpectBadInput({"--model", model_, "--plot", (dir_ / "no_dir" / "p.svg").string()},
                 "--plot: folder");
  ExpectBadInput({"--model", model_, "--input_ids_name", "ids"}, "--input_ids_name 'ids'");
  ExpectBadInput({"--model", model_, "--no_such_flag"}, "--no_such_flag");
  ExpectBadInput({}, "--model is required");
}

TEST_F(PerfCommandTest, AFileThatIsNotOnnxIsBadInput) {
  const std::filesystem::path junk = dir_ / "junk.onnx";
  testutil::WriteFile(junk, "this is not a protobuf");
  ExpectBadInput({"--model", junk.string()}, junk.string());
}

TEST_F(PerfCommandTest, StaticShapeModelAskedForAnotherShapeIsBadInput) {
  testing::TinyBertOptions options;
  options.static_batch = 1;
  options.static_sequence = 16;
  const std::string fixed =
      testing::SaveModel(testing::TinyBertModel(options), dir_ / "fixed.onnx").string();
  // The first shape fits; the second does not. Nothing may be measured or written.
  ExpectBadInput(Quick({"--model", fixed, "--batch_size", "1", "4", "--sequence_length", "16",
                        "--output", (dir_ / "r.tsv").string()}),
                 "--batch_size/--sequence_length: " + fixed);
  ExpectBadInput(Quick({"--model", fixed, "--sequence_length", "32"}), "sequence_length 32");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "r.tsv"));
  // The shape it was exported with works.
  EXPECT_EQ(RunPerf(Quick({"--model", fixed, "--sequence_length", "16", "--output",
                           (dir_ / "ok.tsv").string()}))
                .exit_code,
            0);
}

TEST_F(PerfCommandTest, UseGpuWithoutCudaProviderIsBadInput) {
  const std::vector<std::string> providers = ort::AvailableProviders();
  if (std::find(providers.begin(), providers.end(), "CUDAExecutionProvider") != providers.end()) {
    GTEST_SKIP() << "this ONNX Runtime build has CUDA; the message is for builds without it";
  }
  ExpectBadInput({"--model", model_, "--use_gpu"},
                 "--use_gpu: this ONNX Runtime build has no CUDA execution provider");
}

TEST_F(PerfCommandTest, HelpListsTheFlagsAndExitsZero) {
  const CommandResult r = RunPerf({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* flag :
       {"--model", "--batch_size", "--sequence_length", "--samples", "--test_times", "--warmup",
        "--intra_op_num_threads", "--opt_level", "--inclusive", "--use_gpu", "--use_io_binding",
        "--seed", "--input_ids_name", "--segment_ids_name", "--input_mask_name", "--output",
        "--json", "--plot"}) {
    EXPECT_THAT(r.out, HasSubstr(flag));
  }
}

TEST_F(PerfCommandTest, ParsesListsAndDefaults) {
  auto parse = [](const std::vector<std::string>& args) {
    std::vector<const char*> argv;
    argv.reserve(args.size());
    for (const auto& a : args) argv.push_back(a.c_str());
    return ParsePerfArgs(static_cast<int>(argv.size()), argv.data());
  };
  auto o = parse({"bert_perf_test", "--model", model_, model_});
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->models.size(), 2u);  // the same file twice is an A/A comparison, kept
  EXPECT_THAT(o->batch_sizes, ElementsAre(1));
  EXPECT_THAT(o->sequence_lengths, ElementsAre(128));
  EXPECT_EQ(o->samples, 10);
  EXPECT_EQ(o->test_times, 100);
  EXPECT_EQ(o->warmup, 5);
  EXPECT_EQ(o->intra_op_threads, DefaultThreadCounts());
  EXPECT_EQ(o->intra_op_threads.front(), 1);
  EXPECT_EQ(o->opt_level, OptLevel::kAll);
  EXPECT_FALSE(o->inclusive || o->use_gpu || o->use_io_binding || o->json);

  // clang-format off
  o = parse({"bert_perf_test", "--model", model_, "--batch_size", "8", "1", "8",
             "--sequence_length", "64", "--sequence_length", "32", "--opt_level", "basic",
             "--intra_op_num_threads", "2", "1", "2"});
  // clang-format on
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_THAT(o->batch_sizes, ElementsAre(8, 1));  // order kept, duplicates dropped
  EXPECT_THAT(o->sequence_lengths, ElementsAre(64, 32));
  EXPECT_THAT(o->intra_op_threads, ElementsAre(2, 1));
  EXPECT_EQ(o->opt_level, OptLevel::kBasic);
}

TEST_F(PerfCommandTest, RealRunWritesOneTsvRowPerSettingWithPositiveLatencies) {
  const std::string tsv = (dir_ / "results.tsv").string();
  const std::string svg = (dir_ / "plot.svg").string();
  const CommandResult r =
      RunPerf(Quick({"--model", model_, "--batch_size", "1", "2", "--sequence_length", "8", "16",
                     "--output", tsv, "--plot", svg}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // not a terminal: no progress line
  EXPECT_THAT(r.out, HasSubstr("best"));
  EXPECT_THAT(r.out, HasSubstr("results: " + tsv));

  const auto rows = ParseTsv(testutil::ReadFile(tsv));
  ASSERT_EQ(rows.size(), 4u);
  std::set<std::pair<std::string, std::string>> shapes;
  double previous_average = 0;
  for (const auto& row : rows) {
    shapes.insert({row.at("batch_size"), row.at("sequence_length")});
    EXPECT_EQ(row.at("model"), model_);
    EXPECT_EQ(row.at("provider"), "CPU");
    EXPECT_EQ(row.at("intra_op_threads"), "1");
    EXPECT_EQ(row.at("test_times"), "6");
    for (const char* column :
         {"average_ms", "p50_ms", "p75_ms", "p90_ms", "p95_ms", "p99_ms", "qps"}) {
      EXPECT_GT(std::stod(row.at(column)), 0) << column;
    }
    EXPECT_LE(std::stod(row.at("p50_ms")), std::stod(row.at("p99_ms")));
    EXPECT_GE(std::stod(row.at("average_ms")), previous_average);  // sorted by average
    previous_average = std::stod(row.at("average_ms"));
    EXPECT_EQ(row.at("p50_ratio_to_first"), "");
  }
  EXPECT_EQ(shapes.size(), 4u);
  const std::string plot = testutil::ReadFile(svg);
  EXPECT_THAT(plot, StartsWith("<svg"));
  EXPECT_THAT(plot, HasSubstr("B2 S16 T1"));
  // Nothing but the model and the two outputs: the temporary files were renamed, not left behind.
  EXPECT_THAT(temp_.List(), ElementsAre("plot.svg", "results.tsv", "tiny.onnx"));
}

TEST_F(PerfCommandTest, TwoModelsRunInterleavedAndReportRatiosAsJson) {
  testing::TinyBertOptions int32_ids;
  int32_ids.id_type = onnx::TensorProto::INT32;  // same inputs, converted per model dtype
  const std::string second =
      testing::SaveModel(testing::TinyBertModel(int32_ids), dir_ / "tiny_int32.onnx").string();
  const CommandResult r = RunPerf(Quick({"--model", model_, second, "--sequence_length", "8",
                                         "--json", "--output", (dir_ / "r.tsv").string()}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);  // stdout holds only the JSON object
  EXPECT_EQ(j.at("interleaved"), true);
  EXPECT_EQ(j.at("output"), (dir_ / "r.tsv").string());
  ASSERT_EQ(j.at("results").size(), 2u);
  std::map<std::string, double> ratio;
  for (const auto& row : j.at("results")) {
    EXPECT_GT(row.at("p50_ms").get<double>(), 0);
    EXPECT_EQ(row.at("runs"), 6);
    ASSERT_FALSE(row.at("p50_ratio_to_first").is_null());
    ratio[row.at("model").get<std::string>()] = row.at("p50_ratio_to_first").get<double>();
  }
  EXPECT_DOUBLE_EQ(ratio.at(model_), 1.0);
  EXPECT_GT(ratio.at(second), 0);
  EXPECT_FALSE(j.at("best_latency").is_null());
  // One setting: each model's median and ratio also stand at the top of its "models" entry.
  ASSERT_EQ(j.at("models").size(), 2u);
  EXPECT_GT(j.at("models")[1].at("median_ms").get<double>(), 0);
  EXPECT_DOUBLE_EQ(j.at("models")[0].at("ratio_to_first").get<double>(), 1.0);
}

TEST_F(PerfCommandTest, DefaultOutputGoesBesideTheModel) {
  const CommandResult r =
      RunPerf(Quick({"--model", model_, "--batch_size", "1", "2", "--sequence_length", "8"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> written;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    if (e.path().extension() == ".tsv") written.push_back(e.path().filename().string());
  }
  ASSERT_EQ(written.size(), 1u);
  EXPECT_THAT(written[0], StartsWith("perf_results_CPU_B1-2_S8_"));
  EXPECT_EQ(written[0].size(), std::string("perf_results_CPU_B1-2_S8_20250102-030405.tsv").size());
  EXPECT_EQ(ParseTsv(testutil::ReadFile(dir_ / written[0])).size(), 2u);
}

TEST_F(PerfCommandTest, InclusiveAndIoBindingModesRun) {
  for (const std::vector<std::string>& mode : {std::vector<std::string>{"--inclusive"},
                                               {"--use_io_binding"},
                                               {"--inclusive", "--use_io_binding"}}) {
    SCOPED_TRACE(::testing::PrintToString(mode));
    std::vector<std::string> args = {"--model", model_,     "--sequence_length",
                                     "8",       "--output", (dir_ / "r.tsv").string()};
    args.insert(args.end(), mode.begin(), mode.end());
    const CommandResult r = RunPerf(Quick(args));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const auto rows = ParseTsv(testutil::ReadFile(dir_ / "r.tsv"));
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_GT(std::stod(rows[0].at("average_ms")), 0);
    const bool inclusive = mode.front() == "--inclusive";
    const bool binding = mode.back() == "--use_io_binding";
    EXPECT_EQ(rows[0].at("inclusive"), inclusive ? "true" : "false");
    EXPECT_EQ(rows[0].at("io_binding"), binding ? "true" : "false");
  }
}

}  // namespace
}  // namespace bertopt::perf
