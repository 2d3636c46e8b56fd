#include "sk_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int sk_log_level = SK_LOG_INFO;

static const char *log_role = "stepkit";
static int log_slot = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

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

void sk_log_write(sk_log_level_t level, const char *fmt, ...)
{
    char buf[2048];
    struct timespec ts;
    struct tm tm;
    size_t n;
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
