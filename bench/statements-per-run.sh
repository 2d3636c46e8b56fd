#!/usr/bin/env bash
# Statements per run that workers execute (docs/flow-control.md, "Step rate
# limits"): one master (binaries of BUILD) with 2 workers runs N runs of the
# test workflow WF on a throwaway cluster that logs every statement
# (log_statement = all); the "execute <name>" lines are counted per run.
# SETUP: SQL run once the workflows are registered, e.g. a step rate.
#
#   bench/statements-per-run.sh
#   N=1000 SETUP="SELECT set_step_rate('two-steps', 10000, 1000, 'customer')" \
#       bench/statements-per-run.sh
#   BUILD=/tmp/base/build bench/statements-per-run.sh     (another build)
set -uo pipefail
BUILD=${BUILD:-build}
N=${N:-200}
WF=${WF:-two-steps}
SETUP=${SETUP:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
mp=
work=$(mktemp -d /tmp/stmts-per-run.XXXXXX)
chmod 755 "$work"
mkdir "$work/pg"
cleanup() {
    if [ -n "$mp" ]; then
        kill -TERM "$mp" 2>/dev/null
        wait "$mp" 2>/dev/null
    fi
    (cd "$repo" && tests/pg-cluster.sh stop "$work/pg" >/dev/null 2>&1)
    rm -rf "$work"
}
trap cleanup EXIT
say() { echo "statements-per-run: $*" >&2; }

url=$(cd "$repo" && tests/pg-cluster.sh start "$work/pg" 2>/dev/null) || { say "no cluster"; exit 1; }
export DATABASE_URL="$url"
q() { PGOPTIONS="-c search_path=sc" psql "$url" -qAtX -v ON_ERROR_STOP=1 "$@"; }
"$BUILD/bin/stepkit-master" --schema sc --workers 2 --http off \
    --workflows "$BUILD/tests/testwf.so" >"$work/master.log" 2>&1 &
mp=$!
n=0
for _ in $(seq 100); do
    n=$(q -c "SELECT count(*) FROM workflows WHERE workflow_id = '$WF'" 2>/dev/null || echo 0)
    [ "$n" = 1 ] && break
    sleep 0.1
done
[ "$n" = 1 ] || { say "the master did not register $WF"; cat "$work/master.log" >&2; exit 1; }
[ -n "$SETUP" ] && q -c "$SETUP" >/dev/null
sleep 1
psql "$url" -qAtX -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
start=$(wc -l <"$work/pg/postgresql.log")
t0=$(date +%s.%N)
q -c "SELECT count(start_run('$WF'::text, '{\"customer\": \"c\"}'::jsonb)) FROM generate_series(1, $N)" >/dev/null
for _ in $(seq 600); do
    n=$(q -c "SELECT count(*) FROM runs WHERE status <> 'pending'")
    [ "$n" -ge "$N" ] && break
    sleep 0.1
done
t1=$(date +%s.%N)
psql "$url" -qAtX -c "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" >/dev/null
echo "$n of $N runs ended in $(echo "$t1 - $t0" | bc) s"
tail -n +"$start" "$work/pg/postgresql.log" | grep -o 'execute sk_[a-z_]*' | sort | uniq -c |
    awk -v n="$N" '{printf "  %-22s %6d  %.3f per run\n", $3, $1, $1 / n; t += $1}
                   END {printf "  %-22s %6d  %.3f per run\n", "total", t, t / n}'
