#!/usr/bin/env python3
"""Print the node-by-node layout of a torch 2.x export in this folder (used to write LAYOUT.md).

    python dump_layout.py MODEL.onnx [--section all|embed|mask|layer0|layer1|head] [--counts]
                                     [--show-constants]

Needs only `onnx` (any version that can parse IR 10). Listing format:
`index [section] Op(inputs) {attributes} -> outputs`.

- An initializer input is `name<I:dtype[shape]>`, a `Constant` node's output is `<C:dtype[shape]>`;
  both with `=[values]` when they have at most 8 elements. `Constant` nodes are not listed
  (their values are printed where they are used) unless --show-constants is given.
- TorchScript names are shortened: `/model/` is dropped, `_output_0` is dropped, the encoder
  scope `bert/encoder/layer.N/` (and the other classes' equivalents) is written `LN/`, e.g.
  `L0/attention/self/Reshape`; initializer names drop `model.`.
- Sections are found by data flow, never by names: a node's level is the largest number of
  LayerNormalization ops on any path from a graph input to it (a decomposed LN at opset < 17
  counts at its final `Add(Mul(·, gamma), beta)`; a `Shape` output restarts at level 0). Level-0
  nodes that feed the first LN are `embed`, level 2k+1..2k+2 is `layerk`, the rest `head`. Other
  level-0 nodes (mask and shape arithmetic) are `mask`, unless all their consumers are in one
  layer (or the head): then they are listed there. ALBERT's embedding projection (after the
  embedding LN) is listed at the top of layer0.
"""
import argparse
import collections
import re
import signal

import numpy as np
import onnx
from onnx import numpy_helper

SCOPES = [
    (re.compile(r"^/model/"), ""),
    (re.compile(r"(bert|roberta|electra|distilbert/transformer|albert)/encoder/layer\.(\d+)/"), r"L\2/"),
    (re.compile(r"distilbert/transformer/layer\.(\d+)/"), r"L\1/"),
    (re.compile(r"albert/encoder/albert_layer_groups\.0/albert_layers\.0/"), "Lshared/"),
    (re.compile(r"_output_0$"), ""),
    (re.compile(r"^model\."), ""),
]


def short(name):
    for rx, rep in SCOPES:
        name = rx.sub(rep, name)
    return name


def fmt_array(a, tag):
    s = f"<{tag}:{a.dtype}{list(a.shape)}"
    if a.size <= 8:
        vals = a.flatten().tolist()
        s += "=" + str([float(f"{v:.9g}") if isinstance(v, float) else v for v in vals])
    return s + ">"


def attr_str(a):
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, onnx.TensorProto):
        return f"{a.name}={fmt_array(numpy_helper.to_array(v), 'T')}"
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, float):
        v = float(f"{v:.9g}")
    return f"{a.name}={v}"


def is_decomposed_ln_end(node, producers, inits):
    """Add(Mul(Div(..), gamma), beta) with 1-D gamma/beta initializers (TorchScript opset < 17)."""
    if node.op_type != "Add":
        return False
    for i, j in ((0, 1), (1, 0)):
        if node.input[j] in inits and node.input[i] in producers:
            mul = producers[node.input[i]]
            if mul.op_type == "Mul" and any(x in inits for x in mul.input):
                other = [x for x in mul.input if x not in inits]
                if other and other[0] in producers and producers[other[0]].op_type == "Div":
                    return True
    return False


