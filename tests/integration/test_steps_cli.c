/*
 * The `stepkit` command line and suspended steps: `stepkit run <id>
 * --json` shows what a waiting step waits for ({kind, until, signal}), and
 * `stepkit signal <name>` prints the receiving run's id, or null.
 */
#include "test_steps.h"

/* Wall-clock ms as the CLI prints them: 2026-01-02T03:04:05.678Z. */
static void iso_ms(long long ms, char *out, size_t outlen)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    char buf[40];

    gmtime_r(&t, &tm);
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, outlen, "%s.%03dZ", buf, (int)(ms % 1000));
}

/* `stepkit run <id> --json`, parsed (caller decrefs). */
static json_t *run_json(const char *run_id)
{
    const char *args[] = {"run", run_id, "--json", NULL};
    itest_cmd_t r;
    json_t *j;

    itest_cli(args, &r);
    cr_assert_eq(r.code, 0, "stepkit run exited %d: %s", r.code, r.err);
    j = itest_parse(r.out);
    itest_cmd_free(&r);
    return j;
}

/* The op's wait_info.until (wall-clock ms) as recorded. */
static long long recorded_until(const char *run_id)
{
    char *text = itest_bytea_json("SELECT wait_info FROM ops WHERE run_id = $1::uuid", run_id);
    json_t *w = itest_parse(text);
    long long until;

    cr_assert(json_is_integer(itest_jget(w, "until")), "wait_info: %s", text);
    until = json_integer_value(itest_jget(w, "until"));
    json_decref(w);
    free(text);
    return until;
}

/* The waiting step of `run_id`: waiting_for = {kind, until[, signal]}. */
static void expect_waiting_step(json_t *j, const char *step_id, const char *kind,
                                const char *signal, long long until_ms)
{
    char until[48];
    json_t *w;

    iso_ms(until_ms, until, sizeof(until));
    cr_expect_str_eq(itest_jstr(j, "status"), "waiting", "run status");
    cr_assert_eq(json_array_size(itest_jget(j, "steps")), 1, "one step");
    cr_expect_str_eq(itest_jstr(j, "steps.0.step_id"), step_id);
    cr_expect_str_eq(itest_jstr(j, "steps.0.kind"), kind);
    cr_expect_str_eq(itest_jstr(j, "steps.0.status"), "waiting");
    cr_expect_null(itest_jget(j, "steps.0.output"), "a waiting step has no output");
    w = itest_jget(j, "steps.0.waiting_for");
    cr_assert(json_is_object(w), "no waiting_for");
    cr_expect_str_eq(itest_jstr(w, "kind"), kind);
    cr_expect_str_eq(itest_jstr(w, "until"), until);
    if (signal != NULL)
        cr_expect_str_eq(itest_jstr(w, "signal"), signal);
    else
        cr_expect_null(itest_jget(w, "signal"), "a sleep waits for no signal");
}

Test(steps_cli, run_json_shows_what_a_waiting_step_waits_for, ITEST_FIXTURES)
{
    char waiter[SK_UUID_LEN], sleeper[SK_UUID_LEN], signal[96], input[256];
    long long until, created;
    json_t *j;

    itest_master_up(NULL);
    st_signal_name("cli", 0, signal, sizeof(signal));
    snprintf(input, sizeof(input), "{\"signal\":\"%s\",\"timeout_ms\":60000}", signal);
    itest_start("step-wait", input, waiter);
    itest_start("step-sleep", "{\"ms\":60000}", sleeper);
    st_wait_suspended(waiter, "signal", 10000);
    st_wait_suspended(sleeper, "sleep", 10000);

    until = recorded_until(waiter);
    created = itest_long("SELECT (extract(epoch FROM created_at) * 1000)::int8 FROM runs"
                         " WHERE run_id = $1::uuid",
                         waiter);
    cr_expect(until >= created + 60000 && until < created + 62000,
              "the wait ends at %lld, %lld ms after the start", until, until - created);
    j = run_json(waiter);
    expect_waiting_step(j, "wait", "signal", signal, until);
    json_decref(j);

    until = recorded_until(sleeper);
    j = run_json(sleeper);
    expect_waiting_step(j, "nap", "sleep", NULL, until);
    json_decref(j);
    itest_finish();
}

Test(steps_cli, signal_prints_the_receiver_or_null, ITEST_FIXTURES)
{
    char waiter[SK_UUID_LEN], signal[96], input[256], want[256], line[64];
    const char *send[] = {"signal", signal, "--data", "{\"ok\":true}", NULL};
    const char *again[] = {"signal", signal, NULL};
    sk_run_result_t res;
    itest_cmd_t r;

    itest_master_up(NULL);
    st_signal_name("cli", 1, signal, sizeof(signal));
    snprintf(input, sizeof(input), "{\"signal\":\"%s\"}", signal);
    itest_start("step-wait", input, waiter);
    st_wait_suspended(waiter, "signal", 10000);

    itest_cli(send, &r);
    cr_assert_eq(r.code, 0, "stepkit signal exited %d: %s", r.code, r.err);
    snprintf(line, sizeof(line), "%s\n", waiter);
    cr_expect_str_eq(r.out, line, "stepkit signal printed '%s'", r.out);
    itest_cmd_free(&r);
    st_wait(waiter, 10000, &res);
    snprintf(want, sizeof(want), "{\"data\":{\"ok\":true},\"signal\":\"%s\"}", signal);
    st_expect_output(&res, want);
    sk_run_result_clear(&res);

    /* Nobody waits any more: null, and still exit 0. */
    itest_cli(again, &r);
    cr_assert_eq(r.code, 0, "stepkit signal exited %d: %s", r.code, r.err);
    cr_expect_str_eq(r.out, "null\n");
    itest_cmd_free(&r);
    itest_finish();
}
