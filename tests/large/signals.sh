#!/usr/bin/env bash
# make test-large, after run.sh (issue 12): SIGINT / SIGTERM at any moment of a BERT-large
# `bertopt optimize --verify` (load, passes, write, verify) leave no partial or temporary file
# (no output, no .tmp-* file, no .bertopt-verify-* folder), exit 130 / 143, and never change the
# input. Two kinds of case:
#   hook:  the test hook (src/io/cleanup_on_signal.h: BERTOPT_TEST_SIGNAL_AT=load|passes|write|
#          verify, BERTOPT_TEST_SIGNAL=INT|TERM) raises the signal at the end of each stage:
#          exact, no timing involved. Their exit times also mark where each stage ends. With
#          --external_data also between moving the data file and the model into place
#          (publish|move), where the signal must wait for the complete output.
#   kill:  a real signal from outside (`kill`), aimed at the middle of each stage (from the hook's
#          stage ends) and at 5% to 95% of the wall time T of one uninterrupted run, landing
#          wherever the run is then (each line says which stage, from what the output folder held
#          just before); a run that ends before the signal must leave its complete output and
#          nothing else.
# bertopt gets a private TMPDIR, which must stay empty too. Each case prints one summary line; the
# script exits non-zero if any case failed.
#   BUILD (default build/) holds bertopt; scratch files go to $BUILD/test_signals (at most two
#   outputs of 1.3 GB at once) and are removed. The 1.3 GB model is cached in tests/models/cache
#   (its first export takes minutes and about 7 GB of memory).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD:-$root/build}
work=$build/test_signals
bertopt=$build/bertopt
say() { printf '[test-signals %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() {
  say "FAILED: $*"
  exit 1
}

[ -x "$bertopt" ] || die "$bertopt is missing: run make build first"
rm -rf "$work"
mkdir -p "$work/tmp"
export TMPDIR=$work/tmp
started=$(date +%s)

child=
# Whatever happens to this script, no bertopt of it keeps running in the background.
trap '[ -z "$child" ] || kill -KILL "$child" 2>/dev/null || true' EXIT

now() { date +%s.%N; }
# Seconds from $1 to $2 (default now); two decimals, as loading takes only hundredths.
elapsed() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.2f", b - a }'; }
greater() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
exit_code_for() { if [ "$1" = INT ]; then echo 130; else echo 143; fi; }

say "model: BERT-large through tests/models/gen_bert.py (cached in tests/models/cache)"
model=$(/usr/bin/python3 "$root/tests/models/gen_bert.py" --kind bert_seq --layers 24 \
  --hidden 1024 --heads 16 --vocab 30522 --max_position 512 --opset 14 | tail -n 1)
t=$(now)
input_sum=$(sha256sum "$model" | cut -d ' ' -f 1)
say "$model: $(($(stat -c %s "$model") / 1000000)) MB," \
  "sha256 ${input_sum:0:16}... ($(elapsed "$t") s)"

# --verify, so that ORT's comparison is one more stage a signal can land in; sequence 32 keeps
# that comparison to seconds (its default 128 costs more and tests nothing more here).
verify_args=(optimize --verify --sequence_length 32 --input "$model")
plain_args=(optimize --input "$model")

# Every file or folder left in the output folder $1 and in TMPDIR, relative to $work, one a line.
# Not counted: the two files ONNX Runtime 1.29's CreateEnv itself leaves in TMPDIR in every
# process that creates one, interrupted or not (.ses, and an empty mat-debug-<pid>.log); they
# are counted in the summary instead.
ort_files='^tmp/(\.ses|mat-debug-[0-9]+\.log)$'
leftovers() {
  find "$1" "$TMPDIR" -mindepth 1 -printf '%p\n' | sed "s|^$work/||" | sort |
    { grep -Ev "$ort_files" || true; }
}
one_line() { tr '\n' ' ' | sed 's/ $//'; }
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

failures=0
summary=()
# record ok|FAIL WORDS...: one summary line.
record() {
  local status=$1
  shift
  [ "$status" = ok ] || failures=$((failures + 1))
  summary+=("$status  $*")
  say "$status  $*"
}

say "reference: one uninterrupted run (its wall time T places the kills)"
dir=$work/reference
mkdir "$dir"
t=$(now)
"$bertopt" "${verify_args[@]}" --output "$dir/o.onnx" >"$work/reference.log" 2>&1 ||
  die "the uninterrupted run exited $? (see $work/reference.log)"
