#!/usr/bin/env bash
# Regenerates bench/RESULTS.md: builds what the benchmarks need, generates the models (cached),
# measures optimize speed and inference latency, and writes the results with the machine they ran
# on. Progress goes to stderr as it happens.
#   bench/run.sh            full run -> bench/RESULTS.md (BERT-base and BERT-large; a few minutes
#                           once the models are cached, plus ~1 min per model the first time)
#   bench/run.sh --quick    BERT-base only, fewer repetitions and runs (~1-2 min) ->
#                           build/bench/RESULTS.quick.md, so trying it never overwrites the results
#   bench/run.sh --speed    section 1 only (optimize beside the I/O floor, BERT-base and -large):
#                           measures it and rewrites that section of bench/RESULTS.md in place
#   bench/run.sh --report   measure nothing: rewrite bench/RESULTS.md from the last full run's
#                           measurements (after editing bench/findings.md or report.py)
# Environment: BUILD (default build/), BENCH_OUT (default $BUILD/bench), JOBS (default 2).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

mode=full
case "${1:-}" in
  "") ;;
  --quick) mode=quick ;;
  --report) mode=report ;;
  --speed) mode=speed ;;
  -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "run.sh: unknown argument '$1' (use --quick, --speed, --report or nothing)" ;;
esac
if [ "$mode" = speed ]; then
  # Its own folder: a full run's measurements stay as they were.
  speed_out=$bench_out/speed
  mkdir -p "$speed_out"
  progress "build: bertopt, io_floor ($bench_build, -j${JOBS:-2})"
  cmake -S "$bench_root" -B "$bench_build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$bench_build" -j "${JOBS:-2}" --target bertopt io_floor >/dev/null
  rm -f "$speed_out"/optimize_speed.tsv "$speed_out"/optimize_*.json
  cut -d' ' -f1-3 /proc/loadavg >"$speed_out/load_start.txt"
  date -u '+%Y-%m-%d %H:%M UTC' >"$speed_out/measured_at.txt"
  {
    git -C "$bench_root" rev-parse --abbrev-ref HEAD
    git -C "$bench_root" rev-parse --short HEAD
    git -C "$bench_root" status --porcelain --untracked-files=no | grep -vc 'bench/RESULTS.md$' || true
  } >"$speed_out/code.txt"
  BENCH_OUT=$speed_out bash "$bench_root/bench/optimize_speed.sh"
  cut -d' ' -f1-3 /proc/loadavg >"$speed_out/load_end.txt"
  /usr/bin/python3 "$bench_root/bench/report.py" --speed "$speed_out" "$bench_root/bench/RESULTS.md" \
    "bench/run.sh --speed"
  progress "rewrote section 1 of $bench_root/bench/RESULTS.md"
  exit 0
fi
if [ "$mode" = report ]; then
  [ "$(cat "$bench_out/mode.txt" 2>/dev/null)" = full ] ||
    die "no full run's measurements in $bench_out: run bench/run.sh first"
  /usr/bin/python3 "$bench_root/bench/report.py" "$bench_out" "$bench_root/bench/RESULTS.md" full \
    "bench/run.sh"
  progress "rewrote $bench_root/bench/RESULTS.md from the measurements of $(cat "$bench_out/measured_at.txt")"
  exit 0
fi
quick_flag=()
[ "$mode" = quick ] && quick_flag=(--quick)
if [ "$mode" = full ]; then
  results=$bench_root/bench/RESULTS.md
else
  results=$bench_out/RESULTS.quick.md
fi

started=$(date +%s)
progress "build: bertopt, io_floor, ort_optimized, ort_profile ($bench_build, -j${JOBS:-2})"
cmake -S "$bench_root" -B "$bench_build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$bench_build" -j "${JOBS:-2}" --target bertopt io_floor ort_optimized ort_profile >/dev/null
progress "build: bertopt against ONNX Runtime 1.30 and 1.32 (${bench_build}-ort13x) and the reference optimizer's venv"
bash "$bench_root/scripts/setup.sh" --ort130 --ort132 >/dev/null
for v in 130 132; do
  cmake -S "$bench_root" -B "${bench_build}-ort$v" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DBERTOPT_BUILD_TESTS=OFF -DBERTOPT_BUILD_BENCH=OFF \
    -DONNXRUNTIME_ROOT="$bench_root/third_party/ort-1.${v:1}" >/dev/null
  cmake --build "${bench_build}-ort$v" -j "${JOBS:-2}" --target bertopt >/dev/null
done
# The reference: ONNX Runtime's Python optimizer (PyPI onnxruntime), in a venv of its own.
if [ ! -x "$bench_root/bench/venv/bin/python" ]; then
  python3 -m venv "$bench_root/bench/venv"
  "$bench_root/bench/venv/bin/pip" install -q onnxruntime onnx numpy sympy packaging coloredlogs
fi
# The older reference: onnxruntime-tools 1.7.0, the packaged successor of the original BERT
# optimization script (its optimizer runs ORT once first, hence onnxruntime beside it).
if [ ! -x "$bench_root/bench/venv-ortools/bin/python" ]; then
  python3 -m venv "$bench_root/bench/venv-ortools"
  "$bench_root/bench/venv-ortools/bin/pip" install -q onnxruntime-tools==1.7.0 onnxruntime==1.32.0 \
    sympy
fi

# Measurements of an earlier run must not leak into this one's results.
rm -f "$bench_out"/optimize_speed.tsv "$bench_out"/optimize_*.json "$bench_out"/inference* \
  "$bench_out"/compare.* "$bench_out"/versions_* "$bench_out"/int8_*
rm -f "$bench_out/mode.txt"
cut -d' ' -f1-3 /proc/loadavg >"$bench_out/load_start.txt"
date -u '+%Y-%m-%d %H:%M UTC' >"$bench_out/measured_at.txt"
# The code measured, recorded now: the results may be rewritten (--report) after later commits.
# bench/RESULTS.md itself is rewritten by every run, so it does not make the tree dirty.
{
  git -C "$bench_root" rev-parse --abbrev-ref HEAD
  git -C "$bench_root" rev-parse --short HEAD
  git -C "$bench_root" status --porcelain --untracked-files=no | grep -vc 'bench/RESULTS.md$' || true
} >"$bench_out/code.txt"

progress "== 1/5 optimize speed and memory beside the I/O floor"
bash "$bench_root/bench/optimize_speed.sh" "${quick_flag[@]}"
progress "== 2/5 inference latency (original, ORT level all saved, bertopt)"
bash "$bench_root/bench/inference.sh" "${quick_flag[@]}"
progress "== 3/5 fused forms per ONNX Runtime version, beside the reference optimizer"
bash "$bench_root/bench/versions.sh" "${quick_flag[@]}"
progress "== 4/5 int8 BERT-base per ONNX Runtime version, beside quantize_dynamic"
bash "$bench_root/bench/int8_base.sh" "${quick_flag[@]}"
if [ "$mode" = full ]; then
  progress "== 5/5 the trained MiniLM: float16 and int8 accuracy beside ORT's own conversions"
  bash "$bench_root/bench/minilm_float16.sh"
  bash "$bench_root/bench/minilm_int8.sh"
fi

cut -d' ' -f1-3 /proc/loadavg >"$bench_out/load_end.txt"
echo "$mode" >"$bench_out/mode.txt"
/usr/bin/python3 "$bench_root/bench/report.py" "$bench_out" "$results" "$mode" \
  "bench/run.sh${quick_flag:+ --quick}"
progress "done in $(($(date +%s) - started)) s: $results"
