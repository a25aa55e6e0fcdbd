#include "bertopt/ir/validate.h"

#include <algorithm>
#include <climits>
#include <deque>
#include <functional>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "bertopt/ir/tensor.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "onnx/defs/schema.h"

namespace bertopt::ir {
namespace {

// Ops of the default domain whose listed inputs must all have one element type (their type
// constraint T covers every one of them).
bool SameTypeInputs(const onnx::NodeProto& node, std::vector<int>* inputs) {
  static const std::unordered_set<std::string_view> kAll = {
      "Concat",      "Add",  "Sub", "Mul",   "Div",     "Sum",  "Max",
      "Min",         "Mean", "Pow", "Equal", "Greater", "Less", "GreaterOrEqual",
      "LessOrEqual", "And",  "Or",  "Xor",   "MatMul"};
  if (!node.domain().empty() && node.domain() != "ai.onnx") return false;
  inputs->clear();
  if (node.op_type() == "Pow") {
    return false;  // T and T1 differ
  }
  if (node.op_type() == "Where") {
    *inputs = {1, 2};
    return true;
  }
  if (!kAll.count(node.op_type())) return false;
  for (int i = 0; i < node.input_size(); ++i) inputs->push_back(i);
  return true;
}

std::string NodeName(const onnx::NodeProto& n) {
  if (!n.name().empty()) return fmt::format("node '{}' ({})", n.name(), n.op_type());
  return fmt::format("the {} node producing '{}'", n.op_type(),
                     n.output_size() ? n.output(0) : std::string("nothing"));
}

// Refuses a node of SameTypeInputs whose inputs of one type have two. `type_of`: the name of a
// value's type, "" where it is not known.
Status CheckSameTypeInputs(const onnx::NodeProto& node,
                           const std::function<std::string(const std::string&)>& type_of) {
  std::vector<int> same;
  if (!SameTypeInputs(node, &same)) return Status::Ok();
  std::string first;
  std::string first_name;
  for (int i : same) {
    if (i >= node.input_size() || node.input(i).empty()) continue;
    const std::string type = type_of(node.input(i));
    if (type.empty()) continue;
    if (first.empty()) {
      first = type;
      first_name = node.input(i);
    } else if (type != first) {
      return InvalidModel(fmt::format("{} mixes element types: '{}' is {} and '{}' is {}",
                                      NodeName(node), first_name, first, node.input(i), type));
    }
  }
  return Status::Ok();
}

// A tensor whose inline payload is not what its shape and type say. ONNX's own shape inference,
// which Optimize runs first, copies raw_data into a buffer sized from it (onnx::ParseData) and
// writes past the end on such a tensor; ONNX Runtime refuses it too.
Status CheckTensor(const onnx::TensorProto& t, const std::string& what) {
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    if (d < 0) return InvalidModel(fmt::format("{} has a negative dimension ({})", what, d));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
      return InvalidModel(fmt::format("{} has more elements than an int64 can count", what));
    }
    n *= d;
  }
  const int size = ElementSize(t.data_type());
  if (!t.has_raw_data() || t.data_location() == onnx::TensorProto::EXTERNAL || size == 0) {
    return Status::Ok();
  }
  if (n > std::numeric_limits<int64_t>::max() / size ||
      static_cast<int64_t>(t.raw_data().size()) != n * size) {
    return InvalidModel(fmt::format(
        "{} has {} bytes of raw_data where its shape and type ({}) "
        "need {} elements of {} bytes",
        what, t.raw_data().size(), onnx::TensorProto::DataType_Name(t.data_type()), n, size));
  }
  return Status::Ok();
}

