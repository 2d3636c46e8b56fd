/*
 * Run management (sql/007_runs.sql, the client, the CLI): cancel (racing a
 * step's commit, a parent with running children, a parent waiting on a
 * cancelled child), retry (a run that failed in its third step, a
 * cancelled run), idempotency keys under concurrent starts, delayed
 * starts, listing with keyset pagination, stats, and retention under load.
 * Workflows: tests/workflows/runswf.c and chain3 (testwf.c).
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"

#define COUNT(run, key) itest_count(itest.counts, (run), (key))

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* Wait until `sql` ($1 = arg) gives a count >= n; the count reached. */
static long wait_for(const char *sql, const char *arg, long n, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    long v;

    for (;;) {
        v = itest_long(sql, arg);
        if (v >= n || now_ms() > deadline)
            return v;
        nap(20);
    }
}

static void wait_count(const char *run, const char *key, int n, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;

    while (COUNT(run, key) < n) {
        cr_assert(now_ms() < deadline, "run %s: '%s' not counted %d times", run, key, n);
        nap(20);
    }
}

/* A schema without a master (tests that write runs themselves). */
static void migrate_only(void)
{
    const char *args[] = {"migrate", NULL};
    itest_cmd_t r;

    itest_cli(args, &r);
    cr_assert_eq(r.code, 0, "migrate: %s", r.err);
    itest_cmd_free(&r);
}

static char *status_of(const char *run)
{
    return itest_str("SELECT status FROM runs WHERE run_id = $1::uuid", run);
}

static void expect_status(const char *run, const char *want)
{
    char *st = status_of(run);

    cr_expect_str_eq(st, want, "status of %s", run);
    free(st);
}

/* The run's stored error, parsed (caller decrefs). */
static json_t *error_of(const char *run)
{
    char *text = itest_bytea_json("SELECT error FROM runs WHERE run_id = $1::uuid", run);
    json_t *e;

    cr_assert_not_null(text, "run %s has no error", run);
    e = itest_parse(text);
    free(text);
    return e;
}

static int cancel(const char *run, const char *reason)
{
    char err[512];
    int n = -1;

    cr_assert_eq(sk_client_cancel(itest.client, run, reason, &n, err, sizeof(err)), SK_OK,
                 "cancel %s: %s", run, err);
    return n;
}

static void child_of(const char *parent, char child[SK_UUID_LEN])
{
    char *id = itest_str("SELECT run_id::text FROM runs WHERE parent_run_id = $1::uuid", parent);

    cr_assert_not_null(id, "run %s started no child", parent);
    snprintf(child, SK_UUID_LEN, "%s", id);
    free(id);
}

/* ---- cancel ------------------------------------------------------------------------- */

/* The cancel commits while s1's body runs: the body finishes, its result is
 * refused by the fence (nothing recorded), s2 never runs, the run ends
 * once, cancelled with CancelledError and the reason. */
