/*
 * sk_ui - the web dashboard (see sk_ui.h, docs/dashboard.md).
 */
#include "sk_ui.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "sk_client_int.h"
#include "sk_cron.h"
#include "sk_log.h"
#include "sk_metrics.h"
#include "stepkit.h"
#include "stepkit_client.h"

#define STATEMENT_TIMEOUT_MS 5000
#define LOCK_TIMEOUT_MS      2000
#define CONNECT_TIMEOUT_S    "5"
#define HIST_INTERVAL_S      5
#define ARG_MAX              128 /* query-string values (times, cursors, names) */
#define REASON_MAX           1000
#define CONTENT_JSON         "application/json; charset=utf-8"
#define CONTENT_TEXT         "text/plain; charset=utf-8"
#define ISO(col)             "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* Everything a page may load or connect to is this origin's. */
#define CSP                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

typedef enum { REQ_NEW = 0, REQ_QUEUED, REQ_DONE } req_state_t;
typedef enum { OP_LIST = 0, OP_RUN, OP_CANCEL, OP_RETRY, OP_WORKFLOWS } op_t;

typedef struct req {
    struct MHD_Connection *conn;
    req_state_t state;
    op_t op;
    int too_large;
    size_t body_len;
    char body[SK_UI_BODY_MAX + 1];
    char run_id[SK_UUID_LEN];
    char workflow[ARG_MAX], status[16], since[ARG_MAX], until[ARG_MAX], after[ARG_MAX];
    int limit;
    char reason[REASON_MAX * 4 + 1];
    int has_reason;
    unsigned code; /* the answer, filled by the database thread */
    char *answer;
    struct req *next;
} req_t;

struct sk_ui {
    const sk_config_t *cfg;
    char token[SK_UI_TOKEN_MAX + 1]; /* "" read-only */
    pthread_t thread;
    int started;
    pthread_mutex_t lock; /* guards the queue and stop */
    pthread_cond_t cond;
    req_t *head, *tail;
    int queued, stop;
    sk_client_t *client; /* the database thread's only */
    pthread_mutex_t hist_lock;
    sk_ui_hist_t hist;
};

/* ---- answers ------------------------------------------------------------------------------- */

static void security_headers(struct MHD_Response *r)
{
    MHD_add_response_header(r, "Content-Security-Policy", CSP);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "X-Frame-Options", "DENY");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
}

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned code, const char *type,
                                const void *body, size_t len, enum MHD_ResponseMemoryMode mode,
                                const char *cache)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, mode);
    enum MHD_Result rc;

    if (r == NULL) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free((void *)(uintptr_t)body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, cache);
    security_headers(r);
    rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

/* A JSON answer that owns `body` (malloc'd). */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned code, char *body)
{
    if (body == NULL)
        return send_buf(c, MHD_HTTP_INTERNAL_SERVER_ERROR, CONTENT_JSON,
                        "{\"error\":\"out of memory\"}", 25, MHD_RESPMEM_PERSISTENT, "no-store");
    return send_buf(c, code, CONTENT_JSON, body, strlen(body), MHD_RESPMEM_MUST_FREE, "no-store");
}

/* {"error": msg} as malloc'd text. */
static char *error_json(const char *msg)
{
    json_t *o = json_object();
    char *s;

    json_object_set_new(o, "error", json_string(msg));
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *msg)
{
    return send_json(c, code, error_json(msg));
}

static char *dump(json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(v);
    return s;
}

/* ---- the database thread ---------------------------------------------------------------- */

static void answer(req_t *r, unsigned code, char *json)
{
    r->code = json ? code : MHD_HTTP_INTERNAL_SERVER_ERROR;
    r->answer = json ? json : error_json("out of memory");
}

static void answer_error(req_t *r, unsigned code, const char *msg)
{
    answer(r, code, error_json(msg));
}

/* The status for a failed client call, from its message (the client
 * reports SQL errors as text; the SQL functions' messages are fixed). */
