#include "passes/fusions/symbolic_dims.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "fmt/format.h"

namespace bertopt::passes {
namespace {

using Dim = SymbolicDims::Dim;
using Dims = SymbolicDims::Dims;

// Chains longer than this are read from their declared shape only (a stack guard; BERT-large's
// longest path is under 1000 nodes).
constexpr int kMaxDepth = 2000;

bool OneOfOps(const std::string& op, std::initializer_list<std::string_view> ops) {
  return std::find(ops.begin(), ops.end(), op) != ops.end();
}

// Ops whose output 0 has the shape of input 0.
bool KeepsShape(const ir::Node& n) {
  return OneOfOps(n.op_type(), {"Abs",
                                "Cast",
                                "CastLike",
                                "Ceil",
                                "Clip",
                                "Cos",
                                "Dropout",
                                "Elu",
                                "Erf",
                                "Exp",
                                "Floor",
                                "Gelu",
                                "HardSigmoid",
                                "Identity",
                                "IsInf",
                                "IsNaN",
                                "LayerNormalization",
                                "LeakyRelu",
                                "Log",
                                "LogSoftmax",
                                "Neg",
                                "Not",
                                "Reciprocal",
                                "Relu",
                                "Round",
                                "Selu",
                                "Sigmoid",
                                "Sign",
                                "Sin",
                                "Softmax",
                                "Softplus",
                                "Sqrt",
                                "Tanh"});
}

// Elementwise ops with multidirectional (numpy) broadcasting.
bool Broadcasts(const ir::Node& n) {
  return OneOfOps(n.op_type(),
                  {"Add",  "And",         "BitShift", "Div",  "Equal", "Greater", "GreaterOrEqual",
                   "Less", "LessOrEqual", "Max",      "Mean", "Min",   "Mod",     "Mul",
                   "Or",   "Pow",         "PRelu",    "Sub",  "Sum",   "Where",   "Xor"});
}

// A Reshape target element -1 ("infer this dim"); never a size.
constexpr std::string_view kInferMarker = "-1";

// Normalises a possibly negative axis against `rank`; -1 when out of range.
int64_t NormalizeAxis(int64_t axis, int64_t rank) {
  if (axis < 0) axis += rank;
  return axis >= 0 && axis < rank ? axis : -1;
}
int64_t NormalizeAxis(int64_t axis, size_t rank) {
  return NormalizeAxis(axis, static_cast<int64_t>(rank));
}

// The axes of Unsqueeze/Squeeze: the attribute (opset < 13) or the constant input 1.
std::optional<std::vector<int64_t>> AxesOf(const ir::Graph& graph, const ir::Node& n) {
  if (auto axes = n.AttrInts("axes")) return axes;
  if (n.input(1)) return graph.ConstantAsInts(n.input(1));
  return std::nullopt;
}

}  // namespace

SymbolicDims::SymbolicDims(const ir::Graph& graph) : graph_(graph) {
  const onnx::GraphProto& g = graph.model().graph();
  for (const auto& vi : g.value_info()) declared_[vi.name()] = &vi;
  for (const auto& vi : g.output()) declared_[vi.name()] = &vi;
  for (const auto& vi : g.input()) declared_[vi.name()] = &vi;
}

Dim SymbolicDims::Unknown(const ir::Value& value, size_t axis) const {
  return Dim::Named(fmt::format("@{}[{}]", value.name(), axis));
}

std::string SymbolicDims::Find(const std::string& symbol) {
  auto it = parent_.find(symbol);
  if (it == parent_.end() || it->second == symbol) return symbol;
  std::string root = Find(it->second);
  parent_[symbol] = root;
  return root;
}

int64_t SymbolicDims::SizeOf(const Dim& d) {
  if (d.size >= 0) return d.size;
  auto it = size_of_.find(Find(d.symbol));
  return it == size_of_.end() ? -1 : it->second;
}

void SymbolicDims::Unite(const Dim& a, const Dim& b) {
  const int64_t sa = SizeOf(a);
  const int64_t sb = SizeOf(b);
  if (sa >= 0 && sb >= 0) return;  // two sizes: nothing to learn (unequal only in invalid models)
  if (sa >= 0) {
    size_of_[Find(b.symbol)] = sa;
    return;
  }
  if (sb >= 0) {
    size_of_[Find(a.symbol)] = sb;
    return;
  }
  const std::string ra = Find(a.symbol);
  const std::string rb = Find(b.symbol);
  if (ra != rb) parent_[ra] = rb;
}

bool SymbolicDims::Same(const Dim& a, const Dim& b) {
  const int64_t sa = SizeOf(a);
  const int64_t sb = SizeOf(b);
  if (sa >= 0 || sb >= 0) return sa == sb;
  return Find(a.symbol) == Find(b.symbol);
}

bool SymbolicDims::Same(const Dims& a, const Dims& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!Same(a[i], b[i])) return false;
  }
  return true;
}

