// ProveKeyMask on the constant forms of static exports (the index arithmetic folded into tensors)
// and on what must not pass; the dynamic forms are in attention_fusion_test.cc.
#include "passes/key_mask.h"

#include <gtest/gtest.h>

#include <string>

#include "fmt/format.h"
#include "test_models.h"

namespace bertopt::passes {
namespace {

using testing::ParseModel;

// A static [2, 3] mask gathered by constant (b, k) pairs, And-ed with a constant true [1, 1, 3, 1].
std::string PairsModel(const std::string& pairs, const std::string& keep = "1, 1, 1") {
  return fmt::format(R"(
<ir_version: 8, opset_import: ["" : 14]>
g (int64[2, 3] mask) => (bool[2, 1, 3, 3] cond)
<int64[2, 1, 1, 3, 2] pairs = {{{}}}, bool[1, 1, 3, 1] keep = {{{}}}>
{{
  m = Cast<to = 9>(mask)
  picked = GatherND(m, pairs)
  cond = And(keep, picked)
}}
)",
                     pairs, keep);
}

KeyMask Prove(const std::string& text) {
  onnx::ModelProto model = ParseModel(text);
  auto graph = std::move(ir::Graph::Build(&model)).value();
  SymbolicDims dims(*graph);
  KeyMask key = ProveKeyMask(*graph, graph->FindValue("cond"), dims);
  if (key.mask) key.reason = key.mask->name();  // the name outlives the graph
  return key;
}

TEST(KeyMaskTest, ConstantPairsOfAStaticExport) {
  KeyMask key = Prove(PairsModel("0, 0, 0, 1, 0, 2, 1, 0, 1, 1, 1, 2"));
  EXPECT_NE(key.mask, nullptr) << key.reason;
}

TEST(KeyMaskTest, PairsThatAreNotBatchAndKeyFail) {
  // (k, b) instead of (b, k) would read out of range; one pair out of order is not affine.
  KeyMask swapped = Prove(PairsModel("0, 0, 1, 0, 2, 0, 0, 1, 1, 1, 2, 1"));
  EXPECT_EQ(swapped.mask, nullptr);
  KeyMask scrambled = Prove(PairsModel("0, 0, 0, 2, 0, 1, 1, 0, 1, 1, 1, 2"));
  EXPECT_EQ(scrambled.mask, nullptr);
  EXPECT_NE(scrambled.reason.find("neither all true nor an affine index"), std::string::npos)
      << scrambled.reason;
}

TEST(KeyMaskTest, AConditionThatIsNotAlwaysTrueFails) {
  KeyMask key = Prove(PairsModel("0, 0, 0, 1, 0, 2, 1, 0, 1, 1, 1, 2", "1, 0, 1"));
  EXPECT_EQ(key.mask, nullptr);
  EXPECT_NE(key.reason.find("'keep' is neither all true"), std::string::npos) << key.reason;
}

}  // namespace
}  // namespace bertopt::passes
