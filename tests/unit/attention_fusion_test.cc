// Attention fusion: each exporter layout of one self-attention layer (H = 8, N = 2, Hd = 4) fuses
// into one com.microsoft Attention with the same outputs; each must-not-fuse condition misses.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>

#include "bertopt/ir/graph.h"
#include "bertopt/ir/tensor.h"
#include "fmt/format.h"
#include "fusion_test_util.h"
#include "passes/cleanup.h"
#include "passes/fusions/fusions.h"
#include "passes/registry.h"
#include "test_models.h"

namespace bertopt {
namespace {

using testing::CountOps;
using testing::ExpectSameOutputs;
using testing::ParseModel;
using testing::RunFusion;

// `n` deterministic values in [-1, 1) as ONNX text, so weights need no storage.
std::string Floats(int n, int seed) {
  std::string s;
  for (int i = 0; i < n; ++i) {
    s += fmt::format("{}{:.4f}", i ? ", " : "", ((i * 37 + seed * 11) % 50) / 25.0 - 1.0);
  }
  return s;
}

// How one layer is spelled. The defaults are torch 1.13 at opset 11 after the reshape fusion
// (exporter-layouts 2.6): Add(bias, MatMul), targets {0,0,2,4} / {0,0,8}, Div(scores, 2),
// Add(scores, mask_term) with mask_term = Mul(Sub(1, Cast(Unsqueeze(Unsqueeze(mask)))), -10000).
struct Layout {
  int opset = 11;
  bool static_shapes = false;  // x is float[2, 5, 8]; targets {2,5,2,4} / {2,5,8} (2.7)
  bool bias_second = false;    // Add(MatMul, bias)
  bool key_two_transposes = false;
  // "div": Div(qk, 2); "mul": Mul(qk, 0.5); "mul_first": Mul(0.5, qk); "q_div": Div(Q, 2) before
  // the MatMul; "div3": Div(qk, 3), not 1/sqrt(Hd).
  std::string scale = "div";
  // "add": the additive mask; "where": DistilBERT's Where(Equal(mask, 0)); "none".
  std::string mask = "add";
  double mask_value = -10000;     // the multiplier, or the Where fill value
  bool mask_first = false;        // Add(mask_term, scores)
  bool multiplier_first = false;  // Mul(-10000, Sub(...))
  bool one_unsqueeze = false;     // Unsqueeze(mask, axes=[1,2])
  bool cast_mask_input = false;   // the chain starts from Cast(mask, to=int32)
  double sub_value = 1.0;
  std::string key_perm = "0, 2, 3, 1";
  int softmax_axis = 0;  // 0: 3 below opset 13, -1 from 13
  std::string split_target = "0, 0, 2, 4";
  std::string key_input = "x";   // what the K MatMul reads
  bool weight_is_input = false;  // wq is a graph input, not an initializer
  int layers = 1;
  bool shared_padding = false;  // "where": one Reshape(Equal(mask, 0)) read by every layer
  std::string extra_nodes;      // appended to the graph
  std::string extra_outputs;    // appended to the graph outputs
  // keras2onnx / tf2onnx (3.6): Slice(mask_4d, slice_starts, slice_ends, slice_axes, slice_steps)
  // between the mask's Unsqueeze and its Cast; this text declares those four initializers.
  std::string mask_slice;
  // tf2onnx (4.3): no mask input. The graph takes int64 input_ids instead, and these nodes compute
  // from them the (B, S) value `computed_mask` that the mask chain starts from.
  std::string mask_nodes;
  // transformers 4.3x+: inverted.masked_fill(inverted.to(bool), value), i.e.
  // Where(Cast(inverted, bool), value, inverted); with expand_mask the float mask is first
  // expanded along the query axis to (B, 1, S, S).
  bool masked_fill = false;
  bool expand_mask = false;
  // transformers 4.5x+ (torch 2.x): mask = "index", a boolean [B, 1, S, S] keep-mask built by
  // index arithmetic, then Where(keep, 0, mask_value). index_form: "torchscript" (Gather of the
  // flattened mask at b·S + k), "dynamo" (GatherND of (b, k) pairs); the negatives "no_mul"
  // (row b + k), "swapped" (pairs (k, b)), "ge_one" (q >= 1, not always true).
  std::string index_form = "torchscript";
  // scaled_dot_product_attention: scale = "split" multiplies Q and Kᵀ by √(1/√Hd) each;
  // nan_guard adds Where(IsNaN(p), 0, p) after the Softmax; context_target (not empty) reshapes
  // the context to that constant target before the merge Transpose.
  bool nan_guard = false;
  std::string context_target;
  // dynamo's Kᵀ: Reshape(Transpose[0,2,1](Reshape(K, [-1, S, Hd])), [B, N, Hd, S]) from Slices
  // of Shape(K); key_flat_wrong reshapes to [-1, Hd, S] instead (not a transpose).
  bool key_flat_transpose = false;
  bool key_flat_wrong = false;
};

std::string Name(const std::string& base, int layer) {
  return layer == 0 ? base : fmt::format("{}_{}", base, layer);
}

// The nodes of one layer reading `in`, writing `out` (= dense(attention(in)) + in).
std::string LayerNodes(const Layout& l, int layer, const std::string& in, const std::string& out) {
  auto n = [layer](const std::string& base) { return Name(base, layer); };
  std::string s;
  auto projection = [&](const std::string& p, const std::string& input) {
    const std::string mm = n(p + "_mm"), sum = n(p), bias = n("b" + p);
    s += fmt::format("  {} = MatMul({}, {})\n", mm, input, n("w" + p));
    s += l.bias_second ? fmt::format("  {} = Add({}, {})\n", sum, mm, bias)
                       : fmt::format("  {} = Add({}, {})\n", sum, bias, mm);
    const std::string attr = l.opset >= 14 ? "<allowzero = 0>" : "";
    s += fmt::format("  {} = Reshape{}({}, split_target)\n", n(p + "_split"), attr, sum);
  };
  projection("q", in);
  projection("k", l.key_input == "x" ? in : l.key_input);
  projection("v", in);
  s += fmt::format("  {0} = Transpose<perm = [0, 2, 1, 3]>({1})\n", n("q_heads"), n("q_split"));
  if (l.key_flat_transpose) {
    s += fmt::format(R"(  {0} = Transpose<perm = [0, 2, 1, 3]>({1})
  {0}_shape = Shape({0})
  {0}_hd = Slice({0}_shape, minus_one, int_max)
  {0}_s = Slice({0}_shape, minus_two, minus_one)
  {0}_bn = Slice({0}_shape, int_min, minus_two)
  {0}_flat_target = Concat<axis = 0>(minus_one, {2})
  {0}_flat = Reshape({0}, {0}_flat_target)
  {0}_flat_t = Transpose<perm = [0, 2, 1]>({0}_flat)
  {0}_unflat_target = Concat<axis = 0>({0}_bn, {0}_hd, {0}_s)
  {3} = Reshape({0}_flat_t, {0}_unflat_target)
)",
                     n("k_heads"), n("k_split"),
                     l.key_flat_wrong ? fmt::format("{0}_hd, {0}_s", n("k_heads"))
                                      : fmt::format("{0}_s, {0}_hd", n("k_heads")),
                     n("k_heads_t"));
  } else if (l.key_two_transposes) {
    s += fmt::format("  {0} = Transpose<perm = [0, 2, 1, 3]>({1})\n", n("k_heads"), n("k_split"));
    s += fmt::format("  {0} = Transpose<perm = [0, 1, 3, 2]>({1})\n", n("k_heads_t"), n("k_heads"));
  } else {
    s += fmt::format("  {0} = Transpose<perm = [{1}]>({2})\n", n("k_heads_t"), l.key_perm,
                     n("k_split"));
  }
  s += fmt::format("  {0} = Transpose<perm = [0, 2, 1, 3]>({1})\n", n("v_heads"), n("v_split"));
  if (l.scale == "split") {
    s += fmt::format("  {0} = Mul({1}, sqrt_scale)\n", n("q_scaled"), n("q_heads"));
    s += fmt::format("  {0} = Mul({1}, sqrt_scale)\n", n("k_scaled"), n("k_heads_t"));
    s += fmt::format("  {0} = MatMul({1}, {2})\n", n("scores"), n("q_scaled"), n("k_scaled"));
  } else if (l.scale == "q_div") {
    s += fmt::format("  {0} = Div({1}, sqrt_head_size)\n", n("q_scaled"), n("q_heads"));
    s += fmt::format("  {0} = MatMul({1}, {2})\n", n("scores"), n("q_scaled"), n("k_heads_t"));
  } else {
    s += fmt::format("  {0} = MatMul({1}, {2})\n", n("qk"), n("q_heads"), n("k_heads_t"));
    if (l.scale == "div")
      s += fmt::format("  {0} = Div({1}, sqrt_head_size)\n", n("scores"), n("qk"));
    if (l.scale == "div3") s += fmt::format("  {0} = Div({1}, three)\n", n("scores"), n("qk"));
    if (l.scale == "mul")
      s += fmt::format("  {0} = Mul({1}, inv_sqrt_head_size)\n", n("scores"), n("qk"));
    if (l.scale == "mul_first") {
      s += fmt::format("  {0} = Mul(inv_sqrt_head_size, {1})\n", n("scores"), n("qk"));
    }
  }
  if (l.mask == "add" || l.mask == "index") {
    s += l.mask_first ? fmt::format("  {0} = Add(mask_term, {1})\n", n("masked"), n("scores"))
                      : fmt::format("  {0} = Add({1}, mask_term)\n", n("masked"), n("scores"));
  } else if (l.mask == "where") {
    // Per layer, as DistilBERT exports it: the mask target reads Shape(x), the Expand
    // Shape(scores).
    s += fmt::format(R"(  {0}_xs = Shape({1})
  {0}_bsz = Gather<axis = 0>({0}_xs, zero)
  {0}_len = Gather<axis = 0>({0}_xs, one)
  {0}_bsz_1 = Unsqueeze<axes = [0]>({0}_bsz)
  {0}_len_1 = Unsqueeze<axes = [0]>({0}_len)
  {0}_target = Concat<axis = 0>({0}_bsz_1, one_1d, one_1d, {0}_len_1)
  {0}_4d = Reshape(is_padding, {0}_target)
  {0}_ss = Shape({2})
  {0}_expanded = Expand({4}, {0}_ss)
  {0}_bool = Cast<to = 9>({0}_expanded)
  {3} = Where({0}_bool, fill, {2})
)",
                     n("pad"), in, n("scores"), n("masked"),
                     l.shared_padding ? "padding_4d" : n("pad") + "_4d");
  }
  const std::string softmax_in = l.mask == "none" ? n("scores") : n("masked");
  const int axis = l.softmax_axis != 0 ? l.softmax_axis : (l.opset >= 13 ? -1 : 3);
  if (l.nan_guard) {
    s += fmt::format("  {0}_raw = Softmax<axis = {1}>({2})\n", n("probs"), axis, softmax_in);
    s += fmt::format("  {0}_nan = IsNaN({0}_raw)\n  {0} = Where({0}_nan, zero_f, {0}_raw)\n",
                     n("probs"));
  } else {
    s += fmt::format("  {0} = Softmax<axis = {1}>({2})\n", n("probs"), axis, softmax_in);
  }
  s += fmt::format("  {0} = MatMul({1}, {2})\n", n("context"), n("probs"), n("v_heads"));
  std::string context = n("context");
  if (!l.context_target.empty()) {
    s += fmt::format("  {0}_same = Reshape({0}, context_target)\n", n("context"));
    context = n("context") + "_same";
  }
  s += fmt::format("  {0} = Transpose<perm = [0, 2, 1, 3]>({1})\n", n("context_t"), context);
  if (l.mask == "where") {
    // DistilBERT's merge target {B, -1, H} reads B from x.
    s += fmt::format("  {0}_b = Unsqueeze<axes = [0]>({1}_bsz)\n", n("merge"), n("pad"));
    s += fmt::format("  {0}_dims = Concat<axis = 0>({0}_b, minus_one, hidden)\n", n("merge"));
    s += fmt::format("  {0} = Reshape({1}, {2}_dims)\n", n("merged"), n("context_t"), n("merge"));
  } else {
    s += fmt::format("  {0} = Reshape({1}, merge_target)\n", n("merged"), n("context_t"));
  }
  s += fmt::format("  {0} = MatMul({1}, {2})\n", n("dense"), n("merged"), n("wo"));
  s += fmt::format("  {0} = Add({1}, {2})\n", out, n("dense"), in);
  return s;
}

