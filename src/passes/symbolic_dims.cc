#include "passes/symbolic_dims.h"

#include <algorithm>
#include <limits>
#include <set>
#include <string_view>
#include <utility>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"

namespace bertopt::passes {
namespace {

// Chains longer than this are read from their declared shape only (a stack guard; BERT-large's
// longest path is under 1000 nodes).
constexpr int kMaxDepth = 2000;
constexpr int kMaxElementsDepth = 100;

// A Slice end that means "to the end of the axis": INT64_MAX (keras2onnx), INT32_MAX, or tf2onnx's
// 10^9. No axis is that long: a single row of 10^9 elements of a tensor BERT computes on would
// be gigabytes.
constexpr int64_t kToTheEnd = 1'000'000'000;

// The symbol of a Reshape target element -1 ("infer this dim"); no dim has it.
constexpr std::string_view kInfer = "-1";

// Op lists as " A B C ": `op` is in one when " op " is.
bool In(std::string_view ops, const std::string& op) {
  return ops.find(" " + op + " ") != std::string_view::npos;
}

// Ops whose output 0 has the shape of input 0.
constexpr std::string_view kKeepShape =
    " Abs Cast CastLike Ceil Clip Cos CumSum Dropout Elu Erf Exp Floor Gelu HardSigmoid Identity "
    "IsInf"
    " IsNaN LayerNormalization LeakyRelu Log LogSoftmax Neg Not Reciprocal Relu Round Selu Sigmoid"
    " Sign Sin Softmax Softplus Sqrt Tanh ";
// Elementwise ops with multidirectional (numpy) broadcasting.
constexpr std::string_view kBroadcast =
    " Add And BitShift Div Equal Greater GreaterOrEqual Less LessOrEqual Max Mean Min Mod Mul Or"
    " Pow PRelu Sub Sum Where Xor ";
constexpr std::string_view kReduce =
    " ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd"
    " ReduceSum ReduceSumSquare ";

// `axis` counted from 0 against `rank`; -1 when out of range.
int64_t NormalizeAxis(int64_t axis, size_t rank) {
  const auto r = static_cast<int64_t>(rank);
  if (axis < 0) axis += r;
  return axis >= 0 && axis < r ? axis : -1;
}

// The symbol a dim stands for when nothing explains it.
Dim Own(const ir::Value& value, size_t axis) {
  return Dim::Named(fmt::format("dim {} of '{}'", axis, value.name()));
}

// A shape element given as a number.
std::optional<Dim> Literal(int64_t value) {
  if (value >= 0) return Dim::Known(value);
  if (value == -1) return Dim::Named(std::string(kInfer));
  return std::nullopt;
}

// The dims Shape(y) returns of a rank-`rank` y: [start, end) with the opset-15 attributes.
std::pair<int64_t, int64_t> ShapeRange(const ir::Node& shape, size_t rank) {
  const auto r = static_cast<int64_t>(rank);
  auto clamp = [r](int64_t v) { return std::clamp(v < 0 ? v + r : v, int64_t{0}, r); };
  const int64_t start = clamp(shape.AttrInt("start").value_or(0));
  return {start, std::max(start, clamp(shape.AttrInt("end").value_or(r)))};
}

// The dims of the numpy broadcast of `operands` into `value`.
Dims Broadcast(const std::vector<Dims>& operands, const ir::Value& value) {
  size_t rank = 0;
  for (const Dims& d : operands) rank = std::max(rank, d.size());
  Dims result;
  for (size_t axis = 0; axis < rank; ++axis) {
    std::set<int64_t> sizes;  // known sizes other than 1
    std::vector<Dim> symbols;
    for (const Dims& d : operands) {
      if (axis + d.size() < rank) continue;  // this operand is right-aligned past the axis
      const Dim& dim = d[axis + d.size() - rank];
      if (dim.known() && dim.size != 1) sizes.insert(dim.size);
      if (!dim.known()) symbols.push_back(dim);
    }
    // min(X, k) against X: where it is not X it is k < X, which broadcasts only when k is 1.
    std::erase_if(symbols, [&](const Dim& s) {
      return !s.at_most.empty() && std::any_of(symbols.begin(), symbols.end(), [&](const Dim& t) {
        return t.at_most.empty() && t.symbol == s.at_most;
      });
    });
    const bool one_symbol = std::all_of(symbols.begin(), symbols.end(),
                                        [&](const Dim& s) { return s == symbols.front(); });
    if (sizes.size() == 1) {
      result.push_back(Dim::Known(*sizes.begin()));  // symbols here are 1 or this size
    } else if (sizes.empty() && symbols.empty()) {
      result.push_back(Dim::Known(1));
    } else if (sizes.empty() && one_symbol) {
      result.push_back(symbols.front());
    } else {
      result.push_back(Own(value, axis));  // unequal sizes (the model cannot run) or symbols
    }
  }
  return result;
}

// A graph input's dim_param that names one size (not one shape inference made up).
bool TrustedName(const onnx::TensorShapeProto::Dimension& d) {
  return d.has_dim_param() && !d.dim_param().empty() && !d.dim_param().starts_with("unk__");
}

}  // namespace

std::string ToString(const Dims& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    out += (i ? ", " : "") + (dims[i].known() ? std::to_string(dims[i].size) : dims[i].symbol);
  }
  return out + "]";
}

