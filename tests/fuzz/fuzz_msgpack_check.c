/*
 * sk_msgpack_check on arbitrary bytes (every row read from the database goes
 * through it before msgpack-c sees it).
 *
 * Properties: it never crashes or reads past the input; when it accepts,
 * msgpack-c unpacks exactly one value spanning every byte, nested no deeper
 * than SK_MSGPACK_DEPTH; when it rejects, the message is set.  A rejected
 * input is not handed to msgpack-c: that would allocate for the claimed
 * counts, which is what the check exists to prevent.
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    msgpack_unpacked up;
    msgpack_unpack_return ret;
    size_t off = 0;
    int rc, depth;

    rc = sk_msgpack_check((const char *)data, size, err, sizeof(err));
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
