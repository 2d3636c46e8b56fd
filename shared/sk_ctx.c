/*
 * The replay runtime: the context's lifecycle (sk_ctx_new, sk_ctx_free and
 * what a handler reads of its run), its small helpers (arena, clock, op
 * keys, backoff) and the outcome of one handler entry (sk_ctx_enter).  See
 * sk_ctx.h for the contract with the engine.  The rest of the context is
 * split along its jobs, sharing sk_ctx_int.h: errors (sk_ctx_error.c), the
 * op table (sk_ctx_ops.c), steps (sk_ctx_step.c), groups (sk_ctx_group.c)
 * and input validation (sk_ctx_validate.c).
 */
#include "sk_ctx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "sk_ctx_int.h"

#define OP_BUCKETS_MIN 64

/* ---- small helpers ---------------------------------------------------------- */

int64_t sk_ctx_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void *sk_ctx_arena_alloc(sk_ctx_t *ctx, size_t n)
{
    alloc_t *a = malloc(sizeof(alloc_t) + n);

    if (a == NULL)
        return NULL;
    a->next = ctx->arena;
    ctx->arena = a;
    return a->data;
}

static void arena_reset(sk_ctx_t *ctx)
{
    while (ctx->arena != NULL) {
        alloc_t *next = ctx->arena->next;
        free(ctx->arena);
        ctx->arena = next;
    }
    memset(ctx->counters, 0, sizeof(ctx->counters));
}

char *sk_ctx_arena_strndup(sk_ctx_t *ctx, const char *s, size_t n)
{
    char *p = sk_ctx_arena_alloc(ctx, n + 1);

    if (p == NULL)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *sk_ctx_arena_strdup(sk_ctx_t *ctx, const char *s)
{
    return s ? sk_ctx_arena_strndup(ctx, s, strlen(s)) : NULL;
}

char *sk_ctx_heap_copy(const char *p, size_t n)
{
    char *c = malloc(n ? n : 1);

    if (c != NULL && n > 0)
        memcpy(c, p, n);
    return c;
}

static void unps_free(sk_ctx_t *ctx)
{
    while (ctx->unps != NULL) {
        unp_t *next = ctx->unps->next;
        msgpack_unpacked_destroy(&ctx->unps->u);
        free(ctx->unps);
        ctx->unps = next;
    }
}

uint32_t sk_ctx_hash_str(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h;
}

int sk_op_key(const char *step_id, int index, char out[41])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char stackbuf[256];
    char *buf = stackbuf;
    size_t need = strlen(step_id) + 16;
    int n, rc = SK_ERROR;

    if (need > sizeof(stackbuf)) {
        buf = malloc(need);
        if (buf == NULL)
            return SK_ERROR;
    }
    n = snprintf(buf, need, "%s:%d", step_id, index);
    if (n < 0 || EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        goto done;
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[40] = '\0';
    rc = SK_OK;
done:
    if (buf != stackbuf)
        free(buf);
    return rc;
}

int sk_backoff_ms(const sk_retry_t *r, int attempt)
{
    double d;

    if (r->initial_ms <= 0)
        return 0;
    d = (double)r->initial_ms * pow(r->factor > 0 ? r->factor : 1.0, attempt > 1 ? attempt - 1 : 0);
    if (r->max_ms > 0 && d > r->max_ms)
        d = r->max_ms;
    /* +-20% jitter so retries of many runs do not arrive together. */
    d *= 0.8 + 0.4 * ((double)random() / (double)RAND_MAX);
    if (d > 24.0 * 3600 * 1000)
        d = 24.0 * 3600 * 1000;
    return (int)d;
}

/* ---- the context ------------------------------------------------------------ */

static int pack_input(sk_ctx_t *ctx, const sk_ctx_params_t *p)
{
    msgpack_packer pk;
    size_t off = 0;

    msgpack_packer_init(&pk, &ctx->input_buf, msgpack_sbuffer_write);
    if (msgpack_pack_map(&pk, 5) || sk_ctx_pack_cstr(&pk, "data"))
        return SK_ERROR;
    if (p->data != NULL && p->data_len > 0) {
        if (msgpack_sbuffer_write(&ctx->input_buf, p->data, p->data_len))
            return SK_ERROR;
    } else if (msgpack_pack_nil(&pk)) {
        return SK_ERROR;
    }
    if (sk_ctx_pack_cstr(&pk, "id") || sk_ctx_pack_cstr(&pk, p->event_id ? p->event_id : "") ||
        sk_ctx_pack_cstr(&pk, "name") ||
        sk_ctx_pack_cstr(&pk, p->trigger_name ? p->trigger_name : "") ||
        sk_ctx_pack_cstr(&pk, "time") || msgpack_pack_int64(&pk, p->created_ms) ||
        sk_ctx_pack_cstr(&pk, "type") ||
        sk_ctx_pack_cstr(&pk, p->trigger_type ? p->trigger_type : "invoke"))
        return SK_ERROR;
    if (msgpack_unpack_next(&ctx->input, ctx->input_buf.data, ctx->input_buf.size, &off) !=
        MSGPACK_UNPACK_SUCCESS)
        return SK_ERROR;
    ctx->data_obj = sk_get(&ctx->input.data, "data");
    return SK_OK;
}

sk_ctx_t *sk_ctx_new(const sk_ctx_params_t *p)
{
    sk_ctx_t *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL)
        return NULL;
    ctx->wf = p->wf;
    snprintf(ctx->run_id, sizeof(ctx->run_id), "%s", p->run_id ? p->run_id : "");
    snprintf(ctx->event_id, sizeof(ctx->event_id), "%s", p->event_id ? p->event_id : "");
    ctx->before_body = p->before_body;
    ctx->body_hook = p->body_hook;
    ctx->heartbeat = p->heartbeat;
    ctx->hook_arg = p->hook_arg;
    ctx->handler_attempt = p->handler_attempt > 0 ? p->handler_attempt : 1;
    snprintf(ctx->target, sizeof(ctx->target), "%s", p->target ? p->target : "");
    ctx->now_ms = sk_ctx_wall_ms();
    msgpack_sbuffer_init(&ctx->input_buf);
    msgpack_unpacked_init(&ctx->input);
    msgpack_sbuffer_init(&ctx->out_buf);
    msgpack_sbuffer_init(&ctx->err_buf);
    ctx->nbuckets = OP_BUCKETS_MIN;
    ctx->buckets = calloc(ctx->nbuckets, sizeof(*ctx->buckets));
    if (ctx->buckets == NULL || pack_input(ctx, p) != SK_OK) {
        sk_ctx_free(ctx);
        return NULL;
    }
    return ctx;
}

