#!/usr/bin/env bash
# Wall time and peak RSS of `bertopt optimize` on BERT-base and BERT-large, each beside the I/O
# floor (`cp` of the model file then `sync` of the copy: what writing those bytes durably costs at
# least) and io_floor (the model loaded and saved by bertopt's own I/O code and nothing else),
# measured with GNU time.
#   bench/optimize_speed.sh [--quick] [--reps N] [--sizes "base large"]
# Repetitions: 7 for base (about a second each, and disk writes make single runs noisy), 5 for
# large; --quick: 3, base only.
# Writes $BENCH_OUT/optimize_speed.tsv (one line per run) and optimize_<size>.json (the optimize
# report of the untimed first run). bench/report.py turns them into medians and ratios.
#
# Runs rotate the order of the three every repetition (C I O, I O C, O C I, ...), so a slow spell
# on this shared machine lands on every side. The first run of each is untimed: it
# brings the model into the page cache, which every timed run then has. Before every run the
# previous output is deleted and `sync` flushes what is still dirty, so each run writes a new file
# from a clean start: otherwise a run pays for replacing (rename over) the last run's 1.3 GB file
# and for the writeback the one before it left behind, and the order of the pair decides the
# ratio.
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

reps=""
sizes="base large"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) reps=3 sizes=base ;;
    --reps) reps=$2; shift ;;
    --sizes) sizes=$2; shift ;;
    *) die "optimize_speed.sh: unknown argument '$1'" ;;
  esac
  shift
done

require_binaries
ensure_gnu_time

tsv=$bench_out/optimize_speed.tsv
printf 'size\ttool\trep\twall_s\trss_kb\tmodel_bytes\toptimize_s\n' >"$tsv"

run_copy() {
  rm -f "$2"
  sync
  # coreutils' sync with a file argument fsyncs that file, as bertopt does with its output.
  timed sh -c 'cp "$0" "$1" && sync "$1"' "$1" "$2"
}
run_io() {
  rm -f "$2"
  sync
  timed "$io_floor_bin" "$1" "$2"
}
run_optimize() {
  rm -f "$2"
  sync
  timed_stdout=$3
  timed "$bertopt_bin" optimize --input "$1" --output "$2" --json
  timed_stdout=/dev/null
}
# Optimize()'s own seconds (passes and shape inference, no load or save) from the JSON report.
report_seconds() {
  /usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$1"
}

for size in $sizes; do
  size_reps=${reps:-$([ "$size" = base ] && echo 7 || echo 5)}
  model=$(bench_model "$size") || continue
  bytes=$(stat -c %s "$model")
  copy_out=$bench_work/${size}_copy.onnx
  io_out=$bench_work/${size}_io.onnx
  opt_out=$bench_work/${size}_optimized.onnx
  report=$bench_out/optimize_$size.json
  progress "$size: $(basename "$model") ($((bytes / 1000000)) MB), untimed first runs"
  run_copy "$model" "$copy_out"
  run_io "$model" "$io_out"
  run_optimize "$model" "$opt_out" "$report"
  for rep in $(seq 1 "$size_reps"); do
    case $((rep % 3)) in
      1) order="copy io optimize" ;;
      2) order="io optimize copy" ;;
      0) order="optimize copy io" ;;
    esac
    line=""
    for tool in $order; do
      seconds=""
      if [ "$tool" = copy ]; then
        run_copy "$model" "$copy_out"
      elif [ "$tool" = io ]; then
        run_io "$model" "$io_out"
      else
        run_optimize "$model" "$opt_out" "$bench_work/optimize_rep.json"
        seconds=$(report_seconds "$bench_work/optimize_rep.json")
      fi
      printf '%s\t%s\t%d\t%s\t%s\t%s\t%s\n' "$size" "$tool" "$rep" "$timed_wall_s" "$timed_rss_kb" \
        "$bytes" "$seconds" >>"$tsv"
      line+=" $tool ${timed_wall_s}s $((timed_rss_kb / 1024))MiB;"
    done
    progress "$size: rep $rep/$size_reps:$line"
  done
  # The outputs are as large as the model (1.3 GB for large): keep only the measurements.
  rm -f "$copy_out" "$io_out" "$opt_out" "$bench_work/optimize_rep.json"
done
progress "optimize speed: done ($tsv)"
