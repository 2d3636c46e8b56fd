#!/bin/sh
# bench/explain-claim.sh - the plans of the claim, the next-due lookup and
# the insert trigger with a backlog of a workflow nobody serves
# (docs/performance.md keeps the output).
#
#   bench/explain-claim.sh [SIZE ...]      default: 1000 100000 1000000
#
# For each SIZE: SIZE ready and SIZE future items of workflow "other", and
# 100 ready runs of workflow "served" with their items.  Then, with
# EXPLAIN (ANALYZE, BUFFERS) (auto_explain for the statements inside the
# plpgsql functions):
#   before  001's claim statement on exec_queue_visible (visible_at), the
#           index and the statement as they were, recreated inside a
#           transaction that is rolled back;
#   after   claim() of 006 on exec_queue_ready (workflow_id, visible_at);
# each for a claim that finds an item ("served" has some) and for an empty
# claim (a worker whose workflow has nothing queued: the next-due path),
# and one start_run's insert trigger.
#
# Environment: BUILD (default build), DATABASE_URL (else a throwaway cluster).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SIZES=${*:-1000 100000 1000000}
work=$(mktemp -d "${TMPDIR:-/tmp}/stepkit-explain.XXXXXX")
chmod 755 "$work"
cluster=
cleanup() {
    [ -z "$cluster" ] || tests/pg-cluster.sh stop "$cluster" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
if [ -n "${DATABASE_URL:-}" ]; then
    url=$DATABASE_URL
else
    cluster=$work/pg
    url=$(tests/pg-cluster.sh start "$cluster" 2>"$work/pg.log") || { cat "$work/pg.log" >&2; exit 2; }
fi
S=explain_claim
q() { PGOPTIONS="-c search_path=$S" psql -X -q -v ON_ERROR_STOP=1 "$url" "$@"; }

psql -X -q -v ON_ERROR_STOP=1 "$url" -c "DROP SCHEMA IF EXISTS $S CASCADE" >/dev/null 2>&1
DATABASE_URL=$url "$BUILD/bin/stepkit" --schema "$S" migrate >/dev/null

# The old claim statement, verbatim from worker/sk_stmts.c before 006.
old_claim="WITH wf AS (SELECT string_to_array('served', E'\\n') AS ids),
 c AS (SELECT item_id FROM exec_queue, wf
        WHERE visible_at <= now() AND workflow_id = ANY(wf.ids)
        ORDER BY visible_at LIMIT 1 FOR UPDATE OF exec_queue SKIP LOCKED),
 q AS (UPDATE exec_queue e
          SET epoch = e.epoch + 1, leased = true,
              takeovers = CASE WHEN e.leased THEN e.takeovers + 1 ELSE 0 END,
              visible_at = now() + 30000 * interval '1 millisecond', claimed_by = 'x'
         FROM c WHERE e.item_id = c.item_id
       RETURNING e.item_id, e.epoch, e.run_id, e.op_key, e.wake_seq, e.takeovers),
 d AS (SELECT (SELECT (extract(epoch FROM e.visible_at - now()) * 1000)::int8
                  FROM exec_queue e, wf
                 WHERE NOT EXISTS (SELECT 1 FROM q)
                   AND e.visible_at > now() AND e.visible_at < 'infinity'
                   AND e.workflow_id = ANY(wf.ids) AND e.epoch >= 0
                 ORDER BY e.visible_at LIMIT 1) AS next_ms)
 SELECT d.next_ms, q.item_id, r.status, o.op_key
   FROM d LEFT JOIN q ON true
   LEFT JOIN runs r ON r.run_id = q.run_id
   LEFT JOIN ops o ON o.run_id = q.run_id"

# 001's trigger, for the "before" plan of one start.
old_trigger="CREATE OR REPLACE FUNCTION notify_new_work() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS \$\$
BEGIN
    IF EXISTS (SELECT 1 FROM new_items n
                WHERE n.visible_at <= now()
                  AND NOT EXISTS (SELECT 1 FROM exec_queue q
                                   WHERE q.workflow_id = n.workflow_id
                                     AND q.visible_at <= now() AND NOT q.leased
                                     AND q.item_id NOT IN (SELECT item_id FROM new_items)))
       OR EXISTS (SELECT 1 FROM new_items n WHERE n.visible_at > now()) THEN
        PERFORM pg_notify(TG_TABLE_SCHEMA || '.work', '');
    END IF;
    RETURN NULL;
END
\$\$;"

nested="LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_analyze = on;
SET auto_explain.log_buffers = on;
SET auto_explain.log_timing = on;
SET auto_explain.log_nested_statements = on;
SET client_min_messages = log;"

for n in $SIZES; do
    q >/dev/null <<EOF
TRUNCATE exec_queue, runs, ops;
INSERT INTO workflows (workflow_id, max_attempts) VALUES ('served', 3), ('other', 3)
    ON CONFLICT DO NOTHING;
INSERT INTO exec_queue (run_id, workflow_id, visible_at)
    SELECT gen_random_uuid(), 'other', now() - interval '1 hour' + g * interval '1 microsecond'
      FROM generate_series(1, $n) g;
INSERT INTO exec_queue (run_id, workflow_id, visible_at)
    SELECT gen_random_uuid(), 'other', now() + interval '1 day' + g * interval '1 microsecond'
      FROM generate_series(1, $n) g;
INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data)
    SELECT uuid7(), 'served', uuid7(), 'invoke', 'served', '\xc0'::bytea
      FROM generate_series(1, 100);
