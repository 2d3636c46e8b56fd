#!/usr/bin/env bash
# Runs the Criterion suites against PostgreSQL and prints one summary line.
#
#   tests/run-tests.sh              every suite that was built
#   tests/run-tests.sh unit         $BUILD/tests/unit_tests only
#   tests/run-tests.sh integration  $BUILD/tests/integration_tests only
#
# Environment:
#   BUILD=build            build directory holding tests/unit_tests etc.
#   POSTGRES_TEST_URL      use this server; otherwise a throwaway cluster is
#                          started in a fresh /tmp directory and removed on exit
#   VALGRIND=1             unit tests under valgrind (installed on demand)
#   SANITIZE=...           the build is instrumented (make asan): sets
#                          ASAN_OPTIONS/UBSAN_OPTIONS, fails on any report
#   CRITERION_ARGS         extra Criterion flags, word-split (e.g. "--filter=pg/*")
#   UNIT_TIMEOUT, INTEGRATION_TIMEOUT   seconds per suite (300/900 valgrind, 600)
#
# Exported to the tests:
#   POSTGRES_TEST_URL      libpq URL of the server (superuser, trust auth)
#   STEPKIT_BUILD          absolute path of $BUILD (binaries, testwf.so)
#   STEPKIT_TEST_LOGDIR    absolute path of $BUILD/tests/logs, emptied at each
#                          run: daemon logs (one per pid), sanitizer reports,
#                          and a copy of the cluster log at the end
#   STEPKIT_TEST_SANITIZE  SANITIZE's value in a sanitizer build (timing slack)
#   STEPKIT_TEST_PGLOG     the throwaway cluster's log (unset with an external
#                          POSTGRES_TEST_URL)
set -eu

say() { echo "run-tests: $*"; }
die() { echo "run-tests: error: $*" >&2; exit 1; }

cd "$(dirname "$0")/.."

which=${1:-all}
case $which in
    unit | integration | all) ;;
    *) echo "usage: $0 [unit|integration]" >&2; exit 2 ;;
esac

BUILD=${BUILD:-build}
VALGRIND=${VALGRIND:-}
SANITIZE=${SANITIZE:-}
[ -d "$BUILD" ] || die "no build directory '$BUILD' (run make first)"
STEPKIT_BUILD=$(cd "$BUILD" && pwd -P)
export STEPKIT_BUILD
unit_bin=$STEPKIT_BUILD/tests/unit_tests
integ_bin=$STEPKIT_BUILD/tests/integration_tests

STEPKIT_TEST_LOGDIR=$STEPKIT_BUILD/tests/logs
rm -rf "$STEPKIT_TEST_LOGDIR"
mkdir -p "$STEPKIT_TEST_LOGDIR"
export STEPKIT_TEST_LOGDIR

read -r -a crit_args <<<"${CRITERION_ARGS:-}"

# Decide what runs before starting any server.  A suite asked for by name must
# exist; with no argument, those built run, and at least one must be (passing
# without running a single test would hide a broken build).
case $which in
    unit) [ -x "$unit_bin" ] || die "$unit_bin was not built (make unit)" ;;
    integration) [ -x "$integ_bin" ] || die "$integ_bin was not built (make integration)" ;;
    all) [ -x "$unit_bin" ] || [ -x "$integ_bin" ] ||
        die "no test suite was built in $STEPKIT_BUILD/tests (make test)" ;;
esac

# ---- PostgreSQL ---------------------------------------------------------------

pgdir=""
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
    if [ -n "$pgdir" ]; then
        # Keep the cluster log for whoever reads the CI output later.
        cp "$pgdir/postgresql.log" "$STEPKIT_TEST_LOGDIR/postgresql.log" 2>/dev/null || true
        tests/pg-cluster.sh stop "$pgdir" || true
        rm -rf "$pgdir"
        say "throwaway cluster removed (its log: $STEPKIT_TEST_LOGDIR/postgresql.log)"
    fi
}
trap cleanup EXIT
# Ctrl-C, kill, hangup: exit, which runs the cleanup above.
trap 'echo "run-tests: interrupted" >&2; exit 130' INT TERM HUP

if [ -n "${POSTGRES_TEST_URL:-}" ]; then
    say "using POSTGRES_TEST_URL=$POSTGRES_TEST_URL"
else
    pgdir=$(mktemp -d /tmp/stepkit-test-pg.XXXXXX)
    say "starting a throwaway PostgreSQL cluster in $pgdir"
    POSTGRES_TEST_URL=$(tests/pg-cluster.sh start "$pgdir")
    STEPKIT_TEST_PGLOG=$pgdir/postgresql.log
    export STEPKIT_TEST_PGLOG
    say "POSTGRES_TEST_URL=$POSTGRES_TEST_URL"
fi
export POSTGRES_TEST_URL

# ---- memory checkers ------------------------------------------------------------

# True when LeakSanitizer works here: it stops the world with ptrace, which
# some sandboxes and debuggers forbid.  A tiny leaking program must be caught.
lsan_works() {
    local t out
    t=$(mktemp -d)
    printf '#include <stdlib.h>\nvoid *volatile p;\nint main(void){p = malloc(7); p = 0; return 0;}\n' >"$t/leak.c"
    if ! "${CC:-cc}" -fsanitize=address -g -o "$t/leak" "$t/leak.c" 2>/dev/null; then
        rm -rf "$t"
        return 0 # cannot tell; keep leak detection on
    fi
    out=$(ASAN_OPTIONS=detect_leaks=1:exitcode=23 "$t/leak" 2>&1) || true
    rm -rf "$t"
    case $out in *"detected memory leaks"*) return 0 ;; esac
    echo "$out" | head -n 5 >&2
    return 1
}

