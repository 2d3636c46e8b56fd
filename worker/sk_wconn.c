#include "sk_wconn.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sk_log.h"
#include "sk_pg.h"
#include "sk_migrate.h"
#include "sk_stmts.h"
#include "stepkit.h"

#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000
#define TRANSIENT_TRIES  3 /* runs of a batch a deadlock or serialization failure undid */
#define CHANNEL_MAX      (SK_NAME_MAX + 8)

typedef enum { CONN_DOWN, CONN_CONNECTING, CONN_READY } conn_state_t;

struct sk_wconn {
    struct ev_loop *loop;
    const sk_config_t *cfg;
    sk_wconn_cb_t cb;
    PGconn *pg;
    conn_state_t state;
    ev_io io;
    ev_timer retry;
    int backoff_ms;
    int timeout_ms;
    int notified;
    int fatal;
    char work_channel[CHANNEL_MAX];
    char done_channel[CHANNEL_MAX];
    char sqlstate[6]; /* of the last batch's first error; "" when none */
    char lost[1024];  /* DETAIL of the last batch's SK001 (batch_fence: the lost items) */
};

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_state(sk_wconn_t *c, conn_state_t st)
{
    static const char *const names[] = {"down", "connecting", "ready"};

    if (c->state != st)
        sk_log_debug("event=conn_state from=%s to=%s", names[c->state], names[st]);
    c->state = st;
}

static void drop(sk_wconn_t *c, const char *why)
{
    ev_io_stop(c->loop, &c->io);
    if (c->pg != NULL) {
        char msg[256];
        size_t n;
        snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c->pg));
        n = strcspn(msg, "\n");
        msg[n] = '\0';
        sk_log_warn("event=conn_lost reason=\"%s\" error=\"%s\" retry_ms=%d", why, msg,
                    c->backoff_ms);
        PQfinish(c->pg);
        c->pg = NULL;
    }
    set_state(c, CONN_DOWN);
    if (c->cb.lost)
        c->cb.lost(c->cb.arg);
    if (!c->fatal) {
        int delay = c->backoff_ms;
        c->backoff_ms = c->backoff_ms * 2 > RECONNECT_MAX_MS ? RECONNECT_MAX_MS : c->backoff_ms * 2;
        sk_wconn_connect(c, delay);
    }
}

/* ---- synchronous batches over the non-blocking socket ------------------------ */

static int wait_sock(sk_wconn_t *c, short events, int64_t deadline)
{
    struct pollfd pfd = {.fd = PQsocket(c->pg), .events = events};
    int64_t left;
    int rc;

    for (;;) {
        left = deadline - mono_ms();
        if (left <= 0)
            return SK_AGAIN;
        rc = poll(&pfd, 1, (int)left);
        if (rc > 0)
            return SK_OK;
        if (rc == 0)
            return SK_AGAIN;
        if (errno != EINTR)
            return SK_ERROR;
    }
}

static int flush_out(sk_wconn_t *c, int64_t deadline)
{
    int r;

    while ((r = PQflush(c->pg)) == 1) {
        /* The server may be waiting for us to read (notifications). */
        if (wait_sock(c, POLLOUT | POLLIN, deadline) != SK_OK || !PQconsumeInput(c->pg))
            return SK_ERROR;
    }
    return r == 0 ? SK_OK : SK_ERROR;
}

static void take_notifies(sk_wconn_t *c)
{
    PGnotify *n;

    while ((n = PQnotifies(c->pg)) != NULL) {
        if (strcmp(n->relname, c->work_channel) == 0)
            c->notified = 1;
        PQfreemem(n);
    }
}

/*
 * Read results until the pipeline's sync.  Results land in res[] by
 * command index.
 */
