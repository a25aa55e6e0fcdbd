#!/usr/bin/env bash
# A BERT-base-sized torch 2.x export (transformers BertForSequenceClassification, sdpa attention,
# dynamo exporter at opset 20, random weights) before and after `bertopt optimize`: parity, and the
# latency of both at ORT level all, interleaved with an A/A copy, batch 1 and 8, sequence 128,
# 2 threads. Writes bench/torch2_base.md, which bench/report.py puts into bench/RESULTS.md.
#   TORCH2_PYTHON=/path/to/venv/bin/python bench/torch2_base.sh [RUNS_B1 [RUNS_B8]]
# TORCH2_PYTHON: a virtual environment with torch 2.x, transformers, onnxscript and onnx (the one
# tests/models/torch2/README.md describes; torch 2.x from PyPI is a multi-GB download, so make bench
# does not install it). The export takes ~2 min, the run ~5 min on 2 cores.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

py=${TORCH2_PYTHON:?set TORCH2_PYTHON to the python of a venv with torch 2.x and transformers}
runs_b1=${1:-200}
runs_b8=${2:-40}
[ -x "$bertopt_bin" ] || die "$bertopt_bin is missing: build first"
dir=$bench_work/torch2_base
mkdir -p "$dir"
progress "torch2: exporting BERT-base (dynamo, opset 20) with $py"
"$py" "$bench_root/tests/models/gen_hf_torch2.py" --bert_base "$dir/original.onnx" >/dev/null
versions=$("$py" -c 'import torch, transformers, onnxscript; print(f"torch {torch.__version__}, transformers {transformers.__version__}, onnxscript {onnxscript.__version__}")')
progress "torch2: bertopt optimize"
"$bertopt_bin" optimize --input "$dir/original.onnx" --output "$dir/bertopt.onnx" --json \
  >"$dir/optimize.json"
cp "$dir/original.onnx" "$dir/original_again.onnx"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
progress "torch2: bertopt compare (3 samples, batch 1, sequence 128)"
compare_rc=0
"$bertopt_bin" compare --baseline_model "$dir/original.onnx" --optimized_model "$dir/bertopt.onnx" \
  --batch_size 1 --sequence_length 128 --samples 3 --output_dir "$dir/compare" >"$dir/compare.txt" 2>&1 ||
  compare_rc=$?
for setting in "1 $runs_b1" "8 $runs_b8"; do
  read -r batch runs <<<"$setting"
  progress "torch2: bertopt perf, batch $batch, 3 models interleaved, $runs timed runs each"
  "$bertopt_bin" perf --model "$dir/original.onnx" "$dir/bertopt.onnx" "$dir/original_again.onnx" \
    --batch_size "$batch" --sequence_length 128 --intra_op_num_threads 2 --test_times "$runs" \
    --warmup $(((runs + 9) / 10)) --opt_level all --json >"$dir/perf_b$batch.json"
done
load="$load_start -> $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$dir" "$compare_rc" "$versions" "$bench_root/bench/torch2_base.md" "$load" <<'PY'
import json, os, sys
d, compare_rc, versions, out, load = sys.argv[1:6]
opt = json.load(open(os.path.join(d, "optimize.json")))
fused = ", ".join(f"{n} {k}" for k, n in opt["fused_ops"].items() if n)
lines = ["### torch 2.x export of BERT-base (issue 10)\n",
         f"transformers `BertForSequenceClassification` (BERT-base config, sdpa attention, random "
         f"weights), `torch.onnx.export(dynamo=True, opset_version=20)`, {versions}; "
         f"`TORCH2_PYTHON=... bench/torch2_base.sh`. bertopt: {fused}; "
         f"{'fully optimized' if opt['fully_optimized'] else 'NOT fully optimized'}, nodes "
         f"{opt['nodes_before']} → {opt['nodes_after']}. Parity (`bertopt compare`, 3 samples, "
         f"batch 1, sequence 128, ORT optimizations off): "
         f"{'passed' if compare_rc == '0' else 'FAILED (exit ' + compare_rc + ')'}.\n",
         "Latency at ORT level all, sequence 128, 2 threads, the three models interleaved in one "
         "`bertopt perf` run per batch size (`original_again` is the same file as `original`: "
         f"its ratio is this run's noise); load average (1, 5, 15 min) {load} on "
         f"{os.cpu_count()} cores:\n",
         "| batch | model | p50 ms | min ms | p50 / original | min / original |",
         "|---|---|---|---|---|---|"]
for batch in (1, 8):
    perf = json.load(open(os.path.join(d, f"perf_b{batch}.json")))
    by = {os.path.splitext(os.path.basename(r["model"]))[0]: r for r in perf["results"]}
    base = by["original"]
    for name in ("original", "bertopt", "original_again"):
        r = by[name]
        lines.append(f"| {batch} | {name} | {r['p50_ms']:.1f} | {r['min_ms']:.1f} | "
                     f"{r['p50_ms'] / base['p50_ms']:.3f} | {r['min_ms'] / base['min_ms']:.3f} |")
lines.append("")
open(out, "w").write("\n".join(lines) + "\n")
PY
rm -rf "$dir"
progress "wrote $bench_root/bench/torch2_base.md"
