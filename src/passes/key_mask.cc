#include "passes/key_mask.h"

#include <algorithm>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"

namespace bertopt::passes {
namespace {

// Constant index tensors larger than this are not read (a mask's are B·S·2 elements).
constexpr size_t kMaxFitted = 1 << 16;

// constant + Σ coefficient·x[axis] over a value's coordinates x. Coefficients are sizes (known or
// symbols, never negative), so the minimum over all coordinates is `constant`.
struct Affine {
  int64_t constant = 0;
  std::vector<std::pair<int64_t, Dim>> terms;  // (axis, coefficient)
  bool operator==(const Affine&) const = default;
};

Affine Coordinate(int64_t axis) { return {.constant = 0, .terms = {{axis, Dim::Known(1)}}}; }

// The axis when `a` is exactly x[axis].
std::optional<int64_t> AsCoordinate(const Affine& a) {
  if (a.constant != 0 || a.terms.size() != 1 || a.terms[0].second != Dim::Known(1)) {
    return std::nullopt;
  }
  return a.terms[0].first;
}

// What every element of a value is, as a function of the value's own coordinates.
struct Elem {
  enum Kind {
    kTrue,    // true (or a non-zero integer) everywhere
    kAffine,  // the integer `a`
    kMask,    // mask[a, b] != 0
    kPair,    // along the last axis (size 2): `a` at 0, `b` at 1
  } kind = kTrue;
  Affine a, b;
  ir::Value* mask = nullptr;
  Dims dims;
};

// `values` (row-major, of `dims`) as constant + Σ c·x[axis] with c >= 0, checked at every element;
// static exports fold the index arithmetic into such tensors.
std::optional<Affine> FitAffine(const std::vector<int64_t>& values,
                                const std::vector<int64_t>& dims, size_t begin, size_t stride_all) {
  Affine a{.constant = values[begin], .terms = {}};
  std::vector<int64_t> strides(dims.size(), 0);
  int64_t stride = static_cast<int64_t>(stride_all);
  for (size_t i = dims.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= dims[i];
  }
  for (size_t axis = 0; axis < dims.size(); ++axis) {
    if (dims[axis] <= 1) continue;
    const int64_t c = values[begin + strides[axis]] - values[begin];
    if (c < 0) return std::nullopt;
    if (c > 0) a.terms.emplace_back(static_cast<int64_t>(axis), Dim::Known(c));
  }
  std::vector<int64_t> index(dims.size(), 0);
  for (;;) {
    int64_t expected = a.constant;
    size_t at = begin;
    for (size_t axis = 0; axis < dims.size(); ++axis) at += index[axis] * strides[axis];
    for (const auto& [axis, c] : a.terms) expected += c.size * index[axis];
    if (values[at] != expected) return std::nullopt;
    size_t axis = dims.size();
    while (axis > 0 && ++index[axis - 1] == dims[axis - 1]) index[--axis] = 0;
    if (axis == 0) return a;
  }
}

bool IsIntegerOrBool(int32_t type) {
  using T = onnx::TensorProto;
  return type == T::INT64 || type == T::INT32 || type == T::INT8 || type == T::UINT8 ||
         type == T::BOOL || type == T::INT16 || type == T::UINT16 || type == T::UINT32 ||
         type == T::UINT64;
}

class Prover {
 public:
  Prover(const ir::Graph& graph, SymbolicDims& dims) : graph_(graph), dims_(dims) {}

  // nullopt with reason() set when `v` is not expressible.
  std::optional<Elem> Eval(ir::Value* v) {
    if (auto it = memo_.find(v); it != memo_.end()) return it->second;
    if (++depth_ > 64) return Fail(fmt::format("'{}' is too deep to trace", v->name()));
    std::optional<Elem> e = EvalValue(v);
    --depth_;
    if (e) Normalize(*e);
    memo_[v] = e;
    return e;
  }
  const std::string& reason() const { return reason_; }

 private:
  std::optional<Elem> Fail(std::string why) {
    if (reason_.empty()) reason_ = std::move(why);
    return std::nullopt;
  }

  // A coordinate along an axis of size 1 is always 0: drop it, so broadcasting never sees it.
  static void Normalize(Elem& e) {
    for (Affine* a : {&e.a, &e.b}) {
      std::erase_if(a->terms, [&](const auto& t) {
        return t.first < static_cast<int64_t>(e.dims.size()) && e.dims[t.first] == Dim::Known(1);
      });
    }
  }