std::string SymbolicDims::ToString(const Dim& d) {
  if (int64_t s = SizeOf(d); s >= 0) return std::to_string(s);
  const std::string& sym = d.symbol;
  if (sym.starts_with('$')) return sym.substr(1);
  const size_t open = sym.rfind('[');
  if (open == std::string::npos || sym.size() < 2) return sym;
  const std::string index = sym.substr(open + 1, sym.size() - open - 2);
  const std::string value = sym.substr(1, open - 1);
  return fmt::format("{} {} of '{}'", sym[0] == '@' ? "dim" : "element", index, value);
}

std::string SymbolicDims::ToString(const Dims& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) out += (i ? ", " : "") + ToString(dims[i]);
  return out + "]";
}

std::optional<Dims> SymbolicDims::Declared(const ir::Value& value) {
  if (const onnx::TensorProto* t = graph_.ConstantTensor(&value)) {
    Dims dims;
    for (int64_t d : t->dims()) dims.push_back(Dim::Known(d));
    return dims;
  }
  auto it = declared_.find(value.name());
  if (it == declared_.end()) return std::nullopt;
  const auto& type = it->second->type();
  if (!type.has_tensor_type() || !type.tensor_type().has_shape()) return std::nullopt;
  Dims dims;
  for (const auto& d : type.tensor_type().shape().dim()) {
    if (d.has_dim_value()) {
      dims.push_back(Dim::Known(d.dim_value()));
    } else if (d.has_dim_param() && !d.dim_param().empty()) {
      dims.push_back(Dim::Named("$" + d.dim_param()));
    } else {
      dims.push_back(Unknown(value, dims.size()));
    }
  }
  return dims;
}

std::optional<Dims> SymbolicDims::Of(const ir::Value* value) {
  if (!value) return std::nullopt;
  if (auto it = memo_.find(value); it != memo_.end()) return it->second;
  memo_[value] = std::nullopt;  // a cycle (invalid graph) reads as unknown
  std::optional<Dims> declared = Declared(*value);
  std::optional<Dims> derived;
  if (value->producer() && !graph_.ConstantTensor(value) && depth_ < kMaxDepth) {
    ++depth_;
    derived = Derive(*value);
    --depth_;
  }
  std::optional<Dims> result = derived ? derived : declared;
  if (derived && declared && value->is_graph_output()) {
    // Nothing checks a declared output shape, and exporters leave stale ones (exporter-layouts
    // 2.11): the rules win.
  } else if (derived && declared && derived->size() != declared->size()) {
    result = std::nullopt;  // one of the two is wrong: claim nothing
  } else if (derived && declared) {
    for (size_t i = 0; i < derived->size(); ++i) {
      const Dim& d = (*derived)[i];
      const Dim& e = (*declared)[i];
      if (SizeOf(d) >= 0 && SizeOf(e) >= 0 && SizeOf(d) != SizeOf(e)) {
        (*result)[i] = Unknown(*value, i);
        continue;
      }
      Unite(d, e);
      if (e.size >= 0) (*result)[i] = e;
    }
  }
  memo_[value] = result;
  return result;
}

std::optional<Dims> SymbolicDims::Broadcast(const std::vector<Dims>& operands,
                                            const ir::Value& out) {
  size_t rank = 0;
  for (const Dims& d : operands) rank = std::max(rank, d.size());
  Dims result;
  for (size_t axis = 0; axis < rank; ++axis) {
    std::set<int64_t> sizes;  // known sizes other than 1
    std::vector<Dim> symbols;
    for (const Dims& d : operands) {
      if (axis + d.size() < rank) continue;  // this operand is right-aligned past the axis
      const Dim& dim = d[axis + d.size() - rank];
      const int64_t s = SizeOf(dim);
      if (s == 1) continue;
      if (s >= 0) {
        sizes.insert(s);
      } else {
        symbols.push_back(dim);
      }
    }
    if (sizes.size() > 1) {
      result.push_back(Unknown(out, axis));  // the model cannot run; claim nothing
    } else if (sizes.size() == 1) {
      // A symbol broadcast against size k is 1 or k in any run, so the result is k.
      result.push_back(Dim::Known(*sizes.begin()));
    } else if (symbols.empty()) {
      result.push_back(Dim::Known(1));
    } else {
      bool all_same = true;
      for (const Dim& s : symbols) all_same &= Same(s, symbols.front());
      result.push_back(all_same ? symbols.front() : Unknown(out, axis));
    }
  }
  return result;
}

