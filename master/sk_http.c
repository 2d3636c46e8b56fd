/*
 * sk_http - the HTTP process (see sk_http.h).
 */
#include "sk_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <libpq-fe.h>
#include <microhttpd.h>

#include "sk_log.h"
#include "sk_metrics.h"
#include "sk_migrate.h"
#include "sk_pg.h"
#include "sk_ui.h"
#include "stepkit.h"

#define EXIT_CLEAN      0
#define EXIT_CRASH      1
#define EXIT_FATAL      2
#define REFRESH_S       5.0    /* database reads at most this often */
#define DB_TIMEOUT_MS   10000  /* a connect or a read taking longer is a failure */
#define LIVE_MAX_AGE_MS 10000  /* master heartbeat older than this: /livez 503 */
#define STALL_MIN_MS    60000  /* a worker heartbeat older than max(this, 2 x lease): stale */
#define MAX_GAUGE_WF    200    /* workflow rows read from the database */
#define GAUGE_COUNT_MAX 100000 /* each count of the gauges stops there */
#define WF_LABEL_MAX    128
#define GAUGES_STMT     "sk_http_gauges"
#define CONTENT_PROM    "text/plain; version=0.0.4; charset=utf-8"
#define CONTENT_TEXT    "text/plain; charset=utf-8"

typedef enum { DB_DOWN = 0, DB_CONNECTING, DB_PREPARING, DB_IDLE, DB_QUERYING } db_state_t;

typedef struct {
    char workflow[WF_LABEL_MAX];
    long long ready, leased;
    double oldest_s;
    int registered; /* some master registered the workflow */
} wf_gauge_t;

/* Written by the main thread after each refresh, copied by the request thread. */
typedef struct {
    int db_ok;
    int64_t db_ok_ms; /* CLOCK_MONOTONIC of the last success, 0: never */
    char db_error[256];
    sk_schema_state_t schema;
    long long wait_signal, wait_child, wait_timer;
    long long unregistered_ready; /* ready items of workflows nobody registered */
    int n_wf;
    wf_gauge_t wf[MAX_GAUGE_WF];
} snapshot_t;

typedef struct {
    const sk_http_args_t *a;
    struct ev_loop *loop;
    struct MHD_Daemon *mhd;
    ev_signal sig_term, sig_int, sig_quit;
    ev_io alive, db_io;
    ev_timer refresh;
    PGconn *pg;
    db_state_t db;
    int64_t db_since_ms; /* when the current connect or read began */
    char *gauges_sql;
    sk_schema_params_t schema_params;
    char unregistered[MAX_GAUGE_WF][WF_LABEL_MAX]; /* main thread: logged as waiting */
    int n_unregistered;
    pthread_mutex_t lock; /* guards snap */
    snapshot_t snap;
    snapshot_t next; /* being filled by the main thread */
    sk_ui_t *ui;     /* the dashboard (--ui), NULL when off */
    int exit_code;
} http_t;

static int64_t now_ms(void)
{
    return sk_shm_now_ms();
}

/* ---- the snapshot from the database (main thread) ------------------------------------- */

/* Error text for a reason line and a log value: one line, blanks collapsed, no double quotes. */
static void one_line(char *dst, size_t len, const char *src)
{
    size_t n = 0;

    for (; *src != '\0' && n + 1 < len; src++) {
        char c = *src;
        if (c == '\n' || c == '\r' || c == '\t')
            c = ' ';
        if (c == '"')
            c = '\'';
        if (c == ' ' && (n == 0 || dst[n - 1] == ' '))
            continue;
        dst[n++] = c;
    }
    while (n > 0 && dst[n - 1] == ' ')
        n--;
    dst[n] = '\0';
}

