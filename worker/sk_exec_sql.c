/*
 * The executor's SQL write layer: what builds and sends the statements of
 * sk_stmts.c.  A claim's result read into items, batches of commands with
 * their parameters, the commands each write adds (fence, op, intent,
 * dispatch, claim), and the writes that checkpoint a step, load a run's
 * ops, settle timed-out waits, hand an item back or end a run: run at
 * once, or in batch mode left in the item's defer_t for its round
 * (sk_exec_round.c).  The run lifecycle (sk_exec.c) decides what to
 * write; this file knows how.
 */
#include <arpa/inet.h>
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sk_ctx.h"
#include "sk_exec_int.h"
#include "sk_json.h"
#include "sk_log.h"
#include "sk_metrics.h"
#include "sk_stmts.h"
#include "stepkit.h"

/* ---- binary result fields ------------------------------------------------------- */

static int64_t get_i64(const PGresult *r, int row, int col)
{
    uint64_t v;

    memcpy(&v, PQgetvalue(r, row, col), 8);
    return (int64_t)be64toh(v);
}

static int32_t get_i32(const PGresult *r, int row, int col)
{
    uint32_t v;

    memcpy(&v, PQgetvalue(r, row, col), 4);
    return (int32_t)ntohl(v);
}

static const char *get_str(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? NULL : PQgetvalue(r, row, col);
}

void sk_exec_item_drop(item_t *it)
{
    if (it->cr != NULL && --it->cr->refs == 0) {
        PQclear(it->cr->res);
        free(it->cr);
    }
    it->cr = NULL;
}

/* One item from rows row0 .. row0 + nrows - 1 of a claim's result. */
static void item_parse(item_t *it, claim_res_t *cr, int row0, int nrows)
{
    const PGresult *res = cr->res;

    memset(it, 0, sizeof(*it));
    it->cr = cr;
    cr->refs++;
    it->row0 = row0;
    it->nrows = nrows;
    it->item_id = get_i64(res, row0, SK_CLAIM_ITEM);
    it->epoch = get_i32(res, row0, SK_CLAIM_EPOCH);
    snprintf(it->item_s, sizeof(it->item_s), "%lld", (long long)it->item_id);
    snprintf(it->epoch_s, sizeof(it->epoch_s), "%d", it->epoch);
    it->run_id = get_str(res, row0, SK_CLAIM_RUN);
    it->target = get_str(res, row0, SK_CLAIM_TARGET);
    snprintf(it->wake_s, sizeof(it->wake_s), "%d", get_i32(res, row0, SK_CLAIM_WAKE));
    it->takeovers = get_i32(res, row0, SK_CLAIM_TAKEOVERS);
    /* (SK_CLAIM_STEP_RATE is missing from the claim of a binary that knows
     * a schema before 013: see sk_stmt_sql) */
    it->step_rate = PQnfields(res) > SK_CLAIM_STEP_RATE &&
                    !PQgetisnull(res, row0, SK_CLAIM_STEP_RATE) &&
                    PQgetvalue(res, row0, SK_CLAIM_STEP_RATE)[0] != 0;
    it->workflow = get_str(res, row0, SK_CLAIM_WORKFLOW);
    it->event_id = get_str(res, row0, SK_CLAIM_EVENT);
    it->ttype = get_str(res, row0, SK_CLAIM_TTYPE);
    it->tname = get_str(res, row0, SK_CLAIM_TNAME);
    it->status = get_str(res, row0, SK_CLAIM_STATUS);
    if (it->status != NULL) {
        it->data = PQgetvalue(res, row0, SK_CLAIM_DATA);
        it->data_len = (size_t)PQgetlength(res, row0, SK_CLAIM_DATA);
        it->attempt = get_i32(res, row0, SK_CLAIM_ATTEMPT);
        it->attempt_ops = get_i32(res, row0, SK_CLAIM_ATTEMPT_OPS);
        it->created_ms = get_i64(res, row0, SK_CLAIM_CREATED_MS);
    }
    sk_metrics_count(SK_MC_CLAIMS);
    if (it->takeovers > 0)
        sk_metrics_count(SK_MC_LEASE_TAKEOVERS);
}

