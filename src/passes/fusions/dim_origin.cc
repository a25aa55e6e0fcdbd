#include "passes/fusions/dim_origin.h"

#include <algorithm>
#include <unordered_set>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"

namespace bertopt::passes {
namespace {

// Ops whose output 0 has exactly the shape of input 0.
bool KeepsShape(const std::string& op) {
  static const std::unordered_set<std::string> kOps = {
      "Cast",     "Relu",    "Erf",   "Sqrt", "Tanh",       "Sigmoid",           "Neg",
      "Exp",      "Log",     "Abs",   "Not",  "Reciprocal", "Softmax",           "LogSoftmax",
      "Identity", "Dropout", "Floor", "Ceil", "Sign",       "LayerNormalization"};
  return kOps.count(op) > 0;
}

// Ops whose output is the multidirectional broadcast of all their inputs.
bool Broadcasts(const std::string& op) {
  static const std::unordered_set<std::string> kOps = {"Add",
                                                       "Sub",
                                                       "Mul",
                                                       "Div",
                                                       "Pow",
                                                       "Mod",
                                                       "Equal",
                                                       "Less",
                                                       "Greater",
                                                       "LessOrEqual",
                                                       "GreaterOrEqual",
                                                       "And",
                                                       "Or",
                                                       "Xor",
                                                       "Where",
                                                       "Max",
                                                       "Min",
                                                       "Sum",
                                                       "Mean"};
  return kOps.count(op) > 0;
}

bool Reduces(const std::string& op) {
  static const std::unordered_set<std::string> kOps = {
      "ReduceMean", "ReduceSum", "ReduceMax",       "ReduceMin",    "ReduceProd",
      "ReduceL1",   "ReduceL2",  "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"};
  return kOps.count(op) > 0;
}

// The ms ops whose output 0 has the shape of input 0.
bool MsKeepsShape(const std::string& op) {
  static const std::unordered_set<std::string> kOps = {"Gelu",
                                                       "FastGelu",
                                                       "BiasGelu",
                                                       "QuickGelu",
                                                       "SkipLayerNormalization",
                                                       "SkipSimplifiedLayerNormalization"};
  return kOps.count(op) > 0;
}

const std::optional<DimTracer::Dims> kUnknown;

// The shared origin of candidates for one broadcast dimension (nullopt: unknown), else `self`.
DimOrigin Common(const std::vector<std::optional<DimOrigin>>& candidates, DimOrigin self) {
  std::optional<DimOrigin> common;
  for (const auto& c : candidates) {
    if (!c) return self;
    if (c->known_size() && c->size == 1) continue;  // size 1 stretches to the others
    if (common && !(*common == *c)) return self;
    common = c;
  }
  return common ? *common : DimOrigin{.size = 1};
}

}  // namespace

DimRead ReadDimPiece(const ir::Graph& graph, const ir::Value* piece, DimTracer* tracer) {
  DimRead read;
  const ir::Node* gather = piece->producer();
  bool scalar_index = false;
  if (gather && gather->Is("Unsqueeze")) {
    std::optional<std::vector<int64_t>> axes = gather->AttrInts("axes");
    if (!axes && gather->num_inputs() >= 2) axes = graph.ConstantAsInts(gather->input(1));
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
    std::optional<int> rank;
    if (tracer) {
      rank = tracer->Rank(source);
    } else if (auto s = graph.Shape(source)) {
      rank = static_cast<int>(s->size());
    }
    if (!rank) {
      read.reason = fmt::format("{} index {} counts from the end of '{}', whose rank is unknown",
                                gather->DisplayName(), dim, source->name());
      return read;
    }
    dim += *rank;
  }
  read.source = source;
  read.dim = static_cast<int>(dim);
  return read;
}

const std::optional<DimTracer::Dims>& DimTracer::Of(const ir::Value* value) {
  if (!value) return kUnknown;
  if (auto it = memo_.find(value); it != memo_.end()) return it->second;

  std::optional<Dims> result;
  if (const onnx::TensorProto* t = graph_.ConstantTensor(value)) {
    Dims dims;
    for (int64_t d : t->dims()) dims.push_back({.size = d});
    result = dims;
  } else {
    std::optional<Dims> derived;
    // Very deep chains stop being derived: their dimensions are then their own origins.
    if (depth_ < 1000) {
      ++depth_;
      derived = Derive(*value);
      --depth_;
    }
    auto declared = graph_.Shape(value);
    // Declared sizes of outputs are not checked by the runtime (old exports carry stale ones).
    const bool sizes_trusted = !value->is_graph_output() || value->is_graph_input();
    if (declared && (!derived || derived->size() != declared->size())) {
      Dims dims;
      for (int i = 0; i < static_cast<int>(declared->size()); ++i) {
        const int64_t size = (*declared)[i];
        dims.push_back(size >= 0 && sizes_trusted ? DimOrigin{.size = size}
                                                  : DimOrigin{.value = value, .dim = i});
      }
      result = dims;
    } else if (derived) {
      if (declared && sizes_trusted) {
        for (size_t i = 0; i < derived->size(); ++i) {
          if ((*declared)[i] >= 0) (*derived)[i] = DimOrigin{.size = (*declared)[i]};
        }
      }
      result = derived;
    }
  }
  return memo_[value] = std::move(result);
}

std::optional<int> DimTracer::Rank(const ir::Value* value) {
  const auto& dims = Of(value);
  if (!dims) return std::nullopt;
  return static_cast<int>(dims->size());
}

std::optional<DimOrigin> DimTracer::Origin(const ir::Value* value, int dim) {
  const auto& dims = Of(value);
  if (!dims) return std::nullopt;
  const int rank = static_cast<int>(dims->size());
  if (dim < 0) dim += rank;
  if (dim < 0 || dim >= rank) return std::nullopt;
  return (*dims)[dim];
}

int64_t DimTracer::Size(const ir::Value* value, int dim) {
  auto origin = Origin(value, dim);
  return origin && origin->known_size() ? origin->size : -1;
}

bool DimTracer::SameDim(const ir::Value* a, int da, const ir::Value* b, int db) {
  // One dimension of one tensor is itself, whatever is known about the tensor.
  if (a == b && da == db && da >= 0) return true;
  auto oa = Origin(a, da);
  auto ob = Origin(b, db);
  return oa && ob && *oa == *ob;
}

std::optional<std::vector<int64_t>> DimTracer::Axes(const ir::Node& node, int input) {
  if (auto axes = node.AttrInts("axes")) return axes;
  if (node.num_inputs() > input && node.input(input))
    return graph_.ConstantAsInts(node.input(input));
  return std::nullopt;
}

std::optional<DimTracer::Dims> DimTracer::Broadcast(const std::vector<const ir::Value*>& operands,
                                                    const ir::Value& out) {
  std::vector<Dims> all;
  size_t rank = 0;
  for (const ir::Value* v : operands) {
    const auto& dims = Of(v);
    if (!dims) return std::nullopt;
    all.push_back(*dims);
    rank = std::max(rank, dims->size());
  }
  Dims result;
  for (size_t d = 0; d < rank; ++d) {
    std::vector<std::optional<DimOrigin>> candidates;
    for (const Dims& dims : all) {
      if (d + dims.size() >= rank) candidates.push_back(dims[d + dims.size() - rank]);
    }
    result.push_back(Common(candidates, {.value = &out, .dim = static_cast<int>(d)}));
  }
  return result;
}

std::optional<std::vector<std::optional<DimOrigin>>> DimTracer::ShapeElements(
    const ir::Value* shape) {
  using Elements = std::vector<std::optional<DimOrigin>>;
  if (!shape) return std::nullopt;
  if (auto values = graph_.ConstantAsInts(shape)) {
    Elements elements;
    for (int64_t v : *values) elements.push_back(DimOrigin{.size = v});
    return elements;
  }
  const ir::Node* p = shape->producer();
  if (p && p->Is("Shape") && !p->Attr("start") && !p->Attr("end")) {
    const auto& dims = Of(p->input(0));
    if (!dims) return std::nullopt;
    return Elements(dims->begin(), dims->end());
  }
  if (p && p->Is("Cast")) return ShapeElements(p->input(0));  // int32 <-> int64 keeps sizes
  if (p && p->Is("Concat") && (p->AttrInt("axis") == 0 || p->AttrInt("axis") == -1)) {
    Elements elements;
    for (const ir::Value* piece : p->inputs()) {
      if (!piece) return std::nullopt;
      if (graph_.ConstantTensor(piece) || !ReadDimPiece(graph_, piece, this).source) {
        auto inner = ShapeElements(piece);
        if (!inner) return std::nullopt;
        elements.insert(elements.end(), inner->begin(), inner->end());
        continue;
      }
      DimRead read = ReadDimPiece(graph_, piece, this);
      auto origin = Origin(read.source, read.dim);
      // A tensor whose rank is unknown still has its dimension `dim` (the Gather would fail
      // otherwise): that dimension is its own origin.
      elements.push_back(origin ? *origin : DimOrigin{.value = read.source, .dim = read.dim});
    }
    return elements;
  }
  // Unknown elements, but a known length.
  const auto& dims = Of(shape);
  if (dims && dims->size() == 1 && (*dims)[0].known_size()) {
    return Elements((*dims)[0].size, std::nullopt);
  }
  return std::nullopt;
}

std::optional<DimTracer::Dims> DimTracer::Derive(const ir::Value& value) {
  const ir::Node* p = value.producer();
  if (!p) return std::nullopt;
  if (p->domain() == ir::kMsDomain) return DeriveMs(*p, value);
  if (!p->domain().empty()) return std::nullopt;
  const std::string& op = p->op_type();
  const bool first_output = p->output(0) == &value;
  auto self = [&](int d) { return DimOrigin{.value = &value, .dim = d}; };

  if (KeepsShape(op) && first_output) return Of(p->input(0));
  if (Broadcasts(op)) {
    std::vector<const ir::Value*> operands(p->inputs().begin(), p->inputs().end());
    return Broadcast(operands, value);
  }
  if (op == "MatMul") {
    const auto& a = Of(p->input(0));
    const auto& b = Of(p->input(1));
    if (!a || !b || a->size() < 2 || b->size() < 2) return std::nullopt;
    const size_t rank = std::max(a->size(), b->size());
    Dims result;
    for (size_t d = 0; d + 2 < rank; ++d) {
      std::vector<std::optional<DimOrigin>> candidates;
      for (const Dims* dims : {&*a, &*b}) {
        if (d + dims->size() >= rank) candidates.push_back((*dims)[d + dims->size() - rank]);
      }
      result.push_back(Common(candidates, self(static_cast<int>(d))));
    }
    result.push_back((*a)[a->size() - 2]);
    result.push_back((*b)[b->size() - 1]);
    return result;
  }
  if (op == "Transpose") {
    const auto& in = Of(p->input(0));
    if (!in) return std::nullopt;
    const int rank = static_cast<int>(in->size());
    std::vector<int64_t> perm;
    for (int i = rank - 1; i >= 0; --i) perm.push_back(i);
    if (auto attr = p->AttrInts("perm")) perm = *attr;
    if (static_cast<int>(perm.size()) != rank) return std::nullopt;
    Dims result;
    for (int64_t axis : perm) {
      if (axis < 0 || axis >= rank) return std::nullopt;
      result.push_back((*in)[axis]);
    }
    return result;
  }
  if (op == "Reshape") {
    auto entries = ShapeElements(p->input(1));
    if (!entries) return std::nullopt;
    const auto& in = Of(p->input(0));
    const bool allowzero = p->AttrInt("allowzero").value_or(0) != 0;
    auto entry_origin = [&](int i, const std::optional<DimOrigin>& e) {
      const bool has_input_dim = in && i < static_cast<int>(in->size());
      if (e && e->known_size() && e->size == 0 && !allowzero) {
        return has_input_dim ? (*in)[i] : self(i);
      }
      if (e && e->known_size() && e->size >= 0) return *e;
      // A computed entry that is 0 at run time copies the input dimension instead (unless
      // allowzero), so it is an origin only when that copy would be the same dimension.
      if (e && !e->known_size() && (allowzero || (has_input_dim && (*in)[i] == *e))) return *e;
      return self(i);  // unknown, -1 (whatever is left), or a computed entry that may copy
    };
    Dims result;
    for (int i = 0; i < static_cast<int>(entries->size()); ++i) {
      result.push_back(entry_origin(i, (*entries)[i]));
    }
    return result;
  }
  if (op == "Expand") {
    auto entries = ShapeElements(p->input(1));
    const auto& in = Of(p->input(0));
    if (!entries || !in) return std::nullopt;
    const size_t rank = std::max(entries->size(), in->size());
    Dims result;
    for (size_t d = 0; d < rank; ++d) {
      std::vector<std::optional<DimOrigin>> candidates;
      if (d + in->size() >= rank) candidates.push_back((*in)[d + in->size() - rank]);
      if (d + entries->size() >= rank) candidates.push_back((*entries)[d + entries->size() - rank]);
      result.push_back(Common(candidates, self(static_cast<int>(d))));
    }
    return result;
  }
  if (op == "Unsqueeze") {
    const auto& in = Of(p->input(0));
    auto axes = Axes(*p, 1);
    if (!in || !axes) return std::nullopt;
    const int rank = static_cast<int>(in->size() + axes->size());
    std::vector<bool> inserted(rank, false);
    for (int64_t a : *axes) {
      if (a < 0) a += rank;
      if (a < 0 || a >= rank) return std::nullopt;
      inserted[a] = true;
    }
    Dims result;
    size_t next = 0;
    for (int d = 0; d < rank; ++d) {
      if (inserted[d]) {
        result.push_back({.size = 1});
      } else {
        if (next >= in->size()) return std::nullopt;
        result.push_back((*in)[next++]);
      }
    }
    return result;
  }
  if (op == "Squeeze") {
    const auto& in = Of(p->input(0));
    auto axes = Axes(*p, 1);
    if (!in || !axes) return std::nullopt;
    const int rank = static_cast<int>(in->size());
    std::vector<bool> removed(rank, false);
    for (int64_t a : *axes) {
      if (a < 0) a += rank;
      if (a < 0 || a >= rank) return std::nullopt;
      removed[a] = true;
    }
    Dims result;
    for (int d = 0; d < rank; ++d) {
      if (!removed[d]) result.push_back((*in)[d]);
    }
    return result;
  }
  if (Reduces(op) && first_output) {
    const auto& in = Of(p->input(0));
    if (!in) return std::nullopt;
    const int rank = static_cast<int>(in->size());
    auto axes = Axes(*p, 1);
    // Axes given as a computed input are unknown, not absent.
    if (!axes && p->input(1)) return std::nullopt;
    const bool keepdims = p->AttrInt("keepdims").value_or(1) != 0;
    std::vector<bool> reduced(rank, !axes || axes->empty());
    if ((!axes || axes->empty()) && p->AttrInt("noop_with_empty_axes").value_or(0) != 0) {
      return in;
    }
    for (int64_t a : axes.value_or(std::vector<int64_t>{})) {
      if (a < 0) a += rank;
      if (a < 0 || a >= rank) return std::nullopt;
      reduced[a] = true;
    }
    Dims result;
    for (int d = 0; d < rank; ++d) {
      if (!reduced[d]) {
        result.push_back((*in)[d]);
      } else if (keepdims) {
        result.push_back({.size = 1});
      }
    }
    return result;
  }
  if (op == "Slice") {
    // Sliced axes change size; the others are the input's. Without constant axes any may change.
    const auto& in = Of(p->input(0));
    if (!in) return std::nullopt;
    const int rank = static_cast<int>(in->size());
    std::optional<std::vector<int64_t>> axes = p->AttrInts("axes");
    if (!axes && p->num_inputs() >= 4) axes = graph_.ConstantAsInts(p->input(3));
    std::vector<bool> sliced(rank, !axes);
    for (int64_t a : axes.value_or(std::vector<int64_t>{})) {
      if (a < 0) a += rank;
      if (a < 0 || a >= rank) return std::nullopt;
      sliced[a] = true;
    }
    Dims result;
    for (int d = 0; d < rank; ++d) result.push_back(sliced[d] ? self(d) : (*in)[d]);
    return result;
  }
  if (op == "Gather") {
    const auto& data = Of(p->input(0));
    const auto& indices = Of(p->input(1));
    if (!data || !indices) return std::nullopt;
    int64_t axis = p->AttrInt("axis").value_or(0);
    const int rank = static_cast<int>(data->size());
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return std::nullopt;
    Dims result(data->begin(), data->begin() + axis);
    result.insert(result.end(), indices->begin(), indices->end());
    result.insert(result.end(), data->begin() + axis + 1, data->end());
    return result;
  }
  if (op == "Shape" && !p->Attr("start") && !p->Attr("end")) {
    auto rank = Rank(p->input(0));
    if (!rank) return std::nullopt;
    return Dims{{.size = *rank}};
  }
  if (op == "Concat") {
    const auto& first = Of(p->input(0));
    if (!first) return std::nullopt;
    const int rank = static_cast<int>(first->size());
    int64_t axis = p->AttrInt("axis").value_or(0);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank) return std::nullopt;
    Dims result = *first;  // every input has the same dimensions off the axis
    int64_t total = 0;
    for (const ir::Value* v : p->inputs()) {
      const auto& dims = Of(v);
      if (!dims || static_cast<int>(dims->size()) != rank || !(*dims)[axis].known_size()) {
        total = -1;
        break;
      }
      total += (*dims)[axis].size;
    }
    result[axis] = total >= 0 ? DimOrigin{.size = total} : self(static_cast<int>(axis));
    return result;
  }
  return std::nullopt;
}