static void publish_failure(http_t *h, const char *what, const char *msg)
{
    char text[256], line[200];

    one_line(line, sizeof(line), msg && *msg ? msg : "no detail");
    snprintf(text, sizeof(text), "%s: %s", what, line);
    pthread_mutex_lock(&h->lock);
    if (h->snap.db_ok || strcmp(h->snap.db_error, text) != 0)
        sk_log_warn("event=http_db_failed error=\"%s\"", text);
    h->snap.db_ok = 0;
    snprintf(h->snap.db_error, sizeof(h->snap.db_error), "%s", text);
    pthread_mutex_unlock(&h->lock);
}

static void db_close(http_t *h)
{
    ev_io_stop(h->loop, &h->db_io);
    if (h->pg != NULL)
        PQfinish(h->pg);
    h->pg = NULL;
    h->db = DB_DOWN;
}

static void db_fail(http_t *h, const char *what)
{
    publish_failure(h, what, h->pg ? PQerrorMessage(h->pg) : "out of memory");
    db_close(h);
}

/* Watch the socket for `events` (re-armed every time: the socket may be new). */
static void db_watch(http_t *h, int events)
{
    ev_io_stop(h->loop, &h->db_io);
    ev_io_set(&h->db_io, PQsocket(h->pg), events);
    ev_io_start(h->loop, &h->db_io);
}

/* After a PQsend*: flush, then wait for the answer (and for writability while unflushed). */
static void db_sent(http_t *h, db_state_t st)
{
    int f = PQflush(h->pg);

    if (f < 0) {
        db_fail(h, "send");
        return;
    }
    h->db = st;
    h->db_since_ms = now_ms();
    db_watch(h, EV_READ | (f == 1 ? EV_WRITE : 0));
}

static void db_connect(http_t *h)
{
    const sk_config_t *cfg = h->a->cfg;
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {cfg->database_url[0] ? cfg->database_url : NULL, "stepkit-http", NULL};

    h->pg = PQconnectStartParams(keys, vals, 1);
    if (h->pg == NULL || PQstatus(h->pg) == CONNECTION_BAD) {
        db_fail(h, "connect");
        return;
    }
    if (PQsetnonblocking(h->pg, 1) != 0) {
        db_fail(h, "connect");
        return;
    }
    h->db = DB_CONNECTING;
    h->db_since_ms = now_ms();
    db_watch(h, EV_WRITE); /* PQconnectPoll starts as if it had returned WRITING */
}

static double num(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? 0 : strtod(PQgetvalue(r, row, col), NULL);
}

/* Runs waiting for a workflow no master has registered: logged when the
 * workflow first shows in the queue, and once it is served (or gone). */
static void log_unregistered(http_t *h, const snapshot_t *s)
{
    char seen[MAX_GAUGE_WF][WF_LABEL_MAX];
    int n = 0;

    for (int i = 0; i < s->n_wf; i++) {
        const wf_gauge_t *g = &s->wf[i];
        int known = 0;
        if (g->registered || g->ready == 0)
            continue;
        for (int k = 0; k < h->n_unregistered && !known; k++)
            known = strcmp(h->unregistered[k], g->workflow) == 0;
        if (!known)
            sk_log_warn("event=runs_wait_for_unregistered_workflow workflow=\"%s\" ready=%lld "
                        "oldest_s=%.1f msg=\"no master has registered this workflow: its runs "
                        "wait until a worker that serves it connects\"",
                        g->workflow, g->ready, g->oldest_s);
        snprintf(seen[n++], WF_LABEL_MAX, "%s", g->workflow);
    }
    for (int k = 0; k < h->n_unregistered; k++) {
        int still = 0;
        for (int i = 0; i < n && !still; i++)
            still = strcmp(seen[i], h->unregistered[k]) == 0;
        if (!still)
            sk_log_info("event=unregistered_workflow_cleared workflow=\"%s\"", h->unregistered[k]);
    }
    memcpy(h->unregistered, seen, sizeof(seen[0]) * (size_t)n);
    h->n_unregistered = n;
}