/* Parse sk_claim's or sk_claim_batch's result (takes `res`) into
 * x->incoming: each item's rows are consecutive.  The number of items;
 * *next_due_ms: with none, ms until the earliest is visible (-1: none);
 * with some, 0 when the last claim saw another ready. */
int sk_exec_parse_claim(sk_exec_t *x, PGresult *res, int64_t *next_due_ms)
{
    claim_res_t *cr;
    int rows = PQntuples(res), n = 0, row0 = 0;

    *next_due_ms = -1;
    if (rows == 0 || PQnfields(res) < SK_CLAIM_STEP_RATE) {
        PQclear(res);
        return 0;
    }
    *next_due_ms = PQgetisnull(res, rows - 1, SK_CLAIM_NEXT_MS)
                       ? -1
                       : get_i64(res, rows - 1, SK_CLAIM_NEXT_MS);
    if (PQgetisnull(res, 0, SK_CLAIM_ITEM) || (cr = calloc(1, sizeof(*cr))) == NULL) {
        PQclear(res);
        return 0;
    }
    cr->res = res;
    cr->refs = 1;
    for (int row = 1; row <= rows; row++) {
        if (row < rows && !PQgetisnull(res, row, SK_CLAIM_ITEM) &&
            get_i64(res, row, SK_CLAIM_ITEM) == get_i64(res, row0, SK_CLAIM_ITEM))
            continue;
        if (x->nincoming < x->batch) {
            item_parse(&x->incoming[x->nincoming++], cr, row0, row - row0);
            n++;
        }
        /* (more than asked cannot come: the claim took at most that many) */
        if (row < rows && PQgetisnull(res, row, SK_CLAIM_ITEM))
            break;
        row0 = row;
    }
    x->more_ready = *next_due_ms == 0;
    sk_exec_item_drop(&(item_t){.cr = cr});
    sk_exec_publish_batch(x);
    return n;
}

/* ---- batches ------------------------------------------------------------------- */

int sk_exec_batch_init(batch_t *b, int cap)
{
    b->n = 0;
    b->cap = cap;
    b->nowned = 0;
    b->cmds = calloc((size_t)cap, sizeof(*b->cmds));
    b->nums = calloc((size_t)cap, sizeof(*b->nums));
    b->owned = calloc((size_t)cap, sizeof(*b->owned));
    return b->cmds && b->nums && b->owned ? SK_OK : SK_ERROR;
}

void sk_exec_batch_free(batch_t *b)
{
    for (int i = 0; i < b->nowned; i++)
        msgpack_sbuffer_destroy(&b->owned[i]);
    free(b->owned);
    free(b->cmds);
    free(b->nums);
}

/* A buffer that lives as long as the batch (for packed parameters). */
static msgpack_sbuffer *batch_buffer(batch_t *b)
{
    msgpack_sbuffer *sb;

    if (b->nowned == b->cap)
        return NULL;
    sb = &b->owned[b->nowned++];
    msgpack_sbuffer_init(sb);
    return sb;
}

sk_cmd_t *sk_exec_batch_add(batch_t *b, const char *stmt)
{
    sk_cmd_t *k;

    if (b->n == b->cap)
        return NULL;
    k = &b->cmds[b->n++];
    memset(k, 0, sizeof(*k));
    k->stmt = stmt;
    return k;
}

void sk_exec_param(sk_cmd_t *k, const char *v, int len, int binary)
{
    k->values[k->nparams] = v;
    k->lengths[k->nparams] = len;
    k->formats[k->nparams] = binary;
    k->nparams++;
}

char *sk_exec_num(batch_t *b, int slot, long long v)
{
    char *s = b->nums[b->n - 1][slot];

    snprintf(s, NUM_LEN, "%lld", v);
    return s;
}

/* Extend the lease to now + ms, hand the item back visible after ms (< 0:
 * only when woken), or delete it (its work is done). */
int sk_exec_add_fence(batch_t *b, const item_t *it, fence_mode_t mode, int64_t ms)
{
    sk_cmd_t *k = sk_exec_batch_add(b, "sk_fence");

    if (k == NULL)
        return SK_ERROR;
    sk_exec_param(k, it->item_s, 0, 0);
    sk_exec_param(k, it->epoch_s, 0, 0);
    sk_exec_param(k, mode == FENCE_DELETE ? NULL : sk_exec_num(b, 0, ms), 0, 0);
    sk_exec_param(k, mode == FENCE_RELEASE ? "true" : "false", 0, 0);
    sk_exec_param(k, it->wake_s, 0, 0);
    return SK_OK;
}