static unsigned failure_code(sk_ui_t *ui, const char *err)
{
    if (strstr(err, "no run ") != NULL)
        return MHD_HTTP_NOT_FOUND;
    if (strstr(err, "only a failed or cancelled run") != NULL)
        return MHD_HTTP_CONFLICT;
    if (strstr(err, "invalid input syntax") != NULL || strstr(err, "out of range") != NULL ||
        strstr(err, "invalid cursor") != NULL || strstr(err, "unknown status") != NULL ||
        strstr(err, "is not a run id") != NULL || strstr(err, "limit must") != NULL)
        return MHD_HTTP_BAD_REQUEST;
    if (strstr(err, "statement timeout") != NULL || strstr(err, "lock timeout") != NULL)
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    if (ui->client == NULL || PQstatus(ui->client->pg) != CONNECTION_OK)
        return MHD_HTTP_SERVICE_UNAVAILABLE;
    return MHD_HTTP_INTERNAL_SERVER_ERROR;
}

static int db_ready(sk_ui_t *ui, char *err, size_t errlen)
{
    static const char timeouts[] = "SELECT set_config('statement_timeout', $1, false),"
                                   " set_config('lock_timeout', $2, false)";
    char st[16], lt[16];
    const char *params[2] = {st, lt};
    PGresult *res;

    if (ui->client != NULL && PQstatus(ui->client->pg) == CONNECTION_OK)
        return SK_OK;
    sk_client_close(ui->client);
    ui->client = sk_client_connect(ui->cfg->database_url, ui->cfg->schema, err, errlen);
    if (ui->client == NULL)
        return SK_ERROR;
    snprintf(st, sizeof(st), "%d", STATEMENT_TIMEOUT_MS);
    snprintf(lt, sizeof(lt), "%d", LOCK_TIMEOUT_MS);
    res = PQexecParams(ui->client->pg, timeouts, 2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        snprintf(err, errlen, "set timeouts: %s", PQresultErrorMessage(res));
        PQclear(res);
        sk_client_close(ui->client);
        ui->client = NULL;
        return SK_ERROR;
    }
    PQclear(res);
    return SK_OK;
}

static void op_list(sk_ui_t *ui, req_t *r, char *err, size_t errlen)
{
    sk_list_filter_t f = {
        .workflow = r->workflow[0] ? r->workflow : NULL,
        .status = r->status[0] ? r->status : NULL,
        .since = r->since[0] ? r->since : NULL,
        .until = r->until[0] ? r->until : NULL,
        .after = r->after[0] ? r->after : NULL,
        .limit = r->limit,
    };
    char *text = sk_client_list_json(ui->client, &f, err, errlen);
    json_t *runs, *root, *last;

    if (text == NULL) {
        answer_error(r, failure_code(ui, err), err);
        return;
    }
    runs = json_loads(text, 0, NULL);
    free(text);
    if (!json_is_array(runs)) {
        json_decref(runs);
        answer_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "list runs: unreadable answer");
        return;
    }
    root = json_object();
    last = json_array_get(runs, json_array_size(runs) - 1);
    json_object_set_new(root, "runs", runs);
    /* A full page may have more after it. */
    if (last != NULL && (int)json_array_size(runs) == r->limit)
        json_object_set(root, "next", json_object_get(last, "cursor"));
    else
        json_object_set_new(root, "next", json_null());
    answer(r, MHD_HTTP_OK, dump(root));
}

static void op_run(sk_ui_t *ui, req_t *r, char *err, size_t errlen)
{
    char *text = sk_client_run_json(ui->client, r->run_id, err, errlen);
    json_t *run;

    if (text == NULL) {
        answer_error(r, failure_code(ui, err), err);
        return;
    }
    run = json_loads(text, 0, NULL);
    free(text);
    if (!json_is_object(run)) {
        json_decref(run);
        answer_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "read run: unreadable answer");
        return;
    }
    sk_ui_limit_run(run, SK_UI_PAYLOAD_MAX, SK_UI_STEPS_MAX);
    answer(r, MHD_HTTP_OK, dump(run));
}

static void op_cancel(sk_ui_t *ui, req_t *r, char *err, size_t errlen)
{
    int n = 0;
    json_t *o;

    if (sk_client_cancel(ui->client, r->run_id, r->has_reason ? r->reason : NULL, &n, err,
                         errlen) != SK_OK) {
        answer_error(r, failure_code(ui, err), err);
        return;
    }
    sk_log_info("event=ui_cancel run_id=%s cancelled=%d", r->run_id, n);
    o = json_object();
    json_object_set_new(o, "run_id", json_string(r->run_id));
    json_object_set_new(o, "cancelled", json_integer(n));
    answer(r, MHD_HTTP_OK, dump(o));
}

