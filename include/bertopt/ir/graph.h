#pragma once
// A thin, mutable graph over onnx::ModelProto.
//
// The Graph takes the model's nodes out of the GraphProto into a stable list and indexes every
// value by name with its producer and its uses. Mutations (AddNode, EraseNode, SetInput,
// ReplaceAllUses, AddInitializer) keep those indexes true; they are the only way passes change the
// graph. Commit() writes the nodes back. Initializers stay inside the ModelProto (their payload is
// never copied); everything a pass does not touch survives a round trip unchanged.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace bertopt::ir {

inline constexpr std::string_view kOnnxDomain = "";
inline constexpr std::string_view kMsDomain = "com.microsoft";

class Graph;
class Node;

/// A consumer of a value: `node` reads it as input `index`. `index == kImplicitUse` means the value
/// is read from inside one of the node's subgraphs (If / Loop / Scan bodies).
struct Use {
  static constexpr int kImplicitUse = -1;
  Node* node;
  int index;
  bool operator==(const Use&) const = default;
};

class Value {
 public:
  explicit Value(std::string name) : name_(std::move(name)) {}

  const std::string& name() const { return name_; }
  /// The node that computes this value, or nullptr (graph input, initializer, dangling).
  Node* producer() const { return producer_; }
  int producer_output() const { return producer_output_; }
  const std::vector<Use>& uses() const { return uses_; }
  bool is_graph_input() const { return is_graph_input_; }
  bool is_graph_output() const { return is_graph_output_; }
  /// The initializer that holds this value, or nullptr.
  const onnx::TensorProto* initializer() const { return initializer_; }

 private:
  friend class Graph;
  std::string name_;
  Node* producer_ = nullptr;
  int producer_output_ = 0;
  std::vector<Use> uses_;
  bool is_graph_input_ = false;
  bool is_graph_output_ = false;
  onnx::TensorProto* initializer_ = nullptr;
};

class Node {
 public:
  const onnx::NodeProto& proto() const { return proto_; }
  const std::string& op_type() const { return proto_.op_type(); }
  const std::string& domain() const { return proto_.domain(); }
  const std::string& name() const { return proto_.name(); }
  /// A name for messages: the node name, else "<op_type> producing <first output>".
  std::string DisplayName() const;
  bool Is(std::string_view op_type, std::string_view domain = kOnnxDomain) const;

  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  int num_outputs() const { return static_cast<int>(outputs_.size()); }
  /// Input `i`, or nullptr when `i` is out of range or the input is an omitted optional ("").
  Value* input(int i) const { return i >= 0 && i < num_inputs() ? inputs_[i] : nullptr; }
  Value* output(int i) const { return i >= 0 && i < num_outputs() ? outputs_[i] : nullptr; }
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  /// Values read from inside this node's subgraphs that are defined outside them.
  const std::vector<Value*>& implicit_inputs() const { return implicit_inputs_; }

  const onnx::AttributeProto* Attr(std::string_view name) const;
  std::optional<int64_t> AttrInt(std::string_view name) const;
  std::optional<float> AttrFloat(std::string_view name) const;
  std::optional<std::string> AttrString(std::string_view name) const;
  std::optional<std::vector<int64_t>> AttrInts(std::string_view name) const;

  /// Attribute setters (replace an attribute of the same name).
  void SetAttr(std::string_view name, int64_t value);
  void SetAttr(std::string_view name, float value);
  void SetAttr(std::string_view name, const std::vector<int64_t>& value);
  void SetAttr(std::string_view name, std::string_view value);
  void RemoveAttr(std::string_view name);

  bool erased() const { return erased_; }

 private:
  friend class Graph;
  onnx::NodeProto proto_;  // inputs/outputs are kept in sync with inputs_/outputs_
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  std::vector<Value*> implicit_inputs_;
  bool erased_ = false;
};

class Graph {
 public:
  /// Takes the nodes out of `model->graph()` and indexes it. `model` must outlive the Graph; call
  /// Commit() to write the nodes back before saving. Fails on duplicate producers of one value.
  static StatusOr<std::unique_ptr<Graph>> Build(onnx::ModelProto* model);
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  /// Writes the node list back into the ModelProto, drops removed initializers (and graph inputs
  /// that only declared them), and prunes value_info entries of values that no longer exist when
  /// the graph was changed. The Graph stays usable afterwards.
  void Commit();

  onnx::ModelProto& model() { return *model_; }
  const onnx::ModelProto& model() const { return *model_; }
  /// True once any mutation happened since Build().
  bool modified() const { return modified_; }

  // --- Lookup ---------------------------------------------------------------------------------
  /// The live nodes in list order (a snapshot: safe to mutate the graph while iterating; skip
  /// nodes whose erased() became true).
  std::vector<Node*> Nodes() const;
  std::vector<Node*> NodesOfType(std::string_view op_type,
                                 std::string_view domain = kOnnxDomain) const;
  int NumNodes() const { return num_live_nodes_; }
  Value* FindValue(std::string_view name) const;
  std::vector<Value*> Inputs() const;   ///< graph inputs that are not initializers, in order
  std::vector<Value*> Outputs() const;  ///< graph outputs, in order