  // `e` broadcast to `out` (numpy: trailing axes aligned). Exact when every axis `e` reads has
  // the same dim in `out`: otherwise the broadcast could repeat an element along it.
  std::optional<Elem> Place(const Elem& e, const Dims& out, const ir::Value& at) {
    if (e.kind == Elem::kPair || e.dims.size() > out.size()) {
      return Fail(fmt::format("'{}' broadcasts an index pair or to a smaller rank", at.name()));
    }
    const int64_t shift = static_cast<int64_t>(out.size() - e.dims.size());
    Elem r = e;
    r.dims = out;
    for (Affine* a : {&r.a, &r.b}) {
      for (auto& [axis, coefficient] : a->terms) {
        if (e.dims[axis] != out[axis + shift]) {
          return Fail(fmt::format("'{}' broadcasts axis {} ({}) to {}: a coordinate could repeat",
                                  at.name(), axis, ToString({e.dims[axis]}),
                                  ToString({out[axis + shift]})));
        }
        axis += shift;
      }
    }
    return r;
  }

  // Reshape / Squeeze / Unsqueeze: exact when they only insert or drop size-1 axes, i.e. the
  // other dims are the same in the same order. Chains of Reshapes are one reshape of the first
  // input (row-major order throughout).
  std::optional<Elem> Regroup(const ir::Node& n, const Dims& out) {
    ir::Value* src = n.input(0);
    while (n.Is("Reshape") && src && src->producer() && src->producer()->Is("Reshape")) {
      src = src->producer()->input(0);
    }
    std::optional<Elem> in = Eval(src);
    if (!in) return std::nullopt;
    if (in->kind == Elem::kPair)
      return Fail(fmt::format("{} reshapes an index pair", n.DisplayName()));
    std::vector<int64_t> from, to;
    for (size_t i = 0; i < in->dims.size(); ++i) {
      if (in->dims[i] != Dim::Known(1)) from.push_back(static_cast<int64_t>(i));
    }
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i] != Dim::Known(1)) to.push_back(static_cast<int64_t>(i));
    }
    bool same = from.size() == to.size();
    for (size_t i = 0; same && i < from.size(); ++i) same = in->dims[from[i]] == out[to[i]];
    if (!same) {
      return Fail(fmt::format("{} turns {} into {}: not only size-1 axes added or removed",
                              n.DisplayName(), ToString(in->dims), ToString(out)));
    }
    Elem r = *in;
    r.dims = out;
    for (Affine* a : {&r.a, &r.b}) {
      for (auto& term : a->terms) {
        const auto at = std::find(from.begin(), from.end(), term.first);
        term.first = to[at - from.begin()];
      }
    }
    return r;
  }

  // A one-element integer operand as a size: a constant, or a dimension read.
  std::optional<Dim> SizeOperand(const ir::Value* v) {
    auto elements = dims_.ElementsOf(v);
    if (!elements || elements->size() != 1 || !elements->front() ||
        SymbolicDims::IsInfer(elements->front())) {
      return std::nullopt;
    }
    return elements->front();
  }

  std::optional<Elem> Scale(const ir::Node& n, const Dims& out) {
    for (int side : {0, 1}) {
      std::optional<Dim> size = SizeOperand(n.input(1 - side));
      if (!size) continue;
      std::optional<Elem> e = Eval(n.input(side));
      if (!e) return std::nullopt;
      if (e->kind != Elem::kAffine) break;
      Elem r = *e;
      if (!size->known() && r.a.constant != 0) break;
      r.a.constant *= size->known() ? size->size : 0;
      for (auto& [axis, coefficient] : r.a.terms) {
        if (coefficient.known() && size->known()) {
          coefficient = Dim::Known(coefficient.size * size->size);
        } else if (coefficient == Dim::Known(1)) {
          coefficient = *size;
        } else {
          return Fail(fmt::format("{} multiplies two symbolic sizes", n.DisplayName()));
        }
      }
      return Place(r, out, *n.output(0));
    }
    return Fail(fmt::format("{} is not an index times a size", n.DisplayName()));
  }

  std::optional<Elem> Sum(const ir::Node& n, const Dims& out) {
    Elem r{.kind = Elem::kAffine, .dims = out};
    for (ir::Value* in : n.inputs()) {
      std::optional<Elem> e = Eval(in);
      if (!e) return std::nullopt;
      if (e->kind != Elem::kAffine)
        return Fail(fmt::format("{} adds a non-index", n.DisplayName()));
      e = Place(*e, out, *n.output(0));
      if (!e) return std::nullopt;
      r.a.constant += e->a.constant;
      for (const auto& term : e->a.terms) {
        auto same_axis = std::find_if(r.a.terms.begin(), r.a.terms.end(),
                                      [&](const auto& t) { return t.first == term.first; });
        if (same_axis == r.a.terms.end()) {
          r.a.terms.push_back(term);
        } else if (same_axis->second.known() && term.second.known()) {
          same_axis->second = Dim::Known(same_axis->second.size + term.second.size);
        } else {
          return Fail(fmt::format("{} adds symbolic multiples of one axis", n.DisplayName()));
        }
      }
    }
    return r;
  }

  // The (B, S) mask itself: mask[x[0], x[1]].
  static bool IsWholeMask(const Elem& e) {
    return e.kind == Elem::kMask && e.dims.size() == 2 && AsCoordinate(e.a) == 0 &&
           AsCoordinate(e.b) == 1;
  }

  // mask[x[p], x[q]] over `out`.
  static Elem MaskAt(int64_t p, int64_t q, const Elem& mask, const Dims& out) {
    return {.kind = Elem::kMask,
            .a = Coordinate(p),
            .b = Coordinate(q),
            .mask = mask.mask,
            .dims = out};
  }

  // Gather(Flatten(m, 2), x[p]·S + x[q], axis 0) with m = mask[B, S] and x[p] < B, x[q] < S:
  // row x[p]·S + x[q] of the flattened mask is mask[x[p], x[q]].
  std::optional<Elem> GatherFlat(const ir::Node& n, const Dims& out) {
    const ir::Node* flatten = n.input(0) ? n.input(0)->producer() : nullptr;
    if (n.AttrInt("axis").value_or(0) != 0 || !flatten || !flatten->Is("Flatten")) {
      return Fail(fmt::format("{} is not a row gather from a flattened mask", n.DisplayName()));
    }
    std::optional<Elem> data = Eval(flatten->input(0));
    std::optional<Elem> index = data ? Eval(n.input(1)) : std::nullopt;
    if (!index) return std::nullopt;
    if (!IsWholeMask(*data) || flatten->AttrInt("axis").value_or(1) != 2) {
      return Fail(
          fmt::format("{} does not flatten a (B, S) mask into rows", flatten->DisplayName()));
    }
    const Dim& batch = data->dims[0];
    const Dim& sequence = data->dims[1];
    std::optional<int64_t> p, q;
    if (index->kind == Elem::kAffine && index->a.constant == 0 && index->a.terms.size() == 2) {
      for (const auto& [axis, coefficient] : index->a.terms) {
        if (coefficient == Dim::Known(1)) q = axis;
        if (coefficient == sequence && coefficient != Dim::Known(1)) p = axis;
      }
    }
    if (!p || !q || index->dims[*p] != batch || index->dims[*q] != sequence) {
      return Fail(
          fmt::format("{}: the row index is not b·S + k over the mask's (B, S)", n.DisplayName()));
    }
    return MaskAt(*p, *q, *data, out);
  }

  // GatherND(mask[B, S], [x[p], x[q]] along the last axis) with x[p] < B, x[q] < S.
  std::optional<Elem> GatherNd(const ir::Node& n, const Dims& out) {
    std::optional<Elem> data = Eval(n.input(0));
    std::optional<Elem> index = data ? Eval(n.input(1)) : std::nullopt;
    if (!index) return std::nullopt;
    if (n.AttrInt("batch_dims").value_or(0) != 0 || !IsWholeMask(*data) ||
        index->kind != Elem::kPair) {
      return Fail(
          fmt::format("{} does not gather (b, k) pairs from a (B, S) mask", n.DisplayName()));
    }
    const std::optional<int64_t> p = AsCoordinate(index->a);
    const std::optional<int64_t> q = AsCoordinate(index->b);
    if (!p || !q || *p >= static_cast<int64_t>(out.size()) ||
        *q >= static_cast<int64_t>(out.size()) || out[*p] != data->dims[0] ||
        out[*q] != data->dims[1]) {
      return Fail(
          fmt::format("{}: the pairs are not (b, k) over the mask's (B, S)", n.DisplayName()));
    }
    return MaskAt(*p, *q, *data, out);
  }

  // Concat(a[.., 1], b[.., 1], axis = last) of two indices: the pair GatherND reads.
  std::optional<Elem> Pair(const ir::Node& n, const Dims& out) {
    const int64_t rank = static_cast<int64_t>(out.size());
    const int64_t axis = n.AttrInt("axis").value_or(0);
    if (n.num_inputs() != 2 || rank == 0 || (axis != -1 && axis != rank - 1)) {
      return Fail(fmt::format("{} is not a pair along the last axis", n.DisplayName()));
    }
    Elem r{.kind = Elem::kPair, .dims = out};
    for (int i : {0, 1}) {
      std::optional<Elem> e = Eval(n.input(i));
      if (!e) return std::nullopt;
      if (e->kind != Elem::kAffine || e->dims.size() != out.size() ||
          e->dims.back() != Dim::Known(1)) {
        return Fail(
            fmt::format("{}: input {} is not an index with a last axis of 1", n.DisplayName(), i));
      }
      Dims placed = out;
      placed.back() = Dim::Known(1);
      e = Place(*e, placed, *n.output(0));
      if (!e) return std::nullopt;
      (i == 0 ? r.a : r.b) = e->a;
    }
    return r;
  }

  std::optional<Elem> EvalValue(ir::Value* v) {
    const std::optional<Dims> out = dims_.Of(v);
    if (!out) return Fail(fmt::format("the dims of '{}' are unknown", v->name()));
    const int32_t type = graph_.ElementType(v);
    if (v->is_graph_input() && !v->initializer()) {
      if (out->size() != 2 || !IsIntegerOrBool(type)) {
        return Fail(fmt::format("'{}' is not a 2-D integer or bool graph input", v->name()));
      }
      return Elem{
          .kind = Elem::kMask, .a = Coordinate(0), .b = Coordinate(1), .mask = v, .dims = *out};
    }
    if (const onnx::TensorProto* t = graph_.ConstantTensor(v)) {
      auto values = ir::DecodeAsInts(*t);
      if (type == onnx::TensorProto::BOOL && values &&
          std::all_of(values->begin(), values->end(), [](int64_t x) { return x != 0; })) {
        return Elem{.kind = Elem::kTrue, .dims = *out};
      }
      if (type != onnx::TensorProto::BOOL && values && !values->empty() &&
          values->size() <= kMaxFitted) {
        std::vector<int64_t> shape(t->dims().begin(), t->dims().end());
        if (auto a = FitAffine(*values, shape, 0, 1)) {
          return Elem{.kind = Elem::kAffine, .a = *a, .dims = *out};
        }
        // An index pair along the last axis (GatherND's indices).
        if (!shape.empty() && shape.back() == 2) {
          shape.pop_back();
          auto first = FitAffine(*values, shape, 0, 2);
          auto second = FitAffine(*values, shape, 1, 2);
          if (first && second) {
            return Elem{.kind = Elem::kPair, .a = *first, .b = *second, .dims = *out};
          }
        }
      }
      return Fail(
          fmt::format("the constant '{}' is neither all true nor an affine index", v->name()));
    }
    const ir::Node* n = v->producer();
    if (!n || !n->domain().empty()) {
      return Fail(fmt::format("'{}' is not computed by an ONNX op", v->name()));
    }
    if (n->Is("Cast") && n->AttrInt("to") == onnx::TensorProto::BOOL) {
      // A constant of non-zero numbers cast to bool (dynamo's new_ones) is true everywhere.
      const onnx::TensorProto* c = graph_.ConstantTensor(n->input(0));
      const auto numbers = c ? ir::DecodeAsDoubles(*c) : std::nullopt;
      if (numbers && !numbers->empty() &&
          std::all_of(numbers->begin(), numbers->end(), [](double x) { return x != 0; })) {
        return Elem{.kind = Elem::kTrue, .dims = *out};
      }
    }
    if (n->Is("Cast") || n->Is("Identity")) {
      std::optional<Elem> in = Eval(n->input(0));
      if (!in) return std::nullopt;
      // 0/1 and indices (whole numbers) keep their values between integer and bool types.
      const auto to = static_cast<int32_t>(n->AttrInt("to").value_or(0));
      if (n->Is("Cast") &&
          (!IsIntegerOrBool(to) || (in->kind == Elem::kAffine && to == onnx::TensorProto::BOOL))) {
        return Fail(fmt::format("{} casts to or from a non-integer type", n->DisplayName()));
      }
      in->dims = *out;
      return in;
    }
    if (n->Is("Range")) {
      if (graph_.ScalarValue(n->input(0)) != 0.0 || graph_.ScalarValue(n->input(2)) != 1.0 ||
          out->size() != 1) {
        return Fail(fmt::format("{} is not Range(0, n, 1)", n->DisplayName()));
      }
      return Elem{.kind = Elem::kAffine, .a = Coordinate(0), .dims = *out};
    }
    if (n->Is("Unsqueeze") || n->Is("Squeeze") || n->Is("Reshape")) return Regroup(*n, *out);
    if (n->Is("Expand")) {
      std::optional<Elem> in = Eval(n->input(0));
      return in ? Place(*in, *out, *v) : std::nullopt;
    }
    if (n->Is("ConstantOfShape")) {
      const onnx::AttributeProto* value = n->Attr("value");
      auto fill = value ? ir::DecodeAsInts(value->t()) : std::nullopt;
      if (!fill || fill->size() != 1 || fill->front() == 0) {
        return Fail(fmt::format("{} does not fill with true", n->DisplayName()));
      }
      return Elem{.kind = Elem::kTrue, .dims = *out};
    }
    if (n->Is("And")) {
      std::optional<Elem> a = Eval(n->input(0));
      std::optional<Elem> b = a ? Eval(n->input(1)) : std::nullopt;
      if (!b) return std::nullopt;
      if (a->kind == Elem::kTrue) return Place(*b, *out, *v);
      if (b->kind == Elem::kTrue) return Place(*a, *out, *v);
      return Fail(fmt::format("{} ands two conditions that are not always true", n->DisplayName()));
    }
    if (n->Is("GreaterOrEqual")) {
      // index >= c for every coordinate when its minimum, the constant, is >= c.
      std::optional<Elem> a = Eval(n->input(0));
      std::optional<Elem> c = a ? Eval(n->input(1)) : std::nullopt;
      if (!c) return std::nullopt;
      if (a->kind != Elem::kAffine || c->kind != Elem::kAffine || !c->a.terms.empty() ||
          a->a.constant < c->a.constant) {
        return Fail(fmt::format("{} is not always true", n->DisplayName()));
      }
      return Elem{.kind = Elem::kTrue, .dims = *out};
    }
    if (n->Is("Mul")) return Scale(*n, *out);
    if (n->Is("Add")) return Sum(*n, *out);
    if (n->Is("Gather")) return GatherFlat(*n, *out);
    if (n->Is("GatherND")) return GatherNd(*n, *out);
    if (n->Is("Concat")) return Pair(*n, *out);
    return Fail(
        fmt::format("{} ({}) is not an op the mask proof reads", n->DisplayName(), n->op_type()));
  }

  const ir::Graph& graph_;
  SymbolicDims& dims_;
  std::unordered_map<const ir::Value*, std::optional<Elem>> memo_;
  std::string reason_;
  int depth_ = 0;
};

}  // namespace

KeyMask ProveKeyMask(const ir::Graph& graph, ir::Value* cond, SymbolicDims& dims) {
  Prover prover(graph, dims);
  std::optional<Elem> e = prover.Eval(cond);
  if (!e) return {.reason = fmt::format("the mask '{}': {}", cond->name(), prover.reason())};
  const std::optional<Dims> mask_dims = e->mask ? dims.Of(e->mask) : std::nullopt;
  if (e->kind != Elem::kMask || e->dims.size() != 4 || !mask_dims || AsCoordinate(e->a) != 0 ||
      AsCoordinate(e->b) != 3 || e->dims[0] != (*mask_dims)[0] || e->dims[3] != (*mask_dims)[1]) {
    return {.reason = fmt::format("the mask '{}' {} is not provably mask[b, k] at [b, h, q, k]",
                                  cond->name(), ToString(e->dims))};
  }
  return {.mask = e->mask};
}

}  // namespace bertopt::passes