static void op_retry(sk_ui_t *ui, req_t *r, char *err, size_t errlen)
{
    int n = 0;
    json_t *o;

    if (sk_client_retry(ui->client, r->run_id, &n, err, errlen) != SK_OK) {
        answer_error(r, failure_code(ui, err), err);
        return;
    }
    sk_log_info("event=ui_retry run_id=%s retry=%d", r->run_id, n);
    o = json_object();
    json_object_set_new(o, "run_id", json_string(r->run_id));
    json_object_set_new(o, "retry", json_integer(n));
    answer(r, MHD_HTTP_OK, dump(o));
}

static void iso_ms(int64_t ms, char *out, size_t len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&s, &tm);
    snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* Each schedule as {schedule, last_tick_at, last_run_id, next_tick_at}. */
static void add_next_ticks(json_t *wf, int64_t now_ms)
{
    json_t *crons = json_object_get(wf, "cron");
    json_t *c;
    size_t i;

    json_array_foreach(crons, i, c)
    {
        const char *expr = json_string_value(json_object_get(c, "schedule"));
        char err[128], iso[96];
        sk_cron_t *cron = expr ? sk_cron_parse(expr, err, sizeof(err)) : NULL;
        int64_t next = cron ? sk_cron_next(cron, now_ms) : -1;
        if (next > 0) {
            iso_ms(next, iso, sizeof(iso));
            json_object_set_new(c, "next_tick_at", json_string(iso));
        } else {
            json_object_set_new(c, "next_tick_at", json_null());
        }
        sk_cron_free(cron);
    }
}

static void op_workflows(sk_ui_t *ui, req_t *r, char *err, size_t errlen)
{
    /* run_stats() (sql/007_runs.sql) for the counts; the registry row for
     * the triggers; the newest tick of each cron schedule. */
    static const char sql[] =
        "SELECT coalesce(json_agg(json_build_object("
        "  'workflow', w.workflow_id, 'max_attempts', w.max_attempts, 'events', w.events,"
        "  'registered_at', " ISO(
            "w.registered_at") ","
                               "  'queued', s.queued, 'running', s.running, 'waiting', s.waiting,"
                               "  'completed_1h', s.completed_1h, 'failed_1h', s.failed_1h,"
                               "  'cancelled_1h', s.cancelled_1h, 'ready_items', s.ready_items,"
                               "  'oldest_ready_ms', s.oldest_ready_ms,"
                               "  'cron', (SELECT coalesce(json_agg(json_build_object('schedule', "
                               "e.schedule,"
                               "            'last_tick_at', " ISO(
                                   "t.tick_at") ", 'last_run_id', t.run_id)"
                                                "            ORDER BY e.ord), '[]'::json)"
                                                "       FROM unnest(w.schedules) WITH ORDINALITY "
                                                "AS e(schedule, ord)"
                                                "       LEFT JOIN LATERAL (SELECT c.tick_at, "
                                                "c.run_id FROM cron_ticks c"
                                                "                           WHERE c.workflow_id = "
                                                "w.workflow_id"
                                                "                             AND c.schedule = "
                                                "e.schedule"
                                                "                           ORDER BY c.tick_at "
                                                "DESC LIMIT 1) t ON true)"
                                                ") ORDER BY w.workflow_id), '[]'::json)::text"
                                                "  FROM workflows w JOIN run_stats() s ON "
                                                "s.workflow_id = w.workflow_id";
    PGresult *res = PQexecParams(ui->client->pg, sql, 0, NULL, NULL, NULL, NULL, 0);
    json_t *arr, *root, *wf;
    size_t i;
    int64_t now_ms;
    struct timespec ts;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        snprintf(err, errlen, "read workflows: %s", PQresultErrorMessage(res));
        err[strcspn(err, "\n")] = '\0';
        PQclear(res);
        answer_error(r, failure_code(ui, err), err);
        return;
    }
    arr = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
    PQclear(res);
    if (!json_is_array(arr)) {
        json_decref(arr);
        answer_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "read workflows: unreadable answer");
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    json_array_foreach(arr, i, wf) add_next_ticks(wf, now_ms);
    root = json_object();
    json_object_set_new(root, "workflows", arr);
    answer(r, MHD_HTTP_OK, dump(root));
}

