/*
 * The replay context's errors: sk_error_t values (created in the context's
 * arena, with a cause chain, a stack and validation issues), raising them
 * from a handler or a body, and their msgpack form, packed into the op or
 * the entry's outcome and read back from a recorded op.  An error is a job
 * of its own, used by steps, entries and validation alike, so it lives
 * apart from them (see sk_ctx_int.h for what the modules share).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sk_ctx_int.h"

#define ERROR_DEPTH_MAX 16 /* cause chains deeper than this are cut */

static sk_error_t *error_alloc(sk_ctx_t *ctx, const char *name, const char *message)
{
    sk_error_t *e = sk_ctx_arena_alloc(ctx, sizeof(*e));

    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof(*e));
    e->name = sk_ctx_arena_strdup(ctx, name && *name ? name : "Error");
    e->message = sk_ctx_arena_strdup(ctx, message ? message : "");
    e->retryable = true;
    if (e->name == NULL || e->message == NULL)
        return NULL;
    return e;
}

static sk_error_t *error_vnew(sk_ctx_t *ctx, const char *name, const char *fmt, va_list ap)
{
    char buf[1024];

    vsnprintf(buf, sizeof(buf), fmt ? fmt : "", ap);
    return error_alloc(ctx, name, buf);
}

sk_error_t *sk_error_new(sk_ctx_t *ctx, const char *name, const char *fmt, ...)
{
    va_list ap;
    sk_error_t *e;

    va_start(ap, fmt);
    e = error_vnew(ctx, name, fmt, ap);
    va_end(ap);
    return e;
}

sk_error_t *sk_error_set_cause(sk_error_t *e, const sk_error_t *cause)
{
    if (e != NULL && cause != e)
        e->cause = cause;
    return e;
}

sk_error_t *sk_error_set_retryable(sk_error_t *e, bool retryable)
{
    if (e != NULL)
        e->retryable = retryable;
    return e;
}

sk_error_t *sk_error_set_stack(sk_error_t *e, const char *stack)
{
    /* The stack string must outlive the error: callers pass literals or
     * ctx-owned strings (documented in stepkit.h). */
    if (e != NULL)
        e->stack = stack;
    return e;
}

const char *sk_error_name(const sk_error_t *e)
{
    return e ? e->name : "";
}

const char *sk_error_message(const sk_error_t *e)
{
    return e ? e->message : "";
}

const char *sk_error_stack(const sk_error_t *e)
{
    return e ? e->stack : NULL;
}

const sk_error_t *sk_error_cause(const sk_error_t *e)
{
    return e ? e->cause : NULL;
}

bool sk_error_retryable(const sk_error_t *e)
{
    return e ? e->retryable : false;
}

int sk_raise(sk_ctx_t *ctx, const sk_error_t *e)
{
    ctx->raised = e;
    return SK_FAILED;
}

int sk_fail(sk_ctx_t *ctx, const char *name, const char *fmt, ...)
{
    va_list ap;
    sk_error_t *e;

    va_start(ap, fmt);
    e = error_vnew(ctx, name, fmt, ap);
    va_end(ap);
    return sk_raise(ctx, e);
}

int sk_ctx_pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);

    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int pack_error(msgpack_packer *pk, const sk_error_t *e, int depth)
{
    int fields = 3 + (e->stack != NULL) + (e->cause != NULL && depth < ERROR_DEPTH_MAX) +
                 (e->issues != NULL);

    if (msgpack_pack_map(pk, (size_t)fields) || sk_ctx_pack_cstr(pk, "name") ||
        sk_ctx_pack_cstr(pk, e->name) || sk_ctx_pack_cstr(pk, "message") ||
        sk_ctx_pack_cstr(pk, e->message) || sk_ctx_pack_cstr(pk, "retryable") ||
        (e->retryable ? msgpack_pack_true(pk) : msgpack_pack_false(pk)))
        return SK_ERROR;
    if (e->stack != NULL && (sk_ctx_pack_cstr(pk, "stack") || sk_ctx_pack_cstr(pk, e->stack)))
        return SK_ERROR;
    if (e->issues != NULL && (sk_ctx_pack_cstr(pk, "issues") ||
                              msgpack_sbuffer_write(pk->data, e->issues, e->issues_len)))
        return SK_ERROR;
    if (e->cause != NULL && depth < ERROR_DEPTH_MAX) {
        if (sk_ctx_pack_cstr(pk, "cause") || pack_error(pk, e->cause, depth + 1) != SK_OK)
            return SK_ERROR;
    }
    return SK_OK;
}

