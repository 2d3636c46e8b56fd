/*
 * The dashboard's JSON API (--ui) on a real master: off by default, the
 * reads behind the pages (runs with filters and pages, one run with its
 * error chain, workflows), the rules of a POST (token, cross-site checks,
 * content type, body size), cancel and retry, read-only without a token
 * file, payload limits, and configuration errors.  Requests go through curl.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "itest.h"

#define TOKEN "it-token-0123456789abcdef"

typedef struct {
    int code;
    char *body;
    char *headers;
} resp_t;

static void resp_free(resp_t *r)
{
    free(r->body);
    free(r->headers);
}

/* One request through curl: method, path, extra headers (NULL-terminated,
 * may be NULL), body (NULL: none). */
static resp_t request(int port, const char *method, const char *path, const char *const *headers,
                      const char *body)
{
    char url[512], hfile[ITEST_PATH_MAX + 64], bfile[ITEST_PATH_MAX + 64],
        bodyarg[ITEST_PATH_MAX + 80];
    const char *argv[40];
    itest_cmd_t r;
    resp_t out = {0, NULL, NULL};
    int n = 0;
    char *nl;
    FILE *f;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    snprintf(hfile, sizeof(hfile), "%s/%s-ui-headers.txt", itest.logdir, itest.schema);
    argv[n++] = "curl";
    argv[n++] = "-s";
    argv[n++] = "-m";
    argv[n++] = "10";
    argv[n++] = "-D";
    argv[n++] = hfile;
    argv[n++] = "-X";
    argv[n++] = method;
    argv[n++] = "-w";
    argv[n++] = "\n%{http_code}";
    for (int i = 0; headers != NULL && headers[i] != NULL && n < 34; i++) {
        argv[n++] = "-H";
        argv[n++] = headers[i];
    }
    if (body != NULL) {
        snprintf(bfile, sizeof(bfile), "%s/%s-ui-body.txt", itest.logdir, itest.schema);
        f = fopen(bfile, "w");
        cr_assert_not_null(f);
        fputs(body, f);
        fclose(f);
        snprintf(bodyarg, sizeof(bodyarg), "@%s", bfile);
        argv[n++] = "--data-binary";
        argv[n++] = bodyarg;
    }
    argv[n++] = url;
    argv[n] = NULL;
    itest_run_cmd(argv, NULL, 20000, &r);
    nl = strrchr(r.out, '\n');
    cr_assert_not_null(nl, "curl output: %s", r.out);
    out.code = atoi(nl + 1);
    *nl = '\0';
    out.body = strdup(r.out);
    itest_cmd_free(&r);
    f = fopen(hfile, "r");
    if (f != NULL) {
        char buf[8192];
        size_t len = fread(buf, 1, sizeof(buf) - 1, f);
        buf[len] = '\0';
        fclose(f);
        out.headers = strdup(buf);
    } else {
        out.headers = strdup("");
    }
    return out;
}

static resp_t get(int port, const char *path)
{
    return request(port, "GET", path, NULL, NULL);
}

/* A POST as the page sends it: JSON, the token, same origin. */
static resp_t post_ok(int port, const char *path, const char *body)
{
    char origin[64];
    const char *h[] = {"Content-Type: application/json", "Authorization: Bearer " TOKEN, origin,
                       "Sec-Fetch-Site: same-origin", NULL};

    snprintf(origin, sizeof(origin), "Origin: http://127.0.0.1:%d", port);
    return request(port, "POST", path, h, body);
}

static const char *token_file(const char *token)
{
    static char path[ITEST_PATH_MAX + 64];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s-token", itest.logdir, itest.schema);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%s\n", token);
    fclose(f);
    return path;
}

/* A master with --http on a free port and --ui (token file or not). */
static itest_master_t *master_ui(int *port, int with_token)
{
    static char addr[64];
    itest_master_opts_t o = {.workers = 2};
    int k = 0;

    *port = itest_free_port();
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", *port);
    o.extra[k++] = "--http";
    o.extra[k++] = addr;
    o.extra[k++] = "--ui";
    if (with_token) {
        o.extra[k++] = "--ui-token-file";
        o.extra[k++] = token_file(TOKEN);
    }
    return itest_master_up(&o);
}

