#!/usr/bin/env bash
# Fused forms per ONNX Runtime version: the measurement behind src/passes/targets.cc, and the
# comparison with ONNX Runtime's own Python optimizer (the reference) on each version.
# BERT-base as the issue measured it (torch 1.13 export, opset 11), S=128, 2 intra-op threads,
# batch 1 and 8, ORT level all, every model in one interleaved `bertopt perf` run per version:
#   original        the torch export
#   every_fusion    bertopt optimize --target_ort_version none (SkipLayerNormalization included)
#   residual_sum    bertopt optimize --target_ort_version 1.32 (no SkipLayerNormalization: the
#                   residual written as Sum + LayerNormalization, which ORT does not re-fuse)
#   reference       onnxruntime.transformers.optimizer (PyPI onnxruntime, bench/venv), its fusions
#                   only (--opt_level 0: its ORT pre-pass needs torch, and ORT at level all runs
#                   anyway when the model is loaded)
#   ort_tools       onnxruntime-tools 1.7.0's optimizer (bench/venv-ortools), the packaged
#                   successor of the original BERT optimization script, its defaults
#   original_again  the A/A pair: which ratios are noise
# Which of every_fusion / residual_sum is each build's default output (no --target_ort_version:
# the forms of the ORT it is linked with) is recorded too: that is the row a user gets.
# Each version runs with a bertopt built against it: build/ (1.29, the SDK we build with),
# build-ort130/ and build-ort132/ (1.30's and 1.32's libraries with the same headers). The reference's output is made once, by
# the Python package's own ORT (its version is recorded).
#   bench/versions.sh [--quick]
# Writes $BENCH_OUT/versions_<ort>_b{1,8}.json (perf --json), versions_models.json (what each
# variant fused, the reference's version and command) and versions_compare.txt (parity).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

runs_b1=120
runs_b8=24
[ "${1:-}" = --quick ] && runs_b1=5 runs_b8=2

version_builds_and_venv

model=$(bench_model base11) || die "BERT-base (opset 11) is needed"
cut -d' ' -f1-3 /proc/loadavg >"$bench_out/versions_load.txt"
dir=$bench_work/versions
mkdir -p "$dir"
ln -sf "$model" "$dir/original.onnx"
ln -sf "$model" "$dir/original_again.onnx"

progress "versions: bertopt optimize, every fusion and the residual as Sum"
"$bertopt_bin" optimize --input "$model" --output "$dir/every_fusion.onnx" \
  --target_ort_version none --json >"$dir/every_fusion.json"
"$bertopt_bin" optimize --input "$model" --output "$dir/residual_sum.onnx" \
  --target_ort_version 1.32 --json >"$dir/residual_sum.json"
# Each build's default (the linked ORT's forms), to name which variant a user of it gets.
i=0
for bin in "${builds[@]}"; do
  i=$((i + 1))
  "$bin" optimize --input "$model" --output "$dir/default.onnx" --json >"$dir/default_$i.json"
