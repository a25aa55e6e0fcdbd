#pragma once
// The int8 flags and report shared by `bertopt quantize` and `bertopt optimize --int8`.

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "bertopt/status.h"
#include "ort/int8_calibration.h"
#include "passes/convert/quantize.h"

namespace bertopt::cli {

struct QuantizeFlags {
  std::vector<std::string> exclude;
  bool per_tensor = false;
  double max_weight_error = passes::QuantizeOptions{}.max_weight_error;
  std::string matmul_form = "DynamicQuantizeMatMul";
  int worst = 5;
  ort::CalibrationOptions calibration;
};

/// Adds --int8_exclude, --per_tensor, --int8_max_error, --matmul_form, --worst,
/// --int8_min_cosine and --int8_calibration_samples to `app`.
void AddQuantizeFlags(CLI::App& app, QuantizeFlags& flags);
StatusOr<passes::QuantizeOptions> ToQuantizeOptions(const QuantizeFlags& flags);

/// Int8 calibration of the float32 `model` when --int8_min_cosine is above 0 (it adds the
/// candidates to keep in float32 to `options`); nullopt when it is off.
StatusOr<std::optional<ort::CalibrationReport>> CalibrateIfAsked(const onnx::ModelProto& model,
                                                                 const QuantizeFlags& flags,
                                                                 passes::QuantizeOptions& options);
void PrintCalibration(const ort::CalibrationReport& report);
nlohmann::json CalibrationJson(const ort::CalibrationReport& report);

/// The op table before/after, what is int8 and what stays float, candidates kept in float and
/// why, and the weights' rounding error (the `worst` largest, all with `verbose`).
void PrintQuantizeReport(const passes::QuantizeReport& report,
                         const passes::QuantizeOptions& options, int worst, bool verbose);
nlohmann::json QuantizeReportJson(const passes::QuantizeReport& report,
                                  const passes::QuantizeOptions& options);

}  // namespace bertopt::cli
