/*
 * Fencing: a worker stopped (SIGSTOP, as a freezer or a long GC pause
 * would) in the middle of a body outlives its lease (400 ms) and is taken
 * over by the other worker, which completes the run; the first worker's
 * late write after SIGCONT is refused (event=lease_lost) and changes
 * nothing.  (A running body's lease is renewed, so only a stopped process
 * loses it.)  The second test makes the stale write arrive while the item
 * is leased again, so that only the epoch can refuse it.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"

static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Wait until the run's "slow" body was counted n times; then the pid of the
 * worker holding its item ("host:pid" in claimed_by). */
static pid_t slow_holder(const char *run, int n)
{
    for (int i = 0; i < 1000 && itest_count(itest.counts, run, "slow") < n; i++)
        nap(10);
    cr_assert_eq(itest_count(itest.counts, run, "slow"), n);
    return itest_holder_pid(run);
}

/* Start a run and wait (30 s) for its end. */
static void start_and_stop_holders(const char *wf, const char *json, int stops,
                                   sk_run_result_t *res)
{
    char run[SK_UUID_LEN], err[256];
    pid_t pids[2];

    itest_start(wf, json, run);
    for (int i = 0; i < stops; i++) {
        pids[i] = slow_holder(run, i + 1);
        cr_assert_eq(kill(pids[i], SIGSTOP), 0);
        if (i > 0)
            kill(pids[i - 1], SIGCONT); /* the earlier one writes while this one holds it */
    }
    cr_assert_eq(sk_client_wait(itest.client, run, 30000, res, err, sizeof(err)), SK_OK, "%s", err);
    kill(pids[stops - 1], SIGCONT);
}

Test(fencing, late_write_after_lost_lease_is_refused, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 2, .lease_ms = 400};
    itest_master_t *m;
    sk_run_result_t res;
    char key[41], needle[128], *out, *ended_at, *ended_at_after, *result;

    m = itest_master_up(&opts);
    start_and_stop_holders("slow-once", "{\"first_ms\": 1500}", 1, &res);

    /* The second execution completed the run. */
    cr_assert_str_eq(res.status, "completed");
    out = itest_json(res.output, res.output_len);
    cr_expect_str_eq(out, "\"fresh\"");
    free(out);
    itest_op_key("slow", 0, key);
    result = itest_bytea_json("SELECT result FROM ops WHERE run_id = $1::uuid AND op_key = $2",
                              res.run_id, key);
    cr_expect_str_eq(result, "\"fresh\"");
    free(result);
    ended_at = itest_str("SELECT ended_at::text FROM runs WHERE run_id = $1::uuid", res.run_id);
    cr_assert_not_null(ended_at, "ended_at is set");

    /* The first worker wakes up and tries to commit "late": refused. */
    snprintf(needle, sizeof(needle), "event=lease_lost run=%s", res.run_id);
    cr_assert(itest_log_wait(m, needle, 10000), "no '%s' in %s", needle, m->log);
    cr_expect_eq(itest_count(itest.counts, res.run_id, "slow"), 2, "slow body executions");

    /* Nothing changed after the refused write: one op, still "fresh", the
     * run ended once (same ended_at, same output), nothing queued. */
    result = itest_bytea_json("SELECT result FROM ops WHERE run_id = $1::uuid AND op_key = $2",
                              res.run_id, key);
    cr_expect_str_eq(result, "\"fresh\"");
    free(result);
    result = itest_bytea_json("SELECT output FROM runs WHERE run_id = $1::uuid", res.run_id);
    cr_expect_str_eq(result, "\"fresh\"");
    free(result);
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid", res.run_id), 1);
    ended_at_after =
        itest_str("SELECT ended_at::text FROM runs WHERE run_id = $1::uuid AND status = "
                  "'completed'",
                  res.run_id);
    cr_expect_str_eq(ended_at_after, ended_at, "ended_at was written again");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    free(ended_at);
    free(ended_at_after);
    sk_run_result_clear(&res);
    itest_finish();
}

