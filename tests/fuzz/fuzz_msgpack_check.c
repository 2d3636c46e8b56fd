/*
 * sk_msgpack_check on arbitrary bytes (every row read from the database goes
 * through it before msgpack-c sees it).
 *
 * Properties: it never crashes or reads past the input; it accepts exactly
 * what ref_value() below, a plain recursive reading of the msgpack spec with
 * the same depth limit, accepts; when it accepts, msgpack-c unpacks exactly
 * one value spanning every byte, nested no deeper than SK_MSGPACK_DEPTH; when
 * it rejects, the message is set.  A rejected input is not handed to
 * msgpack-c: that would allocate for the claimed counts, which is what the
 * check exists to prevent.
 */
#include <string.h>

#include <msgpack.h>

#include "fuzz.h"
#include "sk_json.h"
#include "stepkit.h"

/* Containers nested inside o, o itself included (a scalar has depth 0). */
static int depth_of(const msgpack_object *o)
{
    int d = 0;

    if (o->type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            int k = depth_of(&o->via.array.ptr[i]);
            d = k > d ? k : d;
        }
        return d + 1;
    }
    if (o->type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            int k = depth_of(&o->via.map.ptr[i].key);
            d = k > d ? k : d;
            k = depth_of(&o->via.map.ptr[i].val);
            d = k > d ? k : d;
        }
        return d + 1;
    }
    return 0;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;

    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* One value at p inside a container nested `depth` deep: the byte after it,
 * or NULL when it is invalid, truncated or too deep. */
static const uint8_t *ref_value(const uint8_t *p, const uint8_t *end, int depth)
{
    uint64_t n = 0, skip = 0;
    int kind = 0; /* 0 scalar, 1 array, 2 map */
    uint8_t b;

    if (p >= end)
        return NULL;
    b = *p++;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
        return p;
    if (b >= 0x80 && b <= 0x8f) {
        kind = 2;
        n = b & 0x0f;
    } else if (b >= 0x90 && b <= 0x9f) {
        kind = 1;
        n = b & 0x0f;
    } else if (b >= 0xa0 && b <= 0xbf) {
        skip = b & 0x1f;
    } else {
        static const struct {
            uint8_t byte;
            int len;   /* bytes of length or count */
            int fixed; /* bytes of payload when len is 0 */
            int kind;
        } fmt[] = {
            {0xc4, 1, 0, 0}, {0xc5, 2, 0, 0}, {0xc6, 4, 0, 0}, /* bin */
            {0xc7, 1, 1, 0}, {0xc8, 2, 1, 0}, {0xc9, 4, 1, 0}, /* ext: + type byte */
            {0xca, 0, 4, 0}, {0xcb, 0, 8, 0},                  /* float */
            {0xcc, 0, 1, 0}, {0xcd, 0, 2, 0}, {0xce, 0, 4, 0},  {0xcf, 0, 8, 0}, {0xd0, 0, 1, 0},
            {0xd1, 0, 2, 0}, {0xd2, 0, 4, 0}, {0xd3, 0, 8, 0},  {0xd4, 0, 2, 0}, {0xd5, 0, 3, 0},
            {0xd6, 0, 5, 0}, {0xd7, 0, 9, 0}, {0xd8, 0, 17, 0}, /* fixext */
            {0xd9, 1, 0, 0}, {0xda, 2, 0, 0}, {0xdb, 4, 0, 0},  /* str */
            {0xdc, 2, 0, 1}, {0xdd, 4, 0, 1}, {0xde, 2, 0, 2},  {0xdf, 4, 0, 2},
        };
        size_t i = 0;

        while (i < sizeof(fmt) / sizeof(fmt[0]) && fmt[i].byte != b)
            i++;
        if (i == sizeof(fmt) / sizeof(fmt[0]))
            return NULL; /* 0xc1 */
        if (end - p < fmt[i].len)
            return NULL;
        kind = fmt[i].kind;
        if (kind != 0)
            n = be(p, fmt[i].len);
        else
            skip = fmt[i].len > 0 ? be(p, fmt[i].len) + (uint64_t)fmt[i].fixed
                                  : (uint64_t)fmt[i].fixed;
        p += fmt[i].len;
    }
    if (kind == 0)
        return skip <= (uint64_t)(end - p) ? p + skip : NULL;
    if (depth >= SK_MSGPACK_DEPTH)
        return NULL;
    for (uint64_t i = 0; i < n * (uint64_t)kind && p != NULL; i++)
        p = ref_value(p, end, depth + 1);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    msgpack_unpacked up;
    msgpack_unpack_return ret;
    const uint8_t *ref_end;
    size_t off = 0;
    int rc, depth;

    rc = sk_msgpack_check((const char *)data, size, err, sizeof(err));
    ref_end = ref_value(data, data + size, 0);
    FUZZ_CHECK((rc == SK_OK) == (ref_end == data + size), "check %s, the reference %s: %s",
               rc == SK_OK ? "accepts" : "rejects",
               ref_end == NULL          ? "finds it invalid"
               : ref_end == data + size ? "accepts"
                                        : "finds trailing bytes",
               err);
    if (rc != SK_OK) {
        FUZZ_CHECK(rc == SK_ERROR, "rc %d", rc);
        FUZZ_CHECK_ERR(err, sizeof(err));
        return 0;
    }
    FUZZ_CHECK(err[0] == '\0', "accepted with an error message: %s", err);

    msgpack_unpacked_init(&up);
    ret = msgpack_unpack_next(&up, (const char *)data, size, &off);
    FUZZ_CHECK(ret == MSGPACK_UNPACK_SUCCESS, "accepted %zu bytes, msgpack-c says %d", size,
               (int)ret);
    FUZZ_CHECK(off == size, "accepted %zu bytes, msgpack-c used %zu", size, off);
    depth = depth_of(&up.data);
    FUZZ_CHECK(depth <= SK_MSGPACK_DEPTH, "accepted a value nested %d deep", depth);
    msgpack_unpacked_destroy(&up);
    return 0;
}
