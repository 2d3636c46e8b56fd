/*
 * sk_ui_rules - the dashboard's pure parts (see sk_ui.h): the POST rules,
 * payload limits, the queue history.  No I/O, no threads: unit-tested.
 */
#include "sk_ui.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#define PREVIEW_CHARS 1000
#define HOUR_MS       3600000LL

/* ---- POST rules ---------------------------------------------------------------------------- */

static int starts_with(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Origin "scheme://host[:port]" names the Host header's authority. */
static int origin_matches(const char *origin, const char *host)
{
    const char *rest;

    if (starts_with(origin, "http://"))
        rest = origin + 7;
    else if (starts_with(origin, "https://"))
        rest = origin + 8;
    else
        return 0;
    return strcasecmp(rest, host) == 0;
}

unsigned sk_ui_post_check(const sk_ui_post_in_t *in, const char *token, char *reason, size_t len)
{
    const char *auth = in->authorization;
    size_t tlen = strlen(token);

    if (tlen == 0) {
        snprintf(reason, len, "read-only dashboard: the master runs without --ui-token-file");
        return 403;
    }
    if (in->host == NULL || in->host[0] == '\0') {
        snprintf(reason, len, "a Host header is required");
        return 400;
    }
    if (in->sec_fetch_site != NULL && strcmp(in->sec_fetch_site, "same-origin") != 0 &&
        strcmp(in->sec_fetch_site, "none") != 0) {
        snprintf(reason, len, "cross-site request refused (Sec-Fetch-Site: %.40s)",
                 in->sec_fetch_site);
        return 403;
    }
    if (in->origin != NULL && !origin_matches(in->origin, in->host)) {
        snprintf(reason, len, "cross-site request refused (Origin does not match Host)");
        return 403;
    }
    if (in->content_type == NULL || !starts_with(in->content_type, "application/json")) {
        snprintf(reason, len, "the body must be application/json");
        return 415;
    }
    if (auth == NULL || !starts_with(auth, "Bearer ") || strlen(auth + 7) != tlen ||
        CRYPTO_memcmp(auth + 7, token, tlen) != 0) {
        snprintf(reason, len, "a valid token is required (Authorization: Bearer <token>)");
        return 401;
    }
    reason[0] = '\0';
    return 0;
}

/* ---- the Host header ---------------------------------------------------------------------- */

/* The host part of a Host header ("name", "name:port", "[v6]:port") into
 * out, without a trailing dot; 1 when it is an IP literal. */
static int host_part(const char *host, char *out, size_t len)
{
    const char *end;
    size_t n;
    struct in_addr a4;

    if (host[0] == '[') {
        end = strchr(host, ']');
        n = end == NULL ? 0 : (size_t)(end - host - 1);
        snprintf(out, len, "%.*s", (int)n, host + 1);
        return end != NULL && n > 0; /* "[...]" is an IPv6 literal or nothing valid */
    }
    n = strcspn(host, ":");
    if (n > 0 && host[n - 1] == '.')
        n--;
    snprintf(out, len, "%.*s", (int)n, host);
    return inet_pton(AF_INET, out, &a4) == 1;
}

unsigned sk_ui_host_check(const char *host, const char *allowed, char *reason, size_t len)
{
    char name[256];
    const char *p = allowed;
    size_t n;

    if (host == NULL || host[0] == '\0' || strlen(host) >= sizeof(name)) {
        snprintf(reason, len, "a Host header is required");
        return 400;
    }
    if (host_part(host, name, sizeof(name)) || strcasecmp(name, "localhost") == 0 ||
        strcmp(allowed, "*") == 0)
        goto allowed;
    while (*p != '\0') {
        n = strcspn(p, ",");
        if (n == strlen(name) && strncasecmp(p, name, n) == 0)
            goto allowed;
        p += n + (p[n] == ',');
    }
    snprintf(reason, len,
             "the dashboard does not answer to host '%.80s' (add it to --ui-allowed-hosts)", name);
    return 403;
allowed:
    reason[0] = '\0';
    return 0;
}

/* ---- payload limits ---------------------------------------------------------------------------
 */

/* The value at obj[key], replaced by a marker when its JSON is over max bytes. */
static void limit_key(json_t *obj, const char *key, size_t max)
{
    json_t *v = json_object_get(obj, key), *mark, *inner;
    char *text;
    size_t n;

    if (v == NULL || json_is_null(v))
        return;
    text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (text == NULL)
        return;
    n = strlen(text);
    if (n > max) {
        /* Cut at a UTF-8 character boundary, so the preview stays valid text. */
        size_t cut = n < PREVIEW_CHARS ? n : PREVIEW_CHARS;
        while (cut > 0 && ((unsigned char)text[cut] & 0xC0) == 0x80)
            cut--;
        inner = json_object();
        json_object_set_new(inner, "bytes", json_integer((json_int_t)n));
        json_object_set_new(inner, "preview", json_stringn(text, cut));
        mark = json_object();
        json_object_set_new(mark, "_truncated", inner);
        json_object_set_new(obj, key, mark);
    }
    free(text);
}

void sk_ui_limit_run(json_t *run, size_t max, size_t max_steps)
{
    json_t *steps = json_object_get(run, "steps"), *retries = json_object_get(run, "retries");
    size_t i, k;
    json_t *s, *r;

    limit_key(json_object_get(run, "input"), "data", max);
    limit_key(run, "output", max);
    limit_key(run, "error", max);
    if (json_is_array(steps)) {
        size_t total = json_array_size(steps);
        while (json_array_size(steps) > max_steps)
            json_array_remove(steps, json_array_size(steps) - 1);
        if (total > max_steps)
            json_object_set_new(run, "steps_omitted",
                                json_integer((json_int_t)(total - max_steps)));
        json_array_foreach(steps, i, s)
        {
            limit_key(s, "output", max);
            limit_key(s, "error", max);
        }
    }
    if (json_is_array(retries)) {
        json_array_foreach(retries, i, r)
        {
            json_t *cleared = json_object_get(r, "cleared_steps");
            limit_key(r, "error", max);
            if (json_is_array(cleared)) {
                json_array_foreach(cleared, k, s) limit_key(s, "error", max);
            }
        }
    }
}

/* ---- the queue history ------------------------------------------------------------------------
 */

static int wf_index(sk_ui_hist_t *h, const char *name)
{
    for (int i = 0; i < h->n_wf; i++) {
        if (strcmp(h->wf[i], name) == 0)
            return i;
    }
    if (h->n_wf == SK_UI_HIST_WF || strlen(name) >= sizeof(h->wf[0]))
        return -1; /* followed workflows are full: this one is not charted */
    snprintf(h->wf[h->n_wf], sizeof(h->wf[0]), "%s", name);
    return h->n_wf++;
}

void sk_ui_hist_add(sk_ui_hist_t *h, int64_t unix_ms, const sk_ui_point_t *pts, int n,
                    const char *(*known)(size_t i))
{
    int slot = h->head;
    const char *name;

    if (known != NULL) {
        for (size_t i = 0; (name = known(i)) != NULL; i++)
            (void)wf_index(h, name);
    }
    h->t_ms[slot] = unix_ms;
    memset(h->ready[slot], 0, sizeof(h->ready[slot]));
    memset(h->oldest_s[slot], 0, sizeof(h->oldest_s[slot]));
    for (int i = 0; i < n; i++) {
        int k = wf_index(h, pts[i].workflow);
        if (k < 0)
            continue;
        h->ready[slot][k] = pts[i].ready > INT32_MAX ? INT32_MAX : (int32_t)pts[i].ready;
        h->oldest_s[slot][k] = (float)pts[i].oldest_s;
    }
    h->head = (slot + 1) % SK_UI_HIST_POINTS;
    if (h->count < SK_UI_HIST_POINTS)
        h->count++;
}

json_t *sk_ui_hist_json(const sk_ui_hist_t *h)
{
    json_t *root = json_object(), *t = json_array(), *series = json_array();
    json_t *ready[SK_UI_HIST_WF], *oldest[SK_UI_HIST_WF];
    int first = (h->head - h->count + SK_UI_HIST_POINTS) % SK_UI_HIST_POINTS;
    int64_t newest =
        h->count > 0 ? h->t_ms[(h->head - 1 + SK_UI_HIST_POINTS) % SK_UI_HIST_POINTS] : 0;

    for (int k = 0; k < h->n_wf; k++) {
        ready[k] = json_array();
        oldest[k] = json_array();
    }
    for (int i = 0; i < h->count; i++) {
        int slot = (first + i) % SK_UI_HIST_POINTS;
        if (h->t_ms[slot] < newest - HOUR_MS)
            continue;
        json_array_append_new(t, json_real((double)h->t_ms[slot] / 1000.0));
        for (int k = 0; k < h->n_wf; k++) {
            json_array_append_new(ready[k], json_integer(h->ready[slot][k]));
            json_array_append_new(oldest[k], json_real((double)h->oldest_s[slot][k]));
        }
    }
    for (int k = 0; k < h->n_wf; k++) {
        json_t *s = json_object();
        json_object_set_new(s, "workflow", json_string(h->wf[k]));
        json_object_set_new(s, "ready", ready[k]);
        json_object_set_new(s, "oldest_s", oldest[k]);
        json_array_append_new(series, s);
    }
    json_object_set_new(root, "t", t);
    json_object_set_new(root, "series", series);
    return root;
}