/* A command whose first parameters name the op: run, op key, step id. */
static sk_cmd_t *op_cmd(batch_t *b, const char *stmt, const item_t *it, const sk_op_t *op)
{
    sk_cmd_t *k = sk_exec_batch_add(b, stmt);

    if (k != NULL) {
        sk_exec_param(k, it->run_id, 0, 0);
        sk_exec_param(k, op->key, 0, 0);
        sk_exec_param(k, op->step_id, 0, 0);
    }
    return k;
}

static const char *const op_status_names[] = {"retry", "ok", "error", "waiting"};

static int add_op(batch_t *b, const item_t *it, const sk_op_t *op)
{
    sk_cmd_t *k = op_cmd(b, "sk_op_put", it, op);

    if (k == NULL)
        return SK_ERROR;
    sk_exec_param(k, op->kind, 0, 0);
    sk_exec_param(k, op_status_names[op->status], 0, 0);
    sk_exec_param(k, op->status == SK_OP_WAITING ? NULL : op->data, (int)op->len, 1);
    sk_exec_param(k, sk_exec_num(b, 0, op->attempts), 0, 0);
    sk_exec_param(k, op->wait_info, (int)op->wait_len, 1);
    sk_exec_param(k, sk_exec_num(b, 1, op->started_ms), 0, 0);
    return SK_OK;
}

static char *timeout_param(batch_t *b, int slot, int64_t timeout_ms)
{
    return timeout_ms < 0 ? NULL : sk_exec_num(b, slot, timeout_ms);
}

/* A new op whose statement does more than record it (sql/: wait_signal,
 * send_signal_step, invoke_child). */
static int add_intent(batch_t *b, const item_t *it, const sk_op_t *op)
{
    sk_cmd_t *k;
    msgpack_sbuffer *err;
    char msg[300];

    switch (op->intent) {
    case SK_INTENT_SIGNAL:
        k = op_cmd(b, "sk_wait_signal", it, op);
        if (k == NULL)
            return SK_ERROR;
        sk_exec_param(k, op->signal, 0, 0);
        sk_exec_param(k, timeout_param(b, 0, op->timeout_ms), 0, 0);
        sk_exec_param(k, op->wait_info, (int)op->wait_len, 1);
        sk_exec_param(k, sk_exec_num(b, 1, op->started_ms), 0, 0);
        return SK_OK;
    case SK_INTENT_SEND:
        k = op_cmd(b, "sk_send_step", it, op);
        if (k == NULL)
            return SK_ERROR;
        sk_exec_param(k, op->signal, 0, 0);
        sk_exec_param(k, op->payload, (int)op->payload_len, 1);
        sk_exec_param(k, sk_exec_num(b, 0, op->started_ms), 0, 0);
        return SK_OK;
    case SK_INTENT_INVOKE:
        err = batch_buffer(b);
        snprintf(msg, sizeof(msg), "workflow %s is not registered", op->workflow);
        if (err == NULL || sk_error_pack_simple(err, "UnknownWorkflowError", msg, 0) != SK_OK)
            return SK_ERROR;
        k = op_cmd(b, "sk_invoke_child", it, op);
        if (k == NULL)
            return SK_ERROR;
        sk_exec_param(k, op->child, 0, 0);
        sk_exec_param(k, op->workflow, 0, 0);
        sk_exec_param(k, op->payload, (int)op->payload_len, 1);
        sk_exec_param(k, timeout_param(b, 0, op->timeout_ms), 0, 0);
        sk_exec_param(k, op->wait_info, (int)op->wait_len, 1);
        sk_exec_param(k, sk_exec_num(b, 1, op->started_ms), 0, 0);
        sk_exec_param(k, err->data, (int)err->size, 1);
        return SK_OK;
    case SK_INTENT_NONE:
        break;
    }
    return SK_OK;
}

/* What run `ctx` has to commit, as the context hands it out (nothing
 * without a context). */
static int writes_of(sk_ctx_t *ctx, sk_ctx_writes_t *w)
{
    if (ctx == NULL) {
        memset(w, 0, sizeof(*w));
        return SK_OK;
    }
    return sk_ctx_writes(ctx, w);
}

