/* Run management in the client API (stepkit_client.h): start with options,
 * list, cancel, retry, prune, stats.  Every operation is one call of a SQL
 * function of sql/007_runs.sql, so SQL callers get the same behaviour. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sk_client_int.h"
#include "sk_json.h"
#include "sk_pg.h"
#include "stepkit.h"

#define ISO(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

static int uuid_ok(const char *s)
{
    if (s == NULL || strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
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

static int check_run_id(const char *run_id, char *err, size_t errlen)
{
    if (uuid_ok(run_id))
        return SK_OK;
    snprintf(err, errlen, "'%s' is not a run id (a UUID)", run_id ? run_id : "");
    return SK_ERROR;
}

/* One statement, text parameters (NULL = SQL NULL), text results.  NULL
 * with err filled (what: the operation, for the message). */
static PGresult *query(sk_client_t *c, const char *sql, int n, const char *const *params,
                       const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sk_pg_error(c->pg, res, what, err, errlen);
        PQclear(res);
        return NULL;
    }
    return res;
}

static json_t *text_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null() : json_string(PQgetvalue(res, row, col));
}

static json_t *int_or_null(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? json_null()
                                      : json_integer(strtoll(PQgetvalue(res, row, col), NULL, 10));
}

/* An error map (bytea in text form, \x...) as JSON. */
static json_t *error_json(const PGresult *res, int row, int col)
{
    char err[256];
    size_t len;
    unsigned char *bytes;
    char *text;
    json_t *j;

    if (PQgetisnull(res, row, col))
        return json_null();
    bytes = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), &len);
    if (bytes == NULL)
        return json_null();
    text = sk_msgpack_bytes_to_json((const char *)bytes, len, err, sizeof(err));
    PQfreemem(bytes);
    if (text == NULL)
        return json_pack("{s:s}", "unreadable", err);
    j = json_loads(text, JSON_DECODE_ANY, NULL);
    free(text);
    return j ? j : json_null();
}

static char *dump(json_t *j, char *err, size_t errlen)
{
    char *out = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);

    if (out == NULL)
        snprintf(err, errlen, "out of memory");
    json_decref(j);
    return out;
}

/* ---- start with options ------------------------------------------------------------ */

