/*
 * sk_logjson - a logfmt body as JSON fields (see sk_logjson.h).
 *
 * The body comes from our own sk_log_* calls: `key=value` words separated by
 * single spaces, values either bare or "quoted".  A quoted value may itself
 * hold quotes (a PostgreSQL error message), so it ends at the quote that is
 * followed by the end of the line or by ` key=`; that is what sk_log's
 * callers write.
 */
#include "sk_logjson.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *const header_keys[] = {"ts", "level", "role", "pid", "worker"};

static int is_key_char(char c)
{
    return islower((unsigned char)c) || isdigit((unsigned char)c) || c == '_' || c == '.';
}

/* Length of the `key` in "key=..." at p, 0 when p does not start a pair. */
static size_t key_len(const char *p)
{
    size_t n = 0;

    if (!islower((unsigned char)p[0]) && p[0] != '_')
        return 0;
    while (is_key_char(p[n]))
        n++;
    return p[n] == '=' ? n : 0;
}

/* End of a quoted value whose opening quote is at q: the closing quote. */
static const char *quoted_end(const char *q)
{
    const char *p = q + 1, *last = NULL;

    for (; *p != '\0'; p++) {
        if (*p != '"')
            continue;
        last = p;
        if (p[1] == '\0' || (p[1] == ' ' && key_len(p + 2) > 0))
            return p;
    }
    /* No quote followed by a pair: the last one closes (or none: to the end). */
    return last;
}

static int is_header_key(const char *k)
{
    for (size_t i = 0; i < sizeof(header_keys) / sizeof(header_keys[0]); i++) {
        if (strcmp(k, header_keys[i]) == 0)
            return 1;
    }
    return 0;
}

/* A string value; bytes that are not UTF-8 (a payload in an error) become '?'. */
static json_t *str_value(const char *v, size_t len)
{
    json_t *j = json_stringn(v, len);
    char *copy;

    if (j != NULL)
        return j;
    copy = malloc(len + 1);
    if (copy == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)v[i] >= 0x80 || v[i] == '\0' ? '?' : v[i];
    j = json_stringn(copy, len);
    free(copy);
    return j;
}

/* A bare integer that fits in a JSON integer, else a string. */
static json_t *bare_value(const char *v, size_t len)
{
    char buf[32], *end;
    long long n;
    size_t i = 0;

    if (len > 0 && len < sizeof(buf) && (v[0] == '-' ? len > 1 : 1)) {
        for (i = v[0] == '-' ? 1 : 0; i < len && isdigit((unsigned char)v[i]); i++)
            ;
    }
    /* "007" stays a string: leading zeros would not survive a round trip */
    if (len > 0 && i == len && !(len > 1 && v[v[0] == '-' ? 1 : 0] == '0')) {
        memcpy(buf, v, len);
        buf[len] = '\0';
        errno = 0;
        n = strtoll(buf, &end, 10);
        if (errno == 0 && *end == '\0')
            return json_integer(n);
    }
    return str_value(v, len);
}

static int add_field(json_t *obj, const char *key, size_t klen, json_t *val)
{
    char name[80];

    if (val == NULL)
        return -1;
    if (klen > 60)
        klen = 60;
    memcpy(name, key, klen);
    name[klen] = '\0';
    if (strcmp(name, "run") == 0)
        snprintf(name, sizeof(name), "run_id");
    else if (is_header_key(name)) {
        memmove(name + 4, name, klen + 1);
        memcpy(name, "arg_", 4);
    }
    return json_object_set_new(obj, name, val);
}

static int parse_body(json_t *obj, const char *body)
{
    const char *p = body, *v, *end;
    size_t klen;
    char *msg = NULL;
    size_t msglen = 0;
    int rc = -1;

    msg = malloc(strlen(body) + 1);
    if (msg == NULL)
        return -1;
    while (*p != '\0') {
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        klen = key_len(p);
        if (klen == 0) {
            /* free text: one word into msg */
            end = p + strcspn(p, " ");
            if (msglen > 0)
                msg[msglen++] = ' ';
            memcpy(msg + msglen, p, (size_t)(end - p));
            msglen += (size_t)(end - p);
            p = end;
            continue;
        }
        v = p + klen + 1;
        if (*v == '"') {
            end = quoted_end(v);
            if (end == NULL)
                end = v + strlen(v);
            if (add_field(obj, p, klen, str_value(v + 1, (size_t)(end - v - 1))) != 0)
                goto done;
            p = *end == '"' ? end + 1 : end;
        } else {
            end = v + strcspn(v, " ");
            if (add_field(obj, p, klen, bare_value(v, (size_t)(end - v))) != 0)
                goto done;
            p = end;
        }
    }
    if (msglen > 0 && json_object_set_new(obj, "msg", str_value(msg, msglen)) != 0)
        goto done;
    rc = 0;
done:
    free(msg);
    return rc;
}

int sk_logjson_format(char *out, size_t outlen, const char *ts, const char *level, const char *role,
                      int pid, int slot, const char *body)
{
    json_t *obj;
    size_t n;
    int rc = -1;

    if (outlen < 4)
        return -1;
    obj = json_object();
    if (obj == NULL)
        return -1;
    if (json_object_set_new(obj, "ts", json_string(ts)) != 0 ||
        json_object_set_new(obj, "level", json_string(level)) != 0 ||
        json_object_set_new(obj, "role", json_string(role)) != 0 ||
        json_object_set_new(obj, "pid", json_integer(pid)) != 0)
        goto done;
    if (slot >= 0 && json_object_set_new(obj, "worker", json_integer(slot)) != 0)
        goto done;
    if (parse_body(obj, body) != 0)
        goto done;
    /* JSON_PRESERVE_ORDER: the header first, then the pairs as written */
    n = json_dumpb(obj, out, outlen - 2, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (n == 0 || n > outlen - 2)
        goto done;
    out[n++] = '\n';
    out[n] = '\0';
    rc = (int)n;
done:
    json_decref(obj);
    return rc;
}
