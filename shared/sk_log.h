/*
 * sk_log - one structured line per event on stderr:
 *   ts=2026-11-25T01:02:03.456Z level=info role=worker pid=42 slot=1 event=claim run=... k=v
 * Each line is formatted into one buffer and written with one write(2), so
 * lines from many processes never interleave.  Every line goes through
 * sk_log_mask(), so no password gets out even when a caller passes one.
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
/*
 * Copy `in` into `out` (always NUL-terminated, truncated to fit) with every
 * password replaced by "***": the password of URL userinfo
 * (scheme://user:pw@host), the value of any key ending in "password" (any
 * case, percent-encoded or not) in URL query strings (?password=x&...) and
 * in key=value connection strings (password=x, password = 'x y'), and the
 * secrets remembered by sk_log_add_secrets().  Every log line goes through
 * it; call it on any text printed outside the log (errors on stderr).
 * Returns the length written.
 */
size_t sk_log_mask(const char *in, char *out, size_t outlen);
/* sk_log_mask for a connection string (kept for its callers). */
void sk_log_mask_url(const char *url, char *out, size_t outlen);
/* Remember the passwords of a connection string (URL or key=value, even a
 * malformed one), raw and percent-decoded, so that they are masked wherever
 * they appear: libpq echoes bad tokens alone ('invalid percent-encoded
 * token: "..."').  Call once, before forking.  Up to 4 values are kept. */
void sk_log_add_secrets(const char *conninfo);
/* Forget them (tests). */
void sk_log_forget_secrets(void);

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
