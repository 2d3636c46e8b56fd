#!/usr/bin/env bash
# Runs the libFuzzer targets built by `make fuzz-build` and prints one line per
# target (executions, exec/s, coverage).  Fails when any target reports a
# crash, a leak, a timeout, running out of memory or a sanitizer error.
#
#   tests/fuzz/run-fuzz.sh SECONDS TARGET...   fuzz each target for SECONDS
#   tests/fuzz/run-fuzz.sh replay TARGET...    run each committed corpus once
#
# Layout (FUZZ_BUILD, default build-fuzz):
#   tests/fuzz/corpus/<target>/      committed seeds and past crashers (replayed first)
#   $FUZZ_BUILD/corpus/<target>/     the working corpus libFuzzer grows (not committed)
#   $FUZZ_BUILD/artifacts/<target>/  crash-*, leak-*, timeout-*, oom-* inputs
#   $FUZZ_BUILD/logs/<target>.log    the full libFuzzer output
# Environment: FUZZ_TIMEOUT (seconds one input may take, default 10),
#   FUZZ_RSS_MB (default 2048), FUZZ_ARGS (extra libFuzzer flags, word-split).
set -eu

cd "$(dirname "$0")/../.."

[ $# -ge 2 ] || { echo "usage: $0 SECONDS|replay TARGET..." >&2; exit 2; }
mode=$1
shift
case $mode in
    replay) ;;
    '' | *[!0-9]*) echo "run-fuzz: SECONDS must be a number, got '$mode'" >&2; exit 2 ;;
esac

FUZZ_BUILD=${FUZZ_BUILD:-build-fuzz}
timeout=${FUZZ_TIMEOUT:-10}
rss=${FUZZ_RSS_MB:-2048}
read -r -a extra <<<"${FUZZ_ARGS:-}"

# A report anywhere stops the process with an error exit; leaks are checked
# after every input (libFuzzer's -detect_leaks, on by default with ASan).
export ASAN_OPTIONS="abort_on_error=1:detect_stack_use_after_return=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

failed=""
for t in "$@"; do
    bin=$FUZZ_BUILD/bin/$t
    seeds=tests/fuzz/corpus/$t
    work=$FUZZ_BUILD/corpus/$t
    arts=$FUZZ_BUILD/artifacts/$t
    log=$FUZZ_BUILD/logs/$t.log
    [ -x "$bin" ] || { echo "run-fuzz: $bin not built (make fuzz-build)" >&2; exit 1; }
    mkdir -p "$work" "$arts" "$(dirname "$log")"
    opts=(-timeout="$timeout" -rss_limit_mb="$rss" -artifact_prefix="$arts/" -print_final_stats=1)
    [ -f "tests/fuzz/$t.dict" ] && opts+=(-dict="tests/fuzz/$t.dict")
    if [ "$mode" = replay ]; then
        # Every committed input once, no mutation: a quick check for CI.
        set +e
        "$bin" "${opts[@]}" "${extra[@]}" -runs=0 "$seeds" </dev/null >"$log" 2>&1
        rc=$?
        set -e
    else
        # One process on one core, at low priority: the machine is shared.
        # New inputs go to the working corpus; the seeds are read too.
        set +e
        nice -n 10 "$bin" "${opts[@]}" "${extra[@]}" -max_total_time="$mode" \
            "$work" "$seeds" </dev/null >"$log" 2>&1
        rc=$?
        set -e
    fi
    # The last status line: "#N DONE cov: C ft: F corp: ... exec/s: E ..."
    stats=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(echo "$stats" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
    ft=$(echo "$stats" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
    # With abort_on_error and halt_on_error a report also ends the run with a
    # failure status; the grep catches a runtime built to recover anyway.
    if [ "$rc" -ne 0 ] || grep -qE 'runtime error:|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)' "$log"; then
        echo "run-fuzz: $t FAILED (exit $rc); log $log, inputs in $arts/:"
        grep -E 'ERROR:|runtime error:|property failed|SUMMARY:|Test unit written to' "$log" | head -n 8 | sed 's/^/    /'
        failed="$failed $t"
    else
        [ "$mode" = replay ] && dir=$seeds || dir=$work
        echo "run-fuzz: $t ok: runs=${runs:-?} exec/s=${speed:-?} cov=${cov:-?} ft=${ft:-?} corpus=$(find "$dir" -type f | wc -l) (log $log)"
    fi
done

if [ -n "$failed" ]; then
    echo "run-fuzz: FAILED:$failed"
    exit 1
fi
echo "run-fuzz: all targets passed"