void sk_ctx_free(sk_ctx_t *ctx)
{
    sk_op_t *op, *next;

    if (ctx == NULL)
        return;
    for (op = ctx->order_head; op != NULL; op = next) {
        next = op->order_next;
        if (op->unpacked_ok)
            msgpack_unpacked_destroy(&op->unpacked);
        sk_ctx_op_clear_extra(op);
        free(op->data);
        free(op->step_id);
        free(op);
    }
    free(ctx->buckets);
    free(ctx->dispatch);
    free(ctx->writes);
    unps_free(ctx);
    arena_reset(ctx);
    msgpack_unpacked_destroy(&ctx->input);
    msgpack_sbuffer_destroy(&ctx->input_buf);
    msgpack_sbuffer_destroy(&ctx->out_buf);
    msgpack_sbuffer_destroy(&ctx->err_buf);
    free(ctx);
}

void sk_ctx_set_handler_attempt(sk_ctx_t *ctx, int attempt)
{
    ctx->handler_attempt = attempt;
}

const sk_wf_t *sk_ctx_workflow(const sk_ctx_t *ctx)
{
    return ctx->wf;
}

const char *sk_run_id(const sk_ctx_t *ctx)
{
    return ctx->run_id;
}

const msgpack_object *sk_input(const sk_ctx_t *ctx)
{
    return &ctx->input.data;
}

const msgpack_object *sk_data(const sk_ctx_t *ctx)
{
    return ctx->data_obj;
}

int sk_attempt(const sk_ctx_t *ctx)
{
    return ctx->in_body ? ctx->body_attempt : ctx->handler_attempt;
}

const sk_error_t *sk_ctx_error(const sk_ctx_t *ctx)
{
    return ctx->last_error;
}

const char *sk_str(sk_ctx_t *ctx, const msgpack_object *o)
{
    const char *s = sk_ctx_obj_strdup(ctx, o);

    return s ? s : "";
}

/* ---- entries ---------------------------------------------------------------- */

void sk_ctx_entry_reset(sk_ctx_t *ctx)
{
    arena_reset(ctx);
    ctx->in_body = 0;
    ctx->body_id = NULL;
    ctx->nested = 0;
    ctx->nested_inner = ctx->nested_outer = NULL;
    ctx->yield = ctx->aborted = 0;
    ctx->exec_kind = EXEC_NONE;
    ctx->exec_op = NULL;
    ctx->retry_delay_ms = 0;
    ctx->last_error = ctx->raised = NULL;
    ctx->now_ms = sk_ctx_wall_ms();
    ctx->group_depth = 0;
    ctx->started = ctx->waiting = ctx->sent = 0;
    ctx->due_ms = -1;
    ctx->ndispatch = 0;
    ctx->cand.set = 0;
    unps_free(ctx);
    msgpack_sbuffer_clear(&ctx->out_buf);
    msgpack_sbuffer_clear(&ctx->err_buf);
}

