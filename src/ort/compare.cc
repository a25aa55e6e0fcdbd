#include "ort/compare.h"

#include <fmt/format.h>
#include <fmt/ostream.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <optional>
#include <utility>

#include "bertopt/io/model_io.h"
#include "ort/bert_inputs.h"
#include "ort/session.h"

namespace bertopt::ort {
namespace {

/// One side of the comparison: its inputs and its ORT session.
struct Side {
  std::string label;  // "baseline" or "optimized"
  std::filesystem::path path;
  BertInputs inputs;
  std::optional<int64_t> vocab_size;
  std::optional<int64_t> segment_vocab_size;
  std::unique_ptr<Session> session;
};

StatusOr<Side> OpenSide(const std::string& label, const std::filesystem::path& path,
                        const CompareOptions& options, std::ostream& log) {
  Side side;
  side.label = label;
  side.path = path;
  // Graph inspection needs the ModelProto; ORT does not expose the graph.
  auto model = io::LoadModel(path);
  if (!model.ok()) return model.status();
  const BertInputs overrides{options.input_ids_name, options.segment_ids_name,
                             options.input_mask_name};
  std::vector<std::string> how;
  auto inputs = FindBertInputs(model->graph(), overrides, &how);
  if (!inputs.ok()) return std::move(inputs).status().WithContext(path.string());
  side.inputs = std::move(inputs).value();
  side.vocab_size = FindVocabSize(model->graph(), side.inputs.input_ids);
  side.segment_vocab_size = FindSegmentVocabSize(model->graph(), side.inputs.segment_ids);
  if (options.verbose) {
    for (const std::string& line : how) fmt::print(log, "{} inputs: {}\n", label, line);
  }

  SessionConfig config;
  // ORT's own fusions would rewrite the baseline into what we are checking against.
  config.level = OptLevel::kDisabled;
  config.use_gpu = options.use_gpu;
  ASSIGN_OR_RETURN(side.session, Session::Create(path, config));
  Status shapes = CheckBertInputShapes(side.inputs, side.session->inputs(), options.batch_size,
                                       options.sequence_length);
  if (!shapes.ok()) return std::move(shapes).WithContext(path.string());
  return side;
}

Status ValidateOptions(const CompareOptions& o) {
  if (o.baseline_model.empty()) return InvalidArgument("--baseline_model is required");
  if (o.optimized_model.empty()) return InvalidArgument("--optimized_model is required");
  if (o.batch_size < 1) return InvalidArgument("--batch_size must be at least 1");
  if (o.sequence_length < 1) return InvalidArgument("--sequence_length must be at least 1");
  if (o.samples < 1) return InvalidArgument("--samples must be at least 1");
  if (!(o.rtol >= 0)) return InvalidArgument("--rtol must be >= 0");
  if (!(o.atol >= 0)) return InvalidArgument("--atol must be >= 0");
  if (o.min_cosine && !(*o.min_cosine >= -1 && *o.min_cosine <= 1)) {
    return InvalidArgument("--min_cosine must be within [-1, 1]");
  }
  if (o.max_abs_diff && !(*o.max_abs_diff >= 0)) {
    return InvalidArgument("--max_abs_diff must be >= 0");
  }
  return Status::Ok();
}

/// Both models must have the same optional inputs, or they cannot be fed the same sample.
Status CheckSameRoles(const Side& baseline, const Side& optimized) {
  auto describe = [](const BertInputs& in) {
    return fmt::format("input_ids '{}', segment_ids '{}', input_mask '{}'", in.input_ids,
                       in.segment_ids, in.input_mask);
  };
  if (baseline.inputs.segment_ids.empty() != optimized.inputs.segment_ids.empty() ||
      baseline.inputs.input_mask.empty() != optimized.inputs.input_mask.empty()) {
    return InvalidArgument(fmt::format(
        "the models take different BERT inputs: {} has {}; {} has {}", baseline.path.string(),
        describe(baseline.inputs), optimized.path.string(), describe(optimized.inputs)));
  }
  return Status::Ok();
}

Status CheckSameOutputs(const Side& baseline, const Side& optimized) {
  std::vector<std::string> a;
  std::vector<std::string> b;
  for (const ValueInfo& info : baseline.session->outputs()) a.push_back(info.name);
  for (const ValueInfo& info : optimized.session->outputs()) b.push_back(info.name);
  if (a != b) {
    return InvalidArgument(fmt::format("the models' outputs differ: {} has [{}]; {} has [{}]",
                                       baseline.path.string(), fmt::join(a, ", "),
                                       optimized.path.string(), fmt::join(b, ", ")));
  }
  return Status::Ok();
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

/// Folds one sample of one output into `diff` (its cosine added to `cosine_sum`); returns whether
/// the sample passes for it.
bool CompareOutput(const Tensor& baseline, const Tensor& optimized, const CompareOptions& o,
                   OutputDiff& diff, double& cosine_sum) {
  if (baseline.shape() != optimized.shape()) return false;
  const std::vector<float> b = baseline.ToFloat();
  const std::vector<float> a = optimized.ToFloat();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  bool close = true;
  double sample_max_abs = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    const double x = a[i];
    const double y = b[i];
    double abs_diff;
    bool ok;
    if (std::isnan(x) || std::isnan(y)) {
      abs_diff = kInf;  // numpy.allclose: NaN is never close, not even to NaN
      ok = false;
    } else if (std::isinf(x) || std::isinf(y)) {
      ok = x == y;
      abs_diff = ok ? 0 : kInf;
    } else {
      abs_diff = std::fabs(x - y);
      ok = abs_diff <= o.atol + o.rtol * std::fabs(y);
    }
    sample_max_abs = std::max(sample_max_abs, abs_diff);
    if (y != 0 || abs_diff == kInf) {
      const double rel = abs_diff == kInf ? kInf : abs_diff / std::fabs(y);
      diff.max_rel_diff = std::max(diff.max_rel_diff, rel);
    }
    close = close && ok;
  }
  diff.max_abs_diff = std::max(diff.max_abs_diff, sample_max_abs);
  const double cosine = CosineSimilarity(a, b);
  if (std::isnan(cosine) || cosine < diff.min_cosine) diff.min_cosine = cosine;
  cosine_sum += cosine;
  if (!o.tolerance_mode()) return close;
  return (!o.min_cosine || cosine >= *o.min_cosine) &&
         (!o.max_abs_diff || sample_max_abs <= *o.max_abs_diff);
}

Status WriteTestData(const std::filesystem::path& dir,
                     const std::vector<std::pair<std::string, Tensor>>& feeds,
                     const std::vector<ValueInfo>& outputs, const std::vector<Tensor>& expected) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return IoError(fmt::format("{}: cannot create folder: {}", dir.string(), ec.message()));
  auto write = [&](const std::string& file, const onnx::TensorProto& proto) -> Status {
    std::string bytes;
    if (!proto.SerializeToString(&bytes)) {
      return InternalError("cannot serialize tensor '" + proto.name() + "'");
    }
    return io::WriteFileAtomic(dir / file, bytes);
  };
  for (size_t k = 0; k < feeds.size(); ++k) {
    RETURN_IF_ERROR(write(fmt::format("input_{}.pb", k), feeds[k].second.ToProto(feeds[k].first)));
  }
  for (size_t k = 0; k < expected.size(); ++k) {
    RETURN_IF_ERROR(write(fmt::format("output_{}.pb", k), expected[k].ToProto(outputs[k].name)));
  }
  return Status::Ok();
}

}  // namespace

