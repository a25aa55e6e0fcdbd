#include <sys/resource.h>
#include <sys/stat.h>

#include <csignal>
#include <random>

#include "bertopt/io/model_io.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "io/external_data.h"
#include "io/model_io_internal.h"
#include "unit/testdata_util.h"

namespace bertopt::io {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using std::string_view_literals::operator""sv;
using ::testing::HasSubstr;
using testutil::ReadFile;
using testutil::TempDir;
using testutil::WriteFile;

std::string Deterministic(const google::protobuf::MessageLite& message) {
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream out(&stream);
  out.SetSerializationDeterministic(true);
  EXPECT_TRUE(message.SerializeToCodedStream(&out));
  out.Trim();
  return bytes;
}

bool Equal(const onnx::ModelProto& a, const onnx::ModelProto& b) {
  return google::protobuf::util::MessageDifferencer::Equals(a, b);
}

onnx::ModelProto ParseFileRaw(const fs::path& path) {
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromString(ReadFile(path))) << path;
  return model;
}

// The external_data entry `key` of `tensor`, or "" if absent.
std::string ExternalEntry(const onnx::TensorProto& tensor, const std::string& key) {
  for (const auto& entry : tensor.external_data()) {
    if (entry.key() == key) return entry.value();
  }
  return "";
}

void AddEntry(onnx::TensorProto* t, const std::string& key, const std::string& value) {
  auto* entry = t->add_external_data();
  entry->set_key(key);
  entry->set_value(value);
}

// Turns `tensor` into a reference to `location` at `offset` (length = its current raw_data size).
void MakeExternal(onnx::TensorProto* tensor, const std::string& location, int64_t offset,
                  bool with_length = true) {
  const auto length = static_cast<int64_t>(tensor->raw_data().size());
  tensor->clear_raw_data();
  tensor->set_data_location(onnx::TensorProto::EXTERNAL);
  AddEntry(tensor, "location", location);
  AddEntry(tensor, "offset", std::to_string(offset));
  if (with_length) AddEntry(tensor, "length", std::to_string(length));
}

// ---------------------------------------------------------------------------------------------
// Lossless round trips

TEST(ModelIoTest, SampleModelHasEverythingTheRoundTripMustKeep) {
  // Guards the other tests: if the sample lost a feature, they would pass without checking it.
  onnx::ModelProto model = testutil::MakeSampleModel();
  EXPECT_EQ(model.opset_import_size(), 3);
  EXPECT_EQ(model.opset_import(1).domain(), "com.microsoft");
  EXPECT_EQ(model.functions_size(), 1);
  EXPECT_EQ(model.training_info_size(), 1);
  EXPECT_EQ(model.metadata_props_size(), 2);
  EXPECT_EQ(model.graph().value_info_size(), 1);
  EXPECT_EQ(model.graph().sparse_initializer_size(), 1);
  EXPECT_FALSE(model.doc_string().empty());
  EXPECT_EQ(model.GetReflection()->GetUnknownFields(model).field_count(), 1);
}

TEST(ModelIoTest, InlineRoundTripIsLossless) {
  TempDir dir;
  const onnx::ModelProto model = testutil::MakeSampleModel();
  ASSERT_TRUE(SaveModel(model, dir / "m.onnx").ok());
  EXPECT_THAT(dir.List(), ElementsAre("m.onnx"));
  EXPECT_EQ(ReadFile(dir / "m.onnx"), Deterministic(model));

  StatusOr<onnx::ModelProto> loaded = LoadModel(dir / "m.onnx");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_TRUE(Equal(*loaded, model));
  EXPECT_EQ(Deterministic(*loaded), Deterministic(model));
  EXPECT_EQ(loaded->GetReflection()->GetUnknownFields(*loaded).field_count(), 1);

  // And a second generation is byte-identical to the first.
  ASSERT_TRUE(SaveModel(*loaded, dir / "m2.onnx").ok());
  EXPECT_EQ(ReadFile(dir / "m2.onnx"), ReadFile(dir / "m.onnx"));
}

