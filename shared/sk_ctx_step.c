/*
 * The replay context's steps: sk_ctx_step, the one step call behind
 * sk_run, sk_sleep, sk_wait_for_signal, sk_send_signal and sk_invoke (and
 * the group members), which returns a recorded result, starts a new op or
 * executes a run's body, with the bodies' execution and the runs handed to
 * other workers.  This is the replay itself; the entry (sk_ctx.c) and the
 * groups (sk_ctx_group.c) drive it, the op table (sk_ctx_ops.c) stores it.
 */
#include <stdlib.h>
#include <string.h>

#include "sk_ctx_int.h"
#include "sk_json.h"
#include "sk_limits.h"
#include "sk_uuid.h"

static int counter_next(sk_ctx_t *ctx, const char *id)
{
    uint32_t i = sk_ctx_hash_str(id) & (COUNTER_BUCKETS - 1);
    counter_t *c = ctx->counters[i];

    while (c != NULL && strcmp(c->id, id) != 0)
        c = c->next;
    if (c == NULL) {
        c = sk_ctx_arena_alloc(ctx, sizeof(*c));
        if (c == NULL)
            return -1;
        c->id = sk_ctx_arena_strdup(ctx, id);
        if (c->id == NULL)
            return -1;
        c->n = 0;
        c->next = ctx->counters[i];
        ctx->counters[i] = c;
    }
    return c->n++;
}

/* The body's output must be exactly one msgpack value (nothing = nil). */
int sk_ctx_output_check(msgpack_sbuffer *buf)
{
    char err[128];

    if (buf->size == 0) {
        msgpack_packer pk;
        msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
        return msgpack_pack_nil(&pk) == 0 ? SK_OK : SK_ERROR;
    }
    return sk_msgpack_check(buf->data, buf->size, err, sizeof(err));
}

static int record_error(sk_ctx_t *ctx, const char *key, const char *id, sk_op_status_t st,
                        int attempt, const sk_error_t *e)
{
    if (sk_ctx_pack_error_buf(&ctx->err_buf, e) != SK_OK)
        return SK_ERROR;
    ctx->exec_op =
        sk_ctx_op_put(ctx, key, id, "run", st, attempt, ctx->err_buf.data, ctx->err_buf.size);
    return ctx->exec_op ? SK_OK : SK_ERROR;
}

/* A run op's wait_info {kind: run, until}: until >= 0 on a kept member's
 * retry (when it is due), nil on a dispatched member (its item exists). */
static int set_run_wait(sk_op_t *op, int64_t until_ms);

int sk_ctx_execute_body(sk_ctx_t *ctx, const char *key, const char *id, sk_op_t *prev,
                        sk_body_fn body, void *arg, const sk_retry_t *retry, int timeout_ms,
                        int kept)
{
    msgpack_sbuffer out;
    msgpack_packer pk;
    int attempt = (prev != NULL && prev->status == SK_OP_RETRY ? prev->attempts : 0) + 1;
    int64_t started = sk_ctx_wall_ms();
    const sk_error_t *e;
    int brc, rc = SK_ERROR;

    msgpack_sbuffer_init(&out);
    msgpack_packer_init(&pk, &out, msgpack_sbuffer_write);
    ctx->in_body = 1;
    ctx->body_id = id;
    ctx->body_attempt = attempt;
    ctx->raised = NULL;
    if (ctx->body_hook != NULL)
        ctx->body_hook(ctx->hook_arg, key, id, timeout_ms);
    brc = body(ctx, &pk, arg);
    if (ctx->body_hook != NULL)
        ctx->body_hook(ctx->hook_arg, NULL, NULL, 0);
    ctx->in_body = 0;
    if (ctx->nested) {
        rc = SK_OK; /* the entry fails with NestedStepError */
        goto done;
    }
    if (brc == SK_OK) {
        if (sk_ctx_output_check(&out) != SK_OK) {
            e = sk_error_set_retryable(
                sk_error_new(ctx, "StepOutputError",
                             "step %s packed more or less than one msgpack value", id),
                false);
            if (e == NULL || record_error(ctx, key, id, SK_OP_ERROR, attempt, e) != SK_OK)
                goto done;
            ctx->exec_kind = EXEC_FATAL;
        } else {
            ctx->exec_op =
                sk_ctx_op_put(ctx, key, id, "run", SK_OP_OK, attempt, out.data, out.size);
            if (ctx->exec_op == NULL)
                goto done;
            ctx->exec_kind = EXEC_DONE;
        }
        ctx->exec_op->started_ms = started;
        rc = SK_OK;
        goto done;
    }
    e = ctx->raised;
    if (e == NULL)
        e = sk_error_new(ctx, "StepError", "step %s body returned %d without raising an error", id,
                         brc);
    if (e == NULL)
        goto done;
    if (!e->retryable) {
        ctx->exec_kind = EXEC_FATAL;
        rc = record_error(ctx, key, id, SK_OP_ERROR, attempt, e);
    } else if (attempt >= ctx->wf->max_attempts) {
        ctx->exec_kind = EXEC_DONE; /* the final error is raised at the call site next entry */
        rc = record_error(ctx, key, id, SK_OP_ERROR, attempt, e);
    } else {
        ctx->exec_kind = EXEC_RETRY;
        ctx->retry_delay_ms = sk_backoff_ms(retry && retry->set ? retry : &ctx->wf->retry, attempt);
        rc = record_error(ctx, key, id, SK_OP_RETRY, attempt, e);
        /* A group's kept member has no item of its own: the run's item
         * brings it back, and a sibling waking the run earlier must not
         * cut the delay short, so the op says when it is due. */
        if (rc == SK_OK && kept)
            rc = set_run_wait(ctx->exec_op, sk_ctx_wall_ms() + ctx->retry_delay_ms);
    }
    if (rc == SK_OK)
        ctx->exec_op->started_ms = started;
done:
    ctx->raised = NULL;
    msgpack_sbuffer_destroy(&out);
    return rc;
}

