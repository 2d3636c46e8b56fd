/*
 * Supervision: a pool that heals itself.  Hung, crashing and exiting step
 * bodies fail their run after max_attempts (StepTimeoutError,
 * WorkerLostError) while the master stays up and other runs finish; a
 * killed worker's item is handed back at once by the next worker of its
 * slot (fenced: a late write with the old epoch is refused); a body longer
 * than the lease runs once; a draining worker releases the item it has just
 * claimed; and the master's own paths: crash-loop exit, fatal worker exit,
 * drain timeout, workers leaving with their master, connections lost.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Wait until `key` was counted n times for the run (max timeout_ms). */
static int wait_count(const char *run, const char *key, int n, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int c;

    while ((c = itest_count(itest.counts, run, key)) < n && now_ms() < deadline)
        nap(10);
    return c;
}

/* SIGKILL every worker of the master (its children). */
static void kill_workers(const itest_master_t *m)
{
    char cmd[64], buf[64];
    FILE *p;

    snprintf(cmd, sizeof(cmd), "pgrep -P %d", (int)m->pid);
    p = popen(cmd, "r");
    cr_assert_not_null(p);
    while (fgets(buf, sizeof(buf), p) != NULL)
        kill((pid_t)atol(buf), SIGKILL);
    pclose(p);
}

/* Wait (max 20 s) for the run's result. */
static void result_of(const char *run, sk_run_result_t *res)
{
    char err[256];

    cr_assert_eq(sk_client_wait(itest.client, run, 20000, res, err, sizeof(err)), SK_OK,
                 "run %s: %s", run, err);
}

/* The run's error as JSON (malloc'd); asserts it failed. */
static char *failed_error(const sk_run_result_t *res)
{
    cr_assert_str_eq(res->status, "failed", "run %s", res->run_id);
    return itest_json(res->error, res->error_len);
}

Test(supervise, hung_body_fails_with_step_timeout_and_the_pool_serves_others, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 2, .extra = {"--step-timeout", "300", NULL}};
    itest_master_t *m;
    sk_run_result_t res, other;
    char run[SK_UUID_LEN], *err;

    m = itest_master_up(&opts);
    itest_start("hangs", "null", run); /* max_attempts 2 */
    itest_invoke("two-steps", "null", &other);
    cr_expect_str_eq(other.status, "completed");
    cr_assert_geq(itest_wait_ended(2, 20000), 2);
    sk_run_result_clear(&other);

    result_of(run, &res);
    err = failed_error(&res);
    cr_expect(strstr(err, "\"name\":\"StepTimeoutError\"") != NULL, "%s", err);
    cr_expect(strstr(err, "step hang showed no progress within its step timeout (300 ms)") != NULL,
              "%s", err);
    cr_expect(strstr(err, "attempt 2 of 2") != NULL, "%s", err);
    free(err);
    cr_expect_eq(itest_count(itest.counts, run, "hang"), 2, "hang body executions");
    cr_expect_eq(itest_count(itest.counts, run, "after"), 0);
    cr_expect_eq(itest_log_count(m, "event=step_timeout"), 2);
    cr_expect_eq(itest_log_count(m, "reason=step_timeout"), 2, "respawned at once");
    /* The pool still serves. */
    itest_invoke("two-steps", "null", &other);
    cr_expect_str_eq(other.status, "completed");
    sk_run_result_clear(&other);
    sk_run_result_clear(&res);
    itest_finish();
}