// ONNX's name for a tensor of an element type, as schemas list their allowed types
// ("tensor(float)"); "" for a type ONNX 1.12 does not name.
std::string TensorTypeString(int32_t elem_type) {
  using onnx::TensorProto;
  static const std::unordered_map<int32_t, std::string_view> kNames = {
      {TensorProto::FLOAT, "float"},
      {TensorProto::UINT8, "uint8"},
      {TensorProto::INT8, "int8"},
      {TensorProto::UINT16, "uint16"},
      {TensorProto::INT16, "int16"},
      {TensorProto::INT32, "int32"},
      {TensorProto::INT64, "int64"},
      {TensorProto::STRING, "string"},
      {TensorProto::BOOL, "bool"},
      {TensorProto::FLOAT16, "float16"},
      {TensorProto::DOUBLE, "double"},
      {TensorProto::UINT32, "uint32"},
      {TensorProto::UINT64, "uint64"},
      {TensorProto::COMPLEX64, "complex64"},
      {TensorProto::COMPLEX128, "complex128"},
      {TensorProto::BFLOAT16, "bfloat16"}};
  auto name = kNames.find(elem_type);
  return name == kNames.end() ? std::string() : fmt::format("tensor({})", name->second);
}

// What the schema check needs of the model: the opset of each domain it imports ("" for
// ai.onnx), and its local functions, whose calls no ONNX schema describes.
struct SchemaContext {
  std::unordered_map<std::string, int64_t> opsets;
  std::set<std::pair<std::string, std::string>> functions;  // (domain, name)
};

std::string_view SchemaDomain(const onnx::NodeProto& node) {
  return node.domain() == "ai.onnx" ? std::string_view() : std::string_view(node.domain());
}

// The schema to check a node against, and how far.
struct NodeSchema {
  const onnx::OpSchema* schema = nullptr;
  // The model's opset is one ONNX 1.12 knows: the schema is the one ONNX Runtime checks.
  // Otherwise (ai.onnx above opset 17, as in the opset-20 exports among the fuzzers' seeds,
  // where the open findings were) it is the latest one ONNX 1.12 has, an older version of the op:
  // its input counts and allowed types may since have grown (ReduceMean takes its axes as an input
  // from opset 18 on, DequantizeLinear's output follows its scale's type from 19), but what one
  // type parameter binds still has one type (Add's A and B; Unsqueeze's data and output), so
  // that alone is checked.
  bool exact = false;
};

NodeSchema SchemaOf(const onnx::NodeProto& node, const SchemaContext& context) {
  if (context.functions.count({node.domain(), node.op_type()})) return {};
  const std::string domain(SchemaDomain(node));
  auto opset = context.opsets.find(domain);
  if (opset == context.opsets.end() || opset->second < 1) return {};
  const auto& known = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  auto range = known.find(domain);
  if (range == known.end()) return {};
  const bool exact = opset->second <= range->second.second;
  if (!exact && !domain.empty()) return {};  // ai.onnx.ml and the rest: left to ORT
  const int version = static_cast<int>(std::min<int64_t>(opset->second, range->second.second));
  const onnx::OpSchema* schema = onnx::OpSchemaRegistry::Schema(node.op_type(), version, domain);
  // A deprecated op is refused by ONNX Runtime with its own message.
  if (!schema || schema->Deprecated()) return {};
  return {schema, exact};
}

std::string Arity(int min, int max) {
  if (min == max) return std::to_string(min);
  if (max == INT_MAX) return fmt::format("at least {}", min);
  return fmt::format("{} to {}", min, max);
}

// The formal parameter an actual input or output at `index` stands for: past the list, the last
// one if it is variadic.
const onnx::OpSchema::FormalParameter* FormalAt(
    const std::vector<onnx::OpSchema::FormalParameter>& formals, int index) {
  if (index < static_cast<int>(formals.size())) return &formals[index];
  if (!formals.empty() && formals.back().GetOption() == onnx::OpSchema::Variadic) {
    return &formals.back();
  }
  return nullptr;
}

bool Allows(const onnx::OpSchema::FormalParameter& formal, const std::string& type) {
  const auto& types = formal.GetTypes();
  return std::any_of(types.begin(), types.end(),
                     [&type](const std::string* allowed) { return *allowed == type; });
}

