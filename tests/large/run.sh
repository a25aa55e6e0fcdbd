#!/usr/bin/env bash
# make test-large: a BERT over protobuf's 2 GB limit, stored with external data, through bertopt
# end to end: load, fuse completely, save with external data, compare with the original through
# ONNX Runtime. Not part of `make test` (CI): it writes about 4.5 GB and takes minutes. After it,
# make test-large runs signals.sh: SIGINT / SIGTERM at every stage of a BERT-large optimize.
#   BUILD (default build/) holds bertopt; scratch files go to $BUILD/test_large and are removed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
work=$build/test_large
bertopt=$build/bertopt
say() { printf '[test-large %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { say "FAILED: $*"; exit 1; }

[ -x "$bertopt" ] || fail "$bertopt is missing: run make build first"
[ -x /usr/bin/time ] || fail "GNU time is missing (apt-get install time)"
rm -rf "$work"
mkdir -p "$work"
started=$(date +%s)

say "model: tests/models/gen_large_vocab.py (cached in tests/models/cache)"
model=$(/usr/bin/python3 "$root/tests/models/gen_large_vocab.py" | tail -n 1)
model_bytes=$(($(stat -c %s "$model") + $(stat -c %s "$model.data")))
[ "$model_bytes" -gt 2147483647 ] || fail "$model and its data are $model_bytes bytes, not over 2 GB"
say "$model: $((model_bytes / 1000000)) MB with its external data"

say "optimize"
/usr/bin/time -f '%e %M' -o "$work/optimize.time" \
  "$bertopt" optimize --input "$model" --output "$work/optimized.onnx" --json >"$work/optimize.json" ||
  fail "bertopt optimize exited $?"
read -r opt_s opt_kb <"$work/optimize.time"
[ -f "$work/optimized.onnx.data" ] || fail "no external data file beside the output"
out_bytes=$(($(stat -c %s "$work/optimized.onnx") + $(stat -c %s "$work/optimized.onnx.data")))
[ "$(stat -c %s "$work/optimized.onnx")" -lt 2147483647 ] || fail "the output .onnx is over 2 GB"
/usr/bin/python3 - "$work/optimize.json" <<'PY' || fail "not fully optimized (see $work/optimize.json)"
import json, sys
r = json.load(open(sys.argv[1]))
print(f"  fused: {r['fused_ops']}, nodes {r['nodes_before']} -> {r['nodes_after']}, "
      f"verdict: {'fully optimized' if r['fully_optimized'] else 'not fully optimized: ' + '; '.join(r['missing'])}",
      file=sys.stderr)
sys.exit(0 if r["fully_optimized"] else 1)
PY

say "compare (ONNX Runtime, both models)"
/usr/bin/time -f '%e %M' -o "$work/compare.time" \
  "$bertopt" compare --baseline_model "$model" --optimized_model "$work/optimized.onnx" \
  --batch_size 1 --sequence_length 32 --samples 3 --json >"$work/compare.json" ||
  fail "bertopt compare exited $? (see $work/compare.json)"
read -r cmp_s cmp_kb <"$work/compare.time"

say "passed in $(($(date +%s) - started)) s: input $((model_bytes / 1000000)) MB, output $((out_bytes / 1000000)) MB; optimize ${opt_s} s, peak RSS $((opt_kb / 1024)) MiB; compare ${cmp_s} s, peak RSS $((cmp_kb / 1024)) MiB"
rm -rf "$work"