std::string ModelText(const Layout& l) {
  const std::string dims = l.static_shapes ? "2, 5" : "B, S";
  std::string inputs = fmt::format("float[{0}, 8] x, int64[{0}] {1}", dims,
                                   l.mask_nodes.empty() ? "attention_mask" : "input_ids");
  if (l.key_input != "x") inputs += fmt::format(", float[{0}, 8] {1}", dims, l.key_input);
  if (l.weight_is_input) inputs += ", float[8, 8] wq";

  std::string init;
  auto add = [&init](const std::string& decl) { init += (init.empty() ? "" : ",\n ") + decl; };
  for (int layer = 0; layer < l.layers; ++layer) {
    int seed = 10 * layer;
    for (const char* p : {"q", "k", "v", "o"}) {
      if (!(l.weight_is_input && layer == 0 && std::string(p) == "q")) {
        add(fmt::format("float[8, 8] {} = {{{}}}", Name(std::string("w") + p, layer),
                        Floats(64, ++seed)));
      }
      if (std::string(p) != "o") {
        add(fmt::format("float[8] {} = {{{}}}", Name(std::string("b") + p, layer),
                        Floats(8, ++seed)));
      }
    }
  }
  const std::string split = l.static_shapes ? "2, 5, 2, 4" : l.split_target;
  const std::string merge = l.static_shapes ? "2, 5, 8" : "0, 0, 8";
  add(fmt::format("int64[4] split_target = {{{}}}", split));
  add(fmt::format("int64[3] merge_target = {{{}}}", merge));
  add("float sqrt_head_size = {2.0}, float inv_sqrt_head_size = {0.5}, float three = {3.0}");
  // The mask values are set after parsing (the text syntax has no infinity).
  add("float sub_one = {0.0}, float mask_value = {0.0}, float fill = {0.0}");
  add("int64 zero = {0}, int64 one = {1}, int64[1] one_1d = {1}, int64[1] minus_one = {-1}");
  add("int64[1] hidden = {8}, int64[1] axis1 = {1}, int64[1] axis2 = {2}, int64[2] axes12 = {1, "
      "2}");
  if (!l.mask_slice.empty()) add(l.mask_slice);
  if (!l.context_target.empty())
    add(fmt::format("int64[4] context_target = {{{}}}", l.context_target));
  add("float zero_f = {0.0}, float sqrt_scale = {0.70710678}, int64[1] minus_two = {-2}");
  add("int64[1] int_max = {9223372036854775807}, int64[1] int_min = {-9223372036854775807}");
  add("int64[3] axes123 = {1, 2, 3}, int64[3] axes012 = {0, 1, 2}, int64[3] axes013 = {0, 1, 3}");
  add("bool true_init = {1}");
  if (l.expand_mask) add("int64[1] exp_one = {1}, int64[1] exp_two = {2}");

  std::string nodes = l.mask_nodes;
  const std::string source = l.mask_nodes.empty() ? "attention_mask" : "computed_mask";
  const std::string mask = l.cast_mask_input ? "mask_int32" : source;
  if (l.cast_mask_input) nodes += fmt::format("  mask_int32 = Cast<to = 6>({})\n", source);
  if (l.mask == "add") {
    if (l.one_unsqueeze) {
      nodes += l.opset >= 13 ? fmt::format("  mask_4d = Unsqueeze({}, axes12)\n", mask)
                             : fmt::format("  mask_4d = Unsqueeze<axes = [1, 2]>({})\n", mask);
    } else if (l.opset >= 13) {
      nodes += fmt::format(
          "  mask_3d = Unsqueeze({}, axis1)\n  mask_4d = Unsqueeze(mask_3d, axis2)\n", mask);
    } else {
      nodes += fmt::format(
          "  mask_3d = Unsqueeze<axes = [1]>({})\n  mask_4d = Unsqueeze<axes = [2]>(mask_3d)\n",
          mask);
    }
    if (!l.mask_slice.empty()) {
      nodes +=
          "  mask_sliced = Slice(mask_4d, slice_starts, slice_ends, slice_axes, slice_steps)\n";
    }
    nodes += fmt::format("  mask_float = Cast<to = 1>({})\n",
                         l.mask_slice.empty() ? "mask_4d" : "mask_sliced");
    if (l.expand_mask) {
      nodes += fmt::format(
          "  mask_shape = Shape({})\n  seq_1d = Slice(mask_shape, exp_one, exp_two)\n"
          "  query_axis = Concat<axis = 0>(exp_one, exp_one, seq_1d, exp_one)\n"
          "  mask_expanded = Expand(mask_float, query_axis)\n"
          "  inverted = Sub(sub_one, mask_expanded)\n",
          source);
    } else {
      nodes += "  inverted = Sub(sub_one, mask_float)\n";
    }
    if (l.masked_fill) {
      nodes +=
          "  filled = Cast<to = 9>(inverted)\n  mask_term = Where(filled, mask_value, inverted)\n";
    } else {
      nodes += l.multiplier_first ? "  mask_term = Mul(mask_value, inverted)\n"
                                  : "  mask_term = Mul(inverted, mask_value)\n";
    }
  } else if (l.mask == "index") {
    nodes += fmt::format(R"(  m_bool = Cast<to = 9>({0})
  m_shape = Shape(m_bool)
  m_batch = Gather<axis = 0>(m_shape, zero)
  m_len = Gather<axis = 0>(m_shape, one)
  b_range = Range(zero, m_batch, one)
  k_range = Range(zero, m_len, one)
  q_range = Range(zero, m_len, one)
  b_idx = Unsqueeze(b_range, axes123)
  k_idx = Unsqueeze(k_range, axes012)
  q_idx = Unsqueeze(q_range, axes013)
  q_keep = GreaterOrEqual(q_idx, {1})
)",
                         mask, l.index_form == "ge_one" ? "one" : "zero");
    if (l.index_form == "dynamo" || l.index_form == "swapped") {
      nodes += fmt::format(R"(  bk_max = Max(b_idx, k_idx)
  bk_shape = Shape(bk_max)
  b_exp = Expand(b_idx, bk_shape)
  k_exp = Expand(k_idx, bk_shape)
  b_col = Unsqueeze(b_exp, minus_one)
  k_col = Unsqueeze(k_exp, minus_one)
  pairs = Concat<axis = -1>({0})
  m_4d = GatherND(m_bool, pairs)
  keep = And(true_init, q_keep)
)",
                           l.index_form == "swapped" ? "k_col, b_col" : "b_col, k_col");
    } else {
      nodes += fmt::format(R"(  m_flat = Flatten<axis = 2>(m_bool)
  b_rows = Mul(b_idx, m_len)
  row = Add(k_idx, {0})
  m_rows = Gather<axis = 0>(m_flat, row)
  row_shape = Shape(row)
  m_4d = Reshape(m_rows, row_shape)
  keep = Identity(q_keep)
)",
                           l.index_form == "no_mul" ? "b_idx" : "b_rows");
    }
    nodes += "  cond = And(keep, m_4d)\n  mask_term = Where(cond, zero_f, mask_value)\n";
  } else if (l.mask == "where") {
    nodes += fmt::format("  is_padding = Equal({}, zero)\n", mask);
    if (l.shared_padding) {
      nodes += R"(  xs = Shape(x)
  batch = Gather<axis = 0>(xs, zero)
  length = Gather<axis = 0>(xs, one)
  batch_1 = Unsqueeze<axes = [0]>(batch)
  length_1 = Unsqueeze<axes = [0]>(length)
  padding_target = Concat<axis = 0>(batch_1, one_1d, one_1d, length_1)
  padding_4d = Reshape(is_padding, padding_target)
)";
    }
  }
  std::string in = "x";
  for (int layer = 0; layer < l.layers; ++layer) {
    const std::string out = layer + 1 == l.layers ? "y" : Name("layer_out", layer);
    nodes += LayerNodes(l, layer, in, out);
    in = out;
  }
  nodes += l.extra_nodes;
  return fmt::format(R"(
<ir_version: 8, opset_import: ["" : {0}]>
attention ({1}) => (float[{2}, 8] y{3})
<{4}>
{{
{5}}}
)",
                     l.opset, inputs, dims, l.extra_outputs, init, nodes);
}

