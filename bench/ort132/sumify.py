# bench/ort132_findings.md, for comparison only: the residual Sum with the dense bias folded in.
#   sumify.py in.onnx out.onnx
# Rewrites Add(bias, y) -> Add(., residual) -> LayerNormalization into Sum(y, bias, residual) -> LayerNormalization.
import sys, onnx
from onnx import helper as h
src, dst = sys.argv[1:3]
m = onnx.load(src)
g = m.graph
inits = {i.name for i in g.initializer}
prod = {o: n for n in g.node for o in n.output}
cons = {}
for n in g.node:
    for i in n.input: cons.setdefault(i, []).append(n)
drop = set(); repl = {}
for ln in g.node:
    if ln.op_type != "LayerNormalization": continue
    a1 = prod.get(ln.input[0])
    if not a1 or a1.op_type != "Add" or len(cons[a1.output[0]]) != 1: continue
    terms = []
    for i in a1.input:
        p = prod.get(i)
        if p is not None and p.op_type == "Add" and len(cons[p.output[0]]) == 1 and any(x in inits for x in p.input):
            terms += list(p.input); drop.add(id(p))
        else:
            terms.append(i)
    repl[id(a1)] = h.make_node("Sum", terms, list(a1.output), name=a1.name + "_sum")
nodes = []
for n in g.node:
    if id(n) in drop: continue
    nodes.append(repl.get(id(n), n))
del g.node[:]; g.node.extend(nodes)
print("sums:", len(repl), "bias adds folded:", len(drop))
onnx.save(m, dst, save_as_external_data=False)