/*
 * The stale write arrives while another worker holds a newer lease on the
 * same item (the item still exists, with a higher epoch): the epoch alone
 * must refuse it.  Lease 400 ms; execution 1 (worker A) sleeps 2000 ms,
 * execution 2 (worker B, claimed after A's lease expired) sleeps 3000 ms,
 * so A's write at ~2 s lands inside B's execution.  A's write is refused,
 * A claims the item again once B's lease expired too and completes the run
 * with execution 3 ("fresh"); B's write at ~3.5 s is refused as well.
 */
Test(fencing, stale_epoch_is_refused_while_the_item_is_leased_again, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 2, .lease_ms = 400};
    itest_master_t *m;
    sk_run_result_t res;
    char key[41], needle[128], *out, *ended_at, *ended_at_after, *result;

    m = itest_master_up(&opts);
    start_and_stop_holders("slow-twice", "{\"first_ms\": 2000, \"second_ms\": 3000}", 2, &res);
    cr_assert_str_eq(res.status, "completed");
    out = itest_json(res.output, res.output_len);
    cr_expect_str_eq(out, "\"fresh\"", "a stale execution's result was recorded");
    free(out);
    ended_at = itest_str("SELECT ended_at::text FROM runs WHERE run_id = $1::uuid", res.run_id);
    cr_assert_not_null(ended_at);

    /* Both stale executions tried to commit and were refused. */
    snprintf(needle, sizeof(needle), "event=lease_lost run=%s", res.run_id);
    cr_assert_eq(itest_log_wait_count(m, needle, 2, 10000), 2, "'%s' lines in %s", needle, m->log);
    cr_expect_eq(itest_count(itest.counts, res.run_id, "slow"), 3, "slow body executions");

    itest_op_key("slow", 0, key);
    result = itest_bytea_json("SELECT result FROM ops WHERE run_id = $1::uuid AND op_key = $2",
                              res.run_id, key);
    cr_expect_str_eq(result, "\"fresh\"");
    free(result);
    result = itest_bytea_json("SELECT output FROM runs WHERE run_id = $1::uuid", res.run_id);
    cr_expect_str_eq(result, "\"fresh\"");
    free(result);
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid", res.run_id), 1);
    ended_at_after = itest_str(
        "SELECT ended_at::text FROM runs WHERE run_id = $1::uuid AND status = 'completed'",
        res.run_id);
    cr_expect_str_eq(ended_at_after, ended_at, "ended_at was written again");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    free(ended_at);
    free(ended_at_after);
    sk_run_result_clear(&res);
    itest_finish();
}

/* A body that kills its worker every time would otherwise take down every
 * worker in turn, forever: each death is an attempt (the slot's next
 * worker hands the item back and counts it), and after max_attempts (4) the
 * run fails with WorkerLostError naming the step and the signal.  (The
 * lease is long: the hand-back, not its expiry, must be what counts.) */
Test(fencing, run_whose_body_kills_every_worker_fails_after_max_attempts, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 2, .lease_ms = 10000};
    itest_master_t *m;
    sk_run_result_t res;
    char *err;

    m = itest_master_up(&opts);
    itest_invoke("kills-its-worker", "null", &res);
    cr_assert_str_eq(res.status, "failed");
    err = itest_json(res.error, res.error_len);
    cr_expect(strstr(err, "\"name\":\"WorkerLostError\"") != NULL, "%s", err);
    cr_expect(strstr(err, "step killer: its worker died of signal 9 (SIGKILL) (attempt 4 of 4)") !=
                  NULL,
              "%s", err);
    cr_expect(strstr(err, "\"retryable\":false") != NULL, "%s", err);
    free(err);
    cr_expect_eq(itest_count(itest.counts, res.run_id, "killer"), 4, "body executions");
    cr_expect_eq(itest_log_count(m, "event=item_reclaimed"), 4);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    sk_run_result_clear(&res);
    itest_finish();
}