static const char *run_status(const char *id)
{
    static char st[32];
    char *s = itest_str("SELECT status FROM runs WHERE run_id = $1", id);

    snprintf(st, sizeof(st), "%s", s);
    free(s);
    return st;
}

static void wait_status(const char *id, const char *want)
{
    for (int i = 0; i < 300; i++) {
        if (strcmp(run_status(id), want) == 0)
            return;
        usleep(50000);
    }
    cr_assert_fail("run %s is %s, expected %s", id, run_status(id), want);
}

/* The waiting run's wait is recorded (its op is 'waiting'). */
static void wait_waiting(const char *id)
{
    for (int i = 0; i < 300; i++) {
        if (itest_long("SELECT count(*) FROM ops WHERE run_id = $1 AND status = 'waiting'", id) > 0)
            return;
        usleep(50000);
    }
    cr_assert_fail("run %s does not wait", id);
}

Test(ui, off_unless_enabled, ITEST_FIXTURES)
{
    static char addr[64];
    itest_master_opts_t o = {.workers = 1};
    int port = itest_free_port();
    itest_master_t *m;
    resp_t r;

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    o.extra[0] = "--http";
    o.extra[1] = addr;
    m = itest_master_up(&o);
    for (int i = 0; i < 100 && (r = get(port, "/livez")).code != 200; i++) {
        resp_free(&r);
        usleep(100000);
    }
    resp_free(&r);
    r = get(port, "/ui/");
    cr_assert_eq(r.code, 404, "no dashboard without --ui: %d", r.code);
    resp_free(&r);
    r = get(port, "/ui/api/runs");
    cr_assert_eq(r.code, 404);
    resp_free(&r);
    cr_assert_eq(itest_log_count(m, "event=ui_enabled"), 0);
    itest_finish();
}