/* The dashboard's queue chart gets each refresh's gauges. */
static void ui_sample(http_t *h, const snapshot_t *s)
{
    static sk_ui_point_t pts[MAX_GAUGE_WF];
    struct timespec ts;

    for (int i = 0; i < s->n_wf; i++) {
        pts[i].workflow = s->wf[i].workflow;
        pts[i].ready = s->wf[i].ready;
        pts[i].oldest_s = s->wf[i].oldest_s;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    sk_ui_queue_sample(h->ui, (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000, pts, s->n_wf);
}

/* One result of the gauges statement into h->next, then published. */
static int take_gauges(http_t *h, const PGresult *r)
{
    snapshot_t *s = &h->next;
    int rows = PQntuples(r);

    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQnfields(r) != 13 || rows < 1)
        return SK_ERROR;
    memset(s, 0, sizeof(*s));
    s->schema.have = (int)num(r, 0, 0);
    s->schema.missing = (int)num(r, 0, 1);
    s->schema.newer = (int)num(r, 0, 2);
    s->schema.breaking = (int)num(r, 0, 3);
    s->wait_signal = (long long)num(r, 0, 4);
    s->wait_child = (long long)num(r, 0, 5);
    s->wait_timer = (long long)num(r, 0, 6);
    s->unregistered_ready = (long long)num(r, 0, 7);
    for (int i = 0; i < rows && s->n_wf < MAX_GAUGE_WF; i++) {
        wf_gauge_t *g;
        if (PQgetisnull(r, i, 8))
            continue; /* the queue is empty: the one row has no workflow */
        g = &s->wf[s->n_wf++];
        snprintf(g->workflow, sizeof(g->workflow), "%s", PQgetvalue(r, i, 8));
        g->ready = (long long)num(r, i, 9);
        g->oldest_s = num(r, i, 10);
        g->leased = (long long)num(r, i, 11);
        g->registered = strcmp(PQgetvalue(r, i, 12), "t") == 0;
    }
    s->db_ok = 1;
    s->db_ok_ms = now_ms();
    log_unregistered(h, s);
    pthread_mutex_lock(&h->lock);
    if (!h->snap.db_ok)
        sk_log_info("event=http_db_ok schema_version=%d", s->schema.have);
    h->snap = *s;
    pthread_mutex_unlock(&h->lock);
    if (h->ui != NULL)
        ui_sample(h, s);
    return SK_OK;
}

static void db_query(http_t *h)
{
    if (!PQsendQueryPrepared(h->pg, GAUGES_STMT, 3, h->schema_params.values, NULL, NULL, 0)) {
        db_fail(h, "read gauges");
        return;
    }
    db_sent(h, DB_QUERYING);
}

static void on_db(struct ev_loop *loop, ev_io *w, int revents)
{
    http_t *h = w->data;
    PGresult *r;
    int ok = 1;

    (void)loop;
    if (h->db == DB_CONNECTING) {
        switch (PQconnectPoll(h->pg)) {
        case PGRES_POLLING_READING:
            db_watch(h, EV_READ);
            return;
        case PGRES_POLLING_WRITING:
            db_watch(h, EV_WRITE);
            return;
        case PGRES_POLLING_OK:
            if (!PQsendQuery(h->pg, h->gauges_sql)) {
                db_fail(h, "prepare");
                return;
            }
            db_sent(h, DB_PREPARING);
            return;
        default:
            db_fail(h, "connect");
            return;
        }
    }
    if ((revents & EV_WRITE) != 0) {
        int f = PQflush(h->pg);
        if (f < 0) {
            db_fail(h, "send");
            return;
        }
        db_watch(h, EV_READ | (f == 1 ? EV_WRITE : 0));
    }
    if ((revents & EV_READ) == 0)
        return;
    if (!PQconsumeInput(h->pg)) {
        db_fail(h, "read");
        return;
    }
    while (!PQisBusy(h->pg)) {
        r = PQgetResult(h->pg);
        if (r == NULL)
            break;
        if (h->db == DB_PREPARING) {
            /* the settings' SELECT, then the PREPARE */
            if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
                publish_failure(h, "prepare", PQresultErrorMessage(r));
                ok = 0;
            }
        } else if (h->db == DB_QUERYING) {
            if (take_gauges(h, r) != SK_OK) {
                publish_failure(h, "read gauges", PQresultErrorMessage(r));
                ok = 0;
            }
        }
        PQclear(r);
    }
    if (PQisBusy(h->pg))
        return; /* more to come */
    PQfreemem(PQnotifies(h->pg));
    if (!ok) {
        db_close(h); /* a schema without our tables, permissions...: reconnect next time */
        return;
    }
    if (h->db == DB_PREPARING)
        db_query(h); /* first read at once */
    else if (h->db == DB_QUERYING) {
        h->db = DB_IDLE;
        db_watch(h, EV_READ); /* notice a server that closes the connection */
    }
}

