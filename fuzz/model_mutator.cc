#include "model_mutator.h"

#include <algorithm>
#include <array>
#include <limits>
#include <string>
#include <unordered_set>
#include <vector>

namespace bertopt::fuzz {
namespace {

// The ops bertopt's fusions match and emit, and a few that break patterns.
constexpr std::array kOpTypes = {"Add",
                                 "Sub",
                                 "Mul",
                                 "Div",
                                 "MatMul",
                                 "Gemm",
                                 "Reshape",
                                 "Transpose",
                                 "Softmax",
                                 "LayerNormalization",
                                 "ReduceMean",
                                 "Pow",
                                 "Sqrt",
                                 "Erf",
                                 "Tanh",
                                 "Gather",
                                 "Shape",
                                 "Unsqueeze",
                                 "Squeeze",
                                 "Concat",
                                 "Slice",
                                 "Cast",
                                 "Constant",
                                 "ConstantOfShape",
                                 "Where",
                                 "Equal",
                                 "Expand",
                                 "Split",
                                 "Identity",
                                 "Range",
                                 "CumSum",
                                 "Neg",
                                 "If",
                                 "Attention",
                                 "SkipLayerNormalization",
                                 "EmbedLayerNormalization",
                                 "BiasGelu",
                                 "FastGelu",
                                 "Gelu",
                                 "Relu"};
constexpr std::array kDomains = {"", "com.microsoft", "ai.onnx", "ai.onnx.ml", "x"};
constexpr std::array kAttrNames = {
    "axis",   "axes",  "perm",  "epsilon",   "to",        "keepdims", "value",         "num_heads",
    "transB", "alpha", "split", "allowzero", "exclusive", "mode",     "unidirectional"};
constexpr std::array<int64_t, 16> kInts = {0,
                                           1,
                                           -1,
                                           2,
                                           3,
                                           -2,
                                           4,
                                           12,
                                           64,
                                           768,
                                           INT32_MAX,
                                           INT32_MIN,
                                           std::numeric_limits<int64_t>::max(),
                                           std::numeric_limits<int64_t>::min(),
                                           1LL << 40,
                                           7};
constexpr std::array<float, 8> kFloats = {
    0.0f, 1.0f, -1.0f, 1e-12f, 0.5f, 65504.0f, 1e30f, std::numeric_limits<float>::quiet_NaN()};

template <typename T>
size_t Pick(Rng& rng, const T& container) {
  return std::uniform_int_distribution<size_t>(0, container.size() - 1)(rng);
}
bool OneIn(Rng& rng, int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng) == 0; }

int64_t AnInt(Rng& rng) {
  if (OneIn(rng, 4)) return std::uniform_int_distribution<int64_t>(-8, 1024)(rng);
  return kInts[Pick(rng, kInts)];
}

// Every value name in the main graph, and "" (an omitted optional input).
std::vector<std::string> ValueNames(const onnx::GraphProto& g) {
  std::vector<std::string> names = {""};
  for (const auto& v : g.input()) names.push_back(v.name());
  for (const auto& t : g.initializer()) names.push_back(t.name());
  for (const auto& n : g.node()) {
    for (const auto& o : n.output()) names.push_back(o);
  }
  return names;
}

const std::string& AName(Rng& rng, const std::vector<std::string>& names) {
  return names[Pick(rng, names)];
}

void MutateDims(google::protobuf::RepeatedField<int64_t>* dims, Rng& rng) {
  switch (std::uniform_int_distribution<int>(0, 3)(rng)) {
    case 0:
      if (!dims->empty()) dims->Set(static_cast<int>(Pick(rng, *dims)), AnInt(rng));
      break;
    case 1:
      dims->Add(AnInt(rng));
      break;
    case 2:
      if (!dims->empty()) dims->RemoveLast();
      break;
    default:
      // A shape that swaps two dims: same element count, different layout.
      if (dims->size() >= 2) std::swap((*dims)[0], (*dims)[dims->size() - 1]);
  }
}

void MutateTensor(onnx::TensorProto& t, Rng& rng) {
  switch (std::uniform_int_distribution<int>(0, 6)(rng)) {
    case 0:
      MutateDims(t.mutable_dims(), rng);
      break;
    case 1:
      t.set_data_type(std::uniform_int_distribution<int>(0, 23)(rng));
      break;
    case 2: {  // shorter or longer payload than the shape says
      std::string* raw = t.mutable_raw_data();
      raw->resize(std::uniform_int_distribution<size_t>(0, raw->size() + 8)(rng));
      break;
    }
    case 3:  // a few payload bytes: NaN, infinities, huge indices
      if (!t.raw_data().empty()) {
        std::string* raw = t.mutable_raw_data();
        for (int i = 0; i < 4; ++i) (*raw)[Pick(rng, *raw)] = static_cast<char>(rng());
      }
      break;
    case 4:  // the payload in a typed field instead of raw_data
      t.clear_raw_data();
      for (int i = 0; i < std::uniform_int_distribution<int>(0, 4)(rng); ++i) {
        t.add_int64_data(AnInt(rng));
        t.add_float_data(kFloats[Pick(rng, kFloats)]);
        t.add_int32_data(static_cast<int32_t>(AnInt(rng)));
      }
      break;
    case 5: {  // external data, inside or outside the model's folder
      constexpr std::array kLocations = {"model.onnx", "missing.bin", "../x", "/etc/hostname",
                                         "optimized.onnx.data"};
      auto* location = t.add_external_data();
      location->set_key("location");
      location->set_value(kLocations[Pick(rng, kLocations)]);
      if (OneIn(rng, 2)) {
        auto* offset = t.add_external_data();
        offset->set_key(OneIn(rng, 2) ? "offset" : "length");
        offset->set_value(std::to_string(AnInt(rng)));
      }
      t.set_data_location(onnx::TensorProto::EXTERNAL);
      break;
    }
    default:
      t.clear_dims();
  }
}

void MutateAttribute(onnx::NodeProto& node, Rng& rng) {
  if (node.attribute_size() == 0 || OneIn(rng, 4)) {  // a new one, of any type
    auto* a = node.add_attribute();
    a->set_name(kAttrNames[Pick(rng, kAttrNames)]);
    switch (std::uniform_int_distribution<int>(0, 3)(rng)) {
      case 0:
        a->set_type(onnx::AttributeProto::INT);
        a->set_i(AnInt(rng));
        break;
      case 1:
        a->set_type(onnx::AttributeProto::FLOAT);
        a->set_f(kFloats[Pick(rng, kFloats)]);
        break;
      case 2:
        a->set_type(onnx::AttributeProto::INTS);
        for (int i = 0; i < std::uniform_int_distribution<int>(0, 4)(rng); ++i)
          a->add_ints(AnInt(rng));
        break;
      default:
        a->set_type(onnx::AttributeProto::STRING);
        a->set_s("NOTSET");
    }
    return;
  }
  auto& a = *node.mutable_attribute(static_cast<int>(Pick(rng, node.attribute())));
  switch (std::uniform_int_distribution<int>(0, 6)(rng)) {
    case 0:
      a.set_i(AnInt(rng));
      break;
    case 1:
      a.set_f(kFloats[Pick(rng, kFloats)]);
      break;
    case 2:
      if (a.ints_size() > 0 && OneIn(rng, 2)) {
        a.set_ints(static_cast<int>(Pick(rng, a.ints())), AnInt(rng));
      } else if (OneIn(rng, 2)) {
        a.add_ints(AnInt(rng));
      } else {
        a.clear_ints();
      }
      break;
    case 3:  // the declared type no longer matches the field set
      a.set_type(static_cast<onnx::AttributeProto::AttributeType>(
          std::uniform_int_distribution<int>(0, 14)(rng)));
      break;
    case 4:
      if (a.has_t()) {
        MutateTensor(*a.mutable_t(), rng);
      } else {
        a.set_name(kAttrNames[Pick(rng, kAttrNames)]);
      }
      break;
    case 5:
      node.mutable_attribute()->DeleteSubrange(static_cast<int>(Pick(rng, node.attribute())), 1);
      break;
    default:
      a.set_s(OneIn(rng, 2) ? "" : "tanh");
  }
}

void MutateValueInfo(onnx::ValueInfoProto& v, Rng& rng) {
  auto* tensor = v.mutable_type()->mutable_tensor_type();
  switch (std::uniform_int_distribution<int>(0, 3)(rng)) {
    case 0:
      tensor->set_elem_type(std::uniform_int_distribution<int>(0, 23)(rng));
      break;
    case 1:
      tensor->mutable_shape()->add_dim()->set_dim_value(AnInt(rng));
      break;
    case 2:
      if (tensor->shape().dim_size() > 0) {
        auto* dim = tensor->mutable_shape()->mutable_dim(
            static_cast<int>(Pick(rng, tensor->shape().dim())));
        if (OneIn(rng, 2)) {
          dim->set_dim_param(OneIn(rng, 2) ? "batch" : "seq");
        } else {
          dim->set_dim_value(AnInt(rng));
        }
      }
      break;
    default:
      v.clear_type();
  }
}

// One mutation of the main graph (or of the model's header).
void MutateOnce(onnx::ModelProto& model, Rng& rng) {
  onnx::GraphProto& g = *model.mutable_graph();
  const std::vector<std::string> names = ValueNames(g);
  const bool has_nodes = g.node_size() > 0;
  onnx::NodeProto* node =
      has_nodes ? g.mutable_node(static_cast<int>(Pick(rng, g.node()))) : nullptr;
  switch (std::uniform_int_distribution<int>(0, 15)(rng)) {
    case 0:
      if (node) {
        node->set_op_type(OneIn(rng, 2) ? kOpTypes[Pick(rng, kOpTypes)]
                                        : g.node(static_cast<int>(Pick(rng, g.node()))).op_type());
      }
      break;
    case 1:
      if (node) node->set_domain(kDomains[Pick(rng, kDomains)]);
      break;
    case 2:  // rewire an input
      if (node && node->input_size() > 0) {
        node->set_input(static_cast<int>(Pick(rng, node->input())), AName(rng, names));
      }
      break;
    case 3:
      if (node) node->add_input(AName(rng, names));
      break;
    case 4:
      if (node && node->input_size() > 0) {
        node->mutable_input()->DeleteSubrange(static_cast<int>(Pick(rng, node->input())), 1);
      }
      break;
    case 5:  // an output renamed: to a name already defined, or to a fresh one
      if (node && node->output_size() > 0) {
        node->set_output(static_cast<int>(Pick(rng, node->output())),
                         OneIn(rng, 2) ? AName(rng, names) : "fuzz_" + std::to_string(rng()));
      }
      break;
    case 6:
      if (has_nodes) g.mutable_node()->DeleteSubrange(static_cast<int>(Pick(rng, g.node())), 1);
      break;
    case 7:  // a copy, defining the same outputs twice or feeding a second consumer
      if (node) {
        onnx::NodeProto copy = *node;
        if (OneIn(rng, 2)) {
          for (auto& o : *copy.mutable_output()) o += "_dup";
        }
        *g.add_node() = std::move(copy);
        if (OneIn(rng, 2)) {
          g.mutable_node()->SwapElements(g.node_size() - 1, static_cast<int>(Pick(rng, g.node())));
        }
      }
      break;
    case 8:  // out of topological order
      if (g.node_size() >= 2) {
        g.mutable_node()->SwapElements(static_cast<int>(Pick(rng, g.node())),
                                       static_cast<int>(Pick(rng, g.node())));
      }
      break;
    case 9:
    case 10:
      if (node) MutateAttribute(*node, rng);
      break;
    case 11:
      if (g.initializer_size() > 0 && !OneIn(rng, 8)) {
        MutateTensor(*g.mutable_initializer(static_cast<int>(Pick(rng, g.initializer()))), rng);
      } else if (g.initializer_size() > 0) {
        g.mutable_initializer()->DeleteSubrange(static_cast<int>(Pick(rng, g.initializer())), 1);
      }
      break;
    case 12:
      if (g.input_size() > 0 && !OneIn(rng, 6)) {
        MutateValueInfo(*g.mutable_input(static_cast<int>(Pick(rng, g.input()))), rng);
      } else if (g.input_size() > 0) {
        g.mutable_input()->DeleteSubrange(static_cast<int>(Pick(rng, g.input())), 1);
      }
      break;
    case 13:
      if (g.output_size() > 0 && OneIn(rng, 2)) {
        MutateValueInfo(*g.mutable_output(static_cast<int>(Pick(rng, g.output()))), rng);
      } else if (OneIn(rng, 2) && g.output_size() > 0) {
        g.mutable_output()->DeleteSubrange(static_cast<int>(Pick(rng, g.output())), 1);
      } else {  // an intermediate becomes a graph output
        g.add_output()->set_name(AName(rng, names));
      }
      break;
    case 14:
      if (model.opset_import_size() > 0 && OneIn(rng, 2)) {
        model.mutable_opset_import(static_cast<int>(Pick(rng, model.opset_import())))
            ->set_version(std::uniform_int_distribution<int64_t>(-1, 25)(rng));
      } else {
        constexpr std::array kProducers = {"pytorch", "tf2onnx", "keras2onnx", ""};
        model.set_producer_name(kProducers[Pick(rng, kProducers)]);
      }
      break;
    default:
      if (!g.value_info().empty()) {
        MutateValueInfo(*g.mutable_value_info(static_cast<int>(Pick(rng, g.value_info()))), rng);
      }
  }
}

}  // namespace

