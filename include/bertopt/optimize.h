#pragma once
// The library entry point of `bertopt optimize`: run the pipeline for a model type over a model
// and report what was fused, what was not, and why.

#include <map>
#include <string>
#include <vector>

#include "bertopt/passes/pass.h"
#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace bertopt {

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
  bool input_int32 = false;
  bool float16 = false;
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
  double seconds = 0;
};

/// Optimizes `model` in place. On error `model` may be partially rewritten: callers that must keep
/// the original keep a copy or reload it.
StatusOr<OptimizeReport> Optimize(onnx::ModelProto& model, const OptimizeOptions& options);

/// The op types reported in OptimizeReport::fused_ops, in display order.
const std::vector<std::string>& ReportedOpTypes();

}  // namespace bertopt
