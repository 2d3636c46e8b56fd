/*
 * Unit tests for sk_cron: tables of {expression, after, expected next tick}
 * with times as ISO 8601 UTC strings.  The zone cases need tzdata.
 */
#include <criterion/criterion.h>

#include "ut_time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sk_cron.h"

typedef struct {
    const char *expr;
    const char *after; /* "YYYY-MM-DDTHH:MM:SS[.mmm]Z" */
    const char *want;  /* same form; NULL: no tick within 5 years (-1) */
} tick_case_t;

typedef struct {
    const char *expr;
    const char *message;
} bad_case_t;

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void check_ticks(const tick_case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char err[256], got_s[40], want_s[40];
        sk_cron_t *c = sk_cron_parse(cases[i].expr, err, sizeof(err));
        int64_t want, got;

        cr_assert_not_null(c, "\"%s\" should parse: %s", cases[i].expr, err);
        want = cases[i].want != NULL ? ut_iso_ms(cases[i].want) : -1;
        got = sk_cron_next(c, ut_iso_ms(cases[i].after));
        sk_cron_free(c);
        cr_expect_eq(got, want, "\"%s\" after %s: got %s, want %s", cases[i].expr, cases[i].after,
                     ut_ms_iso(got, got_s, sizeof(got_s)), ut_ms_iso(want, want_s, sizeof(want_s)));
    }
}

