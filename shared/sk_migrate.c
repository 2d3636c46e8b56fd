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

/* Highest applied version, 0 when the bookkeeping table is missing, -1 on error. */
static int applied_version(PGconn *conn, const char *schema, char *err, size_t errlen)
{
    const char *params[1] = {schema};
    PGresult *res;
    int v = -1;

    res = PQexecParams(conn,
                       "SELECT CASE WHEN to_regclass(quote_ident($1) || '.schema_migrations')"
                       " IS NULL THEN -1 ELSE 0 END",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sk_pg_error(conn, res, "read schema version", err, errlen);
        goto done;
    }
    if (atoi(PQgetvalue(res, 0, 0)) < 0) {
        v = 0;
        goto done;
    }
    PQclear(res);
    res = PQexec(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sk_pg_error(conn, res, "read schema version", err, errlen);
        goto done;
    }
    v = atoi(PQgetvalue(res, 0, 0));
done:
    PQclear(res);
    return v;
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

/* Whether every migration this binary knows is applied (read-only: a
 * runtime role with only DML grants gets here and no further).  SK_OK with
 * *pending set, or SK_ERROR. */
static int pending_check(PGconn *conn, const char *schema, int *pending, char *err, size_t errlen)
{
    char list[16 * 64] = "{";
    const char *params[1] = {list};
    PGresult *res;
    size_t n = 1;
    int have = applied_version(conn, schema, err, errlen), rc = SK_ERROR;

    *pending = 1;
    if (have < 0)
        return SK_ERROR;
    if (have == 0)
        return SK_OK; /* a fresh schema */
    if (have > sk_schema_version_known()) {
        snprintf(err, errlen,
                 "schema \"%s\" is at version %d, newer than this binary knows (%d): "
                 "upgrade stepkit",
                 schema, have, sk_schema_version_known());
        return SK_ERROR;
    }
    for (int i = 0; i < sk_migrations_count && n + 16 < sizeof(list); i++)
        n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%d", i ? "," : "",
                              sk_migrations[i].version);
    snprintf(list + n, sizeof(list) - n, "}");
    res =
        PQexecParams(conn, "SELECT count(*) FROM schema_migrations WHERE version = ANY($1::int[])",
                     1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sk_pg_error(conn, res, "read schema_migrations", err, errlen);
        goto done;
    }
    *pending = atoi(PQgetvalue(res, 0, 0)) != sk_migrations_count;
    rc = SK_OK;
done:
    PQclear(res);
    return rc;
}

int sk_migrate(PGconn *conn, const char *schema, int *applied, char *err, size_t errlen)
{
    char lockkey[128];
    const char *lparams[1] = {lockkey};
    char *ident = NULL;
    char *sql = NULL;
    int locked = 0, rc = SK_ERROR, have, known = sk_schema_version_known();
    size_t sqllen;

    *applied = 0;
    if (!sk_pg_schema_valid(schema)) {
        snprintf(err, errlen, "invalid schema name '%s'", schema);
        return SK_ERROR;
    }
    /* Nothing pending: no lock, no CREATE SCHEMA, nothing a runtime role
     * could be refused. */
    if (pending_check(conn, schema, &have, err, errlen) != SK_OK)
        return SK_ERROR;
    if (!have)
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

    have = applied_version(conn, schema, err, errlen);
    if (have < 0)
        goto done;
    if (have > known) {
        snprintf(err, errlen,
                 "schema \"%s\" is at version %d, newer than this binary knows (%d): "
                 "upgrade stepkit",
                 schema, have, known);
        goto done;
    }
    for (int i = 0; i < sk_migrations_count; i++) {
        const sk_migration_t *m = &sk_migrations[i];
        int done_already = 0;

        if (have > 0 && is_applied(conn, m->version, &done_already, err, errlen) != SK_OK)
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
        have = 1;
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
    int known = sk_schema_version_known();
    int have = applied_version(conn, schema, err, errlen);

    if (have < 0)
        return SK_ERROR;
    if (have == 0) {
        snprintf(err, errlen,
                 "schema \"%s\" has no StepKit tables: run `stepkit migrate` or start the "
                 "master without --no-migrate",
                 schema);
        return SK_ERROR;
    }
    if (have > known) {
        snprintf(err, errlen,
                 "schema \"%s\" is at version %d, newer than this binary knows (%d): "
                 "upgrade stepkit",
                 schema, have, known);
        return SK_ERROR;
    }
    if (have < known) {
        snprintf(err, errlen,
                 "schema \"%s\" is at version %d, this binary needs %d: run `stepkit migrate`",
                 schema, have, known);
        return SK_ERROR;
    }
    return SK_OK;
}
