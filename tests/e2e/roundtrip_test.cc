// Lossless I/O on every real export: load then save, with no passes, gives the same message.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "bertopt/io/model_io.h"
#include "e2e_util.h"

namespace bertopt::e2e {
namespace {

namespace fs = std::filesystem;

onnx::ModelProto ParseFile(const fs::path& path) {
  onnx::ModelProto m;
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(m.ParseFromIstream(&in)) << path;
  return m;
}

class RoundTrip : public ::testing::TestWithParam<GeneratedModel> {};

TEST_P(RoundTrip, LoadSaveIsLossless) {
  const GeneratedModel& m = GetParam();
  auto model = io::LoadModel(m.Path());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const fs::path dir = TempDir("roundtrip");
  ASSERT_TRUE(io::SaveModel(*model, dir / "copy.onnx").ok());
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(ParseFile(m.Path()),
                                                                 ParseFile(dir / "copy.onnx")));
  fs::remove_all(dir);
}

// What `optimize` does: the input mapped, its weights written from the file. The result must be
// the bytes the copying loader's save writes.
TEST_P(RoundTrip, MappedLoadSavesTheSameBytes) {
  const GeneratedModel& m = GetParam();
  auto copied = io::LoadModel(m.Path());
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  auto mapped = io::LoadModelMapped(m.Path());
  ASSERT_TRUE(mapped.ok()) << mapped.status().ToString();
  const fs::path dir = TempDir("roundtrip_mapped");
  ASSERT_TRUE(io::SaveModel(*copied, dir / "copied.onnx").ok());
  ASSERT_TRUE(io::SaveModel(mapped->model(), dir / "mapped.onnx").ok());
  std::ifstream a(dir / "copied.onnx", std::ios::binary);
  std::ifstream b(dir / "mapped.onnx", std::ios::binary);
  const std::string copied_bytes((std::istreambuf_iterator<char>(a)), {});
  const std::string mapped_bytes((std::istreambuf_iterator<char>(b)), {});
  EXPECT_FALSE(copied_bytes.empty());
  EXPECT_TRUE(copied_bytes == mapped_bytes) << "the saved files differ";
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Matrix, RoundTrip, ::testing::ValuesIn(MatrixModels()),
                         [](const auto& info) { return info.param.Label(); });

}  // namespace
}  // namespace bertopt::e2e
