/*
 * The step model of STEPKIT-SEMANTICS.md, "Step kinds": sleep and signals
 * (wait, timeout, several waiters, validator, send_signal as a step), with
 * the contract's exact counts and times, on the workflows of
 * tests/workflows/stepwf.c.  The concurrency-sensitive cases run on two
 * masters with two workers each.
 */
#include "test_steps.h"

/* ---- sleep --------------------------------------------------------------------------- */

Test(steps, sleep_first_ends_between_1000_and_1200_ms, ITEST_FIXTURES)
{
    char run_id[SK_UUID_LEN], key[41];
    sk_run_result_t res;
    int64_t t0, t1;
    long ms;

    itest_master_up(NULL);
    t0 = st_mono_ms();
    itest_start("step-sleep", "{\"ms\":1000}", run_id);
    st_wait(run_id, 10000, &res);
    t1 = st_mono_ms();
    st_expect_output(&res, "\"rested\"");

    /* runs.created_at is the client's start, ended_at the end (server clock). */
    ms = st_run_ms(run_id);
    cr_expect_geq(ms, 1000, "run ended %ld ms after its start", ms);
    cr_expect_lt(ms, 1200 + itest_timing_slack_ms(), "run ended %ld ms after its start", ms);
    cr_expect_geq(t1 - t0, 1000, "the client saw the end %lld ms after starting it",
                  (long long)(t1 - t0));
    cr_expect_eq(COUNT(run_id, "handler"), 2);
    cr_expect_eq(COUNT(run_id, "after"), 1);
    itest_op_key("nap", 0, key);
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid AND op_key = $2"
                            "   AND kind = 'sleep' AND status = 'ok'",
                            run_id, key),
                 1, "the sleep op is recorded ok");
    sk_run_result_clear(&res);
    itest_finish();
}

/* ---- signals --------------------------------------------------------------------------- */

/* The reference case: wait (2000 ms) in a group while step `delay` sleeps
 * 1000 ms and sends the signal {"msg": "hi"} through the client API.
 *
 * Handler entries here: the first (starts the wait, dispatches `delay`),
 * the entry on another worker that runs `delay`'s body (a group member's
 * body runs in its own entry of the handler), the one after `delay`
 * committed; plus one more when the run, woken by the delivery, is
 * replayed before `delay`'s result is committed.  The contract says 3. */
Test(steps, signal_sent_by_a_parallel_step_resolves_the_wait, ITEST_FIXTURES)
{
    char run_id[SK_UUID_LEN], signal[96], input[1024], want[512];
    sk_run_result_t res;

    st_two_masters();
    st_signal_name("ref", 0, signal, sizeof(signal));
    snprintf(input, sizeof(input), "{\"signal\":\"%s\",\"url\":\"%s\",\"schema\":\"%s\"}", signal,
             itest.url, itest.schema);
    itest_start("step-signal-ref", input, run_id);
    st_wait(run_id, 15000, &res);
    /* The send returned this run's own id; the wait returned {data, signal}. */
    snprintf(want, sizeof(want),
             "{\"wait\":{\"data\":{\"msg\":\"hi\"},\"signal\":\"%s\"},\"sent_to\":\"%s\"}", signal,
             run_id);
    st_expect_output(&res, want);
    cr_expect_eq(COUNT(run_id, "delay"), 1, "delay body");
    cr_expect_eq(COUNT(run_id, "after"), 1, "code after the wait");
    cr_expect_eq(COUNT(run_id, "handler"), 3, "handler entered %d times", COUNT(run_id, "handler"));
    cr_expect_eq(st_ops(run_id, "ok"), 2, "wait and delay recorded ok");
    cr_expect_eq(itest_long("SELECT count(*) FROM waiting_signals"), 0);
    sk_run_result_clear(&res);
    itest_finish();
}

#define REF_RUNS 10

