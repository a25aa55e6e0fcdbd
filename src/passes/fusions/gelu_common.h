#pragma once
// What the three GELU fusions (gelu, fast_gelu, bias_gelu) share: the tolerances of their
// constants, the three ways exporters apply 0.5·x to (1 + erf(…)) or (1 + tanh(…)), and splitting
// a bias Add into its input and 1-D bias.

#include <string>
#include <string_view>

#include "bertopt/ir/graph.h"
#include "bertopt/pattern/pattern.h"

namespace bertopt::passes::gelu {

/// 0.5 and 1.0: exact in float32 and float16, so only rounding noise is allowed.
inline constexpr double kUnitTolerance = 1e-6;

/// A scalar constant within `abs_tolerance` of `value` (pattern::Scalar scales its tolerance by
/// max(1, |value|); this one does not).
pattern::P ScalarNear(double value, double abs_tolerance, std::string_view bind = {});

/// The first node of type `op_type` reading `value`, or nullptr. Used to walk from an anchor to
/// the node that ends the pattern; the matcher then checks that nothing else reads what it
/// replaces.
ir::Node* ConsumerOfType(const ir::Value* value, std::string_view op_type);

/// Matches 0.5·x·s, where `s` is the (1 + erf/tanh) value that `s_pattern` describes and `x` is
/// the same pattern (binding "x") that `s_pattern` uses. Exporters write it three ways, each Mul
/// with either operand order:
///   A  Mul(Mul(x, 0.5), s)      torch 1.13, PyTorch 1.3
///   B  Mul(Mul(x, s), 0.5)      "half last"
///   C  Mul(x, Mul(s, 0.5))      keras2onnx
/// A ends at the Mul reading `s`, B and C one Mul later. On failure the reason is that of the
/// form the graph looks like (decided by where a constant operand sits).
pattern::MatchResult MatchHalfXTimes(const ir::Graph& graph, const ir::Value& s,
                                     const pattern::P& x, const pattern::P& s_pattern);

/// "" when `value` is float32 or float16 (the types ORT implements these ops for), else why not.
std::string FloatTypeReason(const ir::Graph& graph, const ir::Value& value);

/// An Add split into the value being biased and a 1-D bias of the same length as that value's
/// last dimension, so that Add(input, bias) == the fused op's (input, bias) pair. `reason` is
/// non-empty when the Add is not such a bias Add.
struct BiasAdd {
  ir::Value* input = nullptr;
  ir::Value* bias = nullptr;
  std::string reason;
};
/// The bias is a constant, or a graph input declared with a fixed shape [F]; either operand order.
BiasAdd SplitBiasAdd(const ir::Graph& graph, const ir::Node& add);

}  // namespace bertopt::passes::gelu
