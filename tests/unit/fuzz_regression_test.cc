// The fuzz targets' pipeline (fuzz/pipeline.h) and mutator (fuzz/model_mutator.h) in ctest: every
// input the fuzzers found a problem with is replayed here (tests/fuzz_regressions/), and a few
// hundred structural mutations of a small model run through the pipeline on every test run, so
// make test-asan sees them under the sanitizers too.

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "model_mutator.h"
#include "pipeline.h"
#include "unit/testdata_util.h"

namespace bertopt::fuzz {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testutil::TempDir;

std::string Describe(const PipelineResult& result) {
  std::string text = "load: " + result.load.message();
  for (const Status& run : result.runs) text += "\nrun: " + (run.ok() ? "ok" : run.message());
  return text;
}

std::string Serialize(const onnx::ModelProto& model) {
  std::string bytes;
  EXPECT_TRUE(model.SerializeToString(&bytes));
  return bytes;
}

// A LayerNorm subgraph followed by a MatMul, as PyTorch exports it: enough for the fusions,
// folding and conversions to have something to match.
onnx::ModelProto SmallModel() {
  return testutil::ParseModelText(R"onnx(
<
  ir_version: 8,
  opset_import: ["" : 14],
  producer_name: "pytorch"
>
agraph (float[batch, seq, 4] x) => (float[batch, seq, 4] y) <
  float[4] gamma = {1.0, 1.0, 1.0, 1.0}, float[4] beta = {0.0, 0.0, 0.0, 0.0},
  float two = {2.0}, float eps = {1e-12}, float[4, 4] w = {1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0,
  0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0}, int64[3] shape = {0, 0, 4}
> {
  mean = ReduceMean <axes = [-1]> (x)
  d = Sub (x, mean)
  sq = Pow (d, two)
  var = ReduceMean <axes = [-1]> (sq)
  ve = Add (var, eps)
  sd = Sqrt (ve)
  n = Div (d, sd)
  g = Mul (n, gamma)
  ln = Add (g, beta)
  mm = MatMul (ln, w)
  e = Erf (mm)
  y = Reshape (e, shape)
}
)onnx");
}

TEST(FuzzPipeline, RunsAValidModelThroughEveryConfiguration) {
  TempDir dir;
  const PipelineResult result = RunPipeline(Serialize(SmallModel()), dir.path());
  ASSERT_TRUE(result.load.ok()) << result.load.message();
  ASSERT_EQ(result.runs.size(), 2u);
  for (const Status& run : result.runs) EXPECT_TRUE(run.ok()) << run.message();
  EXPECT_FALSE(IsBug(result));
}

TEST(FuzzPipeline, BytesThatAreNoModelFailToLoad) {
  TempDir dir;
  const PipelineResult result = RunPipeline("not a model", dir.path());
  EXPECT_EQ(result.load.code(), StatusCode::kInvalidModel) << result.load.message();
  EXPECT_TRUE(result.runs.empty());
}

TEST(ModelMutator, MutationsStayModelsAndNoneIsABug) {
  const onnx::ModelProto original = SmallModel();
  const std::string original_bytes = Serialize(original);
  TempDir dir;
  int changed = 0;
  int loaded = 0;
  constexpr int kMutations = 300;
  for (unsigned seed = 0; seed < kMutations; ++seed) {
    onnx::ModelProto model = original;
    Rng rng(seed + 1);
    MutateModel(model, rng);
    const std::string bytes = Serialize(model);
    onnx::ModelProto reparsed;
    ASSERT_TRUE(reparsed.ParseFromString(bytes)) << "seed " << seed;
    if (bytes != original_bytes) ++changed;
    const PipelineResult result = RunPipeline(bytes, dir.path());
    if (result.load.ok()) ++loaded;
    EXPECT_FALSE(IsBug(result)) << "seed " << seed << ": " << Describe(result);
  }
  // Some steps do nothing on this graph (no value_info to change, say), but most change it, and
  // most results still load: the mutator is for reaching the passes, not the parser.
  EXPECT_GT(changed, kMutations * 8 / 10);
  EXPECT_GT(loaded, kMutations * 8 / 10);
}

TEST(ModelMutator, CrossOverSplicesNodesAndTheirWeightsFromTheOtherModel) {
  onnx::ModelProto model = SmallModel();
  onnx::ModelProto other = testutil::ParseModelText(R"onnx(
<ir_version: 8, opset_import: ["" : 14]>
other (float[4] a) => (float[4] c) <float[4] bias = {1.0, 2.0, 3.0, 4.0}> {
  b = Add (a, bias)
  c = Gelu_like (b)
}
)onnx");
  bool took_bias = false;
  for (unsigned seed = 1; seed < 50 && !took_bias; ++seed) {
    onnx::ModelProto crossed = model;
    Rng rng(seed);
    CrossOverModels(crossed, other, rng);
    for (const auto& t : crossed.graph().initializer()) took_bias |= t.name() == "bias";
    for (const auto& n : crossed.graph().node()) {
      if (n.op_type() == "Add" && n.input(1) == "bias") {
        EXPECT_TRUE(took_bias) << "the spliced Add came without the weight it reads";
      }
    }
  }
  EXPECT_TRUE(took_bias);
}

// Each input a fuzzer found a problem with, and what bertopt must do with it now.
struct Finding {
  const char* file;
  const char* what;  ///< the problem it showed, fixed since
  StatusCode load;   ///< LoadModel's result
  /// Expected error of each configuration ("" = succeeds); only checked when the load succeeds.
  std::vector<std::string> runs;
};

const std::vector<Finding>& Findings() {
  static const std::vector<Finding> kFindings = {
      {"empty_raw_int64_tensor.onnx",
       "UBSan: decoding an empty raw_data tensor passed memcpy a null pointer (ir/tensor.cc); "
       "found on the seed albert_sdpa_dynamo_op20_noopt.onnx",
       StatusCode::kOk,
       {"", ""}},
      {"short_raw_data_reshape_shape.onnx",
       "SEGV in ONNX's shape inference (onnx::ParseData) on a Reshape shape of 3 raw_data bytes "
       "for 2 int64s; refused by ir::ValidateGraph before inference runs",
       StatusCode::kOk,
       {"initializer 'shape' has 3 bytes of raw_data", "initializer 'shape' has 3 bytes"}},
      {"weight_type_contradicts_value_info.onnx",
       "kInternal from --float16: a BFLOAT16 weight that value_info declares FLOAT ended up read "
       "as FLOAT by a MatMul whose other input became FLOAT16; now refused as input",
       StatusCode::kOk,
       {"initializer 'w' is BFLOAT16, but the graph declares it FLOAT",
        "initializer 'w' is BFLOAT16, but the graph declares it FLOAT"}},
      {"reshape_without_data_float16.onnx",
       "kInternal from --float16: a Reshape without its data input typed its output INT64 where "
       "value_info says FLOAT, so the Mul reading it was left mixing FLOAT and FLOAT16; now "
       "refused as input (Reshape takes 2 inputs)",
       StatusCode::kOk,
       {"the input is not a valid model: the Reshape node producing 'r' has 1 input, where "
        "Reshape-14 takes 2",
        "the input is not a valid model: the Reshape node producing 'r' has 1 input"}},
      {"concat_mixes_types_after_folding.onnx",
       "kInternal: a Concat of an INT64 and a FLOAT value passed the input check (no declared "
       "types), and failed the output check once folding made the FLOAT one an initializer; now "
       "refused with the types shape inference gives",
       StatusCode::kOk,
       {"the input is not a valid model: the Concat node producing 's': input 0 ('c') is "
        "tensor(int64) but input 1 ('u') is tensor(float), and Concat-13 takes one type T for "
        "both",
        "the input is not a valid model: the Concat node producing 's': input 0 ('c') is "
        "tensor(int64)"}},
      {"onnx_gelu_without_input.onnx",
       "UBSan: the ONNX Gelu form of GeluFusion bound a reference to a null input",
       StatusCode::kOk,
       {"", ""}},
      {"reshape_dims_product_overflow.onnx",
       "UBSan: signed overflow multiplying a Reshape's input dims (INT64_MAX x 2) in SymbolicDims",
       StatusCode::kOk,
       {"", ""}},
      {"add_third_input_int64_constant.onnx",
       "kInternal: an Add given a third input, an INT64 Constant nobody declared, passed the input "
       "check (ONNX's shape inference gives up on the Add) and failed the output check once "
       "folding made the Constant a typed initializer; fixed by typing Constants' outputs "
       "(5afa795), and at opsets ONNX 1.12 knows refused by the schema's input count too",
       StatusCode::kOk,
       {"the input is not a valid model: node 'add_3' (Add) mixes element types: 'x' is FLOAT "
        "and 'c' is INT64",
        "the input is not a valid model: node 'add_3' (Add) mixes element types"}},
      {"add_third_input_int64_constant_ai_onnx.onnx",
       "kInternal: the Add above, its Constant's domain written \"ai.onnx\" (the fuzzer's "
       "mutation of that file): the Constant went untyped, folding folded it all the same",
       StatusCode::kOk,
       {"the input is not a valid model: node 'add_3' (Add) mixes element types: 'x' is FLOAT "
        "and 'c' is INT64",
        "the input is not a valid model: node 'add_3' (Add) mixes element types"}},
      {"unsqueeze_of_float_declared_int64.onnx",
       "kInternal: at opset 20, Unsqueezes of a FLOAT bias declared INT64 ('unsqueeze_8' in the "
       "fuzzer's input) passed the input check; folding made one a FLOAT initializer that the "
       "declaration contradicts. Now ValidateModel derives the FLOAT from Unsqueeze's schema",
       StatusCode::kOk,
       {"the input is not a valid model: node 'node_Unsqueeze_7' (Unsqueeze) makes output 0 "
        "('unsqueeze_7') tensor(float), but the graph declares it tensor(int64)",
        "the input is not a valid model: node 'node_Unsqueeze_7' (Unsqueeze) makes output 0"}},
      {"value_info_declared_twice.onnx",
       "kInternal: value_info declared '_to_copy_2' INT64, then BOOL as the Cast writing it does; "
       "ORT and the input check read the last, the passes kept the first, and the output check "
       "failed (byte fuzzer, on an opset-20 seed); now only the last is kept, as ORT reads it",
       StatusCode::kOk,
       {"", ""}},
      {"unsqueeze_without_data_folded.onnx",
       "kInternal: at opset 23 an Unsqueeze whose data input is \"\" was folded into an "
       "initializer of one INT64 element and no data (the fuzzer's input as it was); an omitted "
       "first input is no longer folded",
       StatusCode::kOk,
       {"", "--float16: cannot tell the element type of 's'"}},
      {"shape_elements_cycle.onnx",
       "ASan stack overflow: SymbolicDims::ElementsOf recursed without bound around a cycle of "
       "shape ops (Unsqueeze and Squeeze reading each other)",
       StatusCode::kOk,
       {"the graph has a cycle through node", "the graph has a cycle through node"}},
  };
  return kFindings;
}

TEST(FuzzRegressions, EveryFindingIsListedAndBehaves) {
  const fs::path folder = BERTOPT_FUZZ_REGRESSIONS;
  std::map<std::string, const Finding*> listed;
  for (const Finding& f : Findings()) listed[f.file] = &f;
  int replayed = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    if (name == "README.md") continue;
    ASSERT_TRUE(listed.count(name)) << name << " is in " << folder << " but not in Findings()";
    const Finding& f = *listed[name];
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    TempDir dir;
    const PipelineResult result = RunPipeline(bytes.str(), dir.path());
    EXPECT_FALSE(IsBug(result)) << name << " (" << f.what << "): " << Describe(result);
    EXPECT_EQ(result.load.code(), f.load) << name << ": " << result.load.message();
    if (result.load.ok()) {
      ASSERT_EQ(result.runs.size(), f.runs.size()) << name;
      for (size_t i = 0; i < f.runs.size(); ++i) {
        if (f.runs[i].empty()) {
          EXPECT_TRUE(result.runs[i].ok())
              << name << " run " << i << ": " << result.runs[i].message();
        } else {
          EXPECT_THAT(result.runs[i].message(), HasSubstr(f.runs[i])) << name << " run " << i;
        }
      }
    }
    ++replayed;
  }
  EXPECT_EQ(replayed, static_cast<int>(Findings().size()));
}

}  // namespace
}  // namespace bertopt::fuzz
