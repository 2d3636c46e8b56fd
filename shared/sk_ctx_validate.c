/*
 * The replay context's input validation: the issues a workflow's validator
 * reports (sk_issue, sk_expect) and sk_ctx_validate, which runs the
 * validator on a run's input before its first entry and turns the issues
 * into an InvalidInputError.  Signal payloads are checked with the same
 * issues by the steps (sk_ctx_step.c); the rest of the context never sees
 * them.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "sk_ctx_int.h"

void sk_issue(sk_issues_t *iss, const char *const *path, const char *expected, const char *message)
{
    msgpack_packer pk;
    size_t np = 0;

    msgpack_packer_init(&pk, &iss->buf, msgpack_sbuffer_write);
    while (path != NULL && path[np] != NULL)
        np++;
    if (msgpack_pack_map(&pk, 3) || sk_ctx_pack_cstr(&pk, "path") || msgpack_pack_array(&pk, np))
        return;
    for (size_t i = 0; i < np; i++) {
        if (sk_ctx_pack_cstr(&pk, path[i]))
            return;
    }
    if (sk_ctx_pack_cstr(&pk, "expected") || sk_ctx_pack_cstr(&pk, expected ? expected : "") ||
        sk_ctx_pack_cstr(&pk, "message") || sk_ctx_pack_cstr(&pk, message ? message : ""))
        return;
    if (iss->count == 0)
        iss->first_message = sk_ctx_arena_strdup(iss->ctx, message ? message : "");
    iss->count++;
}

static const char *received_name(const msgpack_object *v)
{
    if (v == NULL)
        return "undefined";
    switch (sk_type(v)) {
    case SK_T_INT:
    case SK_T_NUMBER:
        return "number";
    default:
        return sk_type_name(sk_type(v));
    }
}

bool sk_expect(sk_issues_t *iss, const msgpack_object *data, const char *key, sk_type_t type)
{
    char msg[160];
    const msgpack_object *v;
    const char *path[2] = {key, NULL};
    sk_type_t got;

    if (data == NULL || data->type != MSGPACK_OBJECT_MAP) {
        snprintf(msg, sizeof(msg), "Invalid input: expected object, received %s",
                 received_name(data));
        sk_issue(iss, NULL, "object", msg);
        return false;
    }
    v = sk_get(data, key);
    got = v ? sk_type(v) : SK_T_NIL;
    if (v != NULL && (got == type || (type == SK_T_NUMBER && got == SK_T_INT)))
        return true;
    if (v != NULL && type == SK_T_INT && v->type == MSGPACK_OBJECT_FLOAT64 &&
        v->via.f64 == floor(v->via.f64) && fabs(v->via.f64) < 9e15)
        return true;
    snprintf(msg, sizeof(msg), "Invalid input: expected %s, received %s", sk_type_name(type),
             received_name(v));
    sk_issue(iss, path, sk_type_name(type), msg);
    return false;
}

int sk_ctx_validate(sk_ctx_t *ctx, sk_entry_t *out)
{
    sk_issues_t iss = {.ctx = ctx};
    sk_error_t *e, *cause;
    msgpack_sbuffer arr;
    msgpack_packer pk;
    int rc = SK_OK;

    memset(out, 0, sizeof(*out));
    if (ctx->wf->validate == NULL)
        return SK_OK;
    sk_ctx_entry_reset(ctx);
    msgpack_sbuffer_init(&iss.buf);
    msgpack_sbuffer_init(&arr);
    ctx->wf->validate(ctx->data_obj, &iss);
    if (iss.count == 0)
        goto done;
    msgpack_packer_init(&pk, &arr, msgpack_sbuffer_write);
    if (msgpack_pack_array(&pk, iss.count) ||
        msgpack_sbuffer_write(&arr, iss.buf.data, iss.buf.size)) {
        rc = SK_ERROR;
        goto done;
    }
    cause = sk_error_new(ctx, "ValidationError", "%s", iss.first_message);
    e = sk_error_new(ctx, "InvalidInputError", "Invalid input");
    if (cause == NULL || e == NULL) {
        rc = SK_ERROR;
        goto done;
    }
    cause->issues = sk_ctx_arena_alloc(ctx, arr.size);
    if (cause->issues == NULL) {
        rc = SK_ERROR;
        goto done;
    }
    memcpy((char *)cause->issues, arr.data, arr.size);
    cause->issues_len = arr.size;
    cause->retryable = false;
    e->retryable = false;
    e->cause = cause;
    sk_ctx_fail_with(ctx, out, e);
    rc = SK_FAILED;
done:
    msgpack_sbuffer_destroy(&arr);
    msgpack_sbuffer_destroy(&iss.buf);
    return rc;
}
