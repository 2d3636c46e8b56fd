/*
 * Migrations: concurrent masters on a fresh schema, `stepkit migrate`
 * idempotence, refusal of a missing or newer schema, and a schema made by
 * hand from the files in sql/ with psql.
 *
 * The SQL files are found in $STEPKIT_SQL_DIR (default "sql", relative to
 * the repository root where tests/run-tests.sh runs the suite).
 */
#include <criterion/criterion.h>

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

/* The migration files, sorted (glob sorts); caller globfree()s. */
static void sql_files(glob_t *g)
{
    const char *dir = getenv("STEPKIT_SQL_DIR");
    char pattern[ITEST_PATH_MAX];

    snprintf(pattern, sizeof(pattern), "%s/[0-9]*.sql", dir && *dir ? dir : "sql");
    cr_assert_eq(glob(pattern, 0, NULL, g), 0, "no migration files match %s", pattern);
    cr_assert_gt(g->gl_pathc, 0);
}

/* The highest leading number among the files. */
static long newest_version(const glob_t *g)
{
    long v = 0;

    for (size_t i = 0; i < g->gl_pathc; i++) {
        const char *base = strrchr(g->gl_pathv[i], '/');
        long n = strtol(base ? base + 1 : g->gl_pathv[i], NULL, 10);
        if (n > v)
            v = n;
    }
    return v;
}

/* Everything migrate could touch: relations, functions and triggers (with
 * their oids: a drop and re-create shows) and the bookkeeping rows. */
static char *catalog_snapshot(void)
{
    return itest_str(
        "SELECT concat_ws(' | ',"
        " (SELECT string_agg(relname || ':' || relkind::text || ':' || oid, ',' ORDER BY relname)"
        "    FROM pg_class WHERE relnamespace = $1::regnamespace),"
        " (SELECT string_agg(proname || ':' || oid, ',' ORDER BY proname)"
        "    FROM pg_proc WHERE pronamespace = $1::regnamespace),"
        " (SELECT string_agg(tgname || ':' || t.oid, ',' ORDER BY tgname)"
        "    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        "   WHERE c.relnamespace = $1::regnamespace),"
        " (SELECT string_agg(version || ':' || name || ':' || applied_at, ',' ORDER BY version)"
        "    FROM schema_migrations))",
        itest.schema);
}

static void expect_cli(const char *const *args, int code, const char *stdout_has,
                       const char *stderr_has)
{
    itest_cmd_t r;

    itest_cli(args, &r);
    cr_expect_eq(r.code, code, "stepkit %s exited %d\nstdout: %s\nstderr: %s", args[0], r.code,
                 r.out, r.err);
    if (stdout_has != NULL)
        cr_expect(strstr(r.out, stdout_has) != NULL, "stdout lacks '%s': %s", stdout_has, r.out);
    if (stderr_has != NULL)
        cr_expect(strstr(r.err, stderr_has) != NULL, "stderr lacks '%s': %s", stderr_has, r.err);
    itest_cmd_free(&r);
}

static void create_schema(void)
{
    char sql[128];

    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", itest.schema);
    itest_exec_sql(sql);
}

Test(migrations, two_masters_on_a_fresh_schema_migrate_once, ITEST_FIXTURES)
{
    itest_master_t *m1, *m2;
    glob_t g;
    long n;

    sql_files(&g);
    n = (long)g.gl_pathc;
    m1 = itest_master_start(NULL);
    m2 = itest_master_start(NULL);
    itest_master_wait_ready(m1, itest_test_workflows);
    itest_master_wait_ready(m2, itest_test_workflows);

    cr_expect_eq(itest_long("SELECT count(*) FROM schema_migrations"), n);
    cr_expect_eq(itest_long("SELECT count(DISTINCT version) FROM schema_migrations"), n);
    /* Versions need not be contiguous (branches number their files apart). */
    cr_expect_eq(itest_long("SELECT max(version) FROM schema_migrations"), newest_version(&g));
    /* One of them applied each file; the other waited on the lock and found
     * nothing to do. */
    cr_expect_eq(itest_log_count(m1, "event=migration_applied") +
                     itest_log_count(m2, "event=migration_applied"),
                 n);
    cr_expect(itest_log_count(m1, "event=migration_applied") == 0 ||
                  itest_log_count(m2, "event=migration_applied") == 0,
              "both masters applied migrations");
    globfree(&g);
    itest_finish();
}

