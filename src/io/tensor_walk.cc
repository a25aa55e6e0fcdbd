#include "io/tensor_walk.h"

namespace bertopt::io {
namespace {

using Visitor = std::function<Status(onnx::TensorProto*)>;

Status VisitGraph(onnx::GraphProto* graph, const Visitor& visit);

Status VisitSparse(onnx::SparseTensorProto* sparse, const Visitor& visit) {
  if (sparse->has_values()) RETURN_IF_ERROR(visit(sparse->mutable_values()));
  if (sparse->has_indices()) RETURN_IF_ERROR(visit(sparse->mutable_indices()));
  return Status::Ok();
}

Status VisitNodes(google::protobuf::RepeatedPtrField<onnx::NodeProto>* nodes,
                  const Visitor& visit) {
  for (onnx::NodeProto& node : *nodes) {
    for (onnx::AttributeProto& attr : *node.mutable_attribute()) {
      if (attr.has_t()) RETURN_IF_ERROR(visit(attr.mutable_t()));
      for (onnx::TensorProto& t : *attr.mutable_tensors()) RETURN_IF_ERROR(visit(&t));
      if (attr.has_sparse_tensor()) {
        RETURN_IF_ERROR(VisitSparse(attr.mutable_sparse_tensor(), visit));
      }
      for (onnx::SparseTensorProto& s : *attr.mutable_sparse_tensors()) {
        RETURN_IF_ERROR(VisitSparse(&s, visit));
      }
      if (attr.has_g()) RETURN_IF_ERROR(VisitGraph(attr.mutable_g(), visit));
      for (onnx::GraphProto& g : *attr.mutable_graphs()) RETURN_IF_ERROR(VisitGraph(&g, visit));
    }
  }
  return Status::Ok();
}

Status VisitGraph(onnx::GraphProto* graph, const Visitor& visit) {
  for (onnx::TensorProto& t : *graph->mutable_initializer()) RETURN_IF_ERROR(visit(&t));
  for (onnx::SparseTensorProto& s : *graph->mutable_sparse_initializer()) {
    RETURN_IF_ERROR(VisitSparse(&s, visit));
  }
  return VisitNodes(graph->mutable_node(), visit);
}

void CollectReachable(const google::protobuf::Descriptor* type,
                      std::unordered_set<const google::protobuf::Descriptor*>* seen) {
  if (!seen->insert(type).second) return;
  for (int i = 0; i < type->field_count(); ++i) {
    const google::protobuf::FieldDescriptor* field = type->field(i);
    if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE) {
      CollectReachable(field->message_type(), seen);
    }
  }
}

}  // namespace

Status ForEachTensor(onnx::ModelProto* model, const Visitor& visit) {
  if (model->has_graph()) RETURN_IF_ERROR(VisitGraph(model->mutable_graph(), visit));
  for (onnx::FunctionProto& f : *model->mutable_functions()) {
    RETURN_IF_ERROR(VisitNodes(f.mutable_node(), visit));
  }
  for (onnx::TrainingInfoProto& info : *model->mutable_training_info()) {
    if (info.has_initialization()) {
      RETURN_IF_ERROR(VisitGraph(info.mutable_initialization(), visit));
    }
    if (info.has_algorithm()) RETURN_IF_ERROR(VisitGraph(info.mutable_algorithm(), visit));
  }
  return Status::Ok();
}

TensorHolders::TensorHolders() {
  std::unordered_set<const google::protobuf::Descriptor*> reachable;
  CollectReachable(onnx::ModelProto::descriptor(), &reachable);
  // A fixed point rather than one depth-first pass: types form cycles (Graph -> Node ->
  // Attribute -> Graph), and a single pass can judge a type before its cycle partner is known.
  holders_.insert(onnx::TensorProto::descriptor());
  for (bool changed = true; changed;) {
    changed = false;
    for (const google::protobuf::Descriptor* type : reachable) {
      if (holders_.contains(type)) continue;
      for (int i = 0; i < type->field_count(); ++i) {
        const google::protobuf::FieldDescriptor* field = type->field(i);
        if (field->cpp_type() == google::protobuf::FieldDescriptor::CPPTYPE_MESSAGE &&
            holders_.contains(field->message_type())) {
          holders_.insert(type);
          changed = true;
          break;
        }
      }
    }
  }
}

std::string DescribeTensor(const onnx::TensorProto& tensor) {
  if (tensor.name().empty()) return "an unnamed tensor";
  return "'" + tensor.name() + "'";
}

}  // namespace bertopt::io
