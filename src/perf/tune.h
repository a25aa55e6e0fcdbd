#pragma once
// `optimize --tune`: build the fused-form variants of a model (the target table's choice, every
// fusion, each family left out, no fusion), measure them interleaved with the linked ONNX Runtime
// on the model's own shapes, and keep the fastest. The table in src/passes/targets.* says what is
// fastest on the machine bench/ ran on; --tune says it for this machine, this model and these
// shapes.

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "bertopt/optimize.h"
#include "bertopt/status.h"
#include "onnx/onnx_pb.h"

namespace bertopt::perf {

struct TuneOptions {
  int64_t batch_size = 1;
  int64_t sequence_length = 128;
  int intra_op_threads = 0;  ///< 0: every hardware thread
  int test_times = 20;       ///< timed runs per variant (interleaved)
  int warmup = 3;
};

struct TuneVariant {
  std::string name;  ///< e.g. "target table", "without SkipLayerNormalization"
  OptimizeOptions options;
  std::filesystem::path file;  ///< where the variant was saved for measuring (removed after)
  std::map<std::string, int> fused_ops;
  double p50_ms = 0;
  double min_ms = 0;
};

struct TuneReport {
  double original_p50_ms = 0;
  std::vector<TuneVariant> variants;  ///< in the order built
  int chosen = -1;                    ///< index into variants
};

/// The variants of `base` (deduplicated: two that disable the same families are one).
std::vector<TuneVariant> TuneVariants(const OptimizeOptions& base);

/// Builds every variant of `original` (read from `input`) into `work_dir`, measures them and the
/// original interleaved, and picks the lowest P50 (ties: the earlier variant). `err` gets one
/// progress line. The caller rebuilds the chosen variant (Optimize is deterministic) and writes it.
StatusOr<TuneReport> Tune(const std::filesystem::path& input, const onnx::ModelProto& original,
                          const OptimizeOptions& base, const TuneOptions& options,
                          const std::filesystem::path& work_dir, std::FILE* err);

}  // namespace bertopt::perf