onnx::ModelProto WithMaskValues(onnx::ModelProto model, const Layout& l) {
  for (auto& init : *model.mutable_graph()->mutable_initializer()) {
    const double value = init.name() == "sub_one" ? l.sub_value : l.mask_value;
    if (init.name() == "sub_one" || init.name() == "mask_value" || init.name() == "fill") {
      init.clear_raw_data();
      init.clear_float_data();
      init.add_float_data(static_cast<float>(value));
    }
  }
  return model;
}

onnx::ModelProto BuildModel(const Layout& l) { return WithMaskValues(ParseModel(ModelText(l)), l); }

testing::ParityOptions Dims() { return {.dims = {{"B", 2}, {"S", 5}}}; }

const ir::Node* OnlyAttention(const onnx::ModelProto& fused, std::unique_ptr<ir::Graph>& graph,
                              onnx::ModelProto& copy) {
  copy = fused;
  graph = std::move(ir::Graph::Build(&copy)).value();
  auto nodes = graph->NodesOfType("Attention", ir::kMsDomain);
  return nodes.empty() ? nullptr : nodes[0];
}

// Fuses, expects `layers` Attention nodes and no attention math left, a second run that finds
// nothing, and ORT parity. Returns the fused model.
onnx::ModelProto ExpectFusedModel(const onnx::ModelProto& model, int layers,
                                  const passes::PassOptions& options = {},
                                  const testing::ParityOptions& parity = Dims()) {
  testing::FusionRun run = RunFusion(model, passes::MakeAttentionFusion(), options);
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), layers) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "Softmax"), 0);
  EXPECT_EQ(CountOps(run.after, "Transpose"), 0);
  testing::FusionRun again = RunFusion(run.after, passes::MakeAttentionFusion(), options);
  EXPECT_EQ(again.stats[0].candidates, 0);
  EXPECT_EQ(again.after.graph().node_size(), run.after.graph().node_size());
  ExpectSameOutputs(model, run.after, parity);
  return run.after;
}

