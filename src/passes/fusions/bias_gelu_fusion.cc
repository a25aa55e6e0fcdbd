// PLACEHOLDER: bias_gelu fusion not written yet; it matches nothing.
#include "passes/fusions/fusions.h"

namespace bertopt::passes {
namespace {

class BiasGeluFusion : public Fusion {
 public:
  std::string_view name() const override { return "bias_gelu"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph&) const override { return {}; }
  FuseResult FuseAt(const PassOptions&, ir::Graph&, ir::Node*) const override {
    return FuseResult::Miss("not implemented");
  }
};

}  // namespace

std::unique_ptr<Pass> MakeBiasGeluFusion() { return std::make_unique<BiasGeluFusion>(); }

}  // namespace bertopt::passes
