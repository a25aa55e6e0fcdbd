// LoadModelMapped against LoadModel: the same model (saved, the same bytes), the same errors,
// while the large payloads stay in the mapped file until they are written.
#include <sys/stat.h>

#include <random>

#include "bertopt/io/model_io.h"
#include "bertopt/ir/graph.h"
#include "bertopt/ir/tensor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "io/tensor_walk.h"
#include "unit/testdata_util.h"

namespace bertopt::io {
namespace {

namespace fs = std::filesystem;
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

int CountMarked(onnx::ModelProto* model) {
  int marked = 0;
  Status s = ForEachTensor(model, [&](onnx::TensorProto* t) {
    marked += ir::HasMappedMark(*t) ? 1 : 0;
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok());
  return marked;
}

// What LoadModel then SaveModel writes for `input`, and what LoadModelMapped then SaveModel does.
struct BothSaves {
  std::string copied;
  std::string mapped;
};

BothSaves SaveBoth(const TempDir& dir, const fs::path& input, int64_t threshold,
                   const SaveOptions& options = {}) {
  BothSaves out;
  StatusOr<onnx::ModelProto> copied = LoadModel(input);
  EXPECT_TRUE(copied.ok()) << copied.status().ToString();
  StatusOr<MappedModel> mapped = LoadModelMapped(input, threshold);
  EXPECT_TRUE(mapped.ok()) << mapped.status().ToString();
  if (!copied.ok() || !mapped.ok()) return out;
  // Same file name in two folders: an external save writes the name into the model.
  fs::create_directories(dir / "copied");
  fs::create_directories(dir / "mapped");
  EXPECT_TRUE(SaveModel(*copied, dir / "copied/out.onnx", options).ok());
  Status saved = SaveModel(mapped->model(), dir / "mapped/out.onnx", options);
  EXPECT_TRUE(saved.ok()) << saved.ToString();
  out.copied = ReadFile(dir / "copied/out.onnx");
  out.mapped = ReadFile(dir / "mapped/out.onnx");
  if (options.external_data) {
    EXPECT_EQ(ReadFile(dir / "mapped/out.onnx.data"), ReadFile(dir / "copied/out.onnx.data"));
  }
  return out;
}

TEST(MappedLoadTest, SavesTheBytesTheCopyingLoaderSaves) {
  TempDir dir;
  const std::string input = Deterministic(testutil::MakeSampleModel());
  WriteFile(dir / "in.onnx", input);
  for (int64_t threshold : {1, 64, 1024, 4096, 1 << 20}) {
    SCOPED_TRACE(threshold);
    BothSaves saves = SaveBoth(dir, dir / "in.onnx", threshold);
    EXPECT_EQ(saves.mapped, saves.copied);
    EXPECT_EQ(saves.mapped, input);

    StatusOr<MappedModel> mapped = LoadModelMapped(dir / "in.onnx", threshold);
    ASSERT_TRUE(mapped.ok());
    EXPECT_EQ(SerializedSize(mapped->model()), static_cast<int64_t>(input.size()));
    StatusOr<std::string> bytes = SerializeModel(mapped->model());
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    EXPECT_EQ(*bytes, input);
  }
}

TEST(MappedLoadTest, LeavesLargeInitializersInTheFileAndDecodesThem) {
  TempDir dir;
  const onnx::ModelProto sample = testutil::MakeSampleModel();
  WriteFile(dir / "in.onnx", Deterministic(sample));
  StatusOr<MappedModel> mapped = LoadModelMapped(dir / "in.onnx", 1024);
  ASSERT_TRUE(mapped.ok());

  int expected = 0;
  for (const onnx::TensorProto& t : sample.graph().initializer()) {
    expected += t.raw_data().size() >= 1024 ? 1 : 0;
  }
  ASSERT_GE(expected, 2);  // else this test checks nothing
  // Only main-graph initializers are left in the file: the If's subgraph keeps its copy.
  EXPECT_EQ(CountMarked(&mapped->model()), expected);

  const auto& loaded = mapped->model().graph().initializer();
  for (int i = 0; i < sample.graph().initializer_size(); ++i) {
    const onnx::TensorProto& want = sample.graph().initializer(i);
    SCOPED_TRACE(want.name());
    EXPECT_EQ(ir::HasMappedMark(loaded[i]), want.raw_data().size() >= 1024);
    EXPECT_EQ(ir::PayloadBytes(loaded[i]), ir::PayloadBytes(want));
    EXPECT_EQ(ir::DecodeFloats(loaded[i]), ir::DecodeFloats(want));
  }
  // The payloads are not in memory: what protobuf would serialize is the file minus them.
  EXPECT_LT(mapped->model().ByteSizeLong() + 4096, sample.ByteSizeLong());
}

// Protobuf accepts fields in any order and repeated occurrences of singular ones (the last wins,
// messages merge); the mapped parser must read such files as protobuf does.
TEST(MappedLoadTest, UnusualFieldOrderReadsAsProtobufReadsIt) {
  TempDir dir;
  onnx::ModelProto sample = testutil::MakeSampleModel();
  const onnx::TensorProto small = testutil::FloatTensor("x", {4}, 7);
  const onnx::TensorProto large = testutil::FloatTensor("x", {512}, 8);

  auto field = [](int number, const std::string& payload) {
    std::string out;
    google::protobuf::io::StringOutputStream stream(&out);
    {
      google::protobuf::io::CodedOutputStream coded(&stream);
      coded.WriteTag(static_cast<uint32_t>(number << 3 | 2));
      coded.WriteVarint32(static_cast<uint32_t>(payload.size()));
      coded.WriteString(payload);
    }
    return out;
  };
  // Tensors whose raw_data comes twice (large then small, small then large) and after the fields
  // that normally follow it.
  onnx::TensorProto meta = large;
  meta.clear_raw_data();
  meta.set_doc_string("after raw_data");
  const std::string large_then_small =
      field(onnx::TensorProto::kRawDataFieldNumber, large.raw_data()) + Deterministic(meta) +
      field(onnx::TensorProto::kRawDataFieldNumber, small.raw_data());
  const std::string small_then_large =
      field(onnx::TensorProto::kRawDataFieldNumber, small.raw_data()) + Deterministic(meta) +
      field(onnx::TensorProto::kRawDataFieldNumber, large.raw_data());
  // The graph in two occurrences, the initializers before the nodes in the second.
  onnx::GraphProto first = sample.graph();
  first.clear_initializer();
  const std::string graph_b = field(onnx::GraphProto::kInitializerFieldNumber, large_then_small) +
                              field(onnx::GraphProto::kInitializerFieldNumber, small_then_large) +
                              field(onnx::GraphProto::kInitializerFieldNumber,
                                    Deterministic(sample.graph().initializer(1)));
  onnx::ModelProto head = sample;
  head.clear_graph();
  const std::string file = field(onnx::ModelProto::kGraphFieldNumber, Deterministic(first)) +
                           Deterministic(head) +
                           field(onnx::ModelProto::kGraphFieldNumber, graph_b);
  WriteFile(dir / "odd.onnx", file);

  for (int64_t threshold : {1, 64, 4096}) {
    SCOPED_TRACE(threshold);
    BothSaves saves = SaveBoth(dir, dir / "odd.onnx", threshold);
    EXPECT_EQ(saves.mapped, saves.copied);
    onnx::ModelProto protobufs;
    ASSERT_TRUE(protobufs.ParseFromString(file));
    EXPECT_EQ(saves.mapped, Deterministic(protobufs));
  }
}

// The save moves a mapped payload through a 1 MiB pipe: payloads of several pipefuls, landing at
// another offset within a page than in the input (what a pass that changes the graph causes),
// arrive whole and in order.
TEST(MappedLoadTest, PayloadsLargerThanThePipeArriveIntactAtAnyOffset) {
  TempDir dir;
  onnx::ModelProto model = testutil::MakeSampleModel();
  onnx::TensorProto* big = model.mutable_graph()->add_initializer();
  big->set_name("big");
  big->set_data_type(onnx::TensorProto::UINT8);
  const int64_t size = (int64_t{3} << 20) + 13;
  big->add_dims(size);
  std::mt19937 random(12);
  std::string bytes(static_cast<size_t>(size), '\0');
  for (char& c : bytes) c = static_cast<char>(random());
  big->set_raw_data(bytes);
  WriteFile(dir / "big.onnx", Deterministic(model));

  for (size_t shift : {0, 1, 100, 4095, 4096}) {
    SCOPED_TRACE(shift);
    StatusOr<MappedModel> mapped = LoadModelMapped(dir / "big.onnx", 1 << 20);
    ASSERT_TRUE(mapped.ok()) << mapped.status().ToString();
    EXPECT_EQ(CountMarked(&mapped->model()), 1);
    // doc_string is serialized before the graph: the payload moves by `shift` bytes or so.
    mapped->model().set_doc_string(std::string(shift, 'd'));
    ASSERT_TRUE(SaveModel(mapped->model(), dir / "out.onnx").ok());
    onnx::ModelProto expected = model;
    expected.set_doc_string(std::string(shift, 'd'));
    EXPECT_TRUE(ReadFile(dir / "out.onnx") == Deterministic(expected));
  }
}

TEST(MappedLoadTest, ExternalDataInputsAreMappedToo) {
  TempDir dir;
  const onnx::ModelProto sample = testutil::MakeSampleModel();
  SaveOptions external;
  external.external_data = true;
  ASSERT_TRUE(SaveModel(sample, dir / "in.onnx", external).ok());

  StatusOr<MappedModel> mapped = LoadModelMapped(dir / "in.onnx", 1024);
  ASSERT_TRUE(mapped.ok()) << mapped.status().ToString();
  // Every tensor the save moved out (some inside subgraphs and attributes) stays in its file.
  EXPECT_EQ(CountMarked(&mapped->model()), testutil::kSampleLargeTensors);

  BothSaves inline_saves = SaveBoth(dir, dir / "in.onnx", 1024);
  EXPECT_EQ(inline_saves.mapped, inline_saves.copied);
  EXPECT_EQ(inline_saves.mapped, Deterministic(sample));
  BothSaves external_saves = SaveBoth(dir, dir / "in.onnx", 1024, external);
  EXPECT_EQ(external_saves.mapped, external_saves.copied);
}

TEST(MappedLoadTest, RewritingAnInitializerInPlaceCopiesItFirst) {
  TempDir dir;
  onnx::ModelProto model = testutil::ParseModelText(R"(
    <ir_version: 8, opset_import: ["" : 14]>
    g (float[64, 64] x) => (float[64, 64] y) {
      y = Add(x, w)
    })");
  *model.mutable_graph()->add_initializer() = testutil::FloatTensor("w", {64, 64}, 3);
  const std::string input = Deterministic(model);
  WriteFile(dir / "in.onnx", input);

  StatusOr<MappedModel> mapped = LoadModelMapped(dir / "in.onnx", 1024);
  ASSERT_TRUE(mapped.ok());
  StatusOr<std::unique_ptr<ir::Graph>> graph = ir::Graph::Build(&mapped->model());
  ASSERT_TRUE(graph.ok());
  ir::Value* w = (*graph)->FindValue("w");
  ASSERT_TRUE(ir::HasMappedMark(*w->initializer()));
  onnx::TensorProto* writable = (*graph)->MutableInitializer(w);
  EXPECT_FALSE(ir::HasMappedMark(*writable));
  ASSERT_EQ(writable->raw_data(), model.graph().initializer(0).raw_data());
  (*writable->mutable_raw_data())[0] ^= 1;
  (*graph)->Commit();

  ASSERT_TRUE(SaveModel(mapped->model(), dir / "out.onnx").ok());
  onnx::ModelProto expected = model;
  (*expected.mutable_graph()->mutable_initializer(0)->mutable_raw_data())[0] ^= 1;
  EXPECT_EQ(ReadFile(dir / "out.onnx"), Deterministic(expected));
  EXPECT_EQ(ReadFile(dir / "in.onnx"), input);  // the mapping is read-only
}

TEST(MappedLoadTest, AMarkThatOutlivesItsFileReadsAsExternalDataAndIsNotSaved) {
  TempDir dir;
  WriteFile(dir / "in.onnx", Deterministic(testutil::MakeSampleModel()));
  onnx::ModelProto copy;
  {
    StatusOr<MappedModel> mapped = LoadModelMapped(dir / "in.onnx", 1024);
    ASSERT_TRUE(mapped.ok());
    copy = mapped->model();
    ASSERT_GT(CountMarked(&copy), 0);
  }
  const onnx::TensorProto* stale = nullptr;
  for (const onnx::TensorProto& t : copy.graph().initializer()) {
    if (ir::HasMappedMark(t)) stale = &t;
  }
  ASSERT_NE(stale, nullptr);
  EXPECT_FALSE(ir::FindMappedPayload(*stale));
  EXPECT_FALSE(ir::DecodeFloats(*stale));
  EXPECT_FALSE(ir::PayloadBytes(*stale));

  for (bool external : {false, true}) {
    SCOPED_TRACE(external);
    SaveOptions options;
    options.external_data = external;
    Status s = SaveModel(copy, dir / "out.onnx", options);
    EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("no longer open"));
    EXPECT_FALSE(fs::exists(dir / "out.onnx"));
    EXPECT_FALSE(fs::exists(dir / "out.onnx.data"));
  }
  EXPECT_EQ(SerializeModel(copy).status().code(), StatusCode::kFailedPrecondition);
}

TEST(MappedLoadTest, TheOutputMayReplaceTheMappedInput) {
  TempDir dir;
  const onnx::ModelProto sample = testutil::MakeSampleModel();
  WriteFile(dir / "m.onnx", Deterministic(sample));
  StatusOr<MappedModel> mapped = LoadModelMapped(dir / "m.onnx", 64);
  ASSERT_TRUE(mapped.ok());
  mapped->model().set_doc_string("saved over its input");

  SaveOptions options;
  options.protect = dir / "m.onnx";
  EXPECT_EQ(SaveModel(mapped->model(), dir / "m.onnx", options).code(),
            StatusCode::kFailedPrecondition);
  options.overwrite = true;
  // The rename leaves the old file alive under the mapping: the payloads are still the input's.
  ASSERT_TRUE(SaveModel(mapped->model(), dir / "m.onnx", options).ok());
  onnx::ModelProto expected = sample;
  expected.set_doc_string("saved over its input");
  EXPECT_EQ(ReadFile(dir / "m.onnx"), Deterministic(expected));
  // And again, now that the mapped file has no name.
  ASSERT_TRUE(SaveModel(mapped->model(), dir / "again.onnx").ok());
  EXPECT_EQ(ReadFile(dir / "again.onnx"), Deterministic(expected));
}

TEST(MappedLoadTest, AReservedKeyInTheFileIsRejected) {
  TempDir dir;
  onnx::ModelProto model = testutil::MakeSampleModel();
  onnx::StringStringEntryProto* entry =
      model.mutable_graph()->mutable_initializer(0)->add_external_data();
  entry->set_key(std::string(ir::kMappedRegionKey));
  entry->set_value("1");
  WriteFile(dir / "m.onnx", model.SerializeAsString());
  StatusOr<MappedModel> mapped = LoadModelMapped(dir / "m.onnx");
  ASSERT_FALSE(mapped.ok());
  EXPECT_EQ(mapped.status().code(), StatusCode::kInvalidModel);
  EXPECT_THAT(mapped.status().message(), HasSubstr("reserved external data key"));
}

// Every bad file gets the error LoadModel gives, word for word.
TEST(MappedLoadTest, BadInputsFailAsWithTheCopyingLoader) {
  TempDir dir;
  const std::string model = Deterministic(testutil::MakeSampleModel());
  std::vector<std::string> names = {"missing.onnx"};
  auto add = [&](const std::string& name, const std::string& bytes) {
    WriteFile(dir / name, bytes);
    names.push_back(name);
  };
  add("empty.onnx", "");
  add("text.onnx", "This is not a model.\n");
  for (size_t cut : {size_t{1}, size_t{40}, model.size() / 2, model.size() - 300}) {
    add("cut" + std::to_string(cut) + ".onnx", model.substr(0, cut));
  }
  std::mt19937 rng(99);
  for (int round = 0; round < 40; ++round) {
    std::string bytes(1 + rng() % 3000, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    // Some rounds start like a model, so the parser gets past the first field.
    if (round % 2 == 0) bytes = model.substr(0, rng() % 200) + bytes;
    add("random" + std::to_string(round) + ".onnx", bytes);
  }
  fs::create_directory(dir / "folder.onnx");
  names.push_back("folder.onnx");
  ASSERT_EQ(::mkfifo((dir / "pipe.onnx").c_str(), 0600), 0);
  names.push_back("pipe.onnx");

  // External data that is missing, short, outside the folder, or beside raw_data.
  onnx::ModelProto external = testutil::MakeSampleModel();
  onnx::TensorProto* emb = external.mutable_graph()->mutable_initializer(1);
  const std::string emb_bytes = emb->raw_data();
  emb->clear_raw_data();
  emb->set_data_location(onnx::TensorProto::EXTERNAL);
  auto entry = [&](onnx::TensorProto* t, const std::string& key, const std::string& value) {
    auto* e = t->add_external_data();
    e->set_key(key);
    e->set_value(value);
  };
  entry(emb, "location", "w.bin");
  entry(emb, "offset", "16");
  entry(emb, "length", std::to_string(emb_bytes.size()));
  add("ext_missing.onnx", external.SerializeAsString());
  WriteFile(dir / "w.bin", std::string(16, 'x') + emb_bytes.substr(10));
  add("ext_short.onnx", external.SerializeAsString());
  emb->mutable_external_data(0)->set_value("../w.bin");
  add("ext_escape.onnx", external.SerializeAsString());
  emb->mutable_external_data(0)->set_value("w.bin");
  emb->set_raw_data("both");
  add("ext_and_raw.onnx", external.SerializeAsString());

  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    StatusOr<onnx::ModelProto> copied = LoadModel(dir / name);
    for (int64_t threshold : {1, 4096}) {
      StatusOr<MappedModel> mapped = LoadModelMapped(dir / name, threshold);
      ASSERT_EQ(mapped.ok(), copied.ok());
      if (copied.ok()) {
        EXPECT_EQ(SerializeModel(mapped->model()).value(), Deterministic(*copied));
        continue;
      }
      EXPECT_EQ(mapped.status().code(), copied.status().code());
      EXPECT_EQ(mapped.status().message(), copied.status().message());
    }
  }
}

}  // namespace
}  // namespace bertopt::io
