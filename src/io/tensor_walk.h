#pragma once
// Finding every TensorProto in a model. Tensors hide in more places than graph initializers
// (Constant attributes, sparse tensors, subgraphs of If/Loop/Scan, functions, training info), and
// the loader and saver must see all of them or external data would silently stay behind.

#include <functional>
#include <unordered_set>

#include "bertopt/status.h"
#include "google/protobuf/descriptor.h"
#include "onnx/onnx_pb.h"

namespace bertopt::io {

/// Calls `visit` on every tensor of `model`, depth first, stopping at the first error.
[[nodiscard]] Status ForEachTensor(onnx::ModelProto* model,
                                   const std::function<Status(onnx::TensorProto*)>& visit);

/// The message types that are, or can contain at any depth, an onnx.TensorProto. Derived from the
/// descriptors rather than listed by hand, so a field added to onnx.proto is not missed.
class TensorHolders {
 public:
  TensorHolders();
  bool MayHoldTensors(const google::protobuf::Descriptor* type) const {
    return holders_.contains(type);
  }

 private:
  std::unordered_set<const google::protobuf::Descriptor*> holders_;
};

/// "'name'" for messages, or "an unnamed tensor": tensors inside attributes often have no name.
std::string DescribeTensor(const onnx::TensorProto& tensor);

}  // namespace bertopt::io
