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
    char buf[2048], line[2048];
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
    buf[n] = '\0';
    /* No secret leaves in a log line, whatever the caller passed: the body
     * is masked (the header is ours and holds none). */
    memcpy(line, buf, body);
    n = body + sk_log_mask(buf + body, line + body, sizeof(line) - 1 - body);
    line[n] = '\0';
    if (sk_log_format == SK_LOG_JSON) {
        char ts_text[48];
        /* "ts=2026-11-25T01:02:03" + ".456Z" */
        snprintf(ts_text, sizeof(ts_text), "%.19s.%03dZ", line + 3,
                 (int)(ts.tv_nsec / 1000000) % 1000);
        if (write_json(level, ts_text, line + body) == 0)
            return;
    }
    line[n++] = '\n';
    ssize_t rc = write(STDERR_FILENO, line, n);
    (void)rc; /* nowhere to report a failed log write */
}

/* ---- secrets ------------------------------------------------------------------------ */

#define SECRETS_MAX    4
#define SECRET_LEN_MAX 1024
#define MASK           "***"
/* Known secrets shorter than this are masked only where quoted ("pw"): a
 * two-letter password must not blank every "ab" of a line. */
#define SECRET_BARE_MIN 4

/* Passwords taken from the connection string at start-up (sk_log_add_secrets):
 * written before any fork, read by every line; never freed. */
static char secrets[SECRETS_MAX][SECRET_LEN_MAX];
static size_t secret_lens[SECRETS_MAX];
static int n_secrets;

typedef struct {
    char *out;
    size_t cap, n;
    int record; /* sk_log_add_secrets: remember each masked value */
} mask_out_t;

