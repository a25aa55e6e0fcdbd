#include "unit/tiny_models.h"

#include <fstream>
#include <random>
#include <stdexcept>

namespace bertopt::testing {
namespace {

void SetShape(onnx::ValueInfoProto* info, int32_t type, const std::vector<Dim>& dims) {
  auto* tensor = info->mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(type);
  auto* shape = tensor->mutable_shape();
  for (const Dim& d : dims) {
    auto* dim = shape->add_dim();
    if (std::holds_alternative<int64_t>(d)) {
      dim->set_dim_value(std::get<int64_t>(d));
    } else {
      dim->set_dim_param(std::get<std::string>(d));
    }
  }
}

}  // namespace

ModelBuilder::ModelBuilder() {
  model_.set_ir_version(8);
  model_.set_producer_name("bertopt-tests");
  auto* onnx_opset = model_.add_opset_import();
  onnx_opset->set_domain("");
  onnx_opset->set_version(17);
  auto* ms_opset = model_.add_opset_import();
  ms_opset->set_domain("com.microsoft");
  ms_opset->set_version(1);
  model_.mutable_graph()->set_name("tiny");
}

ModelBuilder& ModelBuilder::Input(const std::string& name, int32_t type, std::vector<Dim> dims) {
  auto* info = graph().add_input();
  info->set_name(name);
  SetShape(info, type, dims);
  return *this;
}

ModelBuilder& ModelBuilder::Output(const std::string& name, int32_t type, std::vector<Dim> dims) {
  auto* info = graph().add_output();
  info->set_name(name);
  SetShape(info, type, dims);
  return *this;
}

ModelBuilder& ModelBuilder::Initializer(const std::string& name, int32_t type,
                                        std::vector<int64_t> dims,
                                        const std::vector<float>& values) {
  auto* t = graph().add_initializer();
  t->set_name(name);
  t->set_data_type(type);
  for (int64_t d : dims) t->add_dims(d);
  for (float v : values) {
    switch (type) {
      case onnx::TensorProto::FLOAT:
        t->add_float_data(v);
        break;
      case onnx::TensorProto::INT64:
        t->add_int64_data(static_cast<int64_t>(v));
        break;
      case onnx::TensorProto::INT32:
        t->add_int32_data(static_cast<int32_t>(v));
        break;
      default:
        throw std::invalid_argument("ModelBuilder::Initializer: unsupported type");
    }
  }
  return *this;
}

ModelBuilder& ModelBuilder::Node(const std::string& op, std::vector<std::string> inputs,
                                 std::vector<std::string> outputs,
                                 std::vector<std::pair<std::string, int64_t>> int_attrs,
                                 const std::string& domain) {
  auto* node = graph().add_node();
  node->set_op_type(op);
  node->set_domain(domain);
  node->set_name(op + "_" + std::to_string(graph().node_size()));
  for (const auto& in : inputs) node->add_input(in);
  for (const auto& out : outputs) node->add_output(out);
  for (const auto& [key, value] : int_attrs) {
    auto* attr = node->add_attribute();
    attr->set_name(key);
    attr->set_type(onnx::AttributeProto::INT);
    attr->set_i(value);
  }
  return *this;
}

std::filesystem::path ModelBuilder::Save(const std::filesystem::path& path) const {
  return SaveModel(model_, path);
}

std::filesystem::path SaveModel(const onnx::ModelProto& model, const std::filesystem::path& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out || !model.SerializeToOstream(&out)) {
    throw std::runtime_error("cannot write test model " + path.string());
  }
  return path;
}

