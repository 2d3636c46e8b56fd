/*
 * The executor's run lifecycle (sk_exec.h): the executor itself
 * (sk_exec_new, sk_exec_free), its loop (sk_exec_work) and a run from its
 * claim to its end: the hooks around each body, what comes before the
 * handler's first entry (sk_exec_item_begin), each entry and what follows
 * from it (sk_exec_item_step), and one item executed alone.  The rest is
 * split along its jobs, sharing sk_exec_int.h: the SQL every write builds
 * and sends (sk_exec_sql.c), batches of items run in rounds
 * (sk_exec_round.c) and the items a dead worker left (sk_exec_reclaim.c).
 */
#include "sk_exec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sk_ctx.h"
#include "sk_exec_int.h"
#include "sk_json.h"
#include "sk_log.h"
#include "sk_metrics.h"
#include "sk_migrate.h"
#include "sk_renew.h"
#include "sk_stmts.h"
#include "stepkit.h"

int64_t sk_exec_wall_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Whether the worker must stop starting bodies, asked between entries with
 * no user code on the stack (the worker serves its event loop in there);
 * before_body, inside a handler, reads the answer. */
int sk_exec_check_stop(sk_exec_t *x)
{
    if (!x->stopping)
        x->stopping = x->stop(x->stop_arg);
    return x->stopping;
}

/* ---- what the slot shows ---------------------------------------------------------- */

/* Publish the item this worker now holds (NULL: none). */
void sk_exec_hold_item(sk_exec_t *x, const item_t *it)
{
    memset(&x->held, 0, sizeof(x->held));
    if (it != NULL) {
        x->held.pid = (int32_t)getpid();
        x->held.item_id = it->item_id;
        x->held.epoch = it->epoch;
        snprintf(x->held.run_id, sizeof(x->held.run_id), "%s", it->run_id ? it->run_id : "");
    }
    sk_shm_slot_set_held(x->slot, it != NULL ? &x->held : NULL);
}

static int64_t step_timeout(const run_state_t *rs, int timeout_ms)
{
    const sk_wf_t *wf = rs->ctx ? sk_ctx_workflow(rs->ctx) : NULL;

    if (timeout_ms > 0)
        return timeout_ms;
    if (wf != NULL && wf->step_timeout_ms > 0)
        return wf->step_timeout_ms;
    return rs->x->cfg->step_timeout_ms;
}

/* Hold as many runs as the window has room for bodies of the mean time:
 * with slow bodies one, and a worker runs as without batching (each result
 * committed before the next body, the last with the run's end); with
 * bodies short against a commit, up to --batch. */
static void set_round_max(sk_exec_t *x)
{
    int64_t w = (int64_t)x->cfg->batch_window_ms * 1000;
    int64_t m = x->body_avg_us < 0 ? 1 : w / (x->body_avg_us > 0 ? x->body_avg_us : 1);

    x->round_max = m < 1 ? 1 : m > x->batch ? x->batch : (int)m;
}

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Around each body: the op in flight and its deadline in the slot (the
 * master kills a worker whose body passes it), and the lease renewal.  The
 * slot already shows the body's item: item_begin, or a round's entry, put
 * it there. */
static void body_hook(void *arg, const char *key, const char *step_id, int timeout_ms)
{
    run_state_t *rs = arg;
    sk_exec_t *x = rs->x;
    int64_t deadline;

    if (key == NULL) {
        int64_t d = mono_us() - x->body_t0_us;
        x->round_body_us += d;
        x->body_avg_us = x->body_avg_us < 0 ? d : x->body_avg_us + (d - x->body_avg_us) / 8;
        set_round_max(x);
        atomic_store_explicit(&x->slot->deadline_ms, 0, memory_order_release);
        sk_renew_end(x->renew);
        x->held.op_key[0] = x->held.step_id[0] = '\0';
        x->held.timeout_ms = 0;
        sk_shm_slot_set_held(x->slot, &x->held);
        return;
    }
    x->body_t0_us = mono_us();
    rs->timeout_ms = (int)step_timeout(rs, timeout_ms);
    snprintf(x->held.op_key, sizeof(x->held.op_key), "%s", key);
    snprintf(x->held.step_id, sizeof(x->held.step_id), "%s", step_id ? step_id : "");
    x->held.timeout_ms = rs->timeout_ms;
    sk_shm_slot_set_held(x->slot, &x->held);
    deadline = sk_shm_now_ms() + rs->timeout_ms;
    atomic_store_explicit(&x->slot->deadline_ms, deadline, memory_order_release);
    sk_renew_begin(x->renew, rs->it->item_id, rs->it->epoch, deadline);
}