static void on_refresh(struct ev_loop *loop, ev_timer *w, int revents)
{
    http_t *h = w->data;

    (void)loop;
    (void)revents;
    switch (h->db) {
    case DB_DOWN:
        db_connect(h);
        break;
    case DB_IDLE:
        db_query(h);
        break;
    case DB_CONNECTING:
    case DB_PREPARING:
    case DB_QUERYING:
        if (now_ms() - h->db_since_ms > DB_TIMEOUT_MS) {
            publish_failure(h, h->db == DB_CONNECTING ? "connect" : "read gauges",
                            "no answer within 10 s");
            db_close(h);
        }
        break;
    }
}

/* ---- answers (request thread) ----------------------------------------------------------- */

static int workers_connected(const http_t *h, int *configured)
{
    sk_shm_t *shm = h->a->shm;
    int64_t now = now_ms(), stale = 2 * (int64_t)h->a->cfg->lease_ms;
    int n = 0;

    if (stale < STALL_MIN_MS)
        stale = STALL_MIN_MS;
    *configured = sk_shm_slots(shm);
    for (int i = 0; i < *configured; i++) {
        const sk_worker_slot_t *s = sk_shm_slot(shm, i);
        int32_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
        int64_t hb = atomic_load_explicit(&s->heartbeat_ms, memory_order_relaxed);
        if ((st == SK_WORKER_IDLE || st == SK_WORKER_BUSY) && now - hb < stale)
            n++;
    }
    return n;
}

static int readiness(http_t *h, char *reason, size_t len)
{
    sk_http_ready_in_t in;
    snapshot_t s;

    pthread_mutex_lock(&h->lock);
    s.db_ok = h->snap.db_ok;
    s.db_ok_ms = h->snap.db_ok_ms;
    s.schema = h->snap.schema;
    memcpy(s.db_error, h->snap.db_error, sizeof(s.db_error));
    pthread_mutex_unlock(&h->lock);
    memset(&in, 0, sizeof(in));
    in.master_state = (int)sk_shm_master_state(h->a->shm);
    in.db_ok = s.db_ok;
    in.db_age_ms = s.db_ok_ms > 0 ? now_ms() - s.db_ok_ms : -1;
    in.db_error = s.db_error;
    in.schema_have = s.schema.have;
    in.schema_known = sk_schema_version_known();
    in.schema_missing = s.schema.missing;
    in.schema_breaking = s.schema.breaking;
    in.workers_connected = workers_connected(h, &in.workers_configured);
    return sk_http_ready(&in, reason, len);
}

static int64_t heartbeat_age_ms(void)
{
    int64_t hb = sk_metrics_master_heartbeat_ms();

    return hb > 0 ? now_ms() - hb : -1;
}

static void gauge(FILE *out, const char *name, double v)
{
    sk_metrics_write_header(out, name);
    fprintf(out, "%s %.6g\n", name, v);
}

static void label(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', out);
        if (*s == '\n') {
            fputs("\\n", out);
            continue;
        }
        fputc(*s, out);
    }
}

