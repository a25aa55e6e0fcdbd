// EmbedLayerNormalization: the embedding lookups, their sum and its LayerNorm as one node.
//
//   input_ids ──────► Gather(word) ─────┐
//   position ids ───► Gather(position) ─► Add ─┐         (the Adds in any order and nesting)
//   token_type_ids ─► Gather(segment) ────────► Add ─► LayerNormalization ─► x0
//
//   becomes
//
//   EmbedLayerNormalization(ids32, segment32|"", word, position, segment|"", gamma, beta,
//                           mask32|"", position_ids32|"")   epsilon = the LN's
//     out 0: x0 (the LN's output name)
//     out 1: the mask index; replaces Attention's shared ReduceSum(Cast(mask)) when there is
//            one (always present: ORT's type inference requires it)
//     out 2: the embedding sum; only when something besides the LN reads it
//
// Position ids that mean 0..S-1 in every row, S taken from the ids (exporter-layouts 2.3 P1-P4,
// P6, static constants) are left out: that is EmbedLayerNormalization's default. Any other (B,S)
// or (1,S) position ids (RoBERTa's CumSum, a position_ids graph input) go to input 8, which is
// exact. A token type Gather of a zeros ConstantOfShape (no token_type_ids input) keeps its
// table and gets the zeros as int32 segment ids, since it still adds segment[0] everywhere.
//
// A constant [1,S,H] position term (keras2onnx 1.6.1, static tf2onnx) is first rewritten as the
// Gather it stands for (MaterializedPositions).
//
// Not handled: TF's flattened 2-D Gathers, tables and gamma/beta of different float types, the
// ORT-test Expand shape spelled Where(Equal(...)) (such positions go to input 8 instead), and
// taking over a mask index when several masks have one.
#include <algorithm>
#include <optional>
#include <unordered_set>

#include "bertopt/ir/tensor.h"
#include "bertopt/pattern/pattern.h"
#include "fmt/format.h"
#include "passes/fusions/fusions.h"
#include "passes/fusions/int32_inputs.h"
#include "passes/symbolic_dims.h"