/* sk_heartbeat() in a body: a new deadline, the lease renewed now. */
static void heartbeat_hook(void *arg)
{
    run_state_t *rs = arg;
    int64_t deadline = sk_shm_now_ms() + rs->timeout_ms;

    atomic_store_explicit(&rs->x->slot->deadline_ms, deadline, memory_order_release);
    sk_renew_touch(rs->x->renew, deadline);
}

/* ---- hooks and endings ------------------------------------------------------------ */

/* Before a new body: commit what is pending (one commit per step), or
 * yield when the worker is stopping.  In batch mode a round commits all
 * its runs' results before their next entries, so a run reaches this
 * with nothing pending but for what its own replay resolved (a timeout or
 * a sleep that came due): that commits here, alone, as without batching. */
static int before_body(sk_ctx_t *ctx, void *arg)
{
    run_state_t *rs = arg;
    sk_ctx_writes_t w;
    const sk_op_t *one;
    batch_t b;
    int rc;

    if (rs->x->stopping)
        return SK_AGAIN;
    if (sk_ctx_writes(ctx, &w) != SK_OK) {
        rs->lost = 1;
        return SK_ERROR;
    }
    if (w.nops == 0 && w.ndispatch == 0)
        return SK_OK;
    one = w.nops == 1 && w.ndispatch == 0 ? w.ops[0] : NULL;
    if (one != NULL && one->intent == SK_INTENT_NONE &&
        (one->status == SK_OP_OK || one->status == SK_OP_ERROR)) {
        rc = sk_exec_checkpoint_one(rs, one);
    } else {
        if (sk_exec_batch_init(&b, 2 * (int)w.nops + (int)w.ndispatch + 1) != SK_OK)
            return SK_ERROR;
        rc = sk_exec_add_fence(&b, rs->it, FENCE_EXTEND, rs->x->cfg->lease_ms);
        if (rc == SK_OK)
            rc = sk_exec_add_writes(&b, rs->it, &w);
        if (rc == SK_OK)
            rc = sk_exec_run_batch(rs->x, &b, rs->it, NULL);
        sk_exec_batch_free(&b);
    }
    if (rc != SK_OK) {
        rs->lost = 1;
        return SK_ERROR;
    }
    sk_exec_writes_committed(rs->x, ctx, &w);
    return SK_OK;
}

/* before_body for a workflow with a step rate (sql/013_flow_steps.sql):
 * commit what is pending, then take a token in a transaction of its own.
 * None free: yield, and execute() hands the item back for its slot. */
static int before_body_rated(sk_ctx_t *ctx, void *arg)
{
    run_state_t *rs = arg;
    batch_t b;
    sk_cmd_t *k;
    PGresult *res[1] = {NULL};
    int rc = before_body(ctx, arg);

    if (rc != SK_OK)
        return rc;
    rs->rate_wait_ms = 0;
    if (sk_exec_batch_init(&b, 1) != SK_OK || (k = sk_exec_batch_add(&b, "sk_step_take")) == NULL) {
        sk_exec_batch_free(&b);
        return SK_ERROR;
    }
    sk_exec_param(k, rs->it->item_s, 0, 0);
    sk_exec_param(k, rs->it->epoch_s, 0, 0);
    rc = sk_exec_run_batch(rs->x, &b, rs->it, res); /* SK_AGAIN: lease lost, nothing taken */
    sk_exec_batch_free(&b);
    if (rc == SK_OK && (PQntuples(res[0]) != 1 || PQgetisnull(res[0], 0, 0))) {
        sk_log_error("event=write_failed run=%s item=%s error=\"flow_step_take returned no value\"",
                     rs->it->run_id, rs->it->item_s);
        rc = SK_ERROR;
    }
    if (rc == SK_OK)
        rs->rate_wait_ms = strtoll(PQgetvalue(res[0], 0, 0), NULL, 10);
    PQclear(res[0]);
    if (rc != SK_OK) {
        rs->lost = 1;
        return SK_ERROR;
    }
    return rs->rate_wait_ms > 0 ? SK_AGAIN : SK_OK;
}