std::string AllowedTypes(const onnx::OpSchema::FormalParameter& formal) {
  std::vector<std::string> names;
  for (const std::string* t : formal.GetTypes()) names.push_back(*t);
  std::sort(names.begin(), names.end());
  return fmt::format("{}", fmt::join(names, ", "));
}

// One node against its schema, as ONNX Runtime's session creation checks it
// (onnx::checker::check_node, then Graph::InferAndVerifyTypeMatch). `types`: the type string of
// each value known so far; the node's outputs are added where the schema fixes them.
Status CheckNodeAgainstSchema(const onnx::NodeProto& node, const onnx::OpSchema& schema, bool exact,
                              std::unordered_map<std::string, std::string>& types) {
  const std::string op = fmt::format("{}-{}", schema.Name(), schema.SinceVersion());
  const int inputs = node.input_size();
  const int outputs = node.output_size();
  if (exact && (inputs < schema.min_input() || inputs > schema.max_input())) {
    return InvalidModel(fmt::format("{} has {} input{}, where {} takes {}", NodeName(node), inputs,
                                    inputs == 1 ? "" : "s", op,
                                    Arity(schema.min_input(), schema.max_input())));
  }
  if (exact && (outputs < schema.min_output() || outputs > schema.max_output())) {
    return InvalidModel(fmt::format("{} has {} output{}, where {} gives {}", NodeName(node),
                                    outputs, outputs == 1 ? "" : "s", op,
                                    Arity(schema.min_output(), schema.max_output())));
  }
  // Each type parameter ("T") and the first value bound to it: its type, and which one it was.
  std::unordered_map<std::string, std::pair<std::string, std::string>> bound;
  auto bind = [&](const onnx::OpSchema::FormalParameter& formal, const std::string& type,
                  const std::string& what) -> Status {
    if (exact && !Allows(formal, type)) {
      return InvalidModel(fmt::format("{}: {} is {}, which {} does not allow for its {} ({})",
                                      NodeName(node), what, type, op, formal.GetTypeStr(),
                                      AllowedTypes(formal)));
    }
    if (!formal.GetIsHomogeneous()) return Status::Ok();  // If's, Loop's outputs: each its own
    // A concrete type ("tensor(int64)") is no parameter: at a later opset it may have become one.
    const auto& params = schema.typeConstraintParams();
    if (!exact && std::none_of(params.begin(), params.end(), [&formal](const auto& p) {
          return p.type_param_str == formal.GetTypeStr();
        })) {
      return Status::Ok();
    }
    auto [first, inserted] = bound.try_emplace(formal.GetTypeStr(), type, what);
    if (!inserted && first->second.first != type) {
      return InvalidModel(fmt::format(
          "{}: {} is {} but {} is {}, and {} takes one type {} for both", NodeName(node),
          first->second.second, first->second.first, what, type, op, formal.GetTypeStr()));
    }
    return Status::Ok();
  };
  for (int i = 0; i < inputs; ++i) {
    const onnx::OpSchema::FormalParameter* formal = FormalAt(schema.inputs(), i);
    if (formal == nullptr) break;  // past the list: only where counts go unchecked (!exact)
    const std::string& name = node.input(i);
    if (name.empty()) {
      if (!exact || formal->GetOption() != onnx::OpSchema::Single) continue;
      return InvalidModel(fmt::format("{}: input {} has no name, but {} requires its '{}'",
                                      NodeName(node), i, op, formal->GetName()));
    }
    auto type = types.find(name);
    if (type == types.end()) continue;
    RETURN_IF_ERROR(bind(*formal, type->second, fmt::format("input {} ('{}')", i, name)));
  }
  for (int i = 0; i < outputs; ++i) {
    const onnx::OpSchema::FormalParameter* formal = FormalAt(schema.outputs(), i);
    if (formal == nullptr) break;
    const std::string& name = node.output(i);
    if (name.empty()) {
      if (!exact || formal->GetOption() != onnx::OpSchema::Single) continue;
      return InvalidModel(fmt::format("{}: output {} has no name, but {} requires its '{}'",
                                      NodeName(node), i, op, formal->GetName()));
    }
    // The type the schema gives this output: its parameter's, bound by an input, or the one type
    // the parameter allows (Shape's INT64), or a Cast's `to`.
    std::string derived;
    auto by_input = bound.find(formal->GetTypeStr());
    if (formal->GetIsHomogeneous() && by_input != bound.end()) {
      derived = by_input->second.first;
    } else if (exact && formal->GetTypes().size() == 1) {
      derived = **formal->GetTypes().begin();
    } else if (schema.Name() == "Cast") {
      for (const auto& attr : node.attribute()) {
        if (attr.name() == "to" && attr.type() == onnx::AttributeProto::INT &&
            attr.i() >= std::numeric_limits<int32_t>::min() &&
            attr.i() <= std::numeric_limits<int32_t>::max()) {
          derived = TensorTypeString(static_cast<int32_t>(attr.i()));
        }
      }
    }
    auto declared = types.find(name);
    if (declared == types.end()) {
      if (!derived.empty()) types[name] = derived;
      continue;
    }
    if (!derived.empty() && derived != declared->second) {
      return InvalidModel(fmt::format("{} makes output {} ('{}') {}, but the graph declares it {}",
                                      NodeName(node), i, name, derived, declared->second));
    }
    RETURN_IF_ERROR(bind(*formal, declared->second, fmt::format("output {} ('{}')", i, name)));
  }
  return Status::Ok();
}

