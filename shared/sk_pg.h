/*
 * sk_pg - small libpq helpers shared by the master (migrations), the
 * command line and the client API: blocking connections only.  The
 * worker's non-blocking connection lives in worker/.
 */
#ifndef SK_PG_H
#define SK_PG_H

#include <stddef.h>

#include <libpq-fe.h>

#define SK_URL_MAX_MASK 1100

/* Connect (conninfo: URL, key=value, or NULL/"" for the PG* variables),
 * set application_name and search_path to `schema` (NULL = "stepkit").
 * NULL with a message (password masked) in err. */
PGconn *sk_pg_connect(const char *conninfo, const char *schema, const char *app, char *err,
                      size_t errlen);

/* Copy the first line of libpq's message for `conn` / `res` into err. */
void sk_pg_error(PGconn *conn, const PGresult *res, const char *what, char *err, size_t errlen);

/* Validate a schema name: [a-z_][a-z0-9_]{0,62}.  We quote it anyway; the
 * rule keeps channel names and advisory-lock keys predictable. */
int sk_pg_schema_valid(const char *schema);

#endif
