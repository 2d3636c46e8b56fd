#!/usr/bin/env bash
# The worker's claim statement before 013 (claim() alone) and since 013
# (plus the lookup of the claimed run's workflow for a step rate), timed
# with pgbench on a throwaway cluster: one client, 5 s each, alternated,
# on workflows of 40,000 ready items each, then on an empty queue (the idle
# poll).  docs/flow-control.md, "Step rate limits".
#
#   bench/claim-statement-cost.sh
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
work=$(mktemp -d /tmp/claim-cost.XXXXXX)
chmod 755 "$work"
mkdir "$work/pg"
cleanup() {
    (cd "$repo" && tests/pg-cluster.sh stop "$work/pg" >/dev/null 2>&1)
    rm -rf "$work"
}
trap cleanup EXIT
url=$(cd "$repo" && tests/pg-cluster.sh start "$work/pg" 2>/dev/null) || exit 1
DATABASE_URL=$url STEPKIT_SCHEMA=cb "$BUILD/bin/stepkit" migrate >/dev/null || exit 1
q() { PGOPTIONS="-c search_path=cb" psql "$url" -qAtX -v ON_ERROR_STOP=1 "$@"; }
q -c "INSERT INTO workflows (workflow_id, max_attempts) VALUES ('w1', 4), ('w2', 4), ('w3', 4), ('w4', 4)"
for w in w1 w2 w3 w4; do
    q -c "SELECT count(*) FROM start_runs('$w', array_fill('null'::jsonb, ARRAY[40000]))" >/dev/null
done
q -c "VACUUM ANALYZE"
old="SELECT * FROM claim(60000, 'b', '{WF}')"
new="WITH c AS MATERIALIZED (SELECT * FROM claim(60000, 'b', '{WF}'))
 SELECT c.*, EXISTS (SELECT FROM workflows w
                      WHERE w.workflow_id = (SELECT c1.workflow_id FROM c c1 LIMIT 1)
                        AND w.step_rate_limit IS NOT NULL) FROM c"
run() {
    echo "${2//WF/$3};" | tr '\n' ' ' >"$work/s.sql"
    printf '%-10s %-5s ' "$1" "$3"
    PGOPTIONS="-c search_path=cb -c enable_seqscan=off -c jit=off" \
        pgbench -n -M prepared -T 5 -c 1 -f "$work/s.sql" "$url" 2>/dev/null |
        grep -E "^latency average"
}
run before "$old" w1
run since013 "$new" w2
run before "$old" w3
run since013 "$new" w4
run before "$old" none
run since013 "$new" none
run before "$old" none
run since013 "$new" none
