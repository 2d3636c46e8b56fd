#include "ut_time.h"

#include <stdio.h>
#include <time.h>

#include <criterion/criterion.h>

int64_t ut_iso_ms(const char *s)
{
    struct tm tm = {0};
    int ms = 0, n = 0;

    if (sscanf(s, "%d-%d-%dT%d:%d:%d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &n) != 6)
        cr_assert_fail("bad test time \"%s\"", s);
    if (s[n] == '.' && sscanf(s + n, ".%3d", &ms) != 1)
        cr_assert_fail("bad test time \"%s\"", s);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

const char *ut_ms_iso(int64_t ms, char *buf, size_t len)
{
    time_t t;
    struct tm tm;

    if (ms == -1)
        return "-1";
    t = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    gmtime_r(&t, &tm);
    if (snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(ms - (int64_t)t * 1000)) >= (int)len)
        return "(truncated)";
    return buf;
}
