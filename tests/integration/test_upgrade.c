/*
 * Zero-downtime upgrades and deploying in any order.
 *
 * upgrade: the previous release ($STEPKIT_BUILD/prev: the same binaries
 * with only the migrations up to PREV_SCHEMA embedded, see GNUmakefile)
 * keeps running while the new release migrates the schema ahead of a
 * rolling update: its workers reconnect and accept the newer schema (every
 * newer migration is marked compatible), a restarted old pod starts on it,
 * and runs flow through old and new workers side by side.  A newer
 * migration that does not accept a binary stops it with exit code 2.
 *
 * rollout: a producer rolled out before any worker starts runs that wait,
 * and complete once a master that serves them arrives; workers first, then
 * producers, works with the typo guard on.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define PREV "prev/bin"

/* The `stepkit` CLI of $STEPKIT_BUILD/<bindir> against this test's schema. */
static void cli_of(const char *bindir, const char *const *args, itest_cmd_t *res)
{
    char bin[ITEST_PATH_MAX + 32], url[1024 + 16], schema[96];
    const char *argv[16];
    const char *env[3] = {url, schema, NULL};
    int n = 0;

    snprintf(bin, sizeof(bin), "%s/%s/stepkit", itest.build, bindir);
    snprintf(url, sizeof(url), "DATABASE_URL=%s", itest.url);
    snprintf(schema, sizeof(schema), "STEPKIT_SCHEMA=%s", itest.schema);
    argv[n++] = bin;
    for (int i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    itest_run_cmd(argv, env, 30000, res);
}

static void start_many(const char *workflow, int n)
{
    char run_id[SK_UUID_LEN];

    for (int i = 0; i < n; i++)
        itest_start(workflow, "{}", run_id);
}

/* Old and new side by side on the migrated schema while runs flow. */
Test(upgrade, old_and_new_workers_share_the_migrated_schema, ITEST_FIXTURES)
{
    const char *migrate[] = {"migrate", NULL};
    const char *start_old[] = {"start", "chain3", "--data", "{}", NULL};
    itest_master_opts_t old_o = {.workers = 2, .bindir = PREV, .extra = {"--log-level", "debug"}};
    itest_master_opts_t new_o = {.workers = 2, .no_migrate = 1, .extra = {"--log-level", "debug"}};
    itest_master_opts_t restarted_o = old_o;
    itest_master_t *old, *restarted, *neu;
    itest_cmd_t r;
    long prev_version, ended, done_old, done_restarted, done_new;
    char prev_s[24];

    /* The previous release runs and migrates its own schema. */
    old = itest_master_up(&old_o);
    prev_version = itest_long("SELECT max(version) FROM schema_migrations");
    start_many("chain3", 20);
    cr_assert_eq(itest_wait_ended(20, 30000), 20);

    /* The migration Job of the new release, ahead of the rolling update. */
    itest_cli(migrate, &r);
    cr_assert_eq(r.code, 0, "migrate: %s", r.err);
    itest_cmd_free(&r);
    cr_assert_gt(itest_long("SELECT max(version) FROM schema_migrations"), prev_version,
                 "no newer migration than the previous release's (raise PREV_SCHEMA?)");
    snprintf(prev_s, sizeof(prev_s), "%ld", prev_version);
    cr_expect_eq(itest_long("SELECT count(*) FROM schema_migrations WHERE version > $1::int"
                            "   AND (compat_floor IS NULL OR compat_floor > $1::int)",
                            prev_s),
                 0, "a migration newer than the previous release does not accept it");

    /* Its workers lose their connections (a failover, a network blip) and
     * reconnect to the newer schema: accepted, not exit 2. */
    itest_exec_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                   " WHERE application_name LIKE '%\\_m1' AND pid <> pg_backend_pid()");
    /* A restarted pod of the previous release, and the new release. */
    restarted = itest_master_start(&restarted_o);
    itest_master_wait_ready(restarted, itest_test_workflows);
    neu = itest_master_start(&new_o);
    itest_master_wait_ready(neu, itest_test_workflows);
    cr_expect(itest_log_wait(restarted, "event=schema_newer_compatible", 5000),
              "the previous release says it runs on a newer schema");

    /* Runs flow through both releases: 200 from the new client, 10 from the old CLI. */
    start_many("chain3", 200);
    for (int i = 0; i < 10; i++) {
        cli_of(PREV, start_old, &r);
        cr_assert_eq(r.code, 0, "the previous CLI's start: %s", r.err);
        itest_cmd_free(&r);
    }
    ended = itest_wait_ended(230, 60000);
    cr_assert_eq(ended, 230, "%ld of 230 runs ended", ended);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'completed'"), 230);
    done_old = itest_log_count(old, "event=run_completed");
    done_restarted = itest_log_count(restarted, "event=run_completed");
    done_new = itest_log_count(neu, "event=run_completed");
    cr_log_info("upgrade: previous release %ld + %ld runs, new release %ld runs (of 210 after "
                "the migration)",
                done_old - 20 > 0 ? done_old - 20 : 0, done_restarted, done_new);
    cr_expect_gt(done_restarted + (done_old > 20 ? done_old - 20 : 0), 0,
                 "no run ended on the previous release after the migration");
    cr_expect_gt(done_new, 0, "no run ended on the new release");
    cr_expect_eq(itest_log_count(old, "event=schema_mismatch"), 0);
    cr_expect_eq(itest_log_count(restarted, "event=schema_mismatch"), 0);
    itest_allow_error("error=\"connection lost\""); /* the backends terminated above */
    itest_finish();
}

