#!/bin/sh
# bench/run-bench.sh - what `make bench` runs (docs/bench.md).
#
# Starts a throwaway PostgreSQL (tests/pg-cluster.sh, or uses DATABASE_URL), a stepkit-master
# with W workers on the bench workflows, measures W1 chain, W2 single, W3
# latency, W4 backlog, W6 burst and W5 history with build/bin/stepkit-bench,
# stops the master; then W7 with a master per pool size; measures the
# pgbench ceiling on the same server, and prints the ratios to the aims.
# One JSON line per workload goes to bench/results/results.jsonl.
#
# Environment:
#   BUILD            build directory (default build)
#   W                the master's workers (default 4)
#   DATABASE_URL     use this server instead of a throwaway one; the
#                    schemas bench and bench_pgbench are (re)created there
#   PGBENCH_SECONDS  length of each pgbench run (default 10)
#   RUNS_CHAIN, RUNS_SINGLE, RUNS_LATENCY  runs per workload (1000, 5000, 200)
#   BACKLOG          W4: ready items, and as many future ones, of a workflow
#                    no master serves while W2 runs again (default 100000; 0: skip W4)
#   BURST            W6: runs started at once by one start_runs() call
#                    (default 10000; 0: skip W6)
#   HISTORY          W5: finished runs loaded into runs and ops between its two
#                    passes of RUNS_HISTORY W2 runs (default 100000; 0: skip W5)
#   RUNS_HISTORY     W5: runs per pass (default 1500)
#   HISTORY_PASSES   W5: passes with the history, and twice as many on empty tables
#                    (half before the load, half after it is removed); medians (default 1)
#   IO_WORKERS       W7: pool sizes, a master each, running RUNS_IO runs of three
#                    20 ms steps (default "16"; "0": skip W7)
#   RUNS_IO          W7: runs per pool size (default 1000)
#   SCALE=1          the long variants (make bench-scale): BACKLOG 1000000, BURST 100000,
#                    HISTORY 10000000, RUNS_HISTORY 5000, HISTORY_PASSES 3,
#                    IO_WORKERS "4 16 64"
#   KEEP=1           keep the scratch directory (logs, cluster) afterwards
#   MASTER_ARGS      more stepkit-master flags, word-split (e.g. "--retention 1d")
#   PRUNE_BACKLOG    N > 0: before the master starts, N finished runs (one op
#                    each) that ended two days ago are inserted, so a master
#                    with --retention prunes them while the workloads run
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"

BUILD=${BUILD:-build}
W=${W:-4}
PGBENCH_SECONDS=${PGBENCH_SECONDS:-10}
RUNS_CHAIN=${RUNS_CHAIN:-1000}
RUNS_SINGLE=${RUNS_SINGLE:-5000}
RUNS_LATENCY=${RUNS_LATENCY:-200}
SCALE=${SCALE:-0}
if [ "$SCALE" = 1 ]; then
    BACKLOG=${BACKLOG:-1000000}
    BURST=${BURST:-100000}
    HISTORY=${HISTORY:-10000000}
    RUNS_HISTORY=${RUNS_HISTORY:-5000}
    HISTORY_PASSES=${HISTORY_PASSES:-3}
    IO_WORKERS=${IO_WORKERS:-4 16 64}
fi
BACKLOG=${BACKLOG:-100000}
BURST=${BURST:-10000}
HISTORY=${HISTORY:-100000}
RUNS_HISTORY=${RUNS_HISTORY:-1500}
HISTORY_PASSES=${HISTORY_PASSES:-1}
IO_WORKERS=${IO_WORKERS:-16}
RUNS_IO=${RUNS_IO:-1000}
KEEP=${KEEP:-0}
MASTER_ARGS=${MASTER_ARGS:-}
PRUNE_BACKLOG=${PRUNE_BACKLOG:-0}
CLIENTS=8 # producers of W1 and W2, and pgbench clients
SCHEMA=bench
PG_SCHEMA=bench_pgbench
MARK='stepkit-bench scratch schema' # SK_BENCH_SCHEMA_MARK in bench/sk_bench.h

BENCH=$BUILD/bin/stepkit-bench
MASTER=$BUILD/bin/stepkit-master
WF=$BUILD/bench/benchwf.so
RESULTS=bench/results/results.jsonl