namespace bertopt::passes {
namespace {

using pattern::Any;
using pattern::Const;
using pattern::Match;
using pattern::MatchPattern;
using pattern::MatchResult;
using pattern::OneOf;
using pattern::Op;
using pattern::Optional;
using pattern::P;
using pattern::Scalar;

constexpr float kOnnxDefaultEpsilon = 1e-5f;

// --- Small readers -----------------------------------------------------------------------------

// Axes of Unsqueeze/Squeeze/ReduceSum: the attribute (older opsets) or the constant input 1.
std::optional<std::vector<int64_t>> AxesOf(const ir::Graph& graph, const ir::Node& node) {
  if (auto axes = node.AttrInts("axes")) return axes;
  if (node.input(1)) return graph.ConstantAsInts(node.input(1));
  return std::nullopt;
}

pattern::NodeCheck AxesAre(std::vector<int64_t> want) {
  return
      [want = std::move(want)](const ir::Graph& g, const ir::Node& n, const Match&) -> std::string {
        auto axes = AxesOf(g, n);
        if (axes && *axes == want) return {};
        return fmt::format("axes are not [{}]", fmt::join(want, ","));
      };
}

// A value's declared dims, named: "16", "batch_size", or "?" when unknown. Only names declared
// on the graph inputs count: shape inference invents fresh ones ("unk__3") for dims it could not
// relate, which say nothing about equality. nullopt: unknown rank.
std::optional<std::vector<std::string>> DeclaredDims(const ir::Graph& graph, const ir::Value* v) {
  if (const onnx::TensorProto* t = graph.ConstantTensor(v)) {
    std::vector<std::string> dims;
    for (int64_t d : t->dims()) dims.push_back(std::to_string(d));
    return dims;
  }
  const onnx::GraphProto& g = graph.model().graph();
  std::unordered_set<std::string> input_names;
  for (const auto& in : g.input()) {
    for (const auto& d : in.type().tensor_type().shape().dim()) {
      // tf2onnx's "unk__N" names, like shape inference's, say nothing about equality.
      if (d.has_dim_param() && !d.dim_param().starts_with("unk__")) {
        input_names.insert(d.dim_param());
      }
    }
  }
  const onnx::ValueInfoProto* info = nullptr;
  for (const auto* infos : {&g.input(), &g.value_info(), &g.output()}) {
    for (const auto& vi : *infos) {
      if (vi.name() == v->name()) info = &vi;
    }
    if (info) break;
  }
  if (!info || !info->type().has_tensor_type() || !info->type().tensor_type().has_shape()) {
    return std::nullopt;
  }
  std::vector<std::string> dims;
  for (const auto& d : info->type().tensor_type().shape().dim()) {
    if (d.has_dim_value()) {
      dims.push_back(std::to_string(d.dim_value()));
    } else if (d.has_dim_param() && input_names.count(d.dim_param())) {
      dims.push_back(d.dim_param());
    } else {
      dims.push_back("?");
    }
  }
  return dims;
}

// Two declared dims that may be equal at run time ("?" is anything).
bool MayBeEqual(const std::string& a, const std::string& b) {
  return a == b || a == "?" || b == "?";
}

std::string FormatDims(const std::vector<std::string>& dims) {
  return fmt::format("[{}]", fmt::join(dims, ","));
}

// Whether `target` is among the values `value` is computed from (`value` included).
bool DependsOn(const ir::Value* value, const ir::Value* target) {
  std::vector<const ir::Value*> stack{value};
  std::unordered_set<const ir::Value*> seen;
  while (!stack.empty()) {
    const ir::Value* v = stack.back();
    stack.pop_back();
    if (v == target) return true;
    if (!v || !seen.insert(v).second || !v->producer()) continue;
    for (const ir::Value* in : v->producer()->inputs()) stack.push_back(in);
    for (const ir::Value* in : v->producer()->implicit_inputs()) stack.push_back(in);
  }
  return false;
}

// The `value` attribute of a ConstantOfShape: its single element, or 0.0 when absent.
std::optional<double> FillValue(const ir::Node& node, int32_t* type) {
  const onnx::AttributeProto* a = node.Attr("value");
  if (!a) {
    *type = onnx::TensorProto::FLOAT;
    return 0.0;
  }
  *type = a->t().data_type();
  auto values = ir::DecodeAsDoubles(a->t());
  if (!values || values->size() != 1) return std::nullopt;
  return values->front();
}

bool IsIntegerType(int32_t type) {
  return type == onnx::TensorProto::INT64 || type == onnx::TensorProto::INT32;
}

// --- The terms of the sum ----------------------------------------------------------------------

// An integer graph input: ids the user feeds.
P GraphInput(std::string_view bind) {
  return Any(bind).WhereValue([](const ir::Graph& g, const ir::Value& v, const Match&) {
    if (!v.is_graph_input() || g.ConstantTensor(&v)) {
      return fmt::format("'{}' is not a graph input", v.name());
    }
    if (!IsIntegerType(g.ElementType(&v))) {
      return fmt::format("graph input '{}' is not int32 or int64", v.name());
    }
    return std::string();
  });
}

// `table[indices]` along axis 0, the table a float32 or float16 2-D constant. (ORT's CPU kernel
// is float32 only; ORT runs a float16 one through Casts it inserts itself, the CUDA kernel
// natively: float16 exports must fuse too.)
P Lookup(std::string_view table, P indices) {
  P rows = Const(table).WhereValue([](const ir::Graph& g, const ir::Value& v, const Match&) {
    const onnx::TensorProto* t = g.ConstantTensor(&v);
    if (t->dims_size() != 2) return fmt::format("table '{}' is not 2-D", v.name());
    if (t->data_type() != onnx::TensorProto::FLOAT &&
        t->data_type() != onnx::TensorProto::FLOAT16) {
      return fmt::format("table '{}' is not float32 or float16", v.name());
    }
    return std::string();
  });
  return Op("Gather", {rows, std::move(indices)})
      .Where([](const ir::Graph&, const ir::Node& n, const Match&) {
        const int64_t axis = n.AttrInt("axis").value_or(0);
        return axis == 0 || axis == -2 ? std::string() : fmt::format("gathers along axis {}", axis);
      });
}

// word[ids], ids a graph input read directly or through a Cast.
P WordLookup() {
  P ids = GraphInput("ids");
  return Lookup("word_table", Optional(Op("Cast", {ids}).Shared(), ids));
}

// Patterns that need to know which value is the ids input: its shape and sequence length.
class IdsShapes {
 public:
  IdsShapes(const ir::Graph& graph, const ir::Value* ids) : ids_(ids) {
    if (auto dims = graph.Shape(ids); dims && dims->size() == 2) {
      batch_ = (*dims)[0];
      seq_ = (*dims)[1];
    }
  }

  // Shape(ids) as a tensor [B, S]: the Shape itself, rebuilt from its two dims (PyTorch 1.3),
  // or a constant equal to the ids' static shape.
  P ShapeOfIds() const {
    std::vector<int64_t> static_shape;
    if (batch_ > 0 && seq_ > 0) static_shape = {batch_, seq_};
    return OneOf({WholeShape(),
                  Op("Concat", {Unsqueeze0(Dim(0)), Unsqueeze0(Dim(1))}).Where(TwoPiecesOnAxis0),
                  ConstEqualTo(static_shape, "the ids' static shape")});
  }

  // The position ids P1-P4, P6 and their static forms: every row 0..S-1, shaped [S], [1,S] or
  // [B,S]. All Shared: dead-code removal takes the chain once nothing else reads it.
  P Positions() const {
    P row = Unsqueeze0(Arange(false));
    P expand = Op("Expand", {OneOf({row, Arange(false), ConstRows(2)}), ShapeOfIds()});
    // A registered [1,P] buffer of 0..P-1, sliced to [1,S] along axis 1.
    P slice = Op("Slice", {Const().WhereValue(IsArangeBuffer), ConstEqualTo({0}, "[0]"), SeqLen1D(),
                           Const().WhereValue(IsAxis1)})
                  .Where(StepsAreOne);
    return OneOf({expand.Shared(), row.Shared(), slice.Shared(), Arange(true), ConstRows(2)});
  }