/* A body whose worker dies (SIGSEGV, exit(0)) max_attempts times (default 4). */
static void poison_case(const char *workflow, const char *step, const char *what)
{
    itest_master_opts_t opts = {.workers = 2};
    itest_master_t *m;
    sk_run_result_t res, other;
    char *err, needle[64];

    m = itest_master_up(&opts);
    itest_invoke(workflow, "null", &res);
    err = failed_error(&res);
    cr_expect(strstr(err, "\"name\":\"WorkerLostError\"") != NULL, "%s", err);
    cr_expect(strstr(err, what) != NULL, "%s", err);
    cr_expect(strstr(err, "attempt 4 of 4") != NULL, "%s", err);
    cr_expect(strstr(err, "\"retryable\":false") != NULL, "%s", err);
    free(err);
    cr_expect_eq(itest_count(itest.counts, res.run_id, step), 4, "body executions");
    cr_expect_eq(itest_count(itest.counts, res.run_id, "after"), 0);
    snprintf(needle, sizeof(needle), "event=item_reclaimed run=%s", res.run_id);
    cr_expect_eq(itest_log_count(m, needle), 4);
    cr_expect_eq(itest_log_count(m, "event=crash_loop"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    itest_invoke("two-steps", "null", &other);
    cr_expect_str_eq(other.status, "completed");
    sk_run_result_clear(&other);
    sk_run_result_clear(&res);
    itest_finish();
}

Test(supervise, segfaulting_body_fails_with_worker_lost_after_max_attempts, ITEST_FIXTURES)
{
    poison_case("segfaults", "segv", "step segv: its worker died of signal 11 (SIGSEGV)");
}

Test(supervise, exiting_body_fails_with_worker_lost_after_max_attempts, ITEST_FIXTURES)
{
    poison_case("exits", "exit", "step exit: its worker exited with status 0 while it ran");
}

/* A dispatched group member that crashes its worker at every attempt: its
 * last reclaim records the final error on the member's op, the item comes
 * back once more only to find it final, and the run must be woken to fail
 * (it waited forever: found by the chaos pass). */
Test(supervise, dispatched_member_crashing_every_attempt_fails_the_run, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 2};
    sk_run_result_t res;
    char *err;

    itest_master_up(&opts);
    itest_invoke("group-segfaults", "null", &res);
    cr_assert_str_eq(res.status, "failed");
    err = failed_error(&res);
    cr_expect(strstr(err, "\"name\":\"WorkerLostError\"") != NULL, "%s", err);
    cr_expect(strstr(err, "step segv: its worker died of signal 11 (SIGSEGV)") != NULL, "%s", err);
    free(err);
    cr_expect_eq(itest_count(itest.counts, res.run_id, "segv"), 2, "segv body executions");
    cr_expect_eq(itest_count(itest.counts, res.run_id, "ok"), 1, "ok body executions");
    cr_expect_eq(itest_count(itest.counts, res.run_id, "after"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    sk_run_result_clear(&res);
    itest_finish();
}

Test(supervise, crashing_handler_counts_handler_attempts, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 2};
    sk_run_result_t res;
    char *err;

    itest_master_up(&opts);
    itest_invoke("handler-segfaults", "null", &res); /* max_attempts 2 */
    err = failed_error(&res);
    cr_expect(strstr(err, "\"name\":\"WorkerLostError\"") != NULL, "%s", err);
    cr_expect(strstr(err, "the handler: its worker died of signal 11") != NULL, "%s", err);
    cr_expect(strstr(err, "attempt 2 of 2") != NULL, "%s", err);
    free(err);
    cr_expect_eq(itest_count(itest.counts, res.run_id, "handler"), 2);
    sk_run_result_clear(&res);
    itest_finish();
}

Test(supervise, six_poison_runs_on_two_workers_do_not_stop_the_master, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 2};
    itest_master_t *m;
    char runs[6][SK_UUID_LEN], good[4][SK_UUID_LEN];

    m = itest_master_up(&opts);
    for (int i = 0; i < 6; i++)
        itest_start("segfaults", "null", runs[i]);
    for (int i = 0; i < 4; i++)
        itest_start("chain3", "{\"sleep_ms\": 0}", good[i]);
    cr_assert_eq(itest_wait_ended(10, 60000), 10, "not every run ended");
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE workflow_id = 'segfaults'"
                            " AND status = 'failed'"),
                 6);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE workflow_id = 'chain3'"
                            " AND status = 'completed'"),
                 4);
    cr_expect_eq(itest_master_wait_exit(m, 10), -1, "the master exited");
    cr_expect_eq(itest_log_count(m, "event=crash_loop"), 0);
    cr_expect_eq(itest_log_count(m, "event=worker_exit"), 24, "4 deaths per poison run");
    itest_finish();
}