static void run_op(sk_ui_t *ui, req_t *r)
{
    char err[512];

    if (db_ready(ui, err, sizeof(err)) != SK_OK) {
        char msg[600];
        snprintf(msg, sizeof(msg), "database unavailable: %s", err);
        answer_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
        return;
    }
    switch (r->op) {
    case OP_LIST:
        op_list(ui, r, err, sizeof(err));
        break;
    case OP_RUN:
        op_run(ui, r, err, sizeof(err));
        break;
    case OP_CANCEL:
        op_cancel(ui, r, err, sizeof(err));
        break;
    case OP_RETRY:
        op_retry(ui, r, err, sizeof(err));
        break;
    case OP_WORKFLOWS:
        op_workflows(ui, r, err, sizeof(err));
        break;
    }
    if (r->code >= 500)
        sk_log_warn("event=ui_query_failed op=%d code=%u", (int)r->op, r->code);
}

static void *db_thread(void *arg)
{
    sk_ui_t *ui = arg;
    req_t *r;

    for (;;) {
        pthread_mutex_lock(&ui->lock);
        while (!ui->stop && ui->head == NULL)
            pthread_cond_wait(&ui->cond, &ui->lock);
        if (ui->stop) {
            pthread_mutex_unlock(&ui->lock);
            break;
        }
        r = ui->head;
        ui->head = r->next;
        if (ui->head == NULL)
            ui->tail = NULL;
        ui->queued--;
        pthread_mutex_unlock(&ui->lock);
        run_op(ui, r);
        r->state = REQ_DONE;
        MHD_resume_connection(r->conn);
    }
    sk_client_close(ui->client);
    ui->client = NULL;
    return NULL;
}

/* ---- requests (libmicrohttpd's thread) ----------------------------------------------------- */

int sk_ui_owns(const char *url)
{
    return strncmp(url, "/ui", 3) == 0 && (url[3] == '\0' || url[3] == '/');
}

static const sk_ui_asset_t *asset(const char *name)
{
    for (const sk_ui_asset_t *a = sk_ui_assets; a->name != NULL; a++) {
        if (strcmp(a->name, name) == 0)
            return a;
    }
    return NULL;
}

static enum MHD_Result send_asset(struct MHD_Connection *c, const char *name)
{
    const sk_ui_asset_t *a = asset(name);

    if (a == NULL)
        return send_buf(c, MHD_HTTP_NOT_FOUND, CONTENT_TEXT, "not found\n", 10,
                        MHD_RESPMEM_PERSISTENT, "no-store");
    /* no-cache: revalidated each time, so a new binary's assets are used at once. */
    return send_buf(c, MHD_HTTP_OK, a->type, a->data, a->len, MHD_RESPMEM_PERSISTENT, "no-cache");
}

static int uuid_ok(const char *s, size_t n)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        char ch = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-')
                return 0;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                     (ch >= 'A' && ch <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

/* "/ui/api/runs/<uuid><rest>": copies the id, returns rest (NULL when not such a URL). */
static const char *run_url(const char *url, char id[SK_UUID_LEN])
{
    const char *p = url + strlen("/ui/api/runs/");
    size_t n = strcspn(p, "/");

    if (!uuid_ok(p, n))
        return NULL;
    memcpy(id, p, 36);
    id[36] = '\0';
    return p + n;
}

/* A query-string argument into dst; SK_ERROR when longer than dst. */
static int arg(struct MHD_Connection *c, const char *key, char *dst, size_t len)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);

    dst[0] = '\0';
    if (v == NULL)
        return SK_OK;
    if (strlen(v) >= len)
        return SK_ERROR;
    memcpy(dst, v, strlen(v) + 1);
    return SK_OK;
}

