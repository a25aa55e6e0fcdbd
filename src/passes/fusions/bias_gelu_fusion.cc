// Gelu of a bias Add -> com.microsoft BiasGelu.
//
//   a ─► MatMul(W) ─► Add(·, bias) ─► Gelu ─► y   =>   a ─► MatMul(W) ─► BiasGelu(·, bias) ─► y
//
// The Gelu is the com.microsoft one the gelu pass made earlier in the pipeline. The bias may be
// either Add input (torch 1.13 puts it first). It must be 1-D with as many elements as the last
// dimension of the other input, so that broadcasting in the Add and in BiasGelu agree; it may be a
// constant or a graph input declared with a fixed shape [F] (the same computation, fed at run
// time). The other input is usually a MatMul output but need not be: any value whose last
// dimension is known to be F gives the same result.
//
// Not handled: FastGelu(x) of a bias Add (the fast_gelu pass absorbs the bias itself), and a bias
// Add that something besides the Gelu reads (the sum would have to be kept anyway).
#include "passes/fusions/fusions.h"
#include "passes/fusions/gelu_common.h"

namespace bertopt::passes {
namespace {

using pattern::Any;
using pattern::Op;
using pattern::P;

class BiasGeluFusion : public Fusion {
 public:
  std::string_view name() const override { return "bias_gelu"; }

 protected:
  std::vector<ir::Node*> Anchors(const ir::Graph& graph) const override {
    return graph.NodesOfType("Gelu", ir::kMsDomain);
  }

  FuseResult FuseAt(const PassOptions&, ir::Graph& graph, ir::Node* gelu) const override {
    const P biased = Op("Add", {Any(), Any()}, "biased");
    pattern::MatchResult r =
        pattern::MatchPattern(graph, gelu, Op("Gelu", {biased}).Domain(ir::kMsDomain));
    if (!r.ok()) return FuseResult::Miss(r.reason());
    const pattern::Match& m = r.match();
    const gelu::BiasAdd bias = gelu::SplitBiasAdd(graph, *m.node("biased"));
    if (!bias.reason.empty()) return FuseResult::Miss(bias.reason);
    if (std::string why = gelu::FloatTypeReason(graph, *bias.input); !why.empty()) {
      return FuseResult::Miss(why + " (com.microsoft BiasGelu has no kernel for it)");
    }

    const std::string input = bias.input->name();
    const std::string bias_name = bias.bias->name();
    const std::string y = gelu->output(0)->name();
    const std::string node_name = FusedNodeName(*gelu, "BiasGelu");
    for (ir::Node* node : m.owned_nodes()) graph.EraseNode(node);
    graph.AddNode("BiasGelu", {input, bias_name}, {y}, ir::kMsDomain, node_name);
    return FuseResult::Fused();
  }
};

}  // namespace

std::unique_ptr<Pass> MakeBiasGeluFusion() { return std::make_unique<BiasGeluFusion>(); }

}  // namespace bertopt::passes