double CosineSimilarity(std::span<const float> a, std::span<const float> b) {
  double dot = 0, norm_a = 0, norm_b = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const double x = a[i];
    const double y = b[i];
    dot += x * y;
    norm_a += x * x;
    norm_b += y * y;
  }
  if (!std::isfinite(dot) || !std::isfinite(norm_a) || !std::isfinite(norm_b)) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (norm_a == 0 && norm_b == 0) return 1;  // both all zeros: the same vector
  return norm_a > 0 && norm_b > 0 ? dot / std::sqrt(norm_a * norm_b) : 0;
}

StatusOr<CompareReport> CompareModels(const CompareOptions& options, std::ostream& log) {
  RETURN_IF_ERROR(ValidateOptions(options));
  ASSIGN_OR_RETURN(Side baseline, OpenSide("baseline", options.baseline_model, options, log));
  ASSIGN_OR_RETURN(Side optimized, OpenSide("optimized", options.optimized_model, options, log));
  RETURN_IF_ERROR(CheckSameRoles(baseline, optimized));
  RETURN_IF_ERROR(CheckSameOutputs(baseline, optimized));

  int64_t vocab_size = kDefaultVocabSize;
  if (baseline.vocab_size || optimized.vocab_size) {
    vocab_size = baseline.vocab_size ? *baseline.vocab_size : *optimized.vocab_size;
  } else {
    fmt::print(log,
               "warning: no word-embedding table found for '{}'; drawing ids below {} instead\n",
               baseline.inputs.input_ids, kDefaultVocabSize);
  }
  // Segment ids of 1 only where both token-type tables have a second row.
  int64_t segment_vocab = 2;
  for (const Side* side : {&baseline, &optimized}) {
    if (side->segment_vocab_size)
      segment_vocab = std::min(segment_vocab, *side->segment_vocab_size);
  }
  if (options.verbose) {
    fmt::print(log, "vocabulary size: {}, token types: {}\n", vocab_size, segment_vocab);
  }

  const std::vector<ValueInfo>& output_infos = baseline.session->outputs();
  CompareReport report;
  for (const ValueInfo& info : output_infos) {
    OutputDiff diff;
    diff.name = info.name;
    report.outputs.push_back(diff);
  }
  std::vector<bool> shape_mismatch_logged(output_infos.size(), false);
  std::vector<double> cosine_sums(output_infos.size(), 0.0);

  BertInputGenerator generator(options.batch_size, options.sequence_length, vocab_size,
                               options.seed, segment_vocab);
  for (int k = 0; k < options.samples; ++k) {
    const BertSample sample = generator.Next();
    ASSIGN_OR_RETURN(auto baseline_feeds,
                     MakeBertFeeds(sample, baseline.inputs, baseline.session->inputs()));
    ASSIGN_OR_RETURN(auto optimized_feeds,
                     MakeBertFeeds(sample, optimized.inputs, optimized.session->inputs()));
    ASSIGN_OR_RETURN(std::vector<Tensor> expected, baseline.session->Run(baseline_feeds));
    ASSIGN_OR_RETURN(std::vector<Tensor> actual, optimized.session->Run(optimized_feeds));

    bool sample_ok = true;
    for (size_t i = 0; i < output_infos.size(); ++i) {
      OutputDiff& diff = report.outputs[i];
      const bool ok = CompareOutput(expected[i], actual[i], options, diff, cosine_sums[i]);
      if (!ok) {
        ++diff.samples_failed;
        sample_ok = false;
        if (expected[i].shape() != actual[i].shape() && !shape_mismatch_logged[i]) {
          shape_mismatch_logged[i] = true;
          fmt::print(log, "output '{}': shape {} differs from the baseline's {}\n", diff.name,
                     ShapeText(actual[i].shape()), ShapeText(expected[i].shape()));
        }
        if (options.verbose) fmt::print(log, "sample {}: output '{}' differs\n", k, diff.name);
      }
    }
    ++report.samples;
    if (sample_ok) ++report.passed;

    if (k == 0 && options.write_test_data) {
      const std::filesystem::path root =
          options.output_dir.empty() ? options.optimized_model.parent_path() : options.output_dir;
      const std::filesystem::path dir =
          root / fmt::format("batch_{}_seq_{}", options.batch_size, options.sequence_length) /
          "test_data_set_0";
      // Named and ordered for the optimized model, with the baseline's outputs as expected values.
      RETURN_IF_ERROR(WriteTestData(dir, optimized_feeds, optimized.session->outputs(), expected));
      report.test_data_dir = dir;
    }
  }

  for (size_t i = 0; i < report.outputs.size(); ++i) {
    OutputDiff& diff = report.outputs[i];
    if (report.samples > 0) diff.mean_cosine = cosine_sums[i] / report.samples;
    if (options.tolerance_mode()) {
      fmt::print(log,
                 "output '{}': cosine min {:.6f} mean {:.6f}, max abs diff {:.3g}, {} samples "
                 "failed\n",
                 diff.name, diff.min_cosine, diff.mean_cosine, diff.max_abs_diff,
                 diff.samples_failed);
    } else {
      fmt::print(log, "output '{}': max abs diff {:.3g}, max rel diff {:.3g}, {} samples failed\n",
                 diff.name, diff.max_abs_diff, diff.max_rel_diff, diff.samples_failed);
    }
  }
  if (options.tolerance_mode()) {
    fmt::print(log, "{} of {} samples passed (min_cosine={}, max_abs_diff={})\n", report.passed,
               report.samples, options.min_cosine ? fmt::format("{}", *options.min_cosine) : "-",
               options.max_abs_diff ? fmt::format("{}", *options.max_abs_diff) : "-");
  } else {
    fmt::print(log, "{} of {} samples passed (rtol={}, atol={})\n", report.passed, report.samples,
               options.rtol, options.atol);
  }
  if (!report.test_data_dir.empty()) {
    fmt::print(log, "test data: {}\n", report.test_data_dir.string());
  }
  return report;
}

