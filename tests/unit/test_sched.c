/*
 * Unit tests for the cron scheduler's bookkeeping (worker/sk_sched_tick.c):
 * which tick fires, which comes next, where a schedule resumes.  Times are
 * ISO 8601 UTC strings.  The zone case needs tzdata, like test_cron.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../worker/sk_sched.h"
#include "ut_time.h"

static sk_cron_t *parse(const char *expr)
{
    char err[256];
    sk_cron_t *c = sk_cron_parse(expr, err, sizeof(err));

    cr_assert_not_null(c, "parse \"%s\": %s", expr, err);
    return c;
}

/* Expect `got` (Unix ms, -1: none) to be the time `want` (NULL: -1). */
static void expect_time(int64_t got, const char *want, const char *what)
{
    char buf[40];

    if (want == NULL)
        cr_expect_eq(got, -1, "%s: got %s, want none", what,
                     got < 0 ? "none" : sk_sched_iso(got, buf, sizeof(buf)));
    else
        cr_expect_eq(got, ut_iso_ms(want), "%s: got %s, want %s", what,
                     got < 0 ? "none" : sk_sched_iso(got, buf, sizeof(buf)), want);
}

/* The latest tick in (after, now] by walking every tick: the reference. */
static int64_t latest_by_walking(const sk_cron_t *c, int64_t after, int64_t now)
{
    int64_t t = sk_cron_next(c, after), last = -1;

    while (t >= 0 && t <= now) {
        last = t;
        t = sk_cron_next(c, t);
    }
    return last;
}

Test(sched, latest_is_the_most_recent_tick_up_to_now)
{
    sk_cron_t *c = parse("@every 1s");
    int64_t t0 = ut_iso_ms("2026-03-01T10:00:00Z");

    expect_time(sk_sched_latest(c, t0, t0 + 5500), "2026-03-01T10:00:05Z", "5.5 s later");
    expect_time(sk_sched_latest(c, t0, t0 + 5000), "2026-03-01T10:00:05Z", "now is a tick");
    expect_time(sk_sched_latest(c, t0, t0 + 999), NULL, "before the first tick");
    expect_time(sk_sched_latest(c, t0, t0), NULL, "empty window");
    expect_time(sk_sched_latest(c, t0, t0 - 10), NULL, "now before after");
    expect_time(sk_sched_latest(c, t0 - 1, t0 + 10), "2026-03-01T10:00:00Z", "after is exclusive");
    sk_cron_free(c);
}

Test(sched, latest_over_long_gaps)
{
    sk_cron_t *hourly = parse("0 * * * *");
    sk_cron_t *secondly = parse("* * * * * *");
    sk_cron_t *sparse = parse("0 0 29 2 *"); /* leap days only */

    expect_time(sk_sched_latest(hourly, ut_iso_ms("2026-01-01T00:00:00Z"),
                                ut_iso_ms("2026-03-01T12:34:56Z")),
                "2026-03-01T12:00:00Z", "two months of an hourly schedule");
    /* A year of a per-second schedule: a bisection, not 31 million steps. */
    expect_time(sk_sched_latest(secondly, ut_iso_ms("2025-03-01T00:00:00Z"),
                                ut_iso_ms("2026-03-01T12:34:56.789Z")),
                "2026-03-01T12:34:56Z", "a year of a per-second schedule");
    expect_time(sk_sched_latest(sparse, ut_iso_ms("2023-01-01T00:00:00Z"),
                                ut_iso_ms("2026-03-01T00:00:00Z")),
                "2024-02-29T00:00:00Z", "leap days");
    expect_time(sk_sched_latest(sparse, ut_iso_ms("2024-03-01T00:00:00Z"),
                                ut_iso_ms("2026-03-01T00:00:00Z")),
                NULL, "no leap day in the window");
    sk_cron_free(hourly);
    sk_cron_free(secondly);
    sk_cron_free(sparse);
}

Test(sched, latest_in_a_zone)
{
    sk_cron_t *c = parse("TZ=America/New_York 0 9 * * *");

    /* 09:00 EDT is 13:00 UTC in July, 09:00 EST 14:00 UTC in January. */
    expect_time(
        sk_sched_latest(c, ut_iso_ms("2026-07-01T00:00:00Z"), ut_iso_ms("2026-07-10T20:00:00Z")),
        "2026-07-10T13:00:00Z", "summer");
    expect_time(
        sk_sched_latest(c, ut_iso_ms("2026-01-01T00:00:00Z"), ut_iso_ms("2026-01-10T13:59:59Z")),
        "2026-01-09T14:00:00Z", "winter, just before the day's tick");
    sk_cron_free(c);
}

Test(sched, latest_agrees_with_walking_every_tick)
{
    static const char *const exprs[] = {
        "@every 1s",
        "@every 1500ms",
        "*/7 * * * * *",
        "15,45 * * * *",
        "0 9-17 * * 1-5",
        "@hourly",
        "TZ=Europe/Berlin 30 2 * * *",
        "TZ=Europe/Berlin */20 * * * *",
        "TZ=Europe/Berlin 0 1-3 * * *",
    };
    /* Six-day spans around Berlin's spring-forward (March 29) and fall-back
     * (October 25) changes. */
    const int64_t bases[] = {ut_iso_ms("2026-03-26T00:00:00Z"), ut_iso_ms("2026-10-22T00:00:00Z")};

    srandom(42);
    for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
        sk_cron_t *c = parse(exprs[i]);
        for (int k = 0; k < 80; k++) {
            /* Windows from 0 to 2 days, most of them across a DST change. */
            int64_t base = bases[k % 2];
            int64_t after = base + (int64_t)(random() % (4LL * 86400)) * 1000 + random() % 1000;
            int64_t now = after + (int64_t)(random() % (2LL * 86400)) * 1000 + random() % 1000;
            char a[40], b[40];
            cr_expect_eq(sk_sched_latest(c, after, now), latest_by_walking(c, after, now),
                         "%s in (%s, %s]", exprs[i], sk_sched_iso(after, a, sizeof(a)),
                         sk_sched_iso(now, b, sizeof(b)));
        }
        sk_cron_free(c);
    }
}

