/*
 * sk_bench_db - what stepkit-bench asks the database: server counters
 * around a workload, progress of the runs, latencies recorded in the runs
 * table.  Every statement is one PQexecParams with its values as
 * parameters; the schema is reached through search_path, set as a
 * parameter too.
 */
#include "sk_bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char counters_sql[] =
    "SELECT pg_catalog.clock_timestamp()::text, pg_catalog.pg_current_wal_lsn()::text,"
    "       pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text,"
    "       d.xact_commit, d.xact_rollback"
    "  FROM pg_catalog.pg_stat_database d"
    " WHERE d.datname = pg_catalog.current_database()";

/*
 * Progress reads only the runs the driver started, by primary key (their
 * ids are passed as one uuid[] parameter): its cost does not grow with the
 * history in `runs` (a scan of runs by workflow and created_at did, and
 * slowed the engine it measured as the table grew).
 */
static const char window_sql[] =
    "SELECT r.status FROM unnest($1::uuid[]) WITH ORDINALITY AS u(id, ord)"
    "  LEFT JOIN runs r ON r.run_id = u.id ORDER BY u.ord";

static const char progress_sql[] =
    "SELECT count(r.run_id),"
    "       count(*) FILTER (WHERE r.status = 'completed'),"
    "       count(*) FILTER (WHERE r.status = 'failed'),"
    "       coalesce(extract(epoch FROM max(r.ended_at) - $2::timestamptz), -1)"
    "  FROM unnest($1::uuid[]) AS u(id) JOIN runs r ON r.run_id = u.id";

static const char latency_sql[] =
    "SELECT coalesce(percentile_cont(0.50) WITHIN GROUP (ORDER BY ms), -1),"
    "       coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY ms), -1),"
    "       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), -1)"
    "  FROM (SELECT (extract(epoch FROM r.ended_at - r.created_at) * 1000)::float8 AS ms"
    "          FROM unnest($1::uuid[]) AS u(id) JOIN runs r ON r.run_id = u.id"
    "         WHERE r.status = 'completed') s";

/* The engine's processes name their connections stepkit-worker,
 * stepkit-renew, stepkit-http (fallback_application_name: a URL that sets
 * application_name hides them, and the engine count is then 0). */
static const char conns_sql[] =
    "SELECT count(*) FILTER (WHERE a.application_name LIKE 'stepkit-%'"
    "                          AND a.application_name NOT IN ('stepkit-bench', 'stepkit-client')),"
    "       count(*)"
    "  FROM pg_catalog.pg_stat_activity a"
    " WHERE a.datname = pg_catalog.current_database() AND a.backend_type = 'client backend'";

/* ids[0..n) as a uuid[] literal (malloc'd), NULL when out of memory. */
static char *id_array(const char (*ids)[SK_UUID_LEN], long n)
{
    char *s = malloc((size_t)n * SK_UUID_LEN + 3), *p;

    if (s == NULL)
        return NULL;
    p = s;
    *p++ = '{';
    for (long i = 0; i < n; i++) {
        if (i > 0)
            *p++ = ',';
        memcpy(p, ids[i], SK_UUID_LEN - 1);
        p += SK_UUID_LEN - 1;
    }
    *p++ = '}';
    *p = '\0';
    return s;
}

/* First line of a libpq message, prefixed with what we were doing. */
static void pg_message(const char *what, const char *msg, char *err, size_t errlen)
{
    size_t n = strcspn(msg, "\n");

    snprintf(err, errlen, "%s: %.*s", what, (int)n, msg);
}

