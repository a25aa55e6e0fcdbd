#pragma once
// Which dimensions of two values are provably the same size in every run, without knowing the
// sizes: for fusions whose fused op is stricter about shapes than the ops it replaces
// (SkipLayerNormalization must not take over an Add's broadcast), and for rewriting a Reshape
// target computed from Shape(t)[i] into 0 ("copy dimension i of the data").
//
// ONNX shape inference, run once before the passes, loses even the rank of everything after the
// first Reshape whose target is computed, so SymbolicDims derives the dims of a value from its
// producer. A dim is a known size or a symbol standing for one runtime size; two dims are provably
// equal when they are the same size or the same symbol. Nothing is guessed.
//
// Policy, where sizes and symbols come from:
// - constants: their sizes;
// - graph inputs: declared sizes, and dim_param names as symbols, since ONNX gives one name one
//   size throughout a model (ORT's fusions rely on the same). Names that shape inference invents
//   ("unk__N", also what tf2onnx writes) are not the model's, and are not trusted; but the 2-D
//   integer inputs of a BERT (ids, token types, mask) are fed with one shape [B, S], so their
//   unnamed dims are the symbols "batch/sequence of the token inputs". The fused ops that rely
//   on it (EmbedLayerNormalization, Attention) check it when they run: inputs of other shapes
//   are an error there, never a wrong result;
// - value_info of intermediate values: sizes only (its names may be invented); a declared size that
//   contradicts a derived one leaves that dim unknown, a declared rank that does, the whole value;
// - graph outputs: nothing when a rule applies, else only the rank (nothing checks their declared
//   dims, and old exports leave stale ones);
// - a dim that nothing above or below explains is its own symbol "dim i of 'v'", so two paths that
//   reach v still agree on it;
// - no graph input is empty: a BERT is never run on an empty batch or sequence, and an empty run
//   has no values to get wrong. This is what lets a computed Reshape entry that reads a graph
//   input's dim be that dim (below); without it, an entry that is 0 in an empty run would copy a
//   dim of the reshaped tensor instead.
//
// Rules, each true in every run of a valid model:
// - elementwise ops keep input 0's dims. Broadcasting (also MatMul's batch dims and Expand) gives
//   per axis the one size other than 1 (a symbol broadcast against k is 1 or k, so the result is
//   k), else the symbol all operands share, else 1;
// - MatMul [.., m, k]·[.., k, n] is [.., m, n] (1-D operands as numpy); Transpose permutes;
//   Gather, GatherND, Unsqueeze, Squeeze and Reduce* move or drop dims; Flatten multiplies them
//   (a product of symbols is a new symbol); Concat sums its axis' known sizes;
//   Slice keeps the axes it does not slice, and a sliced axis keeps its dim for [0, INT64_MAX) or
//   [0, its own size), or gets a size from constant bounds on a known size; [0, X) of a known k
//   is min(X, k), which broadcast against X gives X (it is X, or k < X and then only k = 1
//   broadcasts);
// - Reshape: an entry k > 0 is k, 0 copies the input's dim, -1 is what the element count leaves
//   once known sizes and shared symbols cancel, and an entry computed from a shape
//   (Gather(Shape(y), i) pieces, through Unsqueeze/Squeeze/Slice/Concat/Cast) is dim i of y where
//   a runtime 0 would copy that same dim, where a 0 is invalid (past the input's rank), where it
//   is a graph input's dim (never 0, above), or with allowzero=1. Expand and ConstantOfShape read
//   their shape the same way; Range(0, n, 1) has n elements; Shape(y) has rank(y) elements (fewer
//   with start/end);
// - com.microsoft: the Gelu ops and SkipLayerNormalization keep input 0's dims; Attention gives
//   [B, S, hidden], EmbedLayerNormalization [B, S, hidden] and its mask index [B].

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bertopt/ir/graph.h"

namespace bertopt::passes {

/// One dimension: a known size, or a symbol standing for one runtime size.
struct Dim {
  int64_t size = -1;   ///< >= 0 when known
  std::string symbol;  ///< when size < 0: a graph input's dim_param, or "dim i of 'v'"
  /// A dim of a graph input: never 0 under the policy below (a function of `symbol`).
  bool of_input = false;
  /// When set: this size is min(that symbol's size, a known size), at most that symbol's.
  std::string at_most;

  static Dim Known(int64_t size) { return Dim{size, {}, false, {}}; }
  static Dim Named(std::string symbol) { return Dim{-1, std::move(symbol), false, {}}; }
  bool known() const { return size >= 0; }
  /// True when both are provably the same size in every run.
  bool operator==(const Dim&) const = default;
};
using Dims = std::vector<Dim>;

/// For messages: "[batch_size, 16, dim 2 of 'x']".
std::string ToString(const Dims& dims);

class SymbolicDims {
 public:
  /// Reads `graph` as it is now; build a new one after the graph changed.
  explicit SymbolicDims(const ir::Graph& graph);

  /// The dims of `value`, or nullopt when not even its rank is known.
  std::optional<Dims> Of(const ir::Value* value);
  /// Dim `axis` of `value` (negative counts from the end); nullopt when out of range. When the
  /// rank is unknown, a dim `axis` >= 0 still exists wherever it is read: it is its own symbol.
  std::optional<Dim> At(const ir::Value* value, int64_t axis);
  /// True when dim `da` of `a` is provably dim `db` of `b` in every run.
  bool SameDim(const ir::Value* a, int64_t da, const ir::Value* b, int64_t db);

  /// The elements of a small integer tensor (a shape or a piece of one), in order: each a known
  /// value, a dim symbol, the Reshape wildcard -1 (symbol "-1"), or nullopt where it is not known.
  /// nullopt when even the count is unknown.
  using Elements = std::vector<std::optional<Dim>>;
  std::optional<Elements> ElementsOf(const ir::Value* value);
  /// True when `e` is the Reshape wildcard -1.
  static bool IsInfer(const std::optional<Dim>& e);

 private:
  std::optional<Elements> SliceElements(const ir::Node& node);
  std::optional<Elements> ComputedElements(const ir::Node& node);
  std::optional<Dims> Declared(const ir::Value& value) const;
  std::optional<Dims> Derive(const ir::Value& value);
  std::optional<Dims> DeriveMs(const ir::Node& node, const ir::Value& value);
  std::optional<Dims> DeriveReshape(const ir::Node& node, const ir::Value& value);
  std::optional<Dims> DeriveSlice(const ir::Node& node, const ir::Value& value);
  std::optional<Dims> DeriveAxes(const ir::Node& node, const ir::Value& value);

  const ir::Graph& graph_;
  std::unordered_map<std::string, const onnx::ValueInfoProto*> declared_;
  std::unordered_map<const ir::Value*, std::optional<Dims>> memo_;
  int depth_ = 0;
  int elements_depth_ = 0;  ///< ElementsOf's own recursion: shape computations are short chains
};

/// A one-element shape piece that reads one dimension of a tensor: `Unsqueeze(Gather(Shape(t),
/// C i), axes=[0])` (axes as attribute or, from opset 13, as a constant input) or
/// `Gather(Shape(t), C[1] {i})`. `reason` says why `piece` is not such a read (then `source` is
/// null). A negative index is resolved when the rank of t is known.
struct DimRead {
  const ir::Value* source = nullptr;
  int dim = 0;
  std::string reason;
};
DimRead ReadDimPiece(const ir::Graph& graph, const ir::Value* piece, SymbolicDims& dims);

}  // namespace bertopt::passes
