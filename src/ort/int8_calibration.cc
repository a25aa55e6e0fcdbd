#include "ort/int8_calibration.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <unordered_map>
#include <utility>

#include "bertopt/io/model_io.h"
#include "bertopt/ir/tensor.h"
#include "ort/bert_inputs.h"
#include "ort/compare.h"
#include "ort/session.h"

namespace bertopt::ort {
namespace {

/// `x` after DynamicQuantizeLinear and back: uint8 over [min(0, x), max(0, x)], zero point
/// rounded half to even and saturated, values rounded half to even and saturated (ONNX's
/// definition, which ORT's kernel and the quantized ops' internal quantization follow).
struct Uint8Rounding {
  float scale = 0;
  float zero_point = 0;

  static Uint8Rounding Of(std::span<const float> x) {
    float lo = 0, hi = 0;
    for (float v : x) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    Uint8Rounding r;
    r.scale = (hi - lo) / 255.0f;
    if (r.scale > 0) r.zero_point = std::clamp(std::nearbyint(-lo / r.scale), 0.0f, 255.0f);
    return r;
  }
  float operator()(float v) const {
    if (scale == 0) return 0;
    return (std::clamp(std::nearbyint(v / scale) + zero_point, 0.0f, 255.0f) - zero_point) * scale;
  }
};

/// The sampled rows of one candidate's activation: float32 values and their uint8 rounding.
struct ActivationRows {
  int64_t width = 0;
  std::vector<float> exact;
  std::vector<float> rounded;
};

/// The calibration batches and the float32 model's outputs for them.
struct Samples {
  std::vector<std::vector<std::pair<std::string, Tensor>>> feeds;
  std::vector<std::vector<std::vector<float>>> outputs;  // [sample][output]
};

/// The (batch, sequence) to generate: the options', replaced by the ids input's static dims.
void ApplyStaticDims(const BertInputs& roles, const std::vector<ValueInfo>& inputs,
                     CalibrationOptions& o) {
  for (const ValueInfo& info : inputs) {
    if (info.name != roles.input_ids || info.dims.size() != 2) continue;
    if (info.dims[0] > 0) o.batch_size = static_cast<int>(info.dims[0]);
    if (info.dims[1] > 0) o.sequence_length = static_cast<int>(info.dims[1]);
  }
}

StatusOr<std::unique_ptr<Session>> OpenInMemory(const onnx::ModelProto& model,
                                                const std::string& label) {
  ASSIGN_OR_RETURN(std::string bytes, io::SerializeModel(model));
  // Optimizations off: ORT's fusions must not change what is compared (as in compare).
  SessionConfig config;
  config.level = OptLevel::kDisabled;
  return Session::CreateFromMemory(bytes, label, config);
}

/// The lowest cosine of any output of any sample of `quantized` against float32's.
StatusOr<double> MinCosine(const onnx::ModelProto& quantized, const Samples& samples,
                           const std::string& label) {
  ASSIGN_OR_RETURN(auto session, OpenInMemory(quantized, label));
  double lowest = 1;
  for (size_t k = 0; k < samples.feeds.size(); ++k) {
    ASSIGN_OR_RETURN(std::vector<Tensor> out, session->Run(samples.feeds[k]));
    for (size_t i = 0; i < samples.outputs[k].size() && i < out.size(); ++i) {
      const double c = CosineSimilarity(out[i].ToFloat(), samples.outputs[k][i]);
      if (std::isnan(c)) return 0.0;  // a non-finite output: as far from float32 as it gets
      lowest = std::min(lowest, c);
    }
  }
  return lowest;
}

/// The error of `rows` times the int8-rounded weight against the float32 product: per row, the
/// difference's norm over the product's, then the RMS over the rows. Per row, because a few
/// tokens (the first, separators) carry products orders of magnitude larger than the rest with
/// small relative errors, and one ratio of sums over all rows would measure those tokens alone.
double ProductError(const ActivationRows& rows, const std::vector<float>& weight,
                    const std::vector<float>& rounded_weight, int64_t columns) {
  const int64_t k = rows.width;
  const int64_t n_rows = static_cast<int64_t>(rows.exact.size()) / std::max<int64_t>(k, 1);
  std::vector<float> y(columns), yq(columns);
  double sum = 0;
  int64_t counted = 0;
  for (int64_t r = 0; r < n_rows; ++r) {
    std::fill(y.begin(), y.end(), 0.0f);
    std::fill(yq.begin(), yq.end(), 0.0f);
    for (int64_t i = 0; i < k; ++i) {
      const float a = rows.exact[r * k + i];
      const float aq = rows.rounded[r * k + i];
      const float* w = &weight[i * columns];
      const float* wq = &rounded_weight[i * columns];
      for (int64_t c = 0; c < columns; ++c) {
        y[c] += a * w[c];
        yq[c] += aq * wq[c];
      }
    }
    double err2 = 0, norm2 = 0;
    for (int64_t c = 0; c < columns; ++c) {
      const double d = static_cast<double>(yq[c]) - y[c];
      err2 += d * d;
      norm2 += static_cast<double>(y[c]) * y[c];
    }
    if (norm2 > 0) {
      sum += err2 / norm2;
      ++counted;
    }
  }
  return counted > 0 ? std::sqrt(sum / static_cast<double>(counted)) : 0;
}

const onnx::TensorProto* FindInitializer(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& t : g.initializer()) {
    if (t.name() == name) return &t;
  }
  return nullptr;
}

/// Step 2: every quantized candidate with its own error, largest first.
StatusOr<std::vector<CandidateError>> Rank(
    const onnx::ModelProto& model, const std::vector<passes::QuantizedNode>& candidates,
    const std::unordered_map<std::string, ActivationRows>& activations, bool per_channel) {
  std::vector<CandidateError> ranking;
  for (const passes::QuantizedNode& c : candidates) {
    const onnx::TensorProto* t = FindInitializer(model.graph(), c.weight);
    std::optional<std::vector<float>> w = t ? ir::DecodeFloats(*t) : std::nullopt;
    auto rows = activations.find(c.activation);
    if (!w || t->dims_size() != 2 || rows == activations.end() ||
        rows->second.width != t->dims(0)) {
      return InternalError(
          fmt::format("int8 calibration: cannot read weight '{}' or activation '{}' of {}",
                      c.weight, c.activation, c.key));
    }
    const std::vector<float> wq = passes::RoundTripInt8(*w, t->dims(0), t->dims(1), per_channel);
    ranking.push_back({c.key, c.op, ProductError(rows->second, *w, wq, t->dims(1))});
  }
  std::stable_sort(ranking.begin(), ranking.end(), [](const auto& a, const auto& b) {
    return a.relative_error > b.relative_error;
  });
  return ranking;
}

}  // namespace

