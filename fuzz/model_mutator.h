#pragma once
// A structure-aware mutator of ModelProtos for libFuzzer (Debian 12 has no libprotobuf-mutator).
// Each mutation keeps the bytes a valid protobuf and changes what bertopt's passes read: node op
// types, domains, wiring, attributes, tensor shapes, types and payloads, graph inputs and outputs,
// opsets. Most inputs it makes still load, so the fuzzer spends its time in the passes rather
// than in protobuf's parser (the byte-level target covers that).

#include <cstdint>
#include <random>

#include "onnx/onnx_pb.h"

namespace bertopt::fuzz {

using Rng = std::minstd_rand;

/// Applies one to four random mutations to `model`.
void MutateModel(onnx::ModelProto& model, Rng& rng);

/// Replaces a random run of `model`'s nodes with a random run of `other`'s (and takes the
/// initializers those nodes read), so that patterns from two exports meet.
void CrossOverModels(onnx::ModelProto& model, const onnx::ModelProto& other, Rng& rng);

}  // namespace bertopt::fuzz