T=$(elapsed "$t")
[ "$(leftovers "$dir")" = reference/o.onnx ] ||
  die "the uninterrupted run left $(leftovers "$dir" | one_line)"
reference_bytes=$(stat -c %s "$dir/o.onnx")
rm -rf "$dir"
say "reference: T = $T s, output $((reference_bytes / 1000000)) MB"

# A run that ended normally must have left exactly the complete output.
complete_output_only() {
  [ "$(leftovers "$1")" = "${1#"$work/"}/o.onnx" ] &&
    [ "$(stat -c %s "$1/o.onnx")" = "$reference_bytes" ]
}

# hook STAGE SIGNAL MODE: the hook raises SIGNAL at the end of STAGE of a run with --verify
# (MODE verify) or without (MODE plain: the output is written straight beside its target).
declare -A stage_end # the hook's latest exit time per stage: about where that stage ends
hook() {
  local stage=$1 signal=$2 mode=$3 name dir t rc=0 want took left args
  name=hook_${stage}_${signal}_${mode}
  want=$(exit_code_for "$signal")
  if [ "$mode" = verify ]; then args=("${verify_args[@]}"); else args=("${plain_args[@]}"); fi
  dir=$work/$name
  mkdir "$dir"
  t=$(now)
  BERTOPT_TEST_SIGNAL_AT=$stage BERTOPT_TEST_SIGNAL=$signal \
    "$bertopt" "${args[@]}" --output "$dir/o.onnx" >"$work/$name.log" 2>&1 || rc=$?
  took=$(elapsed "$t")
  if [ "$mode" = verify ] && greater "$took" "${stage_end[$stage]:-0}"; then
    stage_end[$stage]=$took
  fi
  left=$(leftovers "$dir" | one_line)
  if [ "$rc" = "$want" ] && [ -z "$left" ]; then
    record ok "$name: exit $rc after $took s, nothing left"
  else
    record FAIL "$name: exit $rc (want $want) after $took s, left: ${left:-nothing}" \
      "(see $work/$name.log)"
  fi
  rm -rf "$dir"
}

say "hook: the signal raised at the end of each stage"
for stage in load passes write verify; do
  for signal in INT TERM; do hook "$stage" "$signal" verify; done
done
for signal in INT TERM; do hook write "$signal" plain; done

# hook_external STAGE SIGNAL: with --external_data, the hook between renaming the data file and
# the model into place ("publish": saving straight to the output; "move": out of --verify's
# staging folder). The two renames are one step for signals, so the run exits 130 / 143 with
# both files in place, nothing else, and together about the size of the reference output.
hook_external() {
  local stage=$1 signal=$2 name dir t rc=0 want took left args=("${plain_args[@]}") bytes
  name=hook_${stage}_${signal}_external_data
  want=$(exit_code_for "$signal")
  [ "$stage" != move ] || args=("${verify_args[@]}")
  dir=$work/$name
  mkdir "$dir"
  t=$(now)
  BERTOPT_TEST_SIGNAL_AT=$stage BERTOPT_TEST_SIGNAL=$signal "$bertopt" "${args[@]}" \
    --external_data --output "$dir/o.onnx" >"$work/$name.log" 2>&1 || rc=$?
  took=$(elapsed "$t")
  left=$(leftovers "$dir" | one_line)
  bytes=$(($(size_of "$dir/o.onnx") + $(size_of "$dir/o.onnx.data")))
  if [ "$rc" = "$want" ] && [ "$left" = "$name/o.onnx $name/o.onnx.data" ] &&
    [ $((bytes * 100 / reference_bytes)) -ge 99 ]; then
    record ok "$name: exit $rc after $took s, the complete output ($((bytes / 1000000)) MB)"
  else
    record FAIL "$name: exit $rc (want $want) after $took s, left: ${left:-nothing}," \
      "$bytes bytes (see $work/$name.log)"
  fi
  rm -rf "$dir"
}
for stage in publish move; do
  for signal in INT TERM; do hook_external "$stage" "$signal"; done
done