// Every node of `g` against its schema, producers before their consumers so that what the schemas
// derive reaches the nodes reading it (a graph need not be sorted; nodes on a cycle, refused later,
// go last). `elem_types`: the element types Validator knows of the graph's values.
Status CheckSchemas(const onnx::GraphProto& g, const SchemaContext& context,
                    const std::unordered_map<std::string, int32_t>& elem_types) {
  std::unordered_map<std::string, std::string> types;
  for (const auto& [name, elem_type] : elem_types) {
    if (std::string t = TensorTypeString(elem_type); !t.empty()) types[name] = std::move(t);
  }
  for (const auto& out : g.output()) {
    const int32_t elem_type = out.type().tensor_type().elem_type();
    if (std::string t = TensorTypeString(elem_type); !t.empty()) types.try_emplace(out.name(), t);
  }
  const int n = g.node_size();
  std::unordered_map<std::string_view, int> producer;
  for (int i = 0; i < n; ++i) {
    for (const std::string& out : g.node(i).output()) {
      if (!out.empty()) producer.emplace(out, i);
    }
  }
  std::vector<int> waiting_for(n, 0);
  std::vector<std::vector<int>> consumers(n);
  for (int i = 0; i < n; ++i) {
    for (const std::string& in : g.node(i).input()) {
      auto p = producer.find(in);
      if (p == producer.end() || p->second == i) continue;
      consumers[p->second].push_back(i);
      ++waiting_for[i];
    }
  }
  std::deque<int> ready;
  for (int i = 0; i < n; ++i) {
    if (waiting_for[i] == 0) ready.push_back(i);
  }
  std::vector<bool> done(n, false);
  auto check = [&](int i) -> Status {
    done[i] = true;
    const onnx::NodeProto& node = g.node(i);
    const NodeSchema schema = SchemaOf(node, context);
    if (schema.schema)
      RETURN_IF_ERROR(CheckNodeAgainstSchema(node, *schema.schema, schema.exact, types));
    if (schema.exact) return Status::Ok();
    // Above the opsets ONNX 1.12 knows, inputs past the old schema's list go unchecked there: an
    // Add's third input, which ONNX Runtime refuses, is then one more input of one type.
    return CheckSameTypeInputs(node, [&types](const std::string& name) {
      auto t = types.find(name);
      return t == types.end() ? std::string() : t->second;
    });
  };
  while (!ready.empty()) {
    const int i = ready.front();
    ready.pop_front();
    RETURN_IF_ERROR(check(i));
    for (int c : consumers[i]) {
      if (--waiting_for[c] == 0) ready.push_back(c);
    }
  }
  for (int i = 0; i < n; ++i) {
    if (!done[i]) RETURN_IF_ERROR(check(i));
  }
  return Status::Ok();
}