/* The list filters from the query string; SK_ERROR with a message. */
static int list_args(struct MHD_Connection *c, req_t *r, const char **msg)
{
    char limit[16];
    char *end;
    long n;

    if (arg(c, "workflow", r->workflow, sizeof(r->workflow)) != SK_OK ||
        arg(c, "since", r->since, sizeof(r->since)) != SK_OK ||
        arg(c, "until", r->until, sizeof(r->until)) != SK_OK ||
        arg(c, "after", r->after, sizeof(r->after)) != SK_OK ||
        arg(c, "status", r->status, sizeof(r->status)) != SK_OK ||
        arg(c, "limit", limit, sizeof(limit)) != SK_OK) {
        *msg = "a query argument is too long";
        return SK_ERROR;
    }
    if (r->status[0] != '\0' && strcmp(r->status, "pending") != 0 &&
        strcmp(r->status, "completed") != 0 && strcmp(r->status, "failed") != 0 &&
        strcmp(r->status, "cancelled") != 0) {
        *msg = "status: one of pending, completed, failed, cancelled";
        return SK_ERROR;
    }
    r->limit = 50;
    if (limit[0] != '\0') {
        errno = 0;
        n = strtol(limit, &end, 10);
        if (errno != 0 || *end != '\0' || n < 1 || n > 500) {
            *msg = "limit: a number from 1 to 500";
            return SK_ERROR;
        }
        r->limit = (int)n;
    }
    return SK_OK;
}

/* The cancel body: {} or {"reason": "..."} (at most REASON_MAX characters). */
static int cancel_body(req_t *r, const char **msg)
{
    json_t *o, *reason;
    json_error_t jerr;
    int rc = SK_OK;

    if (r->body_len == 0)
        return SK_OK;
    o = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(o)) {
        json_decref(o);
        *msg = "the body must be a JSON object";
        return SK_ERROR;
    }
    reason = json_object_get(o, "reason");
    if (reason != NULL && !json_is_null(reason)) {
        const char *s = json_string_value(reason);
        if (s == NULL || strlen(s) >= sizeof(r->reason) ||
            json_string_length(reason) != strlen(s)) {
            *msg = "reason: a string of at most 1000 characters";
            rc = SK_ERROR;
        } else if (s[0] != '\0') {
            snprintf(r->reason, sizeof(r->reason), "%s", s);
            r->has_reason = 1;
        }
    }
    json_decref(o);
    return rc;
}

static enum MHD_Result enqueue(sk_ui_t *ui, struct MHD_Connection *c, req_t *r)
{
    pthread_mutex_lock(&ui->lock);
    if (ui->stop || ui->queued >= SK_UI_QUEUE_MAX) {
        int stopping = ui->stop;
        pthread_mutex_unlock(&ui->lock);
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE,
                          stopping ? "stopping" : "busy: too many dashboard requests waiting");
    }
    r->state = REQ_QUEUED;
    r->next = NULL;
    if (ui->tail != NULL)
        ui->tail->next = r;
    else
        ui->head = r;
    ui->tail = r;
    ui->queued++;
    /* Suspended before the database thread can see it, so its resume comes after. */
    MHD_suspend_connection(c);
    pthread_cond_signal(&ui->cond);
    pthread_mutex_unlock(&ui->lock);
    return MHD_YES;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static char *config_json(sk_ui_t *ui)
{
    json_t *o = json_object();

    json_object_set_new(o, "version", json_string(SK_VERSION));
    json_object_set_new(o, "schema", json_string(ui->cfg->schema));
    json_object_set_new(o, "writable", json_boolean(ui->token[0] != '\0'));
    json_object_set_new(o, "payload_max", json_integer(SK_UI_PAYLOAD_MAX));
    json_object_set_new(o, "queue_interval_s", json_integer(HIST_INTERVAL_S));
    return dump(o);
}

char *sk_ui_queue_json(sk_ui_t *ui)
{
    json_t *o;

    pthread_mutex_lock(&ui->hist_lock);
    o = sk_ui_hist_json(&ui->hist);
    pthread_mutex_unlock(&ui->hist_lock);
    json_object_set_new(o, "interval_s", json_integer(HIST_INTERVAL_S));
    return dump(o);
}

void sk_ui_queue_sample(sk_ui_t *ui, int64_t unix_ms, const sk_ui_point_t *pts, int n)
{
    pthread_mutex_lock(&ui->hist_lock);
    sk_ui_hist_add(&ui->hist, unix_ms, pts, n, sk_metrics_workflow);
    pthread_mutex_unlock(&ui->hist_lock);
}