 private:
  // The ids input, or a Cast of it: both have the ids' shape.
  P Ids() const {
    return Any().WhereValue([ids = ids_](const ir::Graph&, const ir::Value& v, const Match&) {
      const ir::Node* cast = v.producer();
      if (&v == ids || (cast && cast->Is("Cast") && cast->input(0) == ids)) return std::string();
      return fmt::format("'{}' is not the ids input '{}'", v.name(), ids->name());
    });
  }

  P WholeShape() const {
    return Op("Shape", {Ids()}).Where([](const ir::Graph&, const ir::Node& n, const Match&) {
      const bool whole = n.AttrInt("start").value_or(0) == 0 && !n.Attr("end");
      return whole ? std::string() : std::string("takes part of the shape (start/end)");
    });
  }

  // Shape(ids)[i] as a scalar.
  P Dim(int64_t i) const {
    P index = Const().WhereValue([i](const ir::Graph& g, const ir::Value& v, const Match&) {
      auto value = g.ConstantAsInts(&v);
      const bool scalar = g.ConstantTensor(&v)->dims_size() == 0;
      if (scalar && value && ((*value)[0] == i || (*value)[0] == i - 2)) return std::string();
      return fmt::format("'{}' is not the scalar index {}", v.name(), i);
    });
    return Op("Gather", {WholeShape(), index})
        .Where([](const ir::Graph&, const ir::Node& n, const Match&) {
          return n.AttrInt("axis").value_or(0) == 0 ? std::string() : "not along axis 0";
        });
  }

  // S as a scalar: Shape(ids)[1], maybe plus a past length of 0, maybe cast.
  P SeqLen() const {
    P dim = Dim(1);
    P offset = Optional(Op("Add", {dim, Scalar(0)}).Commutative(), dim);
    return Optional(Op("Cast", {offset}), offset);
  }

  // [S] as a 1-D tensor.
  P SeqLen1D() const {
    std::vector<int64_t> s;
    if (seq_ > 0) s = {seq_};
    return OneOf({Unsqueeze0(SeqLen()), ConstEqualTo(s, "the ids' static sequence length"),
                  SeqLenByDims(1)});
  }

  // Any other computation of S (scalar: rank 0; or [S]: rank 1) that SymbolicDims proves is the
  // ids' sequence length: torch 2.x reads it off the word lookup's Shape, tf2onnx slices it out
  // of a Cast Shape.
  P SeqLenByDims(int rank) const {
    return Any().WhereValue(
        [ids = ids_, rank](const ir::Graph& g, const ir::Value& v, const Match&) {
          SymbolicDims dims(g);
          const auto shape = dims.Of(&v);
          const auto elements = dims.ElementsOf(&v);
          const auto seq = dims.At(ids, 1);
          if (shape && static_cast<int>(shape->size()) == rank && elements &&
              elements->size() == 1 && elements->front() && seq && *elements->front() == *seq) {
            return std::string();
          }
          return fmt::format("'{}' is not provably the ids' sequence length", v.name());
        });
  }

  // 0..S-1 as a 1-D tensor [S]: Range, opset 10's indices of S ones, or a constant.
  P Arange(bool shared) const {
    P range = Op("Range", {Scalar(0), OneOf({SeqLen(), SeqLenByDims(0)}), Scalar(1)});
    P ones =
        Op("ConstantOfShape", {SeqLen1D()})
            .Where([](const ir::Graph&, const ir::Node& n, const Match&) {
              int32_t type = 0;
              auto fill = FillValue(n, &type);
              return fill && *fill != 0 ? std::string() : "does not fill with a non-zero value";
            });
    P nonzero = Op("Squeeze", {Op("Transpose", {Op("NonZero", {ones})}).Where(PermIs10)})
                    .Where(AxesAre({1}));
    P indices = Optional(Op("Cast", {nonzero}), nonzero);
    if (shared) {
      range = range.Shared();
      indices = Optional(Op("Cast", {nonzero}).Shared(), nonzero.Shared());
    }
    return OneOf({range, indices, ConstRows(1)});
  }

  static P Unsqueeze0(P x) { return Op("Unsqueeze", {std::move(x)}).Where(AxesAre({0})); }

  static std::string PermIs10(const ir::Graph&, const ir::Node& n, const Match&) {
    return n.AttrInts("perm") == std::vector<int64_t>{1, 0} ? std::string() : "perm is not [1,0]";
  }

  static std::string TwoPiecesOnAxis0(const ir::Graph&, const ir::Node& n, const Match&) {
    const bool ok = n.num_inputs() == 2 && n.AttrInt("axis").value_or(-1) == 0;
    return ok ? std::string() : "is not a 2-piece Concat on axis 0";
  }

