#include "sk_json.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "stepkit.h"

/* Integers travel as int64 both ways; a narrower json_int_t would truncate. */
_Static_assert(sizeof(json_int_t) >= sizeof(int64_t), "jansson json_int_t narrower than int64");

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- JSON text -> msgpack ------------------------------------------------ */

/* msgpack_pack_* fail only when the sbuffer cannot grow. */
static int packed(int rc, char *err, size_t errlen)
{
    if (rc == 0)
        return SK_OK;
    set_err(err, errlen, "out of memory packing msgpack");
    return SK_ERROR;
}

static int pack_json(msgpack_packer *pk, const json_t *j, int depth, char *err, size_t errlen)
{
    switch (json_typeof(j)) {
    case JSON_NULL:
        return packed(msgpack_pack_nil(pk), err, errlen);
    case JSON_TRUE:
        return packed(msgpack_pack_true(pk), err, errlen);
    case JSON_FALSE:
        return packed(msgpack_pack_false(pk), err, errlen);
    case JSON_INTEGER:
        return packed(msgpack_pack_int64(pk, (int64_t)json_integer_value(j)), err, errlen);
    case JSON_REAL:
        return packed(msgpack_pack_double(pk, json_real_value(j)), err, errlen);
    case JSON_STRING:
        /* The length, not strlen: JSON_ALLOW_NUL lets "\u0000" through. */
        return packed(msgpack_pack_str_with_body(pk, json_string_value(j), json_string_length(j)),
                      err, errlen);
    case JSON_ARRAY:
    case JSON_OBJECT:
        break;
    }

    /* Refuse here what sk_msgpack_check would refuse later: jansson nests to 2048. */
    if (depth >= SK_MSGPACK_DEPTH) {
        set_err(err, errlen, "JSON nested deeper than %d levels", SK_MSGPACK_DEPTH);
        return SK_ERROR;
    }

    if (json_is_array(j)) {
        size_t n = json_array_size(j);

        if (packed(msgpack_pack_array(pk, n), err, errlen) != SK_OK)
            return SK_ERROR;
        for (size_t i = 0; i < n; i++) {
            if (pack_json(pk, json_array_get(j, i), depth + 1, err, errlen) != SK_OK)
                return SK_ERROR;
        }
        return SK_OK;
    }

    if (packed(msgpack_pack_map(pk, json_object_size(j)), err, errlen) != SK_OK)
        return SK_ERROR;
    /* The iterator walks keys in insertion order (jansson >= 2.8), i.e. text order. */
    for (void *it = json_object_iter((json_t *)j); it != NULL;
         it = json_object_iter_next((json_t *)j, it)) {
        if (packed(msgpack_pack_str_with_body(pk, json_object_iter_key(it),
                                              json_object_iter_key_len(it)),
                   err, errlen) != SK_OK)
            return SK_ERROR;
        if (pack_json(pk, json_object_iter_value(it), depth + 1, err, errlen) != SK_OK)
            return SK_ERROR;
    }
    return SK_OK;
}

int sk_json_to_msgpack(const char *text, size_t len, msgpack_sbuffer *buf, char *err, size_t errlen)
{
    json_error_t jerr;
    msgpack_packer pk;
    json_t *root;
    size_t start;
    int rc;

    if (buf == NULL || (text == NULL && len > 0)) {
        set_err(err, errlen, "sk_json_to_msgpack: no text or no buffer");
        return SK_ERROR;
    }
    if (len > SK_PAYLOAD_MAX) {
        set_err(err, errlen, "JSON text of %zu bytes exceeds the limit of %u bytes", len,
                SK_PAYLOAD_MAX);
        return SK_ERROR;
    }

    root = json_loadb(len > 0 ? text : "", len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        set_err(err, errlen, "line %d column %d: %s", jerr.line, jerr.column, jerr.text);
        return SK_ERROR;
    }

    start = buf->size;
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    rc = pack_json(&pk, root, 0, err, errlen);
    json_decref(root);

    if (rc == SK_OK && buf->size - start > SK_PAYLOAD_MAX) {
        /* Reals grow from 3 text bytes to 9 packed: the output can pass the cap. */
        set_err(err, errlen, "packed value of %zu bytes exceeds the limit of %u bytes",
                buf->size - start, SK_PAYLOAD_MAX);
        rc = SK_ERROR;
    }
    if (rc != SK_OK)
        buf->size = start; /* leave the caller's buffer as it was */
    return rc;
}

