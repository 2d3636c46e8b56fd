/*
 * The replay context's op table: the ops a context was given (recorded by
 * earlier entries) and those its entry records, by key in a hash table and
 * in the order they were added, with what the engine reads back from it
 * (the ops, the runs to dispatch).  Steps look ops up and put them; the
 * engine adds and resolves them; how they are stored is this file's alone.
 */
#include <stdlib.h>
#include <string.h>

#include "sk_ctx_int.h"

sk_op_t *sk_ctx_op_find(const sk_ctx_t *ctx, const char *key)
{
    sk_op_t *op = ctx->buckets[sk_ctx_hash_str(key) & (ctx->nbuckets - 1)];

    while (op != NULL && strcmp(op->key, key) != 0)
        op = op->next;
    return op;
}

static int op_grow(sk_ctx_t *ctx)
{
    size_t n = ctx->nbuckets * 2;
    sk_op_t **b = calloc(n, sizeof(*b));

    if (b == NULL)
        return SK_ERROR;
    for (sk_op_t *op = ctx->order_head; op != NULL; op = op->order_next) {
        size_t i = sk_ctx_hash_str(op->key) & (n - 1);
        op->next = b[i];
        b[i] = op;
    }
    free(ctx->buckets);
    ctx->buckets = b;
    ctx->nbuckets = n;
    return SK_OK;
}

/* Replace an op's data (taking `copy`) and status; its unpacked view goes. */
static void op_set_data(sk_op_t *op, char *copy, size_t len, sk_op_status_t status)
{
    if (op->unpacked_ok) {
        msgpack_unpacked_destroy(&op->unpacked);
        op->unpacked_ok = 0;
    }
    free(op->data);
    op->data = copy;
    op->len = len;
    op->status = status;
}

/* Insert or update `key`; the op becomes uncommitted. */
void sk_ctx_op_clear_extra(sk_op_t *op)
{
    free(op->wait_info);
    free(op->signal);
    free(op->workflow);
    free(op->payload);
    op->wait_info = op->signal = op->workflow = op->payload = NULL;
    op->wait_len = op->payload_len = 0;
    op->intent = SK_INTENT_NONE;
    op->until_ms = -1;
}

sk_op_t *sk_ctx_op_put(sk_ctx_t *ctx, const char *key, const char *step_id, const char *kind,
                       sk_op_status_t status, int attempts, const char *data, size_t len)
{
    sk_op_t *op = sk_ctx_op_find(ctx, key);
    char *copy = malloc(len ? len : 1);

    if (copy == NULL)
        return NULL;
    memcpy(copy, data, len);
    if (op == NULL) {
        if (ctx->nops + 1 > ctx->nbuckets && op_grow(ctx) != SK_OK)
            goto failed;
        op = calloc(1, sizeof(*op));
        if (op == NULL)
            goto failed;
        op->step_id = strdup(step_id);
        if (op->step_id == NULL) {
            free(op);
            goto failed;
        }
        memcpy(op->key, key, 41);
        op->until_ms = -1;
        size_t i = sk_ctx_hash_str(key) & (ctx->nbuckets - 1);
        op->next = ctx->buckets[i];
        ctx->buckets[i] = op;
        if (ctx->order_tail != NULL)
            ctx->order_tail->order_next = op;
        else
            ctx->order_head = op;
        ctx->order_tail = op;
        ctx->nops++;
    }
    op_set_data(op, copy, len, status);
    op->kind = kind;
    op->attempts = attempts;
    op->committed = 0;
    return op;
failed:
    free(copy);
    return NULL;
}

const msgpack_object *sk_ctx_op_object(sk_op_t *op)
{
    if (!op->unpacked_ok) {
        size_t off = 0;
        msgpack_unpacked_init(&op->unpacked);
        if (msgpack_unpack_next(&op->unpacked, op->data, op->len, &off) != MSGPACK_UNPACK_SUCCESS) {
            msgpack_unpacked_destroy(&op->unpacked);
            return NULL;
        }
        op->unpacked_ok = 1;
    }
    return &op->unpacked.data;
}

static const char *kind_static(const char *kind)
{
    static const char *const kinds[] = {"run", "sleep", "signal", "send", "invoke"};

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (kind != NULL && strcmp(kind, kinds[i]) == 0)
            return kinds[i];
    }
    return "run";
}