Test(runs, cancel_refuses_the_result_of_a_step_in_flight, ITEST_FIXTURES)
{
    itest_master_t *m = itest_master_up(NULL);
    char run[SK_UUID_LEN], err[256];
    sk_run_result_t res;
    json_t *e;

    itest_start("chain3", "{\"sleep_ms\": 1500}", run);
    wait_count(run, "s1", 1, 10000);
    cr_expect_eq(cancel(run, "wrong input"), 1);
    expect_status(run, "cancelled");
    /* A waiting client learns of the end at once. */
    cr_assert_eq(sk_client_wait(itest.client, run, 5000, &res, err, sizeof(err)), SK_OK, "%s", err);
    cr_expect_str_eq(res.status, "cancelled");
    sk_run_result_clear(&res);
    /* The body ends 1.5 s after it began; its checkpoint hits the fence. */
    cr_expect(itest_log_wait(m, "event=lease_lost", 10000), "the late result was not refused");
    nap(300);
    cr_expect_eq(COUNT(run, "s1"), 1);
    cr_expect_eq(COUNT(run, "s2"), 0, "a step after the cancelled one ran");
    cr_expect_eq(COUNT(run, "after"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid", run), 0,
                 "the refused result was recorded");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE run_id = $1::uuid", run), 0);
    e = error_of(run);
    cr_expect_str_eq(itest_jstr(e, "name"), "CancelledError");
    cr_expect_str_eq(itest_jstr(e, "message"), "run cancelled: wrong input");
    cr_expect(json_is_false(itest_jget(e, "retryable")));
    json_decref(e);
    {
        char *reason = itest_str("SELECT cancel_reason FROM runs WHERE run_id = $1::uuid", run);
        cr_expect_str_eq(reason, "wrong input");
        free(reason);
    }
    /* Cancelling an ended run is a no-op. */
    cr_expect_eq(cancel(run, "again"), 0);
    expect_status(run, "cancelled");
    itest_finish();
}

/* Many runs with short steps cancelled at arbitrary moments: each ends
 * once (completed, or cancelled), and a cancelled run ran at most the one
 * body in flight beyond what it recorded. */
Test(runs, cancel_races_step_commits, ITEST_FIXTURES)
{
    enum { N = 24 };
    char runs[N][SK_UUID_LEN];
    int cancelled = 0;

    itest_master_up(&(itest_master_opts_t){.workers = 3});
    for (int i = 0; i < N; i++)
        itest_start("chain3", "{\"sleep_ms\": 15}", runs[i]);
    for (int i = 0; i < N; i++) {
        nap(i % 4 * 7);
        cancelled += cancel(runs[i], NULL) == 1;
    }
    cr_expect_eq(itest_wait_ended(N, 20000), N);
    nap(500); /* let every body in flight reach its fence */
    for (int i = 0; i < N; i++) {
        char *st = status_of(runs[i]);
        long recorded = itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid", runs[i]);
        int bodies = COUNT(runs[i], "s1") + COUNT(runs[i], "s2") + COUNT(runs[i], "s3");
        if (strcmp(st, "cancelled") == 0) {
            /* The handler's code after s3 may run in memory (a replay), but
             * the end it reaches is refused: the run stays cancelled. */
            cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE run_id = $1::uuid"
                                    " AND output IS NULL AND cancel_reason IS NULL",
                                    runs[i]),
                         1);
            cr_expect(bodies <= recorded + 1, "run %s: %d bodies ran, %ld recorded", runs[i],
                      bodies, recorded);
            cr_expect(recorded < 3);
        } else {
            cr_expect_str_eq(st, "completed", "run %s", runs[i]);
            cr_expect_eq(recorded, 3);
        }
        free(st);
    }
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'cancelled'"), cancelled);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    itest_finish();
}

/* Cancelling a parent whose child is running (its step body in flight):
 * both end cancelled at once; the child's waits are dropped and nothing of
 * either runs afterwards. */
Test(runs, cancel_of_a_parent_cancels_its_running_children, ITEST_FIXTURES)
{
    itest_master_t *m = itest_master_up(NULL);
    char parent[SK_UUID_LEN], child[SK_UUID_LEN], to[SK_UUID_LEN], err[256];
    json_t *e;

    itest_start("runs-parent", "{\"signal\": \"go-parent\", \"sleep_ms\": 1200}", parent);
    cr_assert_eq(
        wait_for("SELECT count(*) FROM runs WHERE parent_run_id = $1::uuid", parent, 1, 10000), 1);
    child_of(parent, child);
    wait_count(child, "c1", 1, 10000); /* the child's body is running */
    cr_expect_eq(cancel(parent, "stop all"), 2, "the parent and its child");
    expect_status(parent, "cancelled");
    expect_status(child, "cancelled");
    e = error_of(child);
    cr_expect_str_eq(itest_jstr(e, "name"), "CancelledError");
    json_decref(e);
    cr_expect(itest_log_wait(m, "event=lease_lost", 10000), "the child's step was not refused");
    nap(300);
    cr_expect_eq(COUNT(child, "c1-done"), 1, "the body in flight finished");
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid", child), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM waiting_signals"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM waiting_invokes"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    /* Nobody waits any more: the signal is dropped. */
    cr_assert_eq(sk_client_signal(itest.client, "go-parent", NULL, 0, to, err, sizeof(err)), SK_OK);
    cr_expect_str_eq(to, "");
    cr_expect_eq(COUNT(parent, "catch") + COUNT(parent, "after"), 0);
    cr_expect_eq(COUNT(child, "after"), 0);
    /* stepkit run shows both sides. */
    {
        char *json = sk_client_run_json(itest.client, parent, err, sizeof(err));
        json_t *r = itest_parse(json);
        cr_expect_str_eq(itest_jstr(r, "children.0.run_id"), child);
        cr_expect_str_eq(itest_jstr(r, "children.0.status"), "cancelled");
        cr_expect_str_eq(itest_jstr(r, "cancel_reason"), "stop all");
        json_decref(r);
        free(json);
        json = sk_client_run_json(itest.client, child, err, sizeof(err));
        r = itest_parse(json);
        cr_expect_str_eq(itest_jstr(r, "parent_run_id"), parent);
        json_decref(r);
        free(json);
    }
    itest_finish();
}

/* A parent waiting on a child that gets cancelled sees CancelledError at
 * its invoke step (and may catch it). */