int sk_ctx_pack_error_buf(msgpack_sbuffer *buf, const sk_error_t *e)
{
    msgpack_packer pk;

    msgpack_sbuffer_clear(buf);
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    return pack_error(&pk, e, 0);
}

int sk_error_pack_simple(msgpack_sbuffer *buf, const char *name, const char *message, int retryable)
{
    sk_error_t e = {.name = name, .message = message, .retryable = retryable != 0};

    return sk_ctx_pack_error_buf(buf, &e);
}

int sk_error_repack_fatal(const char *data, size_t len, msgpack_sbuffer *out)
{
    msgpack_unpacked u;
    msgpack_packer pk;
    size_t off = 0;
    int rc = SK_ERROR, seen = 0;

    msgpack_unpacked_init(&u);
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (msgpack_unpack_next(&u, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        u.data.type != MSGPACK_OBJECT_MAP)
        goto done;
    seen = sk_get(&u.data, "retryable") != NULL;
    if (msgpack_pack_map(&pk, u.data.via.map.size + (seen ? 0 : 1)))
        goto done;
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
        const msgpack_object_kv *kv = &u.data.via.map.ptr[i];
        int is_flag = kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 9 &&
                      memcmp(kv->key.via.str.ptr, "retryable", 9) == 0;
        if (msgpack_pack_object(&pk, kv->key) ||
            (is_flag ? msgpack_pack_false(&pk) : msgpack_pack_object(&pk, kv->val)))
            goto done;
    }
    if (!seen && (sk_ctx_pack_cstr(&pk, "retryable") || msgpack_pack_false(&pk)))
        goto done;
    rc = SK_OK;
done:
    msgpack_unpacked_destroy(&u);
    return rc;
}

const char *sk_ctx_obj_strdup(sk_ctx_t *ctx, const msgpack_object *o)
{
    if (o == NULL || o->type != MSGPACK_OBJECT_STR)
        return NULL;
    return sk_ctx_arena_strndup(ctx, o->via.str.ptr, o->via.str.size);
}

/* An error map as stored back into an error value (cause chain intact). */
const sk_error_t *sk_ctx_error_from_obj(sk_ctx_t *ctx, const msgpack_object *o, int depth)
{
    sk_error_t *e;
    const msgpack_object *v;

    if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
        return error_alloc(ctx, "Error", "unreadable error record");
    e = error_alloc(ctx, sk_ctx_obj_strdup(ctx, sk_get(o, "name")),
                    sk_ctx_obj_strdup(ctx, sk_get(o, "message")));
    if (e == NULL)
        return NULL;
    e->stack = sk_ctx_obj_strdup(ctx, sk_get(o, "stack"));
    v = sk_get(o, "retryable");
    e->retryable = v == NULL || (v->type == MSGPACK_OBJECT_BOOLEAN && v->via.boolean);
    v = sk_get(o, "cause");
    if (v != NULL && depth < ERROR_DEPTH_MAX)
        e->cause = sk_ctx_error_from_obj(ctx, v, depth + 1);
    v = sk_get(o, "issues");
    if (v != NULL) {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        if (msgpack_pack_object(&pk, *v) == 0) {
            char *copy = sk_ctx_arena_alloc(ctx, sb.size ? sb.size : 1);
            if (copy != NULL) {
                memcpy(copy, sb.data, sb.size);
                e->issues = copy;
                e->issues_len = sb.size;
            }
        }
        msgpack_sbuffer_destroy(&sb);
    }
    return e;
}
