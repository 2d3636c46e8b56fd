/*
 * JSON text -> msgpack -> JSON text (sk_json.c, the way `stepkit start
 * --data` and the SQL API take payloads).
 *
 * Properties: sk_json_to_msgpack never crashes on any text; on error it
 * leaves the caller's buffer exactly as it was; on success it appended one
 * value that passes sk_msgpack_check and renders back to JSON, and that JSON
 * is a fixed point: it packs to the same bytes and renders to itself.
 */
#include <string.h>

#include <msgpack.h>

#include "fuzz.h"
#include "sk_json.h"
#include "stepkit.h"

static const char prefix[] = "\x93\x01\x02"; /* what a caller may have in the buffer already */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    msgpack_sbuffer sb, sb2;
    const char *text = size > 0 ? (const char *)data : NULL;
    const char *packed;
    size_t plen;
    char *j1, *j2;
    int rc;

    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_init(&sb2);
    FUZZ_CHECK(msgpack_sbuffer_write(&sb, prefix, sizeof(prefix) - 1) == 0, "oom");

    rc = sk_json_to_msgpack(text, size, &sb, err, sizeof(err));
    FUZZ_CHECK(sb.size >= sizeof(prefix) - 1 && memcmp(sb.data, prefix, sizeof(prefix) - 1) == 0,
               "the bytes already in the buffer changed");
    if (rc != SK_OK) {
        FUZZ_CHECK(rc == SK_ERROR, "rc %d", rc);
        FUZZ_CHECK_ERR(err, sizeof(err));
        FUZZ_CHECK(sb.size == sizeof(prefix) - 1, "buffer grew by %zu bytes on error",
                   sb.size - (sizeof(prefix) - 1));
        goto done;
    }
    packed = sb.data + sizeof(prefix) - 1;
    plen = sb.size - (sizeof(prefix) - 1);
    FUZZ_CHECK(sk_msgpack_check(packed, plen, err, sizeof(err)) == SK_OK,
               "packed JSON fails the check: %s", err);
    j1 = sk_msgpack_bytes_to_json(packed, plen, err, sizeof(err));
    FUZZ_CHECK(j1 != NULL, "packed JSON does not render: %s", err);

    FUZZ_CHECK(sk_json_to_msgpack(j1, strlen(j1), &sb2, err, sizeof(err)) == SK_OK,
               "rendered JSON %s does not pack: %s", j1, err);
    FUZZ_CHECK(sb2.size == plen && memcmp(sb2.data, packed, plen) == 0,
               "rendered JSON %s packs to other bytes", j1);
    j2 = sk_msgpack_bytes_to_json(sb2.data, sb2.size, err, sizeof(err));
    FUZZ_CHECK(j2 != NULL && strcmp(j1, j2) == 0, "JSON changed: %s then %s", j1, j2 ? j2 : err);
    free(j2);
    free(j1);

done:
    msgpack_sbuffer_destroy(&sb2);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
