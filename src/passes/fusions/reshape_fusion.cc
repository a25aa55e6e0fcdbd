// PLACEHOLDER: reshape fusion not written yet; it matches nothing.
#include "passes/fusions/fusions.h"

namespace bertopt::passes {
namespace {

class ReshapeFusion : public Fusion {
 public:
  std::string_view name() const override { return "reshape"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph&) const override { return {}; }
  FuseResult FuseAt(const PassOptions&, ir::Graph&, ir::Node*) const override {
    return FuseResult::Miss("not implemented");
  }
};

}  // namespace

std::unique_ptr<Pass> MakeReshapeFusion() { return std::make_unique<ReshapeFusion>(); }

}  // namespace bertopt::passes