Test(ui, pages_and_reads, ITEST_FIXTURES)
{
    int port;
    itest_master_t *m = master_ui(&port, 1);
    char ok_id[SK_UUID_LEN], failed_id[SK_UUID_LEN], wait_id[SK_UUID_LEN], path[256];
    json_t *j, *runs;
    resp_t r;

    (void)m;
    itest_start("two-steps", "{}", ok_id);
    itest_start("exhausted", "{}", failed_id);
    itest_start("runs-child", "{\"signal\": \"ui-sig\"}", wait_id);
    wait_status(ok_id, "completed");
    wait_status(failed_id, "failed");
    wait_waiting(wait_id);

    /* The page and its assets, with the security headers. */
    r = get(port, "/ui/runs/"
                  "00000000-0000-0000-0000-000000000000");
    cr_assert_eq(r.code, 200);
    cr_assert(strstr(r.body, "<script src=\"/ui/assets/app.js\"") != NULL);
    cr_assert(strstr(r.headers, "Content-Security-Policy: default-src 'none'; script-src 'self'") !=
                  NULL,
              "%s", r.headers);
    cr_assert(strstr(r.headers, "X-Frame-Options: DENY") != NULL);
    cr_assert(strstr(r.headers, "X-Content-Type-Options: nosniff") != NULL);
    resp_free(&r);
    r = get(port, "/ui/assets/app.js");
    cr_assert_eq(r.code, 200);
    cr_assert(strstr(r.headers, "Content-Type: text/javascript") != NULL);
    resp_free(&r);
    r = get(port, "/ui/assets/uPlot.iife.min.js");
    cr_assert_eq(r.code, 200);
    resp_free(&r);
    r = get(port, "/ui/assets/nope.js");
    cr_assert_eq(r.code, 404);
    resp_free(&r);
    r = get(port, "/ui");
    cr_assert_eq(r.code, 302);
    cr_assert(strstr(r.headers, "Location: /ui/") != NULL);
    resp_free(&r);

    r = get(port, "/ui/api/config");
    cr_assert_eq(r.code, 200);
    j = itest_parse(r.body);
    cr_assert(json_is_true(json_object_get(j, "writable")));
    json_decref(j);
    resp_free(&r);

    /* Newest first; filters; keyset pages. */
    r = get(port, "/ui/api/runs");
    cr_assert_eq(r.code, 200, "%s", r.body);
    j = itest_parse(r.body);
    runs = json_object_get(j, "runs");
    cr_assert_eq(json_array_size(runs), 3);
    cr_assert_str_eq(itest_jstr(j, "runs.0.run_id"), wait_id);
    cr_assert_str_eq(itest_jstr(j, "runs.0.status"), "waiting");
    cr_assert_str_eq(itest_jstr(j, "runs.2.run_id"), ok_id);
    cr_assert(json_is_null(json_object_get(j, "next")));
    json_decref(j);
    resp_free(&r);
    r = get(port, "/ui/api/runs?status=failed");
    j = itest_parse(r.body);
    cr_assert_eq(json_array_size(json_object_get(j, "runs")), 1);
    cr_assert_str_eq(itest_jstr(j, "runs.0.run_id"), failed_id);
    json_decref(j);
    resp_free(&r);
    r = get(port, "/ui/api/runs?workflow=two-steps");
    j = itest_parse(r.body);
    cr_assert_eq(json_array_size(json_object_get(j, "runs")), 1);
    cr_assert_str_eq(itest_jstr(j, "runs.0.status"), "completed");
    json_decref(j);
    resp_free(&r);
    r = get(port, "/ui/api/runs?limit=2");
    j = itest_parse(r.body);
    cr_assert_eq(json_array_size(json_object_get(j, "runs")), 2);
    cr_assert_not_null(itest_jstr(j, "next"), "a full page has a next cursor");
    snprintf(path, sizeof(path), "/ui/api/runs?limit=2&after=%s", itest_jstr(j, "next"));
    json_decref(j);
    resp_free(&r);
    r = get(port, path);
    j = itest_parse(r.body);
    cr_assert_eq(json_array_size(json_object_get(j, "runs")), 1);
    cr_assert_str_eq(itest_jstr(j, "runs.0.run_id"), ok_id);
    json_decref(j);
    resp_free(&r);

    /* Bad arguments: 400 with a message, never a database error. */
    r = get(port, "/ui/api/runs?status=bogus");
    cr_assert_eq(r.code, 400);
    cr_assert(strstr(r.body, "status") != NULL);
    resp_free(&r);
    r = get(port, "/ui/api/runs?since=yesterday-ish");
    cr_assert_eq(r.code, 400, "%d %s", r.code, r.body);
    resp_free(&r);
    r = get(port, "/ui/api/runs?limit=0");
    cr_assert_eq(r.code, 400);
    resp_free(&r);
    r = get(port, "/ui/api/runs?after=abc");
    cr_assert_eq(r.code, 400, "%d %s", r.code, r.body);
    resp_free(&r);

    /* One run: the error with its cause chain, the steps. */
    snprintf(path, sizeof(path), "/ui/api/runs/%s", failed_id);
    r = get(port, path);
    cr_assert_eq(r.code, 200, "%s", r.body);
    j = itest_parse(r.body);
    cr_assert_str_eq(itest_jstr(j, "status"), "failed");
    cr_assert_str_eq(itest_jstr(j, "error.name"), "FooError");
    cr_assert_str_eq(itest_jstr(j, "error.message"), "oh no");
    cr_assert_str_eq(itest_jstr(j, "error.cause.name"), "BarError");
    cr_assert_gt(json_array_size(json_object_get(j, "steps")), 0);
    json_decref(j);
    resp_free(&r);
    snprintf(path, sizeof(path), "/ui/api/runs/%s", wait_id);
    r = get(port, path);
    j = itest_parse(r.body);
    cr_assert_str_eq(itest_jstr(j, "steps.1.waiting_for.signal"), "ui-sig", "%s", r.body);
    json_decref(j);
    resp_free(&r);
    r = get(port, "/ui/api/runs/00000000-0000-0000-0000-000000000000");
    cr_assert_eq(r.code, 404, "%d %s", r.code, r.body);
    resp_free(&r);
    r = get(port, "/ui/api/runs/not-a-uuid");
    cr_assert_eq(r.code, 404);
    resp_free(&r);
    r = get(port, "/ui/api/nothing");
    cr_assert_eq(r.code, 404);
    resp_free(&r);

    /* Workflows: counts from run_stats, triggers. */
    r = get(port, "/ui/api/workflows");
    cr_assert_eq(r.code, 200, "%s", r.body);
    j = itest_parse(r.body);
    {
        json_t *wfs = json_object_get(j, "workflows"), *w;
        size_t i;
        int seen = 0;
        json_array_foreach(wfs, i, w)
        {
            const char *name = json_string_value(json_object_get(w, "workflow"));
            if (strcmp(name, "exhausted") == 0) {
                cr_assert_eq(json_integer_value(json_object_get(w, "failed_1h")), 1);
                cr_assert(json_is_array(json_object_get(w, "events")));
                cr_assert(json_is_array(json_object_get(w, "cron")));
                seen++;
            }
            if (strcmp(name, "runs-child") == 0) {
                cr_assert_eq(json_integer_value(json_object_get(w, "waiting")), 1);
                seen++;
            }
        }
        cr_assert_eq(seen, 2);
    }
    json_decref(j);
    resp_free(&r);

    /* The queue history answers (it fills every 5 s). */
    r = get(port, "/ui/api/queue");
    cr_assert_eq(r.code, 200);
    j = itest_parse(r.body);
    cr_assert(json_is_array(json_object_get(j, "t")));
    cr_assert_eq(json_integer_value(json_object_get(j, "interval_s")), 5);
    json_decref(j);
    resp_free(&r);
    itest_finish();
}