std::optional<DimTracer::Dims> DimTracer::DeriveMs(const ir::Node& node, const ir::Value& value) {
  const std::string& op = node.op_type();
  const bool first_output = node.output(0) == &value;
  if (MsKeepsShape(op) &&
      (first_output || (op == "SkipLayerNormalization" && node.output(3) == &value))) {
    return Of(node.input(0));
  }
  if (op == "Attention" && first_output && !node.Attr("qkv_hidden_sizes")) {
    const auto& x = Of(node.input(0));
    const auto& w = Of(node.input(1));
    if (!x || x->size() != 3) return std::nullopt;
    DimOrigin hidden{.value = &value, .dim = 2};
    if (w && w->size() == 2 && (*w)[1].known_size() && (*w)[1].size % 3 == 0) {
      hidden = {.size = (*w)[1].size / 3};
    }
    return Dims{(*x)[0], (*x)[1], hidden};
  }
  if (op == "EmbedLayerNormalization") {
    const auto& ids = Of(node.input(0));
    const auto& word = Of(node.input(2));
    if (!ids || ids->size() != 2) return std::nullopt;
    if (first_output && word && word->size() == 2) return Dims{(*ids)[0], (*ids)[1], (*word)[1]};
    if (node.output(1) == &value) return Dims{(*ids)[0]};
  }
  return std::nullopt;
}

}  // namespace bertopt::passes
