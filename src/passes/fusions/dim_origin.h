#pragma once
// Proving that two tensor dimensions are equal without knowing their sizes.
//
// Dynamic exports compute Reshape targets from `Shape(t)[i]`, often of a tensor other than the one
// being reshaped (DistilBERT reads the layer input x to reshape Q = x·Wq + bq). Replacing such a
// piece by 0 ("copy dimension k of the data") is exact only when dimension i of t is dimension k
// of the data in every run. And ONNX shape inference, run once before the passes, loses even the
// rank of everything after the first computed Reshape target.
//
// DimTracer derives every dimension of a value from its producer, by rules that hold in every run
// of the op: elementwise ops keep their input's dimensions, broadcasting keeps the common one
// when the operands agree or are 1, MatMul keeps the leading dimensions and takes the last from
// the weight, Transpose permutes, Reshape copies for a 0 entry and takes constant entries,
// Unsqueeze/Reduce*/Gather/Expand move dimensions around, the fused com.microsoft ops keep their
// input's. A dimension no rule explains is its own origin ("dimension 1 of 'x'"), so two paths
// that reach the same tensor agree and nothing is ever guessed. Sizes are taken only from graph
// inputs (the runtime enforces them), constants, and value_info of intermediate values.

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bertopt/ir/graph.h"

namespace bertopt::passes {

/// Either "dimension `dim` of `value`" or, when `value` is null, the known size `size`.
struct DimOrigin {
  const ir::Value* value = nullptr;
  int dim = 0;
  int64_t size = -1;
  bool known_size() const { return value == nullptr; }
  bool operator==(const DimOrigin&) const = default;
};

/// A one-element shape piece that reads one dimension of a tensor: `Unsqueeze(Gather(Shape(t),
/// C i), axes=[0])` (axes as attribute or, from opset 13, as a constant input) or
/// `Gather(Shape(t), C[1] {i})`. `reason` says why `piece` is not such a read (then `source` is
/// null). A negative index is resolved when the rank of t is known to `rank_of`.
struct DimRead {
  const ir::Value* source = nullptr;
  int dim = 0;
  std::string reason;
};
class DimTracer;
DimRead ReadDimPiece(const ir::Graph& graph, const ir::Value* piece, DimTracer* tracer = nullptr);

class DimTracer {
 public:
  using Dims = std::vector<DimOrigin>;

  /// Reads `graph` as it is; make a new tracer after changing the graph.
  explicit DimTracer(const ir::Graph& graph) : graph_(graph) {}

  /// The origin of every dimension of `value`; nullopt when not even its rank is known.
  const std::optional<Dims>& Of(const ir::Value* value);
  std::optional<int> Rank(const ir::Value* value);
  /// The origin of dimension `dim` (negative counts from the end), or nullopt.
  std::optional<DimOrigin> Origin(const ir::Value* value, int dim);
  /// The known size of a dimension, or -1.
  int64_t Size(const ir::Value* value, int dim);
  /// True when dimension `da` of `a` is provably dimension `db` of `b` in every run.
  bool SameDim(const ir::Value* a, int da, const ir::Value* b, int db);

 private:
  std::optional<Dims> Derive(const ir::Value& value);
  std::optional<Dims> DeriveMs(const ir::Node& node, const ir::Value& value);
  std::optional<Dims> Broadcast(const std::vector<const ir::Value*>& operands,
                                const ir::Value& out);
  /// The elements of a 1-D shape tensor as origins (nullopt entries are unknown); nullopt when
  /// even the length is unknown.
  std::optional<std::vector<std::optional<DimOrigin>>> ShapeElements(const ir::Value* shape);
  std::optional<std::vector<int64_t>> Axes(const ir::Node& node, int input);

  const ir::Graph& graph_;
  std::unordered_map<const ir::Value*, std::optional<Dims>> memo_;
  int depth_ = 0;
};

}  // namespace bertopt::passes