int sk_client_start_opts(sk_client_t *c, const char *workflow, const char *data, size_t len,
                         const sk_start_opts_t *opts, char run_id[SK_UUID_LEN],
                         char event_id[SK_UUID_LEN], int *created, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT run_id::text, event_id::text, created FROM start_run_ext_msgpack($1, $2::bytea,"
        " false, $3, coalesce($4::timestamptz,"
        "                     now() + $5::int8 * interval '1 millisecond'), $6::bool)";
    /* With a priority (010_flow): a run this start created gets it in the
     * same statement; the run an earlier start with the key made keeps its
     * own (flow_set_priority with a NULL run changes nothing). */
    static const char prio_sql[] =
        "SELECT s.run_id::text, s.event_id::text, s.created,"
        "       flow_set_priority(CASE WHEN s.created THEN s.run_id END, $7::int)"
        "  FROM start_run_ext_msgpack($1, $2::bytea, false, $3, coalesce($4::timestamptz,"
        "       now() + $5::int8 * interval '1 millisecond'), $6::bool) s";
    static const char nil = (char)0xc0;
    const char *params[7];
    int lengths[7] = {0, 0, 0, 0, 0, 0, 0}, formats[7] = {0, 1, 0, 0, 0, 0, 0};
    char delay[24], prio[16];
    int has_prio = opts != NULL && opts->has_priority;
    PGresult *res;
    int rc = SK_ERROR;

    if (workflow == NULL || *workflow == '\0') {
        snprintf(err, errlen, "a workflow id is required");
        return SK_ERROR;
    }
    if (data == NULL || len == 0) {
        data = &nil;
        len = 1;
    } else if (sk_msgpack_check(data, len, err, errlen) != SK_OK) {
        return SK_ERROR;
    }
    if (opts != NULL && opts->start_at != NULL && opts->delay_ms > 0) {
        snprintf(err, errlen, "give a start time or a delay, not both");
        return SK_ERROR;
    }
    if (opts != NULL && opts->delay_ms < 0) {
        snprintf(err, errlen, "a delay cannot be negative");
        return SK_ERROR;
    }
    if (has_prio && (opts->priority < 0 || opts->priority > 86400)) {
        snprintf(err, errlen, "priority %d is out of range 0..86400", opts->priority);
        return SK_ERROR;
    }
    if (has_prio && (opts->start_at != NULL || opts->delay_ms > 0)) {
        snprintf(err, errlen,
                 "a priority cannot be given with a start time or a delay (a delayed "
                 "run ranks by its due time)");
        return SK_ERROR;
    }
    snprintf(prio, sizeof(prio), "%d", has_prio ? opts->priority : 0);
    snprintf(delay, sizeof(delay), "%lld", opts && opts->delay_ms > 0 ? opts->delay_ms : 0LL);
    params[0] = workflow;
    params[1] = data;
    lengths[1] = (int)len;
    params[2] = opts ? opts->key : NULL;
    params[3] = opts ? opts->start_at : NULL;
    params[4] = opts && opts->delay_ms > 0 ? delay : NULL;
    params[5] = opts && opts->require_registered ? "true" : "false";
    params[6] = prio;
    res = has_prio ? PQexecParams(c->pg, prio_sql, 7, NULL, params, lengths, formats, 0)
                   : PQexecParams(c->pg, sql, 6, NULL, params, lengths, formats, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state != NULL && strcmp(state, "SK002") == 0)
            snprintf(err, errlen,
                     "unknown workflow '%s': no master has registered it in schema \"%s\"",
                     workflow, c->schema);
        else
            sk_pg_error(c->pg, res, "start run", err, errlen);
        goto done;
    }
    snprintf(run_id, SK_UUID_LEN, "%s", PQgetvalue(res, 0, 0));
    if (event_id != NULL)
        snprintf(event_id, SK_UUID_LEN, "%s", PQgetvalue(res, 0, 1));
    if (created != NULL)
        *created = strcmp(PQgetvalue(res, 0, 2), "t") == 0;
    rc = SK_OK;
done:
    PQclear(res);
    return rc;
}

/* ---- cancel and retry ----------------------------------------------------------------- */

int sk_client_cancel(sk_client_t *c, const char *run_id, const char *reason, int *cancelled,
                     char *err, size_t errlen)
{
    const char *params[2] = {run_id, reason};
    PGresult *res;

    if (check_run_id(run_id, err, errlen) != SK_OK)
        return SK_ERROR;
    res = query(c, "SELECT cancel_run($1::uuid, $2)", 2, params, "cancel", err, errlen);
    if (res == NULL)
        return SK_ERROR;
    if (cancelled != NULL)
        *cancelled = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return SK_OK;
}

int sk_client_cancel_where(sk_client_t *c, const char *workflow, const char *state,
                           const char *reason, int dry_run, long long *count, char *err,
                           size_t errlen)
{
    const char *params[4] = {workflow, state, reason, dry_run ? "true" : "false"};
    long long n;

    *count = 0;
    /* Batches of 500 roots, each its own transaction: a large set never
     * holds its locks for long. */
    do {
        PGresult *res = query(c, "SELECT cancel_runs($1, $2, $3, 500, $4::bool)", 4, params,
                              "cancel", err, errlen);
        if (res == NULL)
            return SK_ERROR;
        n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        *count += n;
    } while (!dry_run && n > 0);
    return SK_OK;
}

int sk_client_retry(sk_client_t *c, const char *run_id, int *retry, char *err, size_t errlen)
{
    const char *params[1] = {run_id};
    PGresult *res;

    if (check_run_id(run_id, err, errlen) != SK_OK)
        return SK_ERROR;
    res = query(c, "SELECT retry_run($1::uuid)", 1, params, "retry", err, errlen);
    if (res == NULL)
        return SK_ERROR;
    if (retry != NULL)
        *retry = atoi(PQgetvalue(res, 0, 0));
    PQclear(res);
    return SK_OK;
}