/* ---- one item ---------------------------------------------------------------------- */

/* End the run with the refusal noted by note_refused, in a transaction of
 * its own without the refused ops: waiting for the lease to expire would
 * only meet the same error on every takeover. */
int sk_exec_fail_refused(run_state_t *rs)
{
    run_state_t bare = {.x = rs->x, .it = rs->it, .defer = rs->defer};
    char msg[800];
    int rc;

    snprintf(msg, sizeof(msg), "the database refused to record this run's progress: %s",
             rs->x->refused);
    rs->x->refused[0] = '\0';
    sk_log_info("event=run_failed run=%s workflow=%s error=DatabaseError", rs->it->run_id,
                rs->it->workflow);
    rc = sk_exec_fail_simple(&bare, "DatabaseError", msg);
    rs->x->refused[0] = '\0'; /* refused again: the lease expires, as for any failed write */
    return rc;
}

static int handler_failed(run_state_t *rs, const sk_entry_t *e)
{
    const sk_wf_t *wf = sk_ctx_workflow(rs->ctx);
    int final_ops = (int)sk_ctx_final_ops(rs->ctx);
    /* The budget is per op: a newly recorded op starts a fresh one. */
    int attempt = rs->it->attempt_ops == final_ops ? rs->it->attempt + 1 : 1;

    if (e->fatal || attempt >= wf->max_attempts) {
        sk_log_info("event=run_failed run=%s workflow=%s attempt=%d fatal=%d", rs->it->run_id,
                    rs->it->workflow, attempt, e->fatal);
        return sk_exec_finish(rs, "failed", NULL, 0, e->error, e->error_len);
    }
    sk_log_info("event=handler_retry run=%s workflow=%s attempt=%d", rs->it->run_id,
                rs->it->workflow, attempt);
    return sk_exec_release(rs, sk_backoff_ms(&wf->retry, attempt), attempt, final_ops);
}

/* A body ended: counted by outcome, timed from its attempt's start. */
static void count_step(const item_t *it, const sk_op_t *op, sk_metric_wf_t outcome)
{
    if (op != NULL)
        sk_metrics_step(it->workflow, outcome,
                        (double)(sk_exec_wall_now_ms() - op->started_ms) / 1000.0);
}

static sk_metric_wf_t done_outcome(const sk_op_t *op)
{
    return op != NULL && op->status == SK_OP_ERROR ? SK_MC_STEPS_FAILED : SK_MC_STEPS_EXECUTED;
}

/* Everything before the first entry of the handler.  1: the item is dealt
 * with (*rc says how that went); 0: enter the handler. */