say() { printf '%s\n' "$*"; }
die() { printf 'run-bench: %s\n' "$*" >&2; exit 2; }

is_count() { case $1 in '' | *[!0-9]*) return 1 ;; *) [ "$1" -ge 1 ] ;; esac; }
is_count "$W" || die "W must be a positive integer, got '$W'"
is_count "$PGBENCH_SECONDS" || die "PGBENCH_SECONDS must be a positive integer, got '$PGBENCH_SECONDS'"
is_count "$RUNS_CHAIN" || die "RUNS_CHAIN must be a positive integer, got '$RUNS_CHAIN'"
is_count "$RUNS_SINGLE" || die "RUNS_SINGLE must be a positive integer, got '$RUNS_SINGLE'"
case $BACKLOG in '' | *[!0-9]*) die "BACKLOG must be a count, got '$BACKLOG'" ;; esac
case $BURST in '' | *[!0-9]*) die "BURST must be a count, got '$BURST'" ;; esac
is_count "$RUNS_LATENCY" || die "RUNS_LATENCY must be a positive integer, got '$RUNS_LATENCY'"
case $HISTORY in '' | *[!0-9]*) die "HISTORY must be a count, got '$HISTORY'" ;; esac
if [ "${#HISTORY}" -gt 9 ] || [ "$HISTORY" -gt 100000000 ]; then
    die "HISTORY must be at most 100000000, got '$HISTORY'"
fi
is_count "$RUNS_HISTORY" || die "RUNS_HISTORY must be a positive integer, got '$RUNS_HISTORY'"
case $HISTORY_PASSES in [1-9]) ;; *) die "HISTORY_PASSES must be 1 to 9, got '$HISTORY_PASSES'" ;; esac
is_count "$RUNS_IO" || die "RUNS_IO must be a positive integer, got '$RUNS_IO'"
# IO_WORKERS: pool sizes separated by spaces or commas, each 1-256; "0" skips W7.
IO_WORKERS=$(printf '%s' "$IO_WORKERS" | tr ',' ' ')
if [ "$(printf '%s' "$IO_WORKERS" | tr -d ' ')" = 0 ]; then
    IO_WORKERS=
fi
for n in $IO_WORKERS; do
    { is_count "$n" && [ "${#n}" -le 3 ] && [ "$n" -le 256 ]; } ||
        die "IO_WORKERS must list pool sizes from 1 to 256 (or be 0), got '$IO_WORKERS'"
done
for f in "$BENCH" "$MASTER" "$WF"; do
    [ -e "$f" ] || die "$f is missing: run 'make bench'"
done
for t in psql pgbench git tests/pg-cluster.sh; do
    command -v "$t" >/dev/null 2>&1 || die "$t is not installed (make deps)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/stepkit-bench.XXXXXX")
chmod 755 "$work"
cluster=
master_pid=

# ---- a throwaway PostgreSQL ---------------------------------------------------

