// End to end for --float16, --input_int32 and --gpu_only on every model of the test matrix: what
// the "done when" asks, checked through ORT on CPU against the float32 original.
#include <gtest/gtest.h>

#include <algorithm>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "bertopt/io/model_io.h"
#include "bertopt/optimize.h"
#include "e2e_util.h"
#include "ort/compare.h"
#include "ort/session.h"

namespace bertopt::e2e {
namespace {

namespace fs = std::filesystem;
using onnx::TensorProto;

// Compares at the given tolerance (10 samples, padded masks) and prints the max differences.
void ExpectParity(const fs::path& baseline, const fs::path& converted, double rtol, double atol,
                  const std::string& label) {
  ort::CompareOptions c;
  c.baseline_model = baseline;
  c.optimized_model = converted;
  c.batch_size = 2;  // the static exports are fixed at (2, 16)
  c.sequence_length = 16;
  c.samples = 10;
  c.rtol = rtol;
  c.atol = atol;
  c.write_test_data = false;
  std::ostringstream log;
  auto report = ort::CompareModels(c, log);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->AllPassed()) << log.str();
  for (const auto& o : report->outputs) {
    std::cout << "  " << label << " '" << o.name << "': max abs diff " << o.max_abs_diff
              << ", max rel diff " << o.max_rel_diff << "\n";
  }
}

struct Result {
  onnx::ModelProto model;
  OptimizeReport report;
  fs::path path;
};

Result OptimizeTo(const fs::path& input, const OptimizeOptions& options, const fs::path& out) {
  Result r;
  auto model = io::LoadModel(input);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return r;
  auto report = Optimize(*model, options);
  EXPECT_TRUE(report.ok()) << report.status().ToString();
  if (!report.ok()) return r;
  EXPECT_TRUE(report->verdict.fully_optimized);
  EXPECT_TRUE(io::SaveModel(*model, out).ok());
  r.model = std::move(model).value();
  r.report = std::move(report).value();
  r.path = out;
  return r;
}

int32_t ElemType(const onnx::ValueInfoProto& vi) { return vi.type().tensor_type().elem_type(); }

// No Cast reads the output of another Cast.
void ExpectNoCastPairs(const onnx::ModelProto& m) {
  std::map<std::string, const onnx::NodeProto*> producer;
  for (const auto& n : m.graph().node()) {
    for (const auto& o : n.output()) producer[o] = &n;
  }
  for (const auto& n : m.graph().node()) {
    if (n.op_type() != "Cast") continue;
    auto it = producer.find(n.input(0));
    EXPECT_FALSE(it != producer.end() && it->second->op_type() == "Cast")
        << n.name() << " reads Cast " << it->second->name();
  }
}

// A float16 export (gen_bert.py --half): its own outputs are float16, and even plain fusion
// changes them at float16 precision (see optimize_bert_test.cc).
bool IsHalfExport(const GeneratedModel& m) { return m.args.find("--half") != std::string::npos; }

class Float16 : public ::testing::TestWithParam<GeneratedModel> {};

TEST_P(Float16, StoresHalfWeightsRunsInOrtAndMatchesTheOriginal) {
  const GeneratedModel& m = GetParam();
  const fs::path dir = TempDir(m.Label() + "_fp16");
  OptimizeOptions options;
  options.float16 = true;
  const Result r = OptimizeTo(m.Path(), options, dir / "fp16.onnx");
  ASSERT_TRUE(r.report.float16.has_value());

  for (const auto& init : r.model.graph().initializer()) {
    EXPECT_NE(init.data_type(), TensorProto::FLOAT) << init.name() << " is still float32";
  }
  const double ratio =
      static_cast<double>(fs::file_size(r.path)) / static_cast<double>(fs::file_size(m.Path()));
  std::cout << "  " << m.Label() << ": " << fs::file_size(m.Path()) << " -> "
            << fs::file_size(r.path) << " bytes (" << ratio << ")\n";
  if (!IsHalfExport(m)) {  // a float16 export is half already
    EXPECT_LT(ratio, 0.55);
    EXPECT_GT(ratio, 0.40);
  }
  auto original = io::LoadModel(m.Path());
  ASSERT_TRUE(original.ok());
  ASSERT_EQ(r.model.graph().output_size(), original->graph().output_size());
  for (int i = 0; i < r.model.graph().output_size(); ++i) {  // float32 unless float16 already
    EXPECT_EQ(ElemType(r.model.graph().output(i)), ElemType(original->graph().output(i)));
  }
  // Without --gpu_only, ops that ORT's CPU provider has no float16 kernel for compute in float32
  // on float16 weights; LayerNorms and data movement compute in float16.
  if (!IsHalfExport(m)) EXPECT_GT(r.report.float16->cpu_float32_nodes, 0);
  ExpectNoCastPairs(r.model);
  for (auto level : {ort::OptLevel::kDisabled, ort::OptLevel::kAll}) {
    auto session = ort::Session::Create(r.path, {.level = level, .intra_op_threads = 1});
    EXPECT_TRUE(session.ok()) << ort::OptLevelName(level) << ": " << session.status().ToString();
  }
  ExpectParity(m.Path(), r.path, 1e-2, 1e-2, "float16");

  options.float16_options.keep_io_types = false;
  const Result h = OptimizeTo(m.Path(), options, dir / "fp16_io.onnx");
  for (const auto& out : h.model.graph().output()) {
    EXPECT_EQ(ElemType(out), TensorProto::FLOAT16) << out.name();
  }
  ExpectNoCastPairs(h.model);
  ExpectParity(m.Path(), h.path, 1e-2, 1e-2, "float16 io");
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Matrix, Float16, ::testing::ValuesIn(MatrixModels()),
                         [](const auto& info) { return info.param.Label(); });

class InputInt32 : public ::testing::TestWithParam<GeneratedModel> {};

TEST_P(InputInt32, InputsAreInt32ReadWithoutCastsAndOutputsAreUnchanged) {
  const GeneratedModel& m = GetParam();
  const fs::path dir = TempDir(m.Label() + "_int32");
  OptimizeOptions options;
  options.input_int32 = true;
  const Result r = OptimizeTo(m.Path(), options, dir / "int32.onnx");
  ASSERT_FALSE(r.model.graph().input().empty());
  for (const auto& in : r.model.graph().input()) {
    EXPECT_EQ(ElemType(in), TensorProto::INT32) << in.name();
    for (const auto& node : r.model.graph().node()) {
      for (const auto& name : node.input()) {
        EXPECT_FALSE(name == in.name() && node.op_type() == "Cast")
            << node.name() << " casts input " << in.name();
      }
    }
  }
  if (IsHalfExport(m)) {
    ExpectParity(m.Path(), r.path, 1e-2, 1e-2, "int32");
  } else {
    ExpectParity(m.Path(), r.path, 1e-3, 1e-4, "int32");
  }

  // All three options together: ORT loads it and it matches at float16 tolerance.
  options.float16 = true;
  options.gpu_only = true;
  const Result all = OptimizeTo(m.Path(), options, dir / "int32_fp16.onnx");
  EXPECT_EQ(all.report.float16->cpu_float32_nodes, 0);  // --gpu_only: all in float16
  ExpectNoCastPairs(all.model);
  EXPECT_EQ(all.report.fused_ops.count("BiasGelu"), 0u);
  EXPECT_EQ(all.report.fused_ops.at("FastGelu"), 2);
  for (auto level : {ort::OptLevel::kDisabled, ort::OptLevel::kAll}) {
    auto session = ort::Session::Create(all.path, {.level = level, .intra_op_threads = 1});
    EXPECT_TRUE(session.ok()) << ort::OptLevelName(level) << ": " << session.status().ToString();
  }
  ExpectParity(m.Path(), all.path, 1e-2, 1e-2, "int32+float16+gpu_only");
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Matrix, InputInt32, ::testing::ValuesIn(MatrixModels()),
                         [](const auto& info) { return info.param.Label(); });

// The command line: the report, and one-line errors naming the flag for misuse.
TEST(ConvertCli, ReportsFloat16AndInt32AndRejectsMisusedFlags) {
  const fs::path model = GenerateModel("--kind bert_seq --opset 11");
  const fs::path dir = TempDir("convert_cli");
  const std::string io =
      " --input '" + model.string() + "' --output '" + (dir / "o.onnx").string() + "'";

  CommandResult text =
      RunBertopt("optimize" + io + " --float16 --input_int32 --op_block_list Softmax");
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("float16: "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("input_int32: input_ids, attention_mask, token_type_ids now int32"),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("size 0."), std::string::npos) << text.out;

  CommandResult verified = RunBertopt(
      "optimize" + io + " --overwrite --float16 --gpu_only --verify --sequence_length 16");
  EXPECT_EQ(verified.exit_code, 0) << verified.err;
  EXPECT_NE(verified.out.find("gpu_only: 2 BiasGelu/Gelu emitted as FastGelu"), std::string::npos)
      << verified.out;

  CommandResult json = RunBertopt("optimize" + io + " --float16 --no_keep_io_types --json");
  ASSERT_EQ(json.exit_code, 0) << json.err;
  const auto j = nlohmann::json::parse(json.out);
  EXPECT_EQ(j["float16"]["keep_io_types"], false);
  EXPECT_GT(j["float16"]["tensors_converted"].get<int>(), 0);
  EXPECT_LT(j["bytes_after"].get<double>(), 0.55 * j["bytes_before"].get<double>());

  for (const auto& [flags, mention] : std::vector<std::pair<std::string, std::string>>{
           {" --op_block_list Range", "--op_block_list: only applies with --float16"},
           {" --no_keep_io_types", "--no_keep_io_types: only applies with --float16"},
           {" --float16 --node_block_list nope", "--node_block_list: no node named 'nope'"},
           {" --float16 --op_block_list Range,", "--op_block_list: empty name"}}) {
    CommandResult bad = RunBertopt("optimize" + io + " --overwrite" + flags);
    EXPECT_EQ(bad.exit_code, 2) << flags << ": " << bad.err;
    EXPECT_NE(bad.err.find(mention), std::string::npos) << bad.err;
    EXPECT_EQ(std::count(bad.err.begin(), bad.err.end(), '\n'), 1) << "one line: " << bad.err;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bertopt::e2e
