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

/* Planner settings of a session whose statements find their rows by key
 * (the workers, the HTTP process's gauges), as select-list expressions:
 * plans it caches (named statements, plpgsql) stay on the indexes and read
 * them in order, even when made while a table was tiny or while statistics
 * called it empty (an ANALYZE while a snapshot kept a large DELETE's rows:
 * a bitmap of every ready item, then a sort, per claim; docs/performance.md
 * sections 2 and 17).  jit off: a scan that must stay sequential (a
 * catalog, a small table without a usable index) is costed past
 * jit_above_cost by that penalty and would be JIT-compiled, hundreds of ms
 * for a statement of microseconds. */
#define SK_PG_KEYED_SETTINGS                                                                       \
    "pg_catalog.set_config('enable_seqscan', 'off', false),"                                       \
    " pg_catalog.set_config('enable_bitmapscan', 'off', false),"                                   \
    " pg_catalog.set_config('jit', 'off', false)"

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