Test(cron, every_minute_fires_at_the_next_whole_minute)
{
    static const tick_case_t cases[] = {
        {"* * * * *", "2026-05-01T10:00:00Z", "2026-05-01T10:01:00Z"},
        {"* * * * *", "2026-05-01T10:00:59.999Z", "2026-05-01T10:01:00Z"},
        {"* * * * *", "2026-05-01T10:00:00.001Z", "2026-05-01T10:01:00Z"},
        {"* * * * *", "2026-12-31T23:59:30Z", "2027-01-01T00:00:00Z"},
        {"  *  *  *  *  *  ", "1969-12-31T23:58:10Z", "1969-12-31T23:59:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, ranges_select_every_value_in_between)
{
    static const tick_case_t cases[] = {
        {"10-12 * * * *", "2026-05-01T10:10:00Z", "2026-05-01T10:11:00Z"},
        {"10-12 * * * *", "2026-05-01T10:12:00Z", "2026-05-01T11:10:00Z"},
        {"0 9-17 * * *", "2026-05-01T17:00:00Z", "2026-05-02T09:00:00Z"},
        {"0 0 * * 1-5", "2026-05-01T12:00:00Z", "2026-05-04T00:00:00Z"}, /* Fri -> Mon */
        {"0 0 1 6-8 *", "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, steps_count_from_the_start_of_the_range)
{
    static const tick_case_t cases[] = {
        {"*/15 * * * *", "2026-05-01T10:07:00Z", "2026-05-01T10:15:00Z"},
        {"*/15 * * * *", "2026-05-01T10:45:00Z", "2026-05-01T11:00:00Z"},
        {"1-30/2 * * * *", "2026-05-01T10:01:00Z", "2026-05-01T10:03:00Z"},
        {"1-30/2 * * * *", "2026-05-01T10:29:00Z", "2026-05-01T11:01:00Z"},
        {"5/10 * * * *", "2026-05-01T10:00:00Z", "2026-05-01T10:05:00Z"},
        {"5/10 * * * *", "2026-05-01T10:50:00Z", "2026-05-01T10:55:00Z"},
        {"5/10 * * * *", "2026-05-01T10:55:00Z", "2026-05-01T11:05:00Z"},
        {"0 */6 * * *", "2026-05-01T13:00:00Z", "2026-05-01T18:00:00Z"},
        {"0 0 */10 * *", "2026-05-21T00:00:00Z", "2026-05-31T00:00:00Z"},
        {"0 0 1 */5 *", "2026-02-01T00:00:00Z", "2026-06-01T00:00:00Z"},
        {"*/45 * * * *", "2026-05-01T10:45:00Z", "2026-05-01T11:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, lists_combine_values_ranges_and_steps)
{
    static const tick_case_t cases[] = {
        {"0,15,45 * * * *", "2026-05-01T10:00:00Z", "2026-05-01T10:15:00Z"},
        {"0,15,45 * * * *", "2026-05-01T10:15:00Z", "2026-05-01T10:45:00Z"},
        {"0,15,45 * * * *", "2026-05-01T10:45:00Z", "2026-05-01T11:00:00Z"},
        {"0 1,5-7,*/12 * * *", "2026-05-01T01:00:00Z", "2026-05-01T05:00:00Z"},
        {"0 1,5-7,*/12 * * *", "2026-05-01T07:00:00Z", "2026-05-01T12:00:00Z"},
        {"0 1,5-7,*/12 * * *", "2026-05-01T12:00:00Z", "2026-05-02T00:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, month_and_weekday_names_are_case_insensitive)
{
    static const tick_case_t cases[] = {
        {"0 0 1 jan *", "2026-05-01T00:00:00Z", "2027-01-01T00:00:00Z"},
        {"0 0 1 MAR-may *", "2026-05-01T00:00:00Z", "2027-03-01T00:00:00Z"},
        {"0 0 1 Jun,Dec *", "2026-06-01T00:00:00Z", "2026-12-01T00:00:00Z"},
        {"0 12 * * Sat", "2026-05-01T00:00:00Z", "2026-05-02T12:00:00Z"},
        {"0 12 * * MON-fri", "2026-05-01T12:00:00Z", "2026-05-04T12:00:00Z"},
        {"0 12 * * sun", "2026-05-01T00:00:00Z", "2026-05-03T12:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, weekday_seven_is_sunday)
{
    static const tick_case_t cases[] = {
        {"0 0 * * 7", "2026-05-01T00:00:00Z", "2026-05-03T00:00:00Z"},
        {"0 0 * * 0", "2026-05-01T00:00:00Z", "2026-05-03T00:00:00Z"},
        {"0 0 * * 5-7", "2026-05-02T00:00:00Z", "2026-05-03T00:00:00Z"},
        {"0 0 * * 5-7", "2026-05-03T00:00:00Z", "2026-05-08T00:00:00Z"},
        {"0 0 * * fri-sun", "2026-05-03T00:00:00Z", "2026-05-08T00:00:00Z"},
        {"0 0 * * sat-sun", "2026-05-03T00:00:00Z", "2026-05-09T00:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, six_fields_add_a_leading_seconds_field)
{
    static const tick_case_t cases[] = {
        {"* * * * * *", "2026-05-01T10:00:00Z", "2026-05-01T10:00:01Z"},
        {"* * * * * *", "2026-05-01T10:00:00.500Z", "2026-05-01T10:00:01Z"},
        {"*/10 * * * * *", "2026-05-01T10:00:05Z", "2026-05-01T10:00:10Z"},
        {"30 * * * * *", "2026-05-01T10:00:30Z", "2026-05-01T10:01:30Z"},
        {"15,45 30 9 * * mon", "2026-05-01T00:00:00Z", "2026-05-04T09:30:15Z"},
        {"15,45 30 9 * * mon", "2026-05-04T09:30:15Z", "2026-05-04T09:30:45Z"},
        {"0 0 0 1 1 *", "2026-05-01T00:00:00Z", "2027-01-01T00:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, every_interval_ticks_at_multiples_of_the_period_since_epoch)
{
    static const tick_case_t cases[] = {
        {"@every 2s", "2026-05-01T10:00:00Z", "2026-05-01T10:00:02Z"},
        {"@every 2s", "2026-05-01T10:00:01Z", "2026-05-01T10:00:02Z"},
        {"@every 2s", "2026-05-01T10:00:01.999Z", "2026-05-01T10:00:02Z"},
        {"@every 500ms", "2026-05-01T10:00:00Z", "2026-05-01T10:00:00.500Z"},
        {"@every 500ms", "2026-05-01T10:00:00.200Z", "2026-05-01T10:00:00.500Z"},
        {"@every 500ms", "2026-05-01T10:00:00.500Z", "2026-05-01T10:00:01Z"},
        {"@every 15m", "2026-05-01T10:07:00Z", "2026-05-01T10:15:00Z"},
        {"@every 1h", "2026-05-01T10:00:00Z", "2026-05-01T11:00:00Z"},
        {"@every 1h30m", "2026-01-01T00:00:00Z", "2026-01-01T01:30:00Z"},
        {"@every 1m30s", "2026-05-01T10:00:00Z", "2026-05-01T10:01:30Z"},
        {"@every 7s", "1970-01-01T00:00:00Z", "1970-01-01T00:00:07Z"},
        {"@every 7s", "1969-12-31T23:59:55Z", "1970-01-01T00:00:00Z"},
        {"TZ=Europe/Berlin @every 1h", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, macros_expand_to_their_five_field_forms)
{
    static const tick_case_t cases[] = {
        {"@hourly", "2026-05-01T10:00:00Z", "2026-05-01T11:00:00Z"},
        {"@daily", "2026-05-01T10:00:00Z", "2026-05-02T00:00:00Z"},
        {"@midnight", "2026-05-01T00:00:00Z", "2026-05-02T00:00:00Z"},
        {"@weekly", "2026-05-01T10:00:00Z", "2026-05-03T00:00:00Z"}, /* Sunday */
        {"@monthly", "2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z"},
        {"@yearly", "2026-05-01T10:00:00Z", "2027-01-01T00:00:00Z"},
        {"@annually", "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"},
        {"@DAILY", "2026-05-01T10:00:00Z", "2026-05-02T00:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, dom_and_dow_both_restricted_match_either)
{
    /* 2026-05-01 is a Friday. */
    static const tick_case_t cases[] = {
        {"0 0 13 * fri", "2026-05-01T00:00:00Z", "2026-05-08T00:00:00Z"},
        {"0 0 13 * fri", "2026-05-08T00:00:00Z", "2026-05-13T00:00:00Z"},
        {"0 0 13 * fri", "2026-05-13T00:00:00Z", "2026-05-15T00:00:00Z"},
        {"0 0 1,15 * 3", "2026-05-01T00:00:00Z", "2026-05-06T00:00:00Z"},
        {"0 0 1,15 * 3", "2026-05-13T00:00:00Z", "2026-05-15T00:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, dom_or_dow_starting_with_star_requires_both)
{
    static const tick_case_t cases[] = {
        {"0 0 * * fri", "2026-05-01T00:00:00Z", "2026-05-08T00:00:00Z"},
        {"0 0 13 * *", "2026-05-01T00:00:00Z", "2026-05-13T00:00:00Z"},
        /* crontab(5): a field starting with '*' is unrestricted, so "*\/2"
         * (odd days) and Monday must both hold. */
        {"0 0 */2 * mon", "2026-05-01T00:00:00Z", "2026-05-11T00:00:00Z"},
        {"0 0 13 * */1", "2026-05-01T00:00:00Z", "2026-05-13T00:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, day_31_skips_months_with_fewer_days)
{
    static const tick_case_t cases[] = {
        {"0 0 31 * *", "2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z"},
        {"0 0 31 * *", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z"},
        {"0 0 31 * *", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z"},
        {"0 0 31 * *", "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z"},
        {"0 0 31 * *", "2026-12-31T00:00:00Z", "2027-01-31T00:00:00Z"},
        {"0 0 30 * *", "2026-01-30T00:00:00Z", "2026-03-30T00:00:00Z"},
        {"0 0 29 * *", "2026-01-29T00:00:00Z", "2026-03-29T00:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, feb_29_fires_only_in_leap_years)
{
    static const tick_case_t cases[] = {
        {"0 0 29 2 *", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
        {"0 0 29 2 *", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"},
        {"0 0 29 feb *", "2099-06-01T00:00:00Z", "2104-02-29T00:00:00Z"}, /* 2100 is not leap */
        {"0 0 29 feb *", "2096-03-01T00:00:00Z", NULL},                   /* 2104 is 8 years away */
        {"0 0 29 * *", "2100-02-01T00:00:00Z", "2100-03-29T00:00:00Z"},
        {"0 0 29 * *", "1900-02-01T00:00:00Z", "1900-03-29T00:00:00Z"},
        {"0 0 29 * *", "2000-02-01T00:00:00Z", "2000-02-29T00:00:00Z"},
        {"0 0 * 2 *", "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z"},
        {"0 0 * 2 *", "2100-02-28T00:00:00Z", "2101-02-01T00:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, impossible_expression_returns_minus_one)
{
    static const tick_case_t cases[] = {
        {"0 0 30 2 *", "2026-01-01T00:00:00Z", NULL},
        {"0 0 31 4,6,9,11 *", "2026-01-01T00:00:00Z", NULL},
        {"TZ=Europe/Berlin 0 0 30 2 *", "2026-01-01T00:00:00Z", NULL},
        {"0 0 31 2 mon", "2026-01-01T00:00:00Z", "2026-02-02T00:00:00Z"}, /* OR: Mondays */
    };
    check_ticks(cases, COUNT(cases));
}

/* Europe/Berlin 2026: 02:00 CET -> 03:00 CEST on March 29 (01:00 UTC);
 * America/New_York 2026: 02:00 EST -> 03:00 EDT on March 8 (07:00 UTC). */
Test(cron, dst_gap_time_fires_at_the_end_of_the_gap)
{
    static const tick_case_t cases[] = {
        {"TZ=Europe/Berlin 30 2 * * *", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
        {"TZ=Europe/Berlin 30 2 * * *", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
        {"TZ=Europe/Berlin 30 2 * * *", "2026-03-29T00:59:59.999Z", "2026-03-29T01:00:00Z"},
        {"TZ=Europe/Berlin 0 3 * * *", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
        {"TZ=Europe/Berlin 0 2 * * *", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
        /* 02:15 and 02:45 both fall in the gap: one tick as it ends. */
        {"TZ=Europe/Berlin 15,45 2 * * *", "2026-03-29T00:50:00Z", "2026-03-29T01:00:00Z"},
        {"TZ=Europe/Berlin 15,45 2 * * *", "2026-03-29T01:00:00Z", "2026-03-30T00:15:00Z"},
        {"TZ=Europe/Berlin * * * * *", "2026-03-29T00:59:00Z", "2026-03-29T01:00:00Z"},
        {"TZ=Europe/Berlin * * * * *", "2026-03-29T01:00:00Z", "2026-03-29T01:01:00Z"},
        {"CRON_TZ=America/New_York 30 2 * * *", "2026-03-08T06:00:00Z", "2026-03-08T07:00:00Z"},
        {"CRON_TZ=America/New_York 30 2 * * *", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
        {"TZ=America/New_York 0 9 * * *", "2026-03-07T15:00:00Z", "2026-03-08T13:00:00Z"},
        {"TZ=America/New_York 0 9 * * *", "2026-03-06T15:00:00Z", "2026-03-07T14:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

/* Europe/Berlin 2026: 03:00 CEST -> 02:00 CET on October 25 (01:00 UTC);
 * America/New_York 2026: 02:00 EDT -> 01:00 EST on November 1 (06:00 UTC). */
Test(cron, dst_repeated_time_fires_once_at_its_first_occurrence)
{
    static const tick_case_t cases[] = {
        {"TZ=Europe/Berlin 30 2 * * *", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
        {"TZ=Europe/Berlin 30 2 * * *", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
        /* After is inside the second pass, before its 02:30: still no tick. */
        {"TZ=Europe/Berlin 30 2 * * *", "2026-10-25T01:10:00Z", "2026-10-26T01:30:00Z"},
        {"TZ=Europe/Berlin 0 3 * * *", "2026-10-24T12:00:00Z", "2026-10-25T02:00:00Z"},
        {"TZ=Europe/Berlin 0 0 * * *", "2026-10-24T12:00:00Z", "2026-10-24T22:00:00Z"},
        {"TZ=Europe/Berlin 0 0 * * *", "2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"},
        {"TZ=America/New_York 30 1 * * *", "2026-11-01T04:00:00Z", "2026-11-01T05:30:00Z"},
        {"TZ=America/New_York 30 1 * * *", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
        {"TZ=America/New_York 30 1 * * *", "2026-11-01T06:10:00Z", "2026-11-02T06:30:00Z"},
        {"TZ=America/New_York */10 1 * * *", "2026-11-01T05:50:00Z", "2026-11-02T06:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, dst_repeated_hour_keeps_every_hour_schedules_running)
{
    static const tick_case_t cases[] = {
        {"TZ=Europe/Berlin 0 * * * *", "2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z"},
        {"TZ=Europe/Berlin 0 * * * *", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"},
        {"TZ=Europe/Berlin */30 * * * *", "2026-10-25T00:45:00Z", "2026-10-25T01:00:00Z"},
        {"TZ=Europe/Berlin */30 * * * *", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"},
        {"TZ=America/New_York @hourly", "2026-11-01T05:00:00Z", "2026-11-01T06:00:00Z"},
        {"TZ=America/New_York @hourly", "2026-11-01T06:00:00Z", "2026-11-01T07:00:00Z"},
        {"TZ=America/New_York 30 * * * *", "2026-11-01T05:45:00Z", "2026-11-01T06:30:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, zone_offsets_apply_outside_transitions)
{
    static const tick_case_t cases[] = {
        {"TZ=Asia/Kolkata 0 9 * * *", "2026-05-01T00:00:00Z", "2026-05-01T03:30:00Z"},
        {"TZ=Pacific/Kiritimati 0 0 1 1 *", "2026-06-01T00:00:00Z", "2026-12-31T10:00:00Z"},
        {"TZ=America/New_York 0 0 1 * *", "2026-12-15T00:00:00Z", "2027-01-01T05:00:00Z"},
        {"TZ=UTC 0 0 * * *", "2026-05-01T10:00:00Z", "2026-05-02T00:00:00Z"},
        {"TZ=Australia/Sydney 30 2 * * *", "2026-10-03T12:00:00Z", "2026-10-03T16:00:00Z"},
    };
    check_ticks(cases, COUNT(cases));
}

Test(cron, invalid_expressions_name_the_field_and_the_token)
{
    static const bad_case_t cases[] = {
        {"", "empty expression"},
        {"   ", "empty expression"},
        {"* * * *", "expected 5 or 6 fields, got 4"},
        {"* * * * * * *", "expected 5 or 6 fields, got 7"},
        {"61 * * * *", "minute field: 61 is out of range 0-59"},
        {"* 24 * * *", "hour field: 24 is out of range 0-23"},
        {"* * 0 * *", "day-of-month field: 0 is out of range 1-31"},
        {"* * 32 * *", "day-of-month field: 32 is out of range 1-31"},
        {"* * * 13 *", "month field: 13 is out of range 1-12"},
        {"* * * * 8", "day-of-week field: 8 is out of range 0-7"},
        {"60 * * * * *", "second field: 60 is out of range 0-59"},
        {"99999999999 * * * *", "minute field: 99999999999 is out of range 0-59"},
        {"x * * * *", "minute field: bad value \"x\""},
        {"* * * foo *", "month field: bad value \"foo\""},
        {"* * * * monday", "day-of-week field: bad value \"monday\""},
        {"* * * * jan", "day-of-week field: bad value \"jan\""},
        {"* * mon * *", "day-of-month field: bad value \"mon\""},
        {"1,,2 * * * *", "minute field: empty list item in \"1,,2\""},
        {"1, * * * *", "minute field: empty list item in \"1,\""},
        {"30-10 * * * *", "minute field: range \"30-10\" runs backwards"},
        {"* * * * sat-fri", "day-of-week field: range \"sat-fri\" runs backwards"},
        {"-5 * * * *", "minute field: bad item \"-5\""},
        {"5- * * * *", "minute field: bad item \"5-\""},
        {"*/0 * * * *", "minute field: step 0 is out of range 1-59"},
        {"*/60 * * * *", "minute field: step 60 is out of range 1-59"},
        {"*/x * * * *", "minute field: bad step \"x\""},
        {"*/ * * * *", "minute field: missing step in \"*/\""},
        {"** * * * *", "minute field: bad value \"**\""},
        {"@reboot", "unknown macro \"@reboot\""},
        {"@daily 0", "@daily takes no fields"},
        {"@every", "@every: missing duration"},
        {"@every 0s", "@every: duration must be positive"},
        {"@every 5", "@every: bad duration \"5\" (units: ms, s, m, h)"},
        {"@every 5d", "@every: bad duration \"5d\" (units: ms, s, m, h)"},
        {"@every -1s", "@every: bad duration \"-1s\""},
        {"@every 1s 2s", "@every: unexpected \"2s\" after the duration"},
        {"@every 50000h", "@every: duration \"50000h\" is longer than 5 years"},
        {"TZ=Mars/Olympus_Mons * * * * *", "time zone: unknown zone \"Mars/Olympus_Mons\""},
        {"TZ=Europe * * * * *", "time zone: unknown zone \"Europe\""},
        {"TZ=../../etc/passwd * * * * *", "time zone: bad zone name \"../../etc/passwd\""},
        {"TZ=/etc/localtime * * * * *", "time zone: bad zone name \"/etc/localtime\""},
        {"TZ= * * * * *", "time zone: bad zone name \"\""},
        {"TZ=Europe/Berlin", "empty expression"},
        {"TZ=Europe/Berlin 61 * * * *", "minute field: 61 is out of range 0-59"},
    };

    for (size_t i = 0; i < COUNT(cases); i++) {
        char err[256];
        sk_cron_t *c = sk_cron_parse(cases[i].expr, err, sizeof(err));

        cr_expect_null(c, "\"%s\" should be rejected", cases[i].expr);
        sk_cron_free(c);
        cr_expect_str_eq(err, cases[i].message, "\"%s\"", cases[i].expr);
    }
}

Test(cron, errors_fit_small_buffers_and_tolerate_null)
{
    char small[8];

    cr_assert_null(sk_cron_parse("61 * * * *", small, sizeof(small)));
    cr_assert_str_eq(small, "minute ");
    cr_assert_null(sk_cron_parse("61 * * * *", NULL, 0));
    cr_assert_null(sk_cron_parse(NULL, small, sizeof(small)));
    cr_assert_eq(sk_cron_next(NULL, 0), -1);
    sk_cron_free(NULL);
}

/* Predicates written independently of the parser, checked minute by minute
 * against a chain of sk_cron_next calls. */
static bool pred_a(const struct tm *t) /* "*\/7 3-5,20 1,15 * mon" */
{
    return t->tm_min % 7 == 0 && ((t->tm_hour >= 3 && t->tm_hour <= 5) || t->tm_hour == 20) &&
           (t->tm_mday == 1 || t->tm_mday == 15 || t->tm_wday == 1);
}

static bool pred_b(const struct tm *t) /* "0 12 * jan,jul sat-sun" */
{
    return t->tm_min == 0 && t->tm_hour == 12 && (t->tm_mon == 0 || t->tm_mon == 6) &&
           (t->tm_wday == 6 || t->tm_wday == 0);
}

static bool pred_c(const struct tm *t) /* "30 *\/5 31 * *" */
{
    return t->tm_min == 30 && t->tm_hour % 5 == 0 && t->tm_mday == 31;
}

Test(cron, next_agrees_with_a_minute_by_minute_scan_in_utc)
{
    static const struct {
        const char *expr;
        bool (*pred)(const struct tm *);
    } cases[] = {
        {"*/7 3-5,20 1,15 * mon", pred_a},
        {"0 12 * jan,jul sat-sun", pred_b},
        {"30 */5 31 * *", pred_c},
    };
    const int64_t start = ut_iso_ms("2026-12-20T00:00:00Z") / 1000;
    const int64_t end = ut_iso_ms("2027-08-10T00:00:00Z") / 1000;

    for (size_t i = 0; i < COUNT(cases); i++) {
        char err[256];
        sk_cron_t *c = sk_cron_parse(cases[i].expr, err, sizeof(err));
        int64_t next, ticks = 0;

        cr_assert_not_null(c, "%s", err);
        next = sk_cron_next(c, start * 1000);
        for (int64_t t = start + 60; t < end; t += 60) {
            time_t tt = (time_t)t;
            struct tm tm;

            gmtime_r(&tt, &tm);
            if (!cases[i].pred(&tm))
                continue;
            cr_assert_eq(next, t * 1000, "\"%s\": scan says %lld, next says %lld", cases[i].expr,
                         (long long)t, (long long)(next / 1000));
            next = sk_cron_next(c, next);
            ticks++;
        }
        cr_expect_gt(ticks, 5, "\"%s\" ticked %lld times", cases[i].expr, (long long)ticks);
        sk_cron_free(c);
    }
}

Test(cron, next_restores_the_callers_tz)
{
    char err[256];
    sk_cron_t *c = sk_cron_parse("TZ=Asia/Tokyo 0 9 * * *", err, sizeof(err));

    cr_assert_not_null(c, "%s", err);
    setenv("TZ", "America/Chicago", 1);
    cr_expect_eq(sk_cron_next(c, ut_iso_ms("2026-04-30T12:00:00Z")),
                 ut_iso_ms("2026-05-01T00:00:00Z"));
    cr_expect_str_eq(getenv("TZ"), "America/Chicago");
    unsetenv("TZ");
    cr_expect_eq(sk_cron_next(c, ut_iso_ms("2026-05-01T00:00:00Z")),
                 ut_iso_ms("2026-05-02T00:00:00Z"));
    cr_expect_null(getenv("TZ"));
    sk_cron_free(c);
}
