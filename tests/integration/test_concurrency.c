/*
 * Concurrency: two masters with two workers each share one schema and
 * 500 runs of a three-step workflow: every run completes, every body runs
 * exactly once, every op is recorded once and the queue ends empty.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define RUNS  500
#define STEPS 3

Test(concurrency, two_masters_run_every_step_exactly_once, ITEST_FIXTURES)
{
    static const char *const step_ids[STEPS] = {"s1", "s2", "s3"};
    static char run_ids[RUNS][SK_UUID_LEN];
    itest_master_t *m1, *m2;
    itest_counts_t *counts;
    long ended;
    int bad = 0;

    m1 = itest_master_start(NULL);
    m2 = itest_master_start(NULL);
    itest_master_wait_ready(m1, itest_test_workflows);
    itest_master_wait_ready(m2, itest_test_workflows);
    for (int i = 0; i < RUNS; i++)
        itest_start("chain3", NULL, run_ids[i]);
    ended = itest_wait_ended(RUNS, 120000);
    cr_assert_eq(ended, RUNS, "only %ld of %d runs ended", ended, RUNS);

    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'completed'"), RUNS);
    cr_expect_eq(itest_long("SELECT count(*) FROM ops"), RUNS * STEPS);
    cr_expect_eq(itest_long("SELECT count(*) FROM (SELECT DISTINCT run_id, op_key FROM ops) d"),
                 RUNS * STEPS);
    cr_expect_eq(itest_long("SELECT count(*) FROM (SELECT run_id FROM ops GROUP BY run_id"
                            " HAVING count(*) <> 3) r"),
                 0, "a run without exactly 3 ops");
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE status <> 'ok' OR attempts <> 1"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0, "exec_queue is not empty");

    counts = itest_counts_load(itest.counts);
    for (int i = 0; i < RUNS; i++) {
        for (int s = 0; s < STEPS; s++) {
            int n = itest_counts_get(counts, run_ids[i], step_ids[s]);
            if (n != 1 && bad++ < 10)
                cr_expect_eq(n, 1, "run %s step %s ran %d times", run_ids[i], step_ids[s], n);
        }
        /* No lease expired: one worker drove each run, 3 steps = 4 entries. */
        if (itest_counts_get(counts, run_ids[i], "handler") != STEPS + 1 && bad++ < 10)
            cr_expect_fail("run %s: handler entered %d times", run_ids[i],
                           itest_counts_get(counts, run_ids[i], "handler"));
        if (itest_counts_get(counts, run_ids[i], "after") != 1 && bad++ < 10)
            cr_expect_fail("run %s: after-step code ran %d times", run_ids[i],
                           itest_counts_get(counts, run_ids[i], "after"));
    }
    cr_expect_eq(bad, 0, "%d wrong counts", bad);
    itest_counts_free(counts);
    itest_finish();
}