Test(runs, a_parent_gets_the_cancel_of_its_child_at_the_invoke, ITEST_FIXTURES)
{
    char parent[SK_UUID_LEN], child[SK_UUID_LEN];
    json_t *e;

    itest_master_up(NULL);
    itest_start("runs-parent", "{\"signal\": \"go-child\"}", parent);
    cr_assert_eq(
        wait_for("SELECT count(*) FROM runs WHERE parent_run_id = $1::uuid", parent, 1, 10000), 1);
    child_of(parent, child);
    cr_assert_eq(
        wait_for("SELECT count(*) FROM waiting_signals WHERE run_id = $1::uuid", child, 1, 10000),
        1, "the child does not wait");
    cr_expect_eq(cancel(child, "not needed"), 1);
    cr_assert_eq(
        wait_for("SELECT count(*) FROM runs WHERE run_id = $1::uuid AND status <> 'pending'",
                 parent, 1, 10000),
        1, "the parent did not end");
    expect_status(parent, "failed");
    e = error_of(parent);
    cr_expect_str_eq(itest_jstr(e, "name"), "CancelledError");
    cr_expect_str_eq(itest_jstr(e, "message"), "run cancelled: not needed");
    json_decref(e);
    cr_expect_eq(COUNT(parent, "catch"), 1, "the error reached the invoke step");
    cr_expect_eq(COUNT(parent, "after"), 0);
    itest_finish();
}

/* By filter: without --yes a count, with it the runs are cancelled. */
Test(runs, cancel_by_filter_counts_then_cancels, ITEST_FIXTURES)
{
    const char *dry[] = {"cancel", "--workflow", "runs-child", "--status", "waiting", NULL};
    const char *yes[] = {"cancel", "--workflow", "runs-child", "--status", "waiting",
                         "--yes",  "--reason",   "cleanup",    "--json",   NULL};
    char run[SK_UUID_LEN];
    itest_cmd_t r;

    itest_master_up(NULL);
    for (int i = 0; i < 3; i++)
        itest_start("runs-child", "{\"signal\": \"never\"}", run);
    itest_start("two-steps", NULL, run);
    cr_assert_eq(
        wait_for("SELECT count(*) FROM waiting_signals WHERE signal = $1", "never", 3, 10000), 3);
    itest_cli(dry, &r);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.out, "3 runs match") != NULL, "%s", r.out);
    itest_cmd_free(&r);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'cancelled'"), 0);
    itest_cli(yes, &r);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "{\"cancelled\":3}\n");
    itest_cmd_free(&r);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'cancelled'"
                            " AND cancel_reason = 'cleanup' AND workflow_id = 'runs-child'"),
                 3);
    cr_expect_eq(itest_long("SELECT count(*) FROM waiting_signals"), 0);
    itest_finish();
}

/* ---- retry ---------------------------------------------------------------------------- */

/* s3 fails for good (2 attempts), the run fails; after the fix (here: s3
 * passes from its third execution) a retry runs s3 again with a fresh
 * budget, s1 and s2 stay recorded and do not run again; the history keeps
 * the earlier error and attempts. */
Test(runs, retry_resumes_a_run_that_failed_in_its_third_step, ITEST_FIXTURES)
{
    char err[256];
    sk_run_result_t res;
    json_t *r;
    char *json;
    int retry = 0;

    itest_master_up(NULL);
    itest_invoke("runs-fail3", NULL, &res);
    cr_assert_str_eq(res.status, "failed");
    sk_run_result_clear(&res);
    {
        char run[SK_UUID_LEN];
        char *id = itest_str("SELECT run_id::text FROM runs WHERE workflow_id = 'runs-fail3'");
        snprintf(run, sizeof(run), "%s", id);
        free(id);
        cr_expect_eq(COUNT(run, "s1"), 1);
        cr_expect_eq(COUNT(run, "s2"), 1);
        cr_expect_eq(COUNT(run, "s3"), 2);
        cr_assert_eq(sk_client_retry(itest.client, run, &retry, err, sizeof(err)), SK_OK, "%s",
                     err);
        cr_expect_eq(retry, 1);
        cr_assert_eq(sk_client_wait(itest.client, run, 15000, &res, err, sizeof(err)), SK_OK);
        cr_expect_str_eq(res.status, "completed");
        sk_run_result_clear(&res);
        cr_expect_eq(COUNT(run, "s1"), 1, "a recorded step ran again");
        cr_expect_eq(COUNT(run, "s2"), 1, "a recorded step ran again");
        cr_expect_eq(COUNT(run, "s3"), 3, "the failed step ran once more");
        cr_expect_eq(COUNT(run, "after"), 1);
        cr_expect_eq(itest_long("SELECT retries FROM runs WHERE run_id = $1::uuid", run), 1);
        json = sk_client_run_json(itest.client, run, err, sizeof(err));
        cr_assert_not_null(json, "%s", err);
        r = itest_parse(json);
        cr_expect_str_eq(itest_jstr(r, "status"), "completed");
        cr_expect_str_eq(itest_jstr(r, "retries.0.status"), "failed");
        cr_expect_str_eq(itest_jstr(r, "retries.0.error.name"), "StepThreeError");
        cr_expect_str_eq(itest_jstr(r, "retries.0.cleared_steps.0.step_id"), "s3");
        cr_expect_eq(json_integer_value(itest_jget(r, "retries.0.cleared_steps.0.attempts")), 2);
        cr_expect_str_eq(itest_jstr(r, "retries.0.cleared_steps.0.error.message"),
                         "s3 failed (execution 2)");
        json_decref(r);
        free(json);
        /* A completed run cannot be retried. */
        cr_expect_eq(sk_client_retry(itest.client, run, &retry, err, sizeof(err)), SK_ERROR);
        cr_expect(strstr(err, "only a failed or cancelled run can be retried") != NULL, "%s", err);
    }
    itest_finish();
}

