// Self-attention -> com.microsoft Attention (exporter-layouts 1.3, 2.4, 2.6, 2.7, 2.10).
//
//   x ─┬► Q = x·Wq+bq ─► split heads ────┐
//      ├► K = x·Wk+bk ─► split heads, ᵀ ─┴► Softmax(Q·Kᵀ/√Hd + mask_term) = probs
//      ├► V = x·Wv+bv ─► split heads ──────► MatMul(probs, V) ─► merge heads ─► out
//      └► (residual: x is read, not replaced)
//   =>
//   x ─► Attention(x, [Wq|Wk|Wv], [bq|bk|bv], mask_index) num_heads=N ─► out
//
// Node by node (torch 1.13 after the reshape fusion):
//   q    = Transpose[0,2,1,3](Reshape(Add(bq, MatMul(x, Wq)), {0,0,N,Hd}))
//   kt   = Transpose[0,2,3,1](Reshape(Add(bk, MatMul(x, Wk)), {0,0,N,Hd}))
//   v    = Transpose[0,2,1,3](Reshape(Add(bv, MatMul(x, Wv)), {0,0,N,Hd}))
//   p    = Softmax(Add(Div(MatMul(q, kt), √Hd), mask_term))           axis: the last
//   out  = Reshape(Transpose[0,2,1,3](MatMul(p, v)), {0,0,H})
//   mask_term = Mul(Sub(1, Cast(Unsqueeze(Unsqueeze(mask, [1]), [2]), to=float)), -10000): one
//   value read by every layer, matched as shared, dead once the last layer is fused.
//   mask_index = GetOrCreateAttentionMask(mask): ReduceSum of the int32 mask (right padding), or
//   the raw (B, S) int32 mask with --use_raw_attention_mask.
//
// Variants: static targets {B,S,N,Hd} / {B,S,H} (2.7); DistilBERT's {0,-1,N,Hd} and {B,-1,H}
// with B read from Shape(x) (2.10); K transposed by [0,2,3,1] or by [0,2,1,3] then [0,1,3,2];
// the scale as Div(scores, √Hd), Mul(scores, 1/√Hd), on Q before Q·Kᵀ, or absent (`scale` when
// it is not 1/√Hd); no bias Add (zeros); any negative mask multiplier (`mask_filter_value` when
// not -10000); DistilBERT's Where(Cast(Expand(Reshape(Equal(mask, 0), {B,1,1,S}), Shape(scores))),
// fill, scores) with fill -inf (as float32 lowest: the same probabilities unless a row is fully
// masked, where -inf gives NaN and Attention uniform weights) or any fill <= -10000; no mask.
//
// Deliberately not handled: 2-D encoders (tf2onnx), projections through 2-D Reshapes (keras),
// unequal Q/K/V sizes (qkv_hidden_sizes), causal masks, past state, masks that are not a 2-D
// graph input (through an optional Cast), scales that are not constants.
#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <string>
#include <vector>

#include "bertopt/ir/tensor.h"
#include "bertopt/pattern/pattern.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "passes/fusions/fusions.h"
#include "passes/fusions/int32_inputs.h"
#include "passes/key_mask.h"
#include "passes/symbolic_dims.h"