std::optional<Dim> SymbolicDims::Literal(int64_t value) {
  if (value >= 0) return Dim::Known(value);
  if (value == -1) return Dim::Named(std::string(kInferMarker));
  return std::nullopt;
}

std::optional<Dim> SymbolicDims::ScalarElement(const ir::Value* scalar) {
  while (scalar && scalar->producer() && scalar->producer()->Is("Cast")) {
    scalar = scalar->producer()->input(0);
  }
  if (auto s = graph_.ScalarValue(scalar)) {
    if (*s != std::floor(*s)) return std::nullopt;
    return Literal(static_cast<int64_t>(*s));
  }
  const ir::Node* gather = scalar ? scalar->producer() : nullptr;
  if (!gather || !gather->Is("Gather") || gather->AttrInt("axis").value_or(0) != 0) {
    return std::nullopt;
  }
  auto elements = ShapeElements(gather->input(0));
  auto index = graph_.ScalarValue(gather->input(1));
  if (!elements || !index) return std::nullopt;
  const int64_t i = NormalizeAxis(static_cast<int64_t>(*index), elements->size());
  return i < 0 ? std::nullopt : (*elements)[i];
}

std::optional<std::vector<std::optional<Dim>>> SymbolicDims::ShapeElements(const ir::Value* shape) {
  if (!shape) return std::nullopt;
  if (auto ints = graph_.ConstantAsInts(shape)) {
    std::vector<std::optional<Dim>> out;
    for (int64_t v : *ints) out.push_back(Literal(v));
    return out;
  }
  const ir::Node* n = shape->producer();
  if (!n) return std::nullopt;
  // Shape(y) with optional start/end (opset 15): the dims of y.
  if (n->Is("Shape")) {
    auto dims = Of(n->input(0));
    if (!dims) return std::nullopt;
    const auto rank = static_cast<int64_t>(dims->size());
    auto clamp = [rank](int64_t v) { return std::clamp(v < 0 ? v + rank : v, int64_t{0}, rank); };
    const int64_t start = clamp(n->AttrInt("start").value_or(0));
    const int64_t end = clamp(n->AttrInt("end").value_or(rank));
    std::vector<std::optional<Dim>> out;
    for (int64_t i = start; i < end; ++i) out.push_back((*dims)[i]);
    return out;
  }
  if (n->Is("Unsqueeze")) {  // a scalar made 1-D
    const std::optional<Dims> scalar = Of(n->input(0));
    if (!scalar || !scalar->empty()) return std::nullopt;
    return std::vector<std::optional<Dim>>{ScalarElement(n->input(0))};
  }
  if (n->Is("Concat")) {
    std::vector<std::optional<Dim>> out;
    for (const ir::Value* piece : n->inputs()) {
      if (auto elements = ShapeElements(piece)) {
        out.insert(out.end(), elements->begin(), elements->end());
        continue;
      }
      // Otherwise only its length matters, when it is known.
      auto dims = Of(piece);
      if (!dims || dims->size() != 1 || SizeOf(dims->front()) < 0) return std::nullopt;
      out.insert(out.end(), SizeOf(dims->front()), std::nullopt);
    }
    return out;
  }
  return std::nullopt;
}