/* The page's own paths: the script shows the matching view. */
static int page_url(const char *url)
{
    return strcmp(url, "/ui/") == 0 || strcmp(url, "/ui/runs") == 0 ||
           strncmp(url, "/ui/runs/", 9) == 0 || strcmp(url, "/ui/workflows") == 0 ||
           strcmp(url, "/ui/queue") == 0;
}

static enum MHD_Result get_request(sk_ui_t *ui, struct MHD_Connection *c, const char *url, req_t *r)
{
    if (strcmp(url, "/ui") == 0) {
        struct MHD_Response *resp =
            MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result rc;
        if (resp == NULL)
            return MHD_NO;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, "/ui/");
        security_headers(resp);
        rc = MHD_queue_response(c, MHD_HTTP_FOUND, resp);
        MHD_destroy_response(resp);
        return rc;
    }
    if (page_url(url))
        return send_asset(c, "index.html");
    if (strncmp(url, "/ui/assets/", 11) == 0 && strcmp(url + 11, "index.html") != 0)
        return send_asset(c, url + 11);
    if (strcmp(url, "/ui/api/config") == 0)
        return send_json(c, MHD_HTTP_OK, config_json(ui));
    if (strcmp(url, "/ui/api/queue") == 0)
        return send_json(c, MHD_HTTP_OK, sk_ui_queue_json(ui));
    if (strcmp(url, "/ui/api/workflows") == 0) {
        r->op = OP_WORKFLOWS;
        return enqueue(ui, c, r);
    }
    if (strcmp(url, "/ui/api/runs") == 0) {
        const char *msg = NULL;
        r->op = OP_LIST;
        if (list_args(c, r, &msg) != SK_OK)
            return send_error(c, MHD_HTTP_BAD_REQUEST, msg);
        return enqueue(ui, c, r);
    }
    if (strncmp(url, "/ui/api/runs/", 13) == 0) {
        const char *rest = run_url(url, r->run_id);
        if (rest == NULL)
            return send_error(c, MHD_HTTP_NOT_FOUND, "not a run id (a UUID)");
        if (*rest != '\0')
            return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "cancel and retry are POSTs");
        r->op = OP_RUN;
        return enqueue(ui, c, r);
    }
    if (strncmp(url, "/ui/api/", 8) == 0)
        return send_error(c, MHD_HTTP_NOT_FOUND, "no such API: see docs/dashboard.md");
    return send_buf(c, MHD_HTTP_NOT_FOUND, CONTENT_TEXT, "not found\n", 10, MHD_RESPMEM_PERSISTENT,
                    "no-store");
}

static enum MHD_Result post_request(sk_ui_t *ui, struct MHD_Connection *c, const char *url,
                                    req_t *r)
{
    const char *rest, *msg = NULL;
    sk_ui_post_in_t in;
    char reason[200];
    unsigned code;

    if (strncmp(url, "/ui/api/runs/", 13) != 0 || (rest = run_url(url, r->run_id)) == NULL ||
        (strcmp(rest, "/cancel") != 0 && strcmp(rest, "/retry") != 0))
        return send_error(c, MHD_HTTP_NOT_FOUND, "POST: /ui/api/runs/<id>/cancel or /retry");
    in.host = header(c, MHD_HTTP_HEADER_HOST);
    in.origin = header(c, "Origin");
    in.sec_fetch_site = header(c, "Sec-Fetch-Site");
    in.content_type = header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
    in.authorization = header(c, MHD_HTTP_HEADER_AUTHORIZATION);
    code = sk_ui_post_check(&in, ui->token, reason, sizeof(reason));
    if (code != 0) {
        sk_log_warn("event=ui_refused path=%s code=%u", url, code);
        return send_error(c, code, reason);
    }
    if (r->too_large)
        return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "the body is larger than 4 KiB");
    if (strcmp(rest, "/cancel") == 0) {
        r->op = OP_CANCEL;
        if (cancel_body(r, &msg) != SK_OK)
            return send_error(c, MHD_HTTP_BAD_REQUEST, msg);
    } else {
        r->op = OP_RETRY;
    }
    return enqueue(ui, c, r);
}