class Validator {
 public:
  /// `schemas`: check each node against its ONNX schema too (null: not).
  explicit Validator(const SchemaContext* schemas = nullptr) : schemas_(schemas) {}

  // `outer`: names visible from enclosing graphs.
  Status Check(const onnx::GraphProto& g, const std::unordered_set<std::string>& outer) {
    std::unordered_set<std::string> known = outer;
    std::unordered_map<std::string, int32_t> types;
    auto declare = [&types](const onnx::ValueInfoProto& vi) {
      if (vi.type().has_tensor_type() && vi.type().tensor_type().elem_type() != 0) {
        types[vi.name()] = vi.type().tensor_type().elem_type();
      }
    };
    std::unordered_set<std::string> initializers;
    for (const auto& init : g.initializer()) {
      initializers.insert(init.name());
      types[init.name()] = init.data_type();
    }
    for (const auto& in : g.input()) {
      // ORT refuses a graph input declared twice ("Duplicate definition-site"), unless it is an
      // initializer too.
      if (!known.insert(in.name()).second && !initializers.count(in.name()) &&
          !outer.count(in.name())) {
        return InvalidModel(fmt::format("graph input '{}' is declared twice", in.name()));
      }
      declare(in);
    }
    known.insert(initializers.begin(), initializers.end());
    for (const auto& init : g.initializer()) {
      RETURN_IF_ERROR(CheckTensor(init, fmt::format("initializer '{}'", init.name())));
    }
    // ORT refuses two nodes with one name ("two nodes with same node name"); unnamed ones are fine.
    std::unordered_set<std::string> node_names;
    for (const auto& node : g.node()) {
      if (!node.name().empty() && !node_names.insert(node.name()).second) {
        return InvalidModel(fmt::format("two nodes are named '{}' (the second is {} writing '{}')",
                                        node.name(), node.op_type(),
                                        node.output_size() ? node.output(0) : std::string()));
      }
    }
    for (const auto& vi : g.value_info()) declare(vi);
    // A declared type (graph input or value_info) that contradicts an initializer's own: passes
    // read one or the other, so a converted graph would mix types nobody wrote.
    std::unordered_map<std::string_view, int32_t> initializer_types;
    for (const auto& init : g.initializer()) initializer_types[init.name()] = init.data_type();
    for (const auto* infos : {&g.input(), &g.value_info()}) {
      for (const auto& vi : *infos) {
        const int32_t declared = vi.type().tensor_type().elem_type();
        auto init = initializer_types.find(vi.name());
        if (declared == 0 || init == initializer_types.end() || init->second == declared) continue;
        return InvalidModel(fmt::format("initializer '{}' is {}, but the graph declares it {}",
                                        vi.name(), onnx::TensorProto::DataType_Name(init->second),
                                        onnx::TensorProto::DataType_Name(declared)));
      }
    }
    // Every output first: ONNX Runtime sorts a graph itself, so node order is not validity.
    std::unordered_set<std::string> produced;
    for (const auto& node : g.node()) {
      for (const std::string& out : node.output()) {
        if (out.empty()) continue;
        if (!produced.insert(out).second || (known.count(out) && !outer.count(out))) {
          return InvalidModel(
              fmt::format("{} writes '{}', which already has a value", NodeName(node), out));
        }
      }
    }
    known.insert(produced.begin(), produced.end());
    // A Constant's output has its tensor's type, declared or not (constant folding makes it an
    // initializer later, and a type clash found only then would look like the optimizer's fault).
    // "ai.onnx" is the default domain by its other name, and folding treats it so.
    for (const auto& node : g.node()) {
      const bool onnx_domain = node.domain().empty() || node.domain() == "ai.onnx";
      if (node.op_type() != "Constant" || !onnx_domain || node.output_size() != 1 ||
          types.count(node.output(0))) {
        continue;
      }
      for (const auto& attr : node.attribute()) {
        if (attr.name() == "value" && attr.has_t()) types[node.output(0)] = attr.t().data_type();
        if (attr.name() == "value_float" || attr.name() == "value_floats") {
          types[node.output(0)] = onnx::TensorProto::FLOAT;
        }
        if (attr.name() == "value_int" || attr.name() == "value_ints") {
          types[node.output(0)] = onnx::TensorProto::INT64;
        }
      }
    }
    for (const auto& node : g.node()) {
      for (const std::string& in : node.input()) {
        if (in.empty() || known.count(in)) continue;
        return InvalidModel(fmt::format(
            "{} reads '{}', which is not a graph input, an initializer, or the output of a node",
            NodeName(node), in));
      }
      RETURN_IF_ERROR(CheckSameTypeInputs(node, [&types](const std::string& name) {
        auto t = types.find(name);
        return t == types.end() ? std::string() : onnx::TensorProto::DataType_Name(t->second);
      }));
      for (const auto& attr : node.attribute()) {
        if (attr.has_t()) {
          RETURN_IF_ERROR(CheckTensor(
              attr.t(), fmt::format("attribute '{}' of {}", attr.name(), NodeName(node))));
        }
        for (const auto& t : attr.tensors()) {
          RETURN_IF_ERROR(
              CheckTensor(t, fmt::format("attribute '{}' of {}", attr.name(), NodeName(node))));
        }
        if (attr.has_g()) RETURN_IF_ERROR(Check(attr.g(), known));
        for (const auto& sub : attr.graphs()) RETURN_IF_ERROR(Check(sub, known));
      }
    }
    for (const auto& out : g.output()) {
      if (!known.count(out.name())) {
        return InvalidModel(
            fmt::format("graph output '{}' is computed by no node and is no input", out.name()));
      }
    }
    if (schemas_) RETURN_IF_ERROR(CheckSchemas(g, *schemas_, types));
    return Status::Ok();
  }

