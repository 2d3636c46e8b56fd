/*
 * Cron expressions: sk_cron_parse on any text, then sk_cron_next from a
 * fuzzed instant, a few ticks in a row.
 *
 * Input: 8 bytes choosing the start instant (little-endian; the low two bits
 * pick an arbitrary int64 or one within 1900..2200), then the expression.
 *
 * White box: this file includes sk_cron.c to read the parsed masks, so it
 * can check a tick against the fields without trusting the search code.
 * The masks themselves are checked against ref_field() below, a second,
 * deliberately naive reading of the field grammar in sk_cron.h.
 *
 * Properties: parse never crashes and gives a message on error; every tick
 * is strictly after the start, whole seconds (or a multiple of the @every
 * period), within 5 years, and the first tick after (tick - 1) is the tick
 * itself.  Without a zone, the tick matches every field and no matching
 * second lies between the start and the tick (scanned minute by minute over
 * the first day).  In a zone the same holds for local wall time, with the
 * daylight-saving policy of sk_cron.c: a tick whose wall time does not match
 * must end a gap that skipped a matching wall time; a wall time shown twice
 * fires at its first showing only, unless every hour matches.  No infinite
 * loop: libFuzzer's -timeout catches one.
 */
#include "../../shared/sk_cron.c"

#include <stdint.h>

#include "fuzz.h"

#define TICKS    4
#define SCAN_MIN 1440 /* minutes scanned after the start for an earlier match */
#define YEAR_MS  (INT64_C(31556952) * 1000)
#define Y1900_MS (INT64_C(-2208988800) * 1000)

/* ---- a reference reading of one field ------------------------------------------ */

static const char *const ref_names[F_COUNT][13] = {
    [F_MON] = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"},
    [F_DOW] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"},
};
static const int ref_lo[F_COUNT] = {0, 0, 0, 1, 1, 0};
static const int ref_hi[F_COUNT] = {59, 59, 23, 31, 12, 7};

/* s[0..n) as a number or name of field f; -1 when it is neither or out of range. */
static int ref_value(int f, const char *s, size_t n)
{
    int v = 0;

    if (n == 0)
        return -1;
    if (s[0] >= '0' && s[0] <= '9') {
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            v = v * 10 + (s[i] - '0');
            if (v > ref_hi[f])
                return -1;
        }
        return v < ref_lo[f] ? -1 : v;
    }
    for (int i = 0; i < 13 && ref_names[f][i] != NULL; i++) {
        if (n == 3 && strncasecmp(s, ref_names[f][i], 3) == 0)
            return ref_lo[f] + i;
    }
    return -1;
}

/* Bits of field f written as s[0..n), Vixie style; false when invalid. */
static bool ref_field(int f, const char *s, size_t n, uint64_t *out)
{
    uint64_t mask = 0;
    size_t a = 0;

    while (a <= n) {
        size_t b = a, slash, dash;
        int lo, hi, step = 1;

        while (b < n && s[b] != ',')
            b++;
        if (b == a)
            return false;
        for (slash = a; slash < b && s[slash] != '/'; slash++)
            ;
        for (dash = a; dash < slash && s[dash] != '-'; dash++)
            ;
        if (slash - a == 1 && s[a] == '*') {
            lo = ref_lo[f];
            hi = ref_hi[f];
        } else if (dash < slash) {
            lo = ref_value(f, s + a, dash - a);
            hi = ref_value(f, s + dash + 1, slash - dash - 1);
            if (f == F_DOW && hi == 0 && lo > 0)
                hi = 7; /* "fri-sun" */
            if (lo < 0 || hi < 0 || lo > hi)
                return false;
        } else {
            lo = ref_value(f, s + a, slash - a);
            if (lo < 0)
                return false;
            hi = slash < b ? ref_hi[f] : lo;
        }
        if (slash < b) {
            step = ref_value(F_SEC, s + slash + 1, b - slash - 1); /* digits, 0..59 */
            if (step < 1 || step > ref_hi[f] || s[slash + 1] < '0' || s[slash + 1] > '9')
                return false;
        }
        for (int v = lo; v <= hi; v += step)
            mask |= UINT64_C(1) << (f == F_DOW && v == 7 ? 0 : v);
        a = b + 1;
    }
    *out = mask;
    return true;
}

/* A plain field expression: sk_cron_parse and the reference agree on
 * whether it is valid and on every field. */