# The stage a run is in $1 seconds after its start, from what its output folder $2 holds then
# (nothing: load or passes, told apart by the hook's end of load; a temporary file: write; the
# complete candidate in the staging folder: verify; the output in place: done).
where() {
  local at=$1 entries
  entries=$(find "$2" -mindepth 1 -printf '%P\n')
  if [ -z "$entries" ]; then
    if greater "${stage_end[load]}" "$at"; then
      echo load
    else
      echo passes
    fi
  elif grep -qx o.onnx <<<"$entries"; then
    echo "done (output in place)"
  elif grep -q '/o\.onnx$' <<<"$entries"; then
    echo verify
  else
    echo write
  fi
}

# kill_at SIGNAL DELAY AIM: `kill -SIGNAL` from outside, DELAY seconds after the start; AIM (a
# name) says what the delay was chosen for.
mid_run=0
kills=0
kill_at() {
  local signal=$1 delay=$2 aim=$3 name dir t want rc=0 at stage took left
  name=kill_${signal}_${aim}
  want=$(exit_code_for "$signal")
  dir=$work/$name
  mkdir "$dir"
  t=$(now)
  "$bertopt" "${verify_args[@]}" --output "$dir/o.onnx" >"$work/$name.log" 2>&1 &
  child=$!
  sleep "$delay"
  at=$(elapsed "$t")
  stage=$(where "$at" "$dir")
  kill -s "$signal" "$child" 2>/dev/null || stage="none (it had exited)"
  wait "$child" || rc=$?
  child=
  took=$(elapsed "$t")
  kills=$((kills + 1))
  left=$(leftovers "$dir" | one_line)
  local what="$name: kill at $at s, stage $stage: exit $rc after $took s"
  if [ "$rc" = "$want" ] && [ -z "$left" ]; then
    mid_run=$((mid_run + 1))
    record ok "$what, nothing left"
  elif [ "$rc" = 0 ] && complete_output_only "$dir"; then
    # The run ended first (or, for SIGINT, the signal came before bertopt's handler was
    # installed: a background job of a script starts with SIGINT ignored).
    record ok "$what, ran to the end: the complete output and nothing else"
  elif [ "$rc" = "$want" ] && complete_output_only "$dir"; then
    # Between the output's rename into place and the exit: nothing partial, nothing temporary.
    mid_run=$((mid_run + 1))
    record ok "$what, after the complete output was in place: it and nothing else"
  else
    record FAIL "$what (want $want or 0), left: ${left:-nothing} (see $work/$name.log)"
  fi
  rm -rf "$dir"
}

# Middle of a stage, from the hook's stage ends (load, its first hundredths, is aimed at too).
middle() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (a + b) / 2 }'; }
say "kill: real signals from outside, aimed at the middle of each stage before verify"
for signal in INT TERM; do
  kill_at "$signal" "$(middle 0 "${stage_end[load]}")" load
  kill_at "$signal" "$(middle "${stage_end[load]}" "${stage_end[passes]}")" passes
  kill_at "$signal" "$(middle "${stage_end[passes]}" "${stage_end[write]}")" write
  # Between the end of writing and the hook at verify: the sync and rename in the staging folder.
  kill_at "$signal" "$(middle "${stage_end[write]}" "${stage_end[verify]}")" write_end
done
say "kill: real signals from outside at 5% to 95% of T = $T s (mostly verify, ORT's comparison)"
for percent in 5 25 50 75 95; do
  for signal in INT TERM; do
    kill_at "$signal" "$(awk -v t="$T" -v p="$percent" 'BEGIN { printf "%.2f", t * p / 100 }')" \
      "${percent}pct"
  done
done

t=$(now)
if [ "$(sha256sum "$model" | cut -d ' ' -f 1)" = "$input_sum" ]; then
  record ok "input: sha256 unchanged ($(elapsed "$t") s)"
else
  record FAIL "input: $model changed (sha256)"
fi

ort_left=$(find "$TMPDIR" -mindepth 1 -printf 'tmp/%P\n' | grep -cE "$ort_files" || true)
say "summary ($(($(date +%s) - started)) s; $mid_run of $kills kills landed mid-run;" \
  "ONNX Runtime's own files left in TMPDIR, not counted: $ort_left):"
printf '  %s\n' "${summary[@]}" >&2
if [ "$failures" -gt 0 ]; then
  die "$failures case(s) failed; logs in $work"
fi
rm -rf "$work"
say "passed"
