/* Reading and writing msgpack values for workflow authors (stepkit.h). */
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stepkit.h"

const msgpack_object *sk_get(const msgpack_object *map, const char *key)
{
    size_t klen;

    if (map == NULL || map->type != MSGPACK_OBJECT_MAP || key == NULL)
        return NULL;
    klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == klen &&
            memcmp(kv->key.via.str.ptr, key, klen) == 0)
            return &kv->val;
    }
    return NULL;
}

long long sk_int(const msgpack_object *o)
{
    if (o == NULL)
        return 0;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 > (uint64_t)LLONG_MAX ? LLONG_MAX : (long long)o->via.u64;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return (long long)o->via.i64;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (o->via.f64 >= -9.2e18 && o->via.f64 <= 9.2e18)
            return (long long)o->via.f64;
        return 0;
    default:
        return 0;
    }
}

sk_type_t sk_type(const msgpack_object *o)
{
    if (o == NULL)
        return SK_T_NIL;
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        return SK_T_BOOL;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return SK_T_INT;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return SK_T_NUMBER;
    case MSGPACK_OBJECT_STR:
        return SK_T_STRING;
    case MSGPACK_OBJECT_ARRAY:
        return SK_T_ARRAY;
    case MSGPACK_OBJECT_MAP:
        return SK_T_OBJECT;
    default:
        return SK_T_NIL;
    }
}

const char *sk_type_name(sk_type_t t)
{
    switch (t) {
    case SK_T_NIL:
        return "null";
    case SK_T_BOOL:
        return "boolean";
    case SK_T_INT:
        return "int";
    case SK_T_NUMBER:
        return "number";
    case SK_T_STRING:
        return "string";
    case SK_T_ARRAY:
        return "array";
    case SK_T_OBJECT:
        return "object";
    }
    return "unknown";
}

int sk_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s ? s : "", n))
        return SK_ERROR;
    return SK_OK;
}

int sk_pack_int(msgpack_packer *pk, long long v)
{
    return msgpack_pack_long_long(pk, v) ? SK_ERROR : SK_OK;
}

int sk_pack_object(msgpack_packer *pk, const msgpack_object *o)
{
    if (o == NULL)
        return msgpack_pack_nil(pk) ? SK_ERROR : SK_OK;
    return msgpack_pack_object(pk, *o) ? SK_ERROR : SK_OK;
}

int sk_pack_fmt(msgpack_packer *pk, const char *fmt, ...)
{
    char stackbuf[512];
    char *buf = stackbuf;
    va_list ap;
    int n, rc = SK_ERROR;

    va_start(ap, fmt);
    n = vsnprintf(stackbuf, sizeof(stackbuf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return SK_ERROR;
    if ((size_t)n >= sizeof(stackbuf)) {
        buf = malloc((size_t)n + 1);
        if (buf == NULL)
            return SK_ERROR;
        va_start(ap, fmt);
        vsnprintf(buf, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    if (msgpack_pack_str(pk, (size_t)n) == 0 && msgpack_pack_str_body(pk, buf, (size_t)n) == 0)
        rc = SK_OK;
    if (buf != stackbuf)
        free(buf);
    return rc;
}