TEST(ModelIoTest, ExternalSaveThenLoadGivesTheSameModel) {
  TempDir dir;
  const onnx::ModelProto model = testutil::MakeSampleModel();
  SaveOptions options;
  options.external_data = true;
  options.external_threshold_bytes = 1024;
  ASSERT_TRUE(SaveModel(model, dir / "m.onnx", options).ok());
  EXPECT_THAT(dir.List(), ElementsAre("m.onnx", "m.onnx.data"));

  // Every large tensor, wherever it sits (attribute, subgraph, sparse, training), went out, at a
  // 4 KiB-aligned offset; the small ones stayed inline.
  onnx::ModelProto on_disk = ParseFileRaw(dir / "m.onnx");
  int external = 0;
  int64_t end = 0;
  auto check = [&](const onnx::TensorProto& t) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) {
      EXPECT_LT(t.raw_data().size(), 1024U) << t.name();
      return;
    }
    ++external;
    EXPECT_FALSE(t.has_raw_data());
    EXPECT_EQ(ExternalEntry(t, "location"), "m.onnx.data");
    const int64_t offset = std::stoll(ExternalEntry(t, "offset"));
    const int64_t length = std::stoll(ExternalEntry(t, "length"));
    EXPECT_EQ(offset % 4096, 0) << t.name();
    end = std::max(end, offset + length);
  };
  const onnx::GraphProto& g = on_disk.graph();
  for (const auto& t : g.initializer()) check(t);
  check(g.node(4).attribute(0).t());
  check(g.node(5).attribute(0).g().initializer(0));
  check(g.node(5).attribute(1).g().initializer(0));
  check(g.sparse_initializer(0).values());
  check(g.sparse_initializer(0).indices());
  check(on_disk.training_info(0).initialization().initializer(0));
  EXPECT_EQ(external, testutil::kSampleLargeTensors);
  EXPECT_EQ(static_cast<int64_t>(fs::file_size(dir / "m.onnx.data")), end);
  EXPECT_LT(fs::file_size(dir / "m.onnx"), 2048U);
  // The unknown field of a moved tensor stays with its skeleton.
  EXPECT_EQ(g.initializer(1).GetReflection()->GetUnknownFields(g.initializer(1)).field_count(), 1);

  StatusOr<onnx::ModelProto> loaded = LoadModel(dir / "m.onnx");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_TRUE(Equal(*loaded, model));
  EXPECT_EQ(Deterministic(*loaded), Deterministic(model));
}

TEST(ModelIoTest, ExternalThresholdKeepsSmallerTensorsInline) {
  TempDir dir;
  SaveOptions options;
  options.external_data = true;
  options.external_threshold_bytes = 4096;  // only "emb"
  ASSERT_TRUE(SaveModel(testutil::MakeSampleModel(), dir / "m.onnx", options).ok());
  onnx::ModelProto on_disk = ParseFileRaw(dir / "m.onnx");
  for (const auto& t : on_disk.graph().initializer()) {
    EXPECT_EQ(t.data_location() == onnx::TensorProto::EXTERNAL, t.name() == "emb") << t.name();
  }
  EXPECT_EQ(fs::file_size(dir / "m.onnx.data"), 4096U);
}

TEST(ModelIoTest, ExternalSaveWithNothingLargeWritesNoDataFile) {
  TempDir dir;
  SaveOptions options;
  options.external_data = true;
  options.external_threshold_bytes = 1 << 20;
  const onnx::ModelProto model = testutil::MakeSampleModel();
  ASSERT_TRUE(SaveModel(model, dir / "m.onnx", options).ok());
  EXPECT_THAT(dir.List(), ElementsAre("m.onnx"));
  EXPECT_EQ(ReadFile(dir / "m.onnx"), Deterministic(model));
}

