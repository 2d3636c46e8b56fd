/*
 * The contract cases of STEPKIT-SEMANTICS.md (Replay, Op identity, Errors
 * and retries), each run by a real master (2 workers, lease 5 s) on the
 * workflows of tests/workflows/testwf.c, with exact counts of handler
 * entries, body executions and after-step code.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

/* Counts of one run. */
#define COUNT(run, key) itest_count(itest.counts, (run), (key))

static void expect_ops(const char *run_id, long n)
{
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid", run_id), n,
                 "ops recorded for run %s", run_id);
}

/* The recorded op of `step_id` at `index`: status, attempts and result JSON. */
static void expect_op(const char *run_id, const char *step_id, int index, const char *status,
                      long attempts, const char *result_json)
{
    char key[41], *st, *res;

    itest_op_key(step_id, index, key);
    st =
        itest_str("SELECT status FROM ops WHERE run_id = $1::uuid AND op_key = $2 AND step_id = $3",
                  run_id, key, step_id);
    cr_assert_str_eq(st, status, "op %s:%d", step_id, index);
    cr_expect_eq(
        itest_long("SELECT attempts FROM ops WHERE run_id = $1::uuid AND op_key = $2", run_id, key),
        attempts, "attempts of op %s:%d", step_id, index);
    if (result_json != NULL) {
        res = itest_bytea_json("SELECT result FROM ops WHERE run_id = $1::uuid AND op_key = $2",
                               run_id, key);
        cr_expect_str_eq(res, result_json, "result of op %s:%d", step_id, index);
        free(res);
    }
    free(st);
}

/* The run ended once, in `status`, and left nothing queued. */
static void expect_ended(const sk_run_result_t *res, const char *status)
{
    char *st = itest_str("SELECT status FROM runs WHERE run_id = $1::uuid", res->run_id);

    cr_assert_str_eq(res->status, status, "client result of run %s", res->run_id);
    cr_assert_str_eq(st, status, "runs.status of %s", res->run_id);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE run_id = $1::uuid AND ended_at IS "
                            "NOT NULL",
                            res->run_id),
                 1, "ended_at of run %s", res->run_id);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0, "exec_queue after the run");
    free(st);
}

static json_t *error_of(const sk_run_result_t *res)
{
    char *text;
    json_t *e;

    cr_assert_not_null(res->error, "run %s has no error", res->run_id);
    text = itest_json(res->error, res->error_len);
    e = itest_parse(text);
    free(text);
    return e;
}

static void expect_output(const sk_run_result_t *res, const char *json)
{
    char *out;

    cr_assert_not_null(res->output, "run %s has no output", res->run_id);
    out = itest_json(res->output, res->output_len);
    cr_expect_str_eq(out, json, "output of run %s", res->run_id);
    free(out);
}

Test(engine, two_sequential_steps_enter_handler_three_times, ITEST_FIXTURES)
{
    sk_run_result_t res;

    itest_master_up(NULL);
    itest_invoke("two-steps", NULL, &res);
    expect_ended(&res, "completed");
    expect_output(&res, "[\"A\",\"B\"]");
    cr_expect_eq(COUNT(res.run_id, "handler"), 3);
    cr_expect_eq(COUNT(res.run_id, "a"), 1);
    cr_expect_eq(COUNT(res.run_id, "b"), 1);
    cr_expect_eq(COUNT(res.run_id, "after"), 1);
    expect_ops(res.run_id, 2);
    expect_op(res.run_id, "a", 0, "ok", 1, "\"A\"");
    expect_op(res.run_id, "b", 0, "ok", 1, "\"B\"");
    sk_run_result_clear(&res);
    itest_finish();
}

Test(engine, same_step_id_twice_is_two_ops, ITEST_FIXTURES)
{
    sk_run_result_t res;

    itest_master_up(NULL);
    itest_invoke("dup-ids", NULL, &res);
    expect_ended(&res, "completed");
    expect_output(&res, "[\"first\",\"second\"]");
    cr_expect_eq(COUNT(res.run_id, "handler"), 3);
    cr_expect_eq(COUNT(res.run_id, "first"), 1);
    cr_expect_eq(COUNT(res.run_id, "second"), 1);
    cr_expect_eq(COUNT(res.run_id, "after"), 1);
    expect_ops(res.run_id, 2);
    /* op key = sha1("<step id>:<index>") */
    expect_op(res.run_id, "same", 0, "ok", 1, "\"first\"");
    expect_op(res.run_id, "same", 1, "ok", 1, "\"second\"");
    sk_run_result_clear(&res);
    itest_finish();
}