done
rm -f "$dir/default.onnx"
progress "versions: the reference optimizer (onnxruntime.transformers.optimizer)"
ref_version=$("$venv/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__)')
ref_cmd="python -m onnxruntime.transformers.optimizer --input original.onnx --output reference.onnx --model_type bert --num_heads 12 --hidden_size 768 --opt_level 0"
timed_stdout=$dir/reference.log
timed "$venv/bin/python" -m onnxruntime.transformers.optimizer --input "$model" \
  --output "$dir/reference.onnx" --model_type bert --num_heads 12 --hidden_size 768 --opt_level 0
ref_wall=$timed_wall_s ref_rss=$timed_rss_kb
progress "versions: onnxruntime-tools 1.7.0's optimizer"
tools_venv=$bench_root/bench/venv-ortools
[ -x "$tools_venv/bin/python" ] || die "$tools_venv is missing (bench/run.sh makes it)"
tools_cmd="python -m onnxruntime_tools.transformers.optimizer --input original.onnx --output ort_tools.onnx --model_type bert --num_heads 12 --hidden_size 768"
timed_stdout=$dir/ort_tools.log
# Its log (stderr) ends with its own count of what it fused: kept, with exec so that time
# measures the optimizer itself.
timed sh -c 'exec "$@" 2>&1' sh "$tools_venv/bin/python" -m onnxruntime_tools.transformers.optimizer \
  --input "$model" --output "$dir/ort_tools.onnx" --model_type bert --num_heads 12 \
  --hidden_size 768
tools_wall=$timed_wall_s tools_rss=$timed_rss_kb
/usr/bin/python3 - "$dir" "$ref_version" "$ref_cmd" "$ref_wall" "$ref_rss" "$tools_cmd" \
  "$tools_wall" "$tools_rss" >"$bench_out/versions_models.json" <<'EOF'
import ast, glob, json, re, sys
d, version, cmd, wall, rss, tools_cmd, tools_wall, tools_rss = sys.argv[1:9]
out = {"reference": {"onnxruntime": version, "command": cmd, "wall_s": float(wall),
                     "rss_kib": int(rss)},
       "ort_tools": {"command": tools_cmd, "wall_s": float(tools_wall),
                     "rss_kib": int(tools_rss)}, "default": {}}
with open(f"{d}/ort_tools.log") as f:
    # Its own count of fused operators, the line it ends with.
    m = re.findall(r"Optimized operators:(\{.*\})", f.read())
    out["ort_tools"]["fused_ops"] = {k: v for k, v in ast.literal_eval(m[-1]).items() if v} if m else {}
for name in ("every_fusion", "residual_sum"):
    with open(f"{d}/{name}.json") as f:
        out[name] = json.load(f)["fused_ops"]
for path in sorted(glob.glob(f"{d}/default_*.json")):
    with open(path) as f:
        report = json.load(f)
    fused = report["fused_ops"]
    same = [n for n in ("every_fusion", "residual_sum") if out[n] == fused]
    version = re.search(r"ORT (\d+\.\d+[.0-9]*)", report["target"]).group(1)
    out["default"][version] = same[0] if same else "neither"
json.dump(out, sys.stdout, indent=1)
EOF

progress "versions: parity of the four optimized models with the original (compare, 3 samples)"
: >"$bench_out/versions_compare.txt"
for v in every_fusion residual_sum reference ort_tools; do
  if "$bertopt_bin" compare --baseline_model "$model" --optimized_model "$dir/$v.onnx" \
      --batch_size 1 --sequence_length 128 --samples 3 --output_dir "$dir/compare_$v" \
      >>"$bench_out/versions_compare.txt" 2>&1; then
    echo "$v: passed" >>"$bench_out/versions_compare.txt"
  else
    echo "$v: FAILED" >>"$bench_out/versions_compare.txt"
  fi
done

for bin in "${builds[@]}"; do
  for setting in "1 $runs_b1" "8 $runs_b8"; do
    read -r batch runs <<<"$setting"
    warmup=$(((runs + 9) / 10))
    progress "versions: $bin, batch $batch, 6 models interleaved, $runs timed runs each"
    "$bin" perf --model "$dir/original.onnx" "$dir/every_fusion.onnx" "$dir/residual_sum.onnx" \
      "$dir/reference.onnx" "$dir/ort_tools.onnx" "$dir/original_again.onnx" \
      --batch_size "$batch" --sequence_length 128 --intra_op_num_threads 2 \
      --test_times "$runs" --warmup "$warmup" --opt_level all \
      --output "$dir/perf.tsv" --json >"$dir/perf.json"
    v=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ort_version"])' "$dir/perf.json")
    mv "$dir/perf.json" "$bench_out/versions_${v}_b$batch.json"
  done
done
rm -rf "$dir"
/usr/bin/python3 "$bench_root/bench/report.py" --versions "$bench_out" "$bench_root/bench/versions.md" \
  "$([ "${1:-}" = --quick ] && echo quick || echo full)"
progress "versions: done ($bench_out/versions_*.json, $bench_root/bench/versions.md)"