onnx::ModelProto ExpectFused(const Layout& layout, const passes::PassOptions& options = {},
                             const testing::ParityOptions& parity = Dims()) {
  return ExpectFusedModel(BuildModel(layout), layout.layers, options, parity);
}

float FloatAttr(const ir::Node* node, const char* name) {
  return node && node->AttrFloat(name) ? *node->AttrFloat(name) : std::nanf("");
}

TEST(AttentionFusionTest, TorchDynamicAfterReshapeFusion) {
  onnx::ModelProto fused = ExpectFused({});
  onnx::ModelProto copy;
  std::unique_ptr<ir::Graph> g;
  const ir::Node* attention = OnlyAttention(fused, g, copy);
  ASSERT_NE(attention, nullptr);
  EXPECT_EQ(attention->AttrInt("num_heads"), 2);
  EXPECT_FALSE(attention->Attr("scale")) << "2 = sqrt(Hd): the default scale";
  EXPECT_FALSE(attention->Attr("mask_filter_value")) << "-10000 is the default";
  ASSERT_EQ(attention->num_inputs(), 4);
  EXPECT_EQ(attention->input(0)->name(), "x");
  EXPECT_EQ(*g->Shape(attention->input(1)), (std::vector<int64_t>{8, 24}));
  EXPECT_EQ(*g->Shape(attention->input(2)), (std::vector<int64_t>{24}));
  EXPECT_EQ(attention->input(3)->producer()->op_type(), "ReduceSum");
  EXPECT_EQ(attention->output(0)->name(), "merged") << "takes over the merge Reshape's output";
  // The shared mask chain is gone with its last reader.
  EXPECT_EQ(CountOps(fused, "Sub") + CountOps(fused, "Unsqueeze"), 0);
}

TEST(AttentionFusionTest, Opset14AxesAsInputsAllowzeroAndSoftmaxMinusOne) {
  ExpectFused({.opset = 14});
  ExpectFused({.opset = 14, .one_unsqueeze = true});
}

TEST(AttentionFusionTest, StaticTargets) { ExpectFused({.static_shapes = true}); }

TEST(AttentionFusionTest, KeyTransposedTwice) { ExpectFused({.key_two_transposes = true}); }

TEST(AttentionFusionTest, ScaleAsMulByInverseSqrtEitherOrder) {
  ExpectFused({.scale = "mul"});
  ExpectFused({.scale = "mul_first"});
}

TEST(AttentionFusionTest, ScaleAppliedToQueryFirst) { ExpectFused({.scale = "q_div"}); }

TEST(AttentionFusionTest, OtherScaleBecomesTheScaleAttribute) {
  onnx::ModelProto fused = ExpectFused({.scale = "div3"});
  onnx::ModelProto copy;
  std::unique_ptr<ir::Graph> g;
  EXPECT_FLOAT_EQ(FloatAttr(OnlyAttention(fused, g, copy), "scale"), 1.0f / 3.0f);
}

TEST(AttentionFusionTest, SwappedOperandsAndOneUnsqueezeAndCastMask) {
  ExpectFused({.bias_second = true,
               .mask_first = true,
               .multiplier_first = true,
               .one_unsqueeze = true,
               .cast_mask_input = true});
}

TEST(AttentionFusionTest, FloatMinMaskBecomesMaskFilterValue) {
  const double float_min = -3.4028234663852886e+38;
  onnx::ModelProto fused = ExpectFused({.mask_value = float_min});
  onnx::ModelProto copy;
  std::unique_ptr<ir::Graph> g;
  EXPECT_EQ(FloatAttr(OnlyAttention(fused, g, copy), "mask_filter_value"),
            std::numeric_limits<float>::lowest());
}

// DistilBERT (2.10). Every test mask keeps at least half of each row, so no row is fully masked:
// there, -inf gives NaN probabilities and Attention's finite fill uniform ones.
TEST(AttentionFusionTest, DistilBertWhereMaskWithMinusInfinity) {
  onnx::ModelProto fused = ExpectFused({.scale = "q_div",
                                        .mask = "where",
                                        .mask_value = -std::numeric_limits<double>::infinity(),
                                        .split_target = "0, -1, 2, 4"});
  onnx::ModelProto copy;
  std::unique_ptr<ir::Graph> g;
  EXPECT_EQ(FloatAttr(OnlyAttention(fused, g, copy), "mask_filter_value"),
            std::numeric_limits<float>::lowest());
  EXPECT_EQ(CountOps(fused, "Equal") + CountOps(fused, "Where") + CountOps(fused, "Shape"), 0);
}

TEST(AttentionFusionTest, DistilBertWhereMaskWithFloatMinStatic) {
  ExpectFused({.static_shapes = true,
               .scale = "q_div",
               .mask = "where",
               .mask_value = -3.4028234663852886e+38});
}

TEST(AttentionFusionTest, NoMaskGivesNoMaskInput) {
  onnx::ModelProto fused = ExpectFused({.mask = "none"});
  onnx::ModelProto copy;
  std::unique_ptr<ir::Graph> g;
  const ir::Node* attention = OnlyAttention(fused, g, copy);
  ASSERT_NE(attention, nullptr);
  EXPECT_EQ(attention->num_inputs(), 3);
}

TEST(AttentionFusionTest, RawMaskOption) {
  onnx::ModelProto fused = ExpectFused({}, {.use_raw_attention_mask = true});
  onnx::ModelProto copy;
  std::unique_ptr<ir::Graph> g;
  const ir::Node* attention = OnlyAttention(fused, g, copy);
  ASSERT_NE(attention, nullptr);
  EXPECT_EQ(CountOps(fused, "ReduceSum"), 0);
  const ir::Value* mask = attention->input(3);
  ASSERT_EQ(mask->producer()->op_type(), "Cast");
  EXPECT_EQ(mask->producer()->AttrInt("to"), onnx::TensorProto::INT32);
  EXPECT_EQ(mask->producer()->input(0)->name(), "attention_mask");
}