static void check_fields(const char *expr, const sk_cron_t *c)
{
    const char *w[8];
    size_t n[8];
    int count = 0, first;
    uint64_t mask;
    bool ok = true;

    for (const char *p = expr;;) {
        while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
            p++;
        if (*p == '\0')
            break;
        if (count == 8)
            return; /* too many fields: both reject, nothing to compare */
        w[count] = p;
        while (*p != '\0' && *p != ' ' && !(*p >= '\t' && *p <= '\r'))
            p++;
        n[count] = (size_t)(p - w[count]);
        count++;
    }
    if (count != 5 && count != 6) {
        FUZZ_CHECK(c == NULL, "%s: %d fields accepted", expr, count);
        return;
    }
    first = count == 6 ? F_SEC : F_MIN;
    for (int i = 0; i < count && ok; i++) {
        ok = ref_field(first + i, w[i], n[i], &mask);
        if (ok && c != NULL)
            FUZZ_CHECK(c->mask[first + i] == mask,
                       "%s: field %d is %#llx, the reference reads %#llx", expr, i,
                       (unsigned long long)c->mask[first + i], (unsigned long long)mask);
    }
    FUZZ_CHECK(ok == (c != NULL), "%s: sk_cron_parse %s, the reference %s", expr,
               c ? "accepts" : "rejects", ok ? "accepts" : "rejects");
    if (c != NULL) {
        FUZZ_CHECK(c->dom_star == (w[F_DOM - first][0] == '*') &&
                       c->dow_star == (w[F_DOW - first][0] == '*'),
                   "%s: unrestricted day fields read wrong", expr);
        FUZZ_CHECK(count == 6 || c->mask[F_SEC] == 1, "%s: seconds %#llx", expr,
                   (unsigned long long)c->mask[F_SEC]);
    }
}

/* Do month, day, hour and minute of second t (UTC) match the fields of c? */
static bool utc_minute_matches(const sk_cron_t *c, int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;
    bool dom, dow;

    if (gmtime_r(&tt, &tm) == NULL)
        return false;
    dom = (c->mask[F_DOM] >> tm.tm_mday) & 1;
    dow = (c->mask[F_DOW] >> tm.tm_wday) & 1;
    if (!((c->mask[F_MON] >> (tm.tm_mon + 1)) & 1) || !((c->mask[F_HOUR] >> tm.tm_hour) & 1) ||
        !((c->mask[F_MIN] >> tm.tm_min) & 1))
        return false;
    return c->dom_star || c->dow_star ? dom && dow : dom || dow;
}

static bool utc_matches(const sk_cron_t *c, int64_t t)
{
    return utc_minute_matches(c, t) && ((c->mask[F_SEC] >> (t - floor_div(t, 60) * 60)) & 1);
}

/* The first matching second in (after_s, until_s), by a naive scan of the
 * first SCAN_MIN minutes; -1 if none. */
static int64_t naive_first(const sk_cron_t *c, int64_t after_s, int64_t until_s)
{
    int64_t m = floor_div(after_s, 60) * 60;

    for (int i = 0; i <= SCAN_MIN && m < until_s; i++, m += 60) {
        if (!utc_minute_matches(c, m))
            continue;
        for (int s = 0; s < 60; s++) {
            int64_t t = m + s;

            if (t > after_s && t < until_s && ((c->mask[F_SEC] >> s) & 1))
                return t;
        }
    }
    return -1;
}

/* Local wall second of instant t in the zone TZ points at (see zone_enter). */
static int64_t wall_of(int64_t t)
{
    return t + offset_at(t);
}

static void zone_enter(const char *zone)
{
    char val[ZONE_MAX + 1];

    snprintf(val, sizeof(val), ":%s", zone);
    FUZZ_CHECK(setenv("TZ", val, 1) == 0, "setenv");
    tzset();
}

static void zone_leave(void)
{
    unsetenv("TZ");
    tzset();
}

/* Was wall second w already shown before instant x (a fall-back repeat)? */
static bool shown_before(int64_t x, int64_t w)
{
    int64_t prev = offset_at(x - DAY_S), cur = offset_at(x);

    return prev > cur && wall_of(x - (prev - cur)) == w && offset_at(x - (prev - cur)) == prev;
}

