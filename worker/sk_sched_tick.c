/*
 * The scheduler's bookkeeping: which tick fires now, which comes next.
 * Pure functions of a parsed schedule and the time, so the unit tests can
 * run them without a database (tests/unit/test_sched.c).
 */
#include "sk_sched.h"

#include <stdio.h>
#include <time.h>

/* next(from) <= now: a tick lies in (from, now]. */
static int tick_by(const sk_cron_t *c, int64_t from_ms, int64_t now_ms)
{
    int64_t t = sk_cron_next(c, from_ms);

    return t >= 0 && t <= now_ms;
}

int64_t sk_sched_latest(const sk_cron_t *c, int64_t after_ms, int64_t now_ms)
{
    int64_t lo = after_ms, hi = now_ms;

    if (now_ms <= after_ms || !tick_by(c, after_ms, now_ms))
        return -1;
    /*
     * The most recent tick L is next(L - 1), and next(x) <= now holds for
     * every x < L and for no x >= L.  Bisect for the largest such x:
     * invariant tick_by(lo) and !tick_by(hi) (next(now) > now always).
     * Walking tick by tick instead would cost one call per missed tick: a
     * day of a per-second schedule is 86,400.
     */
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (tick_by(c, mid, now_ms))
            lo = mid;
        else
            hi = mid;
    }
    return sk_cron_next(c, lo);
}

int sk_sched_step(const sk_cron_t *c, int64_t *next_ms, int64_t now_ms, int64_t *fire_ms)
{
    *fire_ms = -1;
    if (*next_ms < 0) {
        *next_ms = sk_cron_next(c, now_ms);
        return 0;
    }
    if (*next_ms > now_ms)
        return 0;
    /* Due.  next itself is a tick in [next, now], so there is a latest one. */
    *fire_ms = sk_sched_latest(c, *next_ms - 1, now_ms);
    if (*fire_ms < 0)
        *fire_ms = *next_ms; /* not reached: next is a tick of c */
    *next_ms = sk_cron_next(c, now_ms);
    return 1;
}

int64_t sk_sched_resume(const sk_cron_t *c, int64_t last_ms, int64_t now_ms)
{
    int64_t t = last_ms >= 0 ? sk_cron_next(c, last_ms) : -1;

    /* Never fired, or nothing within 5 years of a very old tick: from now. */
    return t >= 0 ? t : sk_cron_next(c, now_ms);
}

const char *sk_sched_iso(int64_t ms, char *buf, size_t len)
{
    int64_t s = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    time_t t = (time_t)s;
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL ||
        snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms - s * 1000)) >= (int)len) {
        if (len > 0)
            buf[0] = '\0';
    }
    return buf;
}
