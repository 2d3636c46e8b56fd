/*
 * Child workflows (STEPKIT-SEMANTICS.md, "Child workflows"): success,
 * failure for good, timeout, and a timeout that fires after the step
 * ended, with the contract's counts, on tests/workflows/stepwf.c.
 */
#include "test_steps.h"

static void expect_status(const char *run_id, const char *status)
{
    char *st = itest_str("SELECT status FROM runs WHERE run_id = $1::uuid", run_id);

    cr_expect_str_eq(st, status, "runs.status of %s", run_id);
    free(st);
}

/* The invoke op "call" of the parent: status and result JSON. */
static void expect_call_op(const char *parent, const char *status, const char *result_json)
{
    char key[41], *st, *res;

    itest_op_key("call", 0, key);
    st = itest_str("SELECT status FROM ops WHERE run_id = $1::uuid AND op_key = $2"
                   "   AND kind = 'invoke'",
                   parent, key);
    cr_expect_str_eq(st, status, "status of the invoke op of %s", parent);
    free(st);
    if (result_json != NULL) {
        res = itest_bytea_json("SELECT result FROM ops WHERE run_id = $1::uuid AND op_key = $2",
                               parent, key);
        cr_expect_str_eq(res, result_json, "result of the invoke op of %s", parent);
        free(res);
    }
}

/* Child succeeds: child 2 / greet 1 / after 1; parent 3 / delay 1 / after 1. */
Test(steps_invoke, child_output_is_the_step_result, ITEST_FIXTURES)
{
    char child[SK_UUID_LEN];
    sk_run_result_t res;

    itest_master_up(NULL);
    itest_invoke("step-invoke-ok", NULL, &res);
    st_expect_output(&res, "\"Hello\"");
    st_child_of(res.run_id, child);
    expect_status(child, "completed");
    cr_expect_eq(child[14], '7', "a child's id is time-ordered (UUIDv7): %s", child);
    cr_expect_eq(COUNT(child, "handler"), 2, "child handler");
    cr_expect_eq(COUNT(child, "greet"), 1, "child step");
    cr_expect_eq(COUNT(child, "after"), 1, "child code after its step");
    cr_expect_eq(COUNT(res.run_id, "handler"), 3, "parent handler");
    cr_expect_eq(COUNT(res.run_id, "delay"), 1, "parent delay step");
    cr_expect_eq(COUNT(res.run_id, "after"), 1, "parent code after the invoke");
    cr_expect_eq(COUNT(res.run_id, "catch"), 0);
    expect_call_op(res.run_id, "ok", "\"Hello\"");
    cr_expect_eq(itest_long("SELECT count(*) FROM waiting_invokes"), 0);
    sk_run_result_clear(&res);
    itest_finish();
}

/* The child fails for good with MyError("oh no") after its 4 attempts: the
 * parent's step raises it, not retryable, and the parent is not retried. */
Test(steps_invoke, child_failure_is_raised_not_retryable, ITEST_FIXTURES)
{
    char child[SK_UUID_LEN];
    sk_run_result_t res;
    json_t *e, *ce;

    itest_master_up(NULL);
    itest_invoke("step-invoke-fail", NULL, &res);
    e = st_error(&res);
    cr_expect_str_eq(itest_jstr(e, "name"), "MyError");
    cr_expect_str_eq(itest_jstr(e, "message"), "oh no");
    cr_expect(json_is_false(itest_jget(e, "retryable")), "the parent's error is retryable");
    st_child_of(res.run_id, child);
    expect_status(child, "failed");
    cr_expect_eq(COUNT(child, "handler"), 4, "child handler (default max attempts)");
    cr_expect_eq(COUNT(child, "after"), 0, "child code after the failing point");
    /* The child's own error stays retryable: only the parent sees it fatal. */
    {
        char *text = itest_bytea_json("SELECT error FROM runs WHERE run_id = $1::uuid", child);
        ce = itest_parse(text);
        free(text);
    }
    cr_expect_str_eq(itest_jstr(ce, "name"), "MyError");
    cr_expect_str_eq(itest_jstr(ce, "message"), "oh no");
    cr_expect(json_is_true(itest_jget(ce, "retryable")), "the child's own error");
    cr_expect_eq(COUNT(res.run_id, "handler"), 2, "parent handler: no parent retry");
    cr_expect_eq(COUNT(res.run_id, "catch"), 1, "the parent saw the error once");
    cr_expect_eq(COUNT(res.run_id, "after"), 0);
    expect_call_op(res.run_id, "error", NULL);
    json_decref(ce);
    json_decref(e);
    sk_run_result_clear(&res);
    itest_finish();
}