/* ---- list, stats, prune --------------------------------------------------------------- */

char *sk_client_list_json(sk_client_t *c, const sk_list_filter_t *f, char *err, size_t errlen)
{
    static const char sql[] =
        "SELECT run_id::text, workflow_id, status, state, trigger_type, trigger_name," ISO(
            "created_at") ", " ISO("ended_at") ", parent_run_id::text, retries::text,"
                                               " idempotency_key, cancel_reason, cursor"
                                               "  FROM list_runs($1, $2, $3::timestamptz,"
                                               " $4::timestamptz, $5::int4, $6)";
    char limit[16];
    const char *params[6];
    PGresult *res;
    json_t *arr;

    snprintf(limit, sizeof(limit), "%d", f && f->limit > 0 ? f->limit : 50);
    params[0] = f ? f->workflow : NULL;
    params[1] = f ? f->status : NULL;
    params[2] = f ? f->since : NULL;
    params[3] = f ? f->until : NULL;
    params[4] = limit;
    params[5] = f ? f->after : NULL;
    res = query(c, sql, 6, params, "list runs", err, errlen);
    if (res == NULL)
        return NULL;
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *o = json_object();
        json_object_set_new(o, "run_id", text_or_null(res, i, 0));
        json_object_set_new(o, "workflow", text_or_null(res, i, 1));
        json_object_set_new(o, "status", text_or_null(res, i, 3));
        json_object_set_new(o, "trigger_type", text_or_null(res, i, 4));
        json_object_set_new(o, "trigger_name", text_or_null(res, i, 5));
        json_object_set_new(o, "created_at", text_or_null(res, i, 6));
        json_object_set_new(o, "ended_at", text_or_null(res, i, 7));
        json_object_set_new(o, "parent_run_id", text_or_null(res, i, 8));
        json_object_set_new(o, "retries", int_or_null(res, i, 9));
        json_object_set_new(o, "idempotency_key", text_or_null(res, i, 10));
        json_object_set_new(o, "cancel_reason", text_or_null(res, i, 11));
        json_object_set_new(o, "cursor", text_or_null(res, i, 12));
        json_array_append_new(arr, o);
    }
    PQclear(res);
    return dump(arr, err, errlen);
}

char *sk_client_stats_json(sk_client_t *c, char *err, size_t errlen)
{
    static const char *const names[] = {"workflow",     "queued",       "running",
                                        "waiting",      "completed_1h", "failed_1h",
                                        "cancelled_1h", "ready_items",  "oldest_ready_ms"};
    PGresult *res = query(c, "SELECT * FROM run_stats()", 0, NULL, "stats", err, errlen);
    json_t *arr;

    if (res == NULL)
        return NULL;
    arr = json_array();
    for (int i = 0; i < PQntuples(res); i++) {
        json_t *o = json_object();
        json_object_set_new(o, names[0], text_or_null(res, i, 0));
        for (int k = 1; k < 9; k++)
            json_object_set_new(o, names[k], int_or_null(res, i, k));
        json_array_append_new(arr, o);
    }
    PQclear(res);
    return dump(arr, err, errlen);
}

int sk_client_prune(sk_client_t *c, long long older_than_ms, int batch, long long *deleted,
                    char *err, size_t errlen)
{
    char ms[24], b[16];
    const char *params[2] = {ms, b};
    long long n;

    *deleted = 0;
    if (older_than_ms < 0) {
        snprintf(err, errlen, "the age must not be negative");
        return SK_ERROR;
    }
    snprintf(ms, sizeof(ms), "%lld", older_than_ms);
    snprintf(b, sizeof(b), "%d", batch > 0 ? batch : 500);
    /* One short transaction per batch (autocommit), until none is left. */
    do {
        PGresult *res = query(c, "SELECT prune_runs($1::int8 * interval '1 millisecond', $2::int4)",
                              2, params, "prune", err, errlen);
        if (res == NULL)
            return SK_ERROR;
        n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
        PQclear(res);
        *deleted += n;
    } while (n > 0);
    return SK_OK;
}