static const char *const kind_names[] = {"run", "sleep", "signal", "send", "invoke"};

static int pack_wait_info(msgpack_sbuffer *buf, const char *kind, int64_t until_ms,
                          const char *signal, const char *child, const char *workflow)
{
    msgpack_packer pk;
    int n = 2 + (signal != NULL) + (child != NULL) + (workflow != NULL);

    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    if (msgpack_pack_map(&pk, (size_t)n) || sk_ctx_pack_cstr(&pk, "kind") ||
        sk_ctx_pack_cstr(&pk, kind) || sk_ctx_pack_cstr(&pk, "until") ||
        (until_ms >= 0 ? msgpack_pack_int64(&pk, until_ms) : msgpack_pack_nil(&pk)))
        return SK_ERROR;
    if (signal != NULL && (sk_ctx_pack_cstr(&pk, "signal") || sk_ctx_pack_cstr(&pk, signal)))
        return SK_ERROR;
    if (child != NULL && (sk_ctx_pack_cstr(&pk, "child") || sk_ctx_pack_cstr(&pk, child)))
        return SK_ERROR;
    if (workflow != NULL && (sk_ctx_pack_cstr(&pk, "workflow") || sk_ctx_pack_cstr(&pk, workflow)))
        return SK_ERROR;
    return SK_OK;
}

static int set_run_wait(sk_op_t *op, int64_t until_ms)
{
    msgpack_sbuffer wi;
    char *copy;

    msgpack_sbuffer_init(&wi);
    if (pack_wait_info(&wi, "run", until_ms, NULL, NULL, NULL) != SK_OK ||
        (copy = sk_ctx_heap_copy(wi.data, wi.size)) == NULL) {
        msgpack_sbuffer_destroy(&wi);
        return SK_ERROR;
    }
    free(op->wait_info);
    op->wait_info = copy;
    op->wait_len = wi.size;
    op->until_ms = until_ms;
    op->committed = 0;
    msgpack_sbuffer_destroy(&wi);
    return SK_OK;
}

/* Whether a run op in retry is a group's kept member: no wait_info (its
 * worker died on the first attempt), or a due time.  A dispatched member
 * has wait_info with no due time, and its own item that brings it back. */
static int kept_retry(const sk_op_t *op)
{
    return op->wait_info == NULL || op->until_ms >= 0;
}