SymbolicDims::SymbolicDims(const ir::Graph& graph) : graph_(graph) {
  const onnx::GraphProto& g = graph.model().graph();
  for (const auto* list : {&g.value_info(), &g.output(), &g.input()}) {
    for (const auto& vi : *list) declared_[vi.name()] = &vi;
  }
}

std::optional<Dims> SymbolicDims::Declared(const ir::Value& value) const {
  auto it = declared_.find(value.name());
  if (it == declared_.end()) return std::nullopt;
  const auto& type = it->second->type();
  if (!type.has_tensor_type() || !type.tensor_type().has_shape()) return std::nullopt;
  const bool input = value.is_graph_input();
  const bool output = value.is_graph_output() && !input;
  // BERT's token inputs (ids, token types, mask: the 2-D integer inputs) are fed as one [B, S].
  const int32_t elem = type.tensor_type().elem_type();
  const bool token_input = input && type.tensor_type().shape().dim_size() == 2 &&
                           (elem == onnx::TensorProto::INT32 || elem == onnx::TensorProto::INT64);
  Dims dims;
  for (const auto& d : type.tensor_type().shape().dim()) {
    if (d.has_dim_value() && !output) {
      dims.push_back(Dim::Known(d.dim_value()));
    } else if (input && TrustedName(d)) {
      dims.push_back(Dim::Named(d.dim_param()));
    } else if (token_input) {
      dims.push_back(
          Dim::Named(dims.empty() ? "batch of the token inputs" : "sequence of the token inputs"));
    } else {
      dims.push_back(Own(value, dims.size()));
    }
    dims.back().of_input = input && !dims.back().known();
  }
  return dims;
}

std::optional<Dims> SymbolicDims::Of(const ir::Value* value) {
  if (!value) return std::nullopt;
  if (auto it = memo_.find(value); it != memo_.end()) return it->second;
  memo_[value] = std::nullopt;  // a cycle (invalid graph) reads as unknown
  std::optional<Dims> result;
  if (const onnx::TensorProto* t = graph_.ConstantTensor(value)) {
    result.emplace();
    for (int64_t d : t->dims()) result->push_back(Dim::Known(d));
  } else {
    std::optional<Dims> derived;
    if (value->producer() && depth_ < kMaxDepth) {
      ++depth_;
      derived = Derive(*value);
      --depth_;
    }
    const std::optional<Dims> declared = Declared(*value);
    result = derived ? derived : declared;
    const bool check = derived && declared && !value->is_graph_output();
    if (check && derived->size() != declared->size()) result = std::nullopt;  // one is wrong
    for (size_t i = 0; check && result && i < result->size(); ++i) {
      const Dim& size = (*declared)[i];
      Dim& d = (*result)[i];
      if (size.known()) d = d.known() && d != size ? Own(*value, i) : size;  // conflict: unknown
    }
  }
  memo_[value] = result;
  return result;
}

std::optional<Dim> SymbolicDims::At(const ir::Value* value, int64_t axis) {
  const std::optional<Dims> dims = Of(value);
  if (!dims) return value && axis >= 0 ? std::optional(Own(*value, axis)) : std::nullopt;
  axis = NormalizeAxis(axis, dims->size());
  return axis < 0 ? std::nullopt : std::optional((*dims)[axis]);
}

bool SymbolicDims::SameDim(const ir::Value* a, int64_t da, const ir::Value* b, int64_t db) {
  const std::optional<Dim> x = At(a, da);
  const std::optional<Dim> y = At(b, db);
  return x && y && *x == *y;
}

