#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/: clang, ASan, UBSan) in build-fuzz/ and runs each for SECONDS:
#   bench/fuzz.sh SECONDS
#   model_bytes_fuzzer      any bytes as a model file: load, every pass, int8, conversions, save
#   model_structure_fuzzer  the same pipeline, fed valid models mutated structurally
# Seeds: fuzz/seeds (the same exporters' layouts with hidden size 8 and one or two layers, 20-80 KB,
# so each run takes milliseconds, not the ~0.5 s of a 0.4 MB model under the sanitizers), the
# committed real exports (tests/models/torch2, tests/models/tf2onnx) and the inputs of past findings
# (tests/fuzz_regressions). What each target learns stays in build-fuzz/corpus/<target> for the
# next run. A finding (crash, sanitizer report, timeout, out-of-memory, kInternal error) stops the
# run with exit code 1; its input is build-fuzz/findings/<target>-<kind>-<sha1>: fix it, then add
# it to tests/fuzz_regressions/ and to the list in tests/unit/fuzz_regression_test.cc.
set -euo pipefail
seconds=${1:?usage: bench/fuzz.sh SECONDS (each target)}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
cd "$root"

bash scripts/setup.sh --fuzz
CXX=clang++-14 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBERTOPT_FUZZ=ON \
  -DBERTOPT_BUILD_TESTS=OFF -DBERTOPT_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target model_bytes_fuzzer model_structure_fuzzer

seeds="$build/seeds"
rm -rf "$seeds" && mkdir -p "$seeds" "$build/findings"
cp fuzz/seeds/*.onnx tests/models/torch2/*.onnx tests/models/tf2onnx/*.onnx "$seeds/"
cp tests/fuzz_regressions/*.onnx "$seeds/" 2>/dev/null || true

export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS=suppressions=$root/tests/sanitizers/lsan.supp:print_suppressions=0
status=0
for target in model_bytes_fuzzer model_structure_fuzzer; do
  corpus="$build/corpus/$target"
  mkdir -p "$corpus"
  log="$build/$target.log"
  echo "fuzz: $target for ${seconds}s (log: ${log#$root/})"
  # -timeout: a few seconds is already 100x a normal run; -rss_limit_mb: bertopt needs well under
  # 1 GB for these models, so more is a finding too.
  if "$build/fuzz/$target" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
      -max_len=2000000 -print_final_stats=1 -artifact_prefix="$build/findings/$target-" \
      "$corpus" "$seeds" >"$log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)' "$log" | sed "s/^/fuzz: $target /"
  else
    status=1
    echo "fuzz: $target FOUND A PROBLEM; the end of its log:" >&2
    tail -n 60 "$log" >&2
  fi
done
exit $status
