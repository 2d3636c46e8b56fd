/*
 * sk_log - one structured line per event on stderr:
 *   ts=2026-11-25T01:02:03.456Z level=info role=worker pid=42 slot=1 event=claim run=... k=v
 * Each line is formatted into one buffer and written with one write(2), so
 * lines from many processes never interleave.  Never log secrets: pass
 * connection strings through sk_log_mask_url() first.
 */
#ifndef SK_LOG_H
#define SK_LOG_H

#include <stddef.h>

typedef enum { SK_LOG_ERROR = 0, SK_LOG_WARN, SK_LOG_INFO, SK_LOG_DEBUG } sk_log_level_t;

typedef enum { SK_LOG_LOGFMT = 0, SK_LOG_JSON } sk_log_format_t;

extern int sk_log_level;  /* lines above this level are skipped */
extern int sk_log_format; /* sk_log_format_t: key=value text or JSON lines (sk_logjson) */

/* Who we are: "master", "worker" (with its slot), "cli".  slot < 0: none. */
void sk_log_set_role(const char *role, int slot);
/* Parse "error|warn|info|debug"; -1 when unknown. */
int sk_log_parse_level(const char *s);
/* Parse "logfmt|json"; -1 when unknown. */
int sk_log_parse_format(const char *s);
/* `fmt` continues the line with "event=... k=v" pairs. */
void sk_log_write(sk_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Copy `url` into `out` with any password replaced by "***". */
void sk_log_mask_url(const char *url, char *out, size_t outlen);

#define sk_log(level, ...)                                                                         \
    do {                                                                                           \
        if ((int)(level) <= sk_log_level)                                                          \
            sk_log_write((level), __VA_ARGS__);                                                    \
    } while (0)
#define sk_log_error(...) sk_log(SK_LOG_ERROR, __VA_ARGS__)
#define sk_log_warn(...)  sk_log(SK_LOG_WARN, __VA_ARGS__)
#define sk_log_info(...)  sk_log(SK_LOG_INFO, __VA_ARGS__)
#define sk_log_debug(...) sk_log(SK_LOG_DEBUG, __VA_ARGS__)

#endif
