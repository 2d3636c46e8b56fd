#!/usr/bin/env bash
# The examples end to end, for `make demo`: a master with two workers runs the
# say-hi workflow from examples.so while the command line client invokes it,
# starts a run and shows its step timeline.
#
# Database: DATABASE_URL if set, otherwise a private PostgreSQL cluster in
# .stepkit/pg (started here, stopped at the end, data kept between demos).
# Environment: BUILD (default build).
set -eu

cd "$(dirname "$0")/.."

BUILD=${BUILD:-build}
master_bin=$BUILD/bin/stepkit-master
cli=$BUILD/bin/stepkit
examples=$BUILD/examples/examples.so
master_log=.stepkit/master.log

step() { echo; echo "==> $*"; }
die() { echo "demo: error: $*" >&2; exit 1; }

for f in "$master_bin" "$cli" "$examples"; do
    [ -e "$f" ] || die "$f is missing: build first (make demo builds it)"
done

master_pid=""
own_cluster=""
# On any exit (error, Ctrl-C) stop what was started; the normal path below
# does the same steps itself and says so.
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
    if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
        echo "demo: stopping the master (pid $master_pid)" >&2
        kill -TERM "$master_pid" 2>/dev/null || true
        wait "$master_pid" 2>/dev/null || true
    fi
    if [ -n "$own_cluster" ]; then
        tests/pg-cluster.sh stop .stepkit/pg || true
    fi
}
trap cleanup EXIT
trap 'echo "demo: interrupted" >&2; exit 130' INT TERM HUP

# Tail of the master's log, for when something goes wrong.
show_master_log() {
    echo "---- last lines of $master_log:"
    tail -n "${1:-20}" "$master_log" || true
    echo "----"
}

mkdir -p .stepkit
if [ -n "${DATABASE_URL:-}" ]; then
    # Never print a password that may be in the URL.
    # shellcheck disable=SC2001 # a back-reference: sed is clearer here
    step "using DATABASE_URL=$(echo "$DATABASE_URL" | sed -e 's#//\([^:/@]*\):[^@]*@#//\1:***@#')"
else
    if [ -f .stepkit/pg/data/PG_VERSION ]; then
        step "starting the private PostgreSQL cluster in .stepkit/pg (kept from earlier demos)"
    else
        step "starting a private PostgreSQL cluster in .stepkit/pg (first demo: initdb)"
    fi
    own_cluster=1
    DATABASE_URL=$(tests/pg-cluster.sh start .stepkit/pg)
    echo "DATABASE_URL=$DATABASE_URL"
fi
# Both the master and the client read it.
export DATABASE_URL

step "starting stepkit-master --workers 2 --workflows $examples (log: $master_log)"
"$master_bin" --workers 2 --workflows "$examples" >"$master_log" 2>&1 &
master_pid=$!
echo "master pid $master_pid"

# The master migrates the schema and registers the workflows before `start`
# can succeed: retry for about 10 s.
step "waiting until 'stepkit start' works (the master migrates first; up to 10 s)"
ready=""
for _ in $(seq 1 40); do
    if ! kill -0 "$master_pid" 2>/dev/null; then
        rc=0
        wait "$master_pid" || rc=$?
        master_pid=""
        show_master_log
        die "the master exited during startup (exit code $rc)"
    fi
    if out=$("$cli" start say-hi --data '{"name":"warm-up"}' 2>&1); then
        ready=1
        break
    fi
    sleep 0.25
done
if [ -z "$ready" ]; then
    echo "last attempt said: $out"
    show_master_log
    die "'stepkit start' still fails after 10 s"
fi
echo "ready (warm-up run $out)"

unexpected=0

for data in '{"name":"Ada"}' '{"name":"Grace"}'; do
    step "invoking say-hi with $data"
    "$cli" invoke say-hi --data "$data" --timeout 10000
done

# A wrong input type is rejected by the workflow's input validation: the demo
# shows the error and goes on.
step 'invoking say-hi with {"name": 1} (expected to fail with InvalidInputError)'
rc=0
out=$("$cli" invoke say-hi --data '{"name": 1}' --timeout 10000 2>&1) || rc=$?
echo "$out"
if [ $rc = 0 ]; then
    echo "demo: UNEXPECTED: the invocation succeeded"
    unexpected=1
else
    echo "(exit code $rc, as expected)"
    case $out in
        *InvalidInput*) ;;
        *) echo "demo: note: the error does not name InvalidInputError" ;;
    esac
fi

step 'starting say-hi with {"name":"Lin"} (stepkit start prints the run id)'
run_id=$("$cli" start say-hi --data '{"name":"Lin"}')
echo "$run_id"

# `start` returns at once; give the workers a moment to finish the run so the
# timeline is complete.
step "waiting for run $run_id to complete or fail (up to 10 s)"
status=""
for _ in $(seq 1 40); do
    if "$cli" run "$run_id" --json 2>/dev/null |
        grep -Eq '"status"[[:space:]]*:[[:space:]]*"(completed|failed)"'; then
        status=finished
        break
    fi
    sleep 0.25
done
if [ -n "$status" ]; then
    echo "$status"
else
    echo "still running after 10 s; showing it as it is"
fi

step "stepkit run $run_id (the step timeline)"
"$cli" run "$run_id"

step "stepkit run $run_id --json"
"$cli" run "$run_id" --json

step 'invoking nap with {"ms": 500}: a sleep holds no worker'
"$cli" invoke nap --data '{"ms": 500}' --timeout 10000

step 'starting approval with {"id": "demo", "timeout_ms": 30000}: it waits for a signal'
approval_id=$("$cli" start approval --data '{"id": "demo", "timeout_ms": 30000}')
sleep 0.5
"$cli" run "$approval_id"

step 'stepkit signal approval-demo --data {"approved": true, "by": "Ada"} (prints the run it woke)'
"$cli" signal approval-demo --data '{"approved": true, "by": "Ada"}'
sleep 0.5
"$cli" run "$approval_id"

step 'invoking fan-out with three names: child runs and a step, in parallel'
"$cli" invoke fan-out --data '{"names": ["Ada", "Grace", "Lin"]}' --timeout 10000

step 'stepkit send user.signup --data {"name": "Bo"}: the event id, then the run it started (welcome)'
"$cli" send user.signup --data '{"name": "Bo"}'

step "sending SIGTERM to the master (pid $master_pid): it drains, then exits"
kill -TERM "$master_pid"
# Its own shutdown timeout should end it; SIGKILL after 30 s in case it hangs.
for _ in $(seq 1 120); do
    kill -0 "$master_pid" 2>/dev/null || break
    sleep 0.25
done
if kill -0 "$master_pid" 2>/dev/null; then
    echo "demo: the master is still running after 30 s: SIGKILL"
    kill -KILL "$master_pid" 2>/dev/null || true
    unexpected=1
fi
rc=0
wait "$master_pid" || rc=$?
master_pid=""
echo "master exited with code $rc"
if [ $rc != 0 ]; then
    echo "demo: UNEXPECTED: a clean shutdown exits 0"
    unexpected=1
    show_master_log
else
    show_master_log 10
fi

if [ -n "$own_cluster" ]; then
    step "stopping the private PostgreSQL cluster"
    tests/pg-cluster.sh stop .stepkit/pg
    own_cluster=""
    echo ".stepkit/ keeps the data: the runs above are still there next time; rm -rf .stepkit resets it"
fi

if [ $unexpected != 0 ]; then
    echo
    echo "demo: finished, but with the UNEXPECTED results above"
fi
exit $unexpected