namespace bertopt::passes {
namespace {

using pattern::Any;
using pattern::Const;
using pattern::Match;
using pattern::OneOf;
using pattern::Op;
using pattern::Optional;
using pattern::P;
using pattern::Scalar;

// ORT's Attention adds this to masked scores unless told otherwise.
constexpr double kDefaultMaskFilter = -10000.0;

// --- The pattern -------------------------------------------------------------------------------

std::string NormalizedAxesCheck(const ir::Graph& graph, const ir::Node& node, int output_rank,
                                const std::vector<int64_t>& expected) {
  std::optional<std::vector<int64_t>> axes = node.AttrInts("axes");
  if (!axes && node.num_inputs() >= 2) axes = graph.ConstantAsInts(node.input(1));
  if (!axes) return "axes are not constant";
  std::vector<int64_t> normalized;
  for (int64_t a : *axes) normalized.push_back(a < 0 ? a + output_rank : a);
  std::sort(normalized.begin(), normalized.end());
  if (normalized != expected) {
    return fmt::format("unsqueezes axes {}, expected {}", fmt::join(*axes, ","),
                       fmt::join(expected, ","));
  }
  return {};
}

P UnsqueezeAxes(P input, int output_rank, std::vector<int64_t> axes, std::string_view bind) {
  return Op("Unsqueeze", {std::move(input)}, bind)
      .Where([output_rank, axes = std::move(axes)](const ir::Graph& g, const ir::Node& n,
                                                   const Match&) {
        return NormalizedAxesCheck(g, n, output_rank, axes);
      });
}

P Transpose(P input, std::vector<int64_t> perm, std::string_view bind = {}) {
  return Op("Transpose", {std::move(input)}, bind)
      .Where([perm = std::move(perm)](const ir::Graph&, const ir::Node& n,
                                      const Match&) -> std::string {
        auto actual = n.AttrInts("perm");
        if (actual == perm) return {};
        return fmt::format("perm is [{}], expected [{}]",
                           actual ? fmt::format("{}", fmt::join(*actual, ",")) : "reversed",
                           fmt::join(perm, ","));
      });
}

P CastTo(P input, std::vector<int64_t> types, std::string_view bind = {}) {
  return Op("Cast", {std::move(input)}, bind)
      .Where([types = std::move(types)](const ir::Graph&, const ir::Node& n,
                                        const Match&) -> std::string {
        const int64_t to = n.AttrInt("to").value_or(0);
        if (std::find(types.begin(), types.end(), to) != types.end()) return {};
        return fmt::format("casts to type {}, expected one of {}", to, fmt::join(types, ","));
      });
}

// The (B, S) mask the graph was given, possibly through a Cast.
P MaskInput() { return Optional(Op("Cast", {Any("mask")}), Any("mask")); }

// (1 - float(mask[:, None, None, :])) * filter: 0 for tokens, `filter` for padding (2.4, 3.6, 4.3).
// How the float (B, 1, 1, S) term is made from the (B, S) mask differs by exporter (torch: two
// Unsqueezes then a Cast; keras2onnx: Unsqueeze [1,2], a whole-axis Slice, a Cast; tf2onnx: a Cast,
// a Reshape to [B, 1, S], an Unsqueeze): TraceMask reads it after the match.
// transformers 4.3x+ writes the term as inverted.masked_fill(inverted.to(bool), min): a Where that
// picks the filter where 1 - mask is non-zero, and 1 - mask (0) elsewhere.
P AdditiveMask() {
  P inverted = Op("Sub", {Scalar(1.0), Any("mask_float")}, "inverted");
  return OneOf({
      Op("Mul", {inverted, Const("mask_filter")}, "mask_term").Commutative().Shared(),
      Op("Where", {CastTo(inverted, {onnx::TensorProto::BOOL}), Const("mask_filter"), inverted},
         "mask_term")
          .Shared(),
      // transformers 4.5x+: a boolean [B, 1, Q, S] "keep" mask selects 0 or the filter.
      Op("Where", {Any("mask_cond"), Scalar(0.0), Const("mask_filter")}, "mask_term").Shared(),
  });
}

// DistilBERT (2.10): Cast(Expand(Reshape(Equal(mask, 0), {B,1,1,S}), Shape(scores)), to=bool).
// Equal and Reshape depend on the mask only and may serve several layers (torch 1.13 shares the
// Equal): they are read, not replaced. The Expand reads this layer's scores, so it, its Shape and
// the Cast go with the fusion.
P PaddingCondition() {
  P is_padding = Op("Equal", {MaskInput(), Scalar(0.0)}, "is_padding").Commutative();
  P per_key = Op("Reshape", {is_padding, Any("mask_target")}, "mask_reshape").Shared();
  P expanded =
      Optional(Op("Expand", {per_key, Op("Shape", {Any("scores")})}, "mask_expand"), per_key);
  return Optional(CastTo(expanded, {onnx::TensorProto::BOOL}), expanded);
}

// x·W (+ b), bias at either input; Q, K and V must all read the one `x`.
P Projection(const std::string& name) {
  P matmul = Op("MatMul", {Any("x"), Const(name + "_weight")}, name + "_matmul");
  return OneOf({Op("Add", {matmul, Const(name + "_bias")}).Commutative(), matmul});
}

// (B, S, H) -> (B, S, N, Hd); the target is checked after the match.
P SplitHeads(const std::string& name) {
  return Op("Reshape", {Projection(name), Any(name + "_target")}, name + "_split");
}

// A Reshape target Concat-ed of `pieces` constants or Slices of Shape(k), or any other value.
P KShapeTarget(const P& k, int pieces, std::string_view bind) {
  P slice = Op("Slice", {Op("Shape", {k})});
  std::vector<P> inputs(pieces, OneOf({slice, Const()}));
  return OneOf({Op("Concat", inputs, bind), Any(bind)});
}

const P& AttentionPattern() {
  static const P kPattern = [] {
    P q_heads = Transpose(SplitHeads("q"), {0, 2, 1, 3});
    P k_heads = Transpose(SplitHeads("k"), {0, 2, 1, 3}, "k_heads");
    P k_heads_transposed = OneOf({
        Transpose(SplitHeads("k"), {0, 2, 3, 1}),
        Transpose(k_heads, {0, 1, 3, 2}),
        // torch 2.x dynamo (sdpa): [B, N, S, Hd] -> [B·N, S, Hd] -> [B·N, Hd, S] -> [B, N, Hd, S],
        // the targets made of Slices of Shape(K) (their values are checked after the match).
        Op("Reshape",
           {Transpose(Op("Reshape", {k_heads, KShapeTarget(k_heads, 3, "k_flat_target")}, "k_flat"),
                      {0, 2, 1}),
            KShapeTarget(k_heads, 3, "k_unflat_target")},
           "k_unflat"),
    });
    P v_heads = Transpose(SplitHeads("v"), {0, 2, 1, 3});
    // "scores" names the value entering the mask, whichever node computes it.
    P qk = Op("MatMul", {q_heads, k_heads_transposed}, "qk");
    P scores = OneOf({
        Op("Div", {qk, Const("scale_divisor")}, "scores"),
        Op("Mul", {qk, Const("scale_factor")}, "scores").Commutative(),
        Op("MatMul", {Op("Div", {q_heads, Const("scale_divisor")}), k_heads_transposed}, "scores"),
        Op("MatMul",
           {Op("Mul", {q_heads, Const("scale_factor")}).Commutative(), k_heads_transposed},
           "scores"),
        // scaled_dot_product_attention: √scale on each side.
        Op("MatMul",
           {Op("Mul", {q_heads, Const("q_scale")}).Commutative(),
            Op("Mul", {k_heads_transposed, Const("k_scale")}).Commutative()},
           "scores"),
        qk.Bind("scores"),
    });
    P masked = OneOf({
        Op("Add", {scores, AdditiveMask()}).Commutative(),
        Op("Where", {PaddingCondition(), Const("fill"), scores}, "where"),
        scores,
    });
    P softmax = Op("Softmax", {masked}, "softmax");
    // scaled_dot_product_attention's NaN guard: rows that were all -inf become zeros.
    P probs = OneOf({
        Op("Where", {Op("IsNaN", {softmax}), Scalar(0.0), softmax}, "nan_guard"),
        softmax,
    });
    P product = Op("MatMul", {probs, v_heads}, "context");
    // TorchScript sdpa: a Reshape of the context to its own shape ([B, -1, S, Hd]).
    P context =
        OneOf({Op("Reshape", {product, Any("context_target")}, "context_reshape"), product});
    return Op("Reshape", {Transpose(context, {0, 2, 1, 3}), Any("merge_target")}, "merge");
  }();
  return kPattern;
}

// --- Checks the pattern cannot express -------------------------------------------------------

// What a Reshape target entry says about the output dimension at its position.
struct Entry {
  enum Kind { kConstant, kDimension } kind = kConstant;
  int64_t value = 0;  // kConstant: the entry (0 copies, -1 infers), or a known dimension read
  Dim dim;            // kDimension: the symbolic dimension it reads
};

// The entries of a Reshape target, every one known: a constant, or shape arithmetic the
// symbolic dims read (Concat of dimension reads, Shape(x, start, end), ...).
std::optional<std::vector<Entry>> TargetEntries(const ir::Value* target, SymbolicDims& dims) {
  const std::optional<SymbolicDims::Elements> elements = dims.ElementsOf(target);
  if (!elements) return std::nullopt;
  std::vector<Entry> entries;
  for (const std::optional<Dim>& e : *elements) {
    if (!e) return std::nullopt;
    if (SymbolicDims::IsInfer(e)) {
      entries.push_back({.kind = Entry::kConstant, .value = -1, .dim = {}});
    } else if (e->known()) {
      entries.push_back({.kind = Entry::kConstant, .value = e->size, .dim = {}});
    } else {
      entries.push_back({.kind = Entry::kDimension, .value = 0, .dim = *e});
    }
  }
  return entries;
}

// Checks that the leading entries of a target give (B, S) of `x` for an input whose leading
// dimensions are (B, S): 0 copies them, one -1 is inferred when everything else is pinned
// (checked by the caller through `inferred`), a size must equal x's static size, a dimension read
// must provably be x's.
std::string CheckBatchAndSequence(const std::vector<Entry>& entries, const ir::Value* x,
                                  const std::vector<int64_t>& x_dims, bool allowzero,
                                  SymbolicDims& dims, int& inferred) {
  for (int d = 0; d < 2; ++d) {
    const Entry& e = entries[d];
    const char* what = d == 0 ? "batch" : "sequence";
    if (e.kind == Entry::kDimension) {
      if (dims.At(x, d) == e.dim) continue;
      return fmt::format("entry {} is {}, which is not provably the {} size of '{}'", d,
                         ToString({e.dim}), what, x->name());
    }
    if (e.value == 0 && !allowzero) continue;
    if (e.value == -1) {
      ++inferred;
      continue;
    }
    if (e.value > 0 && x_dims[d] == e.value) continue;
    return fmt::format("entry {} is {}, which is not provably the {} size of '{}' ({})", d, e.value,
                       what, x->name(), x_dims[d] < 0 ? "dynamic" : std::to_string(x_dims[d]));
  }
  return {};
}

struct HeadSplit {
  int64_t heads = 0;
  int64_t head_size = 0;
  std::string reason;  // why the target is not {B, S, N, Hd}
};

// The head split target: {B, S, N, Hd} in any of the forms above; N may be -1 (transformers 5's
// view(B, S, -1, Hd)) when B and S are pinned.
HeadSplit ReadSplitTarget(const ir::Node& split, const ir::Value* x,
                          const std::vector<int64_t>& x_dims, SymbolicDims& dims, int64_t hidden) {
  auto entries = TargetEntries(split.input(1), dims);
  if (!entries) {
    return {.reason =
                fmt::format("{}: the target's entries are not all known", split.DisplayName())};
  }
  if (entries->size() != 4) {
    return {.reason = fmt::format("{}: the target has {} entries, expected 4 (B, S, N, Hd)",
                                  split.DisplayName(), entries->size())};
  }
  int inferred = 0;
  const bool allowzero = split.AttrInt("allowzero").value_or(0) != 0;
  std::string why = CheckBatchAndSequence(*entries, x, x_dims, allowzero, dims, inferred);
  if (!why.empty()) return {.reason = fmt::format("{}: {}", split.DisplayName(), why)};
  const Entry& n = (*entries)[2];
  const Entry& hd = (*entries)[3];
  if (n.kind != Entry::kConstant || hd.kind != Entry::kConstant ||
      (n.value <= 0 && n.value != -1) || hd.value <= 0) {
    return {.reason = fmt::format("{}: the head count and head size are not positive constants",
                                  split.DisplayName())};
  }
  int64_t heads = n.value;
  if (heads == -1) {
    ++inferred;
    if (hidden % hd.value != 0) {
      return {.reason = fmt::format("{}: head size {} does not divide the hidden size {}",
                                    split.DisplayName(), hd.value, hidden)};
    }
    heads = hidden / hd.value;
  }
  if (inferred > 1) return {.reason = fmt::format("{}: more than one -1", split.DisplayName())};
  return {.heads = heads, .head_size = hd.value};
}

// The merge target: {B, S, H} (or -1 for H when B and S are pinned).
std::string CheckMergeTarget(const ir::Graph& graph, const ir::Node& merge, const ir::Value* x,
                             const std::vector<int64_t>& x_dims, SymbolicDims& dims,
                             int64_t hidden) {
  auto entries = TargetEntries(merge.input(1), dims);
  if (!entries || entries->size() != 3) {
    return fmt::format("{}: the target is not a 3-entry constant or Concat of dimension reads",
                       merge.DisplayName());
  }
  int inferred = 0;
  const bool allowzero = merge.AttrInt("allowzero").value_or(0) != 0;
  std::string why = CheckBatchAndSequence(*entries, x, x_dims, allowzero, dims, inferred);
  if (!why.empty()) return fmt::format("{}: {}", merge.DisplayName(), why);
  const Entry& h = (*entries)[2];
  if (h.kind != Entry::kConstant || (h.value != hidden && h.value != -1)) {
    return fmt::format("{}: the last entry is not the hidden size {}", merge.DisplayName(), hidden);
  }
  inferred += h.value == -1;
  if (inferred > 1) return fmt::format("{}: more than one -1", merge.DisplayName());
  return {};
}

// DistilBERT's Reshape(Equal(mask, 0), {B, 1, 1, S}) is mask[:, None, None, :] when the middle
// entries are 1 and the outer ones are x's batch and sequence sizes (or copy / infer the mask's).
std::string CheckPaddingTarget(const ir::Graph& graph, const ir::Node& reshape, const ir::Value* x,
                               const std::vector<int64_t>& x_dims, SymbolicDims& dims) {
  auto entries = TargetEntries(reshape.input(1), dims);
  if (!entries || entries->size() != 4) {
    return fmt::format("{}: the mask target is not a 4-entry constant or Concat",
                       reshape.DisplayName());
  }
  for (int d : {1, 2}) {
    const Entry& e = (*entries)[d];
    if (e.kind != Entry::kConstant || e.value != 1) {
      return fmt::format("{}: mask target entry {} is not 1", reshape.DisplayName(), d);
    }
  }
  // Read as (batch, sequence) = entries 0 and 3.
  std::vector<Entry> outer = {(*entries)[0], (*entries)[3]};
  int inferred = 0;
  const bool allowzero = reshape.AttrInt("allowzero").value_or(0) != 0;
  if (outer[1].kind == Entry::kConstant && outer[1].value == 0) {
    return fmt::format("{}: mask target entry 3 is 0", reshape.DisplayName());
  }
  std::string why = CheckBatchAndSequence(outer, x, x_dims, allowzero, dims, inferred);
  if (!why.empty()) return fmt::format("{}: mask {}", reshape.DisplayName(), why);
  if (inferred > 1) return fmt::format("{}: more than one -1", reshape.DisplayName());
  return {};
}

// dynamo's Kᵀ: Reshape(Transpose[0,2,1](Reshape(k, [-1, S, Hd])), [B, N, Hd, S]) of k = [B, N, S,
// Hd] merges (B, N) and splits it back in the same order, so it is k transposed by [0, 1, 3, 2].
std::string CheckFlatKTranspose(const Match& m, SymbolicDims& dims) {
  const std::optional<Dims> k = dims.Of(m["k_heads"]);
  const auto flat = dims.ElementsOf(m["k_flat_target"]);
  const auto unflat = dims.ElementsOf(m["k_unflat_target"]);
  if (!k || k->size() != 4 || !flat || flat->size() != 3 || !unflat || unflat->size() != 4) {
    return "the K transpose through [-1, S, Hd] has unknown dims";
  }
  const bool merges = (*flat)[1] == (*k)[2] && (*flat)[2] == (*k)[3];
  const bool splits = (*unflat)[0] == (*k)[0] && (*unflat)[1] == (*k)[1] &&
                      (*unflat)[2] == (*k)[3] && (*unflat)[3] == (*k)[2];
  if (!merges || !splits) {
    return fmt::format("{}: the K reshapes are not [-1, S, Hd] then [B, N, Hd, S] of K {}",
                       m.node("k_unflat")->DisplayName(), ToString(*k));
  }
  return {};
}

// The one element of a constant, for scale and mask values.
std::optional<double> ScalarOf(const ir::Graph& graph, const Match& m, std::string_view name) {
  return m.has(name) ? graph.ScalarValue(m[name]) : std::nullopt;
}

// concat(parts, axis = last) of tensors of shape `part_dims` (1-D or 2-D), all of element type
// `type`, as a new initializer. Copies bytes row by row: bit-exact for float and float16 alike.
ir::Value* ConcatLastAxis(ir::Graph& graph, const std::vector<std::string_view>& parts,
                          const std::vector<int64_t>& part_dims, int32_t type,
                          const std::string& name) {
  const int64_t rows = part_dims.size() == 2 ? part_dims[0] : 1;
  const size_t row_bytes = parts[0].size() / static_cast<size_t>(rows);
  std::string packed;
  packed.reserve(row_bytes * parts.size() * static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    for (std::string_view part : parts) packed.append(part.substr(r * row_bytes, row_bytes));
  }
  onnx::TensorProto tensor;
  tensor.set_name(graph.UniqueName(name));
  tensor.set_data_type(type);
  if (part_dims.size() == 2) tensor.add_dims(rows);
  tensor.add_dims(part_dims.back() * static_cast<int64_t>(parts.size()));
  tensor.set_raw_data(std::move(packed));
  return graph.AddInitializer(std::move(tensor));
}

struct Projections {
  // Views of the payloads where they are (raw_data, or the mapped input file), so packing copies
  // each weight once; `owned` holds the few that had to be made (typed fields, absent biases).
  std::vector<std::string_view> weights;  // Wq, Wk, Wv, each [H, H], as payload bytes
  std::vector<std::string_view> biases;   // bq, bk, bv, each [H] (zeros where absent)
  std::deque<std::string> owned;          // a deque: adding one never moves the others
  int64_t hidden = 0;
  int32_t type = 0;    // float or float16, the same for all
  std::string reason;  // why they cannot be packed
};

// A tensor's payload bytes in place, or decoded into `owned` when a typed field holds them.
std::optional<std::string_view> Payload(const onnx::TensorProto& t,
                                        std::deque<std::string>& owned) {
  if (auto view = ir::PayloadView(t)) return view;
  auto bytes = ir::PayloadBytes(t);
  if (!bytes) return std::nullopt;
  return owned.emplace_back(*std::move(bytes));
}

// The Q, K and V weights ([H, H] constants) and biases ([H] constants) of one float type.
Projections ReadProjections(const ir::Graph& graph, const Match& m) {
  Projections p;
  p.type = graph.ElementType(m["q_weight"]);
  if (p.type != onnx::TensorProto::FLOAT && p.type != onnx::TensorProto::FLOAT16) {
    return {.reason = "the Q weight is neither float nor float16"};
  }
  for (const std::string name : {"q", "k", "v"}) {
    const ir::Value* w = m[name + "_weight"];
    auto shape = graph.Shape(w);
    if (!shape || shape->size() != 2 || (*shape)[0] != (*shape)[1] ||
        (p.hidden > 0 && (*shape)[1] != p.hidden)) {
      return {.reason =
                  fmt::format("the {} weight '{}' is [{}], expected [H, H] like the others", name,
                              w->name(), shape ? fmt::format("{}", fmt::join(*shape, ",")) : "?")};
    }
    p.hidden = (*shape)[1];
    if (graph.ElementType(w) != p.type) {
      return {.reason = fmt::format("the {} weight has another element type than Q's", name)};
    }
    auto w_bytes = Payload(*graph.ConstantTensor(w), p.owned);
    if (!w_bytes)
      return {.reason = fmt::format("the {} weight '{}' cannot be read", name, w->name())};
    p.weights.push_back(*w_bytes);
    if (const ir::Value* b = m[name + "_bias"]) {
      auto b_shape = graph.Shape(b);
      if (!b_shape || *b_shape != std::vector<int64_t>{p.hidden} ||
          graph.ElementType(b) != p.type) {
        return {.reason = fmt::format("the {} bias '{}' is not a [{}] tensor of the weights' type",
                                      name, b->name(), p.hidden)};
      }
      auto b_bytes = Payload(*graph.ConstantTensor(b), p.owned);
      if (!b_bytes)
        return {.reason = fmt::format("the {} bias '{}' cannot be read", name, b->name())};
      p.biases.push_back(*b_bytes);
    } else {
      p.biases.push_back(
          p.owned.emplace_back(static_cast<size_t>(p.hidden) * ir::ElementSize(p.type), '\0'));
    }
  }
  return p;
}

struct MaskFilter {
  double value = kDefaultMaskFilter;  // what Attention adds to masked scores
  ir::Value* source = nullptr;        // the (B, S) 0/1 mask, integer or bool; null without a mask
  std::string reason;                 // why the mask cannot become Attention's
};

bool IsIntegerOrBool(int32_t type) {
  using T = onnx::TensorProto;
  return type == T::INT64 || type == T::INT32 || type == T::INT8 || type == T::UINT8 ||
         type == T::BOOL || type == T::INT16 || type == T::UINT16 || type == T::UINT32 ||
         type == T::UINT64;
}

// A bool, or Casts of one: 0 and 1 only (tf2onnx's Cast(Cast(Not(Equal(ids, 0))))).
bool IsZeroOne(const ir::Graph& graph, const ir::Value* v) {
  for (int step = 0; v && step < 8; ++step) {
    if (graph.ElementType(v) == onnx::TensorProto::BOOL) return true;
    const ir::Node* n = v->producer();
    if (!n || !n->Is("Cast")) return false;
    v = n->input(0);
  }
  return false;
}

// The (B, S) mask that the additive term's float operand is made of, through Unsqueeze / Reshape /
// Squeeze / Slice / Cast only (they keep the elements and their order): the deepest 2-D value on
// that chain that is an integer graph input (0/1 by the convention Attention shares) or provably
// 0/1 (IsZeroOne). Then the operand must provably be that mask shaped [b, 1, 1, s]:
// mask[:, None, None, :], as Attention reads its mask, with nothing sliced away.
// An Expand on the way (transformers 4.3x+: mask[:, None, None, :].expand(B, 1, S, S)) only repeats
// the term along the query axis, which the Add broadcasts anyway: the unexpanded value is checked.
MaskFilter TraceMask(const ir::Graph& graph, ir::Value* mask_float, SymbolicDims& dims) {
  ir::Value* source = nullptr;
  ir::Value* unexpanded = mask_float;
  ir::Value* v = mask_float;
  for (int step = 0; v && step < 16; ++step) {
    const std::optional<Dims> d = dims.Of(v);
    const bool input = v->is_graph_input() && IsIntegerOrBool(graph.ElementType(v));
    if (d && d->size() == 2 && (input || IsZeroOne(graph, v))) source = v;
    const ir::Node* n = v->producer();
    if (!n || !(n->Is("Unsqueeze") || n->Is("Reshape") || n->Is("Squeeze") || n->Is("Slice") ||
                n->Is("Cast") || n->Is("Expand"))) {
      break;
    }
    if (n->Is("Expand")) {
      const std::optional<Dims> out = dims.Of(v);
      const std::optional<Dims> in = dims.Of(n->input(0));
      // Only the query axis (2) may grow, from 1.
      const bool query_only = out && in && out->size() == 4 && in->size() == 4 &&
                              (*in)[0] == (*out)[0] && (*in)[1] == (*out)[1] &&
                              (*in)[3] == (*out)[3] && (*in)[2] == Dim::Known(1);
      if (!query_only || unexpanded != mask_float) break;
      unexpanded = n->input(0);
    }
    v = n->input(0);
  }
  if (!source) {
    return {.reason = fmt::format(
                "the mask term '{}' is not made by Unsqueeze, Reshape, Slice and Cast alone of a "
                "2-D integer graph input or a 0/1 (bool) mask",
                mask_float->name())};
  }
  const Dims s = *dims.Of(source);
  const std::optional<Dims> f = dims.Of(unexpanded);
  const Dims expected = {s[0], Dim::Known(1), Dim::Known(1), s[1]};
  if (!f || *f != expected) {
    return {.reason = fmt::format("the mask term '{}' is {}, not provably the mask '{}' {} as {}",
                                  unexpanded->name(), f ? ToString(*f) : "of unknown shape",
                                  source->name(), ToString(s), ToString(expected))};
  }
  return {.source = source};
}

// The mask: additive (2.4, 3.6, 4.3) from a (B, S) mask, or DistilBERT's Where (2.10) from a
// (B, S) graph input. `batch_seq` are the dims the heads are split into: the mask must be as large.
MaskFilter ReadMaskFilter(const ir::Graph& graph, const Match& m, const ir::Value* x,
                          const std::vector<int64_t>& x_dims, const Dims& batch_seq,
                          SymbolicDims& dims) {
  if (!m.has("mask_term") && !m.has("where")) return {};
  MaskFilter traced;
  if (m.has("mask_cond")) {
    const KeyMask key = ProveKeyMask(graph, m["mask_cond"], dims);
    if (!key.mask) return {.reason = key.reason};
    // [B, 1|N, 1|Q, S]: the middle axes are 1 or the scores' own, so the Add keeps their shape.
    const std::optional<Dims> cond = dims.Of(m["mask_cond"]);
    const std::optional<Dims> scores = dims.Of(m["scores"]);
    for (int d : {1, 2}) {
      if (!cond || !scores || scores->size() != 4 ||
          ((*cond)[d] != Dim::Known(1) && (*cond)[d] != (*scores)[d])) {
        return {.reason = fmt::format("the mask '{}' is {}, which could broadcast the scores {}",
                                      m["mask_cond"]->name(), cond ? ToString(*cond) : "?",
                                      scores ? ToString(*scores) : "?")};
      }
    }
    traced.source = key.mask;
  } else if (m.has("mask_term")) {
    traced = TraceMask(graph, m["mask_float"], dims);
    if (!traced.reason.empty()) return traced;
  } else {
    traced.source = m["mask"];
    auto mask_dims = graph.Shape(traced.source);
    if (!traced.source->is_graph_input() || !mask_dims || mask_dims->size() != 2) {
      return {.reason = fmt::format("the mask source '{}' is not a 2-D graph input",
                                    traced.source->name())};
    }
  }
  ir::Value* mask = traced.source;
  // A mask the user feeds is of the batch and sequence of the ids by the convention Attention
  // checks when it runs; a computed one must be proven so.
  for (int d = 0; d < 2 && !mask->is_graph_input(); ++d) {
    const std::optional<Dim> md = dims.At(mask, d);
    if (!md || *md != batch_seq[d]) {
      return {.reason =
                  fmt::format("dim {} of the mask '{}' is not provably the {} size {} of the "
                              "attention input",
                              d, mask->name(), d == 0 ? "batch" : "sequence", ToString(batch_seq))};
    }
  }
  if (m.has("mask_term")) {
    // Mul(1 - mask, filter) and the Where forms add the filter to masked scores, as Attention
    // does. A -inf filter (scaled_dot_product_attention) is float32 lowest, as for the Where
    // below: the same probabilities in every row that keeps a token.
    auto multiplier = ScalarOf(graph, m, "mask_filter");
    if (m.has("mask_cond") && multiplier && std::isinf(*multiplier) && *multiplier < 0) {
      multiplier = std::numeric_limits<float>::lowest();
    }
    if (!multiplier || !std::isfinite(*multiplier) || *multiplier >= 0) {
      return {.reason = multiplier ? fmt::format("the mask multiplier '{}' is {}, not a finite "
                                                 "negative scalar",
                                                 m["mask_filter"]->name(), *multiplier)
                                   : std::string("the mask multiplier is not a scalar constant")};
    }
    return {.value = *multiplier, .source = mask};
  }
  auto fill = ScalarOf(graph, m, "fill");
  if (!fill || !(*fill <= kDefaultMaskFilter)) {
    return {.reason =
                "the Where fill value is not a scalar <= -10000 (a smaller penalty added by "
                "Attention would not equal replacing the score)"};
  }
  std::string why = CheckPaddingTarget(graph, *m.node("mask_reshape"), x, x_dims, dims);
  if (!why.empty()) return {.reason = why};
  // Attention adds a finite value; -inf and float32 lowest give the same probabilities for every
  // row that has at least one token.
  return {.value = std::isinf(*fill) ? std::numeric_limits<float>::lowest() : *fill,
          .source = mask};
}

// tf2onnx's 2-D encoders (4.4): q = x·Wq + bq is (B·S, H) like x, and its split Reshape's target
// gives (B, S, N, Hd). The same target entries reshape x to (B, S, H) consistently, whatever they
// are (a 0 copies the same dim of x as of q, a -1 infers the same size), so they need not be
// proven: only N and Hd must be constants, and K and V must be split by the same (B, S).
HeadSplit ReadFlatSplitTarget(const ir::Graph& graph, const ir::Node& split,
                              const ir::Node& q_split, SymbolicDims& dims) {
  const auto entries = dims.ElementsOf(split.input(1));
  if (!entries || entries->size() != 4) {
    return {.reason = fmt::format("{}: the target does not have 4 known entries (B, S, N, Hd)",
                                  split.DisplayName())};
  }
  const std::optional<Dim>& n = (*entries)[2];
  const std::optional<Dim>& hd = (*entries)[3];
  if (!n || !hd || !n->known() || !hd->known() || n->size <= 0 || hd->size <= 0) {
    return {.reason = fmt::format("{}: the head count and head size are not positive constants",
                                  split.DisplayName())};
  }
  if (&split != &q_split && split.input(1) != q_split.input(1)) {
    const auto q_entries = dims.ElementsOf(q_split.input(1));
    for (int d = 0; d < 2; ++d) {
      const std::optional<Dim>& e = (*entries)[d];
      if (!q_entries || !e || SymbolicDims::IsInfer(e) || (*q_entries)[d] != e) {
        return {.reason = fmt::format("{}: entry {} is not provably Q's", split.DisplayName(), d)};
      }
    }
  }
  return {.heads = n->size, .head_size = hd->size, .reason = {}};
}

// The 2-D merge target: (B·S, H), i.e. two entries of which the last is H.
std::string CheckFlatMergeTarget(const ir::Node& merge, SymbolicDims& dims, int64_t hidden) {
  const auto entries = dims.ElementsOf(merge.input(1));
  if (!entries || entries->size() != 2 || !entries->back() ||
      *entries->back() != Dim::Known(hidden)) {
    return fmt::format("{}: the target is not (B·S, {})", merge.DisplayName(), hidden);
  }
  return {};
}

// Reshape(x, [target[0], target[1], H]): x as (B, S, H) for Attention, read off the split target.
std::string Unflatten(ir::Graph& graph, ir::Value* x, ir::Value* split_target, int64_t hidden,
                      const ir::Node& anchor) {
  // Layers that share one split target share this target too.
  std::string target = split_target->name() + "_batch_sequence_hidden";
  if (const ir::Value* existing = graph.FindValue(target); existing && existing->producer()) {
    // made for an earlier layer
  } else if (auto values = graph.ConstantAsInts(split_target)) {
    target = graph
                 .AddInitializer(ir::MakeInt64Tensor(FusedNodeName(anchor, "unflatten_shape"), {3},
                                                     {(*values)[0], (*values)[1], hidden}))
                 ->name();
  } else {
    const std::string sliced = graph.UniqueName(FusedNodeName(anchor, "batch_and_sequence"));
    ir::Node* slice;
    if (graph.OpsetVersion() >= 10) {
      ir::Value* zero = graph.AddInitializer(
          ir::MakeInt64Tensor(FusedNodeName(anchor, "slice_starts"), {1}, {0}));
      ir::Value* two =
          graph.AddInitializer(ir::MakeInt64Tensor(FusedNodeName(anchor, "slice_ends"), {1}, {2}));
      slice = graph.AddNode("Slice", {split_target->name(), zero->name(), two->name()}, {sliced});
    } else {
      slice = graph.AddNode("Slice", {split_target->name()}, {sliced});
      slice->SetAttr("starts", std::vector<int64_t>{0});
      slice->SetAttr("ends", std::vector<int64_t>{2});
    }
    ir::Value* h = graph.AddInitializer(
        ir::MakeInt64Tensor(FusedNodeName(anchor, "hidden_size"), {1}, {hidden}));
    target = graph.UniqueName(target);
    graph.AddNode("Concat", {slice->output(0)->name(), h->name()}, {target})
        ->SetAttr("axis", int64_t{0});
  }
  const std::string out = graph.UniqueName(x->name() + "_3d");
  graph.AddNode("Reshape", {x->name(), target}, {out}, ir::kOnnxDomain,
                FusedNodeName(anchor, "Attention_unflatten"));
  return out;
}

class AttentionFusion : public Fusion {
 public:
  std::string_view name() const override { return "attention"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph& graph) const override {
    return graph.NodesOfType("Softmax");
  }