Dim SymbolicDims::InferredDim(const Dims& in, const Dims& out_dims, size_t infer_axis,
                              const ir::Value& out) {
  // Both sides hold the same number of elements. Cancel the symbols they share; what is left of
  // the input is a known product times at most one symbol, what is left of the output (besides
  // the -1) must be known.
  std::vector<Dim> in_symbols;
  int64_t in_product = 1;
  for (const Dim& d : in) {
    if (int64_t s = SizeOf(d); s >= 0) {
      in_product *= s;
    } else {
      in_symbols.push_back(d);
    }
  }
  int64_t out_product = 1;
  for (size_t i = 0; i < out_dims.size(); ++i) {
    if (i == infer_axis) continue;
    if (int64_t s = SizeOf(out_dims[i]); s >= 0) {
      out_product *= s;
      continue;
    }
    auto match = std::find_if(in_symbols.begin(), in_symbols.end(),
                              [&](const Dim& d) { return Same(d, out_dims[i]); });
    if (match == in_symbols.end()) return Unknown(out, infer_axis);
    in_symbols.erase(match);
  }
  // A zero-size tensor leaves -1 undetermined (ORT rejects it); only nonzero products divide.
  if (out_product <= 0 || in_product <= 0) return Unknown(out, infer_axis);
  if (in_symbols.empty() && in_product % out_product == 0) {
    return Dim::Known(in_product / out_product);
  }
  if (in_symbols.size() == 1 && in_product == out_product) return in_symbols.front();
  return Unknown(out, infer_axis);
}

std::optional<Dims> SymbolicDims::DeriveReshape(const ir::Node& n, const ir::Value& out) {
  auto elements = ShapeElements(n.input(1));
  if (!elements) return std::nullopt;
  const std::optional<Dims> in = Of(n.input(0));
  const bool allow_zero = n.AttrInt("allowzero").value_or(0) != 0;
  Dims result;
  int infer_axis = -1;
  for (size_t i = 0; i < elements->size(); ++i) {
    const std::optional<Dim>& e = (*elements)[i];
    if (!e) {
      result.push_back(Unknown(out, i));
    } else if (SizeOf(*e) == 0 && !allow_zero) {
      // 0 copies the input dim. (A symbolic element is taken as the size it names; in a run
      // where that size is 0 the tensor is empty either way.)
      result.push_back(in && i < in->size() ? (*in)[i] : Unknown(out, i));
    } else if (e->symbol == kInferMarker) {
      infer_axis = static_cast<int>(i);
      result.push_back(Unknown(out, i));
    } else {
      result.push_back(*e);
    }
  }
  if (infer_axis >= 0 && in) result[infer_axis] = InferredDim(*in, result, infer_axis, out);
  return result;
}

std::optional<Dims> SymbolicDims::DeriveSlice(const ir::Node& n, const ir::Value& out) {
  auto in = Of(n.input(0));
  if (!in) return std::nullopt;
  // Opset < 10 has attributes, later opsets inputs: data, starts, ends, axes, steps.
  auto ints = [&](const char* attr, int input) -> std::optional<std::vector<int64_t>> {
    if (auto a = n.AttrInts(attr)) return a;
    return n.input(input) ? graph_.ConstantAsInts(n.input(input)) : std::nullopt;
  };
  const auto starts = ints("starts", 1);
  const auto ends = ints("ends", 2);
  const auto steps = ints("steps", 4);
  // A computed end may still be a known dim, e.g. Gather(Shape(ids), 1) (position ids P4).
  const auto dim_ends = ends ? std::nullopt : ShapeElements(n.input(2));
  auto axes = ints("axes", 3);
  if (!axes) {
    const size_t count = starts ? starts->size() : ends ? ends->size() : 0;
    if (count == 0) return std::nullopt;
    axes.emplace();
    for (size_t i = 0; i < count; ++i) axes->push_back(static_cast<int64_t>(i));
  }
  Dims r = *in;
  for (size_t i = 0; i < axes->size(); ++i) {
    const int64_t axis = NormalizeAxis((*axes)[i], in->size());
    if (axis < 0) return std::nullopt;
    const Dim whole = (*in)[axis];
    r[axis] = Unknown(out, axis);
    const int64_t step = steps && i < steps->size() ? (*steps)[i] : 1;
    if (!starts || i >= starts->size() || step <= 0) continue;
    const int64_t start = (*starts)[i];
    if (ends && i < ends->size()) {
      const int64_t end = (*ends)[i];
      const int64_t dim = SizeOf(whole);
      if (start == 0 && step == 1 && end == std::numeric_limits<int64_t>::max()) {
        r[axis] = whole;  // keras' whole-axis Slices
      } else if (dim >= 0) {
        // Constant bounds on a known dim: numpy's clamping.
        auto clamp = [dim](int64_t v) { return std::clamp(v < 0 ? v + dim : v, int64_t{0}, dim); };
        const int64_t first = clamp(start);
        const int64_t stop = clamp(end);
        r[axis] = Dim::Known(stop > first ? (stop - first + step - 1) / step : 0);
      }
    } else if (dim_ends && i < dim_ends->size() && (*dim_ends)[i] && start == 0 && step == 1 &&
               Same(*(*dim_ends)[i], whole)) {
      r[axis] = whole;  // [0, size of this very axis)
    }
  }
  return r;
}

