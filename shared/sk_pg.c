#include "sk_pg.h"

#include <stdio.h>
#include <string.h>

#include "sk_log.h"
#include "sk_migrate.h"
#include "stepkit.h"

void sk_pg_error(PGconn *conn, const PGresult *res, const char *what, char *err, size_t errlen)
{
    const char *msg = NULL;
    char line[1024];
    size_t n;

    if (res != NULL)
        msg = PQresultErrorMessage(res);
    if ((msg == NULL || *msg == '\0') && conn != NULL)
        msg = PQerrorMessage(conn);
    if (msg == NULL || *msg == '\0')
        msg = "unknown error";
    n = strcspn(msg, "\n");
    snprintf(line, sizeof(line), "%s: %.*s", what, (int)n, msg);
    /* libpq echoes bad connection strings, passwords included. */
    sk_log_mask(line, err, errlen);
}

int sk_pg_schema_valid(const char *schema)
{
    size_t n = strlen(schema);

    if (n == 0 || n > 63)
        return 0;
    if (!((schema[0] >= 'a' && schema[0] <= 'z') || schema[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = schema[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

PGconn *sk_pg_connect(const char *conninfo, const char *schema, const char *app, char *err,
                      size_t errlen)
{
    /* expand_dbname: conninfo may be a URL or key=value string; the later
     * application_name entry only applies when the string sets none. */
    const char *keys[] = {"dbname", "fallback_application_name", NULL};
    const char *vals[] = {conninfo && *conninfo ? conninfo : NULL, app, NULL};
    PGconn *conn;
    char masked[SK_URL_MAX_MASK];

    if (schema == NULL)
        schema = "stepkit";
    if (!sk_pg_schema_valid(schema)) {
        snprintf(err, errlen, "invalid schema name '%s' (want [a-z_][a-z0-9_]*, at most 63)",
                 schema);
        return NULL;
    }
    /* libpq may echo a malformed password token alone: remember it to mask it. */
    sk_log_add_secrets(conninfo);
    conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        sk_log_mask(conninfo ? conninfo : "", masked, sizeof(masked));
        char msg[512];
        sk_pg_error(conn, NULL, "connect", msg, sizeof(msg));
        snprintf(err, errlen, "%s (database %s)", msg, *masked ? masked : "from PG* defaults");
        PQfinish(conn);
        return NULL;
    }
    if (sk_set_search_path(conn, schema, err, errlen) != SK_OK) {
        PQfinish(conn);
        return NULL;
    }
    return conn;
}