cleanup() {
    code=$?
    trap - EXIT INT TERM
    if [ -n "$master_pid" ] && kill -0 "$master_pid" 2>/dev/null; then
        kill -TERM "$master_pid" 2>/dev/null || true
        wait "$master_pid" 2>/dev/null || true
    fi
    if [ -n "$cluster" ]; then
        tests/pg-cluster.sh stop "$cluster" >/dev/null 2>&1 || true
    fi
    if [ "$code" != 0 ]; then
        say "run-bench: failed ($code); logs kept in $work" >&2
    elif [ "$KEEP" = 1 ]; then
        say "run-bench: logs kept in $work"
    else
        rm -rf "$work"
    fi
    exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${DATABASE_URL:-}" ]; then
    url=$DATABASE_URL
    where="DATABASE_URL"
else
    cluster=$work/pg
    url=$(tests/pg-cluster.sh start "$cluster" 2>"$work/pg-cluster.log") ||
        { cat "$work/pg-cluster.log" >&2; die "tests/pg-cluster.sh start failed"; }
    where="throwaway cluster (tests/pg-cluster.sh)"
fi
export DATABASE_URL="$url"

psql_q() { psql -X -q -At -v ON_ERROR_STOP=1 "$url" "$@"; }

# A schema we may drop: absent, or made by us (it carries our comment).
fresh_schema() {
    mark=$(psql_q -v s="$1" <<'EOF'
SELECT coalesce(obj_description(oid, 'pg_namespace'), '(none)') FROM pg_namespace WHERE nspname = :'s';
EOF
    )
    if [ -n "$mark" ] && [ "$mark" != "$MARK" ]; then
        die "schema $1 exists and was not made by the bench (comment: $mark); not dropping it"
    fi
    psql_q -v s="$1" -v m="$MARK" >/dev/null <<'EOF'
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS :"s" CASCADE;
CREATE SCHEMA :"s";
COMMENT ON SCHEMA :"s" IS :'m';
EOF
}

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    commit="$commit-dirty"
fi
session=$(date -u +%Y%m%dT%H%M%SZ)-$$
server=$(psql_q -c 'SHOW server_version')
mkdir -p bench/results

say "== stepkit bench $session, commit $commit"
say "   $(nproc) cores, PostgreSQL $server on a $where, $W workers, $CLIENTS producers"
say

fresh_schema "$SCHEMA"
fresh_schema "$PG_SCHEMA"

# ---- the engine ---------------------------------------------------------------

if [ "$PRUNE_BACKLOG" -gt 0 ]; then
    "$BUILD/bin/stepkit" --schema "$SCHEMA" migrate >/dev/null 2>&1 || die "stepkit migrate failed"
    psql_q -v n="$PRUNE_BACKLOG" >/dev/null <<'EOF'
SET search_path = bench;
INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data, status,
                  output, created_at, ended_at)
SELECT gen_random_uuid(), 'bench-backlog', gen_random_uuid(), 'invoke', 'bench-backlog', '\xc0',
       'completed', '\xc0', now() - interval '2 days', now() - interval '2 days' + i * interval '1 ms'
  FROM generate_series(1, :n) i;
INSERT INTO ops (run_id, op_key, step_id, status, result, attempts)
SELECT run_id, 'k', 's1', 'ok', '\xc0', 1 FROM runs WHERE workflow_id = 'bench-backlog';
VACUUM ANALYZE runs;
VACUUM ANALYZE ops;
EOF
    say "   backlog: $PRUNE_BACKLOG finished runs inserted; master flags: $MASTER_ARGS"
fi

# start_master WORKERS LOG [FLAGS...]: a master in the background, its pid
# in master_pid and its workers in master_workers.
start_master() {
    master_workers=$1
    master_log=$2
    shift 2
    "$MASTER" --schema "$SCHEMA" --workers "$master_workers" --workflows "$WF" "$@" \
        >"$master_log" 2>&1 &
    master_pid=$!
    sleep 0.2
    kill -0 "$master_pid" 2>/dev/null ||
        { cat "$master_log" >&2; die "stepkit-master exited at once"; }
}

# stop_master: SIGTERM, then report a non-zero exit or errors in its log.
stop_master() {
    kill -TERM "$master_pid"
    rc=0
    wait "$master_pid" || rc=$?
    master_pid=
    [ "$rc" = 0 ] || say "run-bench: stepkit-master exited with $rc after SIGTERM (see $master_log)"
    if grep -q 'level=error' "$master_log"; then
        say "run-bench: the master logged errors ($master_log):"
        grep 'level=error' "$master_log" | head -n 5
    fi
}

# shellcheck disable=SC2086 # MASTER_ARGS is a list of flags
start_master "$W" "$work/master.log" $MASTER_ARGS

bench() {
    t=$(date +%s)
    "$BENCH" --schema "$SCHEMA" --workers "$master_workers" --master-pid "$master_pid" \
        --session "$session" --commit "$commit" --out "$RESULTS" "$@" || {
        rc=$?
        say "run-bench: stepkit-bench $* failed ($rc); the master's log ends with:" >&2
        tail -n 20 "$master_log" >&2
        exit 1
    }
    say "  (this workload took $(($(date +%s) - t)) s, warm-up and loading included)"
    say
}