/* The reference case, ten runs at once with a 300 ms delay, on two
 * masters: every run completes with its own signal, each `delay` body and
 * the code after the wait run once.  (A delivery wakes the run while its
 * `delay` member still runs elsewhere: the release of that replay, the
 * member's commit and the claim race each other here.)  The handler count
 * is checked by the test above; here it is only reported. */
Test(steps, signal_reference_case_ten_runs_at_once, ITEST_FIXTURES)
{
    static char runs[REF_RUNS][SK_UUID_LEN];
    int entries[6] = {0};
    char list[128] = "";

    st_two_masters();
    for (int i = 0; i < REF_RUNS; i++) {
        char signal[96], input[1024];

        st_signal_name("ref", i, signal, sizeof(signal));
        snprintf(input, sizeof(input),
                 "{\"signal\":\"%s\",\"url\":\"%s\",\"schema\":\"%s\",\"delay_ms\":300}", signal,
                 itest.url, itest.schema);
        itest_start("step-signal-ref", input, runs[i]);
    }
    for (int i = 0; i < REF_RUNS; i++) {
        char signal[96], want[1024], *out;
        sk_run_result_t res;
        int n;

        st_signal_name("ref", i, signal, sizeof(signal));
        st_wait(runs[i], 15000, &res);
        out = st_output(&res);
        snprintf(want, sizeof(want),
                 "{\"wait\":{\"data\":{\"msg\":\"hi\"},\"signal\":\"%s\"},\"sent_to\":\"%s\"}",
                 signal, runs[i]);
        cr_expect_str_eq(out, want, "run %d", i);
        free(out);
        sk_run_result_clear(&res);
        cr_expect_eq(COUNT(runs[i], "delay"), 1, "run %d: delay body", i);
        cr_expect_eq(COUNT(runs[i], "after"), 1, "run %d: code after the wait", i);
        n = COUNT(runs[i], "handler");
        entries[n < 5 ? n : 5]++;
    }
    for (int n = 0; n < 6; n++) {
        if (entries[n] > 0)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%d run(s) %d%s",
                     list[0] ? ", " : "", entries[n], n, n == 5 ? "+" : "");
    }
    cr_log_info("handler entries: %s", list);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0, "exec_queue after the runs");
    cr_expect_eq(itest_long("SELECT count(*) FROM waiting_signals"), 0);
    itest_finish();
}

Test(steps, signal_timeout_returns_null, ITEST_FIXTURES)
{
    char run_id[SK_UUID_LEN], to[SK_UUID_LEN], signal[96], input[256], key[41], *result;
    sk_run_result_t res;
    long ms;

    itest_master_up(NULL);
    st_signal_name("timeout", 0, signal, sizeof(signal));
    snprintf(input, sizeof(input), "{\"signal\":\"%s\",\"timeout_ms\":1000}", signal);
    itest_start("step-wait", input, run_id);
    st_wait(run_id, 10000, &res);
    st_expect_output(&res, "null");
    cr_expect_eq(COUNT(run_id, "handler"), 2);
    cr_expect_eq(COUNT(run_id, "after"), 1);
    ms = st_run_ms(run_id);
    cr_expect_geq(ms, 1000, "the wait timed out %ld ms after the start", ms);
    itest_op_key("wait", 0, key);
    result = itest_bytea_json("SELECT result FROM ops WHERE run_id = $1::uuid AND op_key = $2"
                              "   AND kind = 'signal' AND status = 'ok'",
                              run_id, key);
    cr_expect_str_eq(result, "null", "recorded result of the wait");
    free(result);

    /* A signal sent after the timeout fired reaches nobody. */
    st_signal(signal, "{\"late\":true}", to);
    cr_expect_str_eq(to, "", "a late signal was received by %s", to);
    cr_expect_eq(itest_long("SELECT count(*) FROM waiting_signals"), 0);
    sk_run_result_clear(&res);
    itest_finish();
}

/* (ours) Three runs wait on one name: each send wakes exactly one, the
 * oldest waiter; a fourth send finds nobody. */