int sk_exec_item_begin(run_state_t *rs, int *rc)
{
    sk_exec_t *x = rs->x;
    item_t *it = rs->it;
    const sk_wf_t *wf;
    sk_ctx_params_t p;
    sk_entry_t e;
    char err[256];

    *rc = SK_OK;
    if (it->status == NULL || strcmp(it->status, "pending") != 0) {
        /* A stale item (its run ended, or vanished): remove it. */
        *rc = sk_exec_finish(rs, NULL, NULL, 0, NULL, 0);
        return 1;
    }
    wf = sk_registry_find(x->reg, it->workflow);
    if (wf == NULL) { /* the claim filters by workflow: only a bad row gets here */
        *rc = sk_exec_release(rs, x->cfg->lease_ms, -1, 0);
        return 1;
    }
    if (it->takeovers >= wf->max_attempts) {
        /* A worker whose master sees it die has its item handed back at
         * once (reclaim_item), which counts attempts.  Leases that expired
         * are the rest: a machine or a master died, or a worker was
         * stopped.  Each such takeover is an attempt too. */
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "run lost its worker %d times in a row (lease of %d ms expired each time: "
                 "the worker, its master or its machine stopped)",
                 it->takeovers, x->cfg->lease_ms);
        sk_log_warn("event=run_abandoned run=%s workflow=%s takeovers=%d", it->run_id, it->workflow,
                    it->takeovers);
        *rc = sk_exec_fail_simple(rs, "WorkerLostError", msg);
        return 1;
    }
    sk_exec_hold_item(x, it);
    if (sk_msgpack_check(it->data, it->data_len, err, sizeof(err)) != SK_OK) {
        char msg[400];
        snprintf(msg, sizeof(msg), "stored input is not valid msgpack: %s", err);
        *rc = sk_exec_fail_simple(rs, "CorruptRecordError", msg);
        return 1;
    }
    memset(&p, 0, sizeof(p));
    p.wf = wf;
    p.run_id = it->run_id;
    p.event_id = it->event_id;
    p.trigger_type = it->ttype;
    p.trigger_name = it->tname;
    p.created_ms = it->created_ms;
    p.data = it->data;
    p.data_len = it->data_len;
    p.before_body = it->step_rate ? before_body_rated : before_body;
    p.body_hook = body_hook;
    p.heartbeat = heartbeat_hook;
    p.hook_arg = rs;
    p.target = it->target;
    rs->ctx = sk_ctx_new(&p);
    if (rs->ctx == NULL) {
        *rc = SK_ERROR;
        return 1;
    }
    if (sk_exec_load_ops(rs, err, sizeof(err)) != SK_OK) {
        char msg[400];
        snprintf(msg, sizeof(msg), "stored op is not readable: %s", err);
        *rc = sk_exec_fail_simple(rs, "CorruptRecordError", msg);
        return 1;
    }
    if (it->target != NULL && sk_ctx_op_final(rs->ctx, it->target)) {
        /* A duplicate item (the member was dispatched again while its result
         * was being committed): nothing left to do.  Entering the handler
         * would find every member recorded and run its code past the group. */
        *rc = sk_exec_finish(rs, NULL, NULL, 0, NULL, 0);
        return 1;
    }
    if (it->target == NULL && it->attempt == 0 && !sk_ctx_has_ops(rs->ctx))
        sk_metrics_count_wf(it->workflow, SK_MC_RUNS_STARTED);
    sk_ctx_set_handler_attempt(
        rs->ctx, it->attempt_ops == (int)sk_ctx_final_ops(rs->ctx) ? it->attempt + 1 : 1);
    if (it->target == NULL && sk_exec_resolve_timeouts(rs) != SK_OK)
        return 1; /* the lease expires and another worker retries */
    if (sk_ctx_validate(rs->ctx, &e) == SK_FAILED) {
        sk_log_info("event=run_failed run=%s workflow=%s error=InvalidInputError", it->run_id,
                    it->workflow);
        *rc = sk_exec_finish(rs, "failed", NULL, 0, e.error, e.error_len);
        return 1;
    }
    return 0;
}

/* One entry of the handler and what follows from it.  0: a step's body
 * ran to its result, which must commit before the next entry; 1: the
 * item is dealt with (*rc). */