Test(engine, step_failing_once_runs_again_and_succeeds, ITEST_FIXTURES)
{
    sk_run_result_t res;
    itest_master_t *m;
    char run[64];
    const char *retry_line[] = {"event=step_retry", run,          "step=flaky",
                                "attempt=1",        "delay_ms=0", NULL};

    m = itest_master_up(NULL);
    itest_invoke("retry-once", NULL, &res);
    expect_ended(&res, "completed");
    expect_output(&res, "\"ok on attempt 2\"");
    cr_expect_eq(COUNT(res.run_id, "handler"), 3);
    cr_expect_eq(COUNT(res.run_id, "flaky"), 2);
    cr_expect_eq(COUNT(res.run_id, "after"), 1);
    expect_ops(res.run_id, 1);
    expect_op(res.run_id, "flaky", 0, "ok", 2, "\"ok on attempt 2\"");
    /* The step's own retry delay (sk_run_retry: 0 ms) beat the workflow's
     * default (1 s): one retry, scheduled at once. */
    snprintf(run, sizeof(run), "run=%s ", res.run_id);
    cr_expect_eq(itest_log_count_all(m, retry_line), 1, "no step_retry line with delay_ms=0 in %s",
                 m->log);
    sk_run_result_clear(&res);
    itest_finish();
}

Test(engine, exhausted_step_error_reaches_handler_with_its_cause, ITEST_FIXTURES)
{
    sk_run_result_t res;
    json_t *e, *op;
    char key[41], *op_err;

    itest_master_up(NULL);
    itest_invoke("exhausted", NULL, &res);
    expect_ended(&res, "failed");
    cr_expect_eq(COUNT(res.run_id, "handler"), 4);
    cr_expect_eq(COUNT(res.run_id, "foo"), 2);
    cr_expect_eq(COUNT(res.run_id, "catch"), 2);
    cr_expect_eq(COUNT(res.run_id, "after"), 0);

    /* The run's error is the step's, restored with its cause and flags. */
    e = error_of(&res);
    cr_expect_str_eq(itest_jstr(e, "name"), "FooError");
    cr_expect_str_eq(itest_jstr(e, "message"), "oh no");
    cr_expect(json_is_true(itest_jget(e, "retryable")), "FooError is retryable");
    cr_expect_str_eq(itest_jstr(e, "cause.name"), "BarError");
    cr_expect_str_eq(itest_jstr(e, "cause.message"), "the cause");
    cr_expect(json_is_true(itest_jget(e, "cause.retryable")), "BarError is retryable");
    cr_expect_null(itest_jget(e, "cause.cause"));
    json_decref(e);

    /* The op recorded its final error after max_attempts executions. */
    expect_ops(res.run_id, 1);
    expect_op(res.run_id, "foo", 0, "error", 2, NULL);
    itest_op_key("foo", 0, key);
    op_err = itest_bytea_json("SELECT result FROM ops WHERE run_id = $1::uuid AND op_key = $2",
                              res.run_id, key);
    op = itest_parse(op_err);
    cr_expect_str_eq(itest_jstr(op, "name"), "FooError");
    cr_expect_str_eq(itest_jstr(op, "message"), "oh no");
    cr_expect_str_eq(itest_jstr(op, "cause.name"), "BarError");
    cr_expect_str_eq(itest_jstr(op, "cause.message"), "the cause");
    json_decref(op);
    free(op_err);
    sk_run_result_clear(&res);
    itest_finish();
}

