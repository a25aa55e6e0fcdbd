#!/usr/bin/env bash
# Inference latency of BERT-base in ONNX Runtime (CPU, 2 intra-op threads, sequence 128, batch 1
# and 8), four models in one interleaved `bertopt perf` run, all loaded at ORT level "all":
#   original        the torch export
#   ort_all         what ORT saves after its own level-all optimization of the original
#   bertopt         `bertopt optimize` output
#   original_again  the original once more: the A/A pair shows how much two identical models
#                   differ on this machine, i.e. which ratios are noise
#   bench/inference.sh [--quick] [--runs_b1 N] [--runs_b8 N] [--threads N]
# Each batch size is its own perf run, so batch 8 (about 7x the time of batch 1 per run) can have
# fewer timed runs and a full run stays within a few minutes.
# Writes $BENCH_OUT/inference_b{1,8}.json (perf --json) and .tsv, inference_optimize.json (what
# bertopt fused), inference_ops.json (op counts of the graphs ORT runs), inference_profile_b{1,8}
# .json (ORT's time per op type, original and bertopt) and compare.txt / compare.rc (parity of
# bertopt's output with the original).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

runs_b1=60
runs_b8=16
profile_runs_b1=20
profile_runs_b8=5
threads=2
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) runs_b1=5 runs_b8=2 profile_runs_b1=2 profile_runs_b8=1 ;;
    --runs_b1) runs_b1=$2; shift ;;
    --runs_b8) runs_b8=$2; shift ;;
    --threads) threads=$2; shift ;;
    *) die "inference.sh: unknown argument '$1'" ;;
  esac
  shift
done

require_binaries
model=$(bench_model base) || die "BERT-base is needed for the inference benchmark"

# perf names models by file name, so each variant gets a name that says what it is.
dir=$bench_work/inference
mkdir -p "$dir"
ln -sf "$model" "$dir/original.onnx"
ln -sf "$model" "$dir/original_again.onnx"

progress "inference: bertopt optimize"
"$bertopt_bin" optimize --input "$model" --output "$dir/bertopt.onnx" --json \
  >"$bench_out/inference_optimize.json"

# ORT warns on every level-all save that the file may hold hardware-specific rewrites; RESULTS.md
# says so once, and the log is shown only when the tool fails.
ort_save_all() {
  "$ort_optimized_bin" "$1" "$2" all 2>"$bench_out/ort_optimized.log" ||
    { cat "$bench_out/ort_optimized.log" >&2; die "ort_optimized $1 failed"; }
}
progress "inference: ORT level-all optimization of the original, saved (ort_optimized)"
ort_save_all "$model" "$dir/ort_all.onnx"

# The graphs ORT actually runs: its level-all result for the original is ort_all.onnx; the same
# for bertopt's output is saved too, only to count its ops (it is not timed).
ort_save_all "$dir/bertopt.onnx" "$dir/bertopt_after_ort.onnx"
progress "inference: op counts of the four graphs (op_counts.py)"
/usr/bin/python3 "$bench_root/bench/op_counts.py" original="$model" ort_all="$dir/ort_all.onnx" \
  bertopt="$dir/bertopt.onnx" bertopt_after_ort="$dir/bertopt_after_ort.onnx" \
  >"$bench_out/inference_ops.json"

# A latency is only worth reporting for a model that computes the same thing. compare runs both
# with ORT's optimizations off, so ORT's fusions cannot hide a wrong one of ours.
progress "inference: parity of bertopt.onnx with the original (bertopt compare, 3 samples)"
set +e
"$bertopt_bin" compare --baseline_model "$model" --optimized_model "$dir/bertopt.onnx" \
  --batch_size 1 --sequence_length 128 --samples 3 --output_dir "$dir/compare" \
  >"$bench_out/compare.txt" 2>&1
echo $? >"$bench_out/compare.rc"
set -e
[ "$(cat "$bench_out/compare.rc")" = 0 ] || progress "inference: compare FAILED (see $bench_out/compare.txt)"

for setting in "1 $runs_b1" "8 $runs_b8"; do
  read -r batch runs <<<"$setting"
  # One warm-up run per model per ten timed runs, at least one: ORT's first runs allocate.
  warmup=$(((runs + 9) / 10))
  progress "inference: bertopt perf, batch $batch, 4 models interleaved, sequence 128, $threads threads, $runs timed runs each"
  "$bertopt_bin" perf \
    --model "$dir/original.onnx" "$dir/ort_all.onnx" "$dir/bertopt.onnx" "$dir/original_again.onnx" \
    --batch_size "$batch" --sequence_length 128 --intra_op_num_threads "$threads" \
    --test_times "$runs" --warmup "$warmup" --opt_level all \
    --output "$bench_out/inference_b$batch.tsv" --json >"$bench_out/inference_b$batch.json"
done

# Where the ratio comes from: ORT's per-node profile of the original and of bertopt's output, run
# alternately (ort_profile), summed per op type (profile_ops.py).
for setting in "1 $profile_runs_b1" "8 $profile_runs_b8"; do
  read -r batch runs <<<"$setting"
  progress "inference: ORT per-op profile, batch $batch, original and bertopt alternately, $runs runs each"
  mkdir -p "$dir/profile_b$batch"
  mapfile -t profiles < <("$ort_profile_bin" "$runs" "$batch" 128 "$threads" \
    "$dir/profile_b$batch/p" "$model" "$dir/bertopt.onnx")
  [ "${#profiles[@]}" -eq 2 ] || die "ort_profile failed (batch $batch)"
  /usr/bin/python3 "$bench_root/bench/profile_ops.py" original="${profiles[0]}" \
    bertopt="${profiles[1]}" >"$bench_out/inference_profile_b$batch.json"
done

rm -rf "$dir"
progress "inference: done ($bench_out/inference_b*.json)"