std::optional<SymbolicDims::Elements> SymbolicDims::ElementsOf(const ir::Value* value) {
  // Bounded: in a cyclic (invalid) graph the elements of a value can depend on themselves. A
  // shape computation is a short chain (Shape, Gather, Unsqueeze, Concat...), and each call here
  // takes a large frame, so the bound is far below Of()'s.
  if (!value || elements_depth_ >= kMaxElementsDepth) return std::nullopt;
  struct Depth {
    int& depth;
    ~Depth() { --depth; }
  } depth{++elements_depth_};
  if (auto ints = graph_.ConstantAsInts(value)) {
    Elements out;
    for (int64_t v : *ints) out.push_back(Literal(v));
    return out;
  }
  const ir::Node* n = value->producer();
  if (n && n->domain().empty()) {
    if (n->Is("Shape")) {
      if (auto dims = Of(n->input(0))) {
        auto [start, end] = ShapeRange(*n, dims->size());
        return Elements(dims->begin() + start, dims->begin() + end);
      }
    } else if (n->Is("Cast")) {  // int32 <-> int64 keeps the values
      return ElementsOf(n->input(0));
    } else if (n->Is("Concat") && (n->AttrInt("axis") == 0 || n->AttrInt("axis") == -1)) {
      Elements out;
      for (const ir::Value* piece : n->inputs()) {
        auto elements = ElementsOf(piece);
        if (!elements) return std::nullopt;
        out.insert(out.end(), elements->begin(), elements->end());
      }
      return out;
    } else if (n->Is("Unsqueeze") || n->Is("Squeeze") || n->Is("Reshape") || n->Is("Identity")) {
      return ElementsOf(n->input(0));  // the same elements in the same order
    } else if (n->Is("Slice")) {
      if (auto sliced = SliceElements(*n)) return sliced;
    } else if (n->Is("ReduceProd") &&
               n->AttrInts("axes").value_or(std::vector<int64_t>{0}) == std::vector<int64_t>{0}) {
      // keras' Tensordot: the product of one element is that element; of known ones, known.
      if (auto in = ElementsOf(n->input(0)); in && !in->empty()) {
        if (in->size() == 1) return in;
        int64_t product = 1;
        for (const auto& e : *in) {
          if (!e || !e->known()) return Elements(1);
          if (__builtin_mul_overflow(product, e->size, &product)) return Elements(1);
        }
        return Elements{Dim::Known(product)};
      }
    } else if (n->Is("Gather") && n->AttrInt("axis").value_or(0) == 0) {
      if (auto indices = graph_.ConstantAsInts(n->input(1))) {
        const std::optional<Elements> all = ElementsOf(n->input(0));
        const ir::Node* shape = n->input(0) ? n->input(0)->producer() : nullptr;
        const bool whole_shape =
            shape && shape->Is("Shape") && !shape->Attr("start") && !shape->Attr("end");
        Elements out;
        for (int64_t i : *indices) {
          const int64_t at = all ? NormalizeAxis(i, all->size()) : -1;
          std::optional<Dim> e = at >= 0 ? (*all)[at] : std::nullopt;
          // Dim i of y exists whenever this Gather runs, whatever is known of y's rank.
          if (!e && whole_shape && i >= 0) e = At(shape->input(0), i);
          out.push_back(e);
        }
        return out;
      }
    }
  }
  if (n && n->domain().empty()) {
    if (auto computed = ComputedElements(*n)) return computed;
  }
  // Unknown values, but maybe a known count.
  const std::optional<Dims> dims = Of(value);
  if (dims && dims->empty()) return Elements(1);
  if (dims && dims->size() == 1 && dims->front().known()) return Elements(dims->front().size);
  return std::nullopt;
}

bool SymbolicDims::IsInfer(const std::optional<Dim>& e) { return e && e->symbol == kInfer; }