/* Its ops, each by its kind's statement, then the target items of the
 * group members other workers run. */
int sk_exec_add_writes(batch_t *b, const item_t *it, const sk_ctx_writes_t *w)
{
    for (size_t i = 0; i < w->nops; i++) {
        const sk_op_t *op = w->ops[i];
        if ((op->intent == SK_INTENT_NONE ? add_op(b, it, op) : add_intent(b, it, op)) != SK_OK)
            return SK_ERROR;
    }
    for (size_t i = 0; i < w->ndispatch; i++) {
        sk_cmd_t *k = sk_exec_batch_add(b, "sk_dispatch");
        if (k == NULL)
            return SK_ERROR;
        sk_exec_param(k, it->run_id, 0, 0);
        sk_exec_param(k, it->workflow, 0, 0);
        sk_exec_param(k, w->dispatch[i], 0, 0);
    }
    return SK_OK;
}

/* `w` is durable: the context learns it, the slot counts its results. */
void sk_exec_writes_committed(sk_exec_t *x, sk_ctx_t *ctx, const sk_ctx_writes_t *w)
{
    if (ctx != NULL)
        atomic_fetch_add(&x->slot->steps_done, sk_ctx_committed(ctx, w));
}

/* Claim up to `max` items (what is ready now; one without batching). */
int sk_exec_add_claim(sk_exec_t *x, batch_t *b, int max)
{
    sk_cmd_t *k = sk_exec_batch_add(b, x->batch > 1 ? "sk_claim_batch" : "sk_claim");

    if (k == NULL)
        return SK_ERROR;
    sk_exec_param(k, x->lease, 0, 0);
    sk_exec_param(k, x->worker_name, 0, 0);
    sk_exec_param(k, x->workflows, 0, 0);
    if (x->batch > 1)
        sk_exec_param(k, sk_exec_num(b, 0, max), 0, 0);
    k->binary_result = 1;
    return SK_OK;
}

/* Room for items a claim may take now. */
int sk_exec_claim_room(const sk_exec_t *x)
{
    int room = x->round_max - x->nheld - x->nincoming;

    return room > 0 ? room : 0;
}

/* The database refused a write with an error that every retry would meet
 * again (sk_wconn_sqlstate_final): remember it, execute() fails the run. */
void sk_exec_note_refused(sk_exec_t *x, const item_t *it, const char *err)
{
    const char *state = sk_wconn_sqlstate(x->conn);

    snprintf(x->refused, sizeof(x->refused), "%s (SQLSTATE %s)", err, state);
    sk_log_warn("event=write_refused run=%s item=%s sqlstate=%s error=\"%s\"", it->run_id,
                it->item_s, state, err);
}

/*
 * Run a batch as one transaction.  SK_OK; SK_AGAIN when the lease was lost
 * (nothing changed); SK_ERROR otherwise.  Results are kept in res (caller
 * clears) when res is given.
 */
int sk_exec_run_batch(sk_exec_t *x, batch_t *b, const item_t *it, PGresult **res)
{
    char err[512];
    PGresult **r = res ? res : calloc((size_t)b->n, sizeof(*r));
    int rc;

    if (r == NULL)
        return SK_ERROR;
    rc = sk_wconn_run(x->conn, b->cmds, b->n, r, err, sizeof(err));
    if (rc == SK_WCONN_REFUSED) {
        sk_exec_note_refused(x, it, err);
    } else if (rc == SK_AGAIN) {
        sk_log_warn("event=lease_lost run=%s item=%s epoch=%s", it->run_id, it->item_s,
                    it->epoch_s);
        sk_metrics_count(SK_MC_FENCE_REFUSALS);
    } else if (rc != SK_OK)
        sk_log_error("event=write_failed run=%s item=%s error=\"%s\"", it->run_id, it->item_s, err);
    if (res == NULL) {
        for (int i = 0; i < b->n; i++)
            PQclear(r[i]);
        free(r);
    }
    return rc;
}

/* ---- hooks and endings ------------------------------------------------------------ */

/* The sequential path's checkpoint: one pending op (a step's result) and a
 * lease extension in one statement; no rows means the lease was lost. */