static int collect(sk_wconn_t *c, int n, PGresult **res, int64_t deadline, int *lease_lost,
                   char *err, size_t errlen)
{
    int idx = 0, failed = 0;

    c->sqlstate[0] = '\0';
    c->lost[0] = '\0';
    for (;;) {
        PGresult *r;
        while (PQisBusy(c->pg)) {
            if (wait_sock(c, POLLIN, deadline) != SK_OK) {
                snprintf(err, errlen, "database did not answer within %d ms", c->timeout_ms);
                return SK_ERROR;
            }
            if (!PQconsumeInput(c->pg)) {
                snprintf(err, errlen, "connection lost");
                return SK_ERROR;
            }
        }
        r = PQgetResult(c->pg);
        if (r == NULL) {
            idx++; /* end of one command's results */
            continue;
        }
        switch (PQresultStatus(r)) {
        case PGRES_PIPELINE_SYNC:
            PQclear(r);
            take_notifies(c);
            return failed ? SK_AGAIN : SK_OK;
        case PGRES_FATAL_ERROR: {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            if (state != NULL && strcmp(state, "SK001") == 0) {
                const char *d = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
                *lease_lost = 1;
                snprintf(c->lost, sizeof(c->lost), "%s", d ? d : "");
            } else if (!failed) {
                const char *m = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
                if (m == NULL)
                    m = PQresultErrorMessage(r);
                snprintf(err, errlen, "%.*s", (int)strcspn(m, "\n"), m);
                snprintf(c->sqlstate, sizeof(c->sqlstate), "%s", state ? state : "");
            }
            failed = 1;
            break;
        }
        default:
            break;
        }
        if (idx < n && res != NULL && res[idx] == NULL)
            res[idx] = r;
        else
            PQclear(r);
    }
}

static int send_sql(sk_wconn_t *c, const char *sql)
{
    return PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0);
}

static int run_once(sk_wconn_t *c, sk_cmd_t *cmds, int n, PGresult **res, char *err, size_t errlen)
{
    int64_t deadline = mono_ms() + c->timeout_ms;
    int lease_lost = 0, rc;

    err[0] = '\0';
    for (int i = 0; i < n && res != NULL; i++)
        res[i] = NULL;
    if (c->state != CONN_READY) {
        snprintf(err, errlen, "not connected");
        return SK_ERROR;
    }
    /* No BEGIN/COMMIT: the commands up to a pipeline's sync form one
     * implicit transaction, committed at the sync, rolled back as a whole
     * when one of them fails. */
    for (int i = 0; i < n; i++) {
        sk_cmd_t *k = &cmds[i];
        if (!PQsendQueryPrepared(c->pg, k->stmt, k->nparams, k->values, k->lengths, k->formats,
                                 k->binary_result))
            goto broken;
    }
    if (!PQpipelineSync(c->pg) || flush_out(c, deadline) != SK_OK)
        goto broken;
    rc = collect(c, n, res, deadline, &lease_lost, err, errlen);
    if (rc == SK_ERROR)
        goto broken;
    if (rc == SK_AGAIN) {
        if (lease_lost) {
            snprintf(err, errlen, "lease lost");
            return SK_AGAIN;
        }
        return sk_wconn_sqlstate_final(c->sqlstate) ? SK_WCONN_REFUSED : SK_ERROR;
    }
    return SK_OK;
broken:
    if (err[0] == '\0')
        snprintf(err, errlen, "%.*s", (int)strcspn(PQerrorMessage(c->pg), "\n"),
                 PQerrorMessage(c->pg));
    for (int i = 0; i < n && res != NULL; i++) {
        PQclear(res[i]);
        res[i] = NULL;
    }
    drop(c, "query failed");
    return SK_ERROR;
}

/* A deadlock or serialization failure rolled the whole batch back and
 * says nothing about the batch itself: the same commands may simply run
 * again (PostgreSQL's advice for 40P01 and 40001). */
static int transient(const char *state)
{
    return strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0;
}

int sk_wconn_run(sk_wconn_t *c, sk_cmd_t *cmds, int n, PGresult **res, char *err, size_t errlen)
{
    int rc;

    for (int attempt = 1;; attempt++) {
        rc = run_once(c, cmds, n, res, err, errlen);
        if (rc != SK_ERROR || c->state != CONN_READY || !transient(c->sqlstate) ||
            attempt == TRANSIENT_TRIES)
            return rc;
        sk_log_info("event=batch_retried sqlstate=%s attempt=%d error=\"%s\"", c->sqlstate, attempt,
                    err);
        for (int i = 0; i < n && res != NULL; i++) {
            PQclear(res[i]);
            res[i] = NULL;
        }
        /* A short, growing pause lets the other transaction finish. */
        usleep((useconds_t)(attempt * 2000));
    }
}

/* ---- connection set-up ---------------------------------------------------------- */