 private:
  const SchemaContext* schemas_;
};

bool IsConstantNode(const onnx::NodeProto& node) {
  return node.op_type() == "Constant" && (node.domain().empty() || node.domain() == "ai.onnx") &&
         node.input_size() == 0 && node.output_size() == 1;
}

const onnx::TensorProto* ConstantValue(const onnx::NodeProto& node) {
  for (const auto& a : node.attribute()) {
    if (a.name() == "value" && a.has_t()) return &a.t();
  }
  return nullptr;
}

// Bytes of a tensor's elements (0 for strings and types we do not size).
int64_t DataBytes(const onnx::TensorProto& t) {
  // Negative or overflowing dims (a malformed tensor, found by the fuzzer) count as huge.
  constexpr int64_t kHuge = std::numeric_limits<int64_t>::max() / 16;
  int64_t elements = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || (d > 0 && elements > kHuge / d)) return kHuge;
    elements *= d;
  }
  switch (t.data_type()) {
    case onnx::TensorProto::DOUBLE:
    case onnx::TensorProto::INT64:
    case onnx::TensorProto::UINT64:
      return elements * 8;
    case onnx::TensorProto::FLOAT:
    case onnx::TensorProto::INT32:
    case onnx::TensorProto::UINT32:
      return elements * 4;
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16:
    case onnx::TensorProto::INT16:
    case onnx::TensorProto::UINT16:
      return elements * 2;
    case onnx::TensorProto::INT8:
    case onnx::TensorProto::UINT8:
    case onnx::TensorProto::BOOL:
      return elements;
    default:
      return 0;
  }
}