// TorchScript's expand(-1, ...) idiom: Where(Equal(y, ones·-1), ones, y) with ones =
// ConstantOfShape(Shape(y), 1) turns the -1 entries of a target into 1. Elementwise on 1-D
// shape tensors: ConstantOfShape of a known count, Mul of known entries, and that Where.
std::optional<SymbolicDims::Elements> SymbolicDims::ComputedElements(const ir::Node& n) {
  if (n.Is("ConstantOfShape")) {
    const auto shape = ElementsOf(n.input(0));
    const onnx::AttributeProto* fill = n.Attr("value");
    const auto value = fill ? ir::DecodeAsInts(fill->t()) : std::nullopt;
    if (!shape || shape->size() != 1 || !shape->front() || !shape->front()->known() || !value ||
        value->size() != 1 || fill->t().data_type() == onnx::TensorProto::BOOL) {
      return std::nullopt;
    }
    return Elements(shape->front()->size, Literal(value->front()));
  }
  if (n.Is("Mul")) {
    const auto a = ElementsOf(n.input(0));
    const auto b = ElementsOf(n.input(1));
    if (!a || !b || (a->size() != b->size() && a->size() != 1 && b->size() != 1)) {
      return std::nullopt;
    }
    Elements out;
    for (size_t i = 0; i < std::max(a->size(), b->size()); ++i) {
      const auto& x = (*a)[a->size() == 1 ? 0 : i];
      const auto& y = (*b)[b->size() == 1 ? 0 : i];
      const auto number = [](const std::optional<Dim>& e) -> std::optional<int64_t> {
        if (IsInfer(e)) return -1;
        if (e && e->known()) return e->size;
        return std::nullopt;
      };
      const auto p = number(x);
      const auto q = number(y);
      out.push_back(p && q ? Literal(*p * *q) : std::nullopt);
    }
    return out;
  }
  if (n.Is("Where")) {
    const ir::Node* equal = n.input(0) ? n.input(0)->producer() : nullptr;
    if (!equal || !equal->Is("Equal") || equal->input(0) != n.input(2)) return std::nullopt;
    const auto y = ElementsOf(n.input(2));
    const auto m = ElementsOf(equal->input(1));
    const auto x = ElementsOf(n.input(1));
    if (!y || !m || !x || m->size() != y->size() || x->size() != y->size()) return std::nullopt;
    Elements out;
    for (size_t i = 0; i < y->size(); ++i) {
      const auto& yi = (*y)[i];
      const auto& mi = (*m)[i];
      std::optional<bool> equal_here;
      if (IsInfer(yi) && IsInfer(mi)) {
        equal_here = true;
      } else if (yi && !IsInfer(yi) && IsInfer(mi)) {
        equal_here = false;  // a size or a known entry >= 0 is never -1
      } else if (yi && mi && yi->known() && mi->known()) {
        equal_here = yi->size == mi->size;
      }
      out.push_back(!equal_here ? std::nullopt : *equal_here ? (*x)[i] : yi);
    }
    return out;
  }
  return std::nullopt;
}

std::optional<SymbolicDims::Elements> SymbolicDims::SliceElements(const ir::Node& n) {
  // A 1-D slice with constant bounds along axis 0 (keras' Slice(Shape(x), {0}, {1})).
  const auto in = ElementsOf(n.input(0));
  const auto starts = graph_.AttrOrInputInts(n, "starts", 1);
  const auto ends = graph_.AttrOrInputInts(n, "ends", 2);
  const auto axes = graph_.AttrOrInputInts(n, "axes", 3);
  const auto steps = graph_.AttrOrInputInts(n, "steps", 4);
  if (!in || !starts || !ends || starts->size() != 1 || ends->size() != 1) return std::nullopt;
  if ((n.input(3) || n.Attr("axes")) &&
      (!axes || axes->size() != 1 || ((*axes)[0] != 0 && (*axes)[0] != -1))) {
    return std::nullopt;
  }
  if ((n.input(4) && (!steps || *steps != std::vector<int64_t>{1}))) return std::nullopt;
  const auto size = static_cast<int64_t>(in->size());
  auto clamp = [size](int64_t v) { return std::clamp(v < 0 ? v + size : v, int64_t{0}, size); };
  const int64_t first = clamp(starts->front());
  const int64_t stop = std::max(first, clamp(ends->front()));
  return Elements(in->begin() + first, in->begin() + stop);
}