TEST(ModelIoTest, TypedTensorDataMovesToExternalAsLittleEndianBytes) {
  TempDir dir;
  onnx::ModelProto model = testutil::MakeSampleModel();
  onnx::TensorProto* typed = model.mutable_graph()->add_initializer();
  typed->set_name("typed");
  typed->set_data_type(onnx::TensorProto::INT64);
  typed->add_dims(300);
  for (int64_t i = 0; i < 300; ++i) typed->add_int64_data(i * 1000003 - 7);
  SaveOptions options;
  options.external_data = true;
  ASSERT_TRUE(SaveModel(model, dir / "m.onnx", options).ok());

  StatusOr<onnx::ModelProto> loaded = LoadModel(dir / "m.onnx");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const onnx::TensorProto& back = loaded->graph().initializer(3);
  ASSERT_EQ(back.name(), "typed");
  EXPECT_EQ(back.int64_data_size(), 0);
  ASSERT_EQ(back.raw_data().size(), 300 * sizeof(int64_t));
  std::vector<int64_t> values(300);
  std::memcpy(values.data(), back.raw_data().data(), back.raw_data().size());
  for (int64_t i = 0; i < 300; ++i) ASSERT_EQ(values[i], i * 1000003 - 7) << i;
}

TEST(ModelIoTest, ModelsOverTheInlineLimitAreSavedWithExternalData) {
  TempDir dir;
  const onnx::ModelProto model = testutil::MakeSampleModel();
  // Just under the model's size stands in for protobuf's 2 GB; the option itself is off.
  const size_t limit = model.ByteSizeLong() - 1;
  ASSERT_TRUE(internal::SaveModelWithInlineLimit(model, dir / "m.onnx", SaveOptions{}, limit).ok());
  EXPECT_THAT(dir.List(), ElementsAre("m.onnx", "m.onnx.data"));
  StatusOr<onnx::ModelProto> loaded = LoadModel(dir / "m.onnx");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_TRUE(Equal(*loaded, model));
}

TEST(ModelIoTest, ModelStillOverTheLimitAfterMovingTensorsIsAnError) {
  TempDir dir;
  SaveOptions options;
  options.external_threshold_bytes = 1 << 20;  // nothing moves, so the model stays over the limit
  const onnx::ModelProto model = testutil::MakeSampleModel();
  Status s =
      internal::SaveModelWithInlineLimit(model, dir / "m.onnx", options, model.ByteSizeLong() - 1);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("m.onnx: even with external data the model is"));
  EXPECT_TRUE(dir.List().empty());
}

// ---------------------------------------------------------------------------------------------
// External data written by hand

class ExternalLoadTest : public ::testing::Test {
 protected:
  // emb (4000 bytes) at offset 100 of w.bin and bias (64 bytes) right after, with no length.
  void SetUp() override {
    model_ = testutil::MakeSampleModel();
    model_.mutable_graph()->clear_initializer();
    emb_ = testutil::FloatTensor("emb", {1000}, 11);
    bias_ = testutil::FloatTensor("bias", {16}, 12);
    onnx::TensorProto* emb = model_.mutable_graph()->add_initializer();
    *emb = emb_;
    MakeExternal(emb, "w.bin", 100);
    onnx::TensorProto* bias = model_.mutable_graph()->add_initializer();
    *bias = bias_;
    MakeExternal(bias, "w.bin", 4100, /*with_length=*/false);
    data_ = std::string(100, 'x') + emb_.raw_data() + bias_.raw_data();
  }
  void Write() {
    WriteFile(dir_ / "model.onnx", model_.SerializeAsString());
    WriteFile(dir_ / "w.bin", data_);
  }
  Status LoadError() {
    StatusOr<onnx::ModelProto> loaded = LoadModel(dir_ / "model.onnx");
    EXPECT_FALSE(loaded.ok());
    return loaded.status();
  }

  TempDir dir_;
  onnx::ModelProto model_;
  onnx::TensorProto emb_, bias_;
  std::string data_;
};

TEST_F(ExternalLoadTest, ReadsTensorsIntoRawDataAndClearsTheReference) {
  Write();
  StatusOr<onnx::ModelProto> loaded = LoadModel(dir_ / "model.onnx");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const onnx::TensorProto& emb = loaded->graph().initializer(0);
  const onnx::TensorProto& bias = loaded->graph().initializer(1);
  EXPECT_EQ(emb.raw_data(), emb_.raw_data());
  EXPECT_EQ(bias.raw_data(), bias_.raw_data());
  EXPECT_FALSE(emb.has_data_location());
  EXPECT_EQ(emb.external_data_size(), 0);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(emb, emb_));
}