static void queue_line(FILE *out, const char *name, const char *workflow, const wf_gauge_t *g,
                       int which)
{
    fprintf(out, "%s{workflow=\"", name);
    label(out, workflow);
    if (which == 1)
        fprintf(out, "\"} %.3f\n", g ? g->oldest_s : 0.0);
    else
        fprintf(out, "\"} %lld\n", g == NULL ? 0 : which == 0 ? g->ready : g->leased);
}

/* One series per workflow of the registry (0 when the queue has none of its
 * items, so rate() and alerts see a series), then any other workflow the
 * queue holds. */
static void queue_gauge(FILE *out, const snapshot_t *s, const char *name, int which)
{
    const char *wf;

    sk_metrics_write_header(out, name);
    for (size_t i = 0; (wf = sk_metrics_workflow(i)) != NULL; i++) {
        const wf_gauge_t *g = NULL;
        for (int k = 0; k < s->n_wf && g == NULL; k++) {
            if (strcmp(s->wf[k].workflow, wf) == 0)
                g = &s->wf[k];
        }
        queue_line(out, name, wf, g, which);
    }
    for (int k = 0; k < s->n_wf; k++) {
        int known = 0;
        for (size_t i = 0; (wf = sk_metrics_workflow(i)) != NULL && !known; i++)
            known = strcmp(s->wf[k].workflow, wf) == 0;
        if (!known)
            queue_line(out, name, s->wf[k].workflow, &s->wf[k], which);
    }
}

/* The whole exposition in a malloc'd buffer (*len bytes); NULL on failure. */
static char *render_metrics(http_t *h, size_t *len)
{
    char *buf = NULL, reason[300];
    FILE *out = open_memstream(&buf, len);
    snapshot_t *s;
    int configured, connected, ready;
    int64_t hb;
    sk_master_state_t st = sk_shm_master_state(h->a->shm);

    if (out == NULL)
        return NULL;
    s = malloc(sizeof(*s));
    if (s == NULL) {
        fclose(out);
        free(buf);
        return NULL;
    }
    pthread_mutex_lock(&h->lock);
    *s = h->snap;
    pthread_mutex_unlock(&h->lock);
    ready = readiness(h, reason, sizeof(reason));
    connected = workers_connected(h, &configured);
    hb = heartbeat_age_ms();

    sk_metrics_write_header(out, "stepkit_build_info");
    fprintf(out, "stepkit_build_info{version=\"%s\",schema_version=\"%d\"} 1\n", SK_VERSION,
            sk_schema_version_known());
    gauge(out, "stepkit_ready", ready);
    gauge(out, "stepkit_draining", st >= SK_MASTER_DRAINING);
    gauge(out, "stepkit_master_heartbeat_age_seconds", hb < 0 ? 0 : (double)hb / 1000.0);
    gauge(out, "stepkit_workers_configured", configured);
    gauge(out, "stepkit_workers_connected", connected);
    gauge(out, "stepkit_database_up", s->db_ok);
    if (sk_metrics_render(out) != SK_OK)
        fprintf(out, "# counters unavailable\n");
    if (s->db_ok_ms > 0) {
        /* Gauges from the database: only once it has been read. */
        queue_gauge(out, s, "stepkit_queue_ready_items", 0);
        queue_gauge(out, s, "stepkit_queue_oldest_ready_age_seconds", 1);
        queue_gauge(out, s, "stepkit_queue_leased_items", 2);
        gauge(out, "stepkit_queue_unregistered_ready_items", (double)s->unregistered_ready);
        sk_metrics_write_header(out, "stepkit_runs_waiting");
        fprintf(out, "stepkit_runs_waiting{reason=\"signal\"} %lld\n", s->wait_signal);
        fprintf(out, "stepkit_runs_waiting{reason=\"child\"} %lld\n", s->wait_child);
        fprintf(out, "stepkit_runs_waiting{reason=\"timer\"} %lld\n", s->wait_timer);
    }
    free(s);
    if (fclose(out) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type, char *body,
                             size_t len, int owned)
{
    struct MHD_Response *r;
    enum MHD_Result rc;

    r = owned ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
              : MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_COPY);
    if (r == NULL) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    rc = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned code, const char *msg)
{
    char line[400];
    int n = snprintf(line, sizeof(line), "%s\n", msg);

    return reply(c, code, CONTENT_TEXT, line,
                 n < 0                       ? 0
                 : (size_t)n >= sizeof(line) ? sizeof(line) - 1
                                             : (size_t)n,
                 0);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    http_t *h = cls;
    char reason[300];

    (void)version;
    if (h->ui != NULL && sk_ui_owns(url))
        return sk_ui_request(h->ui, c, url, method, upload_data, upload_size, con_cls);
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD");
    if (*upload_size != 0)
        return text(c, MHD_HTTP_BAD_REQUEST, "no request body expected");
    if (strcmp(url, "/livez") == 0) {
        int64_t age = heartbeat_age_ms();
        if (age >= 0 && age <= LIVE_MAX_AGE_MS)
            return text(c, MHD_HTTP_OK, "ok");
        snprintf(reason, sizeof(reason), "master supervision loop silent for %lld ms",
                 (long long)age);
        return text(c, MHD_HTTP_SERVICE_UNAVAILABLE, reason);
    }
    if (strcmp(url, "/readyz") == 0) {
        int ok = readiness(h, reason, sizeof(reason));
        return text(c, ok ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, reason);
    }
    if (strcmp(url, "/metrics") == 0) {
        size_t len = 0;
        char *body = render_metrics(h, &len);
        if (body == NULL)
            return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return reply(c, MHD_HTTP_OK, CONTENT_PROM, body, len, 1);
    }
    return text(c, MHD_HTTP_NOT_FOUND, "not found: try /livez, /readyz or /metrics");
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)c;
    (void)toe;
    sk_ui_completed(con_cls);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[300], line[300];

    (void)cls;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    one_line(line, sizeof(line), msg);
    sk_log_warn("event=http_server msg=\"%s\"", line);
}