INSERT INTO exec_queue (run_id, workflow_id) SELECT run_id, 'served' FROM runs;
VACUUM ANALYZE exec_queue;
VACUUM ANALYZE runs;
EOF
    echo "=================== $n ready + $n future items of 'other'; 100 ready of 'served'"
    echo
    echo "----- before (001): a claim that finds an item"
    q -c "BEGIN" -c "CREATE INDEX exec_queue_visible ON exec_queue (visible_at)" \
        -c "DROP INDEX exec_queue_ready" -c "ANALYZE exec_queue" \
        -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $old_claim" -c "ROLLBACK"
    echo "----- before (001): an empty claim (nothing of 'served' queued: next-due path)"
    q -c "BEGIN" -c "CREATE INDEX exec_queue_visible ON exec_queue (visible_at)" \
        -c "DROP INDEX exec_queue_ready" -c "ANALYZE exec_queue" \
        -c "DELETE FROM exec_queue WHERE workflow_id = 'served'" \
        -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $old_claim" -c "ROLLBACK"
    echo "----- before (001): the insert trigger of one start"
    q -c "BEGIN" -c "CREATE INDEX exec_queue_visible ON exec_queue (visible_at)" \
        -c "DROP INDEX exec_queue_ready" -c "ANALYZE exec_queue" -c "$old_trigger" \
        -c "$nested" -c "SELECT start_run('served') IS NOT NULL" -c "ROLLBACK" 2>&1
    echo "----- after (006): a claim that finds an item"
    q -c "BEGIN" -c "$nested" -c "SELECT next_ms, item_id FROM claim(30000, 'x', '{served}')" \
        -c "ROLLBACK" 2>&1
    echo "----- after (006): an empty claim (next-due path)"
    q -c "BEGIN" \
        -c "DELETE FROM exec_queue WHERE workflow_id = 'served'" \
        -c "$nested" -c "SELECT next_ms, item_id FROM claim(30000, 'x', '{served}')" \
        -c "ROLLBACK" 2>&1
    echo "----- after (006): the same with two workflows served (the loop over heads)"
    q -c "BEGIN" -c "$nested" -c "SELECT next_ms, item_id FROM claim(30000, 'x', '{served,idle}')" \
        -c "ROLLBACK" 2>&1
    echo "----- after (006): the insert trigger of one start"
    q -c "BEGIN" -c "$nested" -c "SELECT start_run('served') IS NOT NULL" -c "ROLLBACK" 2>&1
done
psql -X -q "$url" -c "DROP SCHEMA $S CASCADE" >/dev/null 2>&1 || true
