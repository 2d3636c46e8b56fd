#include "sk_stmts.h"

#include <string.h>

#include "sk_migrate.h"

/*
 * sk_claim ($1 lease ms, $2 worker name, $3 workflow ids joined by
 * newlines): lease the oldest visible item this worker can run and return
 * it with its run and every recorded op, one row per op, in one round
 * trip.  When nothing was claimed, the single row returned says in its
 * first column how long until the earliest item becomes visible (a future
 * retry, sleep or lease expiry), for the worker's timer.  The work is
 * claim() in sql/006_perf.sql: one index descent per workflow served, so
 * its cost does not depend on other workflows' items, and the run and ops
 * are read with a snapshot taken after the item was locked.
 */
static const char claim_sql_12[] = "SELECT * FROM claim($1::int4, $2, string_to_array($3, E'\\n'))";
/* 013: one more column, whether the claimed run's workflow has a step rate
 * (then the worker takes a token before each body: sk_step_take).  Read in
 * the claim's statement, from the first row (every row has the run's
 * workflow): no round trip more, one primary-key lookup per claim. */
static const char claim_sql[] =
    "WITH c AS MATERIALIZED (SELECT * FROM claim($1::int4, $2, string_to_array($3, E'\\n')))"
    " SELECT c.*, EXISTS (SELECT FROM workflows w"
    "                      WHERE w.workflow_id = (SELECT c1.workflow_id FROM c c1 LIMIT 1)"
    "                        AND w.step_rate_limit IS NOT NULL)"
    "   FROM c";