/* ---- the process --------------------------------------------------------------------- */

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    http_t *h = w->data;

    (void)revents;
    sk_log_info("event=http_stopping signal=%d", w->signum);
    h->exit_code = EXIT_CLEAN;
    ev_break(loop, EVBREAK_ALL);
}

static void on_alive(struct ev_loop *loop, ev_io *w, int revents)
{
    char b;
    ssize_t n = read(w->fd, &b, 1);

    (void)revents;
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
        http_t *h = w->data;
        sk_log_warn("event=http_stopping reason=master_gone");
        h->exit_code = EXIT_CLEAN;
        ev_break(loop, EVBREAK_ALL);
    }
}

static struct MHD_Daemon *listen_on(http_t *h, const sk_http_addr_t *addr)
{
    struct sockaddr_storage ss;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;

    /* The dashboard suspends a connection while its database thread answers. */
    if (h->ui != NULL)
        flags |= MHD_ALLOW_SUSPEND_RESUME;
    sigset_t all, old;
    struct MHD_Daemon *d;

    memset(&ss, 0, sizeof(ss));
    if (addr->family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)addr->port);
        if (inet_pton(AF_INET6, addr->host, &s6->sin6_addr) != 1)
            return NULL;
        flags |= MHD_USE_IPv6;
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)addr->port);
        if (inet_pton(AF_INET, addr->host, &s4->sin_addr) != 1)
            return NULL;
    }
    /* The server's thread inherits a full mask: signals go to the main thread's loop. */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    d = MHD_start_daemon(flags, (uint16_t)addr->port, NULL, NULL, on_request, h,
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, (unsigned)32,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_NOTIFY_COMPLETED,
                         on_completed, NULL, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return d;
}

