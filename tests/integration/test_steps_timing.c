/*
 * Timing promises of the step model (STEPKIT-SEMANTICS.md, "Step kinds"
 * and "Timing"): a suspended run holds no worker; a signal resumes its
 * waiter through NOTIFY within milliseconds, not at the next poll; a send
 * racing the waiter's timeout resolves to exactly one outcome.
 */
#include "test_steps.h"

#define SLEEPERS 6

/* Three times more sleeping runs than workers: a short run started while
 * they all sleep still completes at once. */
Test(steps_timing, sleeping_runs_hold_no_worker, ITEST_FIXTURES)
{
    char sleepers[SLEEPERS][SK_UUID_LEN];
    sk_run_result_t res;
    int64_t t0, took;

    itest_master_up(NULL); /* 2 workers */
    for (int i = 0; i < SLEEPERS; i++)
        itest_start("step-sleep", "{\"ms\":3000}", sleepers[i]);
    for (int i = 0; i < SLEEPERS; i++)
        st_wait_suspended(sleepers[i], "sleep", 10000);

    t0 = st_mono_ms();
    itest_invoke("step-quick", NULL, &res);
    took = st_mono_ms() - t0;
    st_expect_output(&res, "\"quick\"");
    cr_expect_lt(took, 500, "a one-step run took %lld ms while %d runs slept on 2 workers",
                 (long long)took, SLEEPERS);
    cr_expect_eq(COUNT(res.run_id, "handler"), 2);
    cr_expect_eq(COUNT(res.run_id, "quick"), 1);
    sk_run_result_clear(&res);
    /* They were all still asleep. */
    for (int i = 0; i < SLEEPERS; i++) {
        char *st = itest_str("SELECT status FROM runs WHERE run_id = $1::uuid", sleepers[i]);
        cr_expect_str_eq(st, "pending", "sleeper %d", i);
        free(st);
    }
    for (int i = 0; i < SLEEPERS; i++) {
        long ms;
        st_wait(sleepers[i], 10000, &res);
        st_expect_output(&res, "\"rested\"");
        ms = st_run_ms(sleepers[i]);
        cr_expect_geq(ms, 3000, "sleeper %d ended %ld ms after its start", i, ms);
        cr_expect_eq(COUNT(sleepers[i], "handler"), 2, "sleeper %d", i);
        cr_expect_eq(COUNT(sleepers[i], "after"), 1, "sleeper %d", i);
        sk_run_result_clear(&res);
    }
    itest_finish();
}

#define NOTIFY_TRIES 5
#define NOTIFY_BOUND 80 /* ms; the poll interval is 1000 ms */

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;

    return (x > y) - (x < y);
}

/* Polling every 1000 ms, a waiter resumes within NOTIFY_BOUND ms of the
 * send: only the notification can explain it.  The best and the median
 * of NOTIFY_TRIES sends must be under the bound. */
Test(steps_timing, signal_resumes_the_waiter_within_milliseconds, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.extra = {"--poll-interval", "1000", "--poll-max", "1000", NULL}};
    long took[NOTIFY_TRIES];
    char list[256] = "";

    itest_master_up(&opts);
    for (int i = 0; i < NOTIFY_TRIES; i++) {
        char run_id[SK_UUID_LEN], to[SK_UUID_LEN], signal[96], input[256], sent_s[24];
        sk_run_result_t res;
        int64_t sent;

        st_signal_name("notify", i, signal, sizeof(signal));
        snprintf(input, sizeof(input), "{\"signal\":\"%s\"}", signal);
        itest_start("step-wait", input, run_id);
        st_wait_suspended(run_id, "signal", 10000);
        st_nap(50); /* the worker back in its loop, idle */
        sent = st_wall_ms();
        st_signal(signal, "{\"go\":true}", to);
        cr_assert_str_eq(to, run_id);
        st_wait(run_id, 10000, &res);
        sk_run_result_clear(&res);
        /* From just before the send to the run's end, on the host's clock. */
        snprintf(sent_s, sizeof(sent_s), "%lld", (long long)sent);
        took[i] = itest_long("SELECT (extract(epoch FROM ended_at) * 1000)::int8 - $2::int8"
                             "  FROM runs WHERE run_id = $1::uuid",
                             run_id, sent_s);
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%ld", i ? ", " : "", took[i]);
    }
    cr_log_info("send -> end of run (ms): %s", list);
    qsort(took, NOTIFY_TRIES, sizeof(took[0]), cmp_long);
    cr_expect_lt(took[0], NOTIFY_BOUND, "best send -> end: %ld ms (all: %s)", took[0], list);
    cr_expect_lt(took[NOTIFY_TRIES / 2], NOTIFY_BOUND, "median send -> end: %ld ms (all: %s)",
                 took[NOTIFY_TRIES / 2], list);
    itest_finish();
}