  static std::string StepsAreOne(const ir::Graph& g, const ir::Node& n, const Match&) {
    if (!n.input(4)) return {};
    auto steps = g.ConstantAsInts(n.input(4));
    return steps && *steps == std::vector<int64_t>{1} ? std::string() : "steps are not [1]";
  }

  // A 1-D integer constant equal to `want` (never matches an empty `want`: not known).
  static P ConstEqualTo(std::vector<int64_t> want, std::string what) {
    return Const().WhereValue([want = std::move(want), what = std::move(what)](
                                  const ir::Graph& g, const ir::Value& v, const Match&) {
      auto values = g.ConstantAsInts(&v);
      if (!want.empty() && values && *values == want && g.ConstantTensor(&v)->dims_size() == 1) {
        return std::string();
      }
      return fmt::format("constant '{}' is not {}", v.name(), what);
    });
  }

  // A constant [1,P] of 0..P-1.
  static std::string IsArangeBuffer(const ir::Graph& g, const ir::Value& v, const Match&) {
    const onnx::TensorProto* t = g.ConstantTensor(&v);
    auto values = g.ConstantAsInts(&v);
    bool ok = values && t->dims_size() == 2 && t->dims(0) == 1;
    for (size_t j = 0; ok && j < values->size(); ++j) ok = (*values)[j] == static_cast<int64_t>(j);
    return ok ? std::string() : fmt::format("'{}' is not a [1,P] buffer of 0..P-1", v.name());
  }

  static std::string IsAxis1(const ir::Graph& g, const ir::Value& v, const Match&) {
    auto axes = g.ConstantAsInts(&v);
    const bool ok = axes && axes->size() == 1 && ((*axes)[0] == 1 || (*axes)[0] == -1);
    return ok ? std::string() : fmt::format("slice axes '{}' are not [1]", v.name());
  }

  // A constant of `rank` whose every row is 0..S-1, S the ids' static sequence length; at rank
  // 2 the batch dim must be 1 or the ids' static batch, so that broadcasting keeps the ids'
  // shape.
  P ConstRows(int rank) const {
    return Const().WhereValue([rank, batch = batch_, seq = seq_](const ir::Graph& g,
                                                                 const ir::Value& v, const Match&) {
      const onnx::TensorProto* t = g.ConstantTensor(&v);
      auto values = g.ConstantAsInts(&v);
      if (!values || t->dims_size() != rank) {
        return fmt::format("'{}' is not a {}-D integer constant", v.name(), rank);
      }
      const int64_t s = t->dims(rank - 1);
      if (seq != s) {
        return fmt::format("constant positions '{}' are {} long but the ids' sequence length is {}",
                           v.name(), s, seq > 0 ? std::to_string(seq) : "not static");
      }
      if (rank == 2 && t->dims(0) != 1 && (batch <= 0 || t->dims(0) != batch)) {
        return fmt::format("constant positions '{}' have {} rows for ids of batch {}", v.name(),
                           t->dims(0), batch > 0 ? std::to_string(batch) : "unknown");
      }
      for (size_t k = 0; k < values->size(); ++k) {
        if ((*values)[k] != static_cast<int64_t>(k % s)) {
          return fmt::format("constant positions '{}' are not 0..{} in every row", v.name(), s - 1);
        }
      }
      return std::string();
    });
  }