/* The gauges statement.  The schema is an identifier, never a value: the
 * configuration allows [a-z_][a-z0-9_]{0,62} only, checked again here, and
 * it is double-quoted.
 *
 * Every master reads it every REFRESH_S, so its cost must not grow with
 * the queue or the waits (issue 8): each count stops at GAUGE_COUNT_MAX
 * (per workflow for the queue), the workflows come from a walk of
 * exec_queue_ready's distinct keys (one descent each), a workflow's oldest
 * ready item is the first entry of its ready range, and its leases and
 * timers are counted among its first GAUGE_COUNT_MAX future items in due
 * order (a lease is due at its expiry, so it sorts before later sleeps and
 * retries).  Before, three passes over the whole queue: 2 M items cost
 * every master about a second of a core per read. */
static char *gauges_sql(const char *schema)
{
    char id[80], table[128];
    char *sql = NULL, *state;
    size_t len;
    FILE *f;

    if (!sk_pg_schema_valid(schema))
        return NULL;
    snprintf(id, sizeof(id), "\"%s\"", schema);
    snprintf(table, sizeof(table), "%s.schema_migrations", id);
    state = sk_schema_state_sql(table);
    if (state == NULL)
        return NULL;
    f = open_memstream(&sql, &len);
    if (f != NULL) {
        /* The planner settings of a keyed session (sk_pg.h), then the
         * statement: the schema's state for this binary (sk_migrate:
         * $1..$3), then the gauges; a workflow's ready items are counted
         * by queue_depth (sql/009), which stops at the bound too. */
        fprintf(f,
                "SELECT " SK_PG_KEYED_SETTINGS "; PREPARE " GAUGES_STMT " AS "
                "WITH RECURSIVE d(w) AS ("
                "   (SELECT q.workflow_id FROM %1$s.exec_queue q ORDER BY q.workflow_id LIMIT 1)"
                "   UNION ALL"
                "   SELECT (SELECT q.workflow_id FROM %1$s.exec_queue q WHERE q.workflow_id > d.w"
                "            ORDER BY q.workflow_id LIMIT 1)"
                "     FROM d WHERE d.w IS NOT NULL),"
                " g AS (SELECT d.w AS workflow_id, %1$s.queue_depth(ARRAY[d.w], %2$d) AS ready,"
                "   o.oldest, f.leased, f.timer,"
                "   EXISTS (SELECT 1 FROM %1$s.workflows w WHERE w.workflow_id = d.w) AS registered"
                "   FROM d"
                "   CROSS JOIN LATERAL (SELECT coalesce(extract(epoch FROM now() - (SELECT"
                "      q.visible_at FROM %1$s.exec_queue q"
                "      WHERE q.workflow_id = d.w AND q.visible_at <= now()"
                "      ORDER BY q.visible_at LIMIT 1)), 0)::float8 AS oldest) o"
                "   CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE s.leased) AS leased,"
                "      count(*) FILTER (WHERE NOT s.leased AND s.visible_at < 'infinity') AS timer"
                "      FROM (SELECT q.leased, q.visible_at FROM %1$s.exec_queue q"
                "      WHERE q.workflow_id = d.w AND q.visible_at > now()"
                "      ORDER BY q.visible_at LIMIT %2$d) s) f"
                "   WHERE d.w IS NOT NULL)"
                " SELECT st.*,"
                " (SELECT count(*) FROM (SELECT DISTINCT run_id FROM %1$s.waiting_signals"
                "   ORDER BY run_id LIMIT %2$d) s),"
                " (SELECT count(*) FROM (SELECT DISTINCT parent_run_id FROM %1$s.waiting_invokes"
                "   ORDER BY parent_run_id LIMIT %2$d) s),"
                " (SELECT coalesce(sum(timer), 0) FROM g),"
                " (SELECT coalesce(sum(ready), 0) FROM g WHERE NOT registered),"
                " g2.workflow_id, g2.ready, g2.oldest, g2.leased, g2.registered"
                " FROM (%3$s) st LEFT JOIN LATERAL ("
                "   SELECT * FROM g ORDER BY workflow_id LIMIT %4$d) g2 ON true",
                id, GAUGE_COUNT_MAX, state, MAX_GAUGE_WF);
        if (fclose(f) != 0) {
            free(sql);
            sql = NULL;
        }
    }
    free(state);
    return sql;
}

