// Reshape targets computed from Shape/Gather chains -> constant targets with 0 / -1 entries.
//
//   q ─┬► Shape ─► Gather(C 0) ─► Unsqueeze[0] ─┐
//      ├► Shape ─► Gather(C 1) ─► Unsqueeze[0] ─┤
//      │                        C:i64[1] {N} ───┼─► Concat(axis 0) ─┐
//      │                        C:i64[1] {Hd} ──┘                   ▼
//      └───────────────────────────────────────────────────────► Reshape ─►
//   =>
//   q ─► Reshape(·, I:i64[4] {0, 0, N, Hd}) ─►
//
// A piece "dimension i of t" becomes 0 ("copy dimension k of the data", k its position) when
// SymbolicDims proves that dimension i of t is dimension k of the data: t is the data itself with
// i == k, or a tensor whose dimension flows unchanged into the data (DistilBERT reshapes
// Q = x·Wq + bq with pieces read from x). A piece whose size is a known constant becomes that
// constant. Constant pieces (rank 0 or 1-D) keep their values, -1 included. The Shape/Gather nodes
// are only read (dead-code removal deletes them once nothing else does); the Unsqueeze and Concat
// nodes must feed only this Reshape.
//
// Other computed targets (keras2onnx / tf2onnx: int32 pieces Cast to int64, a batch size taken as
// Squeeze(Slice(Shape(x), 0, 1)), a Concat shared by several Reshapes) are read entry by entry
// through SymbolicDims::ElementsOf and replaced by a new constant when every entry is named; the
// chain is then left to dead-code removal.
//
// Deliberately not handled: allowzero=1 (a 0 there means an empty dimension), entries computed by
// arithmetic on dimensions (Mul/Div of Gathers), and entries that cannot be proven, e.g.
// DistilBERT's merge and mask targets, which read x's batch size for a tensor whose batch size
// reaches it through the mask (the attention fusion checks those against x itself): they keep the
// Reshape as it is.
#include <string>
#include <vector>

#include "bertopt/ir/tensor.h"
#include "bertopt/pattern/pattern.h"
#include "fmt/format.h"
#include "passes/fusions/fusions.h"
#include "passes/symbolic_dims.h"

namespace bertopt::passes {
namespace {

using pattern::Any;
using pattern::Const;
using pattern::OneOf;
using pattern::Op;
using pattern::P;

// One Concat input: a constant, or a dimension read `Unsqueeze(Gather(Shape(t), i))` /
// `Gather(Shape(t), [i])`. The Gather and Shape may serve other pieces and other Reshapes.
P ShapePiece() {
  P dimension = Op("Gather", {Op("Shape", {Any()}).Shared(), Const()});
  return OneOf({Const(), Op("Unsqueeze", {dimension.Shared()}), dimension});
}

class ReshapeFusion : public Fusion {
 public:
  std::string_view name() const override { return "reshape"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph& graph) const override {
    std::vector<ir::Node*> computed;
    for (ir::Node* reshape : graph.NodesOfType("Reshape")) {
      if (reshape->input(1) && !graph.ConstantTensor(reshape->input(1)))
        computed.push_back(reshape);
    }
    return computed;
  }

