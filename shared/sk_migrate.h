/*
 * sk_migrate - the numbered files of sql/, embedded at build time, and
 * their application under an advisory lock.
 *
 * Each file creates objects unqualified (the migrator sets search_path to
 * the target schema) and records itself in schema_migrations, so the same
 * files apply by hand with psql (see docs/schema.md).
 */
#ifndef SK_MIGRATE_H
#define SK_MIGRATE_H

#include <stddef.h>

#include <libpq-fe.h>

typedef struct {
    int version;
    const char *name;
    const char *sql;
} sk_migration_t;

extern const sk_migration_t sk_migrations[];
extern const int sk_migrations_count;

/* The newest schema version this binary knows. */
int sk_schema_version_known(void);

/*
 * Apply every pending migration to `schema` on a blocking connection,
 * under pg_advisory_lock so concurrent masters serialise (one migrates,
 * the others wait and then find nothing to do).  *applied gets how many
 * files ran.  SK_ERROR with a message in err.
 */
int sk_migrate(PGconn *conn, const char *schema, int *applied, char *err, size_t errlen);

/*
 * Check this binary may run on the schema: every migration it knows is
 * applied, and every applied migration it does not know (a newer release
 * migrated) accepts it, that is has a compat_floor at most this binary's
 * version (docs/schema.md, "Which binaries a schema accepts").  SK_OK, or
 * SK_ERROR with a message saying what to do (migrate, or upgrade).
 */
int sk_schema_check(PGconn *conn, const char *schema, char *err, size_t errlen);

/* A schema compared with this binary (one row of sk_schema_state_sql). */
typedef struct {
    int have;     /* highest applied version; 0: no StepKit tables */
    int missing;  /* versions this binary knows that are not applied */
    int newer;    /* applied versions this binary does not know */
    int breaking; /* the lowest of those that refuses this binary; 0: none */
} sk_schema_state_t;

/* The parameters of sk_schema_state_sql, as text ($1 $2 $3). */
typedef struct {
    char known[16 * 256]; /* "{1,2,...}" */
    char version[16];
    char count[16];
    const char *values[3];
} sk_schema_params_t;

/* The state query reading `table` (schema_migrations, qualified or not),
 * malloc'd; $1..$3 from sk_schema_state_params.  For callers with their
 * own connection handling (workers' pipeline, the HTTP process). */
char *sk_schema_state_sql(const char *table);
int sk_schema_state_params(sk_schema_params_t *p);
/* Its result row into st: SK_OK, or SK_ERROR when it is not one. */
int sk_schema_state_read(const PGresult *res, sk_schema_state_t *st);

#define SK_SCHEMA_MISSING 1 /* no StepKit tables */
#define SK_SCHEMA_OLDER   2 /* migrations pending */
#define SK_SCHEMA_NEWER   3 /* a newer migration refuses this binary */
/* SK_OK when this binary may run on it, else one of SK_SCHEMA_* with a
 * message saying what to do. */
int sk_schema_verdict(const sk_schema_state_t *st, const char *schema, char *err, size_t errlen);

/* Set search_path of `conn` to `schema` (as a parameter, never spliced). */
int sk_set_search_path(PGconn *conn, const char *schema, char *err, size_t errlen);

#endif
