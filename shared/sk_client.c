/* The client API (stepkit_client.h): blocking libpq, one connection. */
#include "stepkit_client.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "sk_client_int.h"
#include "sk_json.h"
#include "sk_limits.h"
#include "sk_pg.h"
#include "stepkit.h"

/* One path for every start: start_run_msgpack (sql/002_sql_api.sql) is
 * also what stepkit.start_run() calls from SQL. */
static const char start_sql[] =
    "SELECT run_id::text, event_id::text FROM start_run_msgpack($1, $2::bytea, $3::bool)";

static const char send_event_sql[] =
    "SELECT event_id::text, run_id::text FROM send_event_msgpack($1, $2::bytea, $3::uuid)";

/* SQLSTATE of start_run_msgpack for a workflow no master has registered. */
#define SQLSTATE_UNKNOWN_WORKFLOW "SK002"

static const char get_sql[] = "SELECT status, output, error FROM runs WHERE run_id = $1::uuid";

/* Ask for a NOTIFY at the end (a run started without one). */
static const char want_sql[] =
    "UPDATE runs SET notify_end = true WHERE run_id = $1::uuid AND status = 'pending'"
    " AND NOT notify_end";

/* A payload from the caller: nil when none, else checked msgpack. */
static int payload(const char **data, size_t *len, char *err, size_t errlen)
{
    static const char nil = (char)0xc0;

    if (*data == NULL || *len == 0) {
        *data = &nil;
        *len = 1;
        return SK_OK;
    }
    return sk_msgpack_check(*data, *len, err, errlen);
}

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int uuid_ok(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

sk_client_t *sk_client_connect(const char *conninfo, const char *schema, char *err, size_t errlen)
{
    sk_client_t *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(c->schema, sizeof(c->schema), "%s", schema ? schema : "stepkit");
    snprintf(c->done_channel, sizeof(c->done_channel), "%s.done", c->schema);
    c->pg = sk_pg_connect(conninfo, c->schema, "stepkit-client", err, errlen);
    if (c->pg == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

void sk_client_close(sk_client_t *c)
{
    if (c == NULL)
        return;
    PQfinish(c->pg);
    free(c);
}

void sk_run_result_clear(sk_run_result_t *res)
{
    free(res->output);
    free(res->error);
    memset(res, 0, sizeof(*res));
}

static int start(sk_client_t *c, const char *workflow, const char *data, size_t len, int notify,
                 char run_id[SK_UUID_LEN], char event_id[SK_UUID_LEN], char *err, size_t errlen)
{
    const char *params[3];
    int lengths[3] = {0, 0, 0}, formats[3] = {0, 1, 0};
    PGresult *res;
    int rc = SK_ERROR;

    if (sk_name_check("a workflow id", workflow, SK_NAME_NO_BREAKS, err, errlen) != SK_OK)
        return SK_ERROR;
    if (payload(&data, &len, err, errlen) != SK_OK)
        return SK_ERROR;
    params[0] = workflow;
    params[1] = data;
    lengths[1] = (int)len;
    params[2] = notify ? "true" : "false";
    res = PQexecParams(c->pg, start_sql, 3, NULL, params, lengths, formats, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != NULL && strcmp(state, SQLSTATE_UNKNOWN_WORKFLOW) == 0)
            snprintf(err, errlen,
                     "unknown workflow '%s': no master has registered it in schema \"%s\"",
                     workflow, c->schema);
        else
            sk_pg_error(c->pg, res, "start run", err, errlen);
        goto done;
    }
    if (PQntuples(res) != 1) {
        snprintf(err, errlen, "start run: %d rows returned, expected 1", PQntuples(res));
        goto done;
    }
    snprintf(run_id, SK_UUID_LEN, "%s", PQgetvalue(res, 0, 0));
    if (event_id != NULL)
        snprintf(event_id, SK_UUID_LEN, "%s", PQgetvalue(res, 0, 1));
    rc = SK_OK;
done:
    PQclear(res);
    return rc;
}

int sk_client_start(sk_client_t *c, const char *workflow, const char *data, size_t len,
                    char run_id[SK_UUID_LEN], char event_id[SK_UUID_LEN], char *err, size_t errlen)
{
    return start(c, workflow, data, len, 0, run_id, event_id, err, errlen);
}

static char *copy_bytes(const PGresult *res, int col, size_t *len)
{
    char *p;

    *len = 0;
    if (PQgetisnull(res, 0, col))
        return NULL;
    *len = (size_t)PQgetlength(res, 0, col);
    p = malloc(*len ? *len : 1);
    if (p != NULL)
        memcpy(p, PQgetvalue(res, 0, col), *len);
    return p;
}

/* The one row `sql` ($1 = the run id) returns, in binary format (bytea as
 * raw msgpack; the other columns are text).  NULL with err when the id is
 * not a UUID, the query fails or there is no such run. */
static PGresult *run_row(sk_client_t *c, const char *sql, const char *run_id, char *err,
                         size_t errlen)
{
    const char *params[1] = {run_id};
    PGresult *res;

    if (!uuid_ok(run_id)) {
        snprintf(err, errlen, "'%s' is not a run id (a UUID)", run_id ? run_id : "");
        return NULL;
    }
    res = PQexecParams(c->pg, sql, 1, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sk_pg_error(c->pg, res, "read run", err, errlen);
        PQclear(res);
        return NULL;
    }
    if (PQntuples(res) != 1) {
        snprintf(err, errlen, "no run %s", run_id);
        PQclear(res);
        return NULL;
    }
    return res;
}

int sk_client_get(sk_client_t *c, const char *run_id, sk_run_result_t *out, char *err,
                  size_t errlen)
{
    PGresult *res;

    memset(out, 0, sizeof(*out));
    res = run_row(c, get_sql, run_id, err, errlen);
    if (res == NULL)
        return SK_ERROR;
    snprintf(out->run_id, sizeof(out->run_id), "%s", run_id);
    snprintf(out->status, sizeof(out->status), "%s", PQgetvalue(res, 0, 0));
    out->output = copy_bytes(res, 1, &out->output_len);
    out->error = copy_bytes(res, 2, &out->error_len);
    PQclear(res);
    return SK_OK;
}

static int listen_done(sk_client_t *c, char *err, size_t errlen)
{
    char *ident, *sql;
    PGresult *res;
    size_t n;
    int rc = SK_ERROR;

    if (c->listening)
        return SK_OK;
    /* A channel name is an identifier: quoted by libpq, never a value. */
    ident = PQescapeIdentifier(c->pg, c->done_channel, strlen(c->done_channel));
    if (ident == NULL) {
        sk_pg_error(c->pg, NULL, "listen", err, errlen);
        return SK_ERROR;
    }
    n = strlen(ident) + 8;
    sql = malloc(n);
    if (sql != NULL) {
        snprintf(sql, n, "LISTEN %s", ident);
        res = PQexec(c->pg, sql);
        if (PQresultStatus(res) == PGRES_COMMAND_OK) {
            c->listening = 1;
            rc = SK_OK;
        } else {
            sk_pg_error(c->pg, res, "listen", err, errlen);
        }
        PQclear(res);
        free(sql);
    }
    PQfreemem(ident);
    return rc;
}

/* Drop queued notifications; true when there were any. */
static int drain_notifies(sk_client_t *c)
{
    PGnotify *n;
    int any = 0;

    while ((n = PQnotifies(c->pg)) != NULL) {
        PQfreemem(n);
        any = 1;
    }
    return any;
}

/* `asked`: the run already has notify_end (we started it that way). */
static int wait_run(sk_client_t *c, const char *run_id, int timeout_ms, int asked,
                    sk_run_result_t *out, char *err, size_t errlen)
{
    int64_t deadline = timeout_ms >= 0 ? mono_ms() + timeout_ms : -1;
    const char *params[1] = {run_id};
    PGresult *res;
    /* A run we just started with notify_end cannot have ended unnoticed:
     * we listened before starting it, so wait for the wake-up first. */
    int look = !asked;

    if (listen_done(c, err, errlen) != SK_OK)
        return SK_ERROR;

    for (;;) {
        struct pollfd pfd;
        int64_t left;
        int wait_ms;

        if (look) {
            if (sk_client_get(c, run_id, out, err, errlen) != SK_OK)
                return SK_ERROR;
            if (strcmp(out->status, "pending") != 0)
                return SK_OK;
            sk_run_result_clear(out);
        }
        look = 1;
        /* A notification that came in with the answer sits in libpq's
         * queue, where poll() cannot see it: the run may have ended just
         * after our snapshot, so look again at once. */
        if (drain_notifies(c))
            continue;
        if (!asked) {
            res = PQexecParams(c->pg, want_sql, 1, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                sk_pg_error(c->pg, res, "wait", err, errlen);
                PQclear(res);
                return SK_ERROR;
            }
            PQclear(res);
            asked = 1;
            continue; /* it may have ended before the flag was set */
        }
        left = deadline < 0 ? 1000 : deadline - mono_ms();
        if (left <= 0)
            return SK_AGAIN;
        /* NOTIFY wakes us; the 1 s cap only guards against a lost wake-up. */
        wait_ms = left > 1000 ? 1000 : (int)left;
        pfd.fd = PQsocket(c->pg);
        pfd.events = POLLIN;
        if (poll(&pfd, 1, wait_ms) < 0 && errno != EINTR) {
            snprintf(err, errlen, "poll: %s", strerror(errno));
            return SK_ERROR;
        }
        if (!PQconsumeInput(c->pg)) {
            sk_pg_error(c->pg, NULL, "wait", err, errlen);
            return SK_ERROR;
        }
        drain_notifies(c); /* answered by the query that follows */
    }
}

int sk_client_wait(sk_client_t *c, const char *run_id, int timeout_ms, sk_run_result_t *out,
                   char *err, size_t errlen)
{
    return wait_run(c, run_id, timeout_ms, 0, out, err, errlen);
}

int sk_client_invoke(sk_client_t *c, const char *workflow, const char *data, size_t len,
                     int timeout_ms, sk_run_result_t *out, char *err, size_t errlen)
{
    char run_id[SK_UUID_LEN];
    int rc;

    memset(out, 0, sizeof(*out));
    if (listen_done(c, err, errlen) != SK_OK)
        return SK_ERROR;
    if (start(c, workflow, data, len, 1, run_id, NULL, err, errlen) != SK_OK)
        return SK_ERROR;
    rc = wait_run(c, run_id, timeout_ms, 1, out, err, errlen);
    if (rc == SK_AGAIN)
        snprintf(out->run_id, sizeof(out->run_id), "%s", run_id);
    return rc;
}

int sk_client_signal(sk_client_t *c, const char *signal, const char *data, size_t len,
                     char run_id[SK_UUID_LEN], char *err, size_t errlen)
{
    const char *params[2];
    int lengths[2] = {0, 0}, formats[2] = {0, 1};
    PGresult *res;
    int rc = SK_ERROR;

    run_id[0] = '\0';
    if (sk_name_check("a signal name", signal, 0, err, errlen) != SK_OK)
        return SK_ERROR;
    if (payload(&data, &len, err, errlen) != SK_OK)
        return SK_ERROR;
    params[0] = signal;
    params[1] = data;
    lengths[1] = (int)len;
    res = PQexecParams(c->pg, "SELECT deliver_signal($1, $2::bytea)::text", 2, NULL, params,
                       lengths, formats, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        sk_pg_error(c->pg, res, "send signal", err, errlen);
        goto done;
    }
    if (!PQgetisnull(res, 0, 0))
        snprintf(run_id, SK_UUID_LEN, "%s", PQgetvalue(res, 0, 0));
    rc = SK_OK;
done:
    PQclear(res);
    return rc;
}

void sk_event_result_clear(sk_event_result_t *res)
{
    free(res->run_ids);
    memset(res, 0, sizeof(*res));
}

int sk_client_send_event(sk_client_t *c, const char *name, const char *data, size_t len,
                         const char *event_id, sk_event_result_t *out, char *err, size_t errlen)
{
    const char *params[3];
    int lengths[3] = {0, 0, 0}, formats[3] = {0, 1, 0};
    PGresult *res;
    int rc = SK_ERROR, n;

    memset(out, 0, sizeof(*out));
    if (sk_name_check("an event name", name, SK_NAME_NO_BREAKS, err, errlen) != SK_OK)
        return SK_ERROR;
    if (event_id != NULL && !uuid_ok(event_id)) {
        snprintf(err, errlen, "'%s' is not an event id (a UUID)", event_id);
        return SK_ERROR;
    }
    if (payload(&data, &len, err, errlen) != SK_OK)
        return SK_ERROR;
    params[0] = name;
    params[1] = data;
    lengths[1] = (int)len;
    params[2] = event_id; /* NULL: a fresh id */
    res = PQexecParams(c->pg, send_event_sql, 3, NULL, params, lengths, formats, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sk_pg_error(c->pg, res, "send event", err, errlen);
        goto done;
    }
    n = PQntuples(res);
    if (n < 1) {
        snprintf(err, errlen, "send event: no row returned");
        goto done;
    }
    snprintf(out->event_id, sizeof(out->event_id), "%s", PQgetvalue(res, 0, 0));
    /* One row per run started; a single row with a NULL run when none was. */
    if (n > 1 || !PQgetisnull(res, 0, 1)) {
        out->run_ids = calloc((size_t)n, sizeof(*out->run_ids));
        if (out->run_ids == NULL) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        for (int i = 0; i < n; i++)
            snprintf(out->run_ids[i], SK_UUID_LEN, "%s", PQgetvalue(res, i, 1));
        out->n_runs = (size_t)n;
    }
    rc = SK_OK;
done:
    PQclear(res);
    return rc;
}

/* ---- run details as JSON ---------------------------------------------------------- */

static json_t *bytes_json(const PGresult *res, int row, int col)
{
    char err[256];
    char *text;
    json_t *j;

    if (PQgetisnull(res, row, col))
        return json_null();
    text = sk_msgpack_bytes_to_json(PQgetvalue(res, row, col), (size_t)PQgetlength(res, row, col),
                                    err, sizeof(err));
    if (text == NULL)
        return json_pack("{s:s}", "unreadable", err);
    j = json_loads(text, JSON_DECODE_ANY, NULL);
    free(text);
    return j ? j : json_null();
}

static json_t *text_json(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

/* What a waiting op waits for: {kind, until (ISO-8601 or null), signal | child}. */
static json_t *wait_json(const PGresult *res, int row, int col)
{
    json_t *w = bytes_json(res, row, col);
    json_t *until = json_object_get(w, "until");

    if (json_is_integer(until)) {
        long long ms = json_integer_value(until);
        time_t t = (time_t)(ms / 1000);
        struct tm tm;
        char buf[40];
        gmtime_r(&t, &tm);
        if (strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm) > 0) {
            char iso[48];
            snprintf(iso, sizeof(iso), "%s.%03dZ", buf, (int)(ms % 1000));
            json_object_set_new(w, "until", json_string(iso));
        }
    }
    return w;
}

char *sk_client_run_json(sk_client_t *c, const char *run_id, char *err, size_t errlen)
{
    /* The state of a pending run, from its queue item: leased by a worker
     * (running), visible now (queued), or held back for a retry or for
     * the ops it waits on (sleep, signal, child run). */
    static const char run_sql[] =
        "SELECT r.run_id::text, r.workflow_id,"
        "       CASE WHEN r.status <> 'pending' THEN r.status"
        "            WHEN q.leased THEN 'running'"
        "            WHEN q.visible_at <= now() THEN 'queued'"
        "            WHEN EXISTS (SELECT 1 FROM ops o WHERE o.run_id = r.run_id"
        "                            AND o.status = 'retry') THEN 'retrying'"
        "            WHEN EXISTS (SELECT 1 FROM ops o WHERE o.run_id = r.run_id"
        "                            AND o.status = 'waiting') THEN 'waiting'"
        "            ELSE 'scheduled' END,"
        "       r.event_id::text, r.trigger_type, r.trigger_name, r.data, r.output, r.error,"
        "       to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
        "       to_char(r.ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        "  FROM runs r LEFT JOIN exec_queue q ON q.run_id = r.run_id AND q.op_key IS NULL"
        " WHERE r.run_id = $1::uuid";
    static const char ops_sql[] =
        "SELECT step_id, op_key, kind, status, attempts::text, result,"
        "       to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
        "       to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
        "       wait_info"
        "  FROM ops WHERE run_id = $1::uuid ORDER BY ended_at, started_at";
    const char *params[1] = {run_id};
    PGresult *res = NULL, *ops = NULL;
    json_t *root = NULL, *steps, *input;
    char *out = NULL;
    const char *status;

    res = run_row(c, run_sql, run_id, err, errlen);
    if (res == NULL)
        return NULL;
    ops = PQexecParams(c->pg, ops_sql, 1, NULL, params, NULL, NULL, 1);
    if (PQresultStatus(ops) != PGRES_TUPLES_OK) {
        sk_pg_error(c->pg, ops, "read steps", err, errlen);
        goto done;
    }
    status = PQgetvalue(res, 0, 2);
    input = json_object();
    json_object_set_new(input, "data", bytes_json(res, 0, 6));
    json_object_set_new(input, "id", text_json(res, 0, 3));
    json_object_set_new(input, "name", text_json(res, 0, 5));
    json_object_set_new(input, "type", text_json(res, 0, 4));
    root = json_object();
    json_object_set_new(root, "run_id", text_json(res, 0, 0));
    json_object_set_new(root, "workflow", text_json(res, 0, 1));
    json_object_set_new(root, "status", json_string(status));
    json_object_set_new(root, "input", input);
    json_object_set_new(root, "output", bytes_json(res, 0, 7));
    json_object_set_new(root, "error", bytes_json(res, 0, 8));
    json_object_set_new(root, "created_at", text_json(res, 0, 9));
    json_object_set_new(root, "ended_at", text_json(res, 0, 10));
    steps = json_array();
    for (int i = 0; i < PQntuples(ops); i++) {
        json_t *s = json_object();
        int ok = strcmp(PQgetvalue(ops, i, 3), "ok") == 0;
        json_object_set_new(s, "step_id", text_json(ops, i, 0));
        json_object_set_new(s, "op_key", text_json(ops, i, 1));
        json_object_set_new(s, "kind", text_json(ops, i, 2));
        json_object_set_new(s, "status", text_json(ops, i, 3));
        json_object_set_new(s, "attempts", json_integer(atoi(PQgetvalue(ops, i, 4))));
        if (strcmp(PQgetvalue(ops, i, 3), "waiting") != 0)
            json_object_set_new(s, ok ? "output" : "error", bytes_json(ops, i, 5));
        json_object_set_new(s, "started_at", text_json(ops, i, 6));
        if (strcmp(PQgetvalue(ops, i, 3), "waiting") == 0)
            json_object_set_new(s, "waiting_for", wait_json(ops, i, 8));
        else
            json_object_set_new(s, "ended_at", text_json(ops, i, 7));
        json_array_append_new(steps, s);
    }
    json_object_set_new(root, "steps", steps);
    if (sk_client_run_extra(c, run_id, root, err, errlen) != SK_OK)
        goto done;
    out = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (out == NULL)
        snprintf(err, errlen, "out of memory");
done:
    json_decref(root);
    PQclear(res);
    PQclear(ops);
    return out;
}
