#include "sk_stmts.h"

/*
 * sk_claim ($1 lease ms, $2 worker name, $3 workflow ids joined by
 * newlines): lease the oldest visible item this worker can run and return
 * it with its run and every recorded op, one row per op, in one round
 * trip.  The first column, on every row and on the single row returned
 * when nothing was claimed, is how long until the earliest item becomes
 * visible (a future retry, sleep or lease expiry), for the worker's timer.
 */
static const char claim_sql[] =
    "WITH wf AS (SELECT string_to_array($3, E'\\n') AS ids),"
    " c AS (SELECT item_id FROM exec_queue, wf"
    "        WHERE visible_at <= now() AND workflow_id = ANY(wf.ids)"
    "        ORDER BY visible_at LIMIT 1 FOR UPDATE OF exec_queue SKIP LOCKED),"
    " q AS (UPDATE exec_queue e"
    "          SET epoch = e.epoch + 1,"
    "              visible_at = now() + $1::int * interval '1 millisecond',"
    "              claimed_by = $2"
    "         FROM c WHERE e.item_id = c.item_id"
    "       RETURNING e.item_id, e.epoch, e.run_id, e.op_key),"
    " d AS (SELECT (extract(epoch FROM min(visible_at) - now()) * 1000)::int8 AS next_ms"
    "         FROM exec_queue, wf WHERE workflow_id = ANY(wf.ids))"
    " SELECT d.next_ms, q.item_id, q.epoch, q.run_id::text, q.op_key, r.workflow_id,"
    "        r.event_id::text, r.trigger_type, r.trigger_name, r.data, r.status, r.attempt,"
    "        r.attempt_ops, (extract(epoch FROM r.created_at) * 1000)::int8,"
    "        o.op_key, o.step_id, o.status, o.result, o.attempts"
    "   FROM d LEFT JOIN q ON true"
    "   LEFT JOIN runs r ON r.run_id = q.run_id"
    "   LEFT JOIN ops o ON o.run_id = q.run_id";

const sk_stmt_def_t sk_stmts[] = {
    {"sk_claim", claim_sql},
    /* $1 item, $2 epoch, $3 ms until visible again, NULL = delete */
    {"sk_fence", "SELECT fence($1::int8, $2::int4, $3::int4)"},
    /* Record an op.  A final row is never replaced: only a 'retry' row
     * (failed attempts) is updated. */
    {"sk_op_put",
     "INSERT INTO ops (run_id, op_key, step_id, status, result, attempts, started_at, ended_at)"
     " VALUES ($1::uuid, $2, $3, $4, $5::bytea, $6::int4,"
     "         to_timestamp($7::int8 / 1000.0), now())"
     " ON CONFLICT (run_id, op_key) DO UPDATE"
     "   SET status = EXCLUDED.status, result = EXCLUDED.result, attempts = EXCLUDED.attempts,"
     "       started_at = EXCLUDED.started_at, ended_at = EXCLUDED.ended_at"
     " WHERE ops.status = 'retry'"},
    /* End a run once; wake a waiting client ($5 = the done channel). */
    {"sk_run_end",
     "WITH r AS (UPDATE runs SET status = $2, output = $3::bytea, error = $4::bytea,"
     "                  ended_at = now()"
     "            WHERE run_id = $1::uuid AND status = 'pending' RETURNING notify_end)"
     " SELECT (SELECT count(*) FROM r),"
     "        (SELECT count(*) FROM (SELECT pg_notify($5, '') FROM r WHERE r.notify_end) n)"},
    /* A failed handler execution that will be retried. */
    {"sk_run_attempt",
     "UPDATE runs SET attempt = $2::int4, attempt_ops = $3::int4 WHERE run_id = $1::uuid"},
};

const int sk_stmts_count = (int)(sizeof(sk_stmts) / sizeof(sk_stmts[0]));
