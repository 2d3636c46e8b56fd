#!/bin/bash
# bench/runs-list-10m.sh - list latency at 10 M runs (docs/cli.md, "Measurements").
#
#   DATABASE_URL=postgresql://... bench/runs-list-10m.sh [generate|measure]
#
# generate: schema $SCHEMA (default runs10m; dropped first) migrated by `stepkit migrate`,
#   5 workflows, 10 M runs over 29 days, 1 % failed (all of one workflow),
#   0.2 % cancelled (another), 0.1 % pending (with their queue items, as
#   sleeping runs); about 20 minutes and 5 GB on a 2-core machine.
# measure: pgbench, one client, 40 calls of list_runs per case; then the
#   whole command line (process start and connection included).
set -eu
BUILD=${BUILD:-build}
URL=${DATABASE_URL:?set DATABASE_URL}
S=${SCHEMA:-runs10m}
q() { psql -X -At -v ON_ERROR_STOP=1 "$URL" -c "$1"; }

generate() {
    q "DROP SCHEMA IF EXISTS $S CASCADE" >/dev/null
    "$BUILD/bin/stepkit" --schema $S migrate >/dev/null
    q "INSERT INTO $S.workflows (workflow_id, max_attempts) SELECT 'wf-' || g, 4 FROM generate_series(0, 4) g" >/dev/null
    for c in 0 1 2 3 4 5 6 7 8 9; do
        q "INSERT INTO $S.runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data,
                                status, error, created_at, ended_at)
           SELECT gen_random_uuid(), 'wf-' || (i % 5), gen_random_uuid(), 'invoke', 'wf-' || (i % 5),
                  '\\xc0', s, CASE WHEN s = 'failed' THEN '\\xc0'::bytea END,
                  now() - (10000000 - i) * interval '250 ms',
                  CASE WHEN s <> 'pending' THEN now() - (10000000 - i) * interval '250 ms' + interval '1 s' END
             FROM (SELECT i, CASE WHEN i % 100 = 7 THEN 'failed' WHEN i % 500 = 11 THEN 'cancelled'
                                  WHEN i % 1000 = 13 THEN 'pending' ELSE 'completed' END AS s
                     FROM generate_series($c * 1000000 + 1, ($c + 1) * 1000000) i) x" >/dev/null
        echo "generate: $(( (c + 1) * 1000000 )) runs"
    done
    q "INSERT INTO $S.exec_queue (run_id, workflow_id, visible_at)
       SELECT run_id, workflow_id, 'infinity' FROM $S.runs WHERE status = 'pending'" >/dev/null
    q "VACUUM ANALYZE $S.runs" >/dev/null
    q "ANALYZE $S.workflows" >/dev/null
    q "ANALYZE $S.exec_queue" >/dev/null
}

measure() {
    local old f
    old=$(q "SELECT cursor FROM $S.list_runs(p_workflow => 'wf-2', p_until => now() - interval '20 days', p_limit => 1)")
    f=$(mktemp)
    echo "runs: $(q "SELECT count(*) FROM $S.runs"), pending: $(q "SELECT count(*) FROM $S.runs WHERE status = 'pending'")"
    one() {
        echo "SELECT count(*) FROM $S.list_runs($2);" >"$f"
        printf '%-44s %s ms\n' "$1" \
            "$(pgbench -n -f "$f" -t 40 -c 1 "$URL" 2>&1 | sed -n 's/^latency average = \(.*\) ms/\1/p')"
    }
    one "first page of 50, all workflows" "p_limit => 50"
    one "first page of 50, one workflow" "p_workflow => 'wf-3', p_limit => 50"
    one "status failed (1 %)" "p_status => 'failed', p_limit => 50"
    one "status cancelled, one workflow (0.2 %)" "p_workflow => 'wf-1', p_status => 'cancelled', p_limit => 50"
    one "a page 20 days back (cursor)" "p_after => '$old', p_limit => 50"
    one "created between 3 and 2 days ago" "p_since => now() - interval '3 days', p_until => now() - interval '2 days', p_limit => 50"
    one "a page of 1000" "p_limit => 1000"
    one "status pending (10 k, scattered)" "p_status => 'pending', p_limit => 50"
    echo "SELECT count(*) FROM $S.run_stats();" >"$f"
    printf '%-44s %s ms\n' "run_stats()" \
        "$(pgbench -n -f "$f" -t 20 -c 1 "$URL" 2>&1 | sed -n 's/^latency average = \(.*\) ms/\1/p')"
    rm -f "$f"
    for args in "runs" "runs --status failed --json"; do
        local t0 t1
        t0=$(date +%s%N)
        # shellcheck disable=SC2086 # args is a list of words
        "$BUILD/bin/stepkit" --schema $S $args >/dev/null
        t1=$(date +%s%N)
        printf '%-44s %s ms (process and connection included)\n' "stepkit $args" $(( (t1 - t0) / 1000000 ))
    done
}

case ${1:-measure} in
    generate) generate ;;
    measure) measure ;;
    *) echo "usage: $0 [generate|measure]" >&2; exit 2 ;;
esac