static int setup(sk_wconn_t *c)
{
    int64_t deadline = mono_ms() + c->timeout_ms;
    const char *params[1] = {c->cfg->schema};
    PGresult *res[3] = {NULL, NULL, NULL};
    char err[512] = "";
    char *ident = NULL, *listen = NULL;
    char why[400], *state_sql = NULL;
    sk_schema_params_t sp;
    sk_schema_state_t st;
    int lease_lost = 0, version, verdict, rc = SK_ERROR;
    size_t len;

    if (!PQenterPipelineMode(c->pg))
        goto done;
    /* search_path and the planner settings of a keyed session (sk_pg.h),
     * then the schema version: refuse to run against a schema this binary
     * does not understand. */
    if (!PQsendQueryParams(
            c->pg, "SELECT pg_catalog.set_config('search_path', $1, false), " SK_PG_KEYED_SETTINGS,
            1, NULL, params, NULL, NULL, 0) ||
        !PQsendQueryParams(c->pg,
                           "SELECT CASE WHEN to_regclass(quote_ident($1) || '.schema_migrations')"
                           " IS NULL THEN 0 ELSE -1 END",
                           1, NULL, params, NULL, NULL, 0) ||
        !PQpipelineSync(c->pg) || flush_out(c, deadline) != SK_OK ||
        collect(c, 2, res, deadline, &lease_lost, err, sizeof(err)) != SK_OK)
        goto done;
    version = atoi(PQgetvalue(res[1], 0, 0));
    PQclear(res[0]);
    PQclear(res[1]);
    res[0] = res[1] = NULL;
    memset(&st, 0, sizeof(st));
    if (version == -1) {
        /* The same rule as the master's start (sk_schema_check). */
        state_sql = sk_schema_state_sql("schema_migrations");
        if (state_sql == NULL || sk_schema_state_params(&sp) != SK_OK)
            goto done;
        if (!PQsendQueryParams(c->pg, state_sql, 3, NULL, sp.values, NULL, NULL, 0) ||
            !PQpipelineSync(c->pg) || flush_out(c, deadline) != SK_OK ||
            collect(c, 1, res, deadline, &lease_lost, err, sizeof(err)) != SK_OK)
            goto done;
        if (sk_schema_state_read(res[0], &st) != SK_OK)
            goto done;
    }
    verdict = sk_schema_verdict(&st, c->cfg->schema, why, sizeof(why));
    if (verdict != SK_OK) {
        sk_log_error("event=schema_mismatch schema=%s version=%d known=%d msg=\"%s\"",
                     c->cfg->schema, st.have, sk_schema_version_known(), why);
        c->fatal = 2;
        goto done;
    }
    /* LISTEN takes an identifier, which cannot be a parameter: quoted by libpq. */
    ident = PQescapeIdentifier(c->pg, c->work_channel, strlen(c->work_channel));
    if (ident == NULL)
        goto done;
    len = strlen(ident) + 8;
    listen = malloc(len);
    if (listen == NULL)
        goto done;
    snprintf(listen, len, "LISTEN %s", ident);
    if (!send_sql(c, listen))
        goto done;
    for (int i = 0; i < sk_stmts_count; i++) {
        if (sk_stmt_sql(i) != NULL &&
            !PQsendPrepare(c->pg, sk_stmts[i].name, sk_stmt_sql(i), 0, NULL))
            goto done;
    }
    if (!PQpipelineSync(c->pg) || flush_out(c, deadline) != SK_OK ||
        collect(c, 0, NULL, deadline, &lease_lost, err, sizeof(err)) != SK_OK)
        goto done;
    rc = SK_OK;
done:
    if (rc != SK_OK && err[0] != '\0')
        /* A refusal on a live connection is ours to fix; a lost one, the network's. */
        sk_log(PQstatus(c->pg) == CONNECTION_OK ? SK_LOG_ERROR : SK_LOG_WARN,
               "event=conn_setup_failed error=\"%s\"", err);
    for (int i = 0; i < 3; i++)
        PQclear(res[i]);
    free(listen);
    free(state_sql);
    PQfreemem(ident);
    return rc;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents);

static void watch(sk_wconn_t *c, int events)
{
    ev_io_stop(c->loop, &c->io);
    /* Set the fd every time: after a reconnect the number may be the same
     * while the socket is new. */
    ev_io_set(&c->io, PQsocket(c->pg), events);
    ev_io_start(c->loop, &c->io);
}