int sk_exec_checkpoint_one(run_state_t *rs, const sk_op_t *op)
{
    batch_t b;
    sk_cmd_t *k;
    PGresult *res[1] = {NULL};
    char err[512];
    int rc = SK_ERROR;

    if (sk_exec_batch_init(&b, 1) != SK_OK)
        return SK_ERROR;
    k = sk_exec_batch_add(&b, "sk_checkpoint");
    if (k == NULL)
        goto done;
    sk_exec_param(k, rs->it->item_s, 0, 0);
    sk_exec_param(k, rs->it->epoch_s, 0, 0);
    sk_exec_param(k, op->key, 0, 0);
    sk_exec_param(k, op->step_id, 0, 0);
    sk_exec_param(k, op->kind, 0, 0);
    sk_exec_param(k, op_status_names[op->status], 0, 0);
    sk_exec_param(k, op->data, (int)op->len, 1);
    sk_exec_param(k, sk_exec_num(&b, 0, op->attempts), 0, 0);
    sk_exec_param(k, sk_exec_num(&b, 1, op->started_ms), 0, 0);
    sk_exec_param(k, sk_exec_num(&b, 2, rs->x->cfg->lease_ms), 0, 0);
    rc = sk_wconn_run(rs->x->conn, b.cmds, 1, res, err, sizeof(err));
    if (rc == SK_OK && strcmp(PQcmdTuples(res[0]), "1") != 0) {
        sk_log_warn("event=lease_lost run=%s item=%s epoch=%s", rs->it->run_id, rs->it->item_s,
                    rs->it->epoch_s);
        sk_metrics_count(SK_MC_FENCE_REFUSALS);
        rc = SK_AGAIN;
    } else if (rc == SK_WCONN_REFUSED) {
        sk_exec_note_refused(rs->x, rs->it, err);
    } else if (rc != SK_OK) {
        sk_log_error("event=write_failed run=%s item=%s error=\"%s\"", rs->it->run_id,
                     rs->it->item_s, err);
    }
done:
    PQclear(res[0]);
    sk_exec_batch_free(&b);
    return rc;
}

/* Where an item's writes go: its defer_t in batch mode (committed by the
 * round), else `local`, run at once; *w: what of its context they carry
 * (kept with them in batch mode).  `extra`: commands beyond the context's
 * writes.  out_end cleans up either way. */
batch_t *sk_exec_out_begin(run_state_t *rs, batch_t *local, const sk_ctx_writes_t *w, int extra)
{
    batch_t *b = rs->defer != NULL ? &rs->defer->b : local;

    if (rs->defer != NULL && rs->defer->used)
        return NULL; /* one set of writes per item and round */
    if (sk_exec_batch_init(b, 2 * (int)w->nops + (int)w->ndispatch + extra) != SK_OK) {
        sk_exec_batch_free(b);
        return NULL;
    }
    if (rs->defer != NULL) {
        rs->defer->used = 1;
        rs->defer->w = *w;
    }
    return b;
}

void sk_exec_out_end(run_state_t *rs, batch_t *b, int rc)
{
    if (rs->defer == NULL || rc != SK_OK) {
        sk_exec_batch_free(b);
        if (rs->defer != NULL)
            memset(rs->defer, 0, sizeof(*rs->defer));
    }
}

/* A copy of `len` bytes the batch owns (a deferred write outlives the
 * caller's buffer). */
static const char *batch_copy(batch_t *b, const char *data, size_t len)
{
    msgpack_sbuffer *sb;

    if (data == NULL)
        return NULL;
    sb = batch_buffer(b);
    if (sb == NULL || msgpack_sbuffer_write(sb, data, len) != 0)
        return NULL;
    return sb->data;
}

/* Writes that end this item's hold: kept for the round's transaction in
 * batch mode, else run now (and the context told once they are durable). */
static int out_end_hold(run_state_t *rs, batch_t *b, const sk_ctx_writes_t *w)
{
    int rc;

    if (rs->defer != NULL) {
        rs->defer->ends = 1;
        return SK_OK;
    }
    rc = sk_exec_run_batch(rs->x, b, rs->it, NULL);
    if (rc == SK_OK)
        sk_exec_writes_committed(rs->x, rs->ctx, w);
    return rc;
}