/* Run `sql` and expect exactly one row of at least `ncols` columns. */
static PGresult *one_row(PGconn *conn, const char *what, const char *sql, int nparams,
                         const char *const *params, int ncols, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_message(what, PQresultErrorMessage(res), err, errlen);
        PQclear(res);
        return NULL;
    }
    if (PQntuples(res) != 1 || PQnfields(res) < ncols) {
        snprintf(err, errlen, "%s: expected one row of %d columns, got %d rows", what, ncols,
                 PQntuples(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

static int parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    v = strtoll(s, &end, 10);
    if (end == s || *end != '\0')
        return SK_ERROR;
    *out = v;
    return SK_OK;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v;

    v = strtoull(s, &end, 10);
    if (end == s || *end != '\0')
        return SK_ERROR;
    *out = v;
    return SK_OK;
}

/* "16/B374D848" -> byte position. */
static int parse_lsn(const char *s, uint64_t *out)
{
    unsigned int hi, lo;
    int n = 0;

    if (sscanf(s, "%X/%X%n", &hi, &lo, &n) != 2 || s[n] != '\0')
        return SK_ERROR;
    *out = ((uint64_t)hi << 32) | lo;
    return SK_OK;
}

static int parse_double(const char *s, double *out)
{
    char *end;
    double v;

    v = strtod(s, &end);
    if (end == s || *end != '\0')
        return SK_ERROR;
    *out = v;
    return SK_OK;
}

PGconn *sk_bench_db_connect(const char *url, const char *schema, char *err, size_t errlen)
{
    static const char *const keys[] = {"dbname", "application_name", NULL};
    const char *vals[] = {url, "stepkit-bench", NULL};
    const char *params[1] = {schema};
    PGconn *conn;
    PGresult *res;

    conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL) {
        snprintf(err, errlen, "connect: out of memory");
        return NULL;
    }
    if (PQstatus(conn) != CONNECTION_OK) {
        pg_message("connect", PQerrorMessage(conn), err, errlen);
        PQfinish(conn);
        return NULL;
    }
    if (schema != NULL) {
        res = one_row(conn, "set search_path",
                      "SELECT pg_catalog.set_config('search_path', $1, false)", 1, params, 1, err,
                      errlen);
        if (res == NULL) {
            PQfinish(conn);
            return NULL;
        }
        PQclear(res);
    }
    return conn;
}

/*
 * A connection of its own, closed at once: a backend publishes its
 * transaction counts to pg_stat_database at most once a second while it
 * lives, and always when it exits, so a short-lived reader adds exactly one
 * commit (this read) to the counts and leaves nothing pending behind.
 */
int sk_bench_db_counters(const char *url, sk_bench_counters_t *c, int *server_version, char *err,
                         size_t errlen)
{
    PGconn *conn;
    PGresult *res;
    int rc = SK_ERROR;

    conn = sk_bench_db_connect(url, NULL, err, errlen);
    if (conn == NULL)
        return SK_ERROR;
    if (server_version != NULL)
        *server_version = PQserverVersion(conn);
    res = one_row(conn, "read counters", counters_sql, 0, NULL, 5, err, errlen);
    if (res == NULL)
        goto done;
    if (snprintf(c->ts, sizeof c->ts, "%s", PQgetvalue(res, 0, 0)) >= (int)sizeof c->ts ||
        parse_lsn(PQgetvalue(res, 0, 1), &c->wal_lsn) != SK_OK ||
        parse_u64(PQgetvalue(res, 0, 2), &c->next_xid) != SK_OK ||
        parse_i64(PQgetvalue(res, 0, 3), &c->xact_commit) != SK_OK ||
        parse_i64(PQgetvalue(res, 0, 4), &c->xact_rollback) != SK_OK) {
        snprintf(err, errlen, "read counters: unexpected values (%s, %s, %s, %s, %s)",
                 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 2),
                 PQgetvalue(res, 0, 3), PQgetvalue(res, 0, 4));
        goto done;
    }
    rc = SK_OK;
done:
    PQclear(res);
    PQfinish(conn);
    return rc;
}

#define WINDOW 256

int sk_bench_db_advance(PGconn *conn, const char (*ids)[SK_UUID_LEN], long n, long *cursor,
                        long *failed, long *stmts, char *err, size_t errlen)
{
    while (*cursor < n) {
        long len = n - *cursor < WINDOW ? n - *cursor : WINDOW, i;
        char *arr = id_array(ids + *cursor, len);
        const char *params[1] = {arr};
        PGresult *res;

        if (arr == NULL) {
            snprintf(err, errlen, "out of memory");
            return SK_ERROR;
        }
        res = PQexecParams(conn, window_sql, 1, NULL, params, NULL, NULL, 0);
        (*stmts)++;
        free(arr);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != len) {
            pg_message("read progress", PQresultErrorMessage(res), err, errlen);
            PQclear(res);
            return SK_ERROR;
        }
        for (i = 0; i < len; i++) {
            const char *st = PQgetvalue(res, (int)i, 0);
            if (strcmp(st, "completed") != 0 && strcmp(st, "failed") != 0)
                break; /* pending, or not visible yet */
            *failed += strcmp(st, "failed") == 0;
        }
        PQclear(res);
        *cursor += i;
        if (i < len)
            return SK_OK;
    }
    return SK_OK;
}

