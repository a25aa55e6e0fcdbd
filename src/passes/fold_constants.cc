// Small computations on constants -> initializers.
//
//   I:f32[] 64 ─► Sqrt ─► Div(scores, ·)          =>  Div(scores, I:f32[] 8)
//   I:i32[] 0, I:i32[] S, I:i32[] 1 ─► Range ─► Unsqueeze ─► Slice(0..MAX)  =>  I:i32[1,S] {0..S-1}
//   I:i32[] 4 ─► Unsqueeze[0] ─► Concat piece      =>  I:i32[1] {4}
//
// TensorFlow converters leave arithmetic on constants in the graph (keras2onnx's Sqrt(Hd) scale and
// Div(x, Sqrt(2)) GELU, its Range → Unsqueeze → Slice position ids, the Unsqueeze'd scalar shape
// pieces of 1.6.1, tf2onnx's Cast of int32 shape pieces). Folding them lets every fusion check the
// constants it needs in one form, instead of each learning each spelling.
//
// Exact: integer ops are exact; float32 results are computed in double and rounded once, which for
// the ops folded here (+ - × ÷ √, reciprocal, negation) is the correctly rounded float32 result
// that ORT computes. Only float32, int32 and int64 values are folded, and only when every input and
// the result have at most kMaxElements elements, so weights are never decoded or duplicated.
//
// CastLike(c, like) folds when c is constant and like's element type known.
//
// Not folded: float16 and other types, float → integer Casts of fractions (rounding is not
// specified; whole numbers, dynamo's CastLike(0.0, n), are exact), Gather
// (its data may be a weight table), ops with subgraphs, outputs that are graph outputs or are read
// inside a subgraph.
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"
#include "passes/cleanup.h"

namespace bertopt::passes {
namespace {

constexpr int64_t kMaxElements = 4096;

// A decoded constant: float32 values in `f`, integer values in `i`.
struct Tensor {
  int32_t type = 0;
  std::vector<int64_t> dims;
  std::vector<double> f;
  std::vector<int64_t> i;