std::optional<Dims> SymbolicDims::DeriveMs(const ir::Node& n, const ir::Value& out) {
  const std::string& op = n.op_type();
  const int index = out.producer_output();
  if (OneOfOps(op, {"Gelu", "FastGelu", "BiasGelu", "QuickGelu"}) && index == 0) {
    std::vector<Dims> operands;
    for (const ir::Value* in : n.inputs()) {
      if (!in) continue;
      auto d = Of(in);
      if (!d) return std::nullopt;
      operands.push_back(*d);
    }
    return Broadcast(operands, out);
  }
  if (OneOfOps(op, {"SkipLayerNormalization", "SkipSimplifiedLayerNormalization"}) &&
      (index == 0 || index == 3)) {
    return Of(n.input(0));
  }
  if (op == "Attention" && index == 0) {
    auto in = Of(n.input(0));
    if (!in || in->size() != 3) return std::nullopt;
    Dim hidden = Unknown(out, 2);
    if (auto sizes = n.AttrInts("qkv_hidden_sizes"); sizes && sizes->size() == 3) {
      hidden = Dim::Known((*sizes)[2]);
    } else if (auto w = graph_.Shape(n.input(1));
               w && w->size() == 2 && (*w)[1] > 0 && (*w)[1] % 3 == 0) {
      hidden = Dim::Known((*w)[1] / 3);
    }
    return Dims{(*in)[0], (*in)[1], hidden};
  }
  if (op == "EmbedLayerNormalization") {
    auto ids = Of(n.input(0));
    if (!ids || ids->size() != 2) return std::nullopt;
    if (index == 1) return Dims{(*ids)[0]};
    auto gamma = graph_.Shape(n.input(5));
    const Dim hidden =
        gamma && gamma->size() == 1 && (*gamma)[0] >= 0 ? Dim::Known((*gamma)[0]) : Unknown(out, 2);
    return Dims{(*ids)[0], (*ids)[1], hidden};
  }
  return std::nullopt;
}