TEST(AttentionFusionTest, TwoLayersShareOneMaskIndex) {
  onnx::ModelProto fused = ExpectFused({.layers = 2});
  EXPECT_EQ(CountOps(fused, "ReduceSum"), 1);
  EXPECT_EQ(CountOps(fused, "Cast"), 1) << "one int32 cast of the mask";
  EXPECT_EQ(CountOps(fused, "Mul") + CountOps(fused, "Sub"), 0);
  fused = ExpectFused({.scale = "q_div", .mask = "where", .layers = 2});
  EXPECT_EQ(CountOps(fused, "ReduceSum"), 1);
  // One Reshape(Equal(mask, 0)) read by both layers: shared, gone with the last reader.
  fused = ExpectFused({.scale = "q_div", .mask = "where", .layers = 2, .shared_padding = true});
  EXPECT_EQ(CountOps(fused, "ReduceSum"), 1);
  EXPECT_EQ(CountOps(fused, "Reshape") + CountOps(fused, "Equal"), 0);
}

// The dynamic torch layout itself (Shape/Gather/Unsqueeze/Concat targets) fuses after the
// reshape fusion and dead-code removal, as in the pipeline.
TEST(AttentionFusionTest, DynamicTargetsThroughTheReshapeFusion) {
  Layout layout;
  std::string text = ModelText(layout);
  auto replace = [&text](const std::string& from, const std::string& to) {
    for (size_t at = text.find(from); at != std::string::npos;
         at = text.find(from, at + to.size())) {
      text.replace(at, from.size(), to);
    }
  };
  for (const char* t : {"q", "k", "v"}) {
    replace(fmt::format("{0}_split = Reshape({0}, split_target)", t),
            fmt::format(R"({0}_s0 = Shape({0})
  {0}_d0 = Gather<axis = 0>({0}_s0, zero)
  {0}_u0 = Unsqueeze<axes = [0]>({0}_d0)
  {0}_s1 = Shape({0})
  {0}_d1 = Gather<axis = 0>({0}_s1, one)
  {0}_u1 = Unsqueeze<axes = [0]>({0}_d1)
  {0}_target = Concat<axis = 0>({0}_u0, {0}_u1, heads, head_size)
  {0}_split = Reshape({0}, {0}_target))",
                        t));
  }
  replace("merged = Reshape(context_t, merge_target)", R"(c_s0 = Shape(context_t)
  c_d0 = Gather<axis = 0>(c_s0, zero)
  c_u0 = Unsqueeze<axes = [0]>(c_d0)
  c_s1 = Shape(context_t)
  c_d1 = Gather<axis = 0>(c_s1, one)
  c_u1 = Unsqueeze<axes = [0]>(c_d1)
  c_target = Concat<axis = 0>(c_u0, c_u1, hidden)
  merged = Reshape(context_t, c_target))");
  replace("int64[1] hidden = {8}",
          "int64[1] hidden = {8}, int64[1] heads = {2}, int64[1] head_size = {4}");
  const onnx::ModelProto model = WithMaskValues(ParseModel(text), layout);

  // Without the reshape fusion the Shape readers of q and the context are outside the pattern.
  testing::FusionRun alone = RunFusion(model, passes::MakeAttentionFusion());
  EXPECT_EQ(CountOps(alone.after, "Attention", "com.microsoft"), 0);
  EXPECT_NE(alone.Misses().find("also read by"), std::string::npos) << alone.Misses();

  std::vector<std::unique_ptr<passes::Pass>> list;
  list.push_back(passes::MakeReshapeFusion());
  list.push_back(passes::MakeDeadCodePass());
  list.push_back(passes::MakeAttentionFusion());
  testing::FusionRun run = testing::RunPasses(model, std::move(list));
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), 1) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "Shape") + CountOps(run.after, "Concat"), 0);
  ExpectSameOutputs(model, run.after, Dims());
}

TEST(AttentionFusionTest, PacksFloat16WeightsInFloat16) {
  // Only the packing is checked (ORT's CPU Attention is float32): the projections are re-stored
  // as float16, which the fusion must keep.
  onnx::ModelProto model = BuildModel({});
  std::map<std::string, std::vector<double>> originals;
  for (auto& init : *model.mutable_graph()->mutable_initializer()) {
    if (init.name().size() != 2 || (init.name()[0] != 'w' && init.name()[0] != 'b')) continue;
    auto values = ir::DecodeAsDoubles(init);
    ASSERT_TRUE(values);
    std::string raw;
    for (double v : *values) {
      const uint16_t h = ir::FloatToHalf(static_cast<float>(v));
      raw.push_back(static_cast<char>(h & 0xff));
      raw.push_back(static_cast<char>(h >> 8));
      originals[init.name()].push_back(ir::HalfToFloat(h));
    }
    init.clear_float_data();
    init.set_data_type(onnx::TensorProto::FLOAT16);
    init.set_raw_data(raw);
  }
  testing::FusionRun run = RunFusion(model, passes::MakeAttentionFusion());
  onnx::ModelProto copy;
  std::unique_ptr<ir::Graph> g;
  const ir::Node* attention = OnlyAttention(run.after, g, copy);
  ASSERT_NE(attention, nullptr) << run.Misses();
  const onnx::TensorProto* weight = g->ConstantTensor(attention->input(1));
  const onnx::TensorProto* bias = g->ConstantTensor(attention->input(2));
  ASSERT_TRUE(weight && bias);
  EXPECT_EQ(weight->data_type(), onnx::TensorProto::FLOAT16);
  EXPECT_EQ(bias->data_type(), onnx::TensorProto::FLOAT16);
  auto packed = *ir::DecodeAsDoubles(*weight);
  // Row r of the packed weight is [Wq[r], Wk[r], Wv[r]].
  for (int r = 0; r < 8; ++r) {
    for (int c = 0; c < 24; ++c) {
      const std::string source = c < 8 ? "wq" : c < 16 ? "wk" : "wv";
      EXPECT_EQ(packed[r * 24 + c], originals[source][r * 8 + c % 8]) << r << "," << c;
    }
  }
  auto packed_bias = *ir::DecodeAsDoubles(*bias);
  EXPECT_EQ(packed_bias[9], originals["bk"][1]);
}

// keras2onnx (3.6) and tf2onnx with Keras 3 (tests/models/tf2onnx/LAYOUT.md): the (B, 1, 1, S)
// mask goes through a Slice that keeps every axis whole, int64 ends INT64_MAX or int32 ends 10^9.
constexpr const char* kWholeSliceInt64 =
    "int64[4] slice_starts = {0, 0, 0, 0}, int64[4] slice_axes = {0, 1, 2, 3}, "
    "int64[4] slice_steps = {1, 1, 1, 1}, int64[4] slice_ends = {9223372036854775807, "
    "9223372036854775807, 9223372036854775807, 9223372036854775807}";
constexpr const char* kWholeSliceInt32 =
    "int32[4] slice_starts = {0, 0, 0, 0}, int32[4] slice_axes = {0, 1, 2, 3}, "
    "int32[4] slice_steps = {1, 1, 1, 1}, int32[4] slice_ends = {1000000000, 1000000000, "
    "1000000000, 1000000000}";