std::filesystem::path MakeTempDir(const std::string& prefix) {
  static int counter = 0;
  std::random_device rd;
  const auto dir = std::filesystem::temp_directory_path() /
                   (prefix + "_" + std::to_string(rd()) + "_" + std::to_string(++counter));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

onnx::ModelProto AddModel(int32_t type) {
  ModelBuilder b;
  b.Input("a", type, {std::string("batch"), int64_t{3}})
      .Input("b", type, {std::string("batch"), int64_t{3}})
      .Node("Add", {"a", "b"}, {"y"})
      .Output("y", type, {std::string("batch"), int64_t{3}});
  return b.model();
}

onnx::ModelProto TinyBertModel(const TinyBertOptions& o) {
  std::mt19937 rng(o.weight_seed);
  // Weights need only be fixed per seed, not portable, so a std distribution is fine here.
  std::uniform_real_distribution<float> uniform(-1.0F, 1.0F);
  auto random_values = [&](int64_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = uniform(rng);
    return v;
  };
  const int32_t kFloat = onnx::TensorProto::FLOAT;
  const Dim batch = o.static_batch > 0 ? Dim(o.static_batch) : Dim(std::string("batch"));
  const Dim seq = o.static_sequence > 0 ? Dim(o.static_sequence) : Dim(std::string("sequence"));

  ModelBuilder b;
  b.Input(o.ids_name, o.id_type, {batch, seq});
  if (o.with_segment) b.Input(o.segment_name, o.id_type, {batch, seq});
  if (o.with_mask) b.Input(o.mask_name, o.id_type, {batch, seq});

  b.Initializer("word_embeddings", kFloat, {o.vocab, o.hidden}, random_values(o.vocab * o.hidden));
  // Drawn in a fixed order whatever the options, so variants share their weights.
  const std::vector<float> type_table = random_values(2 * o.hidden);
  b.Initializer("dense_weight", kFloat, {o.hidden, o.hidden}, random_values(o.hidden * o.hidden));
  if (o.with_segment) b.Initializer("token_type_embeddings", kFloat, {2, o.hidden}, type_table);
  if (o.with_mask || o.two_outputs) {
    b.Initializer("unsqueeze_axes", onnx::TensorProto::INT64, {1}, {-1.0F});
  }

  // int32 inputs are widened before the Gathers, as exporters do.
  std::string ids = o.ids_name;
  std::string segment = o.segment_name;
  if (o.id_type == onnx::TensorProto::INT32) {
    b.Node("Cast", {ids}, {"ids_int64"}, {{"to", onnx::TensorProto::INT64}});
    ids = "ids_int64";
    if (o.with_segment) {
      b.Node("Cast", {segment}, {"segment_int64"}, {{"to", onnx::TensorProto::INT64}});
      segment = "segment_int64";
    }
  }
  b.Node("Gather", {"word_embeddings", ids}, {"word_embedded"});
  std::string embedded = "word_embedded";
  if (o.with_segment) {
    b.Node("Gather", {"token_type_embeddings", segment}, {"type_embedded"});
    b.Node("Add", {"word_embedded", "type_embedded"}, {"embedding_sum"});
    embedded = "embedding_sum";
  }
  if (o.with_mask) {
    b.Node("Cast", {o.mask_name}, {"mask_float"}, {{"to", kFloat}});
    b.Node("Unsqueeze", {"mask_float", "unsqueeze_axes"}, {"mask_3d"});
    b.Node("Mul", {embedded, "mask_3d"}, {"masked"});
    embedded = "masked";
  }
  if (o.float16_output) {
    b.Node("MatMul", {embedded, "dense_weight"}, {"hidden_float"});
    b.Node("Cast", {"hidden_float"}, {"last_hidden_state"}, {{"to", onnx::TensorProto::FLOAT16}});
  } else {
    b.Node("MatMul", {embedded, "dense_weight"}, {"last_hidden_state"});
  }
  b.Output("last_hidden_state", o.float16_output ? onnx::TensorProto::FLOAT16 : kFloat,
           {batch, seq, o.hidden});
  if (o.two_outputs) {
    const std::string hidden = o.float16_output ? "hidden_float" : "last_hidden_state";
    b.Node("ReduceSum", {hidden, "unsqueeze_axes"}, {"summed"}, {{"keepdims", 0}});
    b.Output("summed", kFloat, {batch, seq});
  }
  return b.model();
}

onnx::ModelProto PerturbWeight(onnx::ModelProto model, const std::string& name, int64_t index,
                               float delta) {
  for (auto& init : *model.mutable_graph()->mutable_initializer()) {
    if (init.name() == name) {
      init.set_float_data(static_cast<int>(index),
                          init.float_data(static_cast<int>(index)) + delta);
      return model;
    }
  }
  throw std::invalid_argument("PerturbWeight: no initializer " + name);
}

}  // namespace bertopt::testing
