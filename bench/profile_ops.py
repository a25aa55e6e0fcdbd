#!/usr/bin/python3
"""Sums ORT profiles (from ort_profile) per op type: milliseconds per run, warm-up run dropped.

    profile_ops.py label=profile.json ...   ->   JSON on stdout:
    {label: {"runs": N, "run_ms": median run, "kernels_ms": median over runs of the kernel sum,
             "ops": {op: median over runs of that op type's kernel time}}}

Node times are ORT's "<node>_kernel_time" events, grouped by the node's op_name; runs are told
apart by ORT's "model_run" events. The first run is ORT's warm-up (allocations) and is dropped.
Medians, not means: on a shared machine one disturbed run would otherwise move every op's time.
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
    per_run = [collections.Counter() for _ in timed]
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        for k, (start, end) in enumerate(timed):
            if start <= e["ts"] <= end:
                per_run[k][e["args"].get("op_name", "?")] += e["dur"] / 1000
                break
    ops = {op for run in per_run for op in run}
    median_ms = {op: statistics.median(run.get(op, 0) for run in per_run) for op in ops}
    result[label] = {
        "runs": len(timed),
        "run_ms": statistics.median((end - start) / 1000 for start, end in timed) if timed else 0,
        "kernels_ms": statistics.median(sum(run.values()) for run in per_run) if per_run else 0,
        "ops": dict(sorted(median_ms.items(), key=lambda kv: -kv[1])),
    }
json.dump(result, sys.stdout, indent=1)
print()