/* Hand the item back (visible again after delay_ms; < 0: when woken),
 * committing pending ops and group dispatches and, when attempt >= 0, the
 * handler's attempt counters. */
int sk_exec_release(run_state_t *rs, int64_t delay_ms, int attempt, int attempt_ops)
{
    batch_t local, *b;
    sk_ctx_writes_t w;
    int rc = SK_ERROR;

    if (writes_of(rs->ctx, &w) != SK_OK || (b = sk_exec_out_begin(rs, &local, &w, 4)) == NULL)
        return SK_ERROR;
    /* (Not in a batch: the others' step results commit with it.) */
    if (rs->defer == NULL && w.nops == 0 && w.ndispatch == 0 && attempt < 0 &&
        sk_exec_batch_add(b, "sk_lease_only") == NULL)
        goto done;
    if (sk_exec_add_fence(b, rs->it, FENCE_RELEASE, delay_ms) != SK_OK ||
        sk_exec_add_writes(b, rs->it, &w) != SK_OK)
        goto done;
    if (attempt >= 0) {
        sk_cmd_t *k = sk_exec_batch_add(b, "sk_run_attempt");
        if (k == NULL)
            goto done;
        sk_exec_param(k, rs->it->run_id, 0, 0);
        sk_exec_param(k, sk_exec_num(b, 0, attempt), 0, 0);
        sk_exec_param(k, sk_exec_num(b, 1, attempt_ops), 0, 0);
    }
    rc = out_end_hold(rs, b, &w);
done:
    sk_exec_out_end(rs, b, rc);
    return rc;
}

/*
 * End the run (status "completed" with output, or "failed" with error),
 * with its pending ops, removing the item (status NULL: only remove the
 * item).  Run at once, the same transaction claims what is ready next
 * (into x->incoming); in batch mode the round claims.
 */
int sk_exec_finish(run_state_t *rs, const char *status, const char *output, size_t output_len,
                   const char *error, size_t error_len)
{
    sk_exec_t *x = rs->x;
    batch_t local, *b;
    sk_ctx_writes_t w;
    sk_cmd_t *k;
    PGresult **res = NULL;
    int rc = SK_ERROR, claim_at = -1;

    if (writes_of(rs->ctx, &w) != SK_OK || (b = sk_exec_out_begin(rs, &local, &w, 7)) == NULL)
        return SK_ERROR;
    /* A group member ending its run locks the run's item first, as every
     * writer touching both items does (see target_done): no deadlock.  A
     * member's item that finds its op already final (a reclaim recorded
     * the last attempt's death) wakes the run too: nothing else would. */
    if (rs->it->target != NULL) {
        if ((k = sk_exec_batch_add(b, "sk_wake")) == NULL)
            goto done;
        sk_exec_param(k, rs->it->run_id, 0, 0);
    }
    if (status == NULL) {
        if (sk_exec_add_fence(b, rs->it, FENCE_DELETE, 0) != SK_OK)
            goto done;
    } else {
        /* end_run is fenced itself: it removes our item or raises SK001,
         * before anything else of this transaction is written. */
        msgpack_sbuffer *perr = error != NULL ? batch_buffer(b) : NULL;
        if (error != NULL && (perr == NULL || sk_error_repack_fatal(error, error_len, perr)))
            goto done;
        if (rs->defer != NULL) {
            output = batch_copy(b, output, output_len);
            error = batch_copy(b, error, error_len);
        }
        k = sk_exec_batch_add(b, "sk_end_run");
        if (k == NULL)
            goto done;
        sk_exec_param(k, rs->it->item_s, 0, 0);
        sk_exec_param(k, rs->it->epoch_s, 0, 0);
        sk_exec_param(k, rs->it->run_id, 0, 0);
        sk_exec_param(k, status, 0, 0);
        sk_exec_param(k, output, (int)output_len, 1);
        sk_exec_param(k, error, (int)error_len, 1);
        sk_exec_param(k, perr ? perr->data : NULL, perr ? (int)perr->size : 0, 1);
        sk_exec_param(k, sk_wconn_done_channel(x->conn), 0, 0);
    }
    if (sk_exec_add_writes(b, rs->it, &w) != SK_OK)
        goto done;
    if (rs->defer != NULL) {
        rs->defer->ends = 1;
        rs->defer->end_status = status;
        rc = SK_OK;
        goto done;
    }
    /* Claim the next item even when stopping: asking here would serve
     * signals mid-transaction; a stopping worker hands it back at once
     * (sk_exec_work), an extra round trip only at shutdown. */
    claim_at = b->n;
    if (sk_exec_add_claim(x, b, sk_exec_claim_room(x) + 1) != SK_OK) /* (+ 1: this item's slot) */
        goto done;
    res = calloc((size_t)b->n, sizeof(*res));
    if (res == NULL)
        goto done;
    rc = sk_exec_run_batch(x, b, rs->it, res);
    if (rc == SK_OK) {
        sk_exec_writes_committed(x, rs->ctx, &w);
        if (status != NULL) {
            atomic_fetch_add(&x->slot->runs_done, 1);
            sk_metrics_run_end(rs->it->workflow, strcmp(status, "completed") == 0,
                               (double)(sk_exec_wall_now_ms() - rs->it->created_ms) / 1000.0);
        }
        if (claim_at >= 0 && res[claim_at] != NULL) {
            int64_t more = -1;
            int got = sk_exec_parse_claim(x, res[claim_at], &more);
            res[claim_at] = NULL;
            if (got > 0 && more == 0 && x->more != NULL)
                x->more(x->more_arg);
            x->found_none = got == 0; /* no second claim to learn that again */
            x->next_due_ms = more;
        }
    }
done:
    if (res != NULL) {
        for (int i = 0; i < b->n; i++)
            PQclear(res[i]);
        free(res);
    }
    sk_exec_out_end(rs, b, rc);
    return rc;
}

