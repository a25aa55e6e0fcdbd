#include "unit/testdata_util.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <system_error>

#include "gtest/gtest.h"
#include "onnx/defs/parser.h"

namespace bertopt::testutil {
namespace fs = std::filesystem;

onnx::ModelProto ParseModelText(const std::string& text) {
  onnx::ModelProto model;
  onnx::Status status = onnx::OnnxParser::Parse(model, text.c_str());
  EXPECT_TRUE(status.IsOK()) << status.ErrorMessage();
  return model;
}

onnx::TensorProto FloatTensor(const std::string& name, const std::vector<int64_t>& dims,
                              uint32_t seed) {
  onnx::TensorProto tensor;
  tensor.set_name(name);
  tensor.set_data_type(onnx::TensorProto::FLOAT);
  int64_t count = 1;
  for (int64_t d : dims) {
    tensor.add_dims(d);
    count *= d;
  }
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0F, 1.0F);
  std::vector<float> values(static_cast<size_t>(count));
  for (float& v : values) v = dist(rng);
  tensor.set_raw_data(values.data(), values.size() * sizeof(float));
  return tensor;
}

onnx::ModelProto MakeSampleModel() {
  onnx::ModelProto model = ParseModelText(R"onnx(
<
  ir_version: 8,
  opset_import: ["" : 13, "com.microsoft" : 1, "local" : 1],
  producer_name: "bertopt-test",
  doc_string: "a model for round trips"
>
sample (float[2, 16] x, bool cond) => (float[2, 16] y, float[16] z)
<float[16] b = {1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16}>
{
  h = MatMul(x, w)
  hb = Add(h, b)
  g = com.microsoft.FastGelu(hb)
  y = local.MyRelu(g)
  c = Constant()
  z = If(cond)
}
<
  domain: "local",
  opset_import: ["" : 13]
>
MyRelu (X) => (Y)
{
  Y = Relu(X)
}
)onnx");
  onnx::GraphProto* graph = model.mutable_graph();
  graph->set_doc_string("the main graph");
  graph->mutable_node(0)->set_doc_string("projection");
  graph->mutable_node(0)->set_name("proj");

  *graph->add_initializer() = FloatTensor("w", {16, 16}, 1);    // 1024 bytes
  *graph->add_initializer() = FloatTensor("emb", {64, 16}, 2);  // 4096 bytes
  *graph->mutable_value_info()->Add() = graph->input(0);
  graph->mutable_value_info(0)->set_name("h");

  onnx::AttributeProto* value = graph->mutable_node(4)->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  *value->mutable_t() = FloatTensor("", {512}, 3);  // 2048 bytes, unnamed

  for (const char* branch : {"then_branch", "else_branch"}) {
    onnx::AttributeProto* attr = graph->mutable_node(5)->add_attribute();
    attr->set_name(branch);
    attr->set_type(onnx::AttributeProto::GRAPH);
    onnx::GraphProto* sub = attr->mutable_g();
    sub->set_name(branch);
    onnx::NodeProto* id = sub->add_node();
    id->set_op_type("Identity");
    id->add_input(std::string(branch) + "_w");
    id->add_output(std::string(branch) + "_out");
    *sub->add_output() = graph->output(1);
    sub->mutable_output(0)->set_name(std::string(branch) + "_out");
    if (std::string(branch) == "then_branch") {
      *sub->add_initializer() = FloatTensor("then_branch_w", {512}, 4);  // 2048 bytes
    } else {
      *sub->add_initializer() = FloatTensor("else_branch_w", {16}, 5);  // 64 bytes
    }
  }

  onnx::SparseTensorProto* sparse = graph->add_sparse_initializer();
  *sparse->mutable_values() = FloatTensor("sparse", {256}, 6);  // 1024 bytes
  sparse->mutable_indices()->set_name("sparse_indices");
  sparse->mutable_indices()->set_data_type(onnx::TensorProto::INT64);
  sparse->mutable_indices()->add_dims(256);
  std::vector<int64_t> indices(256);
  for (int64_t i = 0; i < 256; ++i) indices[i] = i * 2;
  sparse->mutable_indices()->set_raw_data(indices.data(), indices.size() * sizeof(int64_t));
  sparse->add_dims(512);

  onnx::TrainingInfoProto* training = model.add_training_info();
  training->mutable_initialization()->set_name("init");
  *training->mutable_initialization()->add_initializer() = FloatTensor("seed", {256}, 7);

  for (auto [key, val] : {std::pair{"author", "bertopt"}, std::pair{"purpose", "io tests"}}) {
    onnx::StringStringEntryProto* entry = model.add_metadata_props();
    entry->set_key(key);
    entry->set_value(val);
  }
  model.mutable_functions(0)->set_doc_string("relu wrapped in a function");

  // Fields from a newer ONNX than ours: a lossless saver must keep them.
  onnx::ModelProto::GetReflection()->MutableUnknownFields(&model)->AddVarint(1000, 42);
  onnx::TensorProto* w = graph->mutable_initializer(1);
  onnx::TensorProto::GetReflection()->MutableUnknownFields(w)->AddLengthDelimited(999, "future");
  return model;
}

TempDir::TempDir() {
  static std::atomic<int> counter{0};
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name =
      info != nullptr ? std::string(info->test_suite_name()) + "." + info->name() : "no_test";
  path_ = fs::temp_directory_path() /
          ("bertopt_" + name + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
  fs::remove_all(path_);
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

std::vector<std::string> TempDir::List() const {
  std::vector<std::string> names;
  for (const fs::directory_entry& e : fs::directory_iterator(path_)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

void WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

}  // namespace bertopt::testutil
