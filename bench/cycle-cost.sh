#!/bin/sh
# bench/cycle-cost.sh - what one run costs the server, without the noise of
# a loaded machine (docs/performance.md, section 9).
#
#   bench/cycle-cost.sh [BUILD_DIR ...]     (default: build)
#
# For each build directory (a build of any commit of this repository: its
# bin/stepkit migrates the schema), a schema is migrated by that build and
# one client runs the statements of a one-step run in a loop: the client's
# start, the worker's claim and the worker's end (pgbench -t N, 1 client).
# Printed per run: the CPU of every PostgreSQL process (utime + stime,
# children included, from /proc), WAL records and bytes (pg_stat_wal), and
# the mean time of the top-level statements (pg_stat_statements).  Builds
# are measured in turn, ROUNDS times (default 3): compare medians.
#
# Environment: N (runs per round, default 3000), ROUNDS (3), KEEP=1 keeps
# the cluster's directory.  Needs pgbench, psql and the server binaries
# (make deps).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
N=${N:-3000}
ROUNDS=${ROUNDS:-3}
KEEP=${KEEP:-0}

die() { printf 'cycle-cost: %s\n' "$*" >&2; exit 2; }
case $N in '' | *[!0-9]* | 0) die "N must be a positive integer, got '$N'" ;; esac
case $ROUNDS in '' | *[!0-9]* | 0) die "ROUNDS must be a positive integer, got '$ROUNDS'" ;; esac
[ $# -gt 0 ] || set -- "$root/build"
for b in "$@"; do
    [ -x "$b/bin/stepkit" ] || die "$b/bin/stepkit is missing: build that tree first (make all)"
done
for t in psql pgbench; do
    command -v "$t" >/dev/null 2>&1 || die "$t is not installed (make deps)"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/stepkit-cycle.XXXXXX")
chmod 755 "$work"
cleanup() {
    "$root/tests/pg-cluster.sh" stop "$work/pg" >/dev/null 2>&1 || true
    [ "$KEEP" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

url=$("$root/tests/pg-cluster.sh" start "$work/pg")
# pg_stat_statements needs a restart; postgresql.conf is the server user's.
data="$work/pg/data"
if [ "$(id -u)" = 0 ]; then
    echo "shared_preload_libraries = 'pg_stat_statements'" |
        su -s /bin/sh postgres -c "tee -a '$data/postgresql.conf'" >/dev/null
else
    echo "shared_preload_libraries = 'pg_stat_statements'" >>"$data/postgresql.conf"
fi
"$root/tests/pg-cluster.sh" stop "$work/pg" >/dev/null 2>&1
url=$("$root/tests/pg-cluster.sh" start "$work/pg" 2>/dev/null)
psql "$url" -qc "CREATE EXTENSION pg_stat_statements" >/dev/null

# The statements of a one-step run, as the client and the worker send them
# (shared/sk_client.c start, worker/sk_stmts.c claim, end_run).
cat >"$work/cycle.sql" <<'EOF'
SELECT s.run_id::text AS rid FROM start_run_msgpack('cycle', '\xc0'::bytea, false) s \gset
SELECT item_id AS item, epoch AS ep, run_id AS crun FROM claim(30000, 'cycle-worker', string_to_array(E'cycle\ncycle-other', E'\n')) \gset
SELECT end_run(:item, :ep, :crun::uuid, 'completed', '\xc0'::bytea, NULL, NULL, NULL);
EOF

# This cluster's processes only: its postmaster (whose cutime/cstime hold
# the backends that exited) and its children.
pgcpu() {
    t=0
    pm=$(head -n 1 "$data/postmaster.pid")
    for p in "$pm" $(pgrep -P "$pm"); do
        # fields 14-17 of /proc/PID/stat: utime stime cutime cstime (ticks)
        v=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$p/stat" 2>/dev/null || echo 0)
        t=$((t + v))
    done
    echo "$t"
}
hz=$(getconf CLK_TCK)

i=0
for b in "$@"; do
    i=$((i + 1))
    s="cycle_$i"
    psql "$url" -qc "CREATE SCHEMA $s" >/dev/null
    "$b/bin/stepkit" --database-url "$url" --schema "$s" migrate >/dev/null 2>&1 ||
        die "$b/bin/stepkit migrate failed"
    psql "$url" -qc "INSERT INTO $s.workflows (workflow_id, max_attempts)
                     VALUES ('cycle', 3), ('cycle-other', 3)" >/dev/null
    psql "$url" -Atc "SELECT to_regproc('$s.claim') IS NOT NULL" | grep -q t ||
        die "$b: its schema has no claim() (before 006): not comparable with this cycle"
done

printf '%-40s %5s %12s %12s %12s %10s %10s %10s\n' build round cpu_ms/run wal_rec/run wal_B/run start_ms claim_ms end_ms
r=0
while [ "$r" -lt "$ROUNDS" ]; do
    r=$((r + 1))
    i=0
    for b in "$@"; do
        i=$((i + 1))
        s="cycle_$i"
        psql "$url" -qc "DELETE FROM $s.exec_queue" >/dev/null
        psql "$url" -qc "VACUUM ANALYZE $s.exec_queue" >/dev/null
        psql "$url" -qAt -c "SELECT pg_stat_statements_reset()" -c "SELECT pg_stat_reset_shared('wal')" >/dev/null
        c0=$(pgcpu)
        PGOPTIONS="-c search_path=$s" pgbench -n -M prepared -t "$N" -c 1 -f "$work/cycle.sql" "$url" \
            >"$work/pgbench.out" 2>&1 || { cat "$work/pgbench.out" >&2; die "pgbench failed"; }
        c1=$(pgcpu)
        stats=$(psql "$url" -At -F ' ' -c "
            SELECT round(w.wal_records::numeric / $N, 1), round(w.wal_bytes / $N),
                   (SELECT round(mean_exec_time::numeric, 3) FROM pg_stat_statements
                     WHERE toplevel AND query LIKE '%start_run_msgpack%' LIMIT 1),
                   (SELECT round(mean_exec_time::numeric, 3) FROM pg_stat_statements
                     WHERE toplevel AND query LIKE '%FROM claim(%' LIMIT 1),
                   (SELECT round(mean_exec_time::numeric, 3) FROM pg_stat_statements
                     WHERE toplevel AND query LIKE '%end_run(%' LIMIT 1)
              FROM pg_stat_wal w")
        cpu=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v n="$N" 'BEGIN { printf "%.3f", (b - a) * 1000 / hz / n }')
        # shellcheck disable=SC2086 # stats is five words
        printf '%-40s %5s %12s %12s %12s %10s %10s %10s\n' "$(basename "$(dirname "$b")")/$(basename "$b")" "$r" "$cpu" $stats
    done
done