Test(migrations, migrate_twice_changes_nothing_the_second_time, ITEST_FIXTURES)
{
    const char *migrate[] = {"migrate", NULL};
    char first[64], *before, *after;
    glob_t g;

    sql_files(&g);
    snprintf(first, sizeof(first), "(%zu migration%s applied)", g.gl_pathc,
             g.gl_pathc == 1 ? "" : "s");
    expect_cli(migrate, 0, first, NULL);
    before = catalog_snapshot();
    cr_assert_not_null(before);
    cr_assert_neq(strlen(before), 0);
    expect_cli(migrate, 0, "(0 migrations applied)", NULL);
    after = catalog_snapshot();
    cr_expect_str_eq(after, before, "the second migrate changed the schema");
    free(before);
    free(after);
    globfree(&g);
    itest_finish();
}

Test(migrations, no_migrate_refuses_an_empty_schema, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.no_migrate = 1};
    itest_master_t *m;
    int code;

    create_schema();
    m = itest_master_start(&opts);
    code = itest_master_wait_exit(m, 10000);
    cr_assert_eq(code, 2, "master --no-migrate on an empty schema exited %d", code);
    cr_expect_gt(itest_log_count(m, "stepkit migrate"), 0,
                 "the message does not say to run `stepkit migrate`");
    cr_expect_eq(itest_long("SELECT count(*) FROM pg_class WHERE relnamespace = $1::regnamespace",
                            itest.schema),
                 0, "--no-migrate created objects");
    itest_allow_error("stepkit migrate");
    itest_finish();
}

Test(migrations, schema_newer_than_the_binary_is_refused, ITEST_FIXTURES)
{
    const char *migrate[] = {"migrate", NULL};
    itest_master_t *m;
    char *before, *after;
    int code;

    expect_cli(migrate, 0, " applied)", NULL);
    itest_exec_sql("INSERT INTO schema_migrations (version, name) VALUES (9999, '9999_future')");
    before = catalog_snapshot();

    m = itest_master_start(NULL);
    code = itest_master_wait_exit(m, 10000);
    cr_assert_eq(code, 2, "master on a newer schema exited %d", code);
    cr_expect_gt(itest_log_count(m, "newer"), 0, "the master's message does not say 'newer'");

    {
        itest_cmd_t r;
        itest_cli(migrate, &r);
        cr_expect_neq(r.code, 0, "stepkit migrate accepted a newer schema: %s", r.out);
        cr_expect(strstr(r.err, "newer") != NULL, "stepkit migrate: %s", r.err);
        itest_cmd_free(&r);
    }
    after = catalog_snapshot();
    cr_expect_str_eq(after, before, "a refused migration changed the schema");
    free(before);
    free(after);
    itest_allow_error("newer");
    itest_finish();
}

Test(migrations, schema_applied_by_hand_with_psql_is_accepted, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.no_migrate = 1};
    itest_master_t *m;
    sk_run_result_t res;
    char pgoptions[128], *out;
    const char *env[2] = {pgoptions, NULL};
    glob_t g;

    sql_files(&g);
    create_schema();
    snprintf(pgoptions, sizeof(pgoptions), "PGOPTIONS=-csearch_path=%s", itest.schema);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *argv[] = {"psql", itest.url, "-X",          "-q", "-v", "ON_ERROR_STOP=1",
                              "-1",   "-f",      g.gl_pathv[i], NULL};
        itest_cmd_t r;
        itest_run_cmd(argv, env, 30000, &r);
        cr_assert_eq(r.code, 0, "psql -f %s exited %d: %s", g.gl_pathv[i], r.code, r.err);
        itest_cmd_free(&r);
    }
    cr_expect_eq(itest_long("SELECT count(*) FROM schema_migrations"), (long)g.gl_pathc);

    m = itest_master_up(&opts);
    cr_expect_eq(itest_log_count(m, "event=migration_applied"), 0);
    itest_invoke("two-steps", NULL, &res);
    cr_expect_str_eq(res.status, "completed");
    out = itest_json(res.output, res.output_len);
    cr_expect_str_eq(out, "[\"A\",\"B\"]");
    free(out);
    sk_run_result_clear(&res);
    globfree(&g);
    itest_finish();
}