/* A cancelled run resumes where it stopped: its recorded step stays, the
 * dropped signal wait is registered again. */
Test(runs, retry_resumes_a_cancelled_run, ITEST_FIXTURES)
{
    const char *retry_cmd[3] = {"retry", NULL, NULL};
    char run[SK_UUID_LEN], to[SK_UUID_LEN], err[256];
    sk_run_result_t res;
    itest_cmd_t r;

    itest_master_up(NULL);
    itest_start("runs-child", "{\"signal\": \"resume-me\"}", run);
    cr_assert_eq(
        wait_for("SELECT count(*) FROM waiting_signals WHERE run_id = $1::uuid", run, 1, 10000), 1);
    cr_expect_eq(cancel(run, NULL), 1);
    retry_cmd[1] = run;
    itest_cli(retry_cmd, &r);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.out, "retry 1") != NULL, "%s", r.out);
    itest_cmd_free(&r);
    cr_assert_eq(
        wait_for("SELECT count(*) FROM waiting_signals WHERE run_id = $1::uuid", run, 1, 10000), 1,
        "the wait was not registered again");
    cr_assert_eq(sk_client_signal(itest.client, "resume-me", NULL, 0, to, err, sizeof(err)), SK_OK);
    cr_expect_str_eq(to, run);
    cr_assert_eq(sk_client_wait(itest.client, run, 10000, &res, err, sizeof(err)), SK_OK);
    cr_expect_str_eq(res.status, "completed");
    sk_run_result_clear(&res);
    cr_expect_eq(COUNT(run, "c1"), 1, "the recorded step ran again");
    cr_expect_eq(COUNT(run, "after"), 1);
    cr_expect_eq(itest_long("SELECT count(*) FROM run_retries WHERE run_id = $1::uuid"
                            " AND status = 'cancelled'",
                            run),
                 1);
    itest_finish();
}

/* ---- idempotency keys, delayed starts ---------------------------------------------------- */

typedef struct {
    pthread_barrier_t *go;
    const char *key;
    char run_id[SK_UUID_LEN];
    int created;
    int rc;
    char err[256];
} starter_t;

static void *starter(void *arg)
{
    starter_t *s = arg;
    sk_start_opts_t o = {.key = s->key};
    sk_client_t *c = sk_client_connect(itest.url, itest.schema, s->err, sizeof(s->err));

    s->rc = SK_ERROR;
    pthread_barrier_wait(s->go);
    if (c != NULL)
        s->rc = sk_client_start_opts(c, "two-steps", NULL, 0, &o, s->run_id, NULL, &s->created,
                                     s->err, sizeof(s->err));
    sk_client_close(c);
    return NULL;
}

/* 16 clients start the same workflow with the same key at once, five
 * times over: each round makes one run, and every client gets its id. */
