#pragma once
// Which dimensions of two values are provably equal, for fusions whose fused op is stricter about
// shapes than the ops it replaces (SkipLayerNormalization must not take over an Add's broadcast).
//
// ONNX shape inference, run before the passes, loses every dimension of a dynamic torch export
// after the first Reshape whose target shape is computed (Concat of Shape/Gather pieces), so the
// residual Adds of a BERT encoder have no declared shape at all. SymbolicDims derives dims from
// the producers instead, using only facts that hold in every run of a valid model:
// - declared shapes (value_info, graph inputs/outputs, constants); equal dim_param names are equal;
// - per-op rules: elementwise ops keep or broadcast shapes, MatMul with a 2-D weight keeps the
//   leading dims, Transpose permutes, Reshape copies dims named by `0` or by a
//   Gather(Shape(y), i) piece, Gather/Expand/Unsqueeze, and the fused com.microsoft ops;
// - a dim that cannot be derived stands for itself ("dim 1 of 'x'"), so two paths that both reach
//   'x' still agree on it.
// When a derived dim and a declared one describe the same axis, the two are recorded as equal
// (except for graph outputs, whose declared shapes nothing checks; conflicting facts give up).
// Nothing is guessed: a dim is only ever equal to another when a rule proves it.

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "bertopt/ir/graph.h"

namespace bertopt::passes {

class SymbolicDims {
 public:
  /// One dimension: a known size, or a symbol standing for one runtime size.
  struct Dim {
    int64_t size = -1;   ///< >= 0 when known
    std::string symbol;  ///< when size < 0: "$name" for a dim_param, "@value[axis]" otherwise

    static Dim Known(int64_t size) { return Dim{size, {}}; }
    static Dim Named(std::string symbol) { return Dim{-1, std::move(symbol)}; }
  };
  using Dims = std::vector<Dim>;

  /// Reads `graph` as it is now; build a new one after the graph changed.
  explicit SymbolicDims(const ir::Graph& graph);

  /// The dims of `value`, or nullopt when not even its rank is known.
  std::optional<Dims> Of(const ir::Value* value);
  /// True when `a` and `b` are provably the same size in every run.
  bool Same(const Dim& a, const Dim& b);
  bool Same(const Dims& a, const Dims& b);
  /// The known size of `d`, or -1 (a symbol may have been proven equal to a size).
  int64_t SizeOf(const Dim& d);
  /// For messages: "64", "batch_size", "dim 1 of 'x'"; a whole shape as "[batch_size, 16, 64]".
  std::string ToString(const Dim& d);
  std::string ToString(const Dims& dims);

 private:
  std::optional<Dims> Declared(const ir::Value& value);
  std::optional<Dims> Derive(const ir::Value& value);
  std::optional<Dims> Broadcast(const std::vector<Dims>& operands, const ir::Value& out);
  std::optional<Dims> DeriveReshape(const ir::Node& node, const ir::Value& out);
  std::optional<Dims> DeriveSlice(const ir::Node& node, const ir::Value& out);
  /// The size a Reshape's -1 stands for, given the input dims and the other target dims.
  Dim InferredDim(const Dims& in, const Dims& out_dims, size_t infer_axis, const ir::Value& out);
  std::optional<Dims> DeriveMs(const ir::Node& node, const ir::Value& out);
  /// The dims a 1-D shape tensor holds, element by element (nullopt where an element is unknown;
  /// a literal -1 is the symbol "-1", which no dim has).
  std::optional<std::vector<std::optional<Dim>>> ShapeElements(const ir::Value* shape);
  /// The dim a scalar holds: a constant, or Gather(Shape(y), i) through Casts.
  std::optional<Dim> ScalarElement(const ir::Value* scalar);
  static std::optional<Dim> Literal(int64_t value);
  Dim Unknown(const ir::Value& value, size_t axis) const;
  /// Records that `a` and `b` are the same size (both facts about one axis).
  void Unite(const Dim& a, const Dim& b);
  std::string Find(const std::string& symbol);

  const ir::Graph& graph_;
  std::unordered_map<std::string, const onnx::ValueInfoProto*> declared_;
  std::unordered_map<const ir::Value*, std::optional<Dims>> memo_;
  std::unordered_map<std::string, std::string> parent_;  // union-find over symbols
  std::unordered_map<std::string, int64_t> size_of_;     // class root -> proven size
  int depth_ = 0;
};

}  // namespace bertopt::passes
