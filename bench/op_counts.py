#!/usr/bin/python3
"""Prints {label: {"nodes": N, "ops": {op: count}}} as JSON for models given as label=path.

    op_counts.py original=a.onnx ort_all=b.onnx ...

bench/inference.sh uses it to show the graph each model runs as: ORT's level-all optimization of a
model, saved, is the graph ORT executes, so comparing those says why two latencies differ (or not).
Contrib ops are named with their domain ("com.microsoft:Attention").
"""
import collections
import json
import sys

import onnx

counts = {}
for arg in sys.argv[1:]:
    label, path = arg.split("=", 1)
    # Only the nodes are needed: leave external data (if any) on disk.
    graph = onnx.load(path, load_external_data=False).graph
    ops = collections.Counter(
        (f"{n.domain}:" if n.domain not in ("", "ai.onnx") else "") + n.op_type for n in graph.node)
    counts[label] = {"nodes": len(graph.node), "ops": dict(ops.most_common())}
json.dump(counts, sys.stdout, indent=1)
print()