/* compat_floor decides: above a binary's version it refuses, else it runs. */
Test(upgrade, a_newer_migration_without_a_compat_floor_stops_older_binaries, ITEST_FIXTURES)
{
    const char *migrate[] = {"migrate", NULL};
    itest_master_opts_t prev_o = {.workers = 1, .no_migrate = 1, .bindir = PREV};
    itest_master_opts_t new_o = {.workers = 1, .no_migrate = 1};
    itest_master_t *m;
    itest_cmd_t r;
    char *log;
    int code;

    itest_cli(migrate, &r);
    cr_assert_eq(r.code, 0, "migrate: %s", r.err);
    itest_cmd_free(&r);
    /* A future additive migration that needs at least this release. */
    itest_exec_sql("INSERT INTO schema_migrations (version, name, compat_floor)"
                   " SELECT max(version) + 100, 'future_additive', max(version)"
                   "   FROM schema_migrations");
    m = itest_master_start(&new_o);
    itest_master_wait_ready(m, itest_test_workflows);
    cr_expect(itest_log_wait(m, "event=schema_newer_compatible", 5000));
    cr_expect_eq(itest_master_stop(m, 10000), 0);

    m = itest_master_start(&prev_o);
    code = itest_master_wait_exit(m, 15000);
    cr_expect_eq(code, 2, "the previous release on a schema that refuses it exited %d", code);
    log = itest_master_log(m);
    cr_expect(strstr(log, "does not accept binaries of version") != NULL, "log: %s", log);
    free(log);
    cli_of(PREV, migrate, &r);
    cr_expect_eq(r.code, 1, "the previous CLI's migrate: %d %s", r.code, r.out);
    cr_expect(strstr(r.err, "upgrade stepkit") != NULL, "%s", r.err);
    itest_cmd_free(&r);

    /* A breaking one (no floor) stops the current release too. */
    itest_exec_sql(
        "UPDATE schema_migrations SET compat_floor = NULL WHERE name = 'future_additive'");
    m = itest_master_start(&new_o);
    code = itest_master_wait_exit(m, 15000);
    cr_expect_eq(code, 2, "a breaking newer migration: exit %d", code);
    itest_allow_error("does not accept binaries of version");
    itest_finish();
}

/* Producer first: runs wait for a master that has never run; they complete
 * once it arrives.  Then workers first: the guard passes. */
Test(rollout, producer_first_then_workers_and_workers_first, ITEST_FIXTURES)
{
    const char *migrate[] = {"migrate", NULL};
    const char *guarded[] = {"start", "two-steps", "--require-registered", NULL};
    const char *plain[] = {"start", "chain3", NULL};
    itest_cmd_t r;
    itest_master_t *m;
    long ended;

    /* The migration Job ran; no master yet. */
    itest_cli(migrate, &r);
    cr_assert_eq(r.code, 0, "migrate: %s", r.err);
    itest_cmd_free(&r);
    start_many("chain3", 30);
    itest_cli(plain, &r);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.err, "warning: no master has registered workflow 'chain3'") != NULL, "%s",
              r.err);
    itest_cmd_free(&r);
    itest_cli(guarded, &r);
    cr_expect_eq(r.code, 1, "the guard lets an unregistered workflow through: %s", r.out);
    itest_cmd_free(&r);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'pending'"), 31);
    cr_expect_eq(itest_long("SELECT count(*) FROM workflows"), 0);

    /* The workers arrive: every waiting run completes. */
    m = itest_master_up(NULL);
    ended = itest_wait_ended(31, 30000);
    cr_expect_eq(ended, 31, "%ld of 31 waiting runs ended", ended);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'completed'"), 31);

    /* Workers first: the guarded start passes and runs. */
    itest_cli(guarded, &r);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.err, "warning") == NULL, "%s", r.err);
    itest_cmd_free(&r);
    cr_expect_eq(itest_wait_ended(32, 30000), 32);
    (void)m;
    itest_finish();
}
