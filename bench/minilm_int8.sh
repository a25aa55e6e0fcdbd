#!/usr/bin/env bash
# int8 accuracy on all-MiniLM-L6-v2, bertopt beside ONNX Runtime's quantize_dynamic: writes
# bench/int8_minilm.md, which bench/report.py puts into bench/RESULTS.md.
#   bench/minilm_int8.sh     (needs the venv and MiniLM export of bench/minilm_float16.sh)
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
progress "quantizing and comparing 240 sentences"
(cd "$bench_root/bench" && "$venv/bin/python" minilm_int8.py --bertopt "$bertopt_bin" \
  --model "${paths[0]}" --ids "${paths[1]}" --work "$bench_work" \
  --markdown "$bench_root/bench/int8_minilm.md" >/dev/null)
rm -f "$bench_work"/minilm_*.onnx
progress "wrote $bench_root/bench/int8_minilm.md"
