/*
 * The replay context's groups: step calls that start together (sk_group,
 * its run, sleep, signal and invoke members, branches) and sk_group_await,
 * which runs the group's first new run here and gathers the results.  A
 * group drives the steps (sk_ctx_step.c) with group_depth raised, so that
 * its members start concurrently; the rest is this file's bookkeeping.
 */
#include <stdlib.h>
#include <string.h>

#include "sk_ctx_int.h"

static const msgpack_object *ctx_unpack(sk_ctx_t *ctx, const char *data, size_t len)
{
    unp_t *u = malloc(sizeof(*u) + (len ? len : 1));
    size_t off = 0;

    if (u == NULL)
        return NULL;
    /* Strings of an unpacked object point into its buffer: keep a copy. */
    memcpy(u->buf, data, len);
    msgpack_unpacked_init(&u->u);
    if (msgpack_unpack_next(&u->u, u->buf, len, &off) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&u->u);
        free(u);
        return NULL;
    }
    u->next = ctx->unps;
    ctx->unps = u;
    return &u->u.data;
}

typedef struct {
    int rc;
    const msgpack_object *result;
    const sk_error_t *error;
} member_t;

struct sk_group {
    sk_ctx_t *ctx;
    member_t *m;
    size_t n, cap;
    int broken;
};

sk_group_t *sk_group(sk_ctx_t *ctx)
{
    sk_group_t *g = sk_ctx_arena_alloc(ctx, sizeof(*g));

    if (g != NULL)
        memset(g, 0, sizeof(*g));
    if (g != NULL)
        g->ctx = ctx;
    else
        ctx->aborted = 1;
    return g;
}

static void member_add(sk_group_t *g, int rc, const msgpack_object *result)
{
    member_t *m;

    if (g == NULL)
        return;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        member_t *p = sk_ctx_arena_alloc(g->ctx, cap * sizeof(*p));
        if (p == NULL) {
            g->broken = 1;
            return;
        }
        if (g->n > 0)
            memcpy(p, g->m, g->n * sizeof(*p));
        g->m = p;
        g->cap = cap;
    }
    m = &g->m[g->n++];
    m->rc = rc;
    m->result = result;
    m->error = rc == SK_FAILED ? (g->ctx->raised ? g->ctx->raised : g->ctx->last_error) : NULL;
}

static void member_call(sk_group_t *g, const call_t *c)
{
    const msgpack_object *r = NULL;
    int rc;

    if (g == NULL)
        return;
    g->ctx->group_depth++;
    g->ctx->raised = NULL;
    rc = sk_ctx_step(g->ctx, c, &r);
    g->ctx->group_depth--;
    member_add(g, rc, r);
}

void sk_group_run(sk_group_t *g, const char *id, sk_body_fn body, void *arg)
{
    call_t c = {.kind = K_RUN, .id = id, .body = body, .arg = arg};

    member_call(g, &c);
}

void sk_group_sleep(sk_group_t *g, const char *id, int64_t ms)
{
    call_t c = {.kind = K_SLEEP, .id = id};

    if (g == NULL)
        return;
    c.until_ms = g->ctx->now_ms + (ms > 0 ? ms : 0);
    member_call(g, &c);
}

void sk_group_wait_for_signal(sk_group_t *g, const char *id, const char *signal, int64_t timeout_ms,
                              sk_validate_fn validate)
{
    call_t c = {.kind = K_SIGNAL,
                .id = id,
                .signal = signal,
                .timeout_ms = timeout_ms,
                .validate = validate};

    member_call(g, &c);
}

void sk_group_invoke(sk_group_t *g, const char *id, const char *workflow, const char *data,
                     size_t len, int64_t timeout_ms)
{
    call_t c = {.kind = K_INVOKE,
                .id = id,
                .workflow = workflow,
                .data = data,
                .len = len,
                .timeout_ms = timeout_ms};

    member_call(g, &c);
}

void sk_group_branch(sk_group_t *g, sk_branch_fn fn, void *arg)
{
    msgpack_sbuffer buf;
    msgpack_packer pk;
    const msgpack_object *r = NULL;
    int rc;

    if (g == NULL)
        return;
    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    g->ctx->group_depth++;
    g->ctx->raised = NULL;
    rc = fn(g->ctx, &pk, arg);
    g->ctx->group_depth--;
    if (rc == SK_OK) {
        if (sk_ctx_output_check(&buf) != SK_OK ||
            (r = ctx_unpack(g->ctx, buf.data, buf.size)) == NULL)
            rc = sk_raise(g->ctx, sk_error_set_retryable(
                                      sk_error_new(g->ctx, "OutputError",
                                                   "a branch packed more than one msgpack value"),
                                      false));
    } else if (rc != SK_FAILED) {
        rc = SK_SUSPEND;
    }
    member_add(g, rc, r);
    msgpack_sbuffer_destroy(&buf);
}

/* The group's first new run executes here, after its siblings were
 * started (the before_body hook commits them): it runs alongside them. */
static void run_candidate(sk_ctx_t *ctx)
{
    int hook;

    if (!ctx->cand.set || ctx->exec_kind != EXEC_NONE || ctx->nested || ctx->aborted || ctx->yield)
        return;
    ctx->cand.set = 0;
    hook = ctx->before_body ? ctx->before_body(ctx, ctx->hook_arg) : SK_OK;
    if (hook == SK_AGAIN) {
        ctx->yield = 1;
        return;
    }
    if (hook != SK_OK ||
        sk_ctx_execute_body(ctx, ctx->cand.key, ctx->cand.id, sk_ctx_op_find(ctx, ctx->cand.key),
                            ctx->cand.body, ctx->cand.arg,
                            ctx->cand.has_retry ? &ctx->cand.retry : NULL, ctx->cand.timeout_ms,
                            1) != SK_OK)
        ctx->aborted = 1;
}

/* A candidate the handler never awaited goes to another worker. */
void sk_ctx_dispatch_candidate(sk_ctx_t *ctx)
{
    call_t c = {.kind = K_RUN, .id = ctx->cand.id};

    if (!ctx->cand.set)
        return;
    ctx->cand.set = 0;
    if (sk_ctx_dispatch(ctx, ctx->cand.key, &c) != SK_OK)
        ctx->aborted = 1;
}

int sk_group_await(sk_group_t *g, const msgpack_object **results)
{
    msgpack_sbuffer buf;
    msgpack_packer pk;
    const msgpack_object *o;

    if (results != NULL)
        *results = NULL;
    if (g == NULL)
        return SK_SUSPEND;
    if (g->broken) {
        g->ctx->aborted = 1;
        return SK_SUSPEND;
    }
    run_candidate(g->ctx);
    for (size_t i = 0; i < g->n; i++) {
        if (g->m[i].rc == SK_FAILED) {
            g->ctx->last_error = g->m[i].error;
            return SK_FAILED;
        }
    }
    for (size_t i = 0; i < g->n; i++) {
        if (g->m[i].rc != SK_OK)
            return SK_SUSPEND;
    }
    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, g->n);
    for (size_t i = 0; i < g->n; i++) {
        if (g->m[i].result != NULL)
            msgpack_pack_object(&pk, *g->m[i].result);
        else
            msgpack_pack_nil(&pk);
    }
    o = ctx_unpack(g->ctx, buf.data, buf.size);
    msgpack_sbuffer_destroy(&buf);
    if (o == NULL) {
        g->ctx->aborted = 1;
        return SK_SUSPEND;
    }
    if (results != NULL)
        *results = o;
    return SK_OK;
}
