#pragma once
// Is a graph well formed, in the ways a byte flip or a wrong rewrite breaks it and ONNX Runtime
// refuses it: every node input is a graph input, an initializer or the output of a node (in any
// order: ONNX Runtime sorts the graph itself), no value has two producers, and the inputs
// of ops whose inputs must share one element type (Concat, Add, Where's branches, ...) do where
// their types are declared. Subgraph bodies (If / Loop) are checked for their own producers with
// the outer scope's values visible.
//
// Optimize uses ValidateModel (this and the ops' ONNX schemas) on the input, before and after shape
// inference (an invalid model is refused, naming the node), and on the result (a pass that broke
// the graph is named, and nothing is written).

#include <string>
#include <vector>

#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace bertopt::ir {

/// Ok, or kInvalidModel naming the node, the value and what is wrong with it.
Status ValidateGraph(const onnx::GraphProto& graph);

/// ValidateGraph, and every node (subgraphs included) against its ONNX schema at the model's
/// opset, as ONNX Runtime checks it when it creates a session: the number of inputs and outputs,
/// no empty name for an input the schema does not make optional, and for each type parameter
/// ("T") the known types bound to it equal and among those it allows. Known: declared types
/// (graph inputs and outputs, value_info), initializers, Constant outputs, and what the schemas
/// derive from them in graph order (Add of two FLOATs is FLOAT, Shape is INT64, Cast is its `to`),
/// which must agree with what is declared. Domains, opsets and ops that Debian's ONNX 1.12 has no
/// schema for (opsets above 17, com.microsoft, a model's local functions) are left to ONNX
/// Runtime. A clash otherwise found only once constant folding has typed a value would be
/// reported as the optimizer's fault.
Status ValidateModel(const onnx::ModelProto& model);

/// Makes a model that ONNX Runtime loads with a warning, but that gives one value twice, say what
/// ORT makes of it, the way ORT does (each rule is cited in validate.cc): of several initializers
/// or Constant nodes giving one name ORT keeps the last under 128 bytes and the first from 128
/// bytes on (a Constant counting after every initializer), and a Constant node writing a graph
/// input becomes that input's initializer. Returns one warning per change, and one per
/// initializer that is also a graph input at IR version 4 or later (a caller may feed it, so it is
/// no constant: Graph::ConstantTensor); kInvalidModel for duplicates ORT refuses (shapes or types
/// that differ). Leaves the rest of what ORT refuses (a value written by two nodes other than
/// Constants, ...) to ValidateGraph. Top-level graph only.
StatusOr<std::vector<std::string>> FollowOrtLoadRules(onnx::ModelProto& model);

}  // namespace bertopt::ir
