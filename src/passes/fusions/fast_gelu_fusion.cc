// PLACEHOLDER: fast_gelu fusion not written yet; it matches nothing.
#include "passes/fusions/fusions.h"

namespace bertopt::passes {
namespace {

class FastGeluFusion : public Fusion {
 public:
  std::string_view name() const override { return "fast_gelu"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph&) const override { return {}; }
  FuseResult FuseAt(const PassOptions&, ir::Graph&, ir::Node*) const override {
    return FuseResult::Miss("not implemented");
  }
};

}  // namespace

std::unique_ptr<Pass> MakeFastGeluFusion() { return std::make_unique<FastGeluFusion>(); }

}  // namespace bertopt::passes