  FuseResult FuseAt(const PassOptions& options, ir::Graph& graph,
                    ir::Node* softmax) const override {
    // Walk down to the merge Reshape, whose output the Attention node takes over.
    ir::Node* merge = FindMerge(softmax);
    if (!merge) {
      return FuseResult::Miss(
          "the probabilities do not flow into MatMul(probs, V) -> Transpose -> Reshape");
    }
    auto result = pattern::MatchPattern(graph, merge, AttentionPattern());
    if (!result.ok()) return FuseResult::Miss(result.reason());
    const Match& m = result.match();
    if (m.node("softmax") != softmax) return FuseResult::Miss("matched another Softmax");

    const int64_t opset = graph.OpsetVersion();
    const int64_t axis = softmax->AttrInt("axis").value_or(opset < 13 ? 1 : -1);
    if (axis != -1 && axis != 3) {
      return FuseResult::Miss(
          fmt::format("Softmax axis {} is not the last axis of the scores", axis));
    }

    // x: (B, S, H), read by all three projections; or (B·S, H) in tf2onnx's 2-D encoders, which
    // Attention gets reshaped to (B, S, H) by the heads' own (B, S) entries (see Flat below).
    // Shape inference may have lost its rank after an earlier layer's computed Reshape targets:
    // the tracer derives it.
    ir::Value* x = m["x"];
    SymbolicDims dims(graph);
    const std::optional<Dims> x_shape = dims.Of(x);
    if (!x_shape || (x_shape->size() != 3 && x_shape->size() != 2)) {
      return FuseResult::Miss(fmt::format(
          "the input '{}' is not known to be 3-D (B, S, H) or 2-D (B·S, H)", x->name()));
    }
    const bool flat = x_shape->size() == 2;
    std::vector<int64_t> x_dims;
    for (const Dim& d : *x_shape) x_dims.push_back(d.size);

    const Projections qkv = ReadProjections(graph, m);
    if (!qkv.reason.empty()) return FuseResult::Miss(qkv.reason);
    const int64_t hidden = qkv.hidden;
    if (x_dims.back() >= 0 && x_dims.back() != hidden) {
      return FuseResult::Miss(fmt::format("the input '{}' has {} features, the weights {}",
                                          x->name(), x_dims.back(), hidden));
    }

    // Heads: the same (N, Hd) for Q, K and V, with N·Hd = H.
    int64_t heads = 0;
    int64_t head_size = 0;
    for (const std::string name : {"q", "k", "v"}) {
      const ir::Node& split = *m.node(name + "_split");
      const HeadSplit target = flat ? ReadFlatSplitTarget(graph, split, *m.node("q_split"), dims)
                                    : ReadSplitTarget(split, x, x_dims, dims, hidden);
      if (!target.reason.empty()) return FuseResult::Miss(target.reason);
      const int64_t n = target.heads;
      const int64_t hd = target.head_size;
      if (n * hd != hidden) {
        return FuseResult::Miss(fmt::format("{} splits {} into {} heads of {}, which is not {}",
                                            split.DisplayName(), name, n, hd, hidden));
      }
      if (heads && (n != heads || hd != head_size)) {
        return FuseResult::Miss(fmt::format("{} splits into {}x{} heads, Q into {}x{}",
                                            split.DisplayName(), n, hd, heads, head_size));
      }
      heads = n;
      head_size = hd;
    }
    if (m.has("k_unflat")) {
      if (std::string why = CheckFlatKTranspose(m, dims); !why.empty()) {
        return FuseResult::Miss(why);
      }
    }
    if (m.has("context_reshape")) {
      const std::optional<Dims> in = dims.Of(m["context"]);
      const std::optional<Dims> out = dims.Of(m["context_reshape"]);
      if (!in || !out || *in != *out) {
        return FuseResult::Miss(fmt::format("{} is not provably a no-op: {} to {}",
                                            m.node("context_reshape")->DisplayName(),
                                            in ? ToString(*in) : "?", out ? ToString(*out) : "?"));
      }
    }
    const std::string merge_reason = flat
                                         ? CheckFlatMergeTarget(*merge, dims, hidden)
                                         : CheckMergeTarget(graph, *merge, x, x_dims, dims, hidden);
    if (!merge_reason.empty()) return FuseResult::Miss(merge_reason);
    if (flat && m.has("where")) {
      return FuseResult::Miss("a Where mask on a 2-D (B·S, H) encoder is not handled");
    }
    // The (B, S) the heads are split into: x's leading dims, or the split's own entries.
    const std::optional<Dims> split_dims = dims.Of(m.node("q_split")->output(0));
    if (!split_dims || split_dims->size() != 4) {
      return FuseResult::Miss("the head split's dims are unknown");
    }
    const Dims batch_seq =
        flat ? Dims{(*split_dims)[0], (*split_dims)[1]} : Dims{(*x_shape)[0], (*x_shape)[1]};

    // Scale: softmax(Q·Kᵀ·scale + mask).
    double scale = 1.0;
    if (m.has("scale_divisor") || m.has("scale_factor")) {
      auto s = ScalarOf(graph, m, m.has("scale_divisor") ? "scale_divisor" : "scale_factor");
      if (!s || *s == 0 || !std::isfinite(*s)) {
        return FuseResult::Miss("the attention scale is not a finite non-zero scalar");
      }
      scale = m.has("scale_divisor") ? 1.0 / *s : *s;
    }
    if (m.has("q_scale")) {
      auto q = ScalarOf(graph, m, "q_scale");
      auto k = ScalarOf(graph, m, "k_scale");
      if (!q || !k || *q * *k == 0 || !std::isfinite(*q * *k)) {
        return FuseResult::Miss("the Q and K scales are not finite non-zero scalars");
      }
      scale = *q * *k;
    }

    const MaskFilter mask_filter = ReadMaskFilter(graph, m, x, x_dims, batch_seq, dims);
    if (!mask_filter.reason.empty()) return FuseResult::Miss(mask_filter.reason);

    // A contradiction between the user's sizes and the graph is an error, not a miss.
    if (options.num_heads != 0 && options.num_heads != heads) {
      return FuseResult::Error(FailedPrecondition(fmt::format(
          "--num_heads {} does not match the graph: the head-split Reshape at {} gives {} heads",
          options.num_heads, m.node("q_split")->DisplayName(), heads)));
    }
    if (options.hidden_size != 0 && options.hidden_size != hidden) {
      return FuseResult::Error(FailedPrecondition(
          fmt::format("--hidden_size {} does not match the graph: the Q weight '{}' gives {}",
                      options.hidden_size, m["q_weight"]->name(), hidden)));
    }

    // Rewrite: the matched nodes go (nothing outside reads them), the Attention node takes over
    // the merge Reshape's output name.
    ir::Value* mask = mask_filter.source;
    const std::string output = merge->output(0)->name();
    ir::Value* split_target = m.node("q_split")->input(1);
    for (ir::Node* node : m.owned_nodes()) graph.EraseNode(node);
    std::string input = x->name();
    std::string attention_output = output;
    if (flat) {
      input = Unflatten(graph, x, split_target, hidden, *softmax);
      attention_output = graph.UniqueName(FusedNodeName(*softmax, "attention_3d"));
    }
    ir::Value* qkv_weight = ConcatLastAxis(graph, qkv.weights, {hidden, hidden}, qkv.type,
                                           FusedNodeName(*softmax, "qkv_weight"));
    ir::Value* qkv_bias =
        ConcatLastAxis(graph, qkv.biases, {hidden}, qkv.type, FusedNodeName(*softmax, "qkv_bias"));
    // The packed copies replace the originals: free those now rather than at the end, so peak
    // memory stays near the model's size.
    for (const char* name : {"q_weight", "k_weight", "v_weight", "q_bias", "k_bias", "v_bias"}) {
      ir::Value* v = m[name];
      if (v && v->initializer() && v->uses().empty() && !v->is_graph_output()) {
        graph.RemoveInitializer(v);
      }
    }
    std::vector<std::string> inputs = {input, qkv_weight->name(), qkv_bias->name()};
    if (mask) {
      inputs.push_back(
          GetOrCreateAttentionMask(graph, mask, options.use_raw_attention_mask)->name());
    }
    ir::Node* attention = graph.AddNode("Attention", inputs, {attention_output}, ir::kMsDomain,
                                        FusedNodeName(*softmax, "Attention"));
    if (flat) {
      ir::Value* to_2d = graph.AddInitializer(
          ir::MakeInt64Tensor(FusedNodeName(*softmax, "flat_shape"), {2}, {-1, hidden}));
      graph.AddNode("Reshape", {attention_output, to_2d->name()}, {output}, ir::kOnnxDomain,
                    FusedNodeName(*softmax, "Attention_flatten"));
    }
    attention->SetAttr("num_heads", heads);
    const double default_scale = 1.0 / std::sqrt(static_cast<double>(head_size));
    if (std::abs(scale - default_scale) > 1e-6 * default_scale) {
      attention->SetAttr("scale", static_cast<float>(scale));
    }
    if (mask_filter.value != kDefaultMaskFilter) {
      attention->SetAttr("mask_filter_value", static_cast<float>(mask_filter.value));
    }
    return FuseResult::Fused();
  }