/* ---- msgpack -> JSON text ------------------------------------------------ */

static const char *type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return "boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return "integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return "float";
    case MSGPACK_OBJECT_STR:
        return "str";
    case MSGPACK_OBJECT_ARRAY:
        return "array";
    case MSGPACK_OBJECT_MAP:
        return "map";
    case MSGPACK_OBJECT_BIN:
        return "bin";
    case MSGPACK_OBJECT_EXT:
        return "ext";
    }
    return "unknown";
}

/* msgpack-c may leave ptr NULL for an empty str; jansson refuses a NULL pointer. */
static const char *str_ptr(const msgpack_object_str *s)
{
    return s->size > 0 ? s->ptr : "";
}

static json_t *to_json(const msgpack_object *o, int depth, char *err, size_t errlen);

static json_t *map_to_json(const msgpack_object_map *m, int depth, char *err, size_t errlen)
{
    json_t *obj = json_object();

    if (obj == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key;
        json_t *v;

        if (k->type != MSGPACK_OBJECT_STR) {
            set_err(err, errlen, "msgpack map key %u is of type %s: JSON keys must be strings", i,
                    type_name(k->type));
            goto failed;
        }
        /* jansson would keep only the last value: refuse rather than drop one. */
        if (json_object_getn(obj, str_ptr(&k->via.str), k->via.str.size) != NULL) {
            set_err(err, errlen, "msgpack map key %u is a duplicate", i);
            goto failed;
        }
        v = to_json(&m->ptr[i].val, depth + 1, err, errlen);
        if (v == NULL)
            goto failed;
        /* Steals v even on failure; fails on invalid UTF-8 or out of memory. */
        if (json_object_setn_new(obj, str_ptr(&k->via.str), k->via.str.size, v) != 0) {
            set_err(err, errlen, "msgpack map key %u is not valid UTF-8", i);
            goto failed;
        }
    }
    return obj;

failed:
    json_decref(obj);
    return NULL;
}

static json_t *array_to_json(const msgpack_object_array *a, int depth, char *err, size_t errlen)
{
    json_t *arr = json_array();

    if (arr == NULL) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    for (uint32_t i = 0; i < a->size; i++) {
        json_t *v = to_json(&a->ptr[i], depth + 1, err, errlen);

        if (v == NULL)
            goto failed;
        if (json_array_append_new(arr, v) != 0) {
            set_err(err, errlen, "out of memory");
            goto failed;
        }
    }
    return arr;

failed:
    json_decref(arr);
    return NULL;
}

static json_t *to_json(const msgpack_object *o, int depth, char *err, size_t errlen)
{
    json_t *j = NULL;

    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        j = json_null();
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        j = json_boolean(o->via.boolean);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            set_err(err, errlen,
                    "msgpack integer %" PRIu64 " is above %" PRId64
                    ", the largest integer we keep in JSON",
                    o->via.u64, INT64_MAX);
            return NULL;
        }
        j = json_integer((json_int_t)o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        j = json_integer((json_int_t)o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        /* msgpack-c widens float32 into f64 already. */
        if (!isfinite(o->via.f64)) {
            set_err(err, errlen, "msgpack float %g has no JSON equivalent", o->via.f64);
            return NULL;
        }
        j = json_real(o->via.f64);
        break;
    case MSGPACK_OBJECT_STR:
        j = json_stringn(str_ptr(&o->via.str), o->via.str.size);
        if (j == NULL) {
            set_err(err, errlen, "msgpack str of %" PRIu32 " bytes is not valid UTF-8",
                    o->via.str.size);
            return NULL;
        }
        return j;
    case MSGPACK_OBJECT_ARRAY:
    case MSGPACK_OBJECT_MAP:
        /* A hand-built object may nest without bound (or loop): cap it as the check does. */
        if (depth >= SK_MSGPACK_DEPTH) {
            set_err(err, errlen, "msgpack nested deeper than %d levels", SK_MSGPACK_DEPTH);
            return NULL;
        }
        if (o->type == MSGPACK_OBJECT_ARRAY)
            return array_to_json(&o->via.array, depth, err, errlen);
        return map_to_json(&o->via.map, depth, err, errlen);
    case MSGPACK_OBJECT_BIN:
        set_err(err, errlen, "msgpack bin (%" PRIu32 " bytes) has no JSON equivalent",
                o->via.bin.size);
        return NULL;
    case MSGPACK_OBJECT_EXT:
        set_err(err, errlen, "msgpack ext type %d (%" PRIu32 " bytes) has no JSON equivalent",
                (int)o->via.ext.type, o->via.ext.size);
        return NULL;
    default:
        set_err(err, errlen, "unknown msgpack object type %d", (int)o->type);
        return NULL;
    }
    if (j == NULL)
        set_err(err, errlen, "out of memory");
    return j;
}