  /// Opset version the model imports for `domain` ("" = ai.onnx), or 0.
  int64_t OpsetVersion(std::string_view domain = kOnnxDomain) const;
  /// Adds an opset import when missing (e.g. com.microsoft 1).
  void EnsureOpsetImport(std::string_view domain, int64_t version);

  // --- Constants ------------------------------------------------------------------------------
  /// The tensor behind a constant value: a non-overridable initializer (not also a graph input) or
  /// the `value` attribute of a Constant node. nullptr when the value is not a constant.
  const onnx::TensorProto* ConstantTensor(const Value* value) const;
  /// Decoded elements of a constant of any numeric type (float16 included), as double.
  std::optional<std::vector<double>> ConstantAsDoubles(const Value* value) const;
  /// Decoded elements of an integer constant (int32 / int64 / uint8 / ...).
  std::optional<std::vector<int64_t>> ConstantAsInts(const Value* value) const;
  /// Ints an op takes as an attribute in older opsets and as a constant input in newer ones
  /// (Unsqueeze / Squeeze / Reduce* axes, Slice starts / ends / axes / steps): the attribute
  /// `attr` when present, else the constant input `input`; nullopt when neither.
  std::optional<std::vector<int64_t>> AttrOrInputInts(const Node& node, std::string_view attr,
                                                      int input) const;
  /// The single element of a constant of rank 0 or with exactly one element.
  std::optional<double> ScalarValue(const Value* value) const;
  /// Declared shape of a value (graph input/output, value_info, initializer or Constant); dims
  /// that are symbolic or unknown are -1. nullopt when the rank is unknown.
  std::optional<std::vector<int64_t>> Shape(const Value* value) const;
  /// Declared element type (onnx::TensorProto::DataType), or 0 when unknown.
  int32_t ElementType(const Value* value) const;
  /// Mutable initializer payload for in-place conversions (float16), or nullptr. A payload still
  /// in the mapped input file (ir::MappedRegion) is copied into raw_data first.
  onnx::TensorProto* MutableInitializer(const Value* value);

  // --- Mutation -------------------------------------------------------------------------------
  /// Appends a node. Empty input names are omitted optionals. Output values must not already have a
  /// live producer. Returns the new node.
  Node* AddNode(std::string_view op_type, const std::vector<std::string>& inputs,
                const std::vector<std::string>& outputs, std::string_view domain = kOnnxDomain,
                std::string_view name = {});
  /// Appends a node given as a whole proto (attributes included); the name is made unique.
  Node* AddNode(onnx::NodeProto proto);
  /// Removes the node: its input uses are dropped and its outputs lose their producer. Outputs
  /// still read by other nodes are left dangling: callers re-produce them (AddNode with the same
  /// output name) or ReplaceAllUses first.
  void EraseNode(Node* node);
  /// Points input `index` of `node` at `value` (nullptr for an omitted optional).
  void SetInput(Node* node, int index, Value* value);
  /// Makes every consumer of `from` read `to`. Graph outputs keep their names: if `from` is a graph
  /// output this returns an error, since renaming a model output would change its interface.
  Status ReplaceAllUses(Value* from, Value* to);
  /// Adds an initializer. It keeps `tensor.name()` when that names a value nothing produces (e.g.
  /// the output of a just-erased Constant), else gets `UniqueName(tensor.name())`. Returns its
  /// value.
  Value* AddInitializer(onnx::TensorProto tensor);
  /// Marks an initializer for removal (at Commit); the value must have no uses.
  void RemoveInitializer(Value* value);
  /// Changes the element type declared for a graph input (e.g. int64 -> int32).
  Status SetGraphInputType(Value* input, int32_t elem_type);
  /// A name not used by any value or node yet, derived from `base`.
  std::string UniqueName(std::string_view base);

  // --- Whole-graph operations ------------------------------------------------------------------
  /// Removes nodes none of whose outputs are used or graph outputs, repeatedly. Returns how many.
  int RemoveDeadNodes();
  /// Removes initializers that nothing reads. Returns how many.
  int RemoveUnusedInitializers();
  /// Orders the node list so each node follows the producers of its inputs (stable for nodes
  /// already in order). Fails on a cycle, naming one node on it.
  Status TopologicalSort();
  /// kInvalidModel naming the first live node that reads a value nothing gives it (no live
  /// producer, not a graph input, not an initializer, not read from an enclosing graph).
  Status CheckInputsDefined() const;

 private:
  explicit Graph(onnx::ModelProto* model) : model_(model) {}
  Status Index();
  void IndexValueInfos();
  Value* GetOrCreateValue(std::string_view name);
  void AttachNode(Node* node);
  void DetachUse(Value* value, Node* node, int index);
  void CollectImplicitInputs(Node* node);

  onnx::ModelProto* model_;
  std::vector<std::unique_ptr<Node>> nodes_;  // erased nodes stay until Commit
  int num_live_nodes_ = 0;
  std::unordered_map<std::string, std::unique_ptr<Value>> values_;
  std::unordered_set<std::string> node_names_;
  std::unordered_map<std::string, onnx::ValueInfoProto*>
      value_infos_;  // inputs, outputs, value_info
  std::unordered_set<std::string> removed_initializers_;
  uint64_t name_counter_ = 0;
  bool modified_ = false;
};

}  // namespace bertopt::ir