TEST_F(ExternalLoadTest, LocationsInASubfolderWork) {
  model_.mutable_graph()->mutable_initializer(0)->mutable_external_data(0)->set_value("sub/w.bin");
  model_.mutable_graph()->mutable_initializer(1)->mutable_external_data(0)->set_value(
      "./sub/w.bin");
  WriteFile(dir_ / "model.onnx", model_.SerializeAsString());
  fs::create_directory(dir_ / "sub");
  WriteFile(dir_ / "sub" / "w.bin", data_);
  StatusOr<onnx::ModelProto> loaded = LoadModel(dir_ / "model.onnx");
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->graph().initializer(1).raw_data(), bias_.raw_data());
}

TEST_F(ExternalLoadTest, MissingDataFileIsNotFound) {
  WriteFile(dir_ / "model.onnx", model_.SerializeAsString());
  Status s = LoadError();
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("model.onnx"));
  EXPECT_THAT(s.message(), HasSubstr("'w.bin'"));
  EXPECT_THAT(s.message(), HasSubstr("'emb'"));
}

TEST_F(ExternalLoadTest, DataFileThatIsAFifoFailsInsteadOfBlocking) {
  WriteFile(dir_ / "model.onnx", model_.SerializeAsString());
  ASSERT_EQ(::mkfifo((dir_ / "w.bin").c_str(), 0600), 0);
  Status s = LoadError();
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_THAT(s.message(),
              HasSubstr("external data file 'w.bin' for tensor 'emb': is not a regular file"));
}

TEST_F(ExternalLoadTest, ShortDataFileSaysWhatWasNeeded) {
  data_.resize(2000);
  Write();
  Status s = LoadError();
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_EQ(s.message(), (dir_ / "model.onnx").string() +
                             ": external data file 'w.bin' for tensor 'emb' is 2000 bytes, needs "
                             "offset 100 + length 4000");
}

TEST_F(ExternalLoadTest, OffsetPastTheEndWithoutLengthIsAnError) {
  model_.mutable_graph()->mutable_initializer(1)->mutable_external_data(1)->set_value("5000");
  Write();
  Status s = LoadError();
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_THAT(s.message(), HasSubstr("'bias' is 4164 bytes, needs offset 5000 + length to end"));
}

TEST_F(ExternalLoadTest, AbsoluteOrEscapingLocationsAreRejected) {
  for (const std::string& location :
       {(dir_ / "w.bin").string(), std::string("../w.bin"), std::string("sub/../../w.bin")}) {
    SCOPED_TRACE(location);
    model_.mutable_graph()->mutable_initializer(0)->mutable_external_data(0)->set_value(location);
    Write();
    Status s = LoadError();
    EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
    EXPECT_THAT(s.message(), HasSubstr("model.onnx"));
    EXPECT_THAT(s.message(), HasSubstr(location));
  }
}

TEST_F(ExternalLoadTest, MalformedEntriesAreRejected) {
  auto* emb = model_.mutable_graph()->mutable_initializer(0);
  emb->mutable_external_data(1)->set_value("12abc");
  Write();
  EXPECT_THAT(LoadError().message(), HasSubstr("offset '12abc' is not a non-negative integer"));

  emb->mutable_external_data(1)->set_value("-1");
  Write();
  EXPECT_EQ(LoadError().code(), StatusCode::kInvalidModel);

  emb->mutable_external_data(1)->set_value("100");
  emb->mutable_external_data(0)->set_key("where");
  Write();
  EXPECT_THAT(LoadError().message(),
              HasSubstr("'emb' is stored as external data but has no location"));
}

TEST_F(ExternalLoadTest, ExternalAndRawDataTogetherIsAnError) {
  model_.mutable_graph()->mutable_initializer(0)->set_raw_data("1234");
  Write();
  EXPECT_THAT(LoadError().message(), HasSubstr("has both raw_data and external data"));
}

// ---------------------------------------------------------------------------------------------
// Files that are not models