int sk_ctx_add_op(sk_ctx_t *ctx, const char *key, const char *step_id, const char *kind,
                  sk_op_status_t status, int attempts, const char *data, size_t len,
                  const char *wait_info, size_t wait_len)
{
    sk_op_t *op = sk_ctx_op_put(ctx, key, step_id, kind_static(kind), status, attempts, data, len);

    if (op == NULL)
        return SK_ERROR;
    sk_ctx_op_clear_extra(op);
    if (wait_info != NULL && wait_len > 0) {
        msgpack_unpacked u;
        size_t off = 0;
        op->wait_info = malloc(wait_len);
        if (op->wait_info == NULL)
            return SK_ERROR;
        memcpy(op->wait_info, wait_info, wait_len);
        op->wait_len = wait_len;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, wait_info, wait_len, &off) == MSGPACK_UNPACK_SUCCESS) {
            const msgpack_object *until = sk_get(&u.data, "until");
            const msgpack_object *child = sk_get(&u.data, "child");
            if (until != NULL && (until->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
                                  until->type == MSGPACK_OBJECT_NEGATIVE_INTEGER))
                op->until_ms = sk_int(until);
            if (child != NULL && child->type == MSGPACK_OBJECT_STR &&
                child->via.str.size < sizeof(op->child)) {
                memcpy(op->child, child->via.str.ptr, child->via.str.size);
                op->child[child->via.str.size] = '\0';
            }
        }
        msgpack_unpacked_destroy(&u);
    }
    op->committed = 1;
    return SK_OK;
}

int sk_ctx_resolve_op(sk_ctx_t *ctx, sk_op_t *op, sk_op_status_t status, const char *data,
                      size_t len)
{
    char *copy = sk_ctx_heap_copy(data, len);

    (void)ctx;
    if (copy == NULL)
        return SK_ERROR;
    op_set_data(op, copy, len, status);
    op->intent = SK_INTENT_NONE;
    return SK_OK;
}

int sk_ctx_writes(sk_ctx_t *ctx, sk_ctx_writes_t *w)
{
    size_t n = 0;

    memset(w, 0, sizeof(*w));
    for (const sk_op_t *op = ctx->order_head; op != NULL; op = op->order_next)
        n += !op->committed;
    if (n > ctx->capwrites) {
        sk_op_t **grown = realloc(ctx->writes, n * sizeof(*grown));
        if (grown == NULL)
            return SK_ERROR;
        ctx->writes = grown;
        ctx->capwrites = n;
    }
    n = 0;
    for (sk_op_t *op = ctx->order_head; op != NULL; op = op->order_next) {
        if (!op->committed)
            ctx->writes[n++] = op;
    }
    w->ops = (const sk_op_t *const *)ctx->writes;
    w->nops = n;
    w->dispatch = (const char(*)[41])ctx->dispatch;
    w->ndispatch = ctx->ndispatch;
    return SK_OK;
}

size_t sk_ctx_committed(sk_ctx_t *ctx, const sk_ctx_writes_t *w)
{
    size_t results = 0;

    for (size_t i = 0; i < w->nops; i++) {
        sk_op_t *op = sk_ctx_op_find(ctx, w->ops[i]->key);
        if (op == NULL || op->committed)
            continue;
        op->committed = 1;
        op->intent = SK_INTENT_NONE;
        results += op->status == SK_OP_OK || op->status == SK_OP_ERROR;
    }
    /* Dispatches are only added by an entry, which comes after the commit
     * of what an earlier one handed out: these are the first ones. */
    if (w->ndispatch > 0 && w->ndispatch <= ctx->ndispatch) {
        memmove(ctx->dispatch, ctx->dispatch + w->ndispatch,
                (ctx->ndispatch - w->ndispatch) * sizeof(*ctx->dispatch));
        ctx->ndispatch -= w->ndispatch;
    }
    return results;
}

int sk_ctx_op_settled(sk_ctx_t *ctx, const char *key, sk_op_status_t status, const char *data,
                      size_t len)
{
    sk_op_t *op = sk_ctx_op_find(ctx, key);

    if (op == NULL || sk_ctx_resolve_op(ctx, op, status, data, len) != SK_OK)
        return SK_ERROR;
    op->committed = 1; /* the engine wrote it already */
    return SK_OK;
}

int sk_ctx_op_final(const sk_ctx_t *ctx, const char *key)
{
    const sk_op_t *op = sk_ctx_op_find(ctx, key);

    return op != NULL && (op->status == SK_OP_OK || op->status == SK_OP_ERROR);
}

const sk_op_t *sk_ctx_due_wait(const sk_ctx_t *ctx, int64_t now_ms, const sk_op_t *after)
{
    for (const sk_op_t *op = after ? after->order_next : ctx->order_head; op != NULL;
         op = op->order_next) {
        if (op->status == SK_OP_WAITING && op->until_ms >= 0 && op->until_ms <= now_ms &&
            strcmp(op->kind, "sleep") != 0)
            return op;
    }
    return NULL;
}

int sk_ctx_has_ops(const sk_ctx_t *ctx)
{
    return ctx->order_head != NULL;
}

size_t sk_ctx_final_ops(const sk_ctx_t *ctx)
{
    size_t n = 0;

    for (const sk_op_t *op = ctx->order_head; op != NULL; op = op->order_next)
        n += op->status != SK_OP_RETRY;
    return n;
}