 private:
  // Softmax -> (NaN guard) -> MatMul(probs, V) -> (Reshape) -> Transpose -> Reshape, following
  // the only consumers; the pattern checks the details.
  static ir::Node* FindMerge(const ir::Node* softmax) {
    const ir::Value* probs = softmax->output(0);
    if (!probs) return nullptr;
    for (const ir::Use& use : probs->uses()) {
      if (use.node->Is("Where") && use.index == 2) probs = use.node->output(0);  // the NaN guard
    }
    if (!probs || probs->uses().size() != 1) return nullptr;
    const ir::Use context = probs->uses()[0];
    if (!context.node->Is("MatMul") || context.index != 0) return nullptr;
    const ir::Value* context_out = context.node->output(0);
    if (!context_out || context_out->uses().size() != 1) return nullptr;
    const ir::Node* transpose = context_out->uses()[0].node;
    if (transpose->Is("Reshape") && transpose->output(0)->uses().size() == 1) {
      transpose = transpose->output(0)->uses()[0].node;
    }
    if (!transpose->Is("Transpose")) return nullptr;
    for (const ir::Use& use : transpose->output(0)->uses()) {
      if (use.node->Is("Reshape") && use.index == 0) return use.node;
    }
    return nullptr;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeAttentionFusion() { return std::make_unique<AttentionFusion>(); }

}  // namespace bertopt::passes
