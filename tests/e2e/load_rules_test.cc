// A real export that gives a value twice the way ORT tolerates (two Constant nodes, two
// initializers): optimize reads it as ORT does, warns naming it, and the output matches both the
// model as given (through ORT) and the original, whose tensors ORT keeps here: a small Constant
// shadowed by an earlier one (the last wins under 128 bytes), and the word embeddings followed by
// a zeroed copy (the first wins from 128 bytes on).
#include <gtest/gtest.h>

#include <fstream>

#include "e2e_util.h"
#include "onnx/onnx_pb.h"

namespace bertopt::e2e {
namespace {

namespace fs = std::filesystem;

std::string Q(const fs::path& p) { return "'" + p.string() + "'"; }

TEST(LoadRules, ShadowedConstantsAndInitializersLoadWithAWarningAsOrtReadsThem) {
  const fs::path original = GenerateModel("--kind bert_seq --opset 11");
  onnx::ModelProto m;
  {
    std::ifstream in(original, std::ios::binary);
    ASSERT_TRUE(m.ParseFromIstream(&in));
  }
  auto* g = m.mutable_graph();
  // An earlier Constant writing the name of the first float Constant (a scalar), with another
  // value.
  int constant = -1;
  for (int i = 0; i < g->node_size() && constant < 0; ++i) {
    const auto& n = g->node(i);
    if (n.op_type() == "Constant" && n.attribute(0).t().data_type() == onnx::TensorProto::FLOAT) {
      constant = i;
    }
  }
  ASSERT_GE(constant, 0);
  onnx::NodeProto shadowed = g->node(constant);
  shadowed.set_name("shadowed_constant");
  auto* t = shadowed.mutable_attribute(0)->mutable_t();
  t->clear_raw_data();
  t->clear_float_data();
  int64_t elements = 1;
  for (int64_t d : t->dims()) elements *= d;
  for (int64_t k = 0; k < elements; ++k) t->add_float_data(123.0F);
  *g->add_node() = shadowed;
  g->mutable_node()->SwapElements(constant, g->node_size() - 1);  // before the original
  g->mutable_node()->SwapElements(constant + 1, g->node_size() - 1);
  // A later, zeroed copy of the first initializer (the word embeddings, 256 KB).
  onnx::TensorProto copy = g->initializer(0);
  ASSERT_FALSE(copy.raw_data().empty());
  copy.set_raw_data(std::string(copy.raw_data().size(), '\0'));
  *g->add_initializer() = copy;

  const fs::path dir = TempDir("load_rules");
  const fs::path input = dir / "twice.onnx";
  {
    std::ofstream out(input, std::ios::binary);
    ASSERT_TRUE(m.SerializeToOstream(&out));
  }
  CommandResult r = RunBertopt("optimize --input " + Q(input) + " --output " + Q(dir / "o.onnx"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("'" + shadowed.output(0) + "' is given 2 times; the last"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("'" + copy.name() + "' is given 2 times; the first"), std::string::npos)
      << r.err;
  EXPECT_NE(r.out.find("verdict: fully optimized"), std::string::npos) << r.out;
  ExpectSameOutputs(original, dir / "o.onnx");
  ExpectSameOutputs(input, dir / "o.onnx");  // ORT reads the input as we did
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bertopt::e2e