def sections(g, inits):
    producers = {o: n for n in g.node for o in n.output}
    ln = [n.op_type == "LayerNormalization" or is_decomposed_ln_end(n, producers, inits) for n in g.node]
    level = {}
    lvl_of_node = []
    for n, is_ln in zip(g.node, ln):
        lv = max([level.get(x, 0) for x in n.input if x] or [0])
        lvl_of_node.append(lv)
        for o in n.output:
            # a shape does not carry the data: Shape(x) starts again at level 0
            level[o] = 0 if n.op_type == "Shape" else lv + (1 if is_ln else 0)
    # ancestors of the first LN
    first = next((i for i, f in enumerate(ln) if f), None)
    feeds_first = set()
    if first is not None:
        stack = [first]
        index_of = {o: i for i, n in enumerate(g.node) for o in n.output}
        while stack:
            i = stack.pop()
            if i in feeds_first:
                continue
            feeds_first.add(i)
            stack.extend(index_of[x] for x in g.node[i].input if x in index_of)
    n_ln = sum(ln)
    n_layers = (n_ln - 1) // 2
    out = []
    for i, lv in enumerate(lvl_of_node):
        if lv == 0:
            out.append("embed" if i in feeds_first else "mask")
        elif lv <= 2 * n_layers:
            out.append(f"layer{(lv - 1) // 2}")
        else:
            out.append("head")
    # level-0 shape/mask arithmetic used by one layer (or the head) only is listed there
    consumers = collections.defaultdict(list)
    for i, n in enumerate(g.node):
        for x in n.input:
            consumers[x].append(i)
    for i in range(len(g.node) - 1, -1, -1):
        if out[i] != "mask":
            continue
        users = {out[j] for o in g.node[i].output for j in consumers[o]}
        if len(users) == 1 and next(iter(users)) not in ("mask", "embed"):
            out[i] = next(iter(users))
    return out, n_layers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--section", default="all")
    ap.add_argument("--counts", action="store_true")
    ap.add_argument("--show-constants", action="store_true")
    a = ap.parse_args()
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    m = onnx.load(a.model)
    g = m.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    consts = {}
    for n in g.node:
        if n.op_type == "Constant" and n.attribute:
            at = n.attribute[0]
            if at.name == "value":
                consts[n.output[0]] = numpy_helper.to_array(at.t)
            elif at.name in ("value_int", "value_ints", "value_float", "value_floats"):
                v = onnx.helper.get_attribute_value(at)
                consts[n.output[0]] = np.array(v, dtype=np.int64 if "int" in at.name else np.float32)
    secs, n_layers = sections(g, inits)

    def name_in(x):
        if x == "":
            return "''"
        if x in inits:
            return short(x) + fmt_array(inits[x], "I")
        if x in consts and not a.show_constants:
            return fmt_array(consts[x], "C")
        return short(x)

    def vi(v):
        t = v.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return f"{v.name}:{onnx.TensorProto.DataType.Name(t.elem_type).lower()}{dims}"

    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in m.opset_import)
    print(f"# {a.model}: ir {m.ir_version}, opsets [{opsets}], producer {m.producer_name} "
          f"{m.producer_version}, {len(g.node)} nodes ({sum(n.op_type == 'Constant' for n in g.node)} "
          f"Constant), {len(g.initializer)} initializers, {len(m.functions)} functions, "
          f"{len(g.value_info)} value_info, layers found {n_layers}")
    print("# inputs: " + ", ".join(vi(v) for v in g.input))
    print("# outputs: " + ", ".join(vi(v) for v in g.output))
    for f in m.functions:
        print(f"# function {f.domain}::{f.name}({', '.join(f.input)}) -> {', '.join(f.output)}: "
              f"{len(f.node)} nodes")
    if a.counts:
        per = collections.defaultdict(collections.Counter)
        for n, s in zip(g.node, secs):
            per[s][n.op_type] += 1
        for s in sorted(per, key=lambda k: ("embed", "mask").index(k) if k in ("embed", "mask")
                        else (3 if k == "head" else 2)):
            print(f"# counts {s}: " + ", ".join(f"{k} {v}" for k, v in sorted(per[s].items())))
        dt = collections.Counter(str(v.dtype) for v in inits.values())
        print("# initializer dtypes: " + ", ".join(f"{k} {v}" for k, v in sorted(dt.items())))
    for i, (n, s) in enumerate(zip(g.node, secs)):
        if a.section != "all" and s != a.section:
            continue
        if n.op_type == "Constant" and not a.show_constants:
            continue
        attrs = ", ".join(attr_str(x) for x in n.attribute)
        dom = f"{n.domain}::" if n.domain else ""
        nm = "" if short(n.name) == short(n.output[0]) or not n.name else f"  name={short(n.name)}"
        print(f"{i} [{s}] {dom}{n.op_type}({', '.join(name_in(x) for x in n.input)})"
              f"{' {' + attrs + '}' if attrs else ''} -> {', '.join(short(o) for o in n.output)}{nm}")


if __name__ == "__main__":
    main()