static void connect_poll(sk_wconn_t *c)
{
    switch (PQconnectPoll(c->pg)) {
    case PGRES_POLLING_READING:
        watch(c, EV_READ);
        return;
    case PGRES_POLLING_WRITING:
        watch(c, EV_WRITE);
        return;
    case PGRES_POLLING_OK:
        ev_io_stop(c->loop, &c->io);
        if (setup(c) != SK_OK) {
            /* The server answered and refused (a statement of ours failed on
             * a live connection): a broken schema, not an outage.  Reconnecting
             * in place would repeat it forever; exit 1 and let the master's
             * backoff and crash-loop limit decide. */
            if (!c->fatal && PQstatus(c->pg) == CONNECTION_OK)
                c->fatal = 1;
            drop(c, "setup failed");
            return;
        }
        c->backoff_ms = RECONNECT_MIN_MS;
        set_state(c, CONN_READY);
        sk_log_info("event=connected");
        watch(c, EV_READ);
        /* Notifications sent while we were away are lost: poll at once. */
        if (c->cb.ready)
            c->cb.ready(c->cb.arg);
        return;
    default:
        drop(c, "connect failed");
        return;
    }
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    sk_wconn_t *c = w->data;

    (void)loop;
    (void)revents;
    if (c->state == CONN_CONNECTING) {
        connect_poll(c);
        return;
    }
    if (c->state != CONN_READY)
        return;
    if (!PQconsumeInput(c->pg)) {
        drop(c, "read failed");
        return;
    }
    take_notifies(c);
    if (c->notified && c->cb.notify) {
        c->notified = 0;
        c->cb.notify(c->cb.arg);
    }
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    sk_wconn_t *c = w->data;
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {c->cfg->database_url[0] ? c->cfg->database_url : NULL, "stepkit-worker",
                          NULL};

    (void)loop;
    (void)revents;
    c->pg = PQconnectStartParams(keys, vals, 1);
    if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD) {
        drop(c, "connect failed");
        return;
    }
    if (PQsetnonblocking(c->pg, 1) != 0) {
        drop(c, "set non-blocking failed");
        return;
    }
    set_state(c, CONN_CONNECTING);
    watch(c, EV_WRITE);
}

sk_wconn_t *sk_wconn_new(struct ev_loop *loop, const sk_config_t *cfg, const sk_wconn_cb_t *cb)
{
    sk_wconn_t *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->cfg = cfg;
    c->cb = *cb;
    c->backoff_ms = RECONNECT_MIN_MS;
    /* Long enough for a slow commit, short enough to notice a dead server
     * before our lease runs out. */
    c->timeout_ms = cfg->lease_ms > 10000 ? cfg->lease_ms : 10000;
    snprintf(c->work_channel, sizeof(c->work_channel), "%s.work", cfg->schema);
    snprintf(c->done_channel, sizeof(c->done_channel), "%s.done", cfg->schema);
    ev_init(&c->io, io_cb);
    c->io.data = c;
    ev_init(&c->retry, retry_cb);
    c->retry.data = c;
    return c;
}

void sk_wconn_free(sk_wconn_t *c)
{
    if (c == NULL)
        return;
    ev_io_stop(c->loop, &c->io);
    ev_timer_stop(c->loop, &c->retry);
    if (c->pg != NULL)
        PQfinish(c->pg);
    free(c);
}

void sk_wconn_connect(sk_wconn_t *c, int delay_ms)
{
    ev_timer_stop(c->loop, &c->retry);
    ev_timer_set(&c->retry, delay_ms / 1000.0, 0.);
    ev_timer_start(c->loop, &c->retry);
}

int sk_wconn_ready(const sk_wconn_t *c)
{
    return c->state == CONN_READY;
}

void sk_wconn_quiet(sk_wconn_t *c)
{
    ev_io_stop(c->loop, &c->io);
    ev_timer_stop(c->loop, &c->retry);
}

const char *sk_wconn_done_channel(const sk_wconn_t *c)
{
    return c->done_channel;
}

int sk_wconn_take_notified(sk_wconn_t *c)
{
    int n = c->notified;

    c->notified = 0;
    return n;
}

/* Classes whose errors do not go away by trying again: data exceptions
 * (22: value too long, invalid encoding...), integrity constraints (23),
 * syntax or access rule violations (42, but not a missing privilege, which
 * an operator may grant), program limits (54: index row too large...) and
 * PL/pgSQL raises (P0).  Not: 40 (serialization, deadlock), 53
 * (resources), 57 (operator intervention), 08 (connection), 55 (lock not
 * available), XX, nor our own SK codes (SK001: lease lost). */
int sk_wconn_sqlstate_final(const char *state)
{
    static const char *const classes[] = {"22", "23", "42", "54", "P0"};

    if (state == NULL || strlen(state) != 5 || strcmp(state, "42501") == 0)
        return 0;
    for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++) {
        if (strncmp(state, classes[i], 2) == 0)
            return 1;
    }
    return 0;
}

const char *sk_wconn_lost_detail(const sk_wconn_t *c)
{
    return c->lost;
}

const char *sk_wconn_sqlstate(const sk_wconn_t *c)
{
    return c->sqlstate;
}

int sk_wconn_fatal(const sk_wconn_t *c)
{
    return c->fatal;
}
