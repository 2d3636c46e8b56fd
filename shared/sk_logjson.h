/*
 * sk_logjson - one log line as a JSON object (--log-format json), for log
 * collectors (Loki, Elasticsearch, Cloud Logging) that read JSON lines.
 *
 * The header fields come first: ts, level, role, pid, worker (the slot of a
 * worker process; absent elsewhere).  The body's key=value pairs follow as
 * fields of their own: `event` stays `event`, `run` becomes `run_id`,
 * integers become JSON numbers, "quoted" values lose their quotes.  Words of
 * the body that are not key=value pairs are gathered in `msg`.  A body key
 * that repeats a header field (a master line about a worker's pid) is kept
 * as `arg_<key>` so the header stays trustworthy.
 */
#ifndef SK_LOGJSON_H
#define SK_LOGJSON_H

#include <stddef.h>

/*
 * Write the JSON text of one line, newline-terminated, into `out` (at most
 * `outlen` bytes, NUL included).  Returns the length written, or -1 when it
 * does not fit or jansson fails (the caller falls back to logfmt).
 */
int sk_logjson_format(char *out, size_t outlen, const char *ts, const char *level, const char *role,
                      int pid, int slot, const char *body);

#endif