int sk_exec_fail_simple(run_state_t *rs, const char *name, const char *msg)
{
    msgpack_sbuffer buf;
    int rc;

    msgpack_sbuffer_init(&buf);
    rc = sk_error_pack_simple(&buf, name, msg, 0);
    if (rc == SK_OK)
        rc = sk_exec_finish(rs, "failed", NULL, 0, buf.data, buf.size);
    msgpack_sbuffer_destroy(&buf);
    return rc;
}

/* ---- one item ---------------------------------------------------------------------- */

int sk_exec_load_ops(run_state_t *rs, char *err, size_t errlen)
{
    const PGresult *r = rs->it->cr->res;

    for (int row = rs->it->row0; row < rs->it->row0 + rs->it->nrows; row++) {
        const char *key = get_str(r, row, SK_CLAIM_OP_KEY);
        const char *step = get_str(r, row, SK_CLAIM_OP_STEP);
        const char *st = get_str(r, row, SK_CLAIM_OP_STATUS);
        const char *data = PQgetvalue(r, row, SK_CLAIM_OP_RESULT);
        size_t len = (size_t)PQgetlength(r, row, SK_CLAIM_OP_RESULT);
        const char *wait = get_str(r, row, SK_CLAIM_OP_WAIT);
        size_t wait_len = (size_t)PQgetlength(r, row, SK_CLAIM_OP_WAIT);
        sk_op_status_t status;

        if (key == NULL)
            continue; /* the LEFT JOIN's row of a run with no ops */
        if (step == NULL || st == NULL || strlen(key) != 40) {
            snprintf(err, errlen, "op row %d is incomplete", row);
            return SK_ERROR;
        }
        status = strcmp(st, "ok") == 0        ? SK_OP_OK
                 : strcmp(st, "error") == 0   ? SK_OP_ERROR
                 : strcmp(st, "waiting") == 0 ? SK_OP_WAITING
                                              : SK_OP_RETRY;
        if (PQgetisnull(r, row, SK_CLAIM_OP_RESULT)) {
            data = "\xc0"; /* a waiting op has no result yet */
            len = 1;
        }
        /* Rows come from outside this process: check before unpacking. */
        if (sk_msgpack_check(data, len, err, errlen) != SK_OK ||
            (wait != NULL && sk_msgpack_check(wait, wait_len, err, errlen) != SK_OK))
            return SK_ERROR;
        if (sk_ctx_add_op(rs->ctx, key, step, get_str(r, row, SK_CLAIM_OP_KIND), status,
                          get_i32(r, row, SK_CLAIM_OP_ATTEMPTS), data, len, wait,
                          wait ? wait_len : 0) != SK_OK) {
            snprintf(err, errlen, "out of memory");
            return SK_ERROR;
        }
    }
    return SK_OK;
}