  bool is_float() const { return type == onnx::TensorProto::FLOAT; }
  int64_t size() const { return is_float() ? static_cast<int64_t>(f.size()) : std::ssize(i); }
  double At(int64_t k) const { return is_float() ? f[k] : static_cast<double>(i[k]); }
};

bool Supported(int32_t type) {
  return type == onnx::TensorProto::FLOAT || type == onnx::TensorProto::INT32 ||
         type == onnx::TensorProto::INT64;
}

std::optional<Tensor> Decode(const onnx::TensorProto& t) {
  if (!Supported(t.data_type()) || ir::NumElements(t) > kMaxElements) return std::nullopt;
  Tensor out{.type = t.data_type(), .dims = {t.dims().begin(), t.dims().end()}, .f = {}, .i = {}};
  if (out.is_float()) {
    auto v = ir::DecodeAsDoubles(t);
    if (!v) return std::nullopt;
    out.f = *std::move(v);
  } else {
    auto v = ir::DecodeAsInts(t);
    if (!v) return std::nullopt;
    out.i = *std::move(v);
  }
  return out;
}

onnx::TensorProto Encode(const Tensor& t, const std::string& name) {
  switch (t.type) {
    case onnx::TensorProto::FLOAT:
      return ir::MakeFloatTensor(name, t.dims, std::vector<float>(t.f.begin(), t.f.end()));
    case onnx::TensorProto::INT32:
      return ir::MakeInt32Tensor(name, t.dims, std::vector<int32_t>(t.i.begin(), t.i.end()));
    default:
      return ir::MakeInt64Tensor(name, t.dims, t.i);
  }
}

int64_t Product(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// An integer as the element type stores it (int32 wraps, as ORT's static_cast does).
void StoreInt(Tensor& t, int64_t value) {
  t.i.push_back(t.type == onnx::TensorProto::INT32 ? static_cast<int32_t>(value) : value);
}

std::optional<Tensor> Unary(const Tensor& x, const std::function<double(double)>& op) {
  if (!x.is_float()) return std::nullopt;
  Tensor out{.type = x.type, .dims = x.dims, .f = {}, .i = {}};
  for (double v : x.f) out.f.push_back(static_cast<float>(op(v)));
  return out;
}

// Numpy broadcasting of two operands of one type.
std::optional<Tensor> Binary(const std::string& op, const Tensor& a, const Tensor& b) {
  if (a.type != b.type) return std::nullopt;
  const size_t rank = std::max(a.dims.size(), b.dims.size());
  std::vector<int64_t> da(rank - a.dims.size(), 1);
  std::vector<int64_t> db(rank - b.dims.size(), 1);
  da.insert(da.end(), a.dims.begin(), a.dims.end());
  db.insert(db.end(), b.dims.begin(), b.dims.end());
  Tensor out{.type = a.type, .dims = {}, .f = {}, .i = {}};
  for (size_t d = 0; d < rank; ++d) {
    if (da[d] != db[d] && da[d] != 1 && db[d] != 1) return std::nullopt;
    out.dims.push_back(da[d] == 1 ? db[d] : da[d]);
  }
  const int64_t n = Product(out.dims);
  if (n > kMaxElements) return std::nullopt;
  for (int64_t k = 0; k < n; ++k) {
    // Index of element k in each operand.
    int64_t ka = 0;
    int64_t kb = 0;
    int64_t rest = k;
    int64_t stride_a = 1;
    int64_t stride_b = 1;
    for (size_t d = rank; d-- > 0;) {
      const int64_t coord = rest % out.dims[d];
      rest /= out.dims[d];
      ka += (da[d] == 1 ? 0 : coord) * stride_a;
      kb += (db[d] == 1 ? 0 : coord) * stride_b;
      stride_a *= da[d];
      stride_b *= db[d];
    }
    if (a.is_float()) {
      const double x = a.f[ka];
      const double y = b.f[kb];
      const double r = op == "Add" ? x + y : op == "Sub" ? x - y : op == "Mul" ? x * y : x / y;
      out.f.push_back(static_cast<float>(r));
    } else {
      const int64_t x = a.i[ka];
      const int64_t y = b.i[kb];
      if (op == "Div" && y == 0) return std::nullopt;
      const int64_t r = op == "Add" ? x + y : op == "Sub" ? x - y : op == "Mul" ? x * y : x / y;
      StoreInt(out, r);
    }
  }
  return out;
}

std::optional<Tensor> Unsqueeze(const ir::Graph& graph, const ir::Node& n, Tensor x) {
  auto axes = graph.AttrOrInputInts(n, "axes", 1);
  if (!axes) return std::nullopt;
  const auto rank = static_cast<int64_t>(x.dims.size() + axes->size());
  std::vector<bool> inserted(rank, false);
  for (int64_t a : *axes) {
    if (a < 0) a += rank;
    if (a < 0 || a >= rank || inserted[a]) return std::nullopt;
    inserted[a] = true;
  }
  std::vector<int64_t> dims;
  size_t next = 0;
  for (int64_t d = 0; d < rank; ++d) dims.push_back(inserted[d] ? 1 : x.dims[next++]);
  x.dims = dims;
  return x;
}

std::optional<Tensor> Squeeze(const ir::Graph& graph, const ir::Node& n, Tensor x) {
  auto axes = graph.AttrOrInputInts(n, "axes", 1);
  const auto rank = static_cast<int64_t>(x.dims.size());
  std::vector<bool> removed(rank, !axes);
  for (int64_t a : axes.value_or(std::vector<int64_t>{})) {
    if (a < 0) a += rank;
    if (a < 0 || a >= rank || x.dims[a] != 1) return std::nullopt;
    removed[a] = true;
  }
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < rank; ++d) {
    if (!(removed[d] && x.dims[d] == 1)) dims.push_back(x.dims[d]);
  }
  x.dims = dims;
  return x;
}

// Expand of one element (dynamo's zeros / new_ones): that element in the target shape.
std::optional<Tensor> Expand(Tensor x, const Tensor& shape) {
  if (x.size() != 1 || shape.is_float()) return std::nullopt;
  std::vector<int64_t> dims(std::max(x.dims.size(), shape.i.size()), 1);
  int64_t count = 1;
  for (size_t k = 0; k < shape.i.size(); ++k) {
    if (shape.i[k] < 0) return std::nullopt;
    dims[dims.size() - shape.i.size() + k] = shape.i[k];
    count *= shape.i[k];
    if (count > kMaxElements) return std::nullopt;
  }
  x.dims = dims;
  if (x.is_float()) x.f.assign(count, x.f.front());
  if (!x.is_float()) x.i.assign(count, x.i.front());
  return x;
}

std::optional<Tensor> Reshape(const ir::Node& n, Tensor x, const Tensor& target) {
  if (target.is_float() || n.AttrInt("allowzero").value_or(0) != 0) return std::nullopt;
  std::vector<int64_t> dims;
  int infer = -1;
  for (size_t d = 0; d < target.i.size(); ++d) {
    int64_t v = target.i[d];
    if (v == 0) {
      if (d >= x.dims.size()) return std::nullopt;
      v = x.dims[d];
    }
    if (v == -1) {
      if (infer >= 0) return std::nullopt;
      infer = static_cast<int>(d);
      v = 1;
    }
    if (v < 0) return std::nullopt;
    dims.push_back(v);
  }
  const int64_t known = Product(dims);
  if (infer >= 0) {
    if (known == 0 || x.size() % known != 0) return std::nullopt;
    dims[infer] = x.size() / known;
  }
  if (Product(dims) != x.size()) return std::nullopt;
  x.dims = dims;
  return x;
}

std::optional<Tensor> Concat(const ir::Node& n, const std::vector<Tensor>& parts) {
  // Only 1-D (and rank-0-free) concatenation along axis 0: the shape pieces exporters build.
  const int64_t axis = n.AttrInt("axis").value_or(0);
  if (parts.empty() || (axis != 0 && axis != -1)) return std::nullopt;
  Tensor out{.type = parts[0].type, .dims = {0}, .f = {}, .i = {}};
  for (const Tensor& p : parts) {
    if (p.type != out.type || p.dims.size() != 1) return std::nullopt;
    out.dims[0] += p.dims[0];
    out.f.insert(out.f.end(), p.f.begin(), p.f.end());
    out.i.insert(out.i.end(), p.i.begin(), p.i.end());
  }
  return out;
}

std::optional<Tensor> Range(const Tensor& start, const Tensor& limit, const Tensor& delta) {
  if (start.size() != 1 || limit.size() != 1 || delta.size() != 1 || start.type != limit.type ||
      start.type != delta.type || start.is_float()) {
    return std::nullopt;
  }
  const int64_t s = start.i[0];
  const int64_t l = limit.i[0];
  const int64_t d = delta.i[0];
  if (d == 0) return std::nullopt;
  const int64_t n = std::max<int64_t>(0, (l - s + d + (d > 0 ? -1 : 1)) / d);
  if (n > kMaxElements) return std::nullopt;
  Tensor out{.type = start.type, .dims = {n}, .f = {}, .i = {}};
  for (int64_t k = 0; k < n; ++k) out.i.push_back(s + k * d);
  return out;
}

// Slice with constant starts/ends (and optional axes/steps), opset >= 10 inputs or opset < 10
// attributes.
std::optional<Tensor> Slice(const ir::Graph& graph, const ir::Node& n, const Tensor& x) {
  auto starts = graph.AttrOrInputInts(n, "starts", 1);
  auto ends = graph.AttrOrInputInts(n, "ends", 2);
  if (!starts || !ends || starts->size() != ends->size()) return std::nullopt;
  std::optional<std::vector<int64_t>> axes =
      n.Attr("axes") || n.input(3) ? graph.AttrOrInputInts(n, "axes", 3) : std::nullopt;
  if ((n.Attr("axes") || n.input(3)) && !axes) return std::nullopt;
  std::optional<std::vector<int64_t>> steps =
      n.input(4) ? graph.AttrOrInputInts(n, "", 4) : std::nullopt;
  if (n.input(4) && !steps) return std::nullopt;
  const auto rank = static_cast<int64_t>(x.dims.size());
  std::vector<int64_t> first(rank, 0);
  std::vector<int64_t> step(rank, 1);
  std::vector<int64_t> count = x.dims;
  for (size_t k = 0; k < starts->size(); ++k) {
    int64_t axis = axes ? (*axes)[k] : static_cast<int64_t>(k);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return std::nullopt;
    const int64_t dim = x.dims[axis];
    const int64_t st = steps ? (*steps)[k] : 1;
    if (st <= 0) return std::nullopt;  // negative steps: not needed by any exporter seen
    auto clamp = [dim](int64_t v) { return std::clamp(v < 0 ? v + dim : v, int64_t{0}, dim); };
    const int64_t b = clamp((*starts)[k]);
    const int64_t e = clamp((*ends)[k]);
    first[axis] = b;
    step[axis] = st;
    count[axis] = e > b ? (e - b + st - 1) / st : 0;
  }
  Tensor out{.type = x.type, .dims = count, .f = {}, .i = {}};
  const int64_t n_out = Product(count);
  for (int64_t k = 0; k < n_out; ++k) {
    int64_t rest = k;
    int64_t src = 0;
    int64_t stride = 1;
    for (int64_t d = rank; d-- > 0;) {
      const int64_t coord = rest % count[d];
      rest /= count[d];
      src += (first[d] + coord * step[d]) * stride;
      stride *= x.dims[d];
    }
    if (x.is_float()) {
      out.f.push_back(x.f[src]);
    } else {
      out.i.push_back(x.i[src]);
    }
  }
  return out;
}

std::optional<Tensor> Cast(int32_t to, Tensor x) {
  if (!Supported(to)) return std::nullopt;
  if (x.is_float() && to != onnx::TensorProto::FLOAT &&
      !std::all_of(x.f.begin(), x.f.end(), [](double v) {
        return v == std::trunc(v) && std::abs(v) < 9.0e15;  // whole numbers convert exactly
      })) {
    return std::nullopt;  // rounding a fraction is unspecified
  }
  Tensor out{.type = to, .dims = x.dims, .f = {}, .i = {}};
  if (to == onnx::TensorProto::FLOAT) {
    for (int64_t k = 0; k < x.size(); ++k) out.f.push_back(static_cast<float>(x.At(k)));
  } else {
    for (int64_t k = 0; k < x.size(); ++k) StoreInt(out, static_cast<int64_t>(x.At(k)));
  }
  return out;
}

// The folded value of `n`'s output 0, or nullopt when `n` is not foldable.
std::optional<Tensor> Fold(const ir::Graph& graph, const ir::Node& n) {
  if (!n.domain().empty() || n.num_outputs() != 1 || !n.implicit_inputs().empty()) {
    return std::nullopt;
  }
  // CastLike(c, like) (dynamo's scalar constants) is a Cast to like's type, which need not be
  // constant.
  const bool cast_like = n.Is("CastLike") && n.num_inputs() == 2;
  std::vector<Tensor> in;
  for (const ir::Value* v : n.inputs()) {
    if (cast_like && !in.empty()) break;
    if (!v) {
      in.emplace_back();  // an omitted optional input
      continue;
    }
    const onnx::TensorProto* t = graph.ConstantTensor(v);
    if (!t) return std::nullopt;
    auto decoded = Decode(*t);
    if (!decoded) return std::nullopt;
    in.push_back(*std::move(decoded));
  }
  // Every op folded here requires its first input; without it (a malformed node, found by the
  // structure fuzzer: an Unsqueeze of "") folding would make an initializer with no data.
  if (in.empty() || !n.inputs().front()) return std::nullopt;
  const std::string& op = n.op_type();
  if (op == "Sqrt") return Unary(in[0], [](double v) { return std::sqrt(v); });
  if (op == "Reciprocal") return Unary(in[0], [](double v) { return 1.0 / v; });
  if (op == "Neg") {
    if (!in[0].is_float()) {
      Tensor out = in[0];
      for (int64_t& v : out.i) v = -v;
      return out;
    }
    return Unary(in[0], [](double v) { return -v; });
  }
  if ((op == "Add" || op == "Sub" || op == "Mul" || op == "Div") && in.size() == 2) {
    return Binary(op, in[0], in[1]);
  }
  if (op == "Cast") return Cast(static_cast<int32_t>(n.AttrInt("to").value_or(0)), in[0]);
  if (cast_like) return Cast(graph.ElementType(n.input(1)), in[0]);
  if (op == "Unsqueeze") return Unsqueeze(graph, n, in[0]);
  if (op == "Squeeze") return Squeeze(graph, n, in[0]);
  if (op == "Reshape" && in.size() == 2) return Reshape(n, in[0], in[1]);
  if (op == "Concat") return Concat(n, in);
  if (op == "Expand" && in.size() == 2) return Expand(in[0], in[1]);
  if (op == "Range" && in.size() == 3) return Range(in[0], in[1], in[2]);
  if (op == "Slice") return Slice(graph, n, in[0]);
  if (op == "Shape" && !n.Attr("start") && !n.Attr("end")) {
    Tensor out{.type = onnx::TensorProto::INT64,
               .dims = {std::ssize(in[0].dims)},
               .f = {},
               .i = in[0].dims};
    return out;
  }
  return std::nullopt;
}

class FoldConstantsPass : public Pass {
 public:
  std::string_view name() const override { return "fold_constants"; }
  Status Run(const PassOptions&, ir::Graph& graph, PassStats& stats) const override {
    // Chains fold front to back; a few rounds reach a fixed point for any node order.
    for (bool changed = true, first = true; changed; first = false) {
      changed = false;
      for (ir::Node* node : graph.Nodes()) {
        if (node->erased()) continue;
        ir::Value* out = node->output(0);
        if (!out || out->is_graph_output()) continue;
        bool implicit = false;
        for (const ir::Use& use : out->uses()) implicit |= use.index == ir::Use::kImplicitUse;
        if (implicit) continue;
        stats.candidates += first;
        std::optional<Tensor> folded = Fold(graph, *node);
        if (!folded) continue;
        const std::string name = out->name();
        graph.EraseNode(node);
        ir::Value* constant = graph.AddInitializer(Encode(*folded, name));
        if (constant != out) RETURN_IF_ERROR(graph.ReplaceAllUses(out, constant));
        ++stats.fused;
        changed = true;
      }
    }
    return Status::Ok();
  }
};

}  // namespace

std::unique_ptr<Pass> MakeFoldConstantsPass() { return std::make_unique<FoldConstantsPass>(); }

}  // namespace bertopt::passes
