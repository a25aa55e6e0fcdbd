// The command line as a user meets it: exit codes, one-line errors naming the file or flag, no
// partial output, the input left untouched, and the seed-named entry points.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "e2e_util.h"
#include "onnx/onnx_pb.h"

namespace bertopt::e2e {
namespace {

namespace fs = std::filesystem;

std::string Q(const fs::path& p) { return "'" + p.string() + "'"; }

void WriteBytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

std::string ReadBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("cli");
    model_ = GenerateModel("--kind bert_seq --opset 11");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs optimize on `input` and expects a bad-input failure that names `mention`, with nothing
  // written at the output.
  void ExpectBadInput(const fs::path& input, const std::string& mention) {
    const fs::path out = dir_ / "out.onnx";
    CommandResult r = RunBertopt("optimize --input " + Q(input) + " --output " + Q(out));
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(mention), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    EXPECT_FALSE(fs::exists(out));
    for (const auto& entry : fs::directory_iterator(dir_)) {
      EXPECT_EQ(entry.path().filename().string().find("out.onnx"), std::string::npos)
          << "left behind: " << entry.path();
    }
  }

  fs::path dir_;
  fs::path model_;
};

TEST_F(CliTest, BadInputFilesGetOneLineErrorsAndExitCode2) {
  ExpectBadInput(dir_ / "missing.onnx", "missing.onnx");
  fs::create_directory(dir_ / "folder.onnx");
  ExpectBadInput(dir_ / "folder.onnx", "folder.onnx");
  WriteBytes(dir_ / "empty.onnx", "");
  ExpectBadInput(dir_ / "empty.onnx", "empty.onnx");
  const std::string bytes = ReadBytes(model_);
  WriteBytes(dir_ / "truncated.onnx", bytes.substr(0, bytes.size() / 2));
  ExpectBadInput(dir_ / "truncated.onnx", "truncated.onnx");
  WriteBytes(dir_ / "text.onnx", "this is not an onnx model\n");
  ExpectBadInput(dir_ / "text.onnx", "text.onnx");

  // A model whose weights live in an external file: that file missing, then too short.
  const fs::path external = dir_ / "external" / "ext.onnx";
  fs::create_directory(external.parent_path());
  ASSERT_EQ(RunBertopt("optimize --input " + Q(model_) + " --output " + Q(external) +
                       " --external_data --disable_attention")
                .exit_code,
            0);
  const fs::path data = dir_ / "external" / "ext.onnx.data";
  const std::string weights = ReadBytes(data);
  fs::remove(data);
  ExpectBadInput(external, "ext.onnx.data");
  WriteBytes(data, weights.substr(0, weights.size() / 2));
  ExpectBadInput(external, "ext.onnx.data");
}

TEST_F(CliTest, OptimizeWritesModelAndReportAndLeavesInputUntouched) {
  const std::string before = ReadBytes(model_);
  const fs::path out = dir_ / "opt.onnx";
  CommandResult r = RunBertopt("--input " + Q(model_) + " --output " + Q(out) + " --json",
                               "bert_model_optimization");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["fused_ops"]["Attention"], 2);
  EXPECT_EQ(j["fully_optimized"], true) << r.out;
  EXPECT_TRUE(fs::exists(out));
  EXPECT_EQ(ReadBytes(model_), before);

  CommandResult text = RunBertopt("optimize --input " + Q(model_) + " --output " + Q(out));
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("verdict: fully optimized"), std::string::npos) << text.out;
}

TEST_F(CliTest, RefusesToOverwriteTheInput) {
  const std::string before = ReadBytes(model_);
  const fs::path copy = dir_ / "model.onnx";
  fs::copy_file(model_, copy);
  CommandResult r = RunBertopt("optimize --input " + Q(copy) + " --output " + Q(copy));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(ReadBytes(copy), before);
  CommandResult forced =
      RunBertopt("optimize --input " + Q(copy) + " --output " + Q(copy) + " --overwrite");
  EXPECT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(ReadBytes(copy), before);
}