char *sk_msgpack_to_json(const msgpack_object *o, char *err, size_t errlen)
{
    json_t *root;
    char *s;

    if (o == NULL) {
        set_err(err, errlen, "sk_msgpack_to_json: no object");
        return NULL;
    }
    root = to_json(o, 0, err, errlen);
    if (root == NULL)
        return NULL;
    /* jansson allocates with malloc unless json_set_alloc_funcs is called (we never do),
     * so the caller's free() matches. */
    s = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (s == NULL)
        set_err(err, errlen, "out of memory rendering JSON");
    return s;
}

char *sk_msgpack_bytes_to_json(const char *data, size_t len, char *err, size_t errlen)
{
    msgpack_unpacked up;
    msgpack_unpack_return ret;
    size_t off = 0;
    char *s = NULL;

    if (sk_msgpack_check(data, len, err, errlen) != SK_OK)
        return NULL;

    msgpack_unpacked_init(&up);
    ret = msgpack_unpack_next(&up, data, len, &off);
    if (ret != MSGPACK_UNPACK_SUCCESS || off != len) {
        /* The check passed, so only an allocation failure should land here. */
        set_err(err, errlen, "msgpack unpack failed (%d) at byte %zu", (int)ret, off);
        goto done;
    }
    s = sk_msgpack_to_json(&up.data, err, errlen);

done:
    msgpack_unpacked_destroy(&up);
    return s;
}

/* ---- msgpack validation -------------------------------------------------- */

static uint64_t load_be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/*
 * Decode the header at p (avail bytes, at least 1): its size, the payload
 * that follows it (str/bin/ext bytes, fixed-size numbers), and for a
 * container the number of values inside (map entries count twice).
 */
static int read_header(const unsigned char *p, size_t avail, size_t *head, uint64_t *body,
                       uint64_t *items, bool *container)
{
    unsigned char b = p[0];
    size_t lenbytes = 0; /* size of a big-endian length or count field */
    size_t extra = 0;    /* ext type byte, after the length */

    *head = 1;
    *body = 0;
    *items = 0;
    *container = false;

    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return SK_OK; /* fixints, nil, booleans: the byte is the value */
    if (b <= 0x8f) {
        *container = true;
        *items = 2u * (b & 0x0fu);
        return SK_OK;
    }
    if (b <= 0x9f) {
        *container = true;
        *items = b & 0x0fu;
        return SK_OK;
    }
    if (b <= 0xbf) {
        *body = b & 0x1fu;
        return SK_OK;
    }

    switch (b) {
    case 0xc4: /* bin8, bin16, bin32 */
    case 0xc5:
    case 0xc6:
        lenbytes = (size_t)1 << (b - 0xc4);
        break;
    case 0xc7: /* ext8, ext16, ext32: length, then a type byte */
    case 0xc8:
    case 0xc9:
        lenbytes = (size_t)1 << (b - 0xc7);
        extra = 1;
        break;
    case 0xca: /* float32 */
        *body = 4;
        return SK_OK;
    case 0xcb: /* float64 */
        *body = 8;
        return SK_OK;
    case 0xcc: /* uint8 .. uint64 */
    case 0xcd:
    case 0xce:
    case 0xcf:
        *body = (uint64_t)1 << (b - 0xcc);
        return SK_OK;
    case 0xd0: /* int8 .. int64 */
    case 0xd1:
    case 0xd2:
    case 0xd3:
        *body = (uint64_t)1 << (b - 0xd0);
        return SK_OK;
    case 0xd4: /* fixext1 .. fixext16: type byte, then 1..16 bytes */
    case 0xd5:
    case 0xd6:
    case 0xd7:
    case 0xd8:
        *body = 1 + ((uint64_t)1 << (b - 0xd4));
        return SK_OK;
    case 0xd9: /* str8, str16, str32 */
    case 0xda:
    case 0xdb:
        lenbytes = (size_t)1 << (b - 0xd9);
        break;
    case 0xdc: /* array16, array32 */
    case 0xdd:
    case 0xde: /* map16, map32 */
    case 0xdf:
        lenbytes = (b == 0xdc || b == 0xde) ? 2 : 4;
        *container = true;
        break;
    default: /* 0xc1, never used */
        return SK_ERROR;
    }

    *head = 1 + lenbytes + extra;
    if (avail < *head)
        return SK_AGAIN; /* truncated header */
    if (*container)
        *items = load_be(p + 1, lenbytes) * (b >= 0xde ? 2u : 1u);
    else
        *body = load_be(p + 1, lenbytes);
    return SK_OK;
}