std::optional<Dims> SymbolicDims::DeriveReshape(const ir::Node& n, const ir::Value& value) {
  const std::optional<Elements> elements = ElementsOf(n.input(1));
  if (!elements) return std::nullopt;
  const std::optional<Dims> in = Of(n.input(0));
  const bool allowzero = n.AttrInt("allowzero").value_or(0) != 0;
  Dims result;
  size_t infer = elements->size();
  for (size_t i = 0; i < elements->size(); ++i) {
    const std::optional<Dim>& e = (*elements)[i];
    const std::optional<Dim> copy =
        in && i < in->size() ? std::optional((*in)[i]) : std::nullopt;  // what 0 gives
    if (e && e->symbol == kInfer) infer = i;
    if (e && e->known()) {
      result.push_back(e->size > 0 || allowzero ? *e : copy.value_or(Own(value, i)));
    } else if (e && e->symbol != kInfer &&
               (allowzero || copy == e || e->of_input || (in && i >= in->size()))) {
      // A computed entry that is 0 at run time copies the same dim; past the input's rank a 0 is
      // invalid, so in every run that succeeds the entry is the dim itself.
      result.push_back(*e);
    } else {
      result.push_back(Own(value, i));  // unknown, -1 (inferred below), or may copy another dim
    }
  }
  if (infer == elements->size() || !in) return result;
  // Both sides hold the same number of elements: cancel the symbols they share; what is left of
  // the input is a known product times at most one symbol, and the rest of the output is known.
  // Dims read from a model can be anything up to INT64_MAX: a product that overflows tells nothing.
  std::vector<Dim> in_symbols;
  int64_t in_product = 1;
  for (const Dim& d : *in) {
    if (d.known() && __builtin_mul_overflow(in_product, d.size, &in_product)) return result;
    if (!d.known()) in_symbols.push_back(d);
  }
  int64_t out_product = 1;
  for (size_t i = 0; i < result.size(); ++i) {
    if (i == infer) continue;
    if (result[i].known()) {
      if (__builtin_mul_overflow(out_product, result[i].size, &out_product)) return result;
      continue;
    }
    auto match = std::find(in_symbols.begin(), in_symbols.end(), result[i]);
    if (match == in_symbols.end()) return result;
    in_symbols.erase(match);
  }
  // A zero-size tensor leaves -1 undetermined (ORT rejects it); only nonzero products divide.
  if (out_product <= 0 || in_product <= 0) return result;
  if (in_symbols.empty() && in_product % out_product == 0) {
    result[infer] = Dim::Known(in_product / out_product);
  } else if (in_symbols.size() == 1 && in_product == out_product) {
    result[infer] = in_symbols.front();
  }
  return result;
}

std::optional<Dims> SymbolicDims::DeriveSlice(const ir::Node& n, const ir::Value& value) {
  const std::optional<Dims> in = Of(n.input(0));
  if (!in) return std::nullopt;
  // Opset < 10 has attributes, later opsets inputs: data, starts, ends, axes, steps.
  const auto starts = graph_.AttrOrInputInts(n, "starts", 1);
  const auto ends = graph_.AttrOrInputInts(n, "ends", 2);
  auto axes = graph_.AttrOrInputInts(n, "axes", 3);
  const auto steps = graph_.AttrOrInputInts(n, "steps", 4);
  // A computed end may still be a known dim, e.g. Gather(Shape(ids), 1) (position ids P4).
  const auto dim_ends = ends ? std::nullopt : ElementsOf(n.input(2));
  const size_t count = starts     ? starts->size()
                       : ends     ? ends->size()
                       : dim_ends ? dim_ends->size()
                                  : 0;
  Dims result = *in;
  if ((!axes && n.input(3)) || (!steps && n.input(4)) || (!axes && count == 0)) {
    for (size_t i = 0; i < result.size(); ++i) result[i] = Own(value, i);  // any axis may change
    return result;
  }
  if (!axes) {
    axes.emplace();
    for (size_t i = 0; i < count; ++i) axes->push_back(static_cast<int64_t>(i));
  }
  for (size_t i = 0; i < axes->size(); ++i) {
    const int64_t axis = NormalizeAxis((*axes)[i], in->size());
    if (axis < 0) return std::nullopt;
    const Dim whole = (*in)[axis];
    result[axis] = Own(value, axis);
    const int64_t step = steps && i < steps->size() ? (*steps)[i] : 1;
    if (!starts || i >= starts->size() || step <= 0) continue;
    const int64_t start = (*starts)[i];
    if (ends && i < ends->size()) {
      const int64_t end = (*ends)[i];
      if (start == 0 && step == 1 && end >= kToTheEnd) {
        result[axis] = whole;  // keras' and tf2onnx's whole-axis Slices
      } else if (whole.known()) {
        // Constant bounds on a known dim: numpy's clamping.
        auto clamp = [&](int64_t v) {
          return std::clamp(v < 0 ? v + whole.size : v, int64_t{0}, whole.size);
        };
        const int64_t first = clamp(start);
        const int64_t stop = clamp(end);
        result[axis] = Dim::Known(stop > first ? (stop - first + step - 1) / step : 0);
      }
    } else if (dim_ends && i < dim_ends->size() && start == 0 && step == 1 &&
               (*dim_ends)[i] == whole) {
      result[axis] = whole;  // [0, size of this very axis)
    } else if (dim_ends && i < dim_ends->size() && start == 0 && step == 1 && (*dim_ends)[i] &&
               !(*dim_ends)[i]->known() && !IsInfer((*dim_ends)[i]) && whole.known()) {
      // [0, X) of a known k: min(X, k) (dynamo's position_ids[:, :S] of the [1, max] buffer).
      const Dim& end = *(*dim_ends)[i];
      result[axis] = Dim{.size = -1,
                         .symbol = fmt::format("min({}, {})", end.symbol, whole.size),
                         .of_input = false,
                         .at_most = end.symbol};
    }
  }
  return result;
}

