#pragma once
// Which fused forms run fastest on which ONNX Runtime version (CPU), as measured by bench/: the one
// place the optimizer reads it from. A fused op is only worth emitting where the ORT that runs the
// model executes it faster than what it replaces, and kernels change between releases (ORT 1.30
// made LayerNormalization about 6x faster and SkipLayerNormalization about 3.7x slower than 1.29
// on the same CPU).

#include <string>
#include <string_view>
#include <vector>

#include "bertopt/status.h"

namespace bertopt::passes {

/// The forms to emit for one ORT version. true: fuse; false: leave the unfused form, which is
/// faster there.
struct TargetForms {
  std::string ort_version;  ///< "major.minor" of the measurement
  /// SkipLayerNormalization, rather than the residual Add + LayerNormalization.
  bool skip_layer_norm = true;
  /// With skip_layer_norm false: write the residual Add as Sum. ORT's own SkipLayerNormFusion
  /// (level extended and above) turns a residual Add + LayerNormalization back into
  /// SkipLayerNormalization; it does not match Sum, so only this keeps the unfused form when the
  /// model runs.
  bool residual_sum = false;
  /// Why, with the measurement it rests on (bench/RESULTS.md).
  std::string evidence;
};

/// Every measured version, oldest first.
const std::vector<TargetForms>& MeasuredTargets();

/// The forms for ORT `version` ("1.30", "1.30.0", "1.31.1"): those of the newest measured version
/// not newer than it (kernels are assumed unchanged until a release is measured); `note` says which
/// entry was used when it is not the exact version. kInvalidArgument for a version that does not
/// parse or is older than every measured one (naming the oldest).
StatusOr<TargetForms> TargetFor(std::string_view version, std::string* note = nullptr);

}  // namespace bertopt::passes
