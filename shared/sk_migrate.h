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
 * Check the schema is exactly the version this binary knows: SK_OK, or
 * SK_ERROR with a message saying what to do (migrate, or upgrade the
 * binary when the schema is newer).
 */
int sk_schema_check(PGconn *conn, const char *schema, char *err, size_t errlen);

/* Set search_path of `conn` to `schema` (as a parameter, never spliced). */
int sk_set_search_path(PGconn *conn, const char *schema, char *err, size_t errlen);

#endif
