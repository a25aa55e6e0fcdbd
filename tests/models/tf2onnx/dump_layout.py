#!/usr/bin/env python3
"""Print the node-by-node layout of a tf2onnx BERT export (used to write LAYOUT.md).

    python dump_layout.py MODEL.onnx [--section all|embed|layer0|head] [--counts]

Names are printed with the common prefix `StatefulPartitionedCall/bert_1/` (Keras 3) or
`StatefulPartitionedCall/bert/` (tf_keras) replaced by `~`. An initializer input is printed as
`name<I:dtype[shape]>`, with its values when it has at most 8 elements. Needs only `onnx`.
"""
import argparse
import collections
import re

import onnx
from onnx import numpy_helper

PREFIX = re.compile(r"StatefulPartitionedCall/bert(_1)?/")


def short(n):
    return PREFIX.sub("~", n)


def fmt_vals(a):
    vals = a.flatten().tolist()
    return "=" + str([float(f"{v:.9g}") if isinstance(v, float) else v for v in vals])


def section_of(node):
    names = " ".join(list(node.output) + [node.name])
    m = re.search(r"layer_(\d+)", " ".join(node.output))
    if m:
        return f"layer{m.group(1)}"
    if re.search(r"pooler|classifier|qa_outputs|split|Squeeze|strided_slice_2", names):
        return "head"
    return "embed"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--section", default="all")
    ap.add_argument("--counts", action="store_true")
    a = ap.parse_args()
    m = onnx.load(a.model)
    g = m.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}

    def vi(v):
        t = v.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return f"{v.name}: {onnx.TensorProto.DataType.Name(t.elem_type).lower()}{dims}"

    print(f"# {a.model.split('/')[-1]}: ir {m.ir_version}, opsets "
          + ", ".join(f"{o.domain or 'ai.onnx'}:{o.version}" for o in m.opset_import)
          + f", producer {m.producer_name} {m.producer_version}, {len(g.node)} nodes, "
          f"{len(g.initializer)} initializers")
    print("# inputs:  " + "; ".join(vi(v) for v in g.input))
    print("# outputs: " + "; ".join(vi(v) for v in g.output))

    def arg(n):
        if n in inits:
            x = inits[n]
            s = f"{short(n)}<I:{x.dtype}{list(x.shape)}"
            if x.size <= 8:
                s += fmt_vals(x)
            return s + ">"
        return short(n) if n else "''"

    for i, n in enumerate(g.node):
        sec = section_of(n)
        if a.section != "all" and sec != a.section:
            continue
        attrs = []
        for at in n.attribute:
            v = onnx.helper.get_attribute_value(at)
            if isinstance(v, bytes):
                v = v.decode()
            if isinstance(v, onnx.TensorProto):
                v = "T" + fmt_vals(numpy_helper.to_array(v))
            attrs.append(f"{at.name}={v}")
        print(f"{i:3d} [{sec}] {n.op_type}({', '.join(arg(x) for x in n.input)})"
              f"{' {' + ', '.join(attrs) + '}' if attrs else ''} -> {', '.join(short(o) for o in n.output)}"
              + (f"   name={short(n.name)}" if short(n.name) + ":0" != short(n.output[0]) else ""))
    if a.counts:
        c = collections.Counter(n.op_type for n in g.node)
        print("# counts: " + ", ".join(f"{k} {v}" for k, v in sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))))


if __name__ == "__main__":
    main()