class BadInputTest : public ::testing::Test {
 protected:
  Status Load(const std::string& name) {
    StatusOr<onnx::ModelProto> loaded = LoadModel(dir_ / name);
    EXPECT_FALSE(loaded.ok()) << name << " loaded";
    if (loaded.ok()) return Status::Ok();
    EXPECT_THAT(loaded.status().message(), HasSubstr(name));
    EXPECT_EQ(loaded.status().message().find('\n'), std::string::npos);
    return loaded.status();
  }
  TempDir dir_;
};

TEST_F(BadInputTest, MissingFile) {
  Status s = Load("nope.onnx");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("no such file"));
}

TEST_F(BadInputTest, FifoFailsInsteadOfBlocking) {
  ASSERT_EQ(::mkfifo((dir_ / "pipe.onnx").c_str(), 0600), 0);
  Status s = Load("pipe.onnx");
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_THAT(s.message(), HasSubstr("not a regular file"));
}

TEST_F(BadInputTest, Folder) {
  fs::create_directory(dir_ / "folder.onnx");
  Status s = Load("folder.onnx");
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_THAT(s.message(), HasSubstr("is a folder"));
}

TEST_F(BadInputTest, EmptyFile) {
  WriteFile(dir_ / "empty.onnx", "");
  Status s = Load("empty.onnx");
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_THAT(s.message(), HasSubstr("empty file"));
}

TEST_F(BadInputTest, TruncatedModel) {
  const std::string bytes = Deterministic(testutil::MakeSampleModel());
  // Cuts inside the graph. (A cut exactly between top-level fields after opset_import leaves a
  // valid, smaller model: protobuf has no end marker, so that case cannot be detected.)
  for (size_t cut : {size_t{1}, size_t{40}, bytes.size() / 2, bytes.size() - 300}) {
    SCOPED_TRACE(cut);
    WriteFile(dir_ / "cut.onnx", bytes.substr(0, cut));
    Status s = Load("cut.onnx");
    EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
    EXPECT_THAT(s.message(), HasSubstr("not an ONNX model"));
  }
  WriteFile(dir_ / "half.onnx", bytes.substr(0, bytes.size() / 2));
  EXPECT_EQ(
      Load("half.onnx").message(),
      (dir_ / "half.onnx").string() + ": truncated or not an ONNX model (protobuf parse failed)");
}

TEST_F(BadInputTest, TextFile) {
  WriteFile(dir_ / "readme.onnx", "This is not a model.\nJust some text.\n");
  Status s = Load("readme.onnx");
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_THAT(s.message(), HasSubstr("not an ONNX model"));
}

TEST_F(BadInputTest, PngFile) {
  // Signature and IHDR chunk of a 16x16 RGBA image (the CRC is not checked by anything here).
  // The "sv" literal keeps the embedded NULs.
  const std::string png(
      "\x89PNG\r\n\x1a\n"
      "\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0"
      "\x1f\xf3\xff\x61"sv);
  ASSERT_EQ(png.size(), 33U);
  WriteFile(dir_ / "image.png", png);
  Status s = Load("image.png");
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_THAT(s.message(), HasSubstr("not an ONNX model"));
}