void MutateModel(onnx::ModelProto& model, Rng& rng) {
  const int count = std::uniform_int_distribution<int>(1, 4)(rng);
  for (int i = 0; i < count; ++i) MutateOnce(model, rng);
}

void CrossOverModels(onnx::ModelProto& model, const onnx::ModelProto& other, Rng& rng) {
  const onnx::GraphProto& from = other.graph();
  onnx::GraphProto& to = *model.mutable_graph();
  if (from.node_size() == 0) return;
  const int begin = static_cast<int>(Pick(rng, from.node()));
  const int count =
      std::uniform_int_distribution<int>(1, std::min(from.node_size() - begin, 16))(rng);
  const int at = to.node_size() == 0 ? 0 : static_cast<int>(Pick(rng, to.node()));
  const int replaced = std::min(count, to.node_size() - at);
  if (replaced > 0) to.mutable_node()->DeleteSubrange(at, replaced);

  std::unordered_set<std::string> have;
  for (const auto& t : to.initializer()) have.insert(t.name());
  std::vector<onnx::NodeProto> taken(from.node().begin() + begin,
                                     from.node().begin() + begin + count);
  for (const auto& n : taken) {
    for (const auto& in : n.input()) {
      if (have.count(in)) continue;
      for (const auto& t : from.initializer()) {
        if (t.name() == in) {
          *to.add_initializer() = t;
          have.insert(in);
          break;
        }
      }
    }
  }
  // Appended, then rotated into place: RepeatedPtrField has no insert in the middle.
  for (auto& n : taken) *to.add_node() = std::move(n);
  std::rotate(to.mutable_node()->begin() + at, to.mutable_node()->end() - count,
              to.mutable_node()->end());
}

}  // namespace bertopt::fuzz