Test(steps, three_waiters_are_woken_one_per_send_oldest_first, ITEST_FIXTURES)
{
    char run_ids[3][SK_UUID_LEN], to[SK_UUID_LEN], signal[96], input[256], data[32];
    sk_run_result_t res;

    st_two_masters();
    st_signal_name("fan", 0, signal, sizeof(signal));
    snprintf(input, sizeof(input), "{\"signal\":\"%s\"}", signal);
    for (int i = 0; i < 3; i++) {
        itest_start("step-wait", input, run_ids[i]);
        /* Registered before the next one starts: the order is the start order. */
        st_wait_suspended(run_ids[i], "signal", 10000);
    }
    cr_assert_eq(itest_long("SELECT count(*) FROM waiting_signals WHERE signal = $1", signal), 3);
    for (int i = 0; i < 3; i++) {
        char want[256];

        snprintf(data, sizeof(data), "{\"n\":%d}", i + 1);
        st_signal(signal, data, to);
        cr_assert_str_eq(to, run_ids[i], "send %d reached %s", i + 1, to[0] ? to : "nobody");
        st_wait(run_ids[i], 10000, &res);
        snprintf(want, sizeof(want), "{\"data\":{\"n\":%d},\"signal\":\"%s\"}", i + 1, signal);
        st_expect_output(&res, want);
        sk_run_result_clear(&res);
        /* Only that one: the younger waiters still wait. */
        for (int j = i + 1; j < 3; j++) {
            char *st = itest_str("SELECT status FROM runs WHERE run_id = $1::uuid", run_ids[j]);
            cr_expect_str_eq(st, "pending", "run %d after send %d", j + 1, i + 1);
            free(st);
        }
        cr_expect_eq(itest_long("SELECT count(*) FROM waiting_signals WHERE signal = $1", signal),
                     2 - i);
    }
    st_signal(signal, "{\"n\":4}", to);
    cr_expect_str_eq(to, "", "a fourth send reached %s", to);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(COUNT(run_ids[i], "handler"), 2, "run %d", i + 1);
        cr_expect_eq(COUNT(run_ids[i], "after"), 1, "run %d", i + 1);
    }
    itest_finish();
}

/* (ours) The waiter's validator: rejected data fails the step with
 * InvalidInputError (not retryable); accepted data is returned. */
Test(steps, signal_validator_rejects_bad_data_with_invalid_input_error, ITEST_FIXTURES)
{
    char bad_run[SK_UUID_LEN], good_run[SK_UUID_LEN], to[SK_UUID_LEN];
    char bad_sig[96], good_sig[96], input[256], want[256];
    sk_run_result_t res;
    json_t *e;

    itest_master_up(NULL);
    st_signal_name("invalid", 0, bad_sig, sizeof(bad_sig));
    st_signal_name("valid", 0, good_sig, sizeof(good_sig));
    snprintf(input, sizeof(input), "{\"signal\":\"%s\"}", bad_sig);
    itest_start("step-wait-validated", input, bad_run);
    snprintf(input, sizeof(input), "{\"signal\":\"%s\"}", good_sig);
    itest_start("step-wait-validated", input, good_run);
    st_wait_suspended(bad_run, "signal", 10000);
    st_wait_suspended(good_run, "signal", 10000);

    st_signal(bad_sig, "{\"approved\":\"yes\"}", to);
    cr_expect_str_eq(to, bad_run);
    st_wait(bad_run, 10000, &res);
    e = st_error(&res);
    cr_expect_str_eq(itest_jstr(e, "name"), "InvalidInputError");
    cr_expect_str_eq(itest_jstr(e, "message"), "Invalid input");
    cr_expect(json_is_false(itest_jget(e, "retryable")), "the error is retryable");
    cr_expect_str_eq(itest_jstr(e, "cause.message"),
                     "Invalid input: expected boolean, received string");
    /* Raised at the step's call site, once: not retried. */
    cr_expect_eq(COUNT(bad_run, "handler"), 2);
    cr_expect_eq(COUNT(bad_run, "catch"), 1);
    cr_expect_eq(COUNT(bad_run, "after"), 0);
    json_decref(e);
    sk_run_result_clear(&res);

    st_signal(good_sig, "{\"approved\":true}", to);
    cr_expect_str_eq(to, good_run);
    st_wait(good_run, 10000, &res);
    snprintf(want, sizeof(want), "{\"data\":{\"approved\":true},\"signal\":\"%s\"}", good_sig);
    st_expect_output(&res, want);
    cr_expect_eq(COUNT(good_run, "handler"), 2);
    cr_expect_eq(COUNT(good_run, "catch"), 0);
    cr_expect_eq(COUNT(good_run, "after"), 1);
    sk_run_result_clear(&res);
    itest_finish();
}

