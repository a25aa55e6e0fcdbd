#!/usr/bin/env bash
# Regenerates bench/RESULTS.md: builds what the benchmarks need, generates the models (cached),
# measures optimize speed and inference latency, and writes the results with the machine they ran
# on. Progress goes to stderr as it happens.
#   bench/run.sh            full run -> bench/RESULTS.md (BERT-base and BERT-large; a few minutes
#                           once the models are cached, plus ~1 min per model the first time)
#   bench/run.sh --quick    BERT-base only, fewer repetitions and runs (~1-2 min) ->
#                           build/bench/RESULTS.quick.md, so trying it never overwrites the results
# Environment: BUILD (default build/), BENCH_OUT (default $BUILD/bench), JOBS (default 2).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

mode=full
case "${1:-}" in
  "") ;;
  --quick) mode=quick ;;
  -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "run.sh: unknown argument '$1' (use --quick or nothing)" ;;
esac
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

# Measurements of an earlier run must not leak into this one's results.
rm -f "$bench_out"/optimize_speed.tsv "$bench_out"/optimize_*.json "$bench_out"/inference* \
  "$bench_out"/compare.*
cut -d' ' -f1-3 /proc/loadavg >"$bench_out/load_start.txt"

progress "== 1/2 optimize speed and memory beside the I/O floor"
bash "$bench_root/bench/optimize_speed.sh" "${quick_flag[@]}"
progress "== 2/2 inference latency (original, ORT level all saved, bertopt)"
bash "$bench_root/bench/inference.sh" "${quick_flag[@]}"

cut -d' ' -f1-3 /proc/loadavg >"$bench_out/load_end.txt"
/usr/bin/python3 "$bench_root/bench/report.py" "$bench_out" "$results" "$mode" \
  "bench/run.sh${quick_flag:+ --quick}"
progress "done in $(($(date +%s) - started)) s: $results"
