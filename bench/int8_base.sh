#!/usr/bin/env bash
# int8 on BERT-base (issue 9 part 2): bertopt's dynamic quantization beside ONNX Runtime's
# quantize_dynamic, speed on each ONNX Runtime version and accuracy against float32.
# BERT-base as gen_bert.py exports it (torch 1.13, opset 14, random weights), S=128, 2 intra-op
# threads, batch 1 and 8, ORT level all; per version one `bertopt perf` process runs, interleaved:
#   original        the float32 export
#   bertopt_int8    `bertopt optimize --int8` made by the bertopt built against that version (its
#                   default forms: the linked ORT's)
#   qd_original     quantize_dynamic (PyPI onnxruntime, QInt8, its defaults) of the original
#   qd_fused        quantize_dynamic of bertopt's fused float32 model (what ORT's docs suggest:
#                   optimize, then quantize; it then makes QAttention too)
#   original_again  the A/A pair
# Accuracy: `bertopt compare --min_cosine 0.99` of each int8 model against the original (ORT
# optimizations off, 5 samples, B1 S128).
#   bench/int8_base.sh [--quick]
# Writes $BENCH_OUT/int8_<ort>_b{1,8}.json (perf --json), int8_models.json, int8_compare.txt.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

runs_b1=40
runs_b8=10
[ "${1:-}" = --quick ] && runs_b1=5 runs_b8=2

version_builds_and_venv

model=$(bench_model base) || die "BERT-base (opset 14) is needed"
cut -d' ' -f1-3 /proc/loadavg >"$bench_out/int8_load.txt"
dir=$bench_work/int8
rm -rf "$dir" && mkdir -p "$dir"
ln -sf "$model" "$dir/original.onnx"
ln -sf "$model" "$dir/original_again.onnx"

progress "int8: quantize_dynamic of the original and of bertopt's fused model"
"$bertopt_bin" optimize --input "$model" --output "$dir/fused.onnx" --target_ort_version none \
  >/dev/null
timed_stdout=$dir/qd_original.log
timed "$venv/bin/python" "$bench_root/bench/int8_reference.py" "$model" "$dir/qd_original.onnx"
qd_original_s=$timed_wall_s qd_original_rss=$timed_rss_kb
timed_stdout=$dir/qd_fused.log
timed "$venv/bin/python" "$bench_root/bench/int8_reference.py" "$dir/fused.onnx" "$dir/qd_fused.onnx"
qd_fused_s=$timed_wall_s

: >"$bench_out/int8_compare.txt"
i=0
for bin in "${builds[@]}"; do
  i=$((i + 1))
  progress "int8: $bin optimize --int8"
  timed_stdout=$dir/bertopt_int8_$i.json
  timed "$bin" optimize --int8 --input "$model" --output "$dir/bertopt_int8.onnx" --json
  echo "$timed_wall_s $timed_rss_kb" >"$dir/bertopt_int8_$i.time"
  if [ "$i" = 1 ]; then
    for m in bertopt_int8 qd_original qd_fused; do
      if "$bertopt_bin" compare --baseline_model "$model" --optimized_model "$dir/$m.onnx" \
          --batch_size 1 --sequence_length 128 --samples 5 --min_cosine 0.99 --json \
          >"$dir/compare_$m.json" 2>>"$bench_out/int8_compare.txt"; then
        echo "$m: passed" >>"$bench_out/int8_compare.txt"
      else
        echo "$m: FAILED" >>"$bench_out/int8_compare.txt"
      fi
    done
  fi
  for setting in "1 $runs_b1" "8 $runs_b8"; do
    read -r batch runs <<<"$setting"
    warmup=$(((runs + 9) / 10))
    progress "int8: $bin, batch $batch, 5 models interleaved, $runs timed runs each"
    "$bin" perf --model "$dir/original.onnx" "$dir/bertopt_int8.onnx" "$dir/qd_original.onnx" \
      "$dir/qd_fused.onnx" "$dir/original_again.onnx" \
      --batch_size "$batch" --sequence_length 128 --intra_op_num_threads 2 \
      --test_times "$runs" --warmup "$warmup" --opt_level all \
      --output "$dir/perf.tsv" --json >"$dir/perf.json"
    v=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ort_version"])' "$dir/perf.json")
    mv "$dir/perf.json" "$bench_out/int8_${v}_b$batch.json"
  done
done

/usr/bin/python3 - "$dir" "$qd_original_s" "$qd_original_rss" "$qd_fused_s" \
  "$("$venv/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__)')" \
  >"$bench_out/int8_models.json" <<'PY'
import collections, glob, json, re, sys
import onnx  # Debian's python3-onnx (the system Python runs this)
d, qd_s, qd_rss, qd_fused_s, qd_version = sys.argv[1:6]
def ops(path):
    g = onnx.load(path, load_external_data=False).graph
    return dict(sorted(collections.Counter(n.op_type for n in g.node).items()))
out = {"qd_version": qd_version, "qd_original": {"wall_s": float(qd_s), "rss_kib": int(qd_rss),
       "ops": ops(f"{d}/qd_original.onnx")},
       "qd_fused": {"wall_s": float(qd_fused_s), "ops": ops(f"{d}/qd_fused.onnx")},
       "bertopt_int8": {}, "compare": {}}
for path in sorted(glob.glob(f"{d}/bertopt_int8_*.json")):
    with open(path) as f:
        report = json.load(f)
    with open(path[:-5] + ".time") as f:
        wall, rss = f.read().split()
    version = re.search(r"ORT (\d+\.\d+[.0-9]*)", report["target"]).group(1)
    out["bertopt_int8"][version] = {
        "wall_s": float(wall), "rss_kib": int(rss), "fused_ops": report["fused_ops"],
        "nodes_after": report["nodes_after"], "int8": {k: v for k, v in report.get("int8", {}).items() if not isinstance(v, list)}}
out["bertopt_int8_ops"] = ops(f"{d}/bertopt_int8.onnx")
for path in glob.glob(f"{d}/compare_*.json"):
    try:
        with open(path) as f:
            out["compare"][path.split("compare_")[1][:-5]] = json.load(f)
    except ValueError:
        pass
json.dump(out, sys.stdout, indent=1)
PY
rm -rf "$dir"
progress "int8: done ($bench_out/int8_*.json)"