/* ---- a run's relatives and history (stepkit run) ---------------------------------------- */

int sk_client_run_extra(sk_client_t *c, const char *run_id, json_t *root, char *err, size_t errlen)
{
    static const char run_sql[] =
        "SELECT parent_run_id::text, idempotency_key, cancel_reason FROM runs"
        " WHERE run_id = $1::uuid";
    static const char children_sql[] =
        "SELECT run_id::text, workflow_id, run_state(run_id, status)," ISO(
            "created_at") "  FROM runs WHERE parent_run_id = $1::uuid AND parent_run_id IS NOT NULL"
                          " ORDER BY created_at, run_id";
    static const char retries_sql[] =
        "SELECT retry::text, status, error, cancel_reason," ISO("ended_at") "," ISO(
            "retried_at") "  FROM run_retries WHERE run_id = $1::uuid ORDER BY retry";
    static const char history_sql[] =
        "SELECT retry::text, step_id, kind, status, attempts::text, result" //
        "  FROM op_history WHERE run_id = $1::uuid ORDER BY retry, ended_at, started_at";
    const char *params[1] = {run_id};
    PGresult *r = NULL, *ch = NULL, *rt = NULL, *hist = NULL;
    json_t *children, *retries;
    int rc = SK_ERROR;

    if ((r = query(c, run_sql, 1, params, "read run", err, errlen)) == NULL ||
        (ch = query(c, children_sql, 1, params, "read children", err, errlen)) == NULL ||
        (rt = query(c, retries_sql, 1, params, "read retries", err, errlen)) == NULL ||
        (hist = query(c, history_sql, 1, params, "read history", err, errlen)) == NULL)
        goto done;
    if (PQntuples(r) != 1) {
        snprintf(err, errlen, "no run %s", run_id);
        goto done;
    }
    json_object_set_new(root, "parent_run_id", text_or_null(r, 0, 0));
    json_object_set_new(root, "idempotency_key", text_or_null(r, 0, 1));
    json_object_set_new(root, "cancel_reason", text_or_null(r, 0, 2));
    children = json_array();
    for (int i = 0; i < PQntuples(ch); i++)
        json_array_append_new(
            children, json_pack("{s:o, s:o, s:o, s:o}", "run_id", text_or_null(ch, i, 0),
                                "workflow", text_or_null(ch, i, 1), "status",
                                text_or_null(ch, i, 2), "created_at", text_or_null(ch, i, 3)));
    json_object_set_new(root, "children", children);
    retries = json_array();
    for (int i = 0; i < PQntuples(rt); i++) {
        json_t *o = json_object(), *steps = json_array();
        const char *no = PQgetvalue(rt, i, 0);
        json_object_set_new(o, "retry", json_integer(atoi(no)));
        json_object_set_new(o, "status", text_or_null(rt, i, 1));
        json_object_set_new(o, "error", error_json(rt, i, 2));
        json_object_set_new(o, "cancel_reason", text_or_null(rt, i, 3));
        json_object_set_new(o, "ended_at", text_or_null(rt, i, 4));
        json_object_set_new(o, "retried_at", text_or_null(rt, i, 5));
        /* The ops this retry cleared, as they were. */
        for (int k = 0; k < PQntuples(hist); k++) {
            json_t *s;
            if (strcmp(PQgetvalue(hist, k, 0), no) != 0)
                continue;
            s = json_pack("{s:o, s:o, s:o, s:o}", "step_id", text_or_null(hist, k, 1), "kind",
                          text_or_null(hist, k, 2), "status", text_or_null(hist, k, 3), "attempts",
                          int_or_null(hist, k, 4));
            if (strcmp(PQgetvalue(hist, k, 3), "waiting") != 0)
                json_object_set_new(s, "error", error_json(hist, k, 5));
            json_array_append_new(steps, s);
        }
        json_object_set_new(o, "cleared_steps", steps);
        json_array_append_new(retries, o);
    }
    json_object_set_new(root, "retries", retries);
    rc = SK_OK;
done:
    PQclear(r);
    PQclear(ch);
    PQclear(rt);
    PQclear(hist);
    return rc;
}
