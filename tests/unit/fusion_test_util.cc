#include "fusion_test_util.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "ort/session.h"
#include "passes/cleanup.h"
#include "passes/registry.h"
#include "tiny_models.h"

namespace bertopt::testing {

std::string FusionRun::Misses() const {
  std::string out;
  for (const auto& s : stats) {
    for (const auto& m : s.misses) out += m + "\n";
  }
  return out;
}

FusionRun RunPasses(const onnx::ModelProto& model, std::vector<std::unique_ptr<passes::Pass>> list,
                    const passes::PassOptions& options) {
  list.push_back(passes::MakeDeadCodePass());
  list.push_back(passes::MakeTopologicalSortPass());
  FusionRun run;
  run.after = model;
  auto stats = passes::RunPipeline(run.after, list, options);
  EXPECT_TRUE(stats.ok()) << stats.status().ToString();
  if (stats.ok()) run.stats = std::move(stats).value();
  return run;
}

FusionRun RunFusion(const onnx::ModelProto& model, std::unique_ptr<passes::Pass> pass,
                    const passes::PassOptions& options) {
  std::vector<std::unique_ptr<passes::Pass>> list;
  list.push_back(std::move(pass));
  return RunPasses(model, std::move(list), options);
}

namespace {

std::vector<int64_t> ConcreteShape(const ort::ValueInfo& info, const ParityOptions& o) {
  std::vector<int64_t> shape;
  for (size_t i = 0; i < info.dims.size(); ++i) {
    if (info.dims[i] >= 0) {
      shape.push_back(info.dims[i]);
      continue;
    }
    const std::string& sym = i < info.symbolic_dims.size() ? info.symbolic_dims[i] : "";
    auto it = o.dims.find(sym);
    shape.push_back(it != o.dims.end() ? it->second : o.default_dim);
  }
  return shape;
}

ort::Tensor MakeInput(const ort::ValueInfo& info, const ParityOptions& o, std::mt19937& rng) {
  const std::vector<int64_t> shape = ConcreteShape(info, o);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<double> values(n);
  if (info.type == onnx::TensorProto::FLOAT || info.type == onnx::TensorProto::FLOAT16) {
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    for (double& v : values) v = dist(rng);
  } else if (info.name.find("mask") != std::string::npos && !shape.empty()) {
    // Right padding: each row keeps a prefix of ones at least half its length.
    const int64_t row = shape.back();
    for (int64_t r = 0; r < n / row; ++r) {
      const int64_t ones = row - static_cast<int64_t>(rng() % (row / 2 + 1));
      for (int64_t c = 0; c < row; ++c) values[r * row + c] = c < ones ? 1 : 0;
    }
  } else {
    auto it = o.int_high.find(info.name);
    const int64_t high = it != o.int_high.end() ? it->second : 2;
    for (double& v : values) v = static_cast<double>(rng() % high);
  }
  auto t = ort::Tensor::FromValues(static_cast<ort::DataType>(info.type), shape, values);
  EXPECT_TRUE(t.ok()) << info.name << ": " << t.status().ToString();
  return t.ok() ? std::move(t).value() : ort::Tensor();
}

}  // namespace

bool ExpectSameOutputs(const onnx::ModelProto& before, const onnx::ModelProto& after,
                       const ParityOptions& options) {
  const auto dir = MakeTempDir("parity");
  const auto before_path = SaveModel(before, dir / "before.onnx");
  const auto after_path = SaveModel(after, dir / "after.onnx");
  const ort::SessionConfig disabled{.level = ort::OptLevel::kDisabled, .intra_op_threads = 1};
  auto a = ort::Session::Create(before_path, disabled);
  auto b = ort::Session::Create(after_path, disabled);
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  if (!a.ok() || !b.ok()) return false;
  for (auto level : {ort::OptLevel::kBasic, ort::OptLevel::kExtended, ort::OptLevel::kAll}) {
    auto s = ort::Session::Create(after_path, {.level = level, .intra_op_threads = 1});
    EXPECT_TRUE(s.ok()) << "ORT at level " << ort::OptLevelName(level) << ": "
                        << s.status().ToString();
  }

  // The same values for both models, each in its own input dtypes.
  std::mt19937 rng(options.seed);
  std::vector<std::pair<std::string, ort::Tensor>> inputs_a, inputs_b;
  for (const auto& info : (*a)->inputs()) {
    ort::Tensor t = MakeInput(info, options, rng);
    inputs_a.emplace_back(info.name, t);
    for (const auto& info_b : (*b)->inputs()) {
      if (info_b.name != info.name) continue;
      std::vector<double> values;
      for (float v : t.ToFloat()) values.push_back(v);
      auto converted =
          ort::Tensor::FromValues(static_cast<ort::DataType>(info_b.type), t.shape(), values);
      EXPECT_TRUE(converted.ok());
      if (converted.ok()) inputs_b.emplace_back(info.name, std::move(converted).value());
    }
  }
  auto out_a = (*a)->Run(inputs_a);
  auto out_b = (*b)->Run(inputs_b);
  EXPECT_TRUE(out_a.ok()) << out_a.status().ToString();
  EXPECT_TRUE(out_b.ok()) << out_b.status().ToString();
  if (!out_a.ok() || !out_b.ok()) return false;
  EXPECT_EQ(out_a->size(), out_b->size());
  bool same = out_a->size() == out_b->size();
  for (size_t i = 0; same && i < out_a->size(); ++i) {
    const auto& x = (*out_a)[i];
    const auto& y = (*out_b)[i];
    EXPECT_EQ(x.shape(), y.shape()) << "output " << i;
    if (x.shape() != y.shape()) return false;
    const auto fx = x.ToFloat();
    const auto fy = y.ToFloat();
    if (options.min_cosine) {
      double dot = 0, nx = 0, ny = 0;
      for (size_t k = 0; k < fx.size(); ++k) {
        dot += double(fx[k]) * fy[k];
        nx += double(fx[k]) * fx[k];
        ny += double(fy[k]) * fy[k];
      }
      const double cosine = nx == 0 && ny == 0 ? 1 : dot / std::sqrt(nx * ny);
      EXPECT_GE(cosine, *options.min_cosine) << "output " << (*a)->outputs()[i].name;
      same &= cosine >= *options.min_cosine;
      continue;
    }
    double worst = 0;
    size_t worst_at = 0;
    for (size_t k = 0; k < fx.size(); ++k) {
      const double excess =
          std::abs(fx[k] - fy[k]) - (options.atol + options.rtol * std::abs(fx[k]));
      if (excess > worst || std::isnan(fy[k]) != std::isnan(fx[k])) {
        worst = std::isnan(excess) ? 1e30 : excess;
        worst_at = k;
      }
    }
    EXPECT_EQ(worst, 0) << "output " << (*a)->outputs()[i].name << " element " << worst_at << ": "
                        << fx[worst_at] << " vs " << fy[worst_at];
    same &= worst == 0;
  }
  return same;
}

}  // namespace bertopt::testing