int sk_exec_item_step(run_state_t *rs, int *rc)
{
    item_t *it = rs->it;
    sk_entry_t e;

    *rc = SK_OK;
    sk_ctx_enter(rs->ctx, &e);
    if (it->target != NULL) {
        /* A group member's body on its own item. */
        switch (e.kind) {
        case SK_ENTRY_STEP_DONE:
            count_step(it, e.op, done_outcome(e.op));
            *rc = sk_exec_target_done(rs);
            return 1;
        case SK_ENTRY_FAILED:
            if (e.op == NULL) {
                /* the handler's own failure: its holder decides */
                *rc = sk_exec_finish(rs, NULL, NULL, 0, NULL, 0);
                return 1;
            }
            *rc = sk_exec_finish(rs, "failed", NULL, 0, e.error, e.error_len);
            return 1;
        case SK_ENTRY_STEP_RETRY:
        case SK_ENTRY_YIELD:
        case SK_ENTRY_ABORTED:
            break;
        default:
            /* Recorded already (a duplicate item): nothing left to do. */
            *rc = sk_exec_finish(rs, NULL, NULL, 0, NULL, 0);
            return 1;
        }
    }
    switch (e.kind) {
    case SK_ENTRY_STEP_DONE:
        count_step(it, e.op, done_outcome(e.op));
        return 0;
    case SK_ENTRY_SUSPENDED:
        sk_log_debug("event=run_suspended run=%s visible_ms=%lld", it->run_id,
                     (long long)e.visible_ms);
        *rc = sk_exec_release(rs, e.visible_ms, -1, 0);
        return 1;
    case SK_ENTRY_TARGET_IDLE:
        *rc = sk_exec_finish(rs, NULL, NULL, 0, NULL, 0);
        return 1;
    case SK_ENTRY_COMPLETED:
        sk_log_debug("event=run_completed run=%s workflow=%s", it->run_id, it->workflow);
        *rc = sk_exec_finish(rs, "completed", e.output, e.output_len, NULL, 0);
        return 1;
    case SK_ENTRY_FAILED:
        count_step(it, e.op, SK_MC_STEPS_FAILED);
        *rc = handler_failed(rs, &e);
        return 1;
    case SK_ENTRY_STEP_RETRY:
        count_step(it, e.op, SK_MC_STEPS_RETRIED);
        sk_log_info("event=step_retry run=%s step=%s attempt=%d delay_ms=%d", it->run_id,
                    e.op->step_id, e.op->attempts, e.retry_delay_ms);
        *rc = sk_exec_release(rs, e.retry_delay_ms, -1, 0);
        return 1;
    case SK_ENTRY_YIELD:
        if (rs->rate_wait_ms > 0) { /* before_body_rated: no token */
            sk_log_debug("event=step_rate_wait run=%s workflow=%s visible_ms=%lld", it->run_id,
                         it->workflow, (long long)rs->rate_wait_ms);
            *rc = sk_exec_release(rs, rs->rate_wait_ms, -1, 0);
            return 1;
        }
        sk_log_info("event=run_yield run=%s reason=stopping", it->run_id);
        *rc = sk_exec_release(rs, 0, -1, 0);
        return 1;
    case SK_ENTRY_ABORTED:
        if (!rs->lost)
            sk_log_error("event=run_aborted run=%s reason=internal", it->run_id);
        return 1; /* the lease expires and another worker takes over */
    }
    return 1;
}

/* One item, alone: each step's result commits just before the next body
 * runs (the handler is entered again at once, the result still in
 * memory), the last with the end of the run. */
static int execute(sk_exec_t *x, item_t *it)
{
    run_state_t rs = {.x = x, .it = it};
    int rc = SK_OK;

    x->refused[0] = '\0';
    if (!sk_exec_item_begin(&rs, &rc)) {
        while (!sk_exec_item_step(&rs, &rc))
            (void)sk_exec_check_stop(x); /* between entries: the next one's body yields */
    }
    if (x->refused[0] != '\0')
        rc = sk_exec_fail_refused(&rs);
    sk_exec_hold_item(x, NULL);
    sk_ctx_free(rs.ctx);
    return rc;
}

/* ---- the public loop ------------------------------------------------------------------ */