Test(runs, concurrent_starts_with_one_key_make_one_run, ITEST_FIXTURES)
{
    enum { CLIENTS = 16, ROUNDS = 5 };

    itest_master_up(NULL);
    for (int round = 0; round < ROUNDS; round++) {
        starter_t s[CLIENTS];
        pthread_t t[CLIENTS];
        pthread_barrier_t go;
        char key[32];
        int created = 0;

        snprintf(key, sizeof(key), "order-%d", round);
        pthread_barrier_init(&go, NULL, CLIENTS);
        for (int i = 0; i < CLIENTS; i++) {
            memset(&s[i], 0, sizeof(s[i]));
            s[i].go = &go;
            s[i].key = key;
            cr_assert_eq(pthread_create(&t[i], NULL, starter, &s[i]), 0);
        }
        for (int i = 0; i < CLIENTS; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        for (int i = 0; i < CLIENTS; i++) {
            cr_assert_eq(s[i].rc, SK_OK, "client %d: %s", i, s[i].err);
            cr_expect_str_eq(s[i].run_id, s[0].run_id, "client %d got another run", i);
            created += s[i].created;
        }
        cr_expect_eq(created, 1, "round %d: %d clients were told they created the run", round,
                     created);
        cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE idempotency_key = $1", key), 1);
    }
    cr_expect_eq(itest_wait_ended(ROUNDS, 10000), ROUNDS);
    /* SQL: the same key returns the same run, another workflow is another run. */
    {
        char *a = itest_str("SELECT start_run('two-steps', 'null', key => 'order-0')::text");
        cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE run_id = $1::uuid"
                                " AND idempotency_key = 'order-0'",
                                a),
                     1);
        free(a);
        cr_expect_eq(itest_long("SELECT count(*) FROM runs"), ROUNDS);
    }
    itest_finish();
}

/* --delay and --at: the run waits, holding no worker, then runs. */
Test(runs, delayed_starts_wait_for_their_time, ITEST_FIXTURES)
{
    const char *delay[] = {"start", "two-steps", "--delay", "1500ms", "--json", NULL};
    const char *bad[] = {"start", "two-steps", "--delay", "soon", NULL};
    char run[64], err[256];
    json_t *j;
    itest_cmd_t r;
    long ms;

    itest_master_up(NULL);
    itest_cli(delay, &r);
    cr_assert_eq(r.code, 0, "%s", r.err);
    j = itest_parse(r.out);
    snprintf(run, sizeof(run), "%s", itest_jstr(j, "run_id"));
    cr_expect(json_is_true(itest_jget(j, "created")));
    cr_expect_not_null(itest_jstr(j, "event_id"));
    json_decref(j);
    itest_cmd_free(&r);
    {
        char *json = sk_client_run_json(itest.client, run, err, sizeof(err));
        json_t *rj = itest_parse(json);
        cr_expect_str_eq(itest_jstr(rj, "status"), "scheduled");
        json_decref(rj);
        free(json);
    }
    nap(600);
    expect_status(run, "pending");
    cr_assert_eq(
        wait_for("SELECT count(*) FROM runs WHERE run_id = $1::uuid AND status <> 'pending'", run,
                 1, 10000),
        1);
    ms = itest_long("SELECT (extract(epoch FROM ended_at - created_at) * 1000)::int8 FROM runs"
                    " WHERE run_id = $1::uuid",
                    run);
    cr_expect(ms >= 1500, "ended %ld ms after the start", ms);
    /* From SQL, with start_at. */
    {
        char *id = itest_str(
            "SELECT start_run('two-steps', 'null', start_at => now() + interval '1 hour')::text");
        cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE run_id = $1::uuid"
                                " AND visible_at > now() + interval '59 minutes'",
                                id),
                     1);
        free(id);
    }
    itest_cli(bad, &r);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "not a duration") != NULL, "%s", r.err);
    itest_cmd_free(&r);
    itest_finish();
}

/* --priority with --key: the run the first start makes ranks by the
 * priority; a second start with the key gets that run and leaves its rank
 * alone; a delayed start refuses a priority (it ranks by its due time). */
Test(runs, a_keyed_start_takes_a_priority, ITEST_FIXTURES)
{
    const char *first[] = {"start",      "two-steps", "--key",  "prio-k",
                           "--priority", "600",       "--json", NULL};
    const char *again[] = {"start",      "two-steps", "--key",  "prio-k",
                           "--priority", "0",         "--json", NULL};
    const char *delayed[] = {"start", "two-steps", "--delay", "1h", "--priority", "5", NULL};
    char run[64];
    json_t *j;
    itest_cmd_t r;

    /* A master migrates and registers, then stops: the run stays queued
     * where its rank can be read. */
    cr_assert_eq(itest_master_stop(itest_master_up(NULL), 10000), 0);
    itest_cli(first, &r);
    cr_assert_eq(r.code, 0, "%s", r.err);
    j = itest_parse(r.out);
    snprintf(run, sizeof(run), "%s", itest_jstr(j, "run_id"));
    cr_expect(json_is_true(itest_jget(j, "created")));
    json_decref(j);
    itest_cmd_free(&r);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE run_id = $1::uuid"
                            " AND visible_at < now() - interval '590 s'",
                            run),
                 1, "run %s does not rank 600 s earlier", run);
    itest_cli(again, &r);
    cr_assert_eq(r.code, 0, "%s", r.err);
    j = itest_parse(r.out);
    cr_expect_str_eq(itest_jstr(j, "run_id"), run);
    cr_expect(json_is_false(itest_jget(j, "created")));
    json_decref(j);
    itest_cmd_free(&r);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE run_id = $1::uuid"
                            " AND visible_at < now() - interval '590 s'",
                            run),
                 1, "the second start changed the rank of %s", run);
    itest_cli(delayed, &r);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "--priority cannot be combined with --at or --delay") != NULL, "%s",
              r.err);
    itest_cmd_free(&r);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs"), 1, "a refused start left a run");
    itest_finish();
}

