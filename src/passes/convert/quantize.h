#pragma once
// Dynamic int8 quantization for ONNX Runtime's CPU kernels (`bertopt quantize`, `optimize --int8`).
//
// Weights become int8 once, here; activations are quantized to uint8 at run time, per tensor, by
// the kernels themselves. Two rewrites, each exact in its wiring and approximate only in the
// rounding of the weights and activations:
//
//   x ─► Attention(W, b, mask)            x ─► DynamicQuantizeLinear ─► (x_q, x_scale, x_zp)
//                                    =>        QAttention(x_q, W_q, b, x_scale, W_scale, mask,
//                                    x_zp)
//
//   a ─► MatMul(W) [─► Add(bias)]     =>  a ─► DynamicQuantizeMatMul(W_q, W_scale, -, bias)
//                                     or  a ─► DynamicQuantizeLinear ─► MatMulIntegerToFloat(...)
//
// W is a constant float32 2-D weight, quantized symmetrically to int8 in [-127, 127] (zero point 0)
// with one scale per output column (per channel; ORT 1.29's QAttention, DynamicQuantizeMatMul and
// MatMulIntegerToFloat all accept a 1-D scale of the weight's column count) or one per tensor.
// Everything else stays float32: layer norms, Gelu / BiasGelu / FastGelu, Softmax, the embedding
// (EmbedLayerNormalization or Gather), Gemm (pooler and classifier, one row per sequence), and any
// MatMul or Attention whose weight is not a constant float32 2-D tensor; the report names each
// candidate kept in float and why. No ORT dependency: the CLI and tests run the result through ORT.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace bertopt::passes {

/// How a quantized MatMul is spelled. ORT fuses DynamicQuantizeLinear + MatMulIntegerToFloat into
/// DynamicQuantizeMatMul at level extended and above, so they differ only at lower levels (and in
/// that one DynamicQuantizeLinear can feed several MatMulIntegerToFloat reading the same input).
enum class MatMulForm { kDynamicQuantizeMatMul, kMatMulIntegerToFloat };

struct QuantizeOptions {
  /// Names of weight initializers or nodes to keep in float32 (--int8_exclude). Each must name a
  /// node or an initializer of the model, else Quantize fails naming it.
  std::vector<std::string> exclude;
  /// One scale per output column of each weight (else one per tensor).
  bool per_channel = true;
  MatMulForm matmul_form = MatMulForm::kDynamicQuantizeMatMul;
  /// A weight whose int8 rounding error (relative RMS, see WeightError) would exceed this stays
  /// float32 (--int8_max_error; 0, the default: no weight is kept for its own error). A static
  /// rule for when calibration (ort/int8_calibration.h) is off: the weight's error alone is a poor
  /// guide, because on trained models the activations' uint8 rounding dominates (all-MiniLM-L6-v2:
  /// 1-8 % relative output error per MatMul from the activations, 0.2-1.8 % from the weights).
  double max_weight_error = 0;
  /// Candidates to keep in float32 for a reason decided outside this pass (calibration): node
  /// name, or weight name for an unnamed node (QuantizedNode::key) -> the reason the report gives.
  std::map<std::string, std::string> keep_float;
};

/// A MatMul or Attention that was quantized.
struct QuantizedNode {
  std::string key;         ///< its node name, or its weight's name when the node has none
  std::string op;          ///< MatMul or Attention
  std::string activation;  ///< the float input that is quantized at run time
  std::string weight;      ///< the float32 weight initializer
};

/// The rounding error of one quantized weight: dequantized int8 values against the float32 ones.
struct WeightError {
  std::string weight;  ///< the float32 initializer's name
  std::string node;    ///< the (first) node that reads it
  std::string op;  ///< the quantized op that now reads it (QAttention, DynamicQuantizeMatMul...)
  std::vector<int64_t> shape;
  bool per_channel = true;
  /// ||W - dequant(quant(W))||₂ / ||W||₂ (0 for an all-zero weight).
  double relative_rms_error = 0;
  double max_abs_error = 0;
};

/// A candidate (MatMul or Attention) that stays float32, and why.
struct KeptFloat {
  std::string node;  ///< display name of the node
  std::string op;
  std::string reason;
};

struct QuantizeReport {
  /// Count of each op type in the main graph before and after.
  std::map<std::string, int> ops_before;
  std::map<std::string, int> ops_after;
  int attention_quantized = 0;  ///< Attention -> QAttention
  int matmul_quantized = 0;     ///< MatMul -> DynamicQuantizeMatMul / MatMulIntegerToFloat
  int biases_folded = 0;        ///< bias Adds taken into the quantized MatMul
  /// The ai.onnx opset the model imported before it was raised to 11 for DynamicQuantizeLinear
  /// (only from 10, and only when every op means the same at 11); 0 when not raised.
  int64_t opset_raised_from = 0;
  std::vector<WeightError> weights;      ///< each quantized weight once, in graph order
  std::vector<QuantizedNode> quantized;  ///< in graph order
  std::vector<KeptFloat> kept_float;
  int64_t float_weight_bytes = 0;  ///< size of the float32 weights that were quantized
  int64_t int8_weight_bytes = 0;   ///< size of their int8 values and scales
  int nodes_before = 0;
  int nodes_after = 0;
  double seconds = 0;
};

/// Quantizes `model` in place. Errors: an exclude name that names nothing, or a graph the IR
/// cannot index; on error the model may be partly rewritten (callers keep a copy or reload).
StatusOr<QuantizeReport> Quantize(onnx::ModelProto& model, const QuantizeOptions& options);

/// The float32 weight `w` (rows x cols, row-major) after the int8 rounding Quantize gives it,
/// dequantized: what the quantized ops multiply by (for calibration's error estimates).
std::vector<float> RoundTripInt8(const std::vector<float>& w, int64_t rows, int64_t cols,
                                 bool per_channel);

/// Whether `op_type` computes in int8 (the quantized ops and DynamicQuantizeLinear); every other
/// op of a quantized model computes in float.
bool IsInt8Op(std::string_view op_type);

/// Parses a --matmul_form value: "DynamicQuantizeMatMul" or "MatMulIntegerToFloat".
StatusOr<MatMulForm> ParseMatMulForm(std::string_view text);
std::string_view MatMulFormName(MatMulForm form);

}  // namespace bertopt::passes
