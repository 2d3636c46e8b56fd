#include "sk_migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sk_log.h"
#include "sk_pg.h"
#include "stepkit.h"

int sk_schema_version_known(void)
{
    int v = 0;

    for (int i = 0; i < sk_migrations_count; i++) {
        if (sk_migrations[i].version > v)
            v = sk_migrations[i].version;
    }
    return v;
}

int sk_set_search_path(PGconn *conn, const char *schema, char *err, size_t errlen)
{
    const char *params[1] = {schema};
    PGresult *res;
    int rc = SK_OK;

    res = PQexecParams(conn, "SELECT pg_catalog.set_config('search_path', $1, false)", 1, NULL,
                       params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sk_pg_error(conn, res, "set search_path", err, errlen);
        rc = SK_ERROR;
    }
    PQclear(res);
    return rc;
}

static int exec_ok(PGconn *conn, PGresult *res, const char *what, char *err, size_t errlen)
{
    ExecStatusType st = PQresultStatus(res);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    int rc = SK_OK;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        sk_pg_error(conn, res, what, err, errlen);
        if (state != NULL && strcmp(state, "42501") == 0) {
            /* A runtime role facing a pending migration: say what to do. */
            size_t n = strlen(err);
            snprintf(err + n, errlen - n,
                     " (a migration is pending and this role may not apply it: run `stepkit "
                     "migrate` with the migration role, see docs/security.md)");
        }
        rc = SK_ERROR;
    }
    PQclear(res);
    return rc;
}

/* 1 when the bookkeeping table exists, 0 when not (a fresh schema), -1 on error. */
static int has_table(PGconn *conn, const char *schema, char *err, size_t errlen)
{
    const char *params[1] = {schema};
    PGresult *res;
    int v = -1;

    res = PQexecParams(conn,
                       "SELECT to_regclass(quote_ident($1) || '.schema_migrations') IS NOT NULL", 1,
                       NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        sk_pg_error(conn, res, "read schema version", err, errlen);
    else
        v = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    PQclear(res);
    return v;
}

/*
 * The state of a schema for this binary in one row: the highest applied
 * version, how many of the versions this binary knows are missing, how
 * many applied ones it does not know, and the first of those that does not
 * accept it (0: none).  compat_floor is read through to_jsonb so the query
 * also works on a schema older than 009, which lacks the column.  The
 * WHERE on the primary key keeps it an index scan in the workers' sessions
 * (enable_seqscan off): a penalised sequential scan costs enough to be
 * JIT-compiled, a second per connect.
 * $1 the known versions (int[]), $2 this binary's version, $3 how many it knows.
 */
static const char state_sql_fmt[] =
    "SELECT coalesce(max(version), 0),"
    "       $3::int - count(*) FILTER (WHERE version = ANY ($1::int[])),"
    "       count(*) FILTER (WHERE version <> ALL ($1::int[])),"
    "       coalesce(min(version) FILTER (WHERE version <> ALL ($1::int[])"
    "            AND coalesce((to_jsonb(m) ->> 'compat_floor')::int > $2::int, true)), 0)"
    "  FROM %s m WHERE m.version >= 0";

char *sk_schema_state_sql(const char *table)
{
    size_t len = sizeof(state_sql_fmt) + strlen(table);
    char *sql = malloc(len);

    if (sql != NULL)
        snprintf(sql, len, state_sql_fmt, table);
    return sql;
}

int sk_schema_state_params(sk_schema_params_t *p)
{
    size_t n = 1;

    p->known[0] = '{';
    for (int i = 0; i < sk_migrations_count; i++) {
        int w = snprintf(p->known + n, sizeof(p->known) - n, "%s%d", i ? "," : "",
                         sk_migrations[i].version);
        if (w < 0 || (size_t)w + 2 >= sizeof(p->known) - n)
            return SK_ERROR;
        n += (size_t)w;
    }
    snprintf(p->known + n, sizeof(p->known) - n, "}");
    snprintf(p->version, sizeof(p->version), "%d", sk_schema_version_known());
    snprintf(p->count, sizeof(p->count), "%d", sk_migrations_count);
    p->values[0] = p->known;
    p->values[1] = p->version;
    p->values[2] = p->count;
    return SK_OK;
}

int sk_schema_state_read(const PGresult *res, sk_schema_state_t *st)
{
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQnfields(res) < 4)
        return SK_ERROR;
    st->have = atoi(PQgetvalue(res, 0, 0));
    st->missing = atoi(PQgetvalue(res, 0, 1));
    st->newer = atoi(PQgetvalue(res, 0, 2));
    st->breaking = atoi(PQgetvalue(res, 0, 3));
    return SK_OK;
}