std::optional<Dims> SymbolicDims::DeriveAxes(const ir::Node& n, const ir::Value& value) {
  std::optional<Dims> in = Of(n.input(0));
  const auto axes = graph_.AttrOrInputInts(n, "axes", 1);
  if (!in || (!axes && n.input(1))) return std::nullopt;  // computed axes
  const bool unsqueeze = n.Is("Unsqueeze");
  const bool reduce = In(kReduce, n.op_type());
  const bool all = !axes || axes->empty();
  if (all && !reduce) return std::nullopt;  // Squeeze of every 1, or no axes to unsqueeze
  if (all && n.AttrInt("noop_with_empty_axes").value_or(0) != 0) return in;
  const size_t rank = in->size() + (unsqueeze ? axes->size() : 0);
  std::vector<bool> marked(rank, all);
  for (int64_t a : axes.value_or(std::vector<int64_t>{})) {
    const int64_t axis = NormalizeAxis(a, rank);
    if (axis < 0) return std::nullopt;
    marked[axis] = true;
  }
  const bool keepdims = n.AttrInt("keepdims").value_or(1) != 0;
  Dims result;
  auto next = in->begin();
  for (size_t d = 0; d < rank; ++d) {
    if (unsqueeze) {
      if (!marked[d] && next == in->end()) return std::nullopt;
      result.push_back(marked[d] ? Dim::Known(1) : *next++);
    } else if (!marked[d]) {
      result.push_back((*in)[d]);
    } else if (reduce && keepdims) {
      result.push_back(Dim::Known(1));
    }
  }
  return result;
}

std::optional<Dims> SymbolicDims::DeriveMs(const ir::Node& n, const ir::Value& value) {
  const std::string& op = n.op_type();
  const int index = value.producer_output();
  if (In(" Gelu FastGelu BiasGelu QuickGelu ", op) && index == 0) {
    return Of(n.input(0));
  }
  if (In(" SkipLayerNormalization SkipSimplifiedLayerNormalization ", op) &&
      (index == 0 || index == 3)) {
    return Of(n.input(0));  // output and input_skip_bias_sum
  }
  if (op == "Attention" && index == 0) {
    const auto x = Of(n.input(0));
    const auto w = Of(n.input(1));
    if (!x || x->size() != 3) return std::nullopt;
    Dim hidden = Own(value, 2);
    if (auto sizes = n.AttrInts("qkv_hidden_sizes"); sizes && sizes->size() == 3) {
      hidden = Dim::Known((*sizes)[2]);
    } else if (w && w->size() == 2 && (*w)[1].known() && (*w)[1].size % 3 == 0) {
      hidden = Dim::Known((*w)[1].size / 3);
    }
    return Dims{(*x)[0], (*x)[1], hidden};
  }
  if (op == "EmbedLayerNormalization") {
    const auto ids = Of(n.input(0));
    const auto gamma = Of(n.input(5));
    if (!ids || ids->size() != 2) return std::nullopt;
    if (index == 1) return Dims{(*ids)[0]};  // mask_index
    const bool known = gamma && gamma->size() == 1 && gamma->front().known();
    return Dims{(*ids)[0], (*ids)[1], known ? gamma->front() : Own(value, 2)};
  }
  return std::nullopt;
}

