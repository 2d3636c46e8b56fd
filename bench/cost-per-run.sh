#!/bin/sh
# bench/cost-per-run.sh - what a run costs the machine under load, for
# several master configurations in turn (docs/performance.md, section 8).
#
#   bench/cost-per-run.sh 'ARGS A' 'ARGS B' ...     e.g. '--batch 1' '--batch 8'
#
# A throwaway cluster; for each round, each configuration: a fresh schema,
# a stepkit-master (W workers) started with those flags, then W1 chain, W2
# single and W3 latency with stepkit-bench.  Printed per workload: the CPU
# of the cluster's and the master's processes per run (utime + stime from
# /proc, reaped children included), WAL records, bytes and syncs per run
# (pg_stat_wal), and the driver's throughput or latency.  Unlike
# throughput, these move little with other work on the machine.
#
# Environment: BUILD (build), W (4), ROUNDS (3), RUNS_CHAIN (1500),
# RUNS_SINGLE (4000), RUNS_LATENCY (300), KEEP=1 keeps the scratch folder.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"
BUILD=${BUILD:-build}
W=${W:-4}
ROUNDS=${ROUNDS:-3}
RUNS_CHAIN=${RUNS_CHAIN:-1500}
RUNS_SINGLE=${RUNS_SINGLE:-4000}
RUNS_LATENCY=${RUNS_LATENCY:-300}
KEEP=${KEEP:-0}

die() { printf 'cost-per-run: %s\n' "$*" >&2; exit 2; }
for v in W ROUNDS RUNS_CHAIN RUNS_SINGLE RUNS_LATENCY; do
    eval "val=\$$v"
    case $val in '' | *[!0-9]* | 0) die "$v must be a positive integer, got '$val'" ;; esac
done
[ $# -gt 0 ] || set -- ''
for f in "$BUILD/bin/stepkit" "$BUILD/bin/stepkit-master" "$BUILD/bin/stepkit-bench" \
    "$BUILD/bench/benchwf.so"; do
    [ -e "$f" ] || die "$f is missing: make all $BUILD/bin/stepkit-bench $BUILD/bench/benchwf.so"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/stepkit-cost.XXXXXX")
chmod 755 "$work"
master=
cleanup() {
    [ -z "$master" ] || kill -TERM "$master" 2>/dev/null || true
    tests/pg-cluster.sh stop "$work/pg" >/dev/null 2>&1 || true
    [ "$KEEP" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM
url=$(tests/pg-cluster.sh start "$work/pg" 2>/dev/null)
data="$work/pg/data"

# utime + stime of a process, its children and its reaped children (ticks).
tree_cpu() {
    t=0
    for p in "$1" $(pgrep -P "$1"); do
        v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        t=$((t + v))
    done
    v=$(awk '{print $16 + $17}' "/proc/$1/stat" 2>/dev/null || echo 0)
    echo $((t + v))
}
hz=$(getconf CLK_TCK)

one() { # label args workload runs producers
    label=$1 args=$2 wl=$3 runs=$4 prod=$5
    psql "$url" -qc "DROP SCHEMA IF EXISTS bench CASCADE" >/dev/null 2>&1
    psql "$url" -qc "CREATE SCHEMA bench" >/dev/null
    "$BUILD/bin/stepkit" --database-url "$url" --schema bench migrate >/dev/null 2>&1 ||
        die "migrate failed"
    # shellcheck disable=SC2086 # args is a list of flags
    DATABASE_URL=$url "$BUILD/bin/stepkit-master" --schema bench --workers "$W" --http off \
        --workflows "$BUILD/bench/benchwf.so" $args >"$work/master.log" 2>&1 &
    master=$!
    sleep 1
    kill -0 "$master" 2>/dev/null || { cat "$work/master.log" >&2; die "stepkit-master exited"; }
    pm=$(head -n 1 "$data/postmaster.pid")
    c0=$(($(tree_cpu "$pm") + $(tree_cpu "$master")))
    psql "$url" -qAtc "SELECT pg_stat_reset_shared('wal')" >/dev/null
    out=$(DATABASE_URL=$url "$BUILD/bin/stepkit-bench" --schema bench --workers "$W" \
        --master-pid "$master" --workload "$wl" --runs "$runs" --producers "$prod" \
        --warmup 0 --settle-ms 100 --out "$work/results.jsonl" 2>&1 |
        grep -E "throughput|p50" | head -n 2 | tr -s ' ' | tr '\n' ' ') ||
        die "stepkit-bench $wl failed (kept: KEEP=1)"
    sleep 0.3
    c1=$(($(tree_cpu "$pm") + $(tree_cpu "$master")))
    # Backends report their WAL counters when they go idle for a while or
    # exit: read them once the master's workers have disconnected.
    kill -TERM "$master"
    wait "$master" || true
    master=
    sleep 0.5
    wal=$(psql "$url" -Atc "SELECT round(wal_records::numeric / $runs, 1) || ' rec, ' ||
                                   round(wal_bytes / $runs) || ' B, ' ||
                                   round(wal_sync::numeric / $runs, 2) || ' syncs'
                              FROM pg_stat_wal")
    cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v n="$runs" 'BEGIN { printf "%.2f", (b - a) * 1000 / hz / n }')
    printf '%-16s %-8s cpu %s ms/run; WAL %s per run;%s\n' "$label" "$wl" "$cpu" "$wal" "$out"
}

r=0
while [ "$r" -lt "$ROUNDS" ]; do
    r=$((r + 1))
    for args in "$@"; do
        label="r$r ${args:-defaults}"
        one "$label" "$args" chain "$RUNS_CHAIN" 8
        one "$label" "$args" single "$RUNS_SINGLE" 8
        one "$label" "$args" latency "$RUNS_LATENCY" 1
    done
done