int sk_bench_db_ended_per_s(PGconn *conn, const char (*ids)[SK_UUID_LEN], long n, const char *since,
                            long *per_s, int max, int *nsec, char *err, size_t errlen)
{
    /* Seconds since `since` of each end (a run a worker ended before the
     * clock was read counts in second 0), and the whole seconds in all. */
    static const char sql[] =
        "WITH e AS (SELECT greatest(extract(epoch FROM r.ended_at - $2::timestamptz), 0) AS t"
        "             FROM runs r WHERE r.run_id = ANY ($1::uuid[]) AND r.ended_at IS NOT NULL)"
        " SELECT floor(e.t)::int, count(*), (SELECT floor(max(t))::int FROM e)"
        "   FROM e GROUP BY 1 ORDER BY 1";
    char *arr = id_array(ids, n);
    const char *params[2] = {arr, since};
    PGresult *res;
    int whole;

    *nsec = 0;
    if (arr == NULL) {
        snprintf(err, errlen, "out of memory");
        return SK_ERROR;
    }
    res = PQexecParams(conn, sql, 2, NULL, params, NULL, NULL, 0);
    free(arr);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        pg_message("ends per second", PQresultErrorMessage(res), err, errlen);
        PQclear(res);
        return SK_ERROR;
    }
    if (PQntuples(res) == 0) {
        PQclear(res);
        return SK_OK;
    }
    whole = atoi(PQgetvalue(res, 0, 2)); /* the second the last run ended in: partial */
    if (whole < 1)
        whole = 1;
    if (whole > max)
        whole = max;
    for (int i = 0; i < whole; i++)
        per_s[i] = 0;
    for (int i = 0; i < PQntuples(res); i++) {
        int sec = atoi(PQgetvalue(res, i, 0));
        if (sec < whole)
            per_s[sec] = atol(PQgetvalue(res, i, 1));
    }
    *nsec = whole;
    PQclear(res);
    return SK_OK;
}

int sk_bench_db_progress(PGconn *conn, const char (*ids)[SK_UUID_LEN], long n, const char *since,
                         sk_bench_progress_t *p, char *err, size_t errlen)
{
    char *arr = id_array(ids, n);
    const char *params[2] = {arr, since};
    PGresult *res;
    int64_t total, completed, failed;
    int rc = SK_OK;

    if (arr == NULL) {
        snprintf(err, errlen, "out of memory");
        return SK_ERROR;
    }
    res = one_row(conn, "read progress", progress_sql, 2, params, 4, err, errlen);
    free(arr);
    if (res == NULL)
        return SK_ERROR;
    if (parse_i64(PQgetvalue(res, 0, 0), &total) != SK_OK ||
        parse_i64(PQgetvalue(res, 0, 1), &completed) != SK_OK ||
        parse_i64(PQgetvalue(res, 0, 2), &failed) != SK_OK ||
        parse_double(PQgetvalue(res, 0, 3), &p->seconds) != SK_OK) {
        snprintf(err, errlen, "read progress: unexpected values");
        rc = SK_ERROR;
    } else {
        p->total = (long)total;
        p->completed = (long)completed;
        p->failed = (long)failed;
    }
    PQclear(res);
    return rc;
}

int sk_bench_db_latency(PGconn *conn, const char (*ids)[SK_UUID_LEN], long n, double out[3],
                        char *err, size_t errlen)
{
    char *arr = id_array(ids, n);
    const char *params[1] = {arr};
    PGresult *res;
    int rc = SK_OK;

    if (arr == NULL) {
        snprintf(err, errlen, "out of memory");
        return SK_ERROR;
    }
    res = one_row(conn, "read latencies", latency_sql, 1, params, 3, err, errlen);
    free(arr);
    if (res == NULL)
        return SK_ERROR;
    for (int i = 0; i < 3; i++) {
        if (parse_double(PQgetvalue(res, 0, i), &out[i]) != SK_OK) {
            snprintf(err, errlen, "read latencies: unexpected value %s", PQgetvalue(res, 0, i));
            rc = SK_ERROR;
        }
    }
    PQclear(res);
    return rc;
}

int sk_bench_db_conns(PGconn *conn, int *engine, int *total, char *err, size_t errlen)
{
    PGresult *res = one_row(conn, "count connections", conns_sql, 0, NULL, 2, err, errlen);
    int64_t e, t;
    int rc = SK_OK;

    if (res == NULL)
        return SK_ERROR;
    if (parse_i64(PQgetvalue(res, 0, 0), &e) != SK_OK ||
        parse_i64(PQgetvalue(res, 0, 1), &t) != SK_OK || e < 0 || t < e || t > 1000000) {
        snprintf(err, errlen, "count connections: unexpected values (%s, %s)",
                 PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 1));
        rc = SK_ERROR;
    } else {
        *engine = (int)e;
        *total = (int)t;
    }
    PQclear(res);
    return rc;
}

int sk_bench_db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                     char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;

    if (!ok)
        pg_message(sql, PQresultErrorMessage(res), err, errlen);
    PQclear(res);
    return ok ? SK_OK : SK_ERROR;
}