/* ---- list, stats -------------------------------------------------------------------------- */

/* 30 runs over two workflows read back in pages of 7: newest first, each
 * once, the cursor stable while new runs arrive. */
Test(runs, list_pages_with_a_cursor, ITEST_FIXTURES)
{
    char *cursor = NULL;
    char err[256];
    int seen = 0;
    char last_created[64] = "";

    migrate_only();
    itest_exec_sql("INSERT INTO workflows (workflow_id, max_attempts) VALUES ('wa', 1), ('wb', 1)");
    for (int i = 0; i < 30; i++)
        itest_exec_sql(i % 3 ? "SELECT start_run('wa')" : "SELECT start_run('wb')");
    for (int page = 0; page < 10; page++) {
        sk_list_filter_t f = {.limit = 7, .after = cursor};
        char *text = sk_client_list_json(itest.client, &f, err, sizeof(err));
        json_t *arr, *row;
        size_t i;
        cr_assert_not_null(text, "%s", err);
        arr = itest_parse(text);
        free(text);
        if (page == 1) /* a run started meanwhile is newer: it is not on later pages */
            itest_exec_sql("SELECT start_run('wa')");
        json_array_foreach(arr, i, row)
        {
            const char *created = itest_jstr(row, "created_at");
            cr_expect(last_created[0] == '\0' || strcmp(created, last_created) <= 0,
                      "not newest first: %s after %s", created, last_created);
            snprintf(last_created, sizeof(last_created), "%s", created);
            cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE run_id = $1::uuid",
                                    itest_jstr(row, "run_id")),
                         1);
            seen++;
        }
        free(cursor);
        cursor = json_array_size(arr)
                     ? strdup(itest_jstr(json_array_get(arr, json_array_size(arr) - 1), "cursor"))
                     : NULL;
        json_decref(arr);
        if (cursor == NULL)
            break;
    }
    free(cursor);
    cr_expect_eq(seen, 30, "every run once");
    /* Filters. */
    {
        sk_list_filter_t f = {.workflow = "wb", .limit = 100};
        char *text = sk_client_list_json(itest.client, &f, err, sizeof(err));
        json_t *arr = itest_parse(text);
        cr_expect_eq(json_array_size(arr), 10);
        json_decref(arr);
        free(text);
    }
    itest_exec_sql("SELECT cancel_run(run_id) FROM runs WHERE workflow_id = 'wa' LIMIT 4");
    /* Pending runs are listed from the queue: 31 started, 4 cancelled. */
    cr_expect_eq(
        itest_long("SELECT count(*) FROM list_runs(p_status => 'pending', p_limit => 100)"), 27);
    cr_expect_eq(itest_long("SELECT count(*) FROM list_runs(p_workflow => 'wb',"
                            " p_status => 'pending', p_limit => 100)"),
                 10);
    {
        const char *args[] = {"runs", "--status", "cancelled", "--json", NULL};
        const char *bad[] = {"runs", "--after", "nonsense", NULL};
        const char *table[] = {"runs", "--workflow", "wa", "--limit", "5", NULL};
        itest_cmd_t r;
        int lines = 0;
        itest_cli(args, &r);
        cr_expect_eq(r.code, 0, "%s", r.err);
        for (char *p = r.out; (p = strchr(p, '\n')) != NULL; p++)
            lines++;
        cr_expect_eq(lines, 4, "%s", r.out);
        cr_expect(strstr(r.out, "\"status\":\"cancelled\"") != NULL);
        itest_cmd_free(&r);
        itest_cli(bad, &r);
        cr_expect_eq(r.code, 1);
        cr_expect(strstr(r.err, "invalid cursor") != NULL, "%s", r.err);
        itest_cmd_free(&r);
        itest_cli(table, &r);
        cr_expect_eq(r.code, 0, "%s", r.err);
        cr_expect(strstr(r.out, "next page: --after ") != NULL, "%s", r.out);
        itest_cmd_free(&r);
    }
    itest_finish();
}