Test(supervise, killed_worker_item_is_handed_back_at_once_and_its_epoch_fenced, ITEST_FIXTURES)
{
    /* A lease far longer than the takeover we expect. */
    itest_master_opts_t opts = {.workers = 2, .lease_ms = 30000};
    itest_master_t *m;
    sk_run_result_t res;
    char run[SK_UUID_LEN], epoch_s[16], item_s[24];
    long epoch, item;
    int64_t killed, taken = -1;
    pid_t pid;
    PGresult *r;

    m = itest_master_up(&opts);
    itest_start("long-step", "{\"ms\": 1500}", run);
    cr_assert_eq(wait_count(run, "long", 1, 10000), 1);
    pid = itest_holder_pid(run);
    item = itest_long("SELECT item_id FROM exec_queue WHERE run_id = $1::uuid", run);
    epoch = itest_long("SELECT epoch FROM exec_queue WHERE run_id = $1::uuid", run);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    killed = now_ms();
    /* Re-claimed by the slot's next worker (epoch + 2: reclaim, then claim). */
    while (now_ms() - killed < 10000) {
        if (itest_long("SELECT count(*) FROM exec_queue WHERE run_id = $1::uuid"
                       " AND epoch >= $2::int + 2 AND leased",
                       run, (snprintf(epoch_s, sizeof(epoch_s), "%ld", epoch), epoch_s)) == 1) {
            taken = now_ms() - killed;
            break;
        }
        nap(5);
    }
    cr_assert_geq(taken, 0, "the item was not claimed again within 10 s");
    cr_log_info("takeover after SIGKILL: %lld ms", (long long)taken);
    cr_expect_lt(taken, 1000, "takeover took %lld ms", (long long)taken);

    /* The dead worker's late write (its old epoch) is refused. */
    snprintf(item_s, sizeof(item_s), "%ld", item);
    r = PQexecParams(itest.pg, "SELECT fence($1::int8, $2::int4, 1000, false, 0)", 2, NULL,
                     (const char *[]){item_s, epoch_s}, NULL, NULL, 0);
    cr_expect_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    cr_expect_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "SK001");
    PQclear(r);

    cr_assert_eq(itest_wait_ended(1, 20000), 1);
    result_of(run, &res);
    cr_expect_str_eq(res.status, "completed");
    cr_expect_eq(itest_count(itest.counts, run, "long"), 2, "the body ran again once");
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid AND status = 'ok'"
                            " AND attempts = 2",
                            run),
                 1, "the killed execution counted as attempt 1");
    cr_expect_eq(itest_log_count(m, "reason=died_after_start"), 1);
    sk_run_result_clear(&res);
    itest_finish();
}

Test(supervise, step_longer_than_the_lease_runs_once, ITEST_FIXTURES)
{
    /* Renewal every lease/3 on a connection opened at the first renewal:
     * the lease leaves room for that connect on a loaded machine. */
    itest_master_opts_t opts = {.workers = 2, .lease_ms = 1500};
    itest_master_t *m;
    sk_run_result_t res;

    m = itest_master_up(&opts);
    itest_invoke("long-step", "{\"ms\": 4500}", &res);
    cr_assert_str_eq(res.status, "completed");
    cr_expect_eq(itest_count(itest.counts, res.run_id, "long"), 1, "body executions");
    cr_expect_eq(itest_log_count(m, "event=lease_lost"), 0);
    cr_expect_eq(itest_long("SELECT attempts FROM ops WHERE run_id = $1::uuid", res.run_id), 1);
    sk_run_result_clear(&res);
    itest_finish();
}

