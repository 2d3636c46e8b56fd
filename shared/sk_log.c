#include "sk_log.h"

#include "sk_logjson.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int sk_log_level = SK_LOG_INFO;
int sk_log_format = SK_LOG_LOGFMT;

static const char *log_role = "stepkit";
static int log_slot = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const format_names[] = {"logfmt", "json"};

void sk_log_set_role(const char *role, int slot)
{
    log_role = role;
    log_slot = slot;
}

int sk_log_parse_level(const char *s)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
        if (strcmp(s, level_names[i]) == 0)
            return i;
    }
    return -1;
}

int sk_log_parse_format(const char *s)
{
    for (int i = 0; i < (int)(sizeof(format_names) / sizeof(format_names[0])); i++) {
        if (strcmp(s, format_names[i]) == 0)
            return i;
    }
    return -1;
}

/* One JSON line; -1 when it cannot be built (the caller writes logfmt instead). */
static int write_json(sk_log_level_t level, const char *ts, const char *body)
{
    char out[4096]; /* the 2 KB logfmt line, escaped, fits */
    int n = sk_logjson_format(out, sizeof(out), ts, level_names[level], log_role, (int)getpid(),
                              log_slot, body);
    if (n <= 0)
        return -1;
    ssize_t rc = write(STDERR_FILENO, out, (size_t)n);
    (void)rc;
    return 0;
}

void sk_log_write(sk_log_level_t level, const char *fmt, ...)
{
    char buf[2048];
    struct timespec ts;
    struct tm tm;
    size_t n, body;
    int w;
    va_list ap;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, sizeof(buf), "ts=%Y-%m-%dT%H:%M:%S", &tm);
    if (log_slot >= 0)
        w = snprintf(buf + n, sizeof(buf) - n, ".%03ldZ level=%s role=%s pid=%d slot=%d ",
                     ts.tv_nsec / 1000000, level_names[level], log_role, (int)getpid(), log_slot);
    else
        w = snprintf(buf + n, sizeof(buf) - n, ".%03ldZ level=%s role=%s pid=%d ",
                     ts.tv_nsec / 1000000, level_names[level], log_role, (int)getpid());
    if (w > 0)
        n += (size_t)w;
    if (n >= sizeof(buf) - 2)
        n = sizeof(buf) - 2;
    body = n;
    va_start(ap, fmt);
    w = vsnprintf(buf + n, sizeof(buf) - n - 1, fmt, ap);
    va_end(ap);
    if (w > 0)
        n += (size_t)w;
    if (n > sizeof(buf) - 2)
        n = sizeof(buf) - 2; /* truncated: still one line */
    /* One value may carry a newline (an error message): keep one line per event. */
    for (size_t i = 0; i < n; i++) {
        if (buf[i] == '\n' || buf[i] == '\r')
            buf[i] = ' ';
    }
    if (sk_log_format == SK_LOG_JSON) {
        char ts_text[48];
        /* "ts=2026-11-25T01:02:03" + ".456Z" */
        snprintf(ts_text, sizeof(ts_text), "%.19s.%03dZ", buf + 3,
                 (int)(ts.tv_nsec / 1000000) % 1000);
        buf[n] = '\0';
        if (write_json(level, ts_text, buf + body) == 0)
            return;
    }
    buf[n++] = '\n';
    ssize_t rc = write(STDERR_FILENO, buf, n);
    (void)rc; /* nowhere to report a failed log write */
}

void sk_log_mask_url(const char *url, char *out, size_t outlen)
{
    const char *scheme, *at, *colon, *p;
    size_t len;

    if (outlen == 0)
        return;
    snprintf(out, outlen, "%s", url ? url : "");
    if (url == NULL)
        return;
    /* URI form: scheme://user:password@host... */
    scheme = strstr(url, "://");
    if (scheme != NULL) {
        at = strchr(scheme + 3, '@');
        colon = strchr(scheme + 3, ':');
        if (at != NULL && colon != NULL && colon < at) {
            len = (size_t)(colon - url) + 1;
            snprintf(out, outlen, "%.*s***%s", (int)len, url, at);
        }
        return;
    }
    /* key=value form: password=secret (possibly quoted) */
    p = strstr(url, "password");
    if (p != NULL) {
        const char *eq = strchr(p, '=');
        const char *end;
        if (eq == NULL)
            return;
        eq++;
        while (*eq == ' ')
            eq++;
        if (*eq == '\'') {
            end = eq + 1;
            while (*end && !(*end == '\'' && end[-1] != '\\'))
                end++;
            if (*end)
                end++;
        } else {
            end = eq;
            while (*end && *end != ' ')
                end++;
        }
        snprintf(out, outlen, "%.*s***%s", (int)(eq - url), url, end);
    }
}
