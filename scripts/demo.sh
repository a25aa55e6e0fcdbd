#!/usr/bin/env bash
# The main job on a built-in sample: generate a BERT (random weights, cached), optimize it, check
# parity through ONNX Runtime, measure original against optimized, and print one summary.
#   scripts/demo.sh [base|small]     (make demo / make demo SIZE=small)
set -euo pipefail

size=${1:-base}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
bin="$build/bertopt"
work="$build/demo"
mkdir -p "$work"

case "$size" in
  base)  gen_args="--kind bert_seq --layers 12 --hidden 768 --heads 12 --vocab 30522 --max_position 512 --opset 14" ;;
  small) gen_args="--kind bert_seq --opset 14" ;;
  *) echo "demo: SIZE must be base or small, not '$size'" >&2; exit 2 ;;
esac

echo "== 1/4 sample model: HF-style BertForSequenceClassification ($size), torch export, cached"
model=$(/usr/bin/python3 "$root/tests/models/gen_bert.py" $gen_args 2>/dev/null | tail -n 1)
echo "   $model ($(du -h "$model" | cut -f1))"

optimized="$work/bert_${size}_optimized.onnx"
echo
echo "== 2/4 bertopt optimize"
start_ns=$(date +%s%N)
"$bin" optimize --input "$model" --output "$optimized" --overwrite | tee "$work/optimize.txt"
optimize_ms=$(( ($(date +%s%N) - start_ns) / 1000000 ))

echo
echo "== 3/4 bertopt compare (ORT optimizations disabled on both sides)"
parity=passed
"$bin" compare --baseline_model "$model" --optimized_model "$optimized" \
  --batch_size 1 --sequence_length 128 --samples 10 --output_dir "$work" | tee "$work/compare.txt" \
  || parity=FAILED

echo
echo "== 4/4 bertopt perf (original vs optimized, interleaved, batch 1, sequence 128)"
perf_json="$work/perf.json"
"$bin" perf --model "$model" "$optimized" --batch_size 1 --sequence_length 128 \
  --intra_op_num_threads "$(nproc)" --test_times 50 --warmup 5 \
  --output "$work/perf.tsv" --json > "$perf_json"

verdict=$(grep '^verdict:' "$work/optimize.txt" | sed 's/^verdict: //')
fused=$(awk '/fused operator/{f=1;next} f && NF==2 && $2>0 {printf "%s%s %s", sep, $2, $1; sep=", "} /^$/{if(f)exit}' "$work/optimize.txt")
/usr/bin/python3 - "$perf_json" "$optimize_ms" "$fused" "$verdict" "$parity" <<'PY'
import json, sys
perf = json.load(open(sys.argv[1]))
optimize_ms, fused, verdict, parity = sys.argv[2:6]
models = perf["models"]
print()
print("== summary")
print(f"   fused ops     : {fused}")
print(f"   verdict       : {verdict}")
print(f"   parity        : {parity}")
for m in models:
    print(f"   latency p50   : {m['median_ms']:8.2f} ms  {m['name']}")
if len(models) > 1:
    print(f"   speed-up      : {models[0]['median_ms'] / models[1]['median_ms']:.2f}x (original / optimized median)")
print(f"   optimize time : {int(optimize_ms) / 1000:.2f} s (whole command, load and save included)")
PY
[ "$parity" = passed ]
