/*
 * Parallel steps (STEPKIT-SEMANTICS.md, "Parallel steps") on two masters
 * with two workers each: every body once, results in declaration order,
 * sleeps concurrent, a branch that is a sequence of steps.
 */
#include "test_steps.h"

/* a; {run p1, run p2, sleep p3 1000 ms, sleep p4 2000 ms}; b (1000 ms):
 * every body once, ["P1","P2",null,null], the run ends 3.0-3.5 s after
 * its start. */
Test(steps_group, runs_and_sleeps_start_together, ITEST_FIXTURES)
{
    static const char *const bodies[] = {"a", "p1", "p2", "b"};
    char run_id[SK_UUID_LEN];
    sk_run_result_t res;
    long ms;

    st_two_masters();
    itest_start("step-parallel", NULL, run_id);
    st_wait(run_id, 15000, &res);
    st_expect_output(&res, "[\"P1\",\"P2\",null,null]");
    ms = st_run_ms(run_id);
    cr_expect_geq(ms, 3000, "the run ended %ld ms after its start", ms);
    cr_expect_leq(ms, 3500, "the run ended %ld ms after its start", ms);
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        cr_expect_eq(COUNT(run_id, bodies[i]), 1, "body %s ran %d times", bodies[i],
                     COUNT(run_id, bodies[i]));
    cr_expect_eq(COUNT(run_id, "after"), 1, "code after the last step");
    /* a, p1..p4, b: six ops, all ok, each executed once. */
    cr_expect_eq(st_ops(run_id, NULL), 6);
    cr_expect_eq(st_ops(run_id, "ok"), 6);
    cr_expect_eq(
        itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid AND attempts <> 1", run_id),
        0);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0, "exec_queue after the run");
    sk_run_result_clear(&res);
    itest_finish();
}

/* a; {run p1; branch p2.1 -> p2.2 joined}; b: every body once,
 * ["P1","P2.1 P2.2"]. */
Test(steps_group, branch_is_a_sequence_of_steps, ITEST_FIXTURES)
{
    static const char *const bodies[] = {"a", "p1", "p2.1", "p2.2", "b"};
    char run_id[SK_UUID_LEN];
    sk_run_result_t res;

    st_two_masters();
    itest_start("step-branch", NULL, run_id);
    st_wait(run_id, 15000, &res);
    st_expect_output(&res, "[\"P1\",\"P2.1 P2.2\"]");
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        cr_expect_eq(COUNT(run_id, bodies[i]), 1, "body %s ran %d times", bodies[i],
                     COUNT(run_id, bodies[i]));
    cr_expect_eq(COUNT(run_id, "after"), 1, "code after the last step");
    cr_expect_eq(st_ops(run_id, NULL), 5);
    cr_expect_eq(st_ops(run_id, "ok"), 5);
    /* p2.2 started only after p2.1 was recorded. */
    {
        char k21[41], k22[41];
        itest_op_key("p2.1", 0, k21);
        itest_op_key("p2.2", 0, k22);
        cr_expect_eq(itest_long("SELECT count(*) FROM ops a, ops b"
                                " WHERE a.run_id = $1::uuid AND b.run_id = a.run_id"
                                "   AND a.op_key = $2 AND b.op_key = $3"
                                "   AND b.started_at >= a.ended_at",
                                run_id, k21, k22),
                     1, "p2.2 started before p2.1 ended");
    }
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0, "exec_queue after the run");
    sk_run_result_clear(&res);
    itest_finish();
}

/* {run p1, run p2}, p1 failing once (retryable): p1 is the member the
 * run's worker keeps; its second attempt runs, the group completes. */
Test(steps_group, kept_member_that_fails_once_runs_again, ITEST_FIXTURES)
{
    char run_id[SK_UUID_LEN];
    sk_run_result_t res;

    st_two_masters();
    itest_start("step-group-retry", NULL, run_id);
    st_wait(run_id, 15000, &res);
    st_expect_output(&res, "[\"P1\",\"P2\"]");
    cr_expect_eq(COUNT(run_id, "p1"), 2, "p1 ran %d times", COUNT(run_id, "p1"));
    cr_expect_eq(COUNT(run_id, "p2"), 1, "p2 ran %d times", COUNT(run_id, "p2"));
    cr_expect_eq(COUNT(run_id, "after"), 1, "code after the group");
    cr_expect_eq(
        itest_long("SELECT attempts FROM ops WHERE run_id = $1::uuid AND step_id = 'p1'", run_id),
        2);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0, "exec_queue after the run");
    sk_run_result_clear(&res);
    itest_finish();
}