Test(runs, stats_per_workflow, ITEST_FIXTURES)
{
    const char *args[] = {"stats", "--json", NULL};
    const char *table[] = {"stats", NULL};
    char run[SK_UUID_LEN];
    sk_run_result_t res;
    itest_cmd_t r;
    char *line;
    json_t *j;

    itest_master_up(NULL);
    itest_invoke("two-steps", NULL, &res);
    sk_run_result_clear(&res);
    itest_start("runs-child", "{\"signal\": \"stats\"}", run);
    cr_assert_eq(
        wait_for("SELECT count(*) FROM waiting_signals WHERE run_id = $1::uuid", run, 1, 10000), 1);
    itest_cli(args, &r);
    cr_assert_eq(r.code, 0, "%s", r.err);
    line = strstr(r.out, "{\"workflow\":\"two-steps\"");
    cr_assert_not_null(line, "%s", r.out);
    *strchr(line, '\n') = '\0';
    j = itest_parse(line);
    cr_expect_eq(json_integer_value(itest_jget(j, "completed_1h")), 1);
    cr_expect_eq(json_integer_value(itest_jget(j, "queued")), 0);
    json_decref(j);
    itest_cmd_free(&r);
    itest_cli(args, &r);
    line = strstr(r.out, "{\"workflow\":\"runs-child\"");
    cr_assert_not_null(line, "%s", r.out);
    *strchr(line, '\n') = '\0';
    j = itest_parse(line);
    cr_expect_eq(json_integer_value(itest_jget(j, "waiting")), 1);
    json_decref(j);
    itest_cmd_free(&r);
    itest_cli(table, &r);
    cr_expect_eq(r.code, 0);
    cr_expect(strstr(r.out, "WORKFLOW") != NULL && strstr(r.out, "runs-child") != NULL, "%s",
              r.out);
    itest_cmd_free(&r);
    itest_finish();
}

/* ---- retention ------------------------------------------------------------------------------- */

/* A backlog of 3000 runs that ended an hour ago is pruned by the workers
 * (--retention 30m) in batches while 150 new runs execute; the new runs all
 * complete; a finished child its pending parent may still read, and a
 * finished child a parent waits on, are kept; so is everything recent. */
Test(runs, retention_prunes_a_backlog_under_load, ITEST_FIXTURES)
{
    itest_master_opts_t o = {.workers = 2, .extra = {"--retention", "30m", NULL}};
    itest_master_t *m = itest_master_up(NULL); /* migrate and register, then stop */
    char runs[150][SK_UUID_LEN];
    int64_t deadline;

    cr_assert_eq(itest_master_stop(m, 10000), 0);
    itest_exec_sql(
        "INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data,"
        "                  status, output, created_at, ended_at)"
        " SELECT gen_random_uuid(), 'two-steps', gen_random_uuid(), 'invoke', 'two-steps',"
        "        '\\xc0', 'completed', '\\xc0', now() - interval '2 hours',"
        "        now() - interval '1 hour' - i * interval '1 ms'"
        "   FROM generate_series(1, 3000) i");
    itest_exec_sql("INSERT INTO ops (run_id, op_key, step_id, status, result, attempts)"
                   " SELECT run_id, 'k', 'a', 'ok', '\\xc0', 1 FROM runs");
    /* Kept: a finished child whose parent is pending, one a parent waits on. */
    itest_exec_sql(
        "INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data,"
        "                  status, parent_run_id, ended_at) VALUES"
        " ('00000000-0000-0000-0000-00000000000a', 'two-steps', gen_random_uuid(), 'invoke',"
        "  'two-steps', '\\xc0', 'pending', NULL, NULL),"
        " ('00000000-0000-0000-0000-00000000000b', 'two-steps', gen_random_uuid(), 'invoke',"
        "  'two-steps', '\\xc0', 'completed', '00000000-0000-0000-0000-00000000000a',"
        "  now() - interval '3 hours'),"
        " ('00000000-0000-0000-0000-00000000000c', 'two-steps', gen_random_uuid(), 'invoke',"
        "  'two-steps', '\\xc0', 'completed', NULL, now() - interval '3 hours')");
    itest_exec_sql("INSERT INTO waiting_invokes (child_run_id, parent_run_id, parent_op_key)"
                   " VALUES ('00000000-0000-0000-0000-00000000000c',"
                   "         '00000000-0000-0000-0000-00000000000d', 'x')");
    m = itest_master_start(&o);
    itest_master_wait_ready(m, itest_test_workflows);
    for (int i = 0; i < 150; i++)
        itest_start(i % 2 ? "chain3" : "two-steps", NULL, runs[i]);
    deadline = now_ms() + 60000;
    while (itest_long("SELECT count(*) FROM runs WHERE ended_at < now() - interval '30 minutes'") >
           2) {
        cr_assert(now_ms() < deadline, "the backlog was not pruned");
        nap(100);
    }
    for (int i = 0; i < 150; i++) {
        cr_assert_eq(wait_for("SELECT count(*) FROM runs WHERE run_id = $1::uuid"
                              " AND status <> 'pending'",
                              runs[i], 1, 20000),
                     1);
        expect_status(runs[i], "completed");
    }
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE run_id IN"
                            " ('00000000-0000-0000-0000-00000000000b',"
                            "  '00000000-0000-0000-0000-00000000000c')"),
                 2, "a run a parent waits on was pruned");
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE op_key = 'k'"), 0,
                 "ops of pruned runs are left");
    cr_expect(itest_log_count(m, "event=runs_pruned") >= 6, "pruned in batches of 500");
    itest_finish();
}