TEST(AttentionFusionTest, KerasMaskThroughAWholeAxisSlice) {
  for (const char* slice : {kWholeSliceInt64, kWholeSliceInt32}) {
    SCOPED_TRACE(slice);
    onnx::ModelProto fused = ExpectFused({.one_unsqueeze = true, .mask_slice = slice});
    EXPECT_EQ(CountOps(fused, "Slice") + CountOps(fused, "Sub"), 0) << "the mask chain is gone";
    onnx::ModelProto copy;
    std::unique_ptr<ir::Graph> g;
    const ir::Node* attention = OnlyAttention(fused, g, copy);
    ASSERT_NE(attention, nullptr);
    ASSERT_EQ(attention->num_inputs(), 4);
    const ir::Node* index = attention->input(3)->producer();
    ASSERT_EQ(index->op_type(), "ReduceSum");
    ASSERT_EQ(index->input(0)->producer()->op_type(), "Cast");
    EXPECT_EQ(index->input(0)->producer()->input(0)->name(), "attention_mask");
  }
}

// tf2onnx (4.3): no mask input; the mask is input_ids != 0, cast to int64 and then int32.
constexpr const char* kIdsNotZero = R"(  is_padding = Equal(input_ids, zero)
  is_token = Not(is_padding)
  token64 = Cast<to = 7>(is_token)
  computed_mask = Cast<to = 6>(token64)
)";

// Ids in [0, 4), so zeros (padding) anywhere in a row.
testing::ParityOptions IdsWithZeros() {
  testing::ParityOptions parity = Dims();
  parity.int_high = {{"input_ids", 4}};
  return parity;
}

TEST(AttentionFusionTest, MaskComputedFromIdsWithoutAMaskInput) {
  // The raw mask: Attention masks exactly the zeros of each row, wherever they are. (The default
  // mask index counts a row's tokens, which assumes right padding, as for a mask input.)
  onnx::ModelProto fused = ExpectFused({.one_unsqueeze = true, .mask_nodes = kIdsNotZero},
                                       {.use_raw_attention_mask = true}, IdsWithZeros());
  onnx::ModelProto copy;
  std::unique_ptr<ir::Graph> g;
  const ir::Node* attention = OnlyAttention(fused, g, copy);
  ASSERT_NE(attention, nullptr);
  ASSERT_EQ(attention->num_inputs(), 4);
  const ir::Node* cast = attention->input(3)->producer();
  ASSERT_EQ(cast->op_type(), "Cast");
  EXPECT_EQ(cast->AttrInt("to"), onnx::TensorProto::INT32);
  EXPECT_EQ(cast->input(0)->name(), "is_token") << "the bool mask, the Casts after it are dead";

  // The mask index of the same mask.
  const onnx::ModelProto model = BuildModel({.one_unsqueeze = true, .mask_nodes = kIdsNotZero});
  testing::FusionRun run = RunFusion(model, passes::MakeAttentionFusion());
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), 1) << run.Misses();
  EXPECT_EQ(CountOps(run.after, "ReduceSum"), 1);
}

// tf2onnx 1.6 (4.3, 4.4): a 2-D encoder. x = Reshape(embedded, [-1, H]) is (B·S, H); B and S are
// read in int32 off the 3-D embedding's Shape; Q, K and V share one split target
// Cast(Concat(B, S, N, Hd)), the merge target is Cast(Concat(B·S, H)); the mask is input_ids != 0
// reshaped to (B, 1, S) before its Unsqueeze. With `k_pieces`, K is split by a target of its own,
// Cast(Concat(k_pieces)).
std::string FlatEncoderText(const std::string& k_pieces = "") {
  const std::string k_target_nodes =
      k_pieces.empty()
          ? ""
          : fmt::format("  k32 = Concat<axis = 0>({})\n  k_target = Cast<to = 7>(k32)\n", k_pieces);
  return fmt::format(R"(
<ir_version: 6, opset_import: ["" : 11]>
tf2onnx (float[B, S, 8] embedded, int64[B, S] input_ids) => (float[B, S, 8] y)
<float[8, 8] wq = {{{0}}}, float[8] bq = {{{1}}}, float[8, 8] wk = {{{2}}}, float[8] bk = {{{3}}},
 float[8, 8] wv = {{{4}}}, float[8] bv = {{{5}}}, float[8, 8] wo = {{{6}}},
 int64[2] flat_shape = {{-1, 8}}, int64[1] zero_1d = {{0}}, int64[1] one_1d = {{1}},
 int64[1] two_1d = {{2}}, int32[1] heads = {{2}}, int32[1] head_size = {{4}},
 int32[1] hidden = {{8}}, int32[1] one32 = {{1}}, int64 zero = {{0}}, float one = {{1.0}},
 float mask_value = {{-10000.0}}, float inv_sqrt_head_size = {{0.5}}>
{{
  shape = Shape(embedded)
  shape32 = Cast<to = 6>(shape)
  batch_1d = Slice(shape32, zero_1d, one_1d, zero_1d)
  batch = Squeeze<axes = [0]>(batch_1d)
  seq_1d = Slice(shape32, one_1d, two_1d, zero_1d)
  seq = Squeeze<axes = [0]>(seq_1d)
  batch_u = Unsqueeze<axes = [0]>(batch)
  seq_u = Unsqueeze<axes = [0]>(seq)
  split32 = Concat<axis = 0>(batch_u, seq_u, heads, head_size)
  split_target = Cast<to = 7>(split32)
  tokens = Mul(batch, seq)
  tokens_u = Unsqueeze<axes = [0]>(tokens)
  merge32 = Concat<axis = 0>(tokens_u, hidden)
  merge_target = Cast<to = 7>(merge32)
  out32 = Concat<axis = 0>(batch_u, seq_u, hidden)
  out_target = Cast<to = 7>(out32)
  mask32 = Concat<axis = 0>(batch_u, one32, seq_u)
  mask_target = Cast<to = 7>(mask32)
  is_padding = Equal(input_ids, zero)
  is_token = Not(is_padding)
  token64 = Cast<to = 7>(is_token)
  token32 = Cast<to = 6>(token64)
  token_float = Cast<to = 1>(token32)
  mask_3d = Reshape(token_float, mask_target)
  mask_4d = Unsqueeze<axes = [1]>(mask_3d)
  inverted = Sub(one, mask_4d)
  mask_term = Mul(inverted, mask_value)
  x = Reshape(embedded, flat_shape)
  q_mm = MatMul(x, wq)
  q = Add(q_mm, bq)
  q_split = Reshape(q, split_target)
  k_mm = MatMul(x, wk)
  k = Add(k_mm, bk)
{8}  k_split = Reshape(k, {7})
  v_mm = MatMul(x, wv)
  v = Add(v_mm, bv)
  v_split = Reshape(v, split_target)
  q_heads = Transpose<perm = [0, 2, 1, 3]>(q_split)
  k_heads_t = Transpose<perm = [0, 2, 3, 1]>(k_split)
  v_heads = Transpose<perm = [0, 2, 1, 3]>(v_split)
  qk = MatMul(q_heads, k_heads_t)
  scores = Mul(qk, inv_sqrt_head_size)
  masked = Add(scores, mask_term)
  probs = Softmax<axis = 3>(masked)
  context = MatMul(probs, v_heads)
  context_t = Transpose<perm = [0, 2, 1, 3]>(context)
  merged = Reshape(context_t, merge_target)
  dense = MatMul(merged, wo)
  layer_out = Add(dense, x)
  y = Reshape(layer_out, out_target)
}}
)",
                     Floats(64, 1), Floats(8, 2), Floats(64, 3), Floats(8, 4), Floats(64, 5),
                     Floats(8, 6), Floats(64, 7), k_pieces.empty() ? "split_target" : "k_target",
                     k_target_nodes);
}

