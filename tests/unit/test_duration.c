/* sk_duration: the durations of --retention, --delay, --older-than, --since. */
#include <criterion/criterion.h>

#include "sk_duration.h"
#include "stepkit.h"

static int64_t ms_of(const char *s)
{
    int64_t ms = -1;

    cr_assert_eq(sk_duration_parse(s, &ms), SK_OK, "'%s' refused", s);
    return ms;
}

Test(duration, units_and_sums)
{
    cr_expect_eq(ms_of("0"), 0);
    cr_expect_eq(ms_of("250ms"), 250);
    cr_expect_eq(ms_of("30s"), 30000);
    cr_expect_eq(ms_of("15m"), 900000);
    cr_expect_eq(ms_of("2h"), 7200000);
    cr_expect_eq(ms_of("7d"), 604800000LL);
    cr_expect_eq(ms_of("1h30m"), 5400000);
    cr_expect_eq(ms_of("1m500ms"), 60500);
}

Test(duration, refuses_what_is_not_one)
{
    const char *bad[] = {"", "10", "-5s", "5 s", "5sec", "1.5h", "h", "36500000d", "5s-", NULL};
    int64_t ms = 0;

    for (int i = 0; bad[i] != NULL; i++)
        cr_expect_eq(sk_duration_parse(bad[i], &ms), SK_ERROR, "'%s' accepted", bad[i]);
    cr_expect_eq(sk_duration_parse(NULL, &ms), SK_ERROR);
}