std::optional<Dims> SymbolicDims::Derive(const ir::Value& out) {
  const ir::Node& n = *out.producer();
  if (n.domain() == ir::kMsDomain) return DeriveMs(n, out);
  if (!n.domain().empty() && n.domain() != "ai.onnx") return std::nullopt;
  const std::string& op = n.op_type();
  const int index = out.producer_output();

  if (KeepsShape(n)) return index == 0 ? Of(n.input(0)) : std::nullopt;
  if (Broadcasts(n)) {
    std::vector<Dims> operands;
    for (const ir::Value* in : n.inputs()) {
      auto d = Of(in);
      if (!d) return std::nullopt;
      operands.push_back(*d);
    }
    return Broadcast(operands, out);
  }
  if (op == "MatMul") {
    auto a = Of(n.input(0));
    auto b = Of(n.input(1));
    if (!a || !b || a->empty() || b->empty()) return std::nullopt;
    if (a->size() == 1 && b->size() == 1) return Dims{};
    if (a->size() == 1) {
      Dims r(b->begin(), b->end() - 2);
      r.push_back(b->back());
      return r;
    }
    if (b->size() == 1) return Dims(a->begin(), a->end() - 1);
    auto batch = Broadcast({Dims(a->begin(), a->end() - 2), Dims(b->begin(), b->end() - 2)}, out);
    batch->push_back((*a)[a->size() - 2]);
    batch->push_back(b->back());
    return batch;
  }
  if (op == "Transpose") {
    auto in = Of(n.input(0));
    if (!in) return std::nullopt;
    std::vector<int64_t> perm(in->size());
    for (size_t i = 0; i < perm.size(); ++i) perm[i] = static_cast<int64_t>(perm.size() - 1 - i);
    if (auto p = n.AttrInts("perm")) perm = *p;
    if (perm.size() != in->size()) return std::nullopt;
    Dims r;
    for (int64_t p : perm) {
      if (p < 0 || p >= static_cast<int64_t>(in->size())) return std::nullopt;
      r.push_back((*in)[p]);
    }
    return r;
  }
  if (op == "Reshape") return DeriveReshape(n, out);
  if (op == "Gather") {
    auto data = Of(n.input(0));
    auto indices = Of(n.input(1));
    if (!data || !indices) return std::nullopt;
    const int64_t axis = NormalizeAxis(n.AttrInt("axis").value_or(0), data->size());
    if (axis < 0) return std::nullopt;
    Dims r(data->begin(), data->begin() + axis);
    r.insert(r.end(), indices->begin(), indices->end());
    r.insert(r.end(), data->begin() + axis + 1, data->end());
    return r;
  }
  if (op == "Expand") {
    auto in = Of(n.input(0));
    auto elements = ShapeElements(n.input(1));
    if (!in || !elements) return std::nullopt;
    Dims target;
    for (size_t i = 0; i < elements->size(); ++i) {
      // An element not known as a dim is still one fixed number: name it after the shape tensor.
      const std::optional<Dim>& e = (*elements)[i];
      target.push_back(e && e->symbol != kInferMarker
                           ? *e
                           : Dim::Named(fmt::format("#{}[{}]", n.input(1)->name(), i)));
    }
    return Broadcast({*in, target}, out);
  }
  if (op == "Unsqueeze" || op == "Squeeze") {
    auto in = Of(n.input(0));
    auto axes = AxesOf(graph_, n);
    if (!in || !axes) return std::nullopt;
    const auto out_rank = static_cast<int64_t>(in->size()) +
                          (op == "Unsqueeze" ? static_cast<int64_t>(axes->size()) : 0);
    std::set<int64_t> normalized;
    for (int64_t a : *axes) {
      const int64_t rank = op == "Unsqueeze" ? out_rank : static_cast<int64_t>(in->size());
      const int64_t axis = NormalizeAxis(a, rank);
      if (axis < 0) return std::nullopt;
      normalized.insert(axis);
    }
    Dims r;
    if (op == "Unsqueeze") {
      size_t next = 0;
      for (int64_t i = 0; i < out_rank; ++i) {
        if (normalized.count(i)) {
          r.push_back(Dim::Known(1));
        } else if (next < in->size()) {
          r.push_back((*in)[next++]);
        }
      }
    } else {
      for (size_t i = 0; i < in->size(); ++i) {
        if (!normalized.count(static_cast<int64_t>(i))) r.push_back((*in)[i]);
      }
    }
    return r;
  }
  if (OneOfOps(op, {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd"})) {
    auto in = Of(n.input(0));
    auto axes = AxesOf(graph_, n);
    if (!in || !axes || axes->empty()) return std::nullopt;
    std::set<int64_t> reduced;
    for (int64_t a : *axes) reduced.insert(NormalizeAxis(a, in->size()));
    if (reduced.count(-1)) return std::nullopt;
    const bool keep = n.AttrInt("keepdims").value_or(1) != 0;
    Dims r;
    for (size_t i = 0; i < in->size(); ++i) {
      if (!reduced.count(static_cast<int64_t>(i))) {
        r.push_back((*in)[i]);
      } else if (keep) {
        r.push_back(Dim::Known(1));
      }
    }
    return r;
  }
  if (op == "Slice") return DeriveSlice(n, out);
  if (op == "ConstantOfShape") {
    auto elements = ShapeElements(n.input(0));
    if (!elements) return std::nullopt;
    Dims r;
    for (size_t i = 0; i < elements->size(); ++i) {
      const std::optional<Dim>& e = (*elements)[i];
      r.push_back(e && e->symbol != kInferMarker ? *e : Unknown(out, i));
    }
    return r;
  }
  if (op == "Range") {
    // Range(0, n, 1) has n elements: position ids 0..S-1 with n = Gather(Shape(ids), 1).
    auto start = graph_.ScalarValue(n.input(0));
    auto delta = graph_.ScalarValue(n.input(2));
    if (start != 0.0 || delta != 1.0) return std::nullopt;
    auto limit = ScalarElement(n.input(1));
    if (!limit || limit->symbol == kInferMarker) return std::nullopt;
    return Dims{*limit};
  }
  if (op == "Shape") {
    auto elements = ShapeElements(&out);
    if (!elements) return std::nullopt;
    return Dims{Dim::Known(static_cast<int64_t>(elements->size()))};
  }
  return std::nullopt;
}

}  // namespace bertopt::passes