Test(supervise, heartbeat_pushes_the_step_deadline, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 1, .lease_ms = 400};
    itest_master_t *m;
    sk_run_result_t res;

    m = itest_master_up(&opts);
    /* 1.5 s of work with a 500 ms step timeout, saying "progress" every 50 ms. */
    itest_invoke("heartbeats", "{\"ms\": 1500, \"timeout_ms\": 500}", &res);
    cr_assert_str_eq(res.status, "completed");
    cr_expect_eq(itest_count(itest.counts, res.run_id, "beat"), 1);
    cr_expect_eq(itest_log_count(m, "event=step_timeout"), 0);
    sk_run_result_clear(&res);
    itest_finish();
}

Test(supervise, draining_worker_releases_the_item_it_claimed, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 1, .lease_ms = 30000, .shutdown_ms = 20000};
    itest_master_t *m;
    char a[SK_UUID_LEN], b[SK_UUID_LEN], *status_a;
    sk_run_result_t res;

    m = itest_master_up(&opts);
    itest_start("long-step", "{\"ms\": 800}", a);
    cr_assert_eq(wait_count(a, "long", 1, 10000), 1);
    itest_start("two-steps", "null", b);
    /* Drain while a's body runs: a ends, its end claims b, the worker hands b back. */
    cr_assert_eq(itest_master_stop(m, 15000), 0);
    cr_expect_eq(itest_log_count(m, "event=item_released"), 1, "%s", m->log);
    status_a = itest_str("SELECT status FROM runs WHERE run_id = $1::uuid", a);
    cr_expect_str_eq(status_a, "completed");
    free(status_a);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE run_id = $1::uuid"
                            " AND NOT leased AND visible_at <= now() AND takeovers = 0",
                            b),
                 1, "b is visible and unleased");
    /* A new master runs b at once, not after a lease. */
    itest_master_up(&opts);
    cr_assert_eq(itest_wait_ended(2, 5000), 2);
    result_of(b, &res);
    cr_expect_str_eq(res.status, "completed");
    sk_run_result_clear(&res);
    itest_finish();
}

/* A schema broken under a running master: workers that die at start make a
 * crash loop (exit 1), with the backoff growing between respawns. */
Test(supervise, workers_failing_at_start_are_a_crash_loop, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 2,
                                .extra = {"--restart-base", "20", "--restart-max", "80", NULL}};
    itest_master_t *m;
    int code;

    itest_allow_error("event=conn_setup_failed");
    itest_allow_error("event=crash_loop");
    sk_run_result_t res;

    m = itest_master_up(&opts);
    itest_invoke("two-steps", "null", &res); /* a worker has served */
    sk_run_result_clear(&res);
    itest_exec_sql("ALTER FUNCTION fence(bigint, int, bigint, boolean, int) RENAME TO fence_gone");
    /* Served workers killed from outside: replaced at once, not counted;
     * their successors then fail at start, again and again. */
    kill_workers(m);
    code = itest_master_wait_exit(m, 30000);
    cr_assert_eq(code, 1, "master exit code %d", code);
    cr_expect_eq(itest_log_count(m, "event=crash_loop"), 1);
    /* (a worker may still have been in its set-up when the schema broke) */
    cr_expect_geq(itest_log_count(m, "reason=died_after_start"), 1);
    cr_expect_geq(itest_log_count(m, "reason=died_at_start"), 10);
    cr_expect_geq(itest_log_count(m, "crashes_in_a_row=3 reason=died_at_start"), 1,
                  "the backoff exponent grows");
    itest_finish();
}

Test(supervise, newer_schema_found_by_a_respawned_worker_stops_the_master_with_2, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 1};
    itest_master_t *m;
    int code;

    itest_allow_error("event=schema_mismatch");
    itest_allow_error("status=exited code=2");
    m = itest_master_up(&opts);
    itest_exec_sql("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')");
    kill_workers(m);
    code = itest_master_wait_exit(m, 20000);
    cr_expect_eq(code, 2, "master exit code %d", code);
    cr_expect_eq(itest_log_count(m, "reason=worker_fatal"), 1);
    itest_finish();
}