nlohmann::ordered_json CompareReportToJson(const CompareOptions& options,
                                           const CompareReport& report) {
  nlohmann::ordered_json j;
  j["baseline_model"] = options.baseline_model.string();
  j["optimized_model"] = options.optimized_model.string();
  j["batch_size"] = options.batch_size;
  j["sequence_length"] = options.sequence_length;
  j["seed"] = options.seed;
  if (options.tolerance_mode()) {
    j["mode"] = "tolerance";
    j["min_cosine"] = options.min_cosine ? nlohmann::ordered_json(*options.min_cosine)
                                         : nlohmann::ordered_json(nullptr);
    j["max_abs_diff"] = options.max_abs_diff ? nlohmann::ordered_json(*options.max_abs_diff)
                                             : nlohmann::ordered_json(nullptr);
  } else {
    j["mode"] = "allclose";
    j["rtol"] = options.rtol;
    j["atol"] = options.atol;
  }
  j["samples"] = report.samples;
  j["passed"] = report.passed;
  j["all_passed"] = report.AllPassed();
  nlohmann::ordered_json outputs = nlohmann::ordered_json::array();
  for (const OutputDiff& diff : report.outputs) {
    nlohmann::ordered_json o;
    o["name"] = diff.name;
    o["max_abs_diff"] = diff.max_abs_diff;  // inf is written as null
    o["max_rel_diff"] = diff.max_rel_diff;
    // NaN (no cosine: an empty output) is written as null too.
    o["min_cosine"] = std::isnan(diff.min_cosine) ? nlohmann::ordered_json(nullptr)
                                                  : nlohmann::ordered_json(diff.min_cosine);
    o["mean_cosine"] = std::isnan(diff.mean_cosine) ? nlohmann::ordered_json(nullptr)
                                                    : nlohmann::ordered_json(diff.mean_cosine);
    o["samples_failed"] = diff.samples_failed;
    outputs.push_back(o);
  }
  j["outputs"] = outputs;
  j["test_data_dir"] = report.test_data_dir.empty()
                           ? nlohmann::ordered_json(nullptr)
                           : nlohmann::ordered_json(report.test_data_dir.string());
  return j;
}

}  // namespace bertopt::ort
