/*
 * sk_json - JSON text <-> msgpack bytes, through jansson.
 *
 * Mapping: null, true/false, integers (int64), reals (double), strings,
 * arrays and objects map one to one.  msgpack values JSON cannot hold
 * (bin, ext, non-string map keys, uint64 above INT64_MAX) are an error in
 * sk_msgpack_to_json, never silently changed.  One asymmetry: a map key
 * holding a NUL byte renders as "\u0000", but jansson cannot read such a key
 * back, so sk_json_to_msgpack refuses it ("NUL byte in object key not
 * supported"); NULs inside string values go both ways.
 */
#ifndef SK_JSON_H
#define SK_JSON_H

#include <stddef.h>

#include <msgpack.h>

#define SK_PAYLOAD_MAX   (16u * 1024u * 1024u) /* largest payload we accept */
#define SK_MSGPACK_DEPTH 32                    /* deepest nesting we accept */

/* Parse JSON `text` (len bytes, any JSON value) and pack it into `buf`.
 * SK_OK, or SK_ERROR with "line L column C: reason" in err. */
int sk_json_to_msgpack(const char *text, size_t len, msgpack_sbuffer *buf, char *err,
                       size_t errlen);

/* Render one msgpack value as compact JSON (keys in stored order).
 * Returns a malloc'd NUL-terminated string (caller frees) or NULL with err. */
char *sk_msgpack_to_json(const msgpack_object *o, char *err, size_t errlen);
/* The same from bytes (checked with sk_msgpack_check first). */
char *sk_msgpack_bytes_to_json(const char *data, size_t len, char *err, size_t errlen);

/*
 * Check that `data` is exactly one well-formed msgpack value within our
 * limits (size <= SK_PAYLOAD_MAX, depth <= SK_MSGPACK_DEPTH, every array or
 * map count bounded by the bytes that remain) before the unpacker sees it:
 * msgpack-c allocates for a claimed count before checking it.
 */
int sk_msgpack_check(const char *data, size_t len, char *err, size_t errlen);

#endif