static void check_zoned_tick(const sk_cron_t *c, const char *expr, int64_t after_s, int64_t ts)
{
    const bool every_hour = (c->mask[F_HOUR] & ALL_HOURS) == ALL_HOURS;
    int64_t w = wall_of(ts), m, stop;

    if (utc_matches(c, w)) {
        FUZZ_CHECK(every_hour || !shown_before(ts, w),
                   "%s: tick %lld is the second showing of its wall time", expr,
                   (long long)ts * 1000);
    } else {
        /* Only a gap's end may fire off the fields: some skipped wall time matched. */
        int64_t skipped = wall_of(ts - 1) + 1;
        bool found = false;

        FUZZ_CHECK(skipped < w, "%s: tick %lld (wall %lld) matches no field and ends no gap", expr,
                   (long long)ts * 1000, (long long)w);
        for (int64_t x = skipped; x < w && x < skipped + DAY_S && !found;) {
            int64_t next_min = floor_div(x, 60) * 60 + 60;

            if (utc_minute_matches(c, x)) {
                for (; x < w && x < next_min && !found; x++)
                    found = (c->mask[F_SEC] >> (x - (next_min - 60))) & 1;
            }
            x = next_min;
        }
        FUZZ_CHECK(found, "%s: tick %lld ends a gap where nothing matched", expr,
                   (long long)ts * 1000);
    }

    /* No instant between the start and the tick shows a wall time that should fire.
     * Minute by minute, in whole-minute offsets only (historic LMT offsets are not). */
    m = floor_div(after_s, 60) * 60;
    stop = ts < m + SCAN_MIN * 60 ? ts : m + SCAN_MIN * 60;
    for (int64_t hour_end = m, off = 0; m < stop; m += 60) {
        int64_t wm;

        /* One offset per hour: no zone changes twice within an hour. */
        if (m >= hour_end) {
            hour_end = m + 3600;
            off = offset_at(m);
            if (offset_at(hour_end - 1) != off)
                hour_end = m + 60; /* a transition inside: minute by minute */
        }
        if (hour_end == m + 60 && offset_at(m + 59) != off) {
            hour_end = m; /* the transition is in this very minute: skip it */
            continue;
        }
        if (off % 60 != 0)
            continue;
        wm = m + off;
        if (!utc_minute_matches(c, wm))
            continue;
        for (int sec = 0; sec < 60; sec++) {
            int64_t x = m + sec;

            if (x <= after_s || x >= ts || !((c->mask[F_SEC] >> sec) & 1))
                continue;
            FUZZ_CHECK(!every_hour && shown_before(x, wm + sec),
                       "%s: after %lld the tick is %lld but %lld matches first", expr,
                       (long long)after_s * 1000, (long long)ts * 1000, (long long)x * 1000);
        }
    }
}

static void check_tick(const sk_cron_t *c, const char *expr, int64_t after, int64_t t)
{
    if (t == -1)
        return;
    FUZZ_CHECK(t > after, "%s: tick %lld not after %lld", expr, (long long)t, (long long)after);
    if (c->every_ms > 0) {
        FUZZ_CHECK(t % c->every_ms == 0 && t - after <= c->every_ms, "%s: %lld after %lld", expr,
                   (long long)t, (long long)after);
        return;
    }
    FUZZ_CHECK(t % 1000 == 0, "%s: tick %lld not a whole second", expr, (long long)t);
    FUZZ_CHECK(t / 1000 - floor_div(after, 1000) <= LIMIT_S, "%s: tick %lld beyond 5 years of %lld",
               expr, (long long)t, (long long)after);
    if (c->zone[0] == '\0') {
        int64_t first;

        FUZZ_CHECK(utc_matches(c, t / 1000), "%s: tick %lld does not match the fields", expr,
                   (long long)t);
        first = naive_first(c, floor_div(after, 1000), t / 1000);
        FUZZ_CHECK(first == -1, "%s: after %lld the tick is %lld but %lld matches first", expr,
                   (long long)after, (long long)t, (long long)first * 1000);
    } else {
        zone_enter(c->zone);
        check_zoned_tick(c, expr, floor_div(after, 1000), t / 1000);
        zone_leave();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "", *expr;
    uint64_t raw = 0;
    int64_t after, t, again;
    sk_cron_t *c;

    if (size < 8)
        return 0;
    for (int i = 7; i >= 0; i--)
        raw = (raw << 8) | data[i];
    if ((raw & 3) == 0)
        after = (int64_t)raw;
    else
        after = Y1900_MS + (int64_t)((raw >> 2) % (uint64_t)(300 * YEAR_MS));
    expr = malloc(size - 8 + 1);
    FUZZ_CHECK(expr != NULL, "oom");
    memcpy(expr, data + 8, size - 8);
    expr[size - 8] = '\0';

    c = sk_cron_parse(expr, err, sizeof(err));
    if (strchr(expr, '@') == NULL && strchr(expr, '=') == NULL)
        check_fields(expr, c);
    if (c == NULL) {
        FUZZ_CHECK_ERR(err, sizeof(err));
        free(expr);
        return 0;
    }
    for (int i = 0; i < TICKS; i++) {
        t = sk_cron_next(c, after);
        check_tick(c, expr, after, t);
        if (t == -1)
            break;
        again = sk_cron_next(c, t - 1);
        FUZZ_CHECK(again == t, "%s: after %lld the tick is %lld, after %lld it is %lld", expr,
                   (long long)after, (long long)t, (long long)(t - 1), (long long)again);
        after = t;
    }
    sk_cron_free(c);
    free(expr);
    return 0;
}