Test(sched, step_waits_until_the_tick)
{
    sk_cron_t *c = parse("@every 1s");
    int64_t next = ut_iso_ms("2026-03-01T10:00:01Z"), fire = 0;

    cr_expect_eq(sk_sched_step(c, &next, ut_iso_ms("2026-03-01T10:00:00.999Z"), &fire), 0);
    expect_time(fire, NULL, "fire");
    expect_time(next, "2026-03-01T10:00:01Z", "next unchanged");
    sk_cron_free(c);
}

Test(sched, step_fires_the_due_tick_and_moves_on)
{
    sk_cron_t *c = parse("@every 1s");
    int64_t next = ut_iso_ms("2026-03-01T10:00:01Z"), fire = 0;

    cr_expect_eq(sk_sched_step(c, &next, ut_iso_ms("2026-03-01T10:00:01.003Z"), &fire), 1);
    expect_time(fire, "2026-03-01T10:00:01Z", "fire");
    expect_time(next, "2026-03-01T10:00:02Z", "next");
    /* Exactly at the tick. */
    cr_expect_eq(sk_sched_step(c, &next, ut_iso_ms("2026-03-01T10:00:02Z"), &fire), 1);
    expect_time(fire, "2026-03-01T10:00:02Z", "fire at the tick");
    expect_time(next, "2026-03-01T10:00:03Z", "next after it");
    sk_cron_free(c);
}

Test(sched, step_coalesces_missed_ticks_into_the_latest)
{
    sk_cron_t *c = parse("@every 1s");
    sk_cron_t *daily = parse("0 3 * * *");
    int64_t next = ut_iso_ms("2026-03-01T10:00:01Z"), fire = 0;

    cr_expect_eq(sk_sched_step(c, &next, ut_iso_ms("2026-03-01T10:00:05.200Z"), &fire), 1);
    expect_time(fire, "2026-03-01T10:00:05Z", "one run, for the most recent tick");
    expect_time(next, "2026-03-01T10:00:06Z", "next");

    next = ut_iso_ms("2026-03-01T03:00:00Z");
    cr_expect_eq(sk_sched_step(daily, &next, ut_iso_ms("2026-03-05T12:00:00Z"), &fire), 1);
    expect_time(fire, "2026-03-05T03:00:00Z", "four days missed: today's tick");
    expect_time(next, "2026-03-06T03:00:00Z", "next");
    sk_cron_free(c);
    sk_cron_free(daily);
}

Test(sched, step_without_a_known_tick_searches_from_now)
{
    sk_cron_t *c = parse("*/10 * * * * *");
    int64_t next = -1, fire = 0;

    cr_expect_eq(sk_sched_step(c, &next, ut_iso_ms("2026-03-01T10:00:05Z"), &fire), 0);
    expect_time(fire, NULL, "nothing fires");
    expect_time(next, "2026-03-01T10:00:10Z", "next");
    sk_cron_free(c);
}

Test(sched, resume_after_the_last_fired_tick)
{
    sk_cron_t *c = parse("@every 1s");
    int64_t now = ut_iso_ms("2026-03-01T10:00:07.500Z"), fire = 0, next;

    /* Running instances fired up to 10:00:07: nothing missed. */
    next = sk_sched_resume(c, ut_iso_ms("2026-03-01T10:00:07Z"), now);
    expect_time(next, "2026-03-01T10:00:08Z", "resume");
    cr_expect_eq(sk_sched_step(c, &next, now, &fire), 0);

    /* Everything was down since 10:00:02: the first missed tick is due,
     * and the step coalesces the window into one run for 10:00:07. */
    next = sk_sched_resume(c, ut_iso_ms("2026-03-01T10:00:02Z"), now);
    expect_time(next, "2026-03-01T10:00:03Z", "resume after an outage");
    cr_expect_eq(sk_sched_step(c, &next, now, &fire), 1);
    expect_time(fire, "2026-03-01T10:00:07Z", "catch-up tick");
    expect_time(next, "2026-03-01T10:00:08Z", "then on schedule");
    sk_cron_free(c);
}

Test(sched, resume_never_fired_starts_from_now)
{
    sk_cron_t *c = parse("0 * * * *");
    int64_t now = ut_iso_ms("2026-03-01T10:20:00Z"), fire = 0;
    int64_t next = sk_sched_resume(c, -1, now);

    expect_time(next, "2026-03-01T11:00:00Z", "no backfill");
    cr_expect_eq(sk_sched_step(c, &next, now, &fire), 0);
    sk_cron_free(c);
}

Test(sched, iso_format)
{
    char buf[40];

    cr_expect_str_eq(sk_sched_iso(0, buf, sizeof(buf)), "1970-01-01T00:00:00.000Z");
    cr_expect_str_eq(sk_sched_iso(INT64_C(1700000000123), buf, sizeof(buf)),
                     "2023-11-14T22:13:20.123Z");
    cr_expect_str_eq(sk_sched_iso(-1, buf, sizeof(buf)), "1969-12-31T23:59:59.999Z");
    cr_expect_str_eq(sk_sched_iso(ut_iso_ms("2026-03-01T10:00:05Z"), buf, sizeof(buf)),
                     "2026-03-01T10:00:05.000Z");
    cr_expect_str_eq(sk_sched_iso(0, buf, 10), "", "too small a buffer gives an empty string");
}
