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

/* ---- the kept member's retries (tests/workflows/groupwf.c) ------------------------------ */

/* The run of `workflow` ({run k, run o1, run o2}), ended (max 20 s). */
static void kept_case(const char *workflow, char run_id[SK_UUID_LEN], sk_run_result_t *res)
{
    st_two_masters();
    itest_start(workflow, NULL, run_id);
    st_wait(run_id, 20000, res);
    cr_expect_eq(COUNT(run_id, "o1"), 1, "o1 ran %d times", COUNT(run_id, "o1"));
    cr_expect_eq(COUNT(run_id, "o2"), 1, "o2 ran %d times", COUNT(run_id, "o2"));
}

/* k's op: its status and attempts ("ok 2"), malloc'd. */
static char *kept_op(const char *run_id)
{
    char key[41];

    itest_op_key("k", 0, key);
    return itest_str("SELECT status || ' ' || attempts FROM ops"
                     " WHERE run_id = $1::uuid AND op_key = $2",
                     run_id, key);
}

static void expect_kept_op(const char *run_id, const char *want)
{
    char *got = kept_op(run_id);

    cr_expect_str_eq(got ? got : "(no op)", want, "k's op of run %s", run_id);
    free(got);
}

/* The member the group's worker kept fails once: the run retries it (its
 * own item comes back), every other member runs once. */
Test(steps_group, kept_member_failing_once_is_retried, ITEST_FIXTURES)
{
    char run_id[SK_UUID_LEN];
    sk_run_result_t res;

    kept_case("group-kept-retry", run_id, &res);
    st_expect_output(&res, "[\"K\",\"O1\",\"O2\"]");
    cr_expect_eq(COUNT(run_id, "k"), 2, "k ran %d times", COUNT(run_id, "k"));
    cr_expect_eq(COUNT(run_id, "after"), 1);
    expect_kept_op(run_id, "ok 2");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0, "exec_queue after the run");
    sk_run_result_clear(&res);
    itest_finish();
}

/* The retry waits its delay (1 s +-20%) although o1 and o2 end after
 * 100 ms and wake the run. */
Test(steps_group, kept_member_retry_waits_its_delay, ITEST_FIXTURES)
{
    char run_id[SK_UUID_LEN];
    sk_run_result_t res;
    long ms;

    kept_case("group-kept-retry-delay", run_id, &res);
    st_expect_output(&res, "[\"K\",\"O1\",\"O2\"]");
    cr_expect_eq(COUNT(run_id, "k"), 2, "k ran %d times", COUNT(run_id, "k"));
    ms = st_run_ms(run_id);
    cr_expect_geq(ms, 800, "the run ended %ld ms after its start", ms);
    expect_kept_op(run_id, "ok 2");
    sk_run_result_clear(&res);
    itest_finish();
}

/* k's first attempt kills its worker: the next worker of the slot hands
 * the run's item back with a retry of k, which the run then runs. */
Test(steps_group, kept_member_whose_worker_dies_is_retried, ITEST_FIXTURES)
{
    char run_id[SK_UUID_LEN];
    sk_run_result_t res;

    kept_case("group-kept-crash", run_id, &res);
    st_expect_output(&res, "[\"K\",\"O1\",\"O2\"]");
    cr_expect_eq(COUNT(run_id, "k"), 2, "k ran %d times", COUNT(run_id, "k"));
    expect_kept_op(run_id, "ok 2");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0, "exec_queue after the run");
    sk_run_result_clear(&res);
    itest_finish();
}

/* k fails every time: max_attempts (3) executions, then the run fails
 * with k's last error. */
Test(steps_group, kept_member_failing_every_time_fails_the_run, ITEST_FIXTURES)
{
    char run_id[SK_UUID_LEN];
    sk_run_result_t res;
    json_t *e;

    kept_case("group-kept-fails", run_id, &res);
    e = st_error(&res);
    cr_expect_str_eq(itest_jstr(e, "name") ? itest_jstr(e, "name") : "", "FlakyError");
    cr_expect_str_eq(itest_jstr(e, "message") ? itest_jstr(e, "message") : "",
                     "k failed on attempt 3");
    json_decref(e);
    cr_expect_eq(COUNT(run_id, "k"), 3, "k ran %d times", COUNT(run_id, "k"));
    cr_expect_eq(COUNT(run_id, "after"), 0);
    expect_kept_op(run_id, "error 3");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0, "exec_queue after the run");
    sk_run_result_clear(&res);
    itest_finish();
}

/* k kills its worker every time: the deaths are counted, not reset by the
 * replays in between, and the run fails at the third. */
Test(steps_group, kept_member_crashing_every_time_fails_the_run, ITEST_FIXTURES)
{
    char run_id[SK_UUID_LEN];
    sk_run_result_t res;
    const char *msg;
    json_t *e;

    kept_case("group-kept-crashes", run_id, &res);
    e = st_error(&res);
    msg = itest_jstr(e, "message");
    cr_assert_not_null(msg);
    cr_expect_str_eq(itest_jstr(e, "name") ? itest_jstr(e, "name") : "", "WorkerLostError");
    cr_expect(strstr(msg, "step k: its worker died of signal 9") != NULL, "%s", msg);
    cr_expect(strstr(msg, "attempt 3 of 3") != NULL, "%s", msg);
    json_decref(e);
    cr_expect_eq(COUNT(run_id, "k"), 3, "k ran %d times", COUNT(run_id, "k"));
    cr_expect_eq(COUNT(run_id, "after"), 0);
    expect_kept_op(run_id, "error 3");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0, "exec_queue after the run");
    sk_run_result_clear(&res);
    itest_finish();
}