  const ir::Value* ids_;
  int64_t batch_ = -1;  // static dims of the ids, -1 when symbolic or unknown
  int64_t seq_ = -1;
};

// segment[token_type_ids], or segment[zeros shaped like the ids] when the model has no
// token_type_ids input.
P SegmentLookup(const IdsShapes& shapes) {
  P input = GraphInput("segment_ids");
  P zeros = Op("ConstantOfShape", {shapes.ShapeOfIds()}, "segment_ids")
                .Where([](const ir::Graph&, const ir::Node& n, const Match&) {
                  int32_t type = 0;
                  auto fill = FillValue(n, &type);
                  return fill && *fill == 0 && IsIntegerType(type)
                             ? std::string()
                             : "does not fill with an integer 0";
                })
                .Shared();
  return Lookup("segment_table", OneOf({Optional(Op("Cast", {input}).Shared(), input),
                                        Optional(Op("Cast", {zeros}).Shared(), zeros)}));
}

// --- The fusion --------------------------------------------------------------------------------

// The Adds of the embedding sum and their Gather leaves.
struct SumTree {
  std::vector<ir::Node*> adds;
  std::vector<ir::Node*> gathers;
};

// Walks the Add tree computing `value` down to its leaves; every leaf must be a Gather, and an
// embedding has two (DistilBERT) or three of them.
std::string Flatten(const ir::Value* value, SumTree& tree) {
  ir::Node* n = value->producer();
  if (n && n->Is("Add") && n->num_inputs() == 2) {
    tree.adds.push_back(n);
    for (int i = 0; i < 2; ++i) {
      if (std::string why = Flatten(n->input(i), tree); !why.empty()) return why;
    }
    return {};
  }
  if (n && n->Is("Gather")) {
    tree.gathers.push_back(n);
    if (tree.gathers.size() > 3) return "the sum has more than three Gather terms";
    return {};
  }
  return fmt::format("term '{}'{} of the sum is not a Gather", value->name(),
                     n ? " (from " + n->DisplayName() + ")" : " (a graph input or constant)");
}

// Which Gather is which: what each one indexes decides it.
struct Roles {
  ir::Node* word = nullptr;
  ir::Node* position = nullptr;
  ir::Node* segment = nullptr;  // nullptr: no token type term (DistilBERT)
  ir::Value* ids = nullptr;
  ir::Value* segment_ids = nullptr;   // graph input or zeros, before any Cast
  ir::Value* position_ids = nullptr;  // nullptr: the default 0..S-1
  ir::Value* word_table = nullptr;
  ir::Value* position_table = nullptr;
  ir::Value* segment_table = nullptr;
  // Lower is a more natural reading of the graph: default positions, then computed ones, then
  // ones fed as a graph input (which could as well be a segment input).
  int preference = 0;
};

// Checks one assignment of the Gathers to word / position / segment. Returns "" or the reason.
std::string TryRoles(const ir::Graph& graph, Roles& r) {
  MatchResult word = MatchPattern(graph, r.word, WordLookup());
  if (!word.ok()) return "word lookup: " + word.reason();
  r.ids = word.match()["ids"];
  r.word_table = word.match()["word_table"];
  auto ids_dims = DeclaredDims(graph, r.ids);
  if (!ids_dims || ids_dims->size() != 2) {
    return fmt::format("ids '{}' are not declared 2-D (batch, sequence)", r.ids->name());
  }
  const IdsShapes shapes(graph, r.ids);

  if (r.segment) {
    MatchResult segment = MatchPattern(graph, r.segment, SegmentLookup(shapes));
    if (!segment.ok()) {
      return "token type lookup (indices must be a graph input or zeros shaped like the ids): " +
             segment.reason();
    }
    r.segment_ids = segment.match()["segment_ids"];
    r.segment_table = segment.match()["segment_table"];
    if (r.segment_ids->is_graph_input()) {
      auto dims = DeclaredDims(graph, r.segment_ids);
      bool same = dims && dims->size() == 2;
      for (int i = 0; same && i < 2; ++i) same = MayBeEqual((*dims)[i], (*ids_dims)[i]);
      if (!same) {
        return fmt::format("segment ids '{}' are declared {}, the ids {}", r.segment_ids->name(),
                           dims ? FormatDims(*dims) : "without a shape", FormatDims(*ids_dims));
      }
    }
  }

  MatchResult by_default =
      MatchPattern(graph, r.position, Lookup("position_table", shapes.Positions()));
  if (by_default.ok()) {
    r.position_table = by_default.match()["position_table"];
    r.position_ids = nullptr;
    r.preference = 0;
    return {};
  }
  // Not 0..S-1: exact as explicit position ids when their shape is (B,S) or (1,S).
  MatchResult given =
      MatchPattern(graph, r.position, Lookup("position_table", Any("position_ids")));
  if (!given.ok()) return "position lookup: " + given.reason();
  r.position_table = given.match()["position_table"];
  r.position_ids = given.match()["position_ids"];
  auto dims = DeclaredDims(graph, r.position_ids);
  const bool fits = dims && dims->size() == 2 && MayBeEqual((*dims)[1], (*ids_dims)[1]) &&
                    ((*dims)[0] == "1" || MayBeEqual((*dims)[0], (*ids_dims)[0]));
  if (!fits) {
    return fmt::format(
        "position ids '{}' are not 0..S-1 ({}) and, declared {}, cannot be passed as (B,S) or "
        "(1,S) position ids with ids {}",
        r.position_ids->name(), by_default.reason(), dims ? FormatDims(*dims) : "without a shape",
        FormatDims(*ids_dims));
  }
  r.preference = r.position_ids->is_graph_input() ? 2 : 1;
  return {};
}

// "w (word) + p (position) + t (token type)", named by the Gathers' outputs.
std::string Describe(const Roles& r) {
  std::string s = fmt::format("'{}' (word) + '{}' (position)", r.word->output(0)->name(),
                              r.position->output(0)->name());
  if (r.segment) s += fmt::format(" + '{}' (token type)", r.segment->output(0)->name());
  return s;
}

// The ReduceSum(int32 mask, axes [1], keepdims 0) that Attention made for some graph input, when
// EmbedLayerNormalization can produce the same mask index instead (it counts the ones of each
// row, which for a 0/1 mask is the ReduceSum).
struct MaskIndex {
  ir::Value* mask32 = nullptr;
  ir::Node* reduce_sum = nullptr;
};

std::optional<MaskIndex> FindMaskIndex(const ir::Graph& graph, const Roles& r) {
  const auto ids_dims = DeclaredDims(graph, r.ids);
  std::vector<MaskIndex> found;
  for (ir::Value* mask : graph.Inputs()) {
    ir::Node* sum = FindMaskIndexNode(graph, mask);
    if (!sum) continue;
    ir::Value* mask32 = sum->input(0);
    const ir::Node* cast = mask32 ? mask32->producer() : nullptr;
    const bool reads_mask = mask32 == mask ? graph.ElementType(mask) == onnx::TensorProto::INT32
                                           : cast && cast->Is("Cast") && cast->input(0) == mask &&
                                                 cast->AttrInt("to") == onnx::TensorProto::INT32;
    if (!reads_mask || sum->AttrInt("keepdims").value_or(1) != 0 ||
        AxesOf(graph, *sum) != std::vector<int64_t>{1}) {
      continue;
    }
    // EmbedLayerNormalization wants the mask shaped exactly like the ids.
    auto dims = DeclaredDims(graph, mask);
    bool same = dims && ids_dims && dims->size() == 2;
    for (int i = 0; same && i < 2; ++i) same = MayBeEqual((*dims)[i], (*ids_dims)[i]);
    // The uses move to our output 1: impossible for a graph output or a subgraph read, and a
    // cycle if our own position ids were computed from the mask index.
    ir::Value* index = sum->output(0);
    bool movable = !index->is_graph_output();
    for (const ir::Use& use : index->uses()) movable &= use.index != ir::Use::kImplicitUse;
    if (r.position_ids && DependsOn(r.position_ids, index)) movable = false;
    if (same && movable) found.push_back({mask32, sum});
  }
  if (found.size() != 1) return std::nullopt;
  return found.front();
}

// Whether everything `node` computes is read only by `node`'s chain and, at its ends, by nodes of
// `sinks`: then `node` and `chain` (filled with it and what follows) die with `sinks`.
bool DiesWith(ir::Node* node, const std::vector<ir::Node*>& sinks, std::vector<ir::Node*>& chain) {
  if (std::find(sinks.begin(), sinks.end(), node) != sinks.end()) return true;
  if (chain.size() > 64) return false;
  if (std::find(chain.begin(), chain.end(), node) != chain.end()) return true;
  chain.push_back(node);
  for (const ir::Value* out : node->outputs()) {
    if (!out) continue;
    if (out->is_graph_output()) return false;
    for (const ir::Use& use : out->uses()) {
      if (use.index == ir::Use::kImplicitUse || !DiesWith(use.node, sinks, chain)) return false;
    }
  }
  return true;
}

bool LooksLikeEmbeddingSum(const ir::Graph& graph, const ir::Value* value, int depth) {
  const ir::Node* n = value ? value->producer() : nullptr;
  if (!n || depth > 2) return false;
  if (n->Is("Gather")) return depth > 0 && graph.ConstantTensor(n->input(0)) != nullptr;
  if (!n->Is("Add")) return false;
  return LooksLikeEmbeddingSum(graph, n->input(0), depth + 1) ||
         LooksLikeEmbeddingSum(graph, n->input(1), depth + 1);
}

// keras2onnx 1.6.1 and static tf2onnx exports add the position rows pre-sliced: a constant term
// P of [1, S, H] or [S, H]. P equals Gather(P as an [S, H] table, [[0..S-1]]), which is how every
// other exporter writes the lookup, with the default position ids. So rewrite the term that way,
// when the sum also has a Gather of ids of static sequence length S (else P may not be a position
// table, and nothing is rewritten). The rewrite is undone unless the fusion then succeeds.
class MaterializedPositions {
 public:
  MaterializedPositions(ir::Graph& graph, const ir::Value* sum);
  ~MaterializedPositions() {
    if (!gather_ || kept_) return;
    graph_.SetInput(add_, index_, term_);
    std::vector<ir::Value*> made = {gather_->input(0), gather_->input(1)};
    graph_.EraseNode(gather_);
    for (ir::Value* v : made) graph_.RemoveInitializer(v);
  }
  MaterializedPositions(const MaterializedPositions&) = delete;
  MaterializedPositions& operator=(const MaterializedPositions&) = delete;
  void Keep() { kept_ = true; }