int sk_ctx_fail_with(sk_ctx_t *ctx, sk_entry_t *out, const sk_error_t *e)
{
    if (e == NULL || sk_ctx_pack_error_buf(&ctx->err_buf, e) != SK_OK) {
        out->kind = SK_ENTRY_ABORTED;
        return SK_ERROR;
    }
    out->kind = SK_ENTRY_FAILED;
    out->error = ctx->err_buf.data;
    out->error_len = ctx->err_buf.size;
    out->fatal = !e->retryable;
    return SK_OK;
}

int sk_ctx_enter(sk_ctx_t *ctx, sk_entry_t *out)
{
    msgpack_packer pk;
    const sk_error_t *e;
    int rc;

    memset(out, 0, sizeof(*out));
    sk_ctx_entry_reset(ctx);
    msgpack_packer_init(&pk, &ctx->out_buf, msgpack_sbuffer_write);
    rc = ctx->wf->handler(ctx, &pk);

    if (ctx->nested) {
        e = sk_error_set_retryable(sk_error_new(ctx, "NestedStepError",
                                                "Step is nested inside another step: %s inside %s",
                                                ctx->nested_inner, ctx->nested_outer),
                                   false);
        return sk_ctx_fail_with(ctx, out, e);
    }
    if (ctx->aborted) {
        out->kind = SK_ENTRY_ABORTED;
        return SK_OK;
    }
    out->op = ctx->exec_op;
    switch (ctx->exec_kind) {
    case EXEC_FATAL:
        out->kind = SK_ENTRY_FAILED;
        out->error = ctx->exec_op->data;
        out->error_len = ctx->exec_op->len;
        out->fatal = 1;
        return SK_OK;
    case EXEC_DONE:
        out->kind = SK_ENTRY_STEP_DONE;
        return SK_OK;
    case EXEC_RETRY:
        out->kind = SK_ENTRY_STEP_RETRY;
        out->retry_delay_ms = ctx->retry_delay_ms;
        return SK_OK;
    case EXEC_NONE:
        break;
    }
    if (ctx->yield) {
        out->kind = SK_ENTRY_YIELD;
        return SK_OK;
    }
    if (ctx->target[0] != '\0') {
        out->kind = SK_ENTRY_TARGET_IDLE;
        return SK_OK;
    }
    if (rc == SK_SUSPEND)
        sk_ctx_dispatch_candidate(ctx);
    if (rc == SK_SUSPEND && (ctx->started || ctx->waiting || ctx->ndispatch > 0)) {
        out->kind = SK_ENTRY_SUSPENDED;
        out->visible_ms = -1;
        for (sk_op_t *op = ctx->order_head; op != NULL; op = op->order_next) {
            if (op->status == SK_OP_WAITING && op->until_ms >= 0) {
                int64_t in = op->until_ms - ctx->now_ms;
                if (in < 0)
                    in = 0;
                if (out->visible_ms < 0 || in < out->visible_ms)
                    out->visible_ms = in;
            }
        }
        if (ctx->due_ms >= 0) {
            int64_t in = ctx->due_ms > ctx->now_ms ? ctx->due_ms - ctx->now_ms : 0;
            if (out->visible_ms < 0 || in < out->visible_ms)
                out->visible_ms = in;
        }
        if (ctx->sent)
            out->visible_ms = 0;
        return SK_OK;
    }
    switch (rc) {
    case SK_OK:
        if (sk_ctx_output_check(&ctx->out_buf) != SK_OK) {
            e = sk_error_set_retryable(
                sk_error_new(ctx, "OutputError", "handler packed more than one msgpack value"),
                false);
            return sk_ctx_fail_with(ctx, out, e);
        }
        out->kind = SK_ENTRY_COMPLETED;
        out->output = ctx->out_buf.data;
        out->output_len = ctx->out_buf.size;
        return SK_OK;
    case SK_FAILED:
        e = ctx->raised ? ctx->raised : ctx->last_error;
        if (e == NULL)
            e = sk_error_new(ctx, "HandlerError", "handler returned SK_FAILED without an error");
        return sk_ctx_fail_with(ctx, out, e);
    case SK_SUSPEND:
        e = sk_error_new(ctx, "HandlerError", "handler returned SK_SUSPEND but no step suspended");
        return sk_ctx_fail_with(ctx, out, e);
    default:
        e = sk_error_new(ctx, "HandlerError", "handler returned %d", rc);
        return sk_ctx_fail_with(ctx, out, e);
    }
}
