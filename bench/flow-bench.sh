#!/usr/bin/env bash
# Flow-control bench (docs/flow-control.md): RUNS runs of the example
# `per-customer` over KEYS customers, concurrency limit 2 per customer plus
# a rate limit of RATE starts per second (whole workflow), on 2 masters x
# WORKERS workers; then the same runs with no flow control.
#
# Checks from outside the engine: the runs' own outputs (started_ms and
# ended_ms around each body, wall clock) give the most bodies of one
# customer in progress at once, and the most body starts in any 1000 ms
# window; during the run, the bodies in progress per customer are sampled
# every 20 ms from the ops table (a step started, its run not ended).
#
#   bench/flow-bench.sh           (throwaway cluster; DATABASE_URL to use yours)
#   RUNS=2000 KEYS=20 RATE=200 MS=20 WORKERS=4 bench/flow-bench.sh
set -euo pipefail

RUNS=${RUNS:-2000}
KEYS=${KEYS:-20}
RATE=${RATE:-200}
MS=${MS:-20}
WORKERS=${WORKERS:-4}
BUILD=${BUILD:-build}
SCHEMA=flowbench

say() { echo "flow-bench: $*" >&2; }
die() { say "error: $*"; exit 1; }

work=$(mktemp -d /tmp/flow-bench.XXXXXX)
chmod 755 "$work"
cluster=
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] && cp "$work"/master*.log /tmp/ 2>/dev/null
    [ -n "$cluster" ] && tests/pg-cluster.sh stop "$cluster" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

if [ -n "${DATABASE_URL:-}" ]; then
    url=$DATABASE_URL
else
    cluster=$work/pg
    mkdir -p "$cluster"
    url=$(tests/pg-cluster.sh start "$cluster" 2>"$work/pg.log") || { cat "$work/pg.log" >&2; die "cluster"; }
fi
export DATABASE_URL="$url"
q() { PGOPTIONS="-c search_path=$SCHEMA" psql "$url" -qAtX -v ON_ERROR_STOP=1 "$@"; }
psql "$url" -qAtX -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1

for k in 1 2; do
    "$BUILD/bin/stepkit-master" --schema "$SCHEMA" --workers "$WORKERS" --http off \
        --workflows "$BUILD/examples/examples.so" >"$work/master$k.log" 2>&1 &
    pids+=($!)
done
for _ in $(seq 100); do
    n=$(q -c "SELECT count(*) FROM workflows WHERE workflow_id = 'per-customer'" 2>/dev/null || echo 0)
    [ "$n" = 1 ] && break
    sleep 0.1
done
[ "$n" = 1 ] || die "per-customer not registered"
sleep 1

# One pass: start RUNS runs at once, sample while they run, wait, report.
pass() {
    local label=$1 t0 t1 live max_sampled=0 done_n secs
    q -c "TRUNCATE runs, ops" >/dev/null
    t0=$(date +%s%N)
    q -c "SELECT count(*) FROM start_runs('per-customer',
            (SELECT array_agg(jsonb_build_object('customer', 'c' || (i % $KEYS), 'ms', $MS)
                              ORDER BY i) FROM generate_series(1, $RUNS) i))" >/dev/null
    while :; do
        live=$(q -c "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM flow_holders GROUP BY key) x")
        [ "$live" -gt "$max_sampled" ] && max_sampled=$live
        done_n=$(q -c "SELECT count(*) FROM runs WHERE status <> 'pending'")
        [ "$done_n" -ge "$RUNS" ] && break
        sleep 0.02
    done
    t1=$(date +%s%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
    q -c "DROP TABLE IF EXISTS spans;
          CREATE TABLE spans AS SELECT mp_path(output, '{customer}') c,
                 mp_path(output, '{started_ms}')::int8 s, mp_path(output, '{ended_ms}')::int8 e
            FROM runs WHERE status = 'completed'" >/dev/null
    echo "$label: $RUNS runs in ${secs} s ($(awk -v n="$RUNS" -v s="$secs" 'BEGIN { printf "%.1f", n / s }') runs/s)"
    echo "  completed: $(q -c "SELECT count(*) FROM spans")"
    echo "  most bodies of one customer in progress at once (outputs): $(q -c "
        SELECT max(n) FROM (SELECT (SELECT count(*) FROM spans b
                                     WHERE b.c = a.c AND b.s <= a.s AND a.s < b.e) n FROM spans a) x")"
    echo "  most slots held by one customer (sampled every 20 ms): $max_sampled"
    echo "  most body starts in any 1000 ms window (outputs): $(q -c "
        SELECT max(n) FROM (SELECT count(*) OVER (ORDER BY s RANGE BETWEEN CURRENT ROW AND 999 FOLLOWING) n
                              FROM spans) x")"
    echo "  most body starts in any 900 ms window (outputs): $(q -c "
        SELECT max(n) FROM (SELECT count(*) OVER (ORDER BY s RANGE BETWEEN CURRENT ROW AND 899 FOLLOWING) n
                              FROM spans) x")"
}

q -c "SELECT set_flow_control('per-customer', 2, 'customer', $RATE, 1000)" >/dev/null
pass "limited (2 per customer, $RATE starts/s, $((2 * WORKERS)) workers)"
q -c "SELECT set_flow_control('per-customer')" >/dev/null
pass "unlimited (same runs)"
for k in 1 2; do
    grep -c 'level=error' "$work/master$k.log" | sed "s/^/master $k error lines: /"
done