 private:
  ir::Graph& graph_;
  ir::Node* add_ = nullptr;
  int index_ = 0;
  ir::Value* term_ = nullptr;
  ir::Node* gather_ = nullptr;
  bool kept_ = false;
};

MaterializedPositions::MaterializedPositions(ir::Graph& graph, const ir::Value* sum)
    : graph_(graph) {
  std::vector<std::pair<ir::Node*, int>> constants;  // (Add, input index) reading a constant
  int64_t seq = -1;
  std::vector<const ir::Value*> stack{sum};
  while (!stack.empty()) {
    const ir::Value* v = stack.back();
    stack.pop_back();
    ir::Node* n = v ? v->producer() : nullptr;
    if (!n) continue;
    if (n->Is("Add") && n->num_inputs() == 2) {
      for (int i = 0; i < 2; ++i) {
        if (graph.ConstantTensor(n->input(i))) constants.emplace_back(n, i);
        stack.push_back(n->input(i));
      }
    } else if (n->Is("Gather")) {
      const ir::Value* ids = n->input(1);
      if (ids && ids->producer() && ids->producer()->Is("Cast")) ids = ids->producer()->input(0);
      auto dims = ids && ids->is_graph_input() ? graph.Shape(ids) : std::nullopt;
      if (dims && dims->size() == 2 && (*dims)[1] > 0) seq = (*dims)[1];
    }
  }
  if (constants.size() != 1 || seq <= 0) return;
  auto [add, index] = constants.front();
  ir::Value* term = add->input(index);
  const onnx::TensorProto* t = graph.ConstantTensor(term);
  const bool shaped = (t->dims_size() == 3 && t->dims(0) == 1 && t->dims(1) == seq) ||
                      (t->dims_size() == 2 && t->dims(0) == seq);
  if (!shaped || t->data_type() != onnx::TensorProto::FLOAT) return;
  onnx::TensorProto table = *t;
  table.set_name(graph.UniqueName(term->name() + "_table"));
  table.clear_dims();
  table.add_dims(seq);
  table.add_dims(t->dims(t->dims_size() - 1));
  std::vector<int64_t> rows(seq);
  for (int64_t i = 0; i < seq; ++i) rows[i] = i;
  std::vector<int64_t> ids_dims =
      t->dims_size() == 3 ? std::vector<int64_t>{1, seq} : std::vector<int64_t>{seq};
  ir::Value* ids = graph.AddInitializer(
      ir::MakeInt64Tensor(graph.UniqueName(term->name() + "_position_ids"), ids_dims, rows));
  ir::Value* table_value = graph.AddInitializer(std::move(table));
  gather_ = graph.AddNode("Gather", {table_value->name(), ids->name()},
                          {graph.UniqueName(term->name() + "_lookup")});
  graph.SetInput(add, index, gather_->output(0));
  add_ = add;
  index_ = index;
  term_ = term;
}

class EmbedLayerNormFusion : public Fusion {
 public:
  std::string_view name() const override { return "embed_layer_norm"; }