/* Timeout 1000 ms, the child takes 2000 ms: InvokeTimeoutError naming the
 * child's run id; the child is not cancelled and completes. */
Test(steps_invoke, timeout_raises_invoke_timeout_error_and_child_completes, ITEST_FIXTURES)
{
    char child[SK_UUID_LEN], msg[128];
    sk_run_result_t res, cres;
    json_t *e;
    long ms;

    itest_master_up(NULL);
    itest_invoke("step-invoke-timeout", NULL, &res);
    e = st_error(&res);
    st_child_of(res.run_id, child);
    snprintf(msg, sizeof(msg), "invoked run %s timed out", child);
    cr_expect_str_eq(itest_jstr(e, "name"), "InvokeTimeoutError");
    cr_expect_str_eq(itest_jstr(e, "message"), msg);
    cr_expect(json_is_false(itest_jget(e, "retryable")), "InvokeTimeoutError is retryable");
    ms = st_run_ms(res.run_id);
    cr_expect_geq(ms, 1000, "the parent failed %ld ms after its start", ms);
    cr_expect_lt(ms, 2000, "the parent failed %ld ms after its start: not at the timeout", ms);
    cr_expect_eq(COUNT(res.run_id, "handler"), 2, "parent handler");
    cr_expect_eq(COUNT(res.run_id, "after"), 0, "parent code after the invoke");
    cr_expect_eq(COUNT(res.run_id, "catch"), 1);
    expect_call_op(res.run_id, "error", NULL);

    /* The child runs on by itself to its end. */
    st_wait(child, 10000, &cres);
    st_expect_output(&cres, "\"slow done\"");
    cr_expect_eq(COUNT(child, "handler"), 1, "child handler");
    cr_expect_eq(COUNT(child, "after"), 1, "child code after its 2 s");
    /* Its end changed nothing for the parent. */
    expect_status(res.run_id, "failed");
    expect_call_op(res.run_id, "error", NULL);
    cr_expect_eq(COUNT(res.run_id, "handler"), 2, "parent handler after the child's end");
    cr_expect_eq(itest_long("SELECT count(*) FROM waiting_invokes"), 0);
    json_decref(e);
    sk_run_result_clear(&cres);
    sk_run_result_clear(&res);
    itest_finish();
}

/* The child ends at once (timeout 1000 ms); the parent then sleeps 1500 ms,
 * so it is replayed after the timeout's time: nothing changes. */
Test(steps_invoke, timeout_after_the_step_ended_changes_nothing, ITEST_FIXTURES)
{
    char child[SK_UUID_LEN];
    sk_run_result_t res;
    long ms;

    itest_master_up(NULL);
    itest_invoke("step-invoke-late", NULL, &res);
    st_expect_output(&res, "\"Hello\"");
    ms = st_run_ms(res.run_id);
    cr_expect_geq(ms, 1500, "the parent ended %ld ms after its start", ms);
    st_child_of(res.run_id, child);
    expect_status(child, "completed");
    expect_call_op(res.run_id, "ok", "\"Hello\"");
    /* invoke, sleep, the end: no extra entry, no error. */
    cr_expect_eq(COUNT(res.run_id, "handler"), 3, "parent handler");
    cr_expect_eq(COUNT(res.run_id, "catch"), 0, "the invoke raised");
    cr_expect_eq(COUNT(res.run_id, "after"), 1);
    cr_expect_eq(itest_long("SELECT count(*) FROM waiting_invokes"), 0);
    sk_run_result_clear(&res);
    itest_finish();
}
