#!/usr/bin/python3
"""Sums ORT profiles (from ort_profile) per op type: milliseconds per run, warm-up run dropped.

    profile_ops.py label=profile.json ...   ->   JSON on stdout:
    {label: {"runs": N, "run_ms": median model_run time, "ops": {op: mean ms per run}}}

Node times are ORT's "<node>_kernel_time" events, grouped by the node's op_name; runs are told
apart by ORT's "model_run" events. The first run is ORT's warm-up (allocations) and is dropped.
"""
import collections
import json
import statistics
import sys

result = {}
for arg in sys.argv[1:]:
    label, path = arg.split("=", 1)
    with open(path) as f:
        events = json.load(f)
    run_spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                       if e.get("cat") == "Session" and e.get("name") == "model_run")
    timed = run_spans[1:]
    per_op = collections.Counter()
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        if any(start <= e["ts"] <= end for start, end in timed):
            per_op[e["args"].get("op_name", "?")] += e["dur"]
    n = max(len(timed), 1)
    result[label] = {
        "runs": len(timed),
        "run_ms": statistics.median((end - start) / 1000 for start, end in timed) if timed else 0,
        "ops": {op: us / 1000 / n for op, us in per_op.most_common()},
    }
json.dump(result, sys.stdout, indent=1)
print()