Test(ui, token_and_cross_site_rules, ITEST_FIXTURES)
{
    int port;
    itest_master_t *m = master_ui(&port, 1);
    char id[SK_UUID_LEN], path[256], origin[64], big[6000];
    json_t *j;
    resp_t r;

    itest_start("runs-child", "{\"signal\": \"ui-rules\"}", id);
    wait_waiting(id);
    snprintf(path, sizeof(path), "/ui/api/runs/%s/cancel", id);
    snprintf(origin, sizeof(origin), "Origin: http://127.0.0.1:%d", port);

    {
        const char *none[] = {"Content-Type: application/json", NULL};
        r = request(port, "POST", path, none, "{}");
        cr_assert_eq(r.code, 401, "no token: %d %s", r.code, r.body);
        resp_free(&r);
    }
    {
        const char *wrong[] = {"Content-Type: application/json",
                               "Authorization: Bearer it-token-0123456789abcdeX", NULL};
        r = request(port, "POST", path, wrong, "{}");
        cr_assert_eq(r.code, 401, "wrong token: %d", r.code);
        resp_free(&r);
    }
    {
        const char *prefix[] = {"Content-Type: application/json",
                                "Authorization: Bearer it-token-0123456789abcde", NULL};
        r = request(port, "POST", path, prefix, "{}");
        cr_assert_eq(r.code, 401, "a prefix of the token: %d", r.code);
        resp_free(&r);
    }
    {
        const char *evil[] = {"Content-Type: application/json", "Authorization: Bearer " TOKEN,
                              "Origin: http://evil.example", NULL};
        r = request(port, "POST", path, evil, "{}");
        cr_assert_eq(r.code, 403, "another origin: %d", r.code);
        cr_assert(strstr(r.body, "cross-site") != NULL);
        resp_free(&r);
    }
    {
        const char *cross[] = {"Content-Type: application/json", "Authorization: Bearer " TOKEN,
                               "Sec-Fetch-Site: cross-site", NULL};
        r = request(port, "POST", path, cross, "{}");
        cr_assert_eq(r.code, 403, "Sec-Fetch-Site cross-site: %d", r.code);
        resp_free(&r);
    }
    {
        const char *sibling[] = {"Content-Type: application/json", "Authorization: Bearer " TOKEN,
                                 "Sec-Fetch-Site: same-site", NULL};
        r = request(port, "POST", path, sibling, "{}");
        cr_assert_eq(r.code, 403, "Sec-Fetch-Site same-site: %d", r.code);
        resp_free(&r);
    }
    {
        /* What an HTML form can send: refused even with the token. */
        const char *form[] = {"Content-Type: application/x-www-form-urlencoded",
                              "Authorization: Bearer " TOKEN, origin, NULL};
        r = request(port, "POST", path, form, "reason=x");
        cr_assert_eq(r.code, 415, "form post: %d", r.code);
        resp_free(&r);
    }
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memcpy(big, "{\"reason\":\"", 11);
    r = post_ok(port, path, big);
    cr_assert_eq(r.code, 413, "a 6 KB body: %d", r.code);
    resp_free(&r);
    r = post_ok(port, path, "[1,2]");
    cr_assert_eq(r.code, 400, "not an object: %d", r.code);
    resp_free(&r);
    r = request(port, "DELETE", path, NULL, NULL);
    cr_assert_eq(r.code, 405);
    resp_free(&r);
    snprintf(big, sizeof(big), "/ui/api/runs/%s", id);
    r = request(port, "GET", big, NULL, NULL);
    cr_assert_eq(r.code, 200);
    resp_free(&r);
    cr_assert_str_eq(run_status(id), "pending", "refused requests changed nothing");
    cr_assert_geq(itest_log_count(m, "event=ui_refused"), 6);

    /* The page's request: cancelled, with the reason. */
    r = post_ok(port, path, "{\"reason\": \"from the <dashboard>\"}");
    cr_assert_eq(r.code, 200, "%d %s", r.code, r.body);
    j = itest_parse(r.body);
    cr_assert_eq(json_integer_value(json_object_get(j, "cancelled")), 1);
    json_decref(j);
    resp_free(&r);
    cr_assert_str_eq(run_status(id), "cancelled");
    {
        char *reason = itest_str("SELECT cancel_reason FROM runs WHERE run_id = $1", id);
        cr_assert_str_eq(reason, "from the <dashboard>");
        free(reason);
    }
    cr_assert_eq(itest_log_count(m, "event=ui_cancel"), 1);
    /* Again: a no-op. */
    r = post_ok(port, path, "{}");
    cr_assert_eq(r.code, 200);
    cr_assert(strstr(r.body, "\"cancelled\":0") != NULL, "%s", r.body);
    resp_free(&r);

    /* Retry: the cancelled run resumes; a second retry of a pending run is a conflict. */
    snprintf(path, sizeof(path), "/ui/api/runs/%s/retry", id);
    r = post_ok(port, path, "{}");
    cr_assert_eq(r.code, 200, "%d %s", r.code, r.body);
    cr_assert(strstr(r.body, "\"retry\":1") != NULL, "%s", r.body);
    resp_free(&r);
    cr_assert_str_eq(run_status(id), "pending");
    r = post_ok(port, path, "{}");
    cr_assert_eq(r.code, 409, "%d %s", r.code, r.body);
    resp_free(&r);
    r = post_ok(port, "/ui/api/runs/00000000-0000-0000-0000-000000000000/cancel", "{}");
    cr_assert_eq(r.code, 404, "%d %s", r.code, r.body);
    resp_free(&r);
    itest_allow_error("event=ui_refused");
    itest_finish();
}