// One tensor given for a name: an initializer (index into the list) or a Constant node's value.
struct Definition {
  const onnx::TensorProto* tensor;
  int initializer = -1;
  int node = -1;
};

}  // namespace

// ORT's rules (Graph's constructor in onnxruntime/core/graph/graph.cc), as the linked ORT 1.29
// and PyPI's 1.32 behave; tests/unit/ort_load_rules_test.cc asks the linked one each time:
// - Constant nodes become initializers, after the graph's own ones. A name given again logs
//   "Duplicate initializer (dense, sparse or ConstantNode): '<name>' the model will use the latest
//   encountered initializer", but that holds only for tensors under 128 bytes: ORT moves larger
//   ones out of the proto as it meets them (kSmallTensorExternalDataThreshold), and the first one
//   moved stays. So: under 128 bytes the last one wins, from 128 bytes on the first (initializers
//   in list order, then Constants in node order). Duplicates of different shape or type are
//   refused ("Shape of initializer ... does not match"), and so are they here.
// - A Constant node writing a graph input is such an initializer too: the input's default value.
// - An initializer that is also a graph input "will not be treated as constant value/weight" from
//   IR version 4 on (the caller may feed it); below IR 4 every initializer had to be listed as an
//   input, and ORT treats it as a constant (feeding it is refused).
// - A name written by a node other than a Constant and by anything else is refused ("Duplicate
//   definition of name"): left alone here, ValidateGraph names the node.
StatusOr<std::vector<std::string>> FollowOrtLoadRules(onnx::ModelProto& model) {
  std::vector<std::string> warnings;
  onnx::GraphProto* g = model.mutable_graph();
  std::unordered_set<std::string> written_by_other;  // outputs of nodes that are not Constants
  for (const auto& node : g->node()) {
    if (!IsConstantNode(node) || !ConstantValue(node)) {
      written_by_other.insert(node.output().begin(), node.output().end());
    }
  }
  std::unordered_set<std::string> inputs;
  for (const auto& in : g->input()) inputs.insert(in.name());

  // Every definition of each name, in the order ORT meets them.
  std::unordered_map<std::string, std::vector<Definition>> defs;
  std::vector<std::string> order;
  auto add = [&](const std::string& name, Definition d) {
    auto& list = defs[name];
    if (list.empty()) order.push_back(name);
    list.push_back(d);
  };
  for (int i = 0; i < g->initializer_size(); ++i) {
    add(g->initializer(i).name(), {&g->initializer(i), i, -1});
  }
  for (int i = 0; i < g->node_size(); ++i) {
    const auto& node = g->node(i);
    if (IsConstantNode(node) && ConstantValue(node) && !written_by_other.count(node.output(0))) {
      add(node.output(0), {ConstantValue(node), -1, i});
    }
  }

  std::unordered_set<int> drop_initializers;
  std::unordered_set<int> drop_nodes;
  std::vector<onnx::TensorProto> from_constants;  // Constants writing graph inputs
  auto describe = [&](const Definition& d) {
    return d.node >= 0 ? NodeName(g->node(d.node))
                       : fmt::format("initializer {} of the list", d.initializer);
  };
  for (const std::string& name : order) {
    const std::vector<Definition>& list = defs.at(name);
    const Definition& first = list.front();
    for (const Definition& d : list) {
      const bool same_dims = std::equal(d.tensor->dims().begin(), d.tensor->dims().end(),
                                        first.tensor->dims().begin(), first.tensor->dims().end());
      if (d.tensor->data_type() != first.tensor->data_type() || !same_dims) {
        return InvalidModel(fmt::format(
            "'{}' is given twice with different shapes or types ({} and {}), which ONNX Runtime "
            "refuses",
            name, describe(first), describe(d)));
      }
    }
    const bool large = DataBytes(*first.tensor) >= 128;
    const Definition& kept = large ? list.front() : list.back();
    if (list.size() > 1) {
      warnings.push_back(fmt::format(
          "'{}' is given {} times; the {} ({}) is used, as ONNX Runtime does for a tensor {} "
          "128 bytes",
          name, list.size(), large ? "first" : "last", describe(kept),
          large ? "of at least" : "under"));
    }
    for (const Definition& d : list) {
      if (&d == &kept) continue;
      if (d.node >= 0) drop_nodes.insert(d.node);
      if (d.initializer >= 0) drop_initializers.insert(d.initializer);
    }
    if (kept.node >= 0 && inputs.count(name)) {
      warnings.push_back(fmt::format(
          "{} writes graph input '{}': it is that input's initializer (its default value), as "
          "ONNX Runtime reads it",
          NodeName(g->node(kept.node)), name));
      from_constants.push_back(*kept.tensor);
      from_constants.back().set_name(name);
      drop_nodes.insert(kept.node);
    }
  }
  auto* nodes = g->mutable_node();
  int kept_nodes = 0;
  for (int i = 0; i < nodes->size(); ++i) {
    if (drop_nodes.count(i)) continue;
    if (kept_nodes != i) nodes->SwapElements(kept_nodes, i);
    ++kept_nodes;
  }
  while (nodes->size() > kept_nodes) nodes->RemoveLast();
  auto* inits = g->mutable_initializer();
  int kept_inits = 0;
  for (int i = 0; i < inits->size(); ++i) {
    if (drop_initializers.count(i)) continue;
    if (kept_inits != i) inits->SwapElements(kept_inits, i);
    ++kept_inits;
  }
  while (inits->size() > kept_inits) inits->RemoveLast();
  for (auto& t : from_constants) *g->add_initializer() = std::move(t);

  // value_info giving one name twice: ORT types the value by the last entry (found by the byte
  // fuzzer: INT64 then BOOL for a Cast to BOOL, where the passes kept the first and the output
  // check failed). Only the last stays.
  std::unordered_map<std::string, int> last_info;
  for (int i = 0; i < g->value_info_size(); ++i) last_info[g->value_info(i).name()] = i;
  if (static_cast<int>(last_info.size()) < g->value_info_size()) {
    auto* infos = g->mutable_value_info();
    int kept_infos = 0;
    for (int i = 0; i < infos->size(); ++i) {
      if (last_info.at(infos->Get(i).name()) != i) {
        warnings.push_back(fmt::format(
            "value_info declares '{}' more than once; the last declaration is used, as ONNX "
            "Runtime does",
            infos->Get(i).name()));
        continue;
      }
      if (kept_infos != i) infos->SwapElements(kept_infos, i);
      ++kept_infos;
    }
    while (infos->size() > kept_infos) infos->RemoveLast();
  }

  if (model.ir_version() >= 4) {
    for (const auto& init : g->initializer()) {
      if (!inputs.count(init.name())) continue;
      warnings.push_back(fmt::format(
          "initializer '{}' is also a graph input (IR version {}): a caller may feed another "
          "value, so it is not a constant to the fusions, as in ONNX Runtime",
          init.name(), model.ir_version()));
    }
  }
  return warnings;
}

Status ValidateGraph(const onnx::GraphProto& graph) { return Validator().Check(graph, {}); }

Status ValidateModel(const onnx::ModelProto& model) {
  SchemaContext context;
  for (const auto& opset : model.opset_import()) {
    context.opsets.try_emplace(opset.domain() == "ai.onnx" ? "" : opset.domain(), opset.version());
  }
  for (const auto& f : model.functions()) context.functions.emplace(f.domain(), f.name());
  return Validator(&context).Check(model.graph(), {});
}

}  // namespace bertopt::ir