TEST(AttentionFusionTest, Tf2onnxTwoDimensionalEncoder) {
  const onnx::ModelProto model = ParseModel(FlatEncoderText());
  onnx::ModelProto fused =
      ExpectFusedModel(model, 1, {.use_raw_attention_mask = true}, IdsWithZeros());
  // x, Attention's (B, S, H) view of it, Attention's output back to (B·S, H), y.
  EXPECT_EQ(CountOps(fused, "Reshape"), 4);
  onnx::ModelProto copy;
  std::unique_ptr<ir::Graph> g;
  const ir::Node* attention = OnlyAttention(fused, g, copy);
  ASSERT_NE(attention, nullptr);
  EXPECT_EQ(attention->AttrInt("num_heads"), 2);
  EXPECT_FALSE(attention->Attr("scale")) << "0.5 = 1/sqrt(Hd)";
  const ir::Node* before = attention->input(0)->producer();
  ASSERT_NE(before, nullptr);
  EXPECT_EQ(before->op_type(), "Reshape");
  EXPECT_EQ(before->input(0)->name(), "x");
  ASSERT_EQ(attention->output(0)->uses().size(), 1u);
  const ir::Node* after = attention->output(0)->uses()[0].node;
  EXPECT_EQ(after->op_type(), "Reshape");
  EXPECT_EQ(after->output(0)->name(), "merged") << "takes over the merge Reshape's output";
  ASSERT_EQ(attention->num_inputs(), 4);
  EXPECT_EQ(attention->input(3)->producer()->input(0)->name(), "is_token");

  // With the default mask index the same graph fuses the same way (parity needs right padding).
  testing::FusionRun run = RunFusion(model, passes::MakeAttentionFusion());
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), 1) << run.Misses();
}

// K split by a target of its own whose entries are provably Q's (B, S, N, Hd).
TEST(AttentionFusionTest, Tf2onnxTwoDimensionalEncoderKeySplitByAnEqualTarget) {
  ExpectFusedModel(ParseModel(FlatEncoderText("batch_u, seq_u, heads, head_size")), 1,
                   {.use_raw_attention_mask = true}, IdsWithZeros());
}

// --- Must-not-fuse (5.2): nothing fuses and the reason names the cause. -----------------------

void ExpectMiss(const Layout& layout, const std::string& reason) {
  const onnx::ModelProto model = BuildModel(layout);
  testing::FusionRun run = RunFusion(model, passes::MakeAttentionFusion());
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), 0);
  EXPECT_EQ(CountOps(run.after, "Softmax"), layout.layers);
  EXPECT_NE(run.Misses().find(reason), std::string::npos) << run.Misses();
}

TEST(AttentionFusionTest, ProjectionsOfDifferentInputsMiss) {
  ExpectMiss({.key_input = "x2"}, "'x' must be one value");
}

TEST(AttentionFusionTest, NonConstantWeightMisses) {
  ExpectMiss({.weight_is_input = true}, "'wq' is not a constant");
}

TEST(AttentionFusionTest, KeyWithWrongPermMisses) {
  ExpectMiss({.key_perm = "0, 2, 1, 3"}, "perm is [0,2,1,3], expected [0,2,3,1]");
}

TEST(AttentionFusionTest, SoftmaxOverAnotherAxisMisses) {
  ExpectMiss({.softmax_axis = 2}, "Softmax axis 2 is not the last axis");
  // Below opset 13 a Softmax without the attribute flattens from axis 1.
  onnx::ModelProto model = BuildModel({});
  for (auto& node : *model.mutable_graph()->mutable_node()) {
    if (node.op_type() == "Softmax") node.clear_attribute();
  }
  testing::FusionRun run = RunFusion(model, passes::MakeAttentionFusion());
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), 0);
  EXPECT_NE(run.Misses().find("Softmax axis 1"), std::string::npos) << run.Misses();
}

TEST(AttentionFusionTest, SubConstantOtherThanOneMisses) {
  ExpectMiss({.sub_value = 2.0}, "is 2, expected 1");
}

TEST(AttentionFusionTest, PositiveMaskMultiplierMisses) {
  ExpectMiss({.mask_value = 10000},
             "the mask multiplier 'mask_value' is 10000, not a finite negative scalar");
}

TEST(AttentionFusionTest, MildWhereFillMisses) {
  ExpectMiss({.scale = "q_div", .mask = "where", .mask_value = -5}, "fill value is not");
}

TEST(AttentionFusionTest, HeadsTimesHeadSizeNotHiddenMisses) {
  ExpectMiss({.split_target = "0, 0, 2, 3"}, "into 2 heads of 3, which is not 8");
}

TEST(AttentionFusionTest, StaticTargetOnDynamicInputMisses) {
  ExpectMiss({.split_target = "2, 5, 2, 4"}, "entry 0 is 2, which is not provably the batch size");
}

TEST(AttentionFusionTest, IntermediateReadOutsideMisses) {
  ExpectMiss({.extra_nodes = "  q_again = Neg(q)\n", .extra_outputs = ", float[B, S, 8] q_again"},
             "'q' (output of");
}

TEST(AttentionFusionTest, IntermediateThatIsAGraphOutputMisses) {
  ExpectMiss({.extra_outputs = ", float[B, 2, S, S] scores"}, "is a graph output");
}

// transformers 4.3x+ (torch 2.x exports): Where(Cast(1 - mask, bool), float32 min, 1 - mask), the
// float mask first expanded along the query axis.
TEST(AttentionFusionTest, MaskedFillOfTheInvertedMaskExpandedAlongTheQueries) {
  for (bool expand : {false, true}) {
    onnx::ModelProto fused = ExpectFused(
        {.mask_value = -3.4028234663852886e+38, .masked_fill = true, .expand_mask = expand});
    EXPECT_EQ(CountOps(fused, "Where"), 0) << "expand " << expand;
  }
}