int sk_msgpack_check(const char *data, size_t len, char *err, size_t errlen)
{
    const unsigned char *p = (const unsigned char *)data;
    uint64_t left[SK_MSGPACK_DEPTH]; /* values still expected by each open container */
    int top = 0;
    size_t pos = 0;

    if (data == NULL && len > 0) {
        set_err(err, errlen, "msgpack: no data");
        return SK_ERROR;
    }
    if (len > SK_PAYLOAD_MAX) {
        set_err(err, errlen, "msgpack: payload of %zu bytes exceeds the limit of %u bytes", len,
                SK_PAYLOAD_MAX);
        return SK_ERROR;
    }

    for (;;) {
        size_t head, at = pos;
        uint64_t body, items;
        bool container;
        int rc;

        if (pos >= len) {
            set_err(err, errlen, "msgpack: truncated: value expected at byte %zu", pos);
            return SK_ERROR;
        }
        rc = read_header(p + pos, len - pos, &head, &body, &items, &container);
        if (rc == SK_ERROR) {
            set_err(err, errlen, "msgpack: invalid format byte 0x%02x at byte %zu", p[pos], pos);
            return SK_ERROR;
        }
        if (rc == SK_AGAIN) {
            set_err(err, errlen, "msgpack: truncated header at byte %zu", at);
            return SK_ERROR;
        }
        pos += head;
        if (body > len - pos) {
            set_err(err, errlen,
                    "msgpack: value at byte %zu needs %" PRIu64 " bytes, only %zu remain", at, body,
                    len - pos);
            return SK_ERROR;
        }
        pos += (size_t)body;

        if (container) {
            if (top >= SK_MSGPACK_DEPTH) {
                set_err(err, errlen, "msgpack: nested deeper than %d levels at byte %zu",
                        SK_MSGPACK_DEPTH, at);
                return SK_ERROR;
            }
            /* Each value takes at least one byte: a larger count is a lie (and msgpack-c
             * would allocate for it before finding out). */
            if (items > len - pos) {
                set_err(err, errlen,
                        "msgpack: %s at byte %zu claims %" PRIu64 " values, only %zu bytes remain",
                        (p[at] & 0xf0) == 0x80 || p[at] >= 0xde ? "map" : "array", at, items,
                        len - pos);
                return SK_ERROR;
            }
            if (items > 0) {
                left[top++] = items;
                continue;
            }
        }

        /* One value is complete: close every container it completes. */
        while (top > 0 && --left[top - 1] == 0)
            top--;
        if (top == 0)
            break;
    }

    if (pos != len) {
        set_err(err, errlen, "msgpack: %zu trailing bytes after the value", len - pos);
        return SK_ERROR;
    }
    return SK_OK;
}