start=$(date +%s)
bench --workload chain --runs "$RUNS_CHAIN" --producers "$CLIENTS"
bench --workload single --runs "$RUNS_SINGLE" --producers "$CLIENTS"
bench --workload latency --runs "$RUNS_LATENCY"
if [ "$BACKLOG" -gt 0 ]; then
    bench --workload backlog --runs "$RUNS_SINGLE" --producers "$CLIENTS" \
        --backlog-ready "$BACKLOG" --backlog-future "$BACKLOG" --timeout 900
fi
if [ "$BURST" -gt 0 ]; then
    bench --workload burst --runs "$BURST" --timeout 1800
fi

# W5 last with this master: it empties runs and ops (the earlier workloads'
# runs go), loads the history between its passes, and empties them again.
if [ "$HISTORY" -gt 0 ] && [ "$PRUNE_BACKLOG" -gt 0 ]; then
    say "   W5 history skipped: it would empty the PRUNE_BACKLOG runs"
elif [ "$HISTORY" -gt 0 ]; then
    bench --workload history --runs "$RUNS_HISTORY" --producers "$CLIENTS" \
        --history "$HISTORY" --passes "$HISTORY_PASSES" --timeout 900
fi

if [ "$PRUNE_BACKLOG" -gt 0 ]; then
    say "   backlog left after the workloads: $(psql_q -c "SELECT count(*) FROM bench.runs WHERE workflow_id = 'bench-backlog'") of $PRUNE_BACKLOG runs; pruned in $(grep -c 'event=runs_pruned' "$work/master.log" || true) batches"
fi

stop_master

# W7: a master per pool size, without the HTTP process (its port would
# collide with a master of yours, and it is not part of the pool).
for n in $IO_WORKERS; do
    # shellcheck disable=SC2086 # MASTER_ARGS is a list of flags
    start_master "$n" "$work/master-io-$n.log" $MASTER_ARGS --http off
    bench --workload io --runs "$RUNS_IO" --producers "$CLIENTS"
    stop_master
done

# ---- the pgbench ceiling ----------------------------------------------------------

# pgbench FILE CLIENTS THREADS: prints "tps latency_ms".
run_pgbench() {
    PGOPTIONS="-c search_path=$PG_SCHEMA" psql_q -f bench/pgbench/setup.sql >/dev/null 2>&1 ||
        die "bench/pgbench/setup.sql failed"
    psql_q -c "VACUUM ANALYZE $PG_SCHEMA.ins, $PG_SCHEMA.q, $PG_SCHEMA.results" >/dev/null
    log=$work/pgbench-$(basename "$1" .sql)-c$2.log
    PGOPTIONS="-c search_path=$PG_SCHEMA" pgbench -n -M prepared -c "$2" -j "$3" \
        -T "$PGBENCH_SECONDS" -f "$1" "$url" >"$log" 2>&1 ||
        { cat "$log" >&2; die "pgbench -f $1 -c $2 failed"; }
    tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$log" | head -n 1)
    lat=$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' "$log" | head -n 1)
    if [ -z "$tps" ] || [ -z "$lat" ]; then
        cat "$log" >&2
        die "cannot read tps and latency from $log"
    fi
    printf '%s %s\n' "$tps" "$lat"
}

say "pgbench: ${PGBENCH_SECONDS} s each, -M prepared, tables in schema $PG_SCHEMA"
out=$(run_pgbench bench/pgbench/insert.sql "$CLIENTS" 2)
insert_tps=${out% *}
out=$(run_pgbench bench/pgbench/checkpoint.sql "$CLIENTS" 2)
checkpoint_tps=${out% *}
out=$(run_pgbench bench/pgbench/checkpoint.sql 1 1)
checkpoint_1c_tps=${out% *}
checkpoint_1c_lat=${out#* }

"$BENCH" --workload ceiling --session "$session" --commit "$commit" --out "$RESULTS" \
    --clients "$CLIENTS" --insert-tps "$insert_tps" --checkpoint-tps "$checkpoint_tps" \
    --checkpoint-1c-tps "$checkpoint_1c_tps" --checkpoint-1c-latency-ms "$checkpoint_1c_lat" ||
    exit 1

# The engine's schema stays for inspection (stepkit get, psql); the next
# bench drops it.  The ceiling's tables go.
psql_q -c "DROP SCHEMA $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true

say
say "results appended to $RESULTS (session $session), $(($(date +%s) - start)) s"