// transformers 4.5x+ (torch 2.x exports): the [B, 1, S, S] keep-mask is built by index arithmetic,
// Gather of the flattened mask at b·S + k (TorchScript) or GatherND of (b, k) pairs (dynamo),
// And-ed with always-true terms, then Where(keep, 0, fill): float32 min (eager) or -inf (sdpa),
// which Attention gets as float32 lowest.
TEST(AttentionFusionTest, IndexBuiltMaskOfBothExporters) {
  for (const std::string form : {"torchscript", "dynamo"}) {
    for (double fill : {-3.4028234663852886e+38, -std::numeric_limits<double>::infinity()}) {
      SCOPED_TRACE(fmt::format("{} fill {}", form, fill));
      onnx::ModelProto fused = ExpectFused(
          {.opset = 14, .mask = "index", .mask_value = fill, .layers = 2, .index_form = form});
      EXPECT_EQ(CountOps(fused, "Where") + CountOps(fused, "Gather") + CountOps(fused, "GatherND"),
                0)
          << "the mask arithmetic goes with the last layer";
      onnx::ModelProto copy;
      std::unique_ptr<ir::Graph> g;
      EXPECT_EQ(FloatAttr(OnlyAttention(fused, g, copy), "mask_filter_value"),
                std::numeric_limits<float>::lowest());
    }
  }
}

TEST(AttentionFusionTest, IndexBuiltMaskThatIsNotMaskAtBatchAndKeyMisses) {
  ExpectMiss({.opset = 14, .mask = "index", .index_form = "no_mul"},
             "the row index is not b·S + k");
  ExpectMiss({.opset = 14, .mask = "index", .index_form = "swapped"}, "the pairs are not (b, k)");
  ExpectMiss({.opset = 14, .mask = "index", .index_form = "ge_one"}, "is not always true");
}

// scaled_dot_product_attention as torch 2.x exports it: √scale on Q and on Kᵀ, Kᵀ through
// dynamo's [-1, S, Hd] reshapes, the NaN guard after the Softmax, a no-op Reshape of the context,
// and transformers 5's head split view(B, S, -1, Hd).
TEST(AttentionFusionTest, ScaledDotProductAttention) {
  for (bool flat_key : {false, true}) {
    SCOPED_TRACE(flat_key);
    onnx::ModelProto fused = ExpectFused({.opset = 14,
                                          .scale = "split",
                                          .mask = "index",
                                          .mask_value = -std::numeric_limits<double>::infinity(),
                                          .split_target = "0, 0, -1, 4",
                                          .index_form = "dynamo",
                                          .nan_guard = true,
                                          .context_target = "0, -1, 0, 4",
                                          .key_flat_transpose = flat_key});
    onnx::ModelProto copy;
    std::unique_ptr<ir::Graph> g;
    const ir::Node* attention = OnlyAttention(fused, g, copy);
    ASSERT_NE(attention, nullptr);
    EXPECT_EQ(attention->AttrInt("num_heads"), 2) << "N inferred from -1: 8 / 4";
    EXPECT_FALSE(attention->Attr("scale")) << "0.7071² = 1/√4, the default";
    EXPECT_EQ(CountOps(fused, "IsNaN") + CountOps(fused, "Reshape"), 0);
  }
}

TEST(AttentionFusionTest, KeyReshapedNotTransposedMisses) {
  ExpectMiss({.opset = 14, .key_flat_transpose = true, .key_flat_wrong = true},
             "the K reshapes are not [-1, S, Hd] then [B, N, Hd, S]");
}

TEST(AttentionFusionTest, ContextReshapeThatMovesDataMisses) {
  ExpectMiss({.opset = 14, .context_target = "0, 4, -1, 2"}, "is not provably a no-op");
}

// A masked_fill whose value is taken where the mask is 1 (the condition not inverted) is another
// mask: not fused.
TEST(AttentionFusionTest, MaskedFillOfTheMaskItselfMisses) {
  onnx::ModelProto model = BuildModel({.masked_fill = true});
  for (auto& node : *model.mutable_graph()->mutable_node()) {
    if (node.op_type() == "Cast" && node.output(0) == "filled") node.set_input(0, "mask_float");
  }
  testing::FusionRun run = RunFusion(model, passes::MakeAttentionFusion());
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), 0) << run.Misses();
}

TEST(AttentionFusionTest, MaskThatIsNotAGraphInputMisses) {
  onnx::ModelProto model = BuildModel({.extra_nodes = "  mask_abs = Abs(attention_mask)\n"});
  for (auto& node : *model.mutable_graph()->mutable_node()) {
    if (node.op_type() == "Unsqueeze" && node.input(0) == "attention_mask")
      node.set_input(0, "mask_abs");
  }
  testing::FusionRun run = RunFusion(model, passes::MakeAttentionFusion());
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), 0);
  EXPECT_NE(run.Misses().find("of a 2-D integer graph input or a 0/1 (bool) mask"),
            std::string::npos)
      << run.Misses();
}

// A Slice that keeps 3 of the S mask columns: the term is not the mask Attention would read.
TEST(AttentionFusionTest, MaskSliceThatTruncatesTheSequenceMisses) {
  ExpectMiss({.one_unsqueeze = true,
              .mask_slice = "int64[4] slice_starts = {0, 0, 0, 0}, int64[4] slice_axes = {0, 1, 2, "
                            "3}, int64[4] slice_steps = {1, 1, 1, 1}, int64[4] slice_ends = "
                            "{9223372036854775807, 9223372036854775807, 9223372036854775807, 3}"},
             "not provably the mask 'attention_mask'");
}

// |ids| is an integer (B, S) value, but not a 0/1 mask.
TEST(AttentionFusionTest, ComputedMaskThatIsNotZeroOneMisses) {
  ExpectMiss({.one_unsqueeze = true,
              .mask_nodes = "  magnitude = Abs(input_ids)\n"
                            "  computed_mask = Cast<to = 6>(magnitude)\n"},
             "of a 2-D integer graph input or a 0/1 (bool) mask");
}

// K split by (S, B, N, Hd): not provably the (B, S) Q is split by.
TEST(AttentionFusionTest, Tf2onnxKeySplitByAnotherBatchAndSequenceMisses) {
  const onnx::ModelProto model = ParseModel(FlatEncoderText("seq_u, batch_u, heads, head_size"));
  testing::FusionRun run = RunFusion(model, passes::MakeAttentionFusion());
  EXPECT_EQ(CountOps(run.after, "Attention", "com.microsoft"), 0);
  EXPECT_EQ(CountOps(run.after, "Softmax"), 1);
  EXPECT_EQ(run.after.graph().node_size(), model.graph().node_size());
  EXPECT_NE(run.Misses().find("entry 0 is not provably Q's"), std::string::npos) << run.Misses();
}

TEST(AttentionFusionTest, NumHeadsOrHiddenSizeThatContradictTheGraphIsAnError) {
  const onnx::ModelProto model = BuildModel({});
  for (const auto& [options, message] : std::vector<std::pair<passes::PassOptions, std::string>>{
           {{.num_heads = 8}, "--num_heads 8 does not match the graph: the head-split Reshape at"},
           {{.hidden_size = 16}, "--hidden_size 16 does not match the graph"}}) {
    onnx::ModelProto copy = model;
    passes::Pipeline pipeline;
    pipeline.push_back(passes::MakeAttentionFusion());
    auto stats = passes::RunPipeline(copy, pipeline, options);
    ASSERT_FALSE(stats.ok());
    EXPECT_EQ(stats.status().code(), StatusCode::kFailedPrecondition);
    EXPECT_NE(stats.status().message().find(message), std::string::npos)
        << stats.status().message();
  }
  // Matching values are fine.
  ExpectFused({}, {.num_heads = 2, .hidden_size = 8});
}

}  // namespace
}  // namespace bertopt