Test(ui, read_only_without_a_token_file, ITEST_FIXTURES)
{
    int port;
    itest_master_t *m = master_ui(&port, 0);
    char id[SK_UUID_LEN], path[256];
    json_t *j;
    resp_t r;

    itest_start("runs-child", "{\"signal\": \"ui-ro\"}", id);
    wait_waiting(id);
    r = get(port, "/ui/api/config");
    j = itest_parse(r.body);
    cr_assert(json_is_false(json_object_get(j, "writable")));
    json_decref(j);
    resp_free(&r);
    snprintf(path, sizeof(path), "/ui/api/runs/%s/cancel", id);
    r = post_ok(port, path, "{}");
    cr_assert_eq(r.code, 403, "%d %s", r.code, r.body);
    cr_assert(strstr(r.body, "read-only") != NULL, "%s", r.body);
    resp_free(&r);
    cr_assert_str_eq(run_status(id), "pending");
    cr_assert(itest_log_wait(m, "event=ui_enabled path=/ui/ writable=no", 5000));
    itest_finish();
}

/* DNS rebinding: a page on a name its author controls, resolved to the
 * dashboard's address, reads it as same-origin unless the Host is checked. */
Test(ui, other_host_names_are_refused_unless_allowed, ITEST_FIXTURES)
{
    static char addr[64];
    itest_master_opts_t o = {.workers = 1};
    itest_master_t *m;
    const char *evil[] = {"Host: rebind.example", NULL};
    const char *named[] = {"Host: stepkit.example:8080", NULL};
    const char *local[] = {"Host: localhost", NULL};
    resp_t r;
    int port = itest_free_port();

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    o.extra[0] = "--http";
    o.extra[1] = addr;
    o.extra[2] = "--ui";
    o.extra[3] = "--ui-allowed-hosts";
    o.extra[4] = "stepkit.example";
    m = itest_master_up(&o);
    cr_assert(itest_log_wait(m, "event=ui_enabled", 10000));
    r = request(port, "GET", "/ui/api/runs", evil, NULL);
    cr_assert_eq(r.code, 403, "%d %s", r.code, r.body);
    cr_assert(strstr(r.body, "rebind.example") != NULL, "%s", r.body);
    resp_free(&r);
    r = request(port, "GET", "/ui/", evil, NULL);
    cr_assert_eq(r.code, 403, "%d %s", r.code, r.body);
    resp_free(&r);
    r = request(port, "GET", "/ui/api/runs", named, NULL);
    cr_assert_eq(r.code, 200, "%d %s", r.code, r.body);
    resp_free(&r);
    r = request(port, "GET", "/ui/api/config", local, NULL);
    cr_assert_eq(r.code, 200, "%d %s", r.code, r.body);
    resp_free(&r);
    r = get(port, "/ui/api/config"); /* Host: 127.0.0.1:port */
    cr_assert_eq(r.code, 200, "%d %s", r.code, r.body);
    resp_free(&r);
    /* Probes and metrics are not the dashboard's: any Host reaches them. */
    r = request(port, "GET", "/livez", evil, NULL);
    cr_assert_eq(r.code, 200, "%d %s", r.code, r.body);
    resp_free(&r);
    cr_assert(itest_log_wait(m, "event=ui_refused path=/ui/api/runs code=403 reason=host", 5000));
    itest_finish();
}

