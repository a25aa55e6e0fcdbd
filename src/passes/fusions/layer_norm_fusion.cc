// PLACEHOLDER: layer_norm fusion not written yet; it matches nothing.
#include "passes/fusions/fusions.h"

namespace bertopt::passes {
namespace {

class LayerNormFusion : public Fusion {
 public:
  std::string_view name() const override { return "layer_norm"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph&) const override { return {}; }
  FuseResult FuseAt(const PassOptions&, ir::Graph&, ir::Node*) const override {
    return FuseResult::Miss("not implemented");
  }
};

}  // namespace

std::unique_ptr<Pass> MakeLayerNormFusion() { return std::make_unique<LayerNormFusion>(); }

}  // namespace bertopt::passes