TEST_F(CliTest, NumHeadsMismatchNamesBothValues) {
  CommandResult r = RunBertopt("optimize --input " + Q(model_) + " --output " + Q(dir_ / "o.onnx") +
                               " --num_heads 8");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("8"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("4"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "o.onnx"));
}

// A byte flip that leaves a parseable but invalid graph (a node reading a value nothing defines,
// which ORT refuses) is refused too: exit 2, the node and the value named, nothing written.
TEST_F(CliTest, AnInvalidGraphIsRefusedNamingTheNodeAndTheValue) {
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(ReadBytes(model_)));
  onnx::NodeProto* node = m.mutable_graph()->mutable_node(m.graph().node_size() / 2);
  ASSERT_GT(node->input_size(), 0);
  node->set_input(0, "ghost_value");
  const fs::path bad = dir_ / "dangling.onnx";
  WriteBytes(bad, m.SerializeAsString());
  CommandResult r = RunBertopt("optimize --input " + Q(bad) + " --output " + Q(dir_ / "o.onnx"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("not a valid model"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("reads 'ghost_value'"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "o.onnx"));
}

// SIGINT / SIGTERM at each stage (raised by the tool itself at that point, through the test hook
// BERTOPT_TEST_SIGNAL_AT, so the test needs no timing): exit 130 / 143, nothing left in the output
// folder (no output, no temporary, no verify staging folder), the input untouched.
// A graph our structural checks accept but ORT refuses (an op it does not know) is refused as bad
// input after the ORT check of the output: exit 2, ORT's reason, nothing written.
TEST_F(CliTest, AModelOrtRefusesIsRefusedBeforeWriting) {
  onnx::ModelProto m;
  ASSERT_TRUE(m.ParseFromString(ReadBytes(model_)));
  for (auto& node : *m.mutable_graph()->mutable_node()) {
    if (node.op_type() == "Tanh") node.set_op_type("Tanhh");  // the pooler's activation
  }
  const fs::path bad = dir_ / "unknown_op.onnx";
  WriteBytes(bad, m.SerializeAsString());
  CommandResult r = RunBertopt("optimize --input " + Q(bad) + " --output " + Q(dir_ / "o.onnx"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("ONNX Runtime refuses the input model"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Tanhh"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "o.onnx"));
  // --skip_ort_check writes it (the user asked for no check).
  r = RunBertopt("optimize --skip_ort_check --input " + Q(bad) + " --output " + Q(dir_ / "o.onnx"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "o.onnx"));
}

TEST_F(CliTest, SignalsAtEveryStageLeaveNothingBehind) {
  const std::string before = ReadBytes(model_);
  for (const char* stage : {"load", "passes", "write", "verify"}) {
    for (const auto& [signal, code] : {std::pair{"INT", 130}, std::pair{"TERM", 143}}) {
      const fs::path out_dir = dir_ / (std::string(stage) + "_" + signal);
      fs::create_directories(out_dir);
      CommandResult r = RunBertopt("optimize --verify --sequence_length 16 --input " + Q(model_) +
                                       " --output " + Q(out_dir / "o.onnx"),
                                   "bertopt");
      ASSERT_EQ(r.exit_code, 0) << r.err;  // without the hook it succeeds
      fs::remove_all(out_dir);
      fs::create_directories(out_dir);
      r = RunBertopt(std::string("optimize --verify --sequence_length 16 --input ") + Q(model_) +
                         " --output " + Q(out_dir / "o.onnx"),
                     "bertopt",
                     {{"BERTOPT_TEST_SIGNAL_AT", stage}, {"BERTOPT_TEST_SIGNAL", signal}});
      EXPECT_EQ(r.exit_code, code) << stage << " " << signal << ": " << r.err;
      std::vector<std::string> left;
      for (const auto& e : fs::directory_iterator(out_dir)) left.push_back(e.path().filename());
      EXPECT_TRUE(left.empty()) << stage << " " << signal << " left " << left.front();
    }
  }
  EXPECT_EQ(ReadBytes(model_), before);
}

// With external data, two files move into place: the data, then the model. A signal between the
// two left the data alone in the output folder (the model was still a temporary, removed by the
// handler). Now the two moves are one step: the signal is handled after both, so the output is
// complete, though the exit code still says the run was interrupted. With --verify the same
// happens inside the staging folder first ("publish"), where nothing may be left, and then out
// of it ("move").
TEST_F(CliTest, ASignalBetweenMovingTheDataAndTheModelLeavesBothOrNeither) {
  const std::vector<std::string> both = {"o.onnx", "o.onnx.data"};
  const struct {
    const char* flags;
    const char* stage;
    std::vector<std::string> left;
  } cases[] = {{"", "publish", both},
               {" --verify --sequence_length 16", "publish", {}},
               {" --verify --sequence_length 16", "move", both}};
  for (const auto& c : cases) {
    for (const auto& [signal, code] : {std::pair{"INT", 130}, std::pair{"TERM", 143}}) {
      const std::string label = std::string(c.stage) + c.flags + " " + signal;
      const fs::path out_dir =
          dir_ / (std::string(c.stage) + (*c.flags ? "_verify_" : "_") + signal);
      fs::create_directories(out_dir);
      CommandResult r = RunBertopt(
          "optimize --external_data --input " + Q(model_) + " --output " + Q(out_dir / "o.onnx") +
              c.flags,
          "bertopt", {{"BERTOPT_TEST_SIGNAL_AT", c.stage}, {"BERTOPT_TEST_SIGNAL", signal}});
      EXPECT_EQ(r.exit_code, code) << label << ": " << r.err;
      std::vector<std::string> left;
      for (const auto& e : fs::directory_iterator(out_dir)) left.push_back(e.path().filename());
      std::sort(left.begin(), left.end());
      EXPECT_EQ(left, c.left) << label;
      if (left.empty()) continue;
      // Complete: it loads, external data included.
      r = RunBertopt("optimize --input " + Q(out_dir / "o.onnx") + " --output " +
                     Q(out_dir / "again.onnx"));
      EXPECT_EQ(r.exit_code, 0) << label << ": " << r.err;
    }
  }
}

TEST_F(CliTest, ModelTypeIsDetectedAndADisagreeingOneIsAWarning) {
  CommandResult r =
      RunBertopt("optimize --input " + Q(model_) + " --output " + Q(dir_ / "auto.onnx"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("model_type bert, detected from producer_name 'pytorch'"), std::string::npos)
      << r.out;

  r = RunBertopt("optimize --input " + Q(model_) + " --output " + Q(dir_ / "tf.onnx") +
                 " --model_type bert_tf");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--model_type bert_tf"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("says bert"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("verdict: fully optimized"), std::string::npos) << r.out;

  r = RunBertopt("optimize --input " + Q(model_) + " --output " + Q(dir_ / "x.onnx") +
                 " --model_type gpt2");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--model_type"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir_ / "x.onnx"));
}

TEST_F(CliTest, VerifyWritesOnlyAVerifiedModel) {
  const fs::path out = dir_ / "verified.onnx";
  CommandResult r = RunBertopt("optimize --input " + Q(model_) + " --output " + Q(out) +
                               " --verify --sequence_length 16");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(out));
  EXPECT_FALSE(fs::exists(dir_ / ".bertopt-verify-verified.onnx"));

  // With external data the weights file moves into place beside the model it belongs to.
  const fs::path external = dir_ / "external.onnx";
  r = RunBertopt("optimize --input " + Q(model_) + " --output " + Q(external) +
                 " --verify --external_data --sequence_length 16");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(dir_ / "external.onnx.data"));
  EXPECT_LT(fs::file_size(external), fs::file_size(dir_ / "external.onnx.data"));
  CommandResult c = RunBertopt("compare --baseline_model " + Q(model_) + " --optimized_model " +
                               Q(external) + " --batch_size 2 --sequence_length 16 --samples 2");
  EXPECT_EQ(c.exit_code, 0) << c.out << c.err;
}

TEST_F(CliTest, CompareEntryPointPassesOnAnOptimizedPairAndWritesTestData) {
  const fs::path out = dir_ / "opt.onnx";
  ASSERT_EQ(RunBertopt("optimize --input " + Q(model_) + " --output " + Q(out)).exit_code, 0);
  CommandResult r = RunBertopt("--baseline_model " + Q(model_) + " --optimized_model " + Q(out) +
                                   " --batch_size 2 --sequence_length 16 --samples 5",
                               "compare_bert_results");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("5 of 5 samples passed"), std::string::npos) << r.out;
  EXPECT_TRUE(fs::exists(dir_ / "batch_2_seq_16" / "test_data_set_0" / "input_0.pb"));
  EXPECT_TRUE(fs::exists(dir_ / "batch_2_seq_16" / "test_data_set_0" / "output_0.pb"));
}

TEST_F(CliTest, DisabledFusionsAreNamedInTheVerdictAndVerboseSaysWhy) {
  const fs::path out = dir_ / "partial.onnx";
  CommandResult r = RunBertopt("optimize --input " + Q(model_) + " --output " + Q(out) +
                               " --disable_attention --disable_embed_layer_norm --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["fully_optimized"], false);
  EXPECT_FALSE(j["fused_ops"].contains("Attention"));
  EXPECT_EQ(j["missing"][0], "EmbedLayerNormalization: 0 of 1") << r.out;
  EXPECT_EQ(j["missing"][1], "Attention: 0 of 2") << r.out;
  EXPECT_EQ(j["missing"][2], "2 Softmax left unfused") << r.out;
  EXPECT_EQ(j["missing"].size(), 3u) << "the embedding LayerNorm left over is not a second miss";

  // The same model with a positive mask multiplier (not a mask): --verbose names each Softmax
  // and says why attention did not fuse there.
  onnx::ModelProto model;
  std::ifstream in(model_, std::ios::binary);
  ASSERT_TRUE(model.ParseFromIstream(&in));
  int changed = 0;
  for (auto& node : *model.mutable_graph()->mutable_node()) {
    if (node.op_type() != "Constant") continue;
    auto* t = node.mutable_attribute(0)->mutable_t();
    if (t->data_type() == onnx::TensorProto::FLOAT && t->raw_data().size() == 4) {
      float v;
      std::memcpy(&v, t->raw_data().data(), 4);
      if (v != -10000.0f) continue;
      v = 10000.0f;
      t->set_raw_data(std::string(reinterpret_cast<const char*>(&v), 4));
      ++changed;
    }
  }
  ASSERT_EQ(changed, 1) << "the generator's mask chain has one -10000 constant";
  const fs::path odd = dir_ / "positive_mask.onnx";
  WriteBytes(odd, model.SerializeAsString());
  CommandResult v = RunBertopt("optimize --input " + Q(odd) + " --output " + Q(out) + " --verbose");
  ASSERT_EQ(v.exit_code, 0) << v.err;
  EXPECT_NE(v.out.find("attention at /bert/encoder/layer.0/attention/self/Softmax"),
            std::string::npos)
      << v.out;
  EXPECT_NE(v.out.find("10000"), std::string::npos) << v.out;
  EXPECT_NE(v.out.find("not fully optimized: Attention: 0 of 2"), std::string::npos) << v.out;
}

TEST_F(CliTest, UnknownCommandAndMissingFlags) {
  EXPECT_EQ(RunBertopt("frobnicate").exit_code, 2);
  EXPECT_EQ(RunBertopt("optimize --input x.onnx").exit_code, 2);
  EXPECT_EQ(RunBertopt("compare --baseline_model x.onnx").exit_code, 2);
}

}  // namespace
}  // namespace bertopt::e2e
