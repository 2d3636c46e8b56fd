/*
 * msgpack bytes -> JSON text -> msgpack -> JSON text (sk_json.c, the way
 * `stepkit` prints outputs and events).
 *
 * Properties: sk_msgpack_bytes_to_json never crashes on any bytes; when it
 * gives JSON, that JSON packs again (sk_json_to_msgpack), the packed bytes
 * pass sk_msgpack_check, describe the same value as the input (integers and
 * floats compared by value: msgpack has several encodings of each), render
 * to the very same JSON text, and pack to the very same bytes again.
 *
 * One exception, documented in sk_json.h: a map key holding a NUL byte
 * renders as "\u0000" but jansson cannot read such a key back, so packing
 * that JSON must fail with a message instead.
 */
#include <math.h>
#include <string.h>

#include <msgpack.h>

#include "fuzz.h"
#include "sk_json.h"
#include "stepkit.h"

static bool is_int(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER || o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
}

static bool is_float(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_FLOAT32 || o->type == MSGPACK_OBJECT_FLOAT64;
}

/* The same JSON value: one int64, one double (bit for bit: -0.0 stays), same bytes. */
static bool same_value(const msgpack_object *a, const msgpack_object *b)
{
    if (is_int(a) && is_int(b))
        return a->via.i64 == b->via.i64; /* both at most INT64_MAX once converted */
    if (is_float(a) && is_float(b))
        return memcmp(&a->via.f64, &b->via.f64, sizeof(double)) == 0;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MSGPACK_OBJECT_NIL:
        return true;
    case MSGPACK_OBJECT_BOOLEAN:
        return a->via.boolean == b->via.boolean;
    case MSGPACK_OBJECT_STR:
        return a->via.str.size == b->via.str.size &&
               (a->via.str.size == 0 ||
                memcmp(a->via.str.ptr, b->via.str.ptr, a->via.str.size) == 0);
    case MSGPACK_OBJECT_ARRAY:
        if (a->via.array.size != b->via.array.size)
            return false;
        for (uint32_t i = 0; i < a->via.array.size; i++) {
            if (!same_value(&a->via.array.ptr[i], &b->via.array.ptr[i]))
                return false;
        }
        return true;
    case MSGPACK_OBJECT_MAP:
        if (a->via.map.size != b->via.map.size)
            return false;
        for (uint32_t i = 0; i < a->via.map.size; i++) {
            if (!same_value(&a->via.map.ptr[i].key, &b->via.map.ptr[i].key) ||
                !same_value(&a->via.map.ptr[i].val, &b->via.map.ptr[i].val))
                return false;
        }
        return true;
    default:
        return false; /* bin and ext never convert */
    }
}

static bool has_nul_key(const msgpack_object *o)
{
    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (has_nul_key(&o->via.array.ptr[i]))
                return true;
        }
    } else if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;

            if (k->type == MSGPACK_OBJECT_STR && k->via.str.size > 0 &&
                memchr(k->via.str.ptr, '\0', k->via.str.size) != NULL)
                return true;
            if (has_nul_key(&o->via.map.ptr[i].val))
                return true;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    msgpack_sbuffer sb, sb2;
    msgpack_unpacked a, b;
    size_t off;
    char *j1, *j2;

    j1 = sk_msgpack_bytes_to_json((const char *)data, size, err, sizeof(err));
    if (j1 == NULL) {
        FUZZ_CHECK_ERR(err, sizeof(err));
        return 0;
    }

    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&sb2);
    msgpack_unpacked_init(&a);
    msgpack_unpacked_init(&b);

    off = 0;
    FUZZ_CHECK(msgpack_unpack_next(&a, (const char *)data, size, &off) == MSGPACK_UNPACK_SUCCESS,
               "input unpacks no more");
    if (has_nul_key(&a.data)) {
        err[0] = '\0';
        FUZZ_CHECK(sk_json_to_msgpack(j1, strlen(j1), &sb, err, sizeof(err)) == SK_ERROR,
                   "JSON %s with a NUL in a key packed", j1);
        FUZZ_CHECK_ERR(err, sizeof(err));
        FUZZ_CHECK(sb.size == 0, "buffer grew on error");
        goto done;
    }

    FUZZ_CHECK(sk_json_to_msgpack(j1, strlen(j1), &sb, err, sizeof(err)) == SK_OK,
               "our own JSON %s does not pack: %s", j1, err);
    FUZZ_CHECK(sk_msgpack_check(sb.data, sb.size, err, sizeof(err)) == SK_OK,
               "packed JSON fails the check: %s", err);

    off = 0;
    FUZZ_CHECK(msgpack_unpack_next(&b, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS,
               "repacked value does not unpack");
    FUZZ_CHECK(same_value(&a.data, &b.data), "value changed through JSON %s", j1);

    j2 = sk_msgpack_bytes_to_json(sb.data, sb.size, err, sizeof(err));
    FUZZ_CHECK(j2 != NULL, "repacked value does not render: %s", err);
    FUZZ_CHECK(strcmp(j1, j2) == 0, "JSON changed: %s then %s", j1, j2);
    FUZZ_CHECK(sk_json_to_msgpack(j2, strlen(j2), &sb2, err, sizeof(err)) == SK_OK, "%s", err);
    FUZZ_CHECK(sb.size == sb2.size && memcmp(sb.data, sb2.data, sb.size) == 0,
               "packing %s twice gave different bytes", j1);

    free(j2);

done:
    free(j1);
    msgpack_unpacked_destroy(&b);
    msgpack_unpacked_destroy(&a);
    msgpack_sbuffer_destroy(&sb2);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