Test(engine, non_retryable_step_error_fails_run_at_once, ITEST_FIXTURES)
{
    sk_run_result_t res;
    json_t *e;

    itest_master_up(NULL);
    itest_invoke("non-retryable", NULL, &res);
    expect_ended(&res, "failed");
    cr_expect_eq(COUNT(res.run_id, "handler"), 1);
    cr_expect_eq(COUNT(res.run_id, "fatal"), 1);
    cr_expect_eq(COUNT(res.run_id, "after"), 0);
    e = error_of(&res);
    cr_expect_str_eq(itest_jstr(e, "name"), "FatalError");
    cr_expect_str_eq(itest_jstr(e, "message"), "give up");
    cr_expect(json_is_false(itest_jget(e, "retryable")), "the error stays non-retryable");
    json_decref(e);
    expect_ops(res.run_id, 1);
    expect_op(res.run_id, "fatal", 0, "error", 1, NULL);
    sk_run_result_clear(&res);
    itest_finish();
}

Test(engine, invalid_input_fails_without_entering_handler, ITEST_FIXTURES)
{
    sk_run_result_t res;
    json_t *e, *path;

    itest_master_up(NULL);
    itest_invoke("validated", "{\"name\": 1}", &res);
    expect_ended(&res, "failed");
    cr_expect_eq(COUNT(res.run_id, "handler"), 0);
    expect_ops(res.run_id, 0);
    e = error_of(&res);
    cr_expect_str_eq(itest_jstr(e, "name"), "InvalidInputError");
    cr_expect_str_eq(itest_jstr(e, "message"), "Invalid input");
    cr_expect(json_is_false(itest_jget(e, "retryable")), "InvalidInputError is not retryable");
    cr_assert(json_is_array(itest_jget(e, "cause.issues")), "the cause lists the issues");
    cr_expect_eq(json_array_size(itest_jget(e, "cause.issues")), 1);
    path = itest_jget(e, "cause.issues.0.path");
    cr_assert(json_is_array(path) && json_array_size(path) == 1, "issue path is [\"name\"]");
    cr_expect_str_eq(json_string_value(json_array_get(path, 0)), "name");
    cr_expect_str_eq(itest_jstr(e, "cause.issues.0.expected"), "string");
    cr_expect_str_eq(itest_jstr(e, "cause.issues.0.message"),
                     "Invalid input: expected string, received number");
    json_decref(e);
    sk_run_result_clear(&res);

    /* The same workflow with valid input runs its handler once. */
    itest_invoke("validated", "{\"name\": \"Ada\"}", &res);
    expect_ended(&res, "completed");
    expect_output(&res, "\"hello Ada\"");
    cr_expect_eq(COUNT(res.run_id, "handler"), 1);
    sk_run_result_clear(&res);
    itest_finish();
}

Test(engine, step_called_inside_a_step_fails_run, ITEST_FIXTURES)
{
    sk_run_result_t res;
    json_t *e;

    itest_master_up(NULL);
    itest_invoke("nested", NULL, &res);
    expect_ended(&res, "failed");
    cr_expect_eq(COUNT(res.run_id, "handler"), 1);
    cr_expect_eq(COUNT(res.run_id, "outer"), 1);
    cr_expect_eq(COUNT(res.run_id, "inner"), 0);
    cr_expect_eq(COUNT(res.run_id, "after"), 0);
    e = error_of(&res);
    cr_expect_str_eq(itest_jstr(e, "name"), "NestedStepError");
    cr_expect_str_eq(itest_jstr(e, "message"),
                     "Step is nested inside another step: inner inside outer");
    cr_expect(json_is_false(itest_jget(e, "retryable")), "NestedStepError is not retryable");
    json_decref(e);
    sk_run_result_clear(&res);
    itest_finish();
}

Test(engine, failing_handler_is_retried_up_to_max_attempts, ITEST_FIXTURES)
{
    sk_run_result_t res;
    json_t *e;

    itest_master_up(NULL);
    itest_invoke("always-fails", NULL, &res);
    expect_ended(&res, "failed");
    cr_expect_eq(COUNT(res.run_id, "handler"), 4);
    expect_ops(res.run_id, 0);
    e = error_of(&res);
    cr_expect_str_eq(itest_jstr(e, "name"), "AlwaysError");
    /* sk_attempt() in the handler counts its executions: the last is 4. */
    cr_expect_str_eq(itest_jstr(e, "message"), "handler attempt 4");
    json_decref(e);
    sk_run_result_clear(&res);
    itest_finish();
}