static void put(mask_out_t *o, const char *s, size_t len)
{
    for (size_t i = 0; i < len && o->n + 1 < o->cap; i++)
        o->out[o->n++] = s[i];
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode s[0..len) into dst (at most dstlen-1 bytes); its length. */
static size_t pct_decode(const char *s, size_t len, char *dst, size_t dstlen)
{
    size_t n = 0;

    for (size_t i = 0; i < len && n + 1 < dstlen; i++) {
        if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            dst[n++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            dst[n++] = s[i];
        }
    }
    dst[n] = '\0';
    return n;
}

static void remember(const char *s, size_t len)
{
    char dec[SECRET_LEN_MAX];
    size_t dlen;

    if (len == 0 || len >= SECRET_LEN_MAX)
        return;
    for (int i = 0; i < n_secrets; i++) {
        if (secret_lens[i] == len && memcmp(secrets[i], s, len) == 0)
            return;
    }
    if (n_secrets < SECRETS_MAX) {
        memcpy(secrets[n_secrets], s, len);
        secret_lens[n_secrets++] = len;
    }
    /* Messages may echo either form: the raw token or the decoded value. */
    dlen = pct_decode(s, len, dec, sizeof(dec));
    if (dlen != len)
        remember(dec, dlen);
}

static void mask_span(mask_out_t *o, const char *s, size_t len)
{
    if (o->record)
        remember(s, len);
    put(o, MASK, strlen(MASK));
}

/* A character that cannot be part of a key in `key=value` text. */
static int key_stop(char c)
{
    return c == '\0' || strchr(" \t\r\n?&;\"'=(),{}[]<>", c) != NULL;
}

/* Whether the key ending just before in[eq] (spaces allowed before the '=')
 * names a password: "password", "sslpassword", "PGPASSWORD", percent-encoded
 * or not.  *uri: the key follows '?' or '&' (a URL query parameter). */
static int password_key(const char *in, size_t eq, int *uri)
{
    size_t end = eq, start;
    char key[64];
    size_t n;
    static const char want[] = "password";

    while (end > 0 && (in[end - 1] == ' ' || in[end - 1] == '\t'))
        end--;
    start = end;
    while (start > 0 && !key_stop(in[start - 1]))
        start--;
    if (start == end || end - start >= sizeof(key))
        return 0;
    n = pct_decode(in + start, end - start, key, sizeof(key));
    if (n < sizeof(want) - 1)
        return 0;
    for (size_t i = 0; i < sizeof(want) - 1; i++) {
        if ((key[n - (sizeof(want) - 1) + i] | 0x20) != want[i])
            return 0;
    }
    *uri = start > 0 && (in[start - 1] == '?' || in[start - 1] == '&');
    return 1;
}

/* The value after a password key's '=' at in[i]: returns the index after it. */
static size_t mask_value(mask_out_t *o, const char *in, size_t i, int uri)
{
    size_t j;

    if (!uri) {
        while (in[i] == ' ' || in[i] == '\t')
            put(o, &in[i++], 1);
    }
    if (!uri && in[i] == '\'') {
        /* A quoted conninfo value: backslash escapes, up to the closing quote. */
        char val[SECRET_LEN_MAX];
        size_t n = 0;
        for (j = i + 1; in[j] != '\0' && in[j] != '\''; j++) {
            if (in[j] == '\\' && in[j + 1] != '\0')
                j++;
            if (n + 1 < sizeof(val))
                val[n++] = in[j];
        }
        if (o->record)
            remember(val, n);
        put(o, "'" MASK "'", strlen(MASK) + 2);
        return in[j] == '\'' ? j + 1 : j;
    }
    for (j = i; in[j] != '\0'; j++) {
        char c = in[j];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            break;
        if (uri && (c == '&' || c == '#' || c == '\'' || c == '"'))
            break;
        /* A double quote closing a log field ends the value; one inside it does not. */
        if (!uri && c == '"' && (in[j + 1] == '\0' || in[j + 1] == ' '))
            break;
        if (!uri && c == '\\' && in[j + 1] != '\0')
            j++;
    }
    if (j > i)
        mask_span(o, in + i, j - i);
    return j;
}

/* A URL's authority after "://" at in[i]: mask the password of user:password@. */
static size_t mask_userinfo(mask_out_t *o, const char *in, size_t i)
{
    size_t end = i, at = 0, colon = 0;
    int have_at = 0;

    while (in[end] != '\0' && strchr("/?#\"' \t\r\n", in[end]) == NULL)
        end++;
    for (size_t j = i; j < end; j++) {
        if (in[j] == '@') {
            at = j; /* the last one: a password may hold an unencoded '@' */
            have_at = 1;
        }
    }
    if (!have_at)
        return i;
    for (colon = i; colon < at && in[colon] != ':'; colon++)
        ;
    if (colon == at)
        return i; /* user@host: no password */
    put(o, in + i, colon + 1 - i);
    mask_span(o, in + colon + 1, at - colon - 1);
    return at;
}

static void mask_text(const char *in, mask_out_t *o)
{
    size_t i = 0;

    while (in[i] != '\0') {
        int uri, hit = 0;

        for (int s = 0; s < n_secrets && !o->record; s++) {
            size_t len = secret_lens[s];
            if (strncmp(in + i, secrets[s], len) == 0 &&
                (len >= SECRET_BARE_MIN || (i > 0 && in[i - 1] == '"' && in[i + len] == '"'))) {
                put(o, MASK, strlen(MASK));
                i += len;
                hit = 1;
                break;
            }
        }
        if (hit)
            continue;
        if (in[i] == ':' && in[i + 1] == '/' && in[i + 2] == '/') {
            put(o, in + i, 3);
            i = mask_userinfo(o, in, i + 3);
            continue;
        }
        if (in[i] == '=' && password_key(in, i, &uri)) {
            put(o, "=", 1);
            i = mask_value(o, in, i + 1, uri);
            continue;
        }
        put(o, in + i, 1);
        i++;
    }
}

size_t sk_log_mask(const char *in, char *out, size_t outlen)
{
    mask_out_t o = {.out = out, .cap = outlen};

    if (outlen == 0)
        return 0;
    mask_text(in ? in : "", &o);
    out[o.n] = '\0';
    return o.n;
}

void sk_log_add_secrets(const char *conninfo)
{
    char scratch[64];
    mask_out_t o = {.out = scratch, .cap = sizeof(scratch), .record = 1};

    if (conninfo != NULL)
        mask_text(conninfo, &o);
}

void sk_log_forget_secrets(void)
{
    n_secrets = 0;
}

void sk_log_mask_url(const char *url, char *out, size_t outlen)
{
    sk_log_mask(url, out, outlen);
}