#define RACERS     24
#define RACE_SPACE 50   /* ms between the racers' starts (and timeouts) */
#define RACE_WAIT  1500 /* ms: their timeout */

/* Each racer waits with a timeout; its signal is sent right at that
 * timeout (waiting_signals.timeout_at), from 6 ms before to 5 ms after,
 * while the worker wakes the run to resolve the timeout.  Exactly one outcome each:
 * the waiter got the data and the send returned its id, or the waiter got
 * null and the send reached nobody. */
Test(steps_timing, send_racing_the_timeout_resolves_to_one_outcome, ITEST_FIXTURES)
{
    static char runs[RACERS][SK_UUID_LEN], to[RACERS][SK_UUID_LEN];
    int64_t timeout_at[RACERS], sent_at[RACERS], t0;
    int got_data = 0, got_null = 0;
    long ended;

    st_two_masters();
    t0 = st_mono_ms();
    for (int i = 0; i < RACERS; i++) {
        char signal[96], input[256];

        st_signal_name("race", i, signal, sizeof(signal));
        snprintf(input, sizeof(input), "{\"signal\":\"%s\",\"timeout_ms\":%d}", signal, RACE_WAIT);
        st_nap((long)(t0 + (int64_t)i * RACE_SPACE - st_mono_ms()));
        itest_start("step-wait", input, runs[i]);
        st_wait_suspended(runs[i], "signal", 5000);
        timeout_at[i] = itest_long("SELECT (extract(epoch FROM timeout_at) * 1000)::int8"
                                   "  FROM waiting_signals WHERE run_id = $1::uuid",
                                   runs[i]);
    }
    for (int i = 0; i < RACERS; i++) {
        char signal[96], data[32];

        st_signal_name("race", i, signal, sizeof(signal));
        snprintf(data, sizeof(data), "{\"i\":%d}", i);
        st_sleep_until(timeout_at[i] + i % 12 - 6);
        sent_at[i] = st_wall_ms();
        st_signal(signal, data, to[i]);
    }
    ended = itest_wait_ended(RACERS, 10000);
    cr_assert_eq(ended, RACERS, "%ld of %d racers ended", ended, RACERS);

    for (int i = 0; i < RACERS; i++) {
        char signal[96], want[256], *out;

        st_signal_name("race", i, signal, sizeof(signal));
        out = itest_bytea_json("SELECT output FROM runs WHERE run_id = $1::uuid"
                               "   AND status = 'completed'",
                               runs[i]);
        cr_assert_not_null(out, "racer %d did not complete", i);
        snprintf(want, sizeof(want), "{\"data\":{\"i\":%d},\"signal\":\"%s\"}", i, signal);
        if (strcmp(to[i], runs[i]) == 0) {
            got_data++;
            cr_expect_str_eq(out, want, "racer %d: the send reached it (%+lld ms), its wait saw", i,
                             (long long)(sent_at[i] - timeout_at[i]));
        } else {
            got_null++;
            cr_expect_str_eq(to[i], "", "racer %d: its signal reached run %s", i, to[i]);
            cr_expect_str_eq(out, "null",
                             "racer %d: the send reached nobody (%+lld ms), its wait saw", i,
                             (long long)(sent_at[i] - timeout_at[i]));
        }
        cr_expect_eq(COUNT(runs[i], "handler"), 2, "racer %d handler", i);
        cr_expect_eq(COUNT(runs[i], "after"), 1, "racer %d after", i);
        free(out);
    }
    cr_log_info("send at the timeout: %d received, %d timed out", got_data, got_null);
    cr_expect_eq(itest_long("SELECT count(*) FROM waiting_signals"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    itest_finish();
}
