#include "e2e_util.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "ort/compare.h"

namespace bertopt::e2e {
namespace fs = std::filesystem;

namespace {

const fs::path kSourceDir = BERTOPT_SOURCE_DIR;
const fs::path kBinary = BERTOPT_BINARY;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a shell command; stdout and stderr go to files read back afterwards.
CommandResult Shell(const std::string& command) {
  const fs::path dir = TempDir("cmd");
  const std::string full =
      command + " >" + (dir / "out").string() + " 2>" + (dir / "err").string() + " </dev/null";
  const int status = std::system(full.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(dir / "out");
  r.err = ReadFile(dir / "err");
  fs::remove_all(dir);
  return r;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::vector<std::string> MatrixArgs() { return MatrixLines("test_matrix.txt"); }

GeneratedModel Describe(const std::string& args) {
  GeneratedModel m{args};
  std::istringstream in(args);
  for (std::string word; in >> word;) {
    if (word == "--kind") in >> m.kind;
    if (word == "--opset") in >> m.opset;
    if (word == "--static") m.is_static = true;
  }
  return m;
}

}  // namespace

std::string GeneratedModel::Label() const {
  std::string label = kind + "_op" + std::to_string(opset) + (is_static ? "_static" : "");
  std::istringstream in(args);
  for (std::string word; in >> word;) {
    if (word.rfind("--", 0) != 0 || word == "--kind" || word == "--opset" || word == "--static") {
      continue;
    }
    label += "_" + word.substr(2);
  }
  for (char& c : label) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return label;
}

const std::vector<GeneratedModel>& MatrixModels() {
  static const std::vector<GeneratedModel> models = [] {
    std::vector<GeneratedModel> out;
    for (const std::string& args : MatrixArgs()) out.push_back(Describe(args));
    return out;
  }();
  return models;
}

fs::path GeneratedModel::Path() const { return GenerateModel(args); }

std::vector<std::string> MatrixLines(const std::string& file) {
  std::vector<std::string> args;
  for (const std::string& line : Lines(ReadFile(ModelsDir() / file))) {
    if (line[0] != '#') args.push_back(line);
  }
  return args;
}

fs::path ModelsDir() { return kSourceDir / "tests/models"; }

fs::path GenerateModel(const std::string& args) { return GenerateModelWith("gen_bert.py", args); }

fs::path GenerateModelWith(const std::string& script, const std::string& args) {
  CommandResult r = Shell("/usr/bin/python3 " + (ModelsDir() / script).string() + " " + args);
  std::vector<std::string> lines = Lines(r.out);
  if (r.exit_code != 0 || lines.empty()) {
    std::cerr << "generating '" << args << "' failed:\n" << r.err;
    std::abort();
  }
  return lines.back();
}

CommandResult RunBertopt(const std::string& args, const std::string& program,
                         const std::vector<std::pair<std::string, std::string>>& env) {
  const fs::path binary = kBinary.parent_path() / program;
  std::string prefix;
  for (const auto& [name, value] : env) prefix += name + "='" + value + "' ";
  return Shell(prefix + binary.string() + " " + args);
}

fs::path TempDir(const std::string& prefix) {
  static std::mt19937_64 rng(std::random_device{}());
  fs::path dir =
      fs::temp_directory_path() / ("bertopt_e2e_" + prefix + "_" + std::to_string(rng()));
  fs::create_directories(dir);
  return dir;
}

int FusedCount(const OptimizeReport& report, const std::string& op) {
  return report.fused_ops.count(op) ? report.fused_ops.at(op) : 0;
}

std::string ExplainReport(const OptimizeReport& report) {
  std::ostringstream s;
  for (const auto& m : report.verdict.missing) s << "missing: " << m << "\n";
  for (const auto& p : report.passes) {
    for (const auto& m : p.misses) s << m << "\n";
  }
  return s.str();
}

ort::CompareOptions SmallCompare(const fs::path& baseline, const fs::path& optimized, int samples) {
  ort::CompareOptions c;
  c.baseline_model = baseline;
  c.optimized_model = optimized;
  c.batch_size = 2;
  c.sequence_length = 16;
  c.samples = samples;
  c.write_test_data = false;
  return c;
}

void ExpectSameOutputs(const fs::path& baseline, const fs::path& optimized, int samples,
                       double rtol, double atol) {
  ort::CompareOptions c = SmallCompare(baseline, optimized, samples);
  c.rtol = rtol;
  c.atol = atol;
  std::ostringstream log;
  auto report = ort::CompareModels(c, log);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->AllPassed()) << baseline << "\n" << log.str();
}

}  // namespace bertopt::e2e
