#pragma once
// ONNX local functions (ModelProto.functions) inlined into the main graph before any pass runs,
// so that patterns see the ops a function call stands for (torch.onnx.export's
// export_modules_as_functions puts each encoder layer in one).
//
//   y = mydomain.Layer<eps = 1e-12>(x)      with   Layer(a) => (b) { t = Op<epsilon: ref eps>(a); b
//   = ... }
//   =>
//   Layer_0/t = Op<epsilon = 1e-12>(x); y = ...
//
// Per ONNX: the call's inputs and outputs bind the function's by position (a missing optional
// input is ""), every other value of the body gets a fresh name, attributes that reference the
// caller's (ref_attr_name) take the call's value or are left out when the call has none (the op's
// default). Calls inside inlined bodies are inlined in turn. A function is left as it is, with the
// reason, when its body has subgraphs, when it imports a domain at another version than the model,
// or when calls nest deeper than kMaxDepth (recursion); functions nothing calls any more are
// removed.
#include <string>
#include <vector>

#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace bertopt::passes {

struct InlineReport {
  int calls = 0;                     ///< call nodes replaced by their bodies
  std::vector<std::string> inlined;  ///< "domain.name" of each function inlined at least once
  std::vector<std::string> kept;     ///< functions left as calls, each with the reason
};

StatusOr<InlineReport> InlineLocalFunctions(onnx::ModelProto& model);

}  // namespace bertopt::passes