/* (ours) send_signal is a step: it returns {run_id} of the receiver (or
 * null), its result is recorded, and the sender's later replays (three
 * more entries) never send again: of two waiters only the oldest received
 * anything. */
Test(steps, send_signal_step_is_recorded_and_never_sent_twice, ITEST_FIXTURES)
{
    char w1[SK_UUID_LEN], w2[SK_UUID_LEN], sender[SK_UUID_LEN], lonely[SK_UUID_LEN];
    char to[SK_UUID_LEN], signal[96], nobody[96], input[256], want[256], key[41], *rec;
    sk_run_result_t res;

    st_two_masters();
    st_signal_name("send", 0, signal, sizeof(signal));
    st_signal_name("nobody", 0, nobody, sizeof(nobody));
    snprintf(input, sizeof(input), "{\"signal\":\"%s\"}", signal);
    itest_start("step-wait", input, w1);
    st_wait_suspended(w1, "signal", 10000);
    itest_start("step-wait", input, w2);
    st_wait_suspended(w2, "signal", 10000);

    itest_start("step-send", input, sender);
    st_wait(sender, 10000, &res);
    snprintf(want, sizeof(want), "{\"run_id\":\"%s\"}", w1);
    st_expect_output(&res, want);
    sk_run_result_clear(&res);
    /* send (suspends), next (body), linger (sleep), the end. */
    cr_expect_eq(COUNT(sender, "handler"), 4);
    cr_expect_eq(COUNT(sender, "next"), 1);
    cr_expect_eq(COUNT(sender, "after"), 1);
    itest_op_key("send", 0, key);
    rec = itest_bytea_json("SELECT result FROM ops WHERE run_id = $1::uuid AND op_key = $2"
                           "   AND kind = 'send' AND status = 'ok'",
                           sender, key);
    cr_expect_str_eq(rec, want, "recorded result of the send");
    free(rec);
    cr_expect_eq(
        itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid AND kind = 'send'", sender),
        1);

    st_wait(w1, 10000, &res);
    snprintf(want, sizeof(want), "{\"data\":{\"from\":\"%s\"},\"signal\":\"%s\"}", sender, signal);
    st_expect_output(&res, want);
    sk_run_result_clear(&res);
    /* The second waiter got nothing: it still waits, and is the receiver
     * of the next send. */
    {
        char *st = itest_str("SELECT status FROM runs WHERE run_id = $1::uuid", w2);
        cr_expect_str_eq(st, "pending", "the second waiter");
        free(st);
    }
    cr_expect_eq(itest_long("SELECT count(*) FROM waiting_signals WHERE run_id = $1::uuid", w2), 1);
    st_signal(signal, "{\"from\":\"client\"}", to);
    cr_expect_str_eq(to, w2);
    st_wait(w2, 10000, &res);
    snprintf(want, sizeof(want), "{\"data\":{\"from\":\"client\"},\"signal\":\"%s\"}", signal);
    st_expect_output(&res, want);
    sk_run_result_clear(&res);

    /* Nobody waits: the step returns null. */
    snprintf(input, sizeof(input), "{\"signal\":\"%s\"}", nobody);
    itest_start("step-send", input, lonely);
    st_wait(lonely, 10000, &res);
    st_expect_output(&res, "null");
    sk_run_result_clear(&res);
    itest_finish();
}