int sk_schema_verdict(const sk_schema_state_t *st, const char *schema, char *err, size_t errlen)
{
    int known = sk_schema_version_known();

    if (st->have == 0) {
        snprintf(err, errlen,
                 "schema \"%s\" has no StepKit tables: run `stepkit migrate` or start the "
                 "master without --no-migrate",
                 schema);
        return SK_SCHEMA_MISSING;
    }
    if (st->breaking > 0) {
        snprintf(err, errlen,
                 "schema \"%s\" is at version %d, newer than this binary knows (%d), and "
                 "migration %d does not accept binaries of version %d: upgrade stepkit",
                 schema, st->have, known, st->breaking, known);
        return SK_SCHEMA_NEWER;
    }
    if (st->missing > 0) {
        snprintf(err, errlen,
                 "schema \"%s\" is at version %d, this binary needs %d (%d migration%s "
                 "pending): run `stepkit migrate`",
                 schema, st->have, known, st->missing, st->missing == 1 ? "" : "s");
        return SK_SCHEMA_OLDER;
    }
    return SK_OK;
}

/* The schema's state (search_path must be the schema: sk_set_search_path). */
static int read_state(PGconn *conn, const char *schema, sk_schema_state_t *st, char *err,
                      size_t errlen)
{
    sk_schema_params_t p;
    char *sql = NULL;
    PGresult *res = NULL;
    int rc = SK_ERROR, table = has_table(conn, schema, err, errlen);

    memset(st, 0, sizeof(*st));
    if (table <= 0)
        return table < 0 ? SK_ERROR : SK_OK;
    if (sk_schema_state_params(&p) != SK_OK) {
        snprintf(err, errlen, "too many migrations embedded");
        return SK_ERROR;
    }
    sql = sk_schema_state_sql("schema_migrations");
    if (sql == NULL) {
        snprintf(err, errlen, "out of memory");
        return SK_ERROR;
    }
    res = PQexecParams(conn, sql, 3, NULL, p.values, NULL, NULL, 0);
    if (sk_schema_state_read(res, st) != SK_OK) {
        sk_pg_error(conn, res, "read schema_migrations", err, errlen);
        goto done;
    }
    rc = SK_OK;
done:
    PQclear(res);
    free(sql);
    return rc;
}

/* Newer migrations this binary accepts: say so once, at start. */
static void log_newer(const sk_schema_state_t *st, const char *schema)
{
    if (st->newer > 0)
        sk_log_info("event=schema_newer_compatible schema=%s version=%d known=%d newer=%d "
                    "msg=\"every newer migration accepts this binary: running during an upgrade\"",
                    schema, st->have, sk_schema_version_known(), st->newer);
}

static int is_applied(PGconn *conn, int version, int *applied, char *err, size_t errlen)
{
    char vbuf[16];
    const char *params[1] = {vbuf};
    PGresult *res;
    int rc = SK_ERROR;

    snprintf(vbuf, sizeof(vbuf), "%d", version);
    res = PQexecParams(conn, "SELECT 1 FROM schema_migrations WHERE version = $1::int", 1, NULL,
                       params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sk_pg_error(conn, res, "read schema_migrations", err, errlen);
        goto done;
    }
    *applied = PQntuples(res) > 0;
    rc = SK_OK;
done:
    PQclear(res);
    return rc;
}

/* SK_OK when something is left to apply (*pending) or nothing is; SK_ERROR
 * when the schema holds a newer migration that refuses this binary. */
