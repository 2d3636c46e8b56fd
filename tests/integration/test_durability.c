/*
 * Durability: SIGKILL a master and all its workers in the middle of 200
 * runs, start a new master, and check that every run ends exactly once and
 * that no step whose result was committed before the kill runs again (a
 * step may run twice only if the kill came before its result committed).
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define RUNS  200
#define STEPS 5

static const char *const step_ids[STEPS] = {"s1", "s2", "s3", "s4", "s5"};

Test(durability, killed_master_resumes_without_rerunning_committed_steps, ITEST_FIXTURES)
{
    static char run_ids[RUNS][SK_UUID_LEN];
    itest_master_opts_t opts = {.workers = 4, .lease_ms = 2000};
    itest_master_t *m1;
    itest_counts_t *counts;
    PGresult *committed, *ended_before;
    long n_committed, ended, again = 0;

    m1 = itest_master_up(&opts);
    for (int i = 0; i < RUNS; i++)
        itest_start("chain5", "{\"sleep_ms\": 20}", run_ids[i]);

    /* Some runs done, some mid-way: kill as soon as a few have ended. */
    ended = itest_wait_ended(10, 30000);
    cr_assert_geq(ended, 10, "no progress before the kill");
    itest_master_kill(m1);

    /* What was durable at the kill (every session of m1 is gone by now). */
    committed = itest_query("SELECT run_id::text, step_id FROM ops WHERE status = 'ok'");
    ended_before = itest_query("SELECT run_id::text FROM runs WHERE status <> 'pending'");
    n_committed = PQntuples(committed);
    cr_assert_lt(n_committed, RUNS * STEPS, "every op was committed before the kill");
    cr_assert_lt(PQntuples(ended_before), RUNS, "every run ended before the kill");
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'failed'"), 0);

    itest_master_up(&opts);
    ended = itest_wait_ended(RUNS, 90000);
    cr_assert_eq(ended, RUNS, "only %ld of %d runs ended after the restart", ended, RUNS);

    /* Every run completed exactly once, with every op recorded once. */
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'completed'"), RUNS);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE ended_at IS NULL"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'completed'"
                            " AND output <> '\\x05'::bytea"),
                 0, "every run's output is 5 (msgpack fixint)");
    cr_expect_eq(itest_long("SELECT count(*) FROM ops"), RUNS * STEPS);
    cr_expect_eq(itest_long("SELECT count(*) FROM (SELECT DISTINCT run_id, op_key FROM ops) d"),
                 RUNS * STEPS);
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE status <> 'ok' OR attempts <> 1"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM (SELECT run_id FROM ops GROUP BY run_id"
                            " HAVING count(*) <> 5) r"),
                 0, "a run without exactly 5 ops");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);

    /* Bodies: committed before the kill -> ran once; otherwise once or twice. */
    counts = itest_counts_load(itest.counts);
    for (int i = 0; i < RUNS; i++) {
        for (int s = 0; s < STEPS; s++) {
            int n = itest_counts_get(counts, run_ids[i], step_ids[s]);
            cr_expect(n >= 1 && n <= 2, "run %s step %s ran %d times", run_ids[i], step_ids[s], n);
            again += n == 2;
        }
    }
    for (long r = 0; r < n_committed; r++) {
        const char *run = PQgetvalue(committed, (int)r, 0),
                   *step = PQgetvalue(committed, (int)r, 1);
        int n = itest_counts_get(counts, run, step);
        cr_expect_eq(n, 1, "run %s step %s was committed before the kill but ran %d times", run,
                     step, n);
    }
    /* A run that ended before the kill never ran anything again. */
    for (int r = 0; r < PQntuples(ended_before); r++) {
        const char *run = PQgetvalue(ended_before, r, 0);
        cr_expect_eq(itest_counts_get(counts, run, "after"), 1, "run %s", run);
        cr_expect_eq(itest_counts_get(counts, run, "handler"), STEPS + 1, "run %s", run);
    }
    /* At most one step per killed worker was mid-execution. */
    cr_expect_leq(again, opts.workers, "%ld step bodies ran twice", again);
    cr_log_info("durability: %ld ops committed before the kill, %ld bodies ran twice", n_committed,
                again);
    itest_counts_free(counts);
    PQclear(committed);
    PQclear(ended_before);
    itest_finish();
}