TEST_F(BadInputTest, RandomBytes) {
  std::mt19937 rng(1234);
  for (int round = 0; round < 20; ++round) {
    std::string bytes(1 + rng() % 5000, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    WriteFile(dir_ / "random.bin", bytes);
    Status s = Load("random.bin");
    EXPECT_EQ(s.code(), StatusCode::kInvalidModel) << s.ToString();
  }
}

TEST_F(BadInputTest, ValidProtobufThatIsNotAModel) {
  // Parses as a ModelProto (field 1 with the wrong wire type becomes an unknown field, field 2
  // reads as producer_name); the missing essentials give it away.
  onnx::StringStringEntryProto entry;
  entry.set_key("key");
  entry.set_value("value");
  WriteFile(dir_ / "entry.onnx", entry.SerializeAsString());
  Status s = Load("entry.onnx");
  EXPECT_EQ(s.code(), StatusCode::kInvalidModel);
  EXPECT_THAT(s.message(), HasSubstr("not an ONNX model (no graph, ir_version, opset_import)"));

  onnx::ModelProto model = testutil::MakeSampleModel();
  model.clear_opset_import();
  WriteFile(dir_ / "no_opset.onnx", model.SerializeAsString());
  EXPECT_THAT(Load("no_opset.onnx").message(), HasSubstr("not an ONNX model (no opset_import)"));
}

// ---------------------------------------------------------------------------------------------
// Atomic writes and protection of the input

TEST(AtomicWriteTest, WritesReplacesAndLeavesNoTemporary) {
  TempDir dir;
  ASSERT_TRUE(WriteFileAtomic(dir / "input_0.pb", "first").ok());
  ASSERT_TRUE(WriteFileAtomic(dir / "input_0.pb", "second").ok());
  EXPECT_EQ(ReadFile(dir / "input_0.pb"), "second");
  EXPECT_THAT(dir.List(), ElementsAre("input_0.pb"));
}

TEST(AtomicWriteTest, NewFilesGetTheUsualPermissions) {
  TempDir dir;
  const mode_t mask = ::umask(022);
  ASSERT_TRUE(WriteFileAtomic(dir / "a.pb", "x").ok());
  ::umask(mask);
  EXPECT_EQ(fs::status(dir / "a.pb").permissions(), fs::perms::owner_read | fs::perms::owner_write |
                                                        fs::perms::group_read |
                                                        fs::perms::others_read);
}

TEST(AtomicWriteTest, MissingFolderIsAnErrorNamingIt) {
  TempDir dir;
  Status s = WriteFileAtomic(dir / "no_such_dir" / "a.pb", "x");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("no_such_dir"));
  s = SaveModel(testutil::MakeSampleModel(), dir / "no_such_dir" / "m.onnx");
  EXPECT_EQ(s.code(), StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("output folder '" + (dir / "no_such_dir").string()));
  EXPECT_TRUE(dir.List().empty());
}

TEST(AtomicWriteTest, TargetThatIsAFolderIsAnError) {
  TempDir dir;
  fs::create_directory(dir / "m.onnx");
  Status s = SaveModel(testutil::MakeSampleModel(), dir / "m.onnx");
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_THAT(dir.List(), ElementsAre("m.onnx"));
}

// Makes writes past `bytes` fail with EFBIG (instead of killing the process with SIGXFSZ), to
// test failures after the temporary file exists.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    ::getrlimit(RLIMIT_FSIZE, &old_);
    rlimit limit = old_;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    ::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit old_{};
  sighandler_t old_handler_;
};

TEST(AtomicWriteTest, FailedWriteLeavesNothingBehind) {
  TempDir dir;
  WriteFile(dir / "keep.pb", "old");
  {
    FileSizeLimit limit(1000);
    Status s = WriteFileAtomic(dir / "big.pb", std::string(5000, 'x'));
    EXPECT_EQ(s.code(), StatusCode::kIoError);
    EXPECT_THAT(s.message(), HasSubstr("big.pb"));
    s = WriteFileAtomic(dir / "keep.pb", std::string(5000, 'x'));
    EXPECT_EQ(s.code(), StatusCode::kIoError);
  }
  EXPECT_THAT(dir.List(), ElementsAre("keep.pb"));
  EXPECT_EQ(ReadFile(dir / "keep.pb"), "old");
}

TEST(AtomicWriteTest, FailedModelSavesLeaveNothingBehind) {
  TempDir dir;
  SaveOptions external;
  external.external_data = true;
  {
    FileSizeLimit limit(1000);  // the sample is ~14 KB inline, its data file ~20 KB
    EXPECT_EQ(SaveModel(testutil::MakeSampleModel(), dir / "m.onnx").code(), StatusCode::kIoError);
    EXPECT_EQ(SaveModel(testutil::MakeSampleModel(), dir / "e.onnx", external).code(),
              StatusCode::kIoError);
  }
  EXPECT_TRUE(dir.List().empty());
}