  FuseResult FuseAt(const PassOptions&, ir::Graph& graph, ir::Node* reshape) const override {
    ir::Value* data = reshape->input(0);
    ir::Value* target = reshape->input(1);
    const bool allowzero = reshape->AttrInt("allowzero").value_or(0) != 0;
    if (allowzero) return FuseResult::Miss("allowzero=1: a 0 entry would mean an empty dimension");
    ir::Node* concat = target->producer();
    if (!concat || !concat->Is("Concat")) {
      return ByElements(
          graph, reshape,
          fmt::format("the target shape '{}' is {}, not a Concat of pieces", target->name(),
                      concat ? concat->op_type() + " " + concat->DisplayName() : "a graph input"));
    }
    const int64_t axis = concat->AttrInt("axis").value_or(-2);
    if (axis != 0 && axis != -1) {
      return FuseResult::Miss(
          fmt::format("{} concatenates along axis {}, not 0", concat->DisplayName(), axis));
    }

    std::vector<P> pieces(concat->num_inputs(), ShapePiece());
    auto result =
        pattern::MatchPattern(graph, reshape, Op("Reshape", {Any(), Op("Concat", pieces)}));
    if (!result.ok()) return ByElements(graph, reshape, result.reason());

    SymbolicDims dims(graph);
    std::vector<int64_t> shape;
    int inferred = 0;
    for (int i = 0; i < concat->num_inputs(); ++i) {
      const ir::Value* piece = concat->input(i);
      if (const onnx::TensorProto* t = graph.ConstantTensor(piece)) {
        auto values = graph.ConstantAsInts(piece);
        if (!values || t->dims_size() > 1) {
          return FuseResult::Miss(
              fmt::format("constant piece '{}' is not a 1-D integer tensor", piece->name()));
        }
        for (int64_t v : *values) {
          inferred += v == -1;
          shape.push_back(v);
        }
        continue;
      }
      DimRead read = ReadDimPiece(graph, piece, dims);
      if (!read.source) return FuseResult::Miss(fmt::format("piece {}: {}", i, read.reason));
      const int position = static_cast<int>(shape.size());
      if (dims.SameDim(read.source, read.dim, data, position)) {
        shape.push_back(0);
        continue;
      }
      if (const std::optional<Dim> d = dims.At(read.source, read.dim); d && d->known()) {
        shape.push_back(d->size);
        continue;
      }
      return FuseResult::Miss(fmt::format(
          "piece {} is dimension {} of '{}', which is not provably dimension {} of the reshaped "
          "'{}'",
          i, read.dim, read.source->name(), position, data->name()));
    }
    if (inferred > 1) return FuseResult::Miss("the target has more than one -1");

    // The Concat and the Unsqueezes fed only this Reshape (the match checked that); the constant
    // takes over the Concat's output name, so the Reshape reads it without rewiring.
    const std::string target_name = target->name();
    for (ir::Node* node : result.match().owned_nodes()) {
      if (node != reshape) graph.EraseNode(node);
    }
    ir::Value* constant = graph.AddInitializer(
        ir::MakeInt64Tensor(target_name, {static_cast<int64_t>(shape.size())}, shape));
    if (constant != reshape->input(1)) graph.SetInput(reshape, 1, constant);
    return FuseResult::Fused();
  }

 private:
  // Any other computed target whose every entry SymbolicDims names: keras2onnx and tf2onnx build
  // targets in int32 and Cast them, take the batch size as Squeeze(Slice(Shape(x), 0, 1)), and
  // share one target among several Reshapes. An entry that is dimension i of the data becomes 0,
  // a known size that size, -1 stays. The chain is left to dead-code removal, since other
  // Reshapes may read it. `why_not_pieces` is the reason when this fails too.
  static FuseResult ByElements(ir::Graph& graph, ir::Node* reshape,
                               const std::string& why_not_pieces) {
    SymbolicDims dims(graph);
    ir::Value* data = reshape->input(0);
    ir::Value* target = reshape->input(1);
    const auto elements = dims.ElementsOf(target);
    if (!elements) return FuseResult::Miss(why_not_pieces);
    std::vector<int64_t> shape;
    int inferred = 0;
    for (size_t i = 0; i < elements->size(); ++i) {
      const std::optional<Dim>& e = (*elements)[i];
      if (SymbolicDims::IsInfer(e)) {
        ++inferred;
        shape.push_back(-1);
      } else if (e && e->known() && e->size > 0) {
        shape.push_back(e->size);
      } else if (e && !e->known() && dims.At(data, static_cast<int64_t>(i)) == *e) {
        shape.push_back(0);
      } else {
        return FuseResult::Miss(fmt::format(
            "{}; and entry {} of '{}' is {}", why_not_pieces, i, target->name(),
            !e           ? std::string("unknown")
            : e->known() ? "0"
                         : fmt::format("{}, not provably dimension {} of the reshaped '{}'",
                                       e->symbol, i, data->name())));
      }
    }
    if (inferred > 1) return FuseResult::Miss("the target has more than one -1");
    ir::Value* constant = graph.AddInitializer(ir::MakeInt64Tensor(
        graph.UniqueName(target->name() + "_folded"), {std::ssize(shape)}, shape));
    graph.SetInput(reshape, 1, constant);
    return FuseResult::Fused();
  }
};

}  // namespace

std::unique_ptr<Pass> MakeReshapeFusion() { return std::make_unique<ReshapeFusion>(); }

}  // namespace bertopt::passes