Test(supervise, drain_timeout_kills_a_stuck_worker, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 1, .shutdown_ms = 500};
    itest_master_t *m;
    char run[SK_UUID_LEN];
    int64_t t0;
    int code;

    m = itest_master_up(&opts);
    itest_start("hangs", "null", run); /* default step timeout: 5 min */
    cr_assert_eq(wait_count(run, "hang", 1, 10000), 1);
    t0 = now_ms();
    code = itest_master_stop(m, 10000);
    cr_expect_eq(code, 0);
    cr_expect_lt(now_ms() - t0, 5000);
    cr_expect_eq(itest_log_count(m, "event=drain_timeout"), 1);
    cr_expect_eq(itest_log_count(m, "reason=drain_timeout"), 1);
    itest_finish();
}

Test(supervise, workers_exit_when_their_master_dies, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 2};
    itest_master_t *m;
    int64_t t0;

    m = itest_master_up(&opts);
    cr_assert_eq(kill(m->pid, SIGKILL), 0); /* the master alone */
    cr_assert_eq(waitpid(m->pid, &m->status, 0), m->pid);
    m->reaped = 1;
    t0 = now_ms();
    /* The workers see the alive pipe close (and PDEATHSIG) and leave. */
    while (kill(-m->pid, 0) == 0 && now_ms() - t0 < 10000)
        nap(10);
    cr_expect_neq(kill(-m->pid, 0), 0, "workers outlived their master by 10 s");
    cr_log_info("workers gone %lld ms after the master", (long long)(now_ms() - t0));
    itest_finish();
}

/* A worker inside a hung body when its master is SIGKILLed: its loop (which
 * serves PDEATHSIG and the alive pipe) never runs again, so its renewal
 * thread must see the master gone and end it (found by the chaos pass: an
 * orphan hung forever). */
Test(supervise, worker_in_a_hung_body_exits_when_its_master_dies, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 1, .extra = {"--step-timeout", "60000", NULL}};
    itest_master_t *m;
    char run[SK_UUID_LEN];
    pid_t worker;
    int64_t t0;

    m = itest_master_up(&opts);
    itest_start("hangs", "null", run);
    cr_assert_eq(wait_count(run, "hang", 1, 10000), 1);
    worker = itest_holder_pid(run);
    cr_assert_eq(kill(m->pid, SIGKILL), 0);
    cr_assert_eq(waitpid(m->pid, &m->status, 0), m->pid);
    m->reaped = 1;
    t0 = now_ms();
    while (kill(worker, 0) == 0 && now_ms() - t0 < 5000)
        nap(10);
    cr_expect_neq(kill(worker, 0), 0, "the hung worker outlived its master by 5 s");
    cr_log_info("hung worker gone %lld ms after its master", (long long)(now_ms() - t0));
    if (kill(worker, 0) == 0)
        kill(worker, SIGKILL);
    itest_allow_error("event=master_gone_during_body");
    itest_finish();
}

Test(supervise, workers_reconnect_after_their_backends_are_terminated, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 2};
    itest_master_t *m;
    sk_run_result_t res;
    long n;

    itest_allow_error("error=\"connection lost\""); /* an outage is worth an error line */
    m = itest_master_up(&opts);
    n = itest_long("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                   " WHERE application_name = $1",
                   m->app);
    cr_assert_geq(n, 2);
    cr_expect_geq(itest_log_wait_count(m, "event=conn_lost", 2, 10000), 2);
    itest_invoke("two-steps", "null", &res);
    cr_expect_str_eq(res.status, "completed");
    cr_expect_eq(itest_master_wait_exit(m, 10), -1, "the master exited");
    sk_run_result_clear(&res);
    itest_finish();
}