 protected:
  // LayerNorms of a sum with a table lookup in it; the encoder's residual LayerNorms are not
  // candidates.
  std::vector<ir::Node*> Anchors(const ir::Graph& graph) const override {
    std::vector<ir::Node*> anchors;
    for (ir::Node* ln : graph.NodesOfType("LayerNormalization")) {
      if (LooksLikeEmbeddingSum(graph, ln->input(0), 0)) anchors.push_back(ln);
    }
    return anchors;
  }

  FuseResult FuseAt(const PassOptions&, ir::Graph& graph, ir::Node* ln) const override {
    MatchResult norm =
        MatchPattern(graph, ln, Op("LayerNormalization", {Any("sum"), Const("gamma")}));
    if (!norm.ok()) return FuseResult::Miss(norm.reason());
    ir::Value* sum = norm.match()["sum"];
    ir::Value* gamma = norm.match()["gamma"];
    ir::Value* beta = ln->input(2);
    for (int i = 1; i < ln->num_outputs(); ++i) {
      const ir::Value* stat = ln->output(i);
      if (stat && (stat->is_graph_output() || !stat->uses().empty())) {
        return FuseResult::Miss(fmt::format("LayerNorm statistic '{}' is used", stat->name()));
      }
    }

    MaterializedPositions positions(graph, sum);
    SumTree tree;
    if (std::string why = Flatten(sum, tree); !why.empty()) return FuseResult::Miss(why);
    if (tree.gathers.size() < 2) return FuseResult::Miss("the LayerNorm input is not a sum");

    // Every assignment of the Gathers to roles. Preferred: default positions, then computed ones;
    // a word table larger than the segment table; then the sum's own order (torch writes word +
    // position + type), which is also the reading a miss is explained in.
    std::optional<Roles> best;
    std::string reason;
    std::vector<int> order(tree.gathers.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
    auto rank = [&graph](const Roles& r) {
      const bool word_is_larger =
          !r.segment_table || Rows(graph, r.word_table) > Rows(graph, r.segment_table);
      return std::pair(r.preference, word_is_larger ? 0 : 1);
    };
    do {
      Roles r;
      r.word = tree.gathers[order[0]];
      r.position = tree.gathers[order[1]];
      if (order.size() == 3) r.segment = tree.gathers[order[2]];
      std::string why = TryRoles(graph, r);
      if (why.empty() && (!best || rank(r) < rank(*best))) best = r;
      if (reason.empty()) reason = fmt::format("reading the sum as {}: {}", Describe(r), why);
    } while (std::next_permutation(order.begin(), order.end()));
    if (!best) return FuseResult::Miss(reason);
    const Roles& r = *best;

    // Sizes the fused op assumes.
    const onnx::TensorProto* word = graph.ConstantTensor(r.word_table);
    const int64_t hidden = word->dims(1);
    for (const ir::Value* table : {r.position_table, r.segment_table}) {
      if (table && graph.ConstantTensor(table)->dims(1) != hidden) {
        return FuseResult::Miss(fmt::format("table '{}' has width {}, the word table {}",
                                            table->name(), graph.ConstantTensor(table)->dims(1),
                                            hidden));
      }
      // One type T for every table, gamma and beta.
      if (table && graph.ConstantTensor(table)->data_type() != word->data_type()) {
        return FuseResult::Miss(fmt::format("table '{}' and the word table differ in type",
                                            table->name()));
      }
    }
    for (const ir::Value* v : {gamma, beta}) {
      if (!v) continue;
      const onnx::TensorProto* t = graph.ConstantTensor(v);
      if (!t) return FuseResult::Miss(fmt::format("'{}' is not a constant", v->name()));
      if (t->data_type() != word->data_type() || t->dims_size() != 1 || t->dims(0) != hidden) {
        return FuseResult::Miss(fmt::format(
            "'{}' is not a vector of the hidden size {} of the word table's type", v->name(),
            hidden));
      }
    }
    const int64_t axis = ln->AttrInt("axis").value_or(-1);
    if (axis != -1 && axis != 2) {
      return FuseResult::Miss(fmt::format("LayerNorm over axis {}, not the hidden axis", axis));
    }

    // Everything replaced must be read only inside; the sum itself may be read elsewhere (it
    // becomes output 2).
    std::vector<ir::Node*> replaced{ln};
    replaced.insert(replaced.end(), tree.adds.begin(), tree.adds.end());
    replaced.insert(replaced.end(), tree.gathers.begin(), tree.gathers.end());
    // torch 2.x reads S for the position ids off Shape(word lookup): such a Shape, and the chain
    // it feeds, go with the match when all of it ends in the replaced lookups.
    for (ir::Node* gather : tree.gathers) {
      for (const ir::Use& use : gather->output(0)->uses()) {
        std::vector<ir::Node*> chain;
        if (use.node->Is("Shape") && DiesWith(use.node, replaced, chain)) {
          for (ir::Node* n : chain) {
            if (std::find(replaced.begin(), replaced.end(), n) == replaced.end()) {
              replaced.push_back(n);
            }
          }
        }
      }
    }
    std::vector<const ir::Value*> allowed(ln->outputs().begin(), ln->outputs().end());
    allowed.push_back(sum);
    if (std::string why = pattern::CheckContained(replaced, allowed); !why.empty()) {
      return FuseResult::Miss(why);
    }
    const bool sum_read_elsewhere = sum->is_graph_output() || sum->uses().size() > 1;
    const std::optional<MaskIndex> mask = FindMaskIndex(graph, r);

    // Rewrite.
    const float epsilon = ln->AttrFloat("epsilon").value_or(kOnnxDefaultEpsilon);
    const std::string output = ln->output(0)->name();
    const std::string sum_name = sum->name();
    std::vector<std::string> inputs{
        GetOrCreateInt32(graph, r.ids)->name(),
        r.segment ? GetOrCreateInt32(graph, r.segment_ids)->name() : "",
        r.word_table->name(),
        r.position_table->name(),
        r.segment ? r.segment_table->name() : "",
        gamma->name(),
        beta ? beta->name()
             : graph
                   .AddInitializer(ir::MakeFloatTensor(gamma->name() + "_zero_beta", {hidden},
                                                       std::vector<float>(hidden, 0.0f)))
                   ->name(),
        mask ? mask->mask32->name() : "",
        r.position_ids ? GetOrCreateInt32(graph, r.position_ids)->name() : "",
    };
    while (inputs.back().empty()) inputs.pop_back();
    for (ir::Node* n : replaced) graph.EraseNode(n);
    // ORT's type inference always types output 1, so it must exist even when nothing reads it
    // (without a mask it is zeros).
    std::vector<std::string> outputs{
        output,
        graph.UniqueName(mask ? mask->reduce_sum->output(0)->name() : output + "_mask_index")};
    if (sum_read_elsewhere) outputs.push_back(sum_name);
    positions.Keep();
    ir::Node* fused = graph.AddNode("EmbedLayerNormalization", inputs, outputs, ir::kMsDomain,
                                    "EmbedLayerNormalization");
    fused->SetAttr("epsilon", epsilon);
    if (mask) {
      if (Status s = graph.ReplaceAllUses(mask->reduce_sum->output(0), fused->output(1)); !s.ok()) {
        return FuseResult::Error(s);
      }
      graph.EraseNode(mask->reduce_sum);
    }
    return FuseResult::Fused();
  }

 private:
  static int64_t Rows(const ir::Graph& graph, const ir::Value* table) {
    return graph.ConstantTensor(table)->dims(0);
  }
};

}  // namespace

std::unique_ptr<Pass> MakeEmbedLayerNormFusion() {
  return std::make_unique<EmbedLayerNormFusion>();
}

}  // namespace bertopt::passes