/* stepkit prune and the SQL function: by age, batch after batch. */
Test(runs, prune_by_command, ITEST_FIXTURES)
{
    const char *args[] = {"prune", "--older-than", "10m", "--batch", "40", "--json", NULL};
    const char *missing[] = {"prune", NULL};
    itest_cmd_t r;

    migrate_only();
    itest_exec_sql("INSERT INTO workflows (workflow_id, max_attempts) VALUES ('wa', 1)");
    itest_exec_sql(
        "INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data,"
        "                  status, created_at, ended_at)"
        " SELECT gen_random_uuid(), 'wa', gen_random_uuid(), 'invoke', 'wa', '\\xc0',"
        "        'failed', now() - i * interval '1 minute', now() - i * interval '1 minute'"
        "   FROM generate_series(1, 100) i");
    itest_cli(args, &r);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "{\"deleted\":91}\n"); /* 10..100 minutes ago */
    itest_cmd_free(&r);
    cr_expect_eq(itest_long("SELECT prune_runs(interval '5 minutes')"), 5);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs"), 4);
    itest_cli(missing, &r);
    cr_expect_eq(r.code, 2);
    cr_expect(strstr(r.err, "--older-than") != NULL, "%s", r.err);
    itest_cmd_free(&r);
    itest_finish();
}

/* The SQL functions run in the caller's transaction: a rollback undoes a
 * cancel, a retry and a keyed start. */
Test(runs, sql_functions_follow_the_callers_transaction, ITEST_FIXTURES)
{
    char *run;

    migrate_only();
    itest_exec_sql("INSERT INTO workflows (workflow_id, max_attempts) VALUES ('wa', 1)");
    run = itest_str("SELECT start_run('wa')::text");
    itest_exec_sql("BEGIN; SELECT cancel_run(run_id, 'oops') FROM runs; ROLLBACK");
    expect_status(run, "pending");
    itest_exec_sql("BEGIN; SELECT start_run('wa', 'null', key => 'k1'); ROLLBACK");
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE idempotency_key = 'k1'"), 0);
    cr_expect_eq(itest_long("SELECT cancel_run($1::uuid)", run), 1);
    itest_exec_sql("BEGIN; SELECT retry_run(run_id) FROM runs; ROLLBACK");
    expect_status(run, "cancelled");
    cr_expect_eq(itest_long("SELECT count(*) FROM run_retries"), 0);
    free(run);
    itest_finish();
}

/* The human views: stepkit run with children and retries, send --json. */
Test(runs, cli_shows_relatives_and_history, ITEST_FIXTURES)
{
    const char *send[] = {"send", "nobody.listens", "--json", NULL};
    const char *show[3] = {"run", NULL, NULL};
    char parent[SK_UUID_LEN], child[SK_UUID_LEN], err[256];
    itest_cmd_t r;
    int retry;

    itest_master_up(NULL);
    itest_start("runs-parent", "{\"signal\": \"cli-show\"}", parent);
    cr_assert_eq(
        wait_for("SELECT count(*) FROM waiting_signals WHERE signal = $1", "cli-show", 1, 10000),
        1);
    child_of(parent, child);
    cr_expect_eq(cancel(parent, "shown"), 2);
    cr_assert_eq(sk_client_retry(itest.client, parent, &retry, err, sizeof(err)), SK_OK, "%s", err);
    show[1] = parent;
    itest_cli(show, &r);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.out, "children  ") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, child) != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "retry 1 at ") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "CancelledError: run cancelled: shown") != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "cleared call") != NULL, "%s", r.out);
    itest_cmd_free(&r);
    show[1] = child;
    itest_cli(show, &r);
    cr_expect(strstr(r.out, "parent    ") != NULL && strstr(r.out, parent) != NULL, "%s", r.out);
    cr_expect(strstr(r.out, "reason    shown") != NULL, "%s", r.out);
    itest_cmd_free(&r);
    itest_cli(send, &r);
    cr_expect_eq(r.code, 0, "%s", r.err);
    cr_expect(strncmp(r.out, "{\"run_id\":null,\"event_id\":\"", 27) == 0, "%s", r.out);
    itest_cmd_free(&r);
    itest_finish();
}