/* A new suspending op: recorded as waiting, written at the entry's end. */
static int start_wait(sk_ctx_t *ctx, const char *key, const call_t *c)
{
    static const char nil = (char)0xc0;
    msgpack_sbuffer wi;
    int64_t until = c->kind == K_SLEEP                      ? c->until_ms
                    : c->kind == K_RUN || c->timeout_ms < 0 ? -1
                                                            : ctx->now_ms + c->timeout_ms;
    char child[40] = "";
    sk_op_t *op;
    int rc = SK_ERROR;

    if (c->kind == K_INVOKE) {
        sk_uuid7(child); /* time-ordered, as every run id */
    }
    msgpack_sbuffer_init(&wi);
    if (pack_wait_info(&wi, kind_names[c->kind], until,
                       c->kind == K_SIGNAL || c->kind == K_SEND ? c->signal : NULL,
                       c->kind == K_INVOKE ? child : NULL,
                       c->kind == K_INVOKE ? c->workflow : NULL) != SK_OK)
        goto done;
    /* A dispatched run has made no attempt yet: its executor counts from 1. */
    op = sk_ctx_op_put(ctx, key, c->id, kind_names[c->kind], SK_OP_WAITING,
                       c->kind == K_RUN ? 0 : 1, &nil, 1);
    if (op == NULL)
        goto done;
    op->wait_info = sk_ctx_heap_copy(wi.data, wi.size);
    op->wait_len = wi.size;
    op->until_ms = until;
    op->started_ms = sk_ctx_wall_ms();
    op->timeout_ms = c->timeout_ms;
    if (op->wait_info == NULL)
        goto done;
    switch (c->kind) {
    case K_SIGNAL:
        op->intent = SK_INTENT_SIGNAL;
        break;
    case K_SEND:
        op->intent = SK_INTENT_SEND;
        ctx->sent = 1;
        break;
    case K_INVOKE:
        op->intent = SK_INTENT_INVOKE;
        memcpy(op->child, child, sizeof(op->child));
        break;
    default:
        break;
    }
    if (c->signal != NULL && (op->signal = strdup(c->signal)) == NULL)
        goto done;
    if (c->workflow != NULL && (op->workflow = strdup(c->workflow)) == NULL)
        goto done;
    if (c->kind == K_SEND || c->kind == K_INVOKE) {
        const char *d = c->data && c->len ? c->data : &nil;
        size_t n = c->data && c->len ? c->len : 1;
        if ((op->payload = sk_ctx_heap_copy(d, n)) == NULL)
            goto done;
        op->payload_len = n;
    }
    rc = SK_OK;
done:
    msgpack_sbuffer_destroy(&wi);
    return rc;
}

/* Hand a group's run to other workers: a waiting op (written with the
 * queue item, so later replays never start it again) and a target item.
 * A kept member in retry stays a retry op, its attempts and last error
 * kept (its executor counts on from them), marked as dispatched. */
int sk_ctx_dispatch(sk_ctx_t *ctx, const char *key, const call_t *c)
{
    sk_op_t *op = sk_ctx_op_find(ctx, key);

    for (size_t i = 0; i < ctx->ndispatch; i++) {
        if (strcmp(ctx->dispatch[i], key) == 0)
            return SK_OK;
    }
    if (op != NULL && op->status == SK_OP_RETRY) {
        if (set_run_wait(op, -1) != SK_OK)
            return SK_ERROR;
    } else if (start_wait(ctx, key, c) != SK_OK) {
        return SK_ERROR;
    }
    if (ctx->ndispatch == ctx->capdispatch) {
        size_t cap = ctx->capdispatch ? ctx->capdispatch * 2 : 8;
        char(*d)[41] = realloc(ctx->dispatch, cap * sizeof(*d));
        if (d == NULL)
            return SK_ERROR;
        ctx->dispatch = d;
        ctx->capdispatch = cap;
    }
    memcpy(ctx->dispatch[ctx->ndispatch++], key, 41);
    return SK_OK;
}

/* A recorded success: the object, after the signal validator if any. */
static int recorded_ok(sk_ctx_t *ctx, sk_op_t *op, const call_t *c, const msgpack_object **result)
{
    const msgpack_object *o = sk_ctx_op_object(op);

    if (o == NULL) {
        ctx->aborted = 1;
        return SK_SUSPEND;
    }
    if (c->kind == K_SIGNAL && c->validate != NULL && o->type == MSGPACK_OBJECT_MAP) {
        sk_issues_t iss = {.ctx = ctx};
        sk_error_t *e;
        msgpack_sbuffer_init(&iss.buf);
        c->validate(sk_get(o, "data"), &iss);
        msgpack_sbuffer_destroy(&iss.buf);
        if (iss.count > 0) {
            e = sk_error_new(ctx, "InvalidInputError", "Invalid input");
            if (e != NULL) {
                e->retryable = false;
                e->cause = sk_error_set_retryable(
                    sk_error_new(ctx, "ValidationError", "%s", iss.first_message), false);
            }
            ctx->last_error = e;
            return SK_FAILED;
        }
    }
    if (result != NULL)
        *result = o;
    return SK_OK;
}

/* Names land in indexed columns: refuse an over-long or malformed one
 * before anything is written (a deterministic error, not retryable). */