/*
 * Waits (signal, child run) whose timeout has passed are settled before the
 * replay, each in a transaction that races the sender or the child: who
 * deletes the waiting row decides, so the step sees exactly one outcome.
 */
int sk_exec_resolve_timeouts(run_state_t *rs)
{
    int64_t now = sk_exec_wall_now_ms();

    for (const sk_op_t *op = sk_ctx_due_wait(rs->ctx, now, NULL); op != NULL;
         op = sk_ctx_due_wait(rs->ctx, now, op)) {
        msgpack_sbuffer *res_buf;
        PGresult *res[2] = {NULL, NULL};
        char msg[120], err[512];
        batch_t b;
        sk_cmd_t *k;
        int rc;

        if (sk_exec_batch_init(&b, 3) != SK_OK)
            return SK_ERROR;
        res_buf = batch_buffer(&b);
        if (res_buf == NULL ||
            sk_exec_add_fence(&b, rs->it, FENCE_EXTEND, rs->x->cfg->lease_ms) != SK_OK ||
            (k = sk_exec_batch_add(&b, "sk_resolve_timeout")) == NULL) {
            sk_exec_batch_free(&b);
            return SK_ERROR;
        }
        if (strcmp(op->kind, "invoke") == 0) {
            snprintf(msg, sizeof(msg), "invoked run %s timed out", op->child);
            if (sk_error_pack_simple(res_buf, "InvokeTimeoutError", msg, 0) != SK_OK) {
                sk_exec_batch_free(&b);
                return SK_ERROR;
            }
        } else {
            msgpack_sbuffer_write(res_buf, "\xc0", 1);
        }
        sk_exec_param(k, rs->it->run_id, 0, 0);
        sk_exec_param(k, op->key, 0, 0);
        sk_exec_param(k, res_buf->data, (int)res_buf->size, 1);
        k->binary_result = 1;
        rc = sk_wconn_run(rs->x->conn, b.cmds, b.n, res, err, sizeof(err));
        if (rc == SK_OK && res[1] != NULL && PQntuples(res[1]) == 1) {
            const char *st = PQgetvalue(res[1], 0, 0);
            const char *data = PQgetvalue(res[1], 0, 1);
            size_t len = (size_t)PQgetlength(res[1], 0, 1);
            if (strcmp(st, "waiting") != 0 && sk_msgpack_check(data, len, err, sizeof(err)) == 0)
                (void)sk_ctx_op_settled(rs->ctx, op->key,
                                        strcmp(st, "ok") == 0 ? SK_OP_OK : SK_OP_ERROR, data, len);
        } else if (rc != SK_OK) {
            sk_log_warn("event=timeout_resolve_failed run=%s op=%s error=\"%s\"", rs->it->run_id,
                        op->key, err);
        }
        PQclear(res[0]);
        PQclear(res[1]);
        sk_exec_batch_free(&b);
        if (rc != SK_OK)
            return SK_ERROR;
    }
    return SK_OK;
}

/* Target mode: the group member's body ran; record it, drop the target
 * item and wake the run so its holder sees the result. */
int sk_exec_target_done(run_state_t *rs)
{
    batch_t local, *b;
    sk_ctx_writes_t w;
    sk_cmd_t *k;
    int rc = SK_ERROR;

    if (writes_of(rs->ctx, &w) != SK_OK || (b = sk_exec_out_begin(rs, &local, &w, 3)) == NULL)
        return SK_ERROR;
    /* The wake first: it locks the run's item before the fence locks the
     * member's.  The run's holder handing it back locks them in that order
     * too (its fence, then sk_dispatch meeting this item in the unique
     * index): the other order deadlocks.  One transaction either way, so a
     * lost lease still undoes the wake. */
    if ((k = sk_exec_batch_add(b, "sk_wake")) == NULL)
        goto done;
    sk_exec_param(k, rs->it->run_id, 0, 0);
    if (sk_exec_add_fence(b, rs->it, FENCE_DELETE, 0) != SK_OK ||
        sk_exec_add_writes(b, rs->it, &w) != SK_OK)
        goto done;
    rc = out_end_hold(rs, b, &w);
done:
    sk_exec_out_end(rs, b, rc);
    return rc;
}