static int check_before_migrate(PGconn *conn, const char *schema, int *pending, char *err,
                                size_t errlen)
{
    sk_schema_state_t st;
    int v;

    *pending = 1;
    if (read_state(conn, schema, &st, err, errlen) != SK_OK)
        return SK_ERROR;
    v = sk_schema_verdict(&st, schema, err, errlen);
    if (v == SK_SCHEMA_NEWER)
        return SK_ERROR;
    *pending = v != SK_OK;
    err[0] = '\0';
    return SK_OK;
}

int sk_migrate(PGconn *conn, const char *schema, int *applied, char *err, size_t errlen)
{
    char lockkey[128];
    const char *lparams[1] = {lockkey};
    char *ident = NULL;
    char *sql = NULL;
    int locked = 0, rc = SK_ERROR, pending;
    size_t sqllen;

    *applied = 0;
    if (!sk_pg_schema_valid(schema)) {
        snprintf(err, errlen, "invalid schema name '%s'", schema);
        return SK_ERROR;
    }
    /* Nothing pending: no lock, no CREATE SCHEMA, nothing a runtime role
     * could be refused. */
    if (check_before_migrate(conn, schema, &pending, err, errlen) != SK_OK)
        return SK_ERROR;
    if (!pending)
        return SK_OK;
    /* One lock per schema: two masters starting together serialise here;
     * the second finds every file applied and changes nothing. */
    snprintf(lockkey, sizeof(lockkey), "stepkit.migrate.%s", schema);
    if (exec_ok(conn,
                PQexecParams(conn, "SELECT pg_advisory_lock(hashtext($1))", 1, NULL, lparams, NULL,
                             NULL, 0),
                "take migration lock", err, errlen) != SK_OK)
        goto done;
    locked = 1;

    ident = PQescapeIdentifier(conn, schema, strlen(schema));
    if (ident == NULL) {
        sk_pg_error(conn, NULL, "quote schema", err, errlen);
        goto done;
    }
    sqllen = strlen(ident) + 64;
    sql = malloc(sqllen);
    if (sql == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    /* An identifier cannot be a parameter: it is quoted by libpq. */
    snprintf(sql, sqllen, "CREATE SCHEMA IF NOT EXISTS %s", ident);
    if (exec_ok(conn, PQexec(conn, sql), "create schema", err, errlen) != SK_OK)
        goto done;
    if (sk_set_search_path(conn, schema, err, errlen) != SK_OK)
        goto done;

    /* Again under the lock: another migrator may have gone first. */
    if (check_before_migrate(conn, schema, &pending, err, errlen) != SK_OK)
        goto done;
    for (int i = 0; i < sk_migrations_count && pending; i++) {
        const sk_migration_t *m = &sk_migrations[i];
        int done_already = 0;

        if (has_table(conn, schema, err, errlen) > 0 &&
            is_applied(conn, m->version, &done_already, err, errlen) != SK_OK)
            goto done;
        if (done_already)
            continue;
        if (exec_ok(conn, PQexec(conn, "BEGIN"), "begin", err, errlen) != SK_OK)
            goto done;
        /* The file records itself in schema_migrations. */
        if (exec_ok(conn, PQexec(conn, m->sql), m->name, err, errlen) != SK_OK) {
            PQclear(PQexec(conn, "ROLLBACK"));
            goto done;
        }
        if (exec_ok(conn, PQexec(conn, "COMMIT"), "commit", err, errlen) != SK_OK)
            goto done;
        sk_log_info("event=migration_applied schema=%s version=%d name=%s", schema, m->version,
                    m->name);
        (*applied)++;
    }
    rc = SK_OK;
done:
    if (locked) {
        PGresult *res = PQexecParams(conn, "SELECT pg_advisory_unlock(hashtext($1))", 1, NULL,
                                     lparams, NULL, NULL, 0);
        PQclear(res);
    }
    free(sql);
    PQfreemem(ident);
    return rc;
}

int sk_schema_check(PGconn *conn, const char *schema, char *err, size_t errlen)
{
    sk_schema_state_t st;

    if (read_state(conn, schema, &st, err, errlen) != SK_OK)
        return SK_ERROR;
    if (sk_schema_verdict(&st, schema, err, errlen) != SK_OK)
        return SK_ERROR;
    log_newer(&st, schema);
    return SK_OK;
}