static int check_names(sk_ctx_t *ctx, const call_t *c)
{
    char err[160];
    int bad = sk_name_check("step id", c->id, 0, err, sizeof(err)) != SK_OK ||
              ((c->kind == K_SIGNAL || c->kind == K_SEND) &&
               sk_name_check("signal name", c->signal, 0, err, sizeof(err)) != SK_OK) ||
              (c->kind == K_INVOKE && sk_name_check("workflow id", c->workflow, SK_NAME_NO_BREAKS,
                                                    err, sizeof(err)) != SK_OK);

    if (!bad)
        return SK_OK;
    return sk_raise(ctx, sk_error_set_retryable(sk_error_new(ctx, "InvalidStepError", "%s step: %s",
                                                             kind_names[c->kind], err),
                                                false));
}

int sk_ctx_step(sk_ctx_t *ctx, const call_t *c, const msgpack_object **result)
{
    char key[41];
    sk_op_t *op;
    int idx, hook, is_target;

    if (result != NULL)
        *result = NULL;
    if (ctx->in_body) {
        /* Only the first nesting is reported; the outer body still returns. */
        if (!ctx->nested) {
            ctx->nested = 1;
            ctx->nested_inner = sk_ctx_arena_strdup(ctx, c->id ? c->id : "");
            ctx->nested_outer = sk_ctx_arena_strdup(ctx, ctx->body_id);
        }
        return SK_FAILED;
    }
    if (ctx->nested || ctx->yield || ctx->aborted)
        return SK_SUSPEND;
    if (c->id == NULL || *c->id == '\0' || (c->kind == K_RUN && c->body == NULL) ||
        ((c->kind == K_SIGNAL || c->kind == K_SEND) && (c->signal == NULL || !*c->signal)) ||
        (c->kind == K_INVOKE && (c->workflow == NULL || !*c->workflow)))
        return sk_raise(
            ctx, sk_error_set_retryable(sk_error_new(ctx, "InvalidStepError",
                                                     "a %s step needs an id and its arguments",
                                                     kind_names[c->kind]),
                                        false));
    if (check_names(ctx, c) != SK_OK)
        return SK_FAILED;
    idx = counter_next(ctx, c->id);
    if (idx < 0 || sk_op_key(c->id, idx, key) != SK_OK) {
        ctx->aborted = 1;
        return SK_SUSPEND;
    }
    op = sk_ctx_op_find(ctx, key);
    if (op != NULL && op->status == SK_OP_OK)
        return recorded_ok(ctx, op, c, result);
    if (op != NULL && op->status == SK_OP_ERROR) {
        ctx->last_error = sk_ctx_error_from_obj(ctx, sk_ctx_op_object(op), 0);
        return SK_FAILED;
    }
    is_target = ctx->target[0] != '\0' && c->kind == K_RUN && strcmp(key, ctx->target) == 0;
    if (op != NULL && op->status == SK_OP_WAITING && !is_target) {
        if (c->kind == K_SLEEP && op->until_ms >= 0 && op->until_ms <= ctx->now_ms) {
            /* Its time has come: an ordinary result from now on. */
            static const char nil = (char)0xc0;
            if (sk_ctx_resolve_op(ctx, op, SK_OP_OK, &nil, 1) != SK_OK) {
                ctx->aborted = 1;
                return SK_SUSPEND;
            }
            op->committed = 0;
            return recorded_ok(ctx, op, c, result);
        }
        ctx->waiting = 1;
        return SK_SUSPEND;
    }
    /* A new op (or a run to retry).  Sequential code starts one per entry;
     * a group starts all of its members at once. */
    if (ctx->exec_kind != EXEC_NONE || (ctx->group_depth == 0 && ctx->started))
        return SK_SUSPEND;
    if (ctx->target[0] != '\0') {
        /* Target mode: run this one body, start nothing else. */
        if (!is_target)
            return SK_SUSPEND;
    } else if (c->kind == K_RUN && ctx->group_depth > 0) {
        if (op != NULL && !kept_retry(op)) {
            /* A dispatched member's failed attempt: its item comes back
             * after the retry delay. */
            ctx->waiting = 1;
        } else if (op != NULL && op->until_ms > ctx->now_ms) {
            /* The kept member's retry is not due: the run's item comes
             * back then (a sibling may have woken it earlier). */
            ctx->waiting = 1;
            if (ctx->due_ms < 0 || op->until_ms < ctx->due_ms)
                ctx->due_ms = op->until_ms;
        } else if (!ctx->cand.set) {
            /* A new member, or the kept member's retry now due (its
             * attempts are in the op, read by sk_ctx_execute_body). */
            ctx->cand.set = 1;
            memcpy(ctx->cand.key, key, sizeof(key));
            ctx->cand.id = sk_ctx_arena_strdup(ctx, c->id);
            ctx->cand.body = c->body;
            ctx->cand.arg = c->arg;
            ctx->cand.has_retry = c->retry != NULL;
            if (c->retry != NULL)
                ctx->cand.retry = *c->retry;
            ctx->cand.timeout_ms = c->step_timeout_ms;
            if (ctx->cand.id == NULL)
                ctx->aborted = 1;
        } else if (sk_ctx_dispatch(ctx, key, c) != SK_OK) {
            ctx->aborted = 1;
        }
        return SK_SUSPEND;
    } else if (c->kind != K_RUN) {
        if (start_wait(ctx, key, c) != SK_OK)
            ctx->aborted = 1;
        ctx->started = 1;
        return SK_SUSPEND;
    }
    hook = ctx->before_body ? ctx->before_body(ctx, ctx->hook_arg) : SK_OK;
    if (hook == SK_AGAIN) {
        ctx->yield = 1;
        return SK_SUSPEND;
    }
    if (hook != SK_OK || sk_ctx_execute_body(ctx, key, c->id, op, c->body, c->arg, c->retry,
                                             c->step_timeout_ms, 0) != SK_OK) {
        ctx->aborted = 1;
        return SK_SUSPEND;
    }
    return SK_SUSPEND;
}