Test(ui, large_payloads_are_cut, ITEST_FIXTURES)
{
    int port;
    itest_master_t *m = master_ui(&port, 1);
    size_t n = 100000;
    char *json = malloc(n + 32), id[SK_UUID_LEN], path[128];
    json_t *j, *t;
    resp_t r;

    (void)m;
    snprintf(json, 16, "{\"blob\": \"");
    memset(json + 10, 'x', n);
    snprintf(json + 10 + n, 8, "\"}");
    itest_start("two-steps", json, id);
    free(json);
    wait_status(id, "completed");
    snprintf(path, sizeof(path), "/ui/api/runs/%s", id);
    r = get(port, path);
    cr_assert_eq(r.code, 200);
    cr_assert_lt(strlen(r.body), 20000, "the answer is small: %zu bytes", strlen(r.body));
    j = itest_parse(r.body);
    t = itest_jget(j, "input.data._truncated");
    cr_assert_not_null(t, "%.300s", r.body);
    cr_assert_geq(json_integer_value(json_object_get(t, "bytes")), 100000);
    cr_assert_eq(strlen(json_string_value(json_object_get(t, "preview"))), 1000);
    cr_assert_str_eq(itest_jstr(j, "status"), "completed", "the rest is whole");
    json_decref(j);
    resp_free(&r);
    itest_finish();
}

Test(ui, configuration_errors_exit_2, ITEST_FIXTURES)
{
    char bin[ITEST_PATH_MAX + 32];
    const char *short_token = token_file("short");
    itest_cmd_t r;

    snprintf(bin, sizeof(bin), "%s/bin/stepkit-master", itest.build);
    {
        const char *argv[] = {bin, "--workflows", "x.so", "--ui", "--http", "off", NULL};
        itest_run_cmd(argv, NULL, 10000, &r);
        cr_assert_eq(r.code, 2);
        cr_assert(strstr(r.err, "--ui") != NULL && strstr(r.err, "--http is off") != NULL, "%s",
                  r.err);
        itest_cmd_free(&r);
    }
    {
        const char *argv[] = {bin,         "--workflows", "x.so", "--ui", "--ui-token-file",
                              short_token, NULL};
        itest_run_cmd(argv, NULL, 10000, &r);
        cr_assert_eq(r.code, 2);
        cr_assert(strstr(r.err, "--ui-token-file") != NULL, "%s", r.err);
        itest_cmd_free(&r);
    }
    {
        const char *argv[] = {bin, "--workflows", "x.so", "--ui-token-file", "/nonexistent/token",
                              NULL};
        itest_run_cmd(argv, NULL, 10000, &r);
        cr_assert_eq(r.code, 2);
        cr_assert(strstr(r.err, "readable file") != NULL, "%s", r.err);
        itest_cmd_free(&r);
    }
    itest_finish();
}