int sk_exec_work(sk_exec_t *x, int64_t *next_due_ms, int *worked)
{
    batch_t b;
    PGresult *res[2] = {NULL, NULL};
    char err[512];
    int rc;

    *next_due_ms = -1;
    *worked = 0;
    while (!sk_exec_check_stop(x)) {
        sk_exec_take_incoming(x);
        if (x->nheld == 0) {
            int64_t due;
            if (!sk_wconn_ready(x->conn))
                return SK_ERROR; /* dropped meanwhile: it reconnects by itself, then claims */
            /* A claim alone only moves a lease: no flush wait (sk_lease_only). */
            if (sk_exec_batch_init(&b, 2) != SK_OK ||
                sk_exec_batch_add(&b, "sk_lease_only") == NULL ||
                sk_exec_add_claim(x, &b, sk_exec_claim_room(x)) != SK_OK) {
                sk_exec_batch_free(&b);
                return SK_ERROR;
            }
            rc = sk_wconn_run(x->conn, b.cmds, 2, res, err, sizeof(err));
            sk_exec_batch_free(&b);
            PQclear(res[0]);
            if (rc != SK_OK) {
                PQclear(res[1]);
                /* A dropped connection is an outage the connection layer
                 * reports and recovers from; a refused claim is a bug. */
                sk_log(sk_wconn_ready(x->conn) ? SK_LOG_ERROR : SK_LOG_WARN,
                       "event=claim_failed error=\"%s\"", err);
                return SK_ERROR;
            }
            /* Connected and served: from now on a death of this worker is
             * not a start-up failure (the master respawns it at once). */
            atomic_store_explicit(&x->slot->ready, 1, memory_order_release);
            if (sk_exec_parse_claim(x, res[1], &due) == 0) {
                *next_due_ms = due;
                return SK_OK; /* nothing visible */
            }
            if (due == 0 && x->more != NULL)
                x->more(x->more_arg); /* 0 with an item: more are ready */
            sk_exec_take_incoming(x);
        }
        *worked = 1;
        x->found_none = 0;
        if (x->nheld == 1 && x->nincoming == 0) {
            /* One item: alone, exactly as without batching (the light-load
             * path: a claim that found one item ready). */
            slot_t *s = NULL;
            for (int i = 0; i < x->batch && s == NULL; i++)
                s = x->slots[i].held ? &x->slots[i] : NULL;
            if (!s->started) {
                rc = execute(x, &s->it);
                sk_exec_slot_free(x, s);
                if (!sk_wconn_ready(x->conn))
                    return SK_ERROR;
                if (rc == SK_OK && x->found_none && x->nincoming == 0) {
                    *next_due_ms = x->next_due_ms; /* the end's own claim found nothing */
                    return SK_OK;
                }
                continue;
            }
        }
        rc = sk_exec_round_run(x);
        if (rc != SK_OK || !sk_wconn_ready(x->conn))
            return SK_ERROR;
        if (x->nheld == 0 && x->nincoming == 0 && x->found_none) {
            *next_due_ms = x->next_due_ms;
            return SK_OK;
        }
    }
    sk_exec_hand_back_all(x);
    return SK_OK;
}

sk_exec_t *sk_exec_new(sk_wconn_t *conn, const sk_config_t *cfg, const sk_registry_t *reg,
                       sk_worker_slot_t *slot, sk_stop_fn stop, void *stop_arg)
{
    sk_exec_t *x = calloc(1, sizeof(*x));
    char host[64] = "localhost";
    size_t len = 1;

    if (x == NULL)
        return NULL;
    x->conn = conn;
    x->cfg = cfg;
    x->reg = reg;
    x->slot = slot;
    x->stop = stop;
    x->stop_arg = stop_arg;
    gethostname(host, sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    snprintf(x->worker_name, sizeof(x->worker_name), "%s:%d", host, (int)getpid());
    snprintf(x->lease, sizeof(x->lease), "%d", cfg->lease_ms);
    x->renew = sk_renew_new(cfg);
    if (x->renew == NULL) {
        free(x);
        return NULL;
    }
    for (size_t i = 0; i < sk_registry_count(reg); i++)
        len += strlen(sk_registry_at(reg, i)->id) + 1;
    x->workflows = calloc(1, len);
    if (x->workflows == NULL) {
        sk_renew_free(x->renew);
        free(x);
        return NULL;
    }
    for (size_t i = 0; i < sk_registry_count(reg); i++) {
        if (i > 0)
            strcat(x->workflows, "\n");
        strcat(x->workflows, sk_registry_at(reg, i)->id);
    }
    x->batch =
        cfg->batch > 1 && sk_schema_version_known() >= SK_BATCH_SCHEMA_VERSION ? cfg->batch : 1;
    x->slots = calloc((size_t)x->batch, sizeof(*x->slots));
    x->incoming = calloc((size_t)x->batch, sizeof(*x->incoming));
    x->round_in = calloc((size_t)x->batch, sizeof(*x->round_in));
    /* Until a body was timed, a new worker takes one item at a time. */
    x->body_avg_us = -1;
    set_round_max(x);
    if (x->slots == NULL || x->incoming == NULL || x->round_in == NULL) {
        sk_exec_free(x);
        return NULL;
    }
    return x;
}

void sk_exec_on_more(sk_exec_t *x, void (*more)(void *arg), void *arg)
{
    x->more = more;
    x->more_arg = arg;
}

void sk_exec_free(sk_exec_t *x)
{
    if (x == NULL)
        return;
    sk_renew_free(x->renew);
    free(x->workflows);
    free(x->slots);
    free(x->incoming);
    free(x->round_in);
    free(x);
}