std::optional<Dims> SymbolicDims::Derive(const ir::Value& value) {
  const ir::Node& n = *value.producer();
  if (n.domain() == ir::kMsDomain) return DeriveMs(n, value);
  if ((!n.domain().empty() && n.domain() != "ai.onnx") || value.producer_output() != 0) {
    return std::nullopt;
  }
  const std::string& op = n.op_type();
  auto operands = [&](std::vector<Dims>& out) {
    for (const ir::Value* in : n.inputs()) {
      auto d = Of(in);
      if (!d) return false;
      out.push_back(*d);
    }
    return true;
  };

  if (In(kKeepShape, op)) return Of(n.input(0));
  if (In(kBroadcast, op)) {
    std::vector<Dims> all;
    return operands(all) ? std::optional(Broadcast(all, value)) : std::nullopt;
  }
  if (op == "Reshape") return DeriveReshape(n, value);
  if (op == "Slice") return DeriveSlice(n, value);
  if (op == "Unsqueeze" || op == "Squeeze" || In(kReduce, op)) return DeriveAxes(n, value);
  if (op == "MatMul") {
    const auto a = Of(n.input(0));
    const auto b = Of(n.input(1));
    if (!a || !b || a->empty() || b->empty()) return std::nullopt;
    if (a->size() == 1 && b->size() == 1) return Dims{};
    if (a->size() == 1) {
      Dims r(b->begin(), b->end() - 2);
      r.push_back(b->back());
      return r;
    }
    if (b->size() == 1) return Dims(a->begin(), a->end() - 1);
    Dims r = Broadcast({Dims(a->begin(), a->end() - 2), Dims(b->begin(), b->end() - 2)}, value);
    r.push_back((*a)[a->size() - 2]);
    r.push_back(b->back());
    return r;
  }
  if (op == "Transpose") {
    const auto in = Of(n.input(0));
    if (!in) return std::nullopt;
    std::vector<int64_t> perm;
    for (size_t i = in->size(); i-- > 0;) perm.push_back(static_cast<int64_t>(i));
    if (auto p = n.AttrInts("perm")) perm = *p;
    if (perm.size() != in->size()) return std::nullopt;
    Dims r;
    for (int64_t p : perm) {
      if (p < 0 || p >= static_cast<int64_t>(in->size())) return std::nullopt;
      r.push_back((*in)[p]);
    }
    return r;
  }
  if (op == "Gather") {
    const auto data = Of(n.input(0));
    const auto indices = Of(n.input(1));
    if (!data || !indices) return std::nullopt;
    const int64_t axis = NormalizeAxis(n.AttrInt("axis").value_or(0), data->size());
    if (axis < 0) return std::nullopt;
    Dims r(data->begin(), data->begin() + axis);
    r.insert(r.end(), indices->begin(), indices->end());
    r.insert(r.end(), data->begin() + axis + 1, data->end());
    return r;
  }
  if (op == "Concat") {
    std::vector<Dims> all;
    if (!operands(all) || all.empty()) return std::nullopt;
    const int64_t axis = NormalizeAxis(n.AttrInt("axis").value_or(0), all[0].size());
    if (axis < 0) return std::nullopt;
    Dims r = all[0];  // every input has the same dims off the axis
    int64_t total = 0;
    for (const Dims& d : all) {
      const bool known = d.size() == r.size() && d[axis].known();
      total = known && total >= 0 ? total + d[axis].size : -1;
    }
    r[axis] = total >= 0 ? Dim::Known(total) : Own(value, axis);
    return r;
  }
  if (op == "Expand" || op == "ConstantOfShape") {
    const bool expand = op == "Expand";
    const auto elements = ElementsOf(n.input(expand ? 1 : 0));
    const auto in = expand ? Of(n.input(0)) : std::optional<Dims>(Dims{});
    if (!elements || !in) return std::nullopt;
    // An unknown element gets its output axis' own symbol: broadcast against in's 1 the result is
    // the element, against a known k it is k (the element being 1 or k).
    const size_t offset = std::max(in->size(), elements->size()) - elements->size();
    Dims target;
    for (size_t i = 0; i < elements->size(); ++i) {
      const std::optional<Dim>& e = (*elements)[i];
      target.push_back(e && e->symbol != kInfer ? *e : Own(value, offset + i));
    }
    return expand ? Broadcast({*in, target}, value) : target;
  }
  if (op == "Range") {
    // Range(0, n, 1) has n elements: position ids 0..S-1 with n = Gather(Shape(ids), 1).
    const auto limit = ElementsOf(n.input(1));
    if (graph_.ScalarValue(n.input(0)) != 0.0 || graph_.ScalarValue(n.input(2)) != 1.0 || !limit ||
        limit->size() != 1 || !limit->front() || limit->front()->symbol == kInfer) {
      return std::nullopt;
    }
    return Dims{*limit->front()};
  }
  if (op == "Flatten") {
    // [d0·…·d(axis-1), d(axis)·…]: a product of known sizes is known, of one dim that dim.
    const auto in = Of(n.input(0));
    if (!in) return std::nullopt;
    const int64_t rank = static_cast<int64_t>(in->size());
    int64_t axis = n.AttrInt("axis").value_or(1);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis > rank) return std::nullopt;
    Dims r;
    for (auto [begin, end] : {std::pair<int64_t, int64_t>{0, axis}, {axis, rank}}) {
      std::optional<Dim> product = Dim::Known(1);
      for (int64_t i = begin; i < end; ++i) {
        const Dim& d = (*in)[i];
        if (d == Dim::Known(1)) continue;
        product = *product == Dim::Known(1)       ? d
                  : product->known() && d.known() ? Dim::Known(product->size * d.size)
                                                  : Own(value, r.size());
      }
      r.push_back(*product);
    }
    return r;
  }
  if (op == "GatherND" && n.AttrInt("batch_dims").value_or(0) == 0) {
    // indices [.., k] pick k leading coordinates of data: [.., data dims k..].
    const auto data = Of(n.input(0));
    const auto indices = Of(n.input(1));
    if (!data || !indices || indices->empty() || !indices->back().known()) return std::nullopt;
    const int64_t k = indices->back().size;
    if (k > static_cast<int64_t>(data->size())) return std::nullopt;
    Dims r(indices->begin(), indices->end() - 1);
    r.insert(r.end(), data->begin() + k, data->end());
    return r;
  }
  if (op == "Shape") {
    const auto in = Of(n.input(0));
    if (!in) return std::nullopt;
    auto [start, end] = ShapeRange(n, in->size());
    return Dims{Dim::Known(end - start)};
  }
  return std::nullopt;
}