TEST(ProtectTest, RefusesToOverwriteTheInputUnlessAllowed) {
  TempDir dir;
  fs::create_directory(dir / "sub");
  const onnx::ModelProto model = testutil::MakeSampleModel();
  WriteFile(dir / "in.onnx", "original");
  SaveOptions options;
  options.protect = dir / "in.onnx";

  // Another spelling of the same file, and a hard link to it, are the same file.
  for (const fs::path& target : {dir / "in.onnx", dir / "sub" / ".." / "in.onnx"}) {
    Status s = SaveModel(model, target, options);
    EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << target;
    EXPECT_THAT(s.message(), HasSubstr("in.onnx"));
  }
  fs::create_hard_link(dir / "in.onnx", dir / "link.onnx");
  EXPECT_EQ(SaveModel(model, dir / "link.onnx", options).code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(ReadFile(dir / "in.onnx"), "original");

  options.overwrite = true;
  ASSERT_TRUE(SaveModel(model, dir / "in.onnx", options).ok());
  EXPECT_EQ(ReadFile(dir / "in.onnx"), Deterministic(model));
  EXPECT_THAT(dir.List(), ElementsAre("in.onnx", "link.onnx", "sub"));
}

TEST(ProtectTest, RefusesToOverwriteTheInputsExternalData) {
  TempDir dir;
  // An input whose weights live in "out.onnx.data": exactly the file an external save of
  // out.onnx would write.
  onnx::ModelProto input = testutil::MakeSampleModel();
  onnx::TensorProto* emb = input.mutable_graph()->mutable_initializer(2);
  const std::string data = emb->raw_data();
  MakeExternal(emb, "out.onnx.data", 0);
  WriteFile(dir / "in.onnx", input.SerializeAsString());
  WriteFile(dir / "out.onnx.data", data);

  SaveOptions options;
  options.protect = dir / "in.onnx";
  options.external_data = true;
  StatusOr<onnx::ModelProto> loaded = LoadModel(options.protect);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  Status s = SaveModel(*loaded, dir / "out.onnx", options);
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("external data of the input model"));
  EXPECT_EQ(ReadFile(dir / "out.onnx.data"), data);
  EXPECT_THAT(dir.List(), ElementsAre("in.onnx", "out.onnx.data"));

  // Outputs that do not write out.onnx.data are fine: inline, or external with nothing to move.
  options.external_data = false;
  EXPECT_TRUE(SaveModel(*loaded, dir / "out.onnx", options).ok());
  options.external_data = true;
  options.external_threshold_bytes = 1 << 20;
  EXPECT_TRUE(SaveModel(*loaded, dir / "out.onnx", options).ok());
  EXPECT_EQ(ReadFile(dir / "out.onnx.data"), data);
  options.external_threshold_bytes = 1024;
  // A different output name does not collide either.
  options.external_data = true;
  EXPECT_TRUE(SaveModel(*loaded, dir / "other.onnx", options).ok());
}

TEST(ProtectTest, ListsExternalFilesWhereverTheTensorIs) {
  TempDir dir;
  onnx::ModelProto model = testutil::MakeSampleModel();
  onnx::GraphProto* g = model.mutable_graph();
  MakeExternal(g->mutable_initializer(2), "a.bin", 0);
  MakeExternal(g->mutable_node(4)->mutable_attribute(0)->mutable_t(), "b.bin", 0);
  MakeExternal(g->mutable_node(5)->mutable_attribute(0)->mutable_g()->mutable_initializer(0),
               "sub/c.bin", 0);
  MakeExternal(g->mutable_sparse_initializer(0)->mutable_values(), "d.bin", 0);
  MakeExternal(model.mutable_training_info(0)->mutable_initialization()->mutable_initializer(0),
               "e.bin", 0);
  WriteFile(dir / "m.onnx", model.SerializeAsString());

  StatusOr<std::vector<fs::path>> files = ListExternalDataFiles(dir / "m.onnx");
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_THAT(*files, ElementsAre(dir / "b.bin", dir / "sub/c.bin", dir / "a.bin", dir / "d.bin",
                                  dir / "e.bin"));

  WriteFile(dir / "cut.onnx", model.SerializeAsString().substr(0, 100));
  EXPECT_EQ(ListExternalDataFiles(dir / "cut.onnx").status().code(), StatusCode::kInvalidModel);
}

}  // namespace
}  // namespace bertopt::io