if [ -n "$SANITIZE" ]; then
    leaks=1
    case $SANITIZE in
        *address*)
            if ! lsan_works; then
                leaks=0
                say "WARNING: LeakSanitizer does not work here (ptrace forbidden?): detect_leaks=0, leaks are NOT checked"
            fi
            ;;
    esac
    # One report file per process (<name>.<pid>), so reports from daemons the
    # integration tests start are kept too; checked after the suites.  Options
    # already in the environment come last and win.
    ASAN_OPTIONS="detect_leaks=$leaks:abort_on_error=1:log_path=$STEPKIT_TEST_LOGDIR/asan${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$STEPKIT_TEST_LOGDIR/ubsan${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
    # Contract time bounds get slack in an instrumented build (itest.h).
    STEPKIT_TEST_SANITIZE=$SANITIZE
    export ASAN_OPTIONS UBSAN_OPTIONS STEPKIT_TEST_SANITIZE
    say "SANITIZE=$SANITIZE: ASAN_OPTIONS=$ASAN_OPTIONS"
    say "UBSAN_OPTIONS=$UBSAN_OPTIONS"
fi

if [ "$VALGRIND" = 1 ] && ! command -v valgrind >/dev/null 2>&1; then
    say "VALGRIND=1 but valgrind is not installed: installing it"
    deploy/install-deps.sh valgrind
fi

# ---- suites --------------------------------------------------------------------

summary=""
failed=0

# run_suite NAME BINARY TIMEOUT COMMAND...: runs one suite, records the result.
run_suite() {
    local name=$1 bin=$2 limit=$3 rc start
    shift 3
    if [ ! -x "$bin" ]; then
        summary="$summary $name: not built;"
        say "skipping $name tests: $bin was not built"
        return 0
    fi
    echo
    say "==> $name tests: $*"
    start=$SECONDS
    rc=0
    # --foreground: Ctrl-C still reaches the suite; -k: SIGKILL if SIGTERM is ignored.
    timeout --foreground -k 15 "$limit" "$@" || rc=$?
    if [ $rc = 0 ]; then
        summary="$summary $name: passed ($((SECONDS - start)) s);"
    elif [ $rc = 124 ] || [ $rc = 137 ]; then
        summary="$summary $name: TIMED OUT after ${limit} s;"
        failed=1
    else
        summary="$summary $name: FAILED (exit $rc, $((SECONDS - start)) s);"
        failed=1
    fi
}

if [ "$which" != integration ]; then
    if [ "$VALGRIND" = 1 ]; then
        # Criterion runs each test in a child process whose exit code does not
        # reach the runner's: so one log per pid, and any non-empty log
        # (-q: errors only) fails the run below.  --jobs 1: one test at a time.
        run_suite unit "$unit_bin" "${UNIT_TIMEOUT:-900}" \
            valgrind --trace-children=yes --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
            --error-exitcode=99 -q --log-file="$STEPKIT_TEST_LOGDIR/valgrind.%p.log" \
            "$unit_bin" --jobs 1 "${crit_args[@]}"
    else
        run_suite unit "$unit_bin" "${UNIT_TIMEOUT:-300}" "$unit_bin" "${crit_args[@]}"
    fi
fi
if [ "$which" != unit ]; then
    # --jobs 2: CI has 2 cores; every test works in its own schema.
    run_suite integration "$integ_bin" "${INTEGRATION_TIMEOUT:-600}" \
        "$integ_bin" --jobs 2 "${crit_args[@]}"
fi
echo


# Errors in the cluster log are for the reader: tests provoke some on purpose
# (e.g. SK001 'lease lost' in the fencing tests), so they do not fail the run.
if [ -n "${STEPKIT_TEST_PGLOG:-}" ] && [ -f "$STEPKIT_TEST_PGLOG" ]; then
    n=$(grep -c 'ERROR:' "$STEPKIT_TEST_PGLOG" || true)
    say "PostgreSQL log: $n ERROR line(s) (tests provoke some on purpose; not a failure by itself)"
    if [ "$n" -gt 0 ]; then
        grep -m 5 'ERROR:' "$STEPKIT_TEST_PGLOG" | sed 's/^/    /'
        [ "$n" -le 5 ] || echo "    ... (all in $STEPKIT_TEST_LOGDIR/postgresql.log)"
    fi
fi

# Memory checker reports from any process (test children, and daemons the
# tests start) fail the run.  print_reports KIND FILE...
print_reports() {
    local kind=$1 f
    shift
    if [ $# -gt 0 ]; then
        say "$# $kind report(s):"
        for f in "$@"; do
            echo "---- $f"
            head -n 40 "$f"
        done
        summary="$summary $kind: $# REPORT(S);"
        failed=1
    else
        summary="$summary $kind: no reports;"
    fi
}
if [ "$VALGRIND" = 1 ]; then
    find "$STEPKIT_TEST_LOGDIR" -maxdepth 1 -name 'valgrind.*.log' -empty -delete
    mapfile -t reports < <(find "$STEPKIT_TEST_LOGDIR" -maxdepth 1 -name 'valgrind.*.log' | sort)
    print_reports valgrind "${reports[@]}"
fi
if [ -n "$SANITIZE" ]; then
    mapfile -t reports < <(find "$STEPKIT_TEST_LOGDIR" -maxdepth 1 -type f \( -name 'asan.*' -o -name 'ubsan.*' \) | sort)
    print_reports sanitizers "${reports[@]}"
    if [ "$leaks" = 0 ]; then
        summary="$summary leaks NOT checked (LeakSanitizer unusable here);"
    fi
fi

if [ "$failed" = 0 ]; then
    say "PASSED:${summary%;}"
else
    say "FAILED:${summary%;}"
fi
exit "$failed"