enum MHD_Result sk_ui_request(sk_ui_t *ui, struct MHD_Connection *c, const char *url,
                              const char *method, const char *upload_data, size_t *upload_size,
                              void **con_cls)
{
    req_t *r = *con_cls;
    int is_get =
        strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    enum MHD_Result rc;
    char reason[200];
    unsigned code;

    if (r == NULL) {
        /* The first call only sees the headers: keep state for the body and the answer. */
        r = calloc(1, sizeof(*r));
        if (r == NULL)
            return MHD_NO;
        r->conn = c;
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_size != 0) {
        if (r->body_len + *upload_size > SK_UI_BODY_MAX)
            r->too_large = 1; /* keep reading, answer 413 at the end */
        else {
            memcpy(r->body + r->body_len, upload_data, *upload_size);
            r->body_len += *upload_size;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (r->state == REQ_DONE) {
        char *body = r->answer;
        r->answer = NULL;
        return send_json(c, r->code, body);
    }
    code = sk_ui_host_check(header(c, MHD_HTTP_HEADER_HOST), ui->cfg->ui_allowed_hosts, reason,
                            sizeof(reason));
    if (code != 0) {
        sk_log_warn("event=ui_refused path=%s code=%u reason=host", url, code);
        return send_error(c, code, reason);
    }
    if (is_get) {
        if (r->body_len != 0 || r->too_large)
            return send_error(c, MHD_HTTP_BAD_REQUEST, "no request body expected");
        rc = get_request(ui, c, url, r);
    } else if (strcmp(method, MHD_HTTP_METHOD_POST) == 0) {
        rc = post_request(ui, c, url, r);
    } else {
        rc = send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET, HEAD or POST");
    }
    return rc;
}

void sk_ui_completed(void **con_cls)
{
    req_t *r = *con_cls;

    if (r == NULL)
        return;
    free(r->answer);
    free(r);
    *con_cls = NULL;
}

/* ---- start and stop ---------------------------------------------------------------------------
 */

sk_ui_t *sk_ui_start(const sk_config_t *cfg, char *err, size_t errlen)
{
    sk_ui_t *ui = calloc(1, sizeof(*ui));

    if (ui == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    ui->cfg = cfg;
    if (cfg->ui_token_file[0] != '\0' &&
        sk_config_ui_token(cfg->ui_token_file, ui->token, sizeof(ui->token)) != SK_OK) {
        snprintf(err, errlen, "--ui-token-file: cannot read a token of %d to %d characters from %s",
                 SK_UI_TOKEN_MIN, SK_UI_TOKEN_MAX, cfg->ui_token_file);
        free(ui);
        return NULL;
    }
    /* A database that does not answer must not hold the thread for minutes
     * (the user's own PGCONNECT_TIMEOUT wins). */
    setenv("PGCONNECT_TIMEOUT", CONNECT_TIMEOUT_S, 0);
    pthread_mutex_init(&ui->lock, NULL);
    pthread_mutex_init(&ui->hist_lock, NULL);
    pthread_cond_init(&ui->cond, NULL);
    if (pthread_create(&ui->thread, NULL, db_thread, ui) != 0) {
        snprintf(err, errlen, "cannot start the dashboard's database thread");
        pthread_cond_destroy(&ui->cond);
        pthread_mutex_destroy(&ui->lock);
        pthread_mutex_destroy(&ui->hist_lock);
        free(ui);
        return NULL;
    }
    ui->started = 1;
    return ui;
}

void sk_ui_stop(sk_ui_t *ui)
{
    req_t *r, *next;

    if (ui == NULL)
        return;
    pthread_mutex_lock(&ui->lock);
    ui->stop = 1;
    pthread_cond_broadcast(&ui->cond);
    pthread_mutex_unlock(&ui->lock);
    if (ui->started)
        pthread_join(ui->thread, NULL);
    /* What the thread did not take: answered, and resumed before the daemon stops. */
    pthread_mutex_lock(&ui->lock);
    r = ui->head;
    ui->head = ui->tail = NULL;
    ui->queued = 0;
    pthread_mutex_unlock(&ui->lock);
    for (; r != NULL; r = next) {
        next = r->next;
        answer_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "stopping");
        r->state = REQ_DONE;
        MHD_resume_connection(r->conn);
    }
}

void sk_ui_free(sk_ui_t *ui)
{
    if (ui == NULL)
        return;
    pthread_cond_destroy(&ui->cond);
    pthread_mutex_destroy(&ui->lock);
    pthread_mutex_destroy(&ui->hist_lock);
    free(ui);
}