const sk_stmt_def_t sk_stmts[] = {
    {"sk_claim", claim_sql},
    /* A token of the step rate before a body ($1 item, $2 epoch): 0 taken,
     * else ms until the slot the item is handed back for; SK001 when the
     * lease was lost (sql/013_flow_steps.sql). */
    {"sk_step_take", "SELECT flow_step_take($1::int8, $2::int4)"},
    /* First in a transaction that only moves a lease (a claim alone, a hand
     * back with nothing to record): its commit does not wait for the WAL
     * flush.  Lost in a crash, the lease is as if never taken or kept till
     * it expires; any later synchronous commit flushes it first
     * (docs/performance.md, "Durable only where it must be"). */
    {"sk_lease_only", "SELECT set_config('synchronous_commit', 'off', true)"},
    /* $1 item, $2 epoch, $3 ms (NULL: delete; < 0: never), $4 release, $5 wake_seq seen */
    {"sk_fence", "SELECT fence($1::int8, $2::int4, $3::int8, $4::bool, $5::int4)"},
    /* Record an op.  A final row is never replaced: only a 'retry' or
     * 'waiting' row (an op still in progress) is updated. */
    {"sk_op_put",
     "INSERT INTO ops (run_id, op_key, step_id, kind, status, result, attempts, wait_info,"
     "                 started_at, ended_at)"
     " VALUES ($1::uuid, $2, $3, $4, $5, $6::bytea, $7::int4, $8::bytea,"
     "         to_timestamp($9::int8 / 1000.0), now())"
     " ON CONFLICT (run_id, op_key) DO UPDATE"
     "   SET status = EXCLUDED.status, result = EXCLUDED.result, attempts = EXCLUDED.attempts,"
     "       wait_info = coalesce(EXCLUDED.wait_info, ops.wait_info),"
     "       started_at = CASE WHEN ops.status = 'waiting' THEN ops.started_at"
     "                         ELSE EXCLUDED.started_at END,"
     "       ended_at = EXCLUDED.ended_at"
     " WHERE ops.status IN ('retry', 'waiting')"},
    /* End a run once (see end_run in sql/). */
    {"sk_end_run",
     "SELECT end_run($1::int8, $2::int4, $3::uuid, $4, $5::bytea, $6::bytea, $7::bytea, $8)"},
    /* The common checkpoint in one statement: extend the lease ($10 ms) and
     * record one op, or record nothing when the lease was lost (0 rows). */
    {"sk_checkpoint",
     "WITH l AS (UPDATE exec_queue SET visible_at = now() + $10::int8 * interval '1 millisecond'"
     "            WHERE item_id = $1::int8 AND epoch = $2::int4 RETURNING run_id)"
     " INSERT INTO ops (run_id, op_key, step_id, kind, status, result, attempts, started_at,"
     "                  ended_at)"
     " SELECT l.run_id, $3, $4, $5, $6, $7::bytea, $8::int4, to_timestamp($9::int8 / 1000.0),"
     "        now() FROM l"
     " ON CONFLICT (run_id, op_key) DO UPDATE"
     "   SET status = EXCLUDED.status, result = EXCLUDED.result, attempts = EXCLUDED.attempts,"
     "       started_at = CASE WHEN ops.status = 'waiting' THEN ops.started_at"
     "                         ELSE EXCLUDED.started_at END,"
     "       ended_at = EXCLUDED.ended_at"
     " WHERE ops.status IN ('retry', 'waiting')"},
    /* A failed handler execution that will be retried. */
    {"sk_run_attempt",
     "UPDATE runs SET attempt = $2::int4, attempt_ops = $3::int4 WHERE run_id = $1::uuid"},
    /* Group members whose bodies run on other workers; not one whose result
     * was committed meanwhile (its item is gone: it would come back). */
    {"sk_dispatch", "INSERT INTO exec_queue (run_id, workflow_id, op_key)"
                    " SELECT $1::uuid, $2, $3"
                    "  WHERE NOT EXISTS (SELECT 1 FROM ops WHERE run_id = $1::uuid AND op_key = $3"
                    "                       AND status IN ('ok', 'error'))"
                    " ON CONFLICT DO NOTHING"},
    {"sk_wake", "SELECT wake($1::uuid)"},
    /* A dead worker's item handed back (sql/004_reliability.sql). */
    {"sk_reclaim", "SELECT reclaim_item($1::int8, $2::int4, $3, $4, $5, $6, $7::bool, $8)"},
    /* Retention (sk_prune): one batch behind the prune lock; -1 when another holds it. */
    {"sk_prune", "SELECT prune_batch($1::int8, $2::int4)"},
    {"sk_wait_signal", "SELECT wait_signal($1::uuid, $2, $3, $4, $5::int8, $6::bytea, $7::int8)"},
    {"sk_send_step", "SELECT send_signal_step($1::uuid, $2, $3, $4, $5::bytea, $6::int8)"},
    {"sk_invoke_child",
     "SELECT invoke_child($1::uuid, $2, $3, $4::uuid, $5, $6::bytea, $7::int8, $8::bytea,"
     "                    $9::int8, $10::bytea)"},
    {"sk_resolve_timeout", "SELECT * FROM resolve_timeout($1::uuid, $2, $3::bytea)"},
    /* Cron (sk_sched): fire a tick ($1 workflow, $2 schedule, $3 tick in Unix ms, $4 msgpack
     * input data): the new run's id, NULL when the tick was fired already. */
    {"sk_fire_cron", "SELECT fire_cron($1, $2, to_timestamp($3::int8 / 1000.0), $4::bytea)"},
    /* The newest fired tick (Unix ms, NULL: never) of each schedule, in the order given
     * ($1 workflows, $2 expressions, joined by newlines). */
    {"sk_cron_last",
     "SELECT (extract(epoch FROM (SELECT max(t.tick_at) FROM cron_ticks t"
     "                             WHERE t.workflow_id = s.w AND t.schedule = s.e)) * 1000)::int8"
     "  FROM unnest(string_to_array($1, E'\\n'), string_to_array($2, E'\\n'))"
     "       WITH ORDINALITY AS s(w, e, i)"
     " ORDER BY s.i"},
    /* Up to $4 items at once, as many as are ready now (claim_batch in
     * sql/014_batch.sql): sk_claim's rows, one item after another, each
     * with its workflow's step-rate flag as in sk_claim. */
    {"sk_claim_batch",
     "WITH c AS MATERIALIZED"
     "     (SELECT * FROM claim_batch($1::int4, $2, string_to_array($3, E'\\n'), $4::int4))"
     " SELECT c.*, EXISTS (SELECT FROM workflows w"
     "                      WHERE w.workflow_id = c.workflow_id"
     "                        AND w.step_rate_limit IS NOT NULL)"
     "   FROM c"},
    /* First in a batch's transaction: lock the items' rows in item order and
     * extend their leases ($3 ms), or raise SK001 naming the lost ones in
     * DETAIL (batch_fence in sql/014_batch.sql).  $1 items, $2 epochs, as
     * comma-separated lists. */
    {"sk_batch_fence", "SELECT batch_fence(string_to_array($1, ',')::int8[],"
                       " string_to_array($2, ',')::int4[], $3::int4)"},
};

const int sk_stmts_count = (int)(sizeof(sk_stmts) / sizeof(sk_stmts[0]));

/* Statements that need a schema version: their text before it (NULL: none). */
static const struct {
    const char *name;
    int since;
    const char *before;
} versioned[] = {
    {"sk_claim", 13, claim_sql_12},
    {"sk_step_take", 13, NULL},
    {"sk_claim_batch", SK_BATCH_SCHEMA_VERSION, NULL},
    {"sk_batch_fence", SK_BATCH_SCHEMA_VERSION, NULL},
};

const char *sk_stmt_sql(int i)
{
    for (size_t v = 0; v < sizeof(versioned) / sizeof(versioned[0]); v++) {
        if (strcmp(versioned[v].name, sk_stmts[i].name) == 0 &&
            versioned[v].since > sk_schema_version_known())
            return versioned[v].before;
    }
    return sk_stmts[i].sql;
}