DimRead ReadDimPiece(const ir::Graph& graph, const ir::Value* piece, SymbolicDims& dims) {
  DimRead read;
  const ir::Node* gather = piece->producer();
  bool scalar_index = false;
  if (gather && gather->Is("Unsqueeze")) {
    std::optional<std::vector<int64_t>> axes = graph.AttrOrInputInts(*gather, "axes", 1);
    // On a scalar, axis 0 and axis -1 are the same single axis.
    if (!axes || axes->size() != 1 || ((*axes)[0] != 0 && (*axes)[0] != -1)) {
      read.reason = fmt::format("{} does not unsqueeze axis 0 only", gather->DisplayName());
      return read;
    }
    gather = gather->input(0) ? gather->input(0)->producer() : nullptr;
    scalar_index = true;
  }
  if (!gather || !gather->Is("Gather")) {
    read.reason = fmt::format("'{}' is neither a constant nor a dimension read Gather(Shape(t), i)",
                              piece->name());
    return read;
  }
  if (gather->AttrInt("axis").value_or(0) != 0) {
    read.reason = fmt::format("{} does not gather along axis 0", gather->DisplayName());
    return read;
  }
  const ir::Node* shape = gather->input(0) ? gather->input(0)->producer() : nullptr;
  if (!shape || !shape->Is("Shape")) {
    read.reason = fmt::format("{} does not read a Shape", gather->DisplayName());
    return read;
  }
  if (shape->Attr("start") || shape->Attr("end")) {
    read.reason = fmt::format("{} has start/end attributes", shape->DisplayName());
    return read;
  }
  const onnx::TensorProto* index = graph.ConstantTensor(gather->input(1));
  auto values = graph.ConstantAsInts(gather->input(1));
  if (!index || !values || values->size() != 1) {
    read.reason = fmt::format("{} index is not a one-element constant", gather->DisplayName());
    return read;
  }
  // A rank-0 index gives a scalar, which needs the Unsqueeze; a [1] index gives a [1] piece.
  const bool index_is_scalar = index->dims_size() == 0;
  if (index_is_scalar != scalar_index) {
    read.reason = fmt::format("{} index has rank {}, which does not give a one-element 1-D piece{}",
                              gather->DisplayName(), index->dims_size(),
                              scalar_index ? " after the Unsqueeze" : "");
    return read;
  }
  const ir::Value* source = shape->input(0);
  int64_t dim = (*values)[0];
  if (dim < 0) {
    const std::optional<Dims> source_dims = dims.Of(source);
    if (!source_dims) {
      read.reason = fmt::format("{} index {} counts from the end of '{}', whose rank is unknown",
                                gather->DisplayName(), dim, source->name());
      return read;
    }
    dim += static_cast<int64_t>(source_dims->size());
  }
  read.source = source;
  read.dim = static_cast<int>(dim);
  return read;
}

}  // namespace bertopt::passes