int sk_run(sk_ctx_t *ctx, const char *id, sk_body_fn body, void *arg, const msgpack_object **result)
{
    call_t c = {.kind = K_RUN, .id = id, .body = body, .arg = arg};

    return sk_ctx_step(ctx, &c, result);
}

int sk_run_retry(sk_ctx_t *ctx, const char *id, sk_body_fn body, void *arg, sk_retry_t retry,
                 const msgpack_object **result)
{
    call_t c = {.kind = K_RUN, .id = id, .body = body, .arg = arg, .retry = &retry};

    return sk_ctx_step(ctx, &c, result);
}

int sk_run_opts(sk_ctx_t *ctx, const char *id, sk_body_fn body, void *arg,
                const sk_step_opts_t *opts, const msgpack_object **result)
{
    call_t c = {.kind = K_RUN, .id = id, .body = body, .arg = arg};

    if (opts != NULL) {
        if (opts->timeout_ms < 0)
            return sk_raise(
                ctx, sk_error_set_retryable(sk_error_new(ctx, "InvalidStepError",
                                                         "step %s: timeout_ms %d is negative",
                                                         id ? id : "", opts->timeout_ms),
                                            false));
        c.retry = opts->retry.set ? &opts->retry : NULL;
        c.step_timeout_ms = opts->timeout_ms;
    }
    return sk_ctx_step(ctx, &c, result);
}

void sk_heartbeat(sk_ctx_t *ctx)
{
    if (ctx != NULL && ctx->in_body && ctx->heartbeat != NULL)
        ctx->heartbeat(ctx->hook_arg);
}

int sk_sleep(sk_ctx_t *ctx, const char *id, int64_t ms)
{
    /* The wake time is fixed when the op starts; replays read it back. */
    call_t c = {.kind = K_SLEEP, .id = id, .until_ms = ctx->now_ms + (ms > 0 ? ms : 0)};

    return sk_ctx_step(ctx, &c, NULL);
}

int sk_sleep_until(sk_ctx_t *ctx, const char *id, int64_t unix_ms)
{
    call_t c = {.kind = K_SLEEP, .id = id, .until_ms = unix_ms};

    return sk_ctx_step(ctx, &c, NULL);
}

int sk_wait_for_signal(sk_ctx_t *ctx, const char *id, const char *signal, int64_t timeout_ms,
                       sk_validate_fn validate, const msgpack_object **result)
{
    call_t c = {.kind = K_SIGNAL,
                .id = id,
                .signal = signal,
                .timeout_ms = timeout_ms,
                .validate = validate};

    return sk_ctx_step(ctx, &c, result);
}

int sk_send_signal(sk_ctx_t *ctx, const char *id, const char *signal, const char *data, size_t len,
                   const msgpack_object **result)
{
    call_t c = {.kind = K_SEND, .id = id, .signal = signal, .data = data, .len = len};

    return sk_ctx_step(ctx, &c, result);
}

int sk_invoke(sk_ctx_t *ctx, const char *id, const char *workflow, const char *data, size_t len,
              int64_t timeout_ms, const msgpack_object **result)
{
    call_t c = {.kind = K_INVOKE,
                .id = id,
                .workflow = workflow,
                .data = data,
                .len = len,
                .timeout_ms = timeout_ms};

    return sk_ctx_step(ctx, &c, result);
}
