#pragma once
// The library entry point of `bertopt optimize`: run the pipeline for a model type over a model
// and report what was fused, what was not, and why.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "bertopt/passes/pass.h"
#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace bertopt {

/// --float16 settings (src/passes/convert/float16.h).
struct Float16Options {
  /// Graph inputs and outputs keep float32, with Casts at the boundary; false makes them float16.
  bool keep_io_types = true;
  /// Op types kept in float32 in addition to the default block list.
  std::vector<std::string> op_block_list;
  /// Node names kept in float32.
  std::vector<std::string> node_block_list;
  /// For ORT's CPU provider (optimize sets it unless --gpu_only): ops with no float16 CPU kernel
  /// in ORT compute in float32, reading the float16 weights through Casts ORT folds when it loads
  /// the model. False: every op not blocked computes in float16, as CUDA runs it.
  bool cpu = false;
};

/// What --float16 did.
struct Float16Report {
  int tensors_converted = 0;     ///< initializers and Constant tensors now float16
  int64_t values_converted = 0;  ///< their elements
  int64_t values_clamped = 0;    ///< finite values beyond ±65504, set to ±65504
  int64_t values_raised = 0;     ///< non-zero values below float16's smallest, set to ±2^-24
  /// The tensor with the most clamped or raised values, and how many.
  std::string most_changed_tensor;
  int64_t most_changed_count = 0;
  /// Rounding: the largest relative change of a value float16 can hold (not clamped or raised;
  /// subnormals included), and its tensor. A raised 1e-30 would dwarf every other number here.
  double max_relative_change = 0;
  std::string worst_tensor;
  int casts_added = 0;    ///< Casts at block and interface boundaries (after cleanup)
  int casts_removed = 0;  ///< redundant Casts removed
  std::vector<std::string> blocked_nodes;  ///< nodes kept in float32, as "name (op)"
  int cpu_float32_nodes = 0;  ///< Float16Options::cpu: nodes computing in float32 on CPU
};

struct OptimizeOptions {
  passes::PassOptions pass;  ///< model_type (auto by default), num_heads, hidden_size, raw mask
  /// The ONNX Runtime version the model will run on ("1.30"): fusions that are slower there than
  /// what they replace are left out (src/passes/targets.h). "" emits every fusion.
  std::string target_ort_version;
  bool disable_attention = false;
  bool disable_skip_layer_norm = false;
  bool disable_embed_layer_norm = false;
  bool disable_bias_gelu = false;
  bool disable_gelu = false;
  bool disable_layer_norm = false;
  /// Keep computing every token in the layers after the last Attention even when only the first
  /// token is read (src/passes/fusions/first_token.cc).
  bool disable_first_token = false;
  /// Write a residual Add that feeds a LayerNormalization as Sum, so that ORT's own
  /// SkipLayerNormFusion (level extended) leaves Add + LayerNormalization as they are; set by
  /// targets where SkipLayerNormalization is the slow form (src/passes/targets.h).
  bool residual_sum = false;
  bool input_int32 = false;
  bool float16 = false;
  Float16Options float16_options;
  /// Emit the forms ORT's CUDA kernels prefer (FastGelu for erf GELU); see README.
  bool gpu_only = false;
};

/// What "fully optimized" means for an L-layer encoder (contrib-ops.md), and how far we got.
struct Verdict {
  int layers = 0;  ///< L: Softmax nodes in the input model (one per self-attention)
  bool fully_optimized = false;
  std::vector<std::string> missing;  ///< e.g. "Attention: 1 of 2", "2 Softmax left unfused"
};

/// Which exporter made a model: the model type `auto` resolves to, and why.
struct ModelTypeChoice {
  std::string model_type;  ///< bert, bert_tf or bert_keras
  std::string evidence;    ///< e.g. "producer_name 'keras2onnx'"
};

/// Reads the producer name, else the layout: tf2onnx's ':0' tensor names, keras2onnx's int32
/// attention_mask / input_ids / token_type_ids inputs. PyTorch (bert) when nothing says otherwise.
ModelTypeChoice DetectModelType(const onnx::ModelProto& model);

struct OptimizeReport {
  /// The model type the passes ran for (`auto` resolved) and what it was detected from ("" when
  /// given explicitly and consistent with the model).
  ModelTypeChoice model_type;
  /// Things the user should know that did not stop the run (e.g. a model type that disagrees with
  /// the model's producer).
  std::vector<std::string> warnings;
  /// What the target ORT version left out and why ("" without a target).
  std::string target;
  std::vector<passes::PassStats> passes;
  /// Count of each fused / target op type in the output model.
  std::map<std::string, int> fused_ops;
  Verdict verdict;
  int nodes_before = 0;
  int nodes_after = 0;
  /// Serialized size of the model before and after (weights included).
  int64_t bytes_before = 0;
  int64_t bytes_after = 0;
  /// Set when --float16 ran.
  std::optional<Float16Report> float16;
  /// --input_int32: the graph inputs made int32, and the int64 Casts it had to add for them.
  std::vector<std::string> int32_inputs;
  int int32_casts_added = 0;
  /// --gpu_only: BiasGelu / Gelu nodes rewritten as FastGelu.
  int gpu_fast_gelus = 0;
  double seconds = 0;
};

/// Optimizes `model` in place. On error `model` may be partially rewritten: callers that must keep
/// the original keep a copy or reload it.
StatusOr<OptimizeReport> Optimize(onnx::ModelProto& model, const OptimizeOptions& options);

/// The step of the pipeline whose output first failed a check.
struct Culprit {
  std::string pass;  ///< the pass name ("attention", "dead_code", ...), or "convert"
  int step = 0;      ///< 1-based position in the pipeline (a pass such as dead_code runs twice)
  int steps = 0;     ///< steps in the pipeline, the conversions counting as one
};

/// When Optimize's output fails `check` (ORT refuses it, or it is invalid): reruns the pipeline of
/// `options` on copies of the unoptimized `original`, stopping after a growing number of passes
/// (a bisection over the pass list), to find the pass whose output first fails `check`. nullopt
/// when the input already fails it or the whole pipeline's output passes it (the fault lies
/// elsewhere, e.g. in int8 quantization).
StatusOr<std::optional<Culprit>> FindCulprit(
    const onnx::ModelProto& original, const OptimizeOptions& options,
    const std::function<Status(const onnx::ModelProto&)>& check);

/// The op types reported in OptimizeReport::fused_ops, in display order.
const std::vector<std::string>& ReportedOpTypes();

}  // namespace bertopt