int sk_http_main(void *arg)
{
    static http_t h; /* static: the snapshots are large */
    const sk_http_args_t *a = arg;
    sk_http_addr_t addr;

    memset(&h, 0, sizeof(h));
    h.a = a;
    h.exit_code = EXIT_CRASH;
    pthread_mutex_init(&h.lock, NULL);
    if (sk_config_http_addr(a->cfg->http, &addr) != SK_OK) {
        sk_log_error("event=http_listen_failed addr=%s error=\"not ADDRESS:PORT\"", a->cfg->http);
        return EXIT_FATAL;
    }
    h.gauges_sql = gauges_sql(a->cfg->schema);
    if (h.gauges_sql == NULL || sk_schema_state_params(&h.schema_params) != SK_OK) {
        sk_log_error("event=http_start_failed reason=gauges_statement schema=%s", a->cfg->schema);
        return EXIT_FATAL;
    }
    h.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (h.loop == NULL) {
        sk_log_error("event=http_start_failed reason=ev_loop_new");
        goto done;
    }
    signal(SIGPIPE, SIG_IGN);
    if (a->cfg->ui) {
        char err[300];
        h.ui = sk_ui_start(a->cfg, err, sizeof(err));
        if (h.ui == NULL) {
            sk_log_error("event=http_start_failed reason=ui error=\"%s\"", err);
            h.exit_code = EXIT_FATAL;
            goto done;
        }
    }
    h.mhd = listen_on(&h, &addr);
    if (h.mhd == NULL) {
        sk_log_error("event=http_listen_failed addr=%s error=\"%s\"", a->cfg->http,
                     strerror(errno ? errno : EADDRINUSE));
        h.exit_code = EXIT_FATAL;
        goto done;
    }
    ev_signal_init(&h.sig_term, on_signal, SIGTERM);
    ev_signal_init(&h.sig_int, on_signal, SIGINT);
    ev_signal_init(&h.sig_quit, on_signal, SIGQUIT);
    h.sig_term.data = h.sig_int.data = h.sig_quit.data = &h;
    ev_signal_start(h.loop, &h.sig_term);
    ev_signal_start(h.loop, &h.sig_int);
    ev_signal_start(h.loop, &h.sig_quit);
    if (a->alive_fd >= 0) {
        ev_io_init(&h.alive, on_alive, a->alive_fd, EV_READ);
        h.alive.data = &h;
        ev_io_start(h.loop, &h.alive);
    }
    ev_init(&h.db_io, on_db);
    h.db_io.data = &h;
    ev_timer_init(&h.refresh, on_refresh, 0., REFRESH_S);
    h.refresh.data = &h;
    ev_timer_start(h.loop, &h.refresh);
    sk_log_info("event=http_listening addr=%s paths=/livez,/readyz,/metrics", a->cfg->http);
    if (h.ui != NULL)
        sk_log_info("event=ui_enabled path=/ui/ writable=%s",
                    a->cfg->ui_token_file[0] ? "yes" : "no");
    ev_run(h.loop, 0);
done:
    sk_ui_stop(h.ui); /* no connection may stay suspended when the daemon stops */
    if (h.mhd != NULL)
        MHD_stop_daemon(h.mhd);
    sk_ui_free(h.ui);
    if (h.loop != NULL) {
        db_close(&h);
        ev_loop_destroy(h.loop);
    }
    free(h.gauges_sql);
    pthread_mutex_destroy(&h.lock);
    return h.exit_code;
}