StatusOr<CalibrationReport> CalibrateInt8(const onnx::ModelProto& model,
                                          passes::QuantizeOptions& options,
                                          const CalibrationOptions& calibration) {
  const auto start = std::chrono::steady_clock::now();
  CalibrationReport report;
  report.options = calibration;
  CalibrationOptions& o = report.options;

  // Step 1's model first: it names the candidates and their activations.
  onnx::ModelProto all_int8 = model;
  ASSIGN_OR_RETURN(passes::QuantizeReport quantized, passes::Quantize(all_int8, options));
  report.candidates = static_cast<int>(quantized.quantized.size());
  if (quantized.quantized.empty()) return report;

  // The float32 model, also returning every candidate's activation (an activation that is a
  // graph output already is read from there).
  onnx::ModelProto traced = model;
  std::map<std::string, int> output_index;  // value name -> position among the outputs
  for (const auto& out : model.graph().output()) {
    output_index.emplace(out.name(), static_cast<int>(output_index.size()));
  }
  const int output_count = model.graph().output_size();
  std::vector<std::string> activation_names;  // each once, in the candidates' order
  for (const passes::QuantizedNode& c : quantized.quantized) {
    if (std::find(activation_names.begin(), activation_names.end(), c.activation) !=
        activation_names.end()) {
      continue;
    }
    activation_names.push_back(c.activation);
    if (output_index.emplace(c.activation, traced.graph().output_size()).second) {
      traced.mutable_graph()->add_output()->set_name(c.activation);
    }
  }
  ASSIGN_OR_RETURN(BertInputs roles, FindBertInputs(model.graph(), {}));
  ASSIGN_OR_RETURN(auto float_session, OpenInMemory(traced, "float32 model (int8 calibration)"));
  ApplyStaticDims(roles, float_session->inputs(), o);
  RETURN_IF_ERROR(
      CheckBertInputShapes(roles, float_session->inputs(), o.batch_size, o.sequence_length));
  const int64_t vocab = FindVocabSize(model.graph(), roles.input_ids).value_or(kDefaultVocabSize);
  const int64_t segments = FindSegmentVocabSize(model.graph(), roles.segment_ids).value_or(2);
  BertInputGenerator generator(o.batch_size, o.sequence_length, vocab, o.seed, segments);

  Samples samples;
  std::unordered_map<std::string, ActivationRows> activations;
  for (int k = 0; k < o.samples; ++k) {
    ASSIGN_OR_RETURN(auto feeds, MakeBertFeeds(generator.Next(), roles, float_session->inputs()));
    ASSIGN_OR_RETURN(std::vector<Tensor> out, float_session->Run(feeds));
    samples.outputs.emplace_back();
    for (int i = 0; i < output_count; ++i) samples.outputs.back().push_back(out[i].ToFloat());
    samples.feeds.push_back(std::move(feeds));
    for (const std::string& name : activation_names) {
      const Tensor& t = out[output_index.at(name)];
      if (t.type() != onnx::TensorProto::FLOAT || t.shape().empty()) continue;
      const std::vector<float> x = t.ToFloat();
      const int64_t width = t.shape().back();
      const int64_t rows = width > 0 ? static_cast<int64_t>(x.size()) / width : 0;
      const Uint8Rounding round = Uint8Rounding::Of(x);
      ActivationRows& ar = activations[name];
      ar.width = width;
      const int64_t picked = std::min<int64_t>(rows, o.rows_per_sample);
      for (int64_t p = 0; p < picked; ++p) {
        // Midpoints of `picked` equal slices of the batch's rows: every part of the sequence,
        // and not always the first token.
        const int64_t r = (2 * p + 1) * rows / (2 * picked);
        for (int64_t i = 0; i < width; ++i) {
          ar.exact.push_back(x[r * width + i]);
          ar.rounded.push_back(round(x[r * width + i]));
        }
      }
    }
  }
  float_session.reset();

  std::map<int, double> measured;  // kept float -> lowest cosine
  auto probe = [&](int kept, const onnx::ModelProto& quantized_model) -> Status {
    ASSIGN_OR_RETURN(
        double c, MinCosine(quantized_model, samples,
                            fmt::format("int8 model, {} candidates float32 (calibration)", kept)));
    measured[kept] = c;
    report.probes.push_back({kept, c});
    return Status::Ok();
  };
  RETURN_IF_ERROR(probe(0, all_int8));
  all_int8.Clear();
  if (measured[0] >= o.min_cosine) {
    report.min_cosine = measured[0];
  } else {
    ASSIGN_OR_RETURN(report.ranking,
                     Rank(model, quantized.quantized, activations, options.per_channel));
    auto keep = [&](int k) {
      passes::QuantizeOptions with = options;
      for (int i = 0; i < k; ++i) with.keep_float[report.ranking[i].key] = "calibration";
      return with;
    };
    // Bisection: `fails` kept float misses the target, `meets` reaches it (all: float32).
    int fails = 0, meets = static_cast<int>(report.ranking.size());
    while (meets - fails > 1) {
      const int mid = (fails + meets) / 2;
      onnx::ModelProto candidate = model;
      RETURN_IF_ERROR(passes::Quantize(candidate, keep(mid)).status());
      RETURN_IF_ERROR(probe(mid, candidate));
      (measured[mid] >= o.min_cosine ? meets : fails) = mid;
    }
    report.min_cosine = measured.count(meets) ? measured[meets] : 1.0;
    for (int i = 0; i < meets; ++i) {
      const CandidateError& e = report.ranking[i];
      report.kept_float.push_back(e.key);
      options.keep_float[e.key] = fmt::format(
          "int8 calibration: its product's int8 error is {:.2f} % (rank {} of {}); with "
          "the {} largest in float32 every output keeps cosine >= {} to float32 (lowest {:.5f}), "
          "with {} it fell to {:.5f}",
          100 * e.relative_error, i + 1, report.ranking.size(), meets, o.min_cosine,
          report.min_cosine, fails, measured[fails]);
    }
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace bertopt::ort
