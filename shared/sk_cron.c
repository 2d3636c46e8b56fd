/*
 * sk_cron.c - parse cron expressions and find their next tick.
 *
 * Representation.  Every field is a bitmask (bit v set when value v
 * matches), so matching is a shift and the search can jump to the next set
 * bit.  Day of week 7 is folded into bit 0 (Sunday) at parse time.
 *
 * Day of month and day of week follow Vixie cron (crontab(5)): when both
 * fields are restricted - neither *starts* with '*', so "*\/2" counts as
 * unrestricted - a day matches when either does; otherwise both must.
 *
 * Search.  The next tick is searched in local wall-clock time ("wall
 * seconds": the seconds since 1970-01-01 00:00 that the local broken-down
 * time would be if read as UTC), skipping by field - month, day, hour,
 * minute, second - never second by second.  A wall time W maps to the
 * instant W - offset.  The zone's offset is constant between transitions,
 * so the search walks the segments between transitions: it finds the first
 * matching W in the current segment's offset and checks whether a
 * transition comes before that instant; if so it restarts at the
 * transition with the new offset.  Transitions are found by probing the
 * offset once per day and bisecting to the second; two transitions within
 * one day would be missed (no zone in tzdata does that).  Without a zone
 * wall time is UTC and no zone functions are called.  A schedule with no
 * tick within 5 years gives -1.
 *
 * Daylight-saving policy:
 *   - Gap (spring forward): a wall time that does not exist fires at the
 *     first instant after the gap, as cronie and Vixie cron run the jobs of
 *     the skipped hour right after the jump.  Several such times (02:15 and
 *     02:45 on a one-hour jump) fire once, at that instant.
 *   - Repeat (fall back): a wall time that occurs twice fires once, at its
 *     first occurrence.  Exception: when the hour field allows every hour
 *     the schedule describes elapsed time, not a time of day, so it keeps
 *     firing during the repeated hour ("0 * * * *" stays hourly,
 *     "*\/5 * * * *" does not stop for an hour).
 *
 * Time zones go through the C library: sk_cron_next points TZ at the zone
 * (setenv + tzset), reads offsets with localtime_r and restores the previous
 * TZ before returning.  TZ is process-global: a mutex serialises callers of
 * this module, but another thread using local time meanwhile would see the
 * zone.  StepKit's master and workers are single-threaded processes, and the
 * function runs once per tick per schedule, so this is acceptable.
 */
#include "sk_cron.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "stepkit.h"

#define DAY_S       INT64_C(86400)
#define LIMIT_S     (5 * 366 * DAY_S) /* "within 5 years", leap days included */
#define ZONE_MAX    128
#define TOKEN_SHOWN 40 /* longest token quoted in an error message */
/* Far beyond any real schedule, yet gmtime_r/localtime_r cannot fail and
 * seconds * 1000 cannot overflow. */
#define TIME_BOUND (INT64_C(1) << 52)

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

#define ALL_HOURS ((UINT64_C(1) << 24) - 1)

struct sk_cron {
    uint64_t mask[F_COUNT]; /* bit v: value v matches */
    bool dom_star;          /* field started with '*': unrestricted for Vixie's rule */
    bool dow_star;
    int64_t every_ms;    /* > 0: "@every", the fields are unused */
    char zone[ZONE_MAX]; /* IANA name; "" = UTC */
};

typedef struct {
    const char *name;
    int min, max;
    const char *const *names; /* three-letter names for min, min+1, ... */
} field_spec_t;

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun", "jul",
                                          "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const dow_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

static const field_spec_t specs[F_COUNT] = {
    [F_SEC] = {"second", 0, 59, NULL},       [F_MIN] = {"minute", 0, 59, NULL},
    [F_HOUR] = {"hour", 0, 23, NULL},        [F_DOM] = {"day-of-month", 1, 31, NULL},
    [F_MON] = {"month", 1, 12, month_names}, [F_DOW] = {"day-of-week", 0, 7, dow_names},
};

static const struct {
    const char *name;
    const char *fields;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

static pthread_mutex_t tz_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- errors and small helpers -------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Format the message into err (if any) and return SK_ERROR. */
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return SK_ERROR;
}

static int shown(size_t len)
{
    return len > TOKEN_SHOWN ? TOKEN_SHOWN : (int)len;
}

static const char *skip_space(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

static const char *skip_word(const char *p)
{
    while (*p != '\0' && !isspace((unsigned char)*p))
        p++;
    return p;
}

static bool word_is(const char *p, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(p, word, len) == 0;
}

/* Floor division: negative times (before 1970) round towards the past. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* ---- fields ---------------------------------------------------------------- */

/* A number or, where the field has them, a name.  Numbers saturate so a
 * long run of digits still reports "out of range" with the token. */
static int parse_value(const field_spec_t *f, const char *s, size_t len, int *out)
{
    if (len == 0)
        return SK_ERROR;
    if (isdigit((unsigned char)s[0])) {
        long v = 0;

        for (size_t i = 0; i < len; i++) {
            if (!isdigit((unsigned char)s[i]))
                return SK_ERROR;
            if (v < 1000000)
                v = v * 10 + (s[i] - '0');
        }
        *out = (int)v;
        return SK_OK;
    }
    for (int i = 0; f->names != NULL && f->names[i] != NULL; i++) {
        if (word_is(s, len, f->names[i])) {
            *out = f->min + i;
            return SK_OK;
        }
    }
    return SK_ERROR;
}

static int parse_bound(const field_spec_t *f, const char *item, size_t ilen, const char *s,
                       size_t len, int *out, char *err, size_t errlen)
{
    if (len == 0)
        return fail(err, errlen, "%s field: bad item \"%.*s\"", f->name, shown(ilen), item);
    if (parse_value(f, s, len, out) != SK_OK)
        return fail(err, errlen, "%s field: bad value \"%.*s\"", f->name, shown(len), s);
    if (*out < f->min || *out > f->max)
        return fail(err, errlen, "%s field: %.*s is out of range %d-%d", f->name, shown(len), s,
                    f->min, f->max);
    return SK_OK;
}

/* One list item: "*", "v", "a-b", each optionally "/step" ("v/step" = v-max). */
static int parse_item(const field_spec_t *f, const char *s, size_t len, uint64_t *mask, char *err,
                      size_t errlen)
{
    const char *slash = memchr(s, '/', len);
    size_t rlen = slash != NULL ? (size_t)(slash - s) : len;
    int lo, hi, step = 1;

    if (rlen == 1 && s[0] == '*') {
        lo = f->min;
        hi = f->max;
    } else {
        const char *dash = memchr(s, '-', rlen);

        if (dash != NULL) {
            if (parse_bound(f, s, len, s, (size_t)(dash - s), &lo, err, errlen) != SK_OK ||
                parse_bound(f, s, len, dash + 1, rlen - (size_t)(dash - s) - 1, &hi, err, errlen) !=
                    SK_OK)
                return SK_ERROR;
            if (f == &specs[F_DOW] && hi == 0 && lo > 0)
                hi = 7; /* "fri-sun": Sunday also closes the week; "sun-sun" stays Sunday */
            if (lo > hi)
                return fail(err, errlen, "%s field: range \"%.*s\" runs backwards", f->name,
                            shown(rlen), s);
        } else {
            if (parse_bound(f, s, len, s, rlen, &lo, err, errlen) != SK_OK)
                return SK_ERROR;
            hi = slash != NULL ? f->max : lo;
        }
    }
    if (slash != NULL) {
        const char *st = slash + 1;
        size_t slen = len - rlen - 1;
        long v = 0;

        if (slen == 0)
            return fail(err, errlen, "%s field: missing step in \"%.*s\"", f->name, shown(len), s);
        for (size_t i = 0; i < slen; i++) {
            if (!isdigit((unsigned char)st[i]))
                return fail(err, errlen, "%s field: bad step \"%.*s\"", f->name, shown(slen), st);
            if (v < 1000000)
                v = v * 10 + (st[i] - '0');
        }
        if (v < 1 || v > f->max)
            return fail(err, errlen, "%s field: step %.*s is out of range 1-%d", f->name,
                        shown(slen), st, f->max);
        step = (int)v;
    }
    for (int v = lo; v <= hi; v += step)
        *mask |= UINT64_C(1) << v;
    return SK_OK;
}

static int parse_field(int idx, const char *s, size_t len, sk_cron_t *c, char *err, size_t errlen)
{
    const field_spec_t *f = &specs[idx];
    uint64_t mask = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != ',')
            continue;
        if (i == start)
            return fail(err, errlen, "%s field: empty list item in \"%.*s\"", f->name, shown(len),
                        s);
        if (parse_item(f, s + start, i - start, &mask, err, errlen) != SK_OK)
            return SK_ERROR;
        start = i + 1;
    }
    if (idx == F_DOW && (mask & (UINT64_C(1) << 7))) {
        mask &= ~(UINT64_C(1) << 7);
        mask |= 1;
    }
    c->mask[idx] = mask;
    if (idx == F_DOM)
        c->dom_star = s[0] == '*';
    else if (idx == F_DOW)
        c->dow_star = s[0] == '*';
    return SK_OK;
}

static int parse_fields(sk_cron_t *c, const char *p, char *err, size_t errlen)
{
    const char *word[F_COUNT];
    size_t wlen[F_COUNT];
    int n = 0, first;

    for (p = skip_space(p); *p != '\0'; p = skip_space(p)) {
        const char *end = skip_word(p);

        if (n < F_COUNT) {
            word[n] = p;
            wlen[n] = (size_t)(end - p);
        }
        n++;
        p = end;
    }
    if (n == 0)
        return fail(err, errlen, "empty expression");
    if (n != 5 && n != 6)
        return fail(err, errlen, "expected 5 or 6 fields, got %d", n);
    /* Five fields: no seconds field, ticks at second 0. */
    first = n == 6 ? F_SEC : F_MIN;
    if (n == 5)
        c->mask[F_SEC] = 1;
    for (int i = 0; i < n; i++) {
        if (parse_field(first + i, word[i], wlen[i], c, err, errlen) != SK_OK)
            return SK_ERROR;
    }
    return SK_OK;
}

/* "@every 1h30m": one or more <n><unit>, units ms s m h. */
static int parse_every(sk_cron_t *c, const char *p, char *err, size_t errlen)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const int64_t max_ms = LIMIT_S * 1000;
    const char *start = skip_space(p), *end = skip_word(start);
    int64_t total = 0;

    if (start == end)
        return fail(err, errlen, "@every: missing duration");
    if (*skip_space(end) != '\0')
        return fail(err, errlen, "@every: unexpected \"%.*s\" after the duration",
                    shown(strlen(skip_space(end))), skip_space(end));
    for (p = start; p < end;) {
        int64_t n = 0;
        size_t ulen = 0;
        int u;

        if (!isdigit((unsigned char)*p))
            return fail(err, errlen, "@every: bad duration \"%.*s\"", shown((size_t)(end - start)),
                        start);
        for (; p < end && isdigit((unsigned char)*p); p++) {
            if (n <= max_ms)
                n = n * 10 + (*p - '0');
        }
        while (p + ulen < end && isalpha((unsigned char)p[ulen]))
            ulen++;
        for (u = 0; u < (int)(sizeof(units) / sizeof(units[0])); u++) {
            if (word_is(p, ulen, units[u].unit))
                break;
        }
        if (u == (int)(sizeof(units) / sizeof(units[0])))
            return fail(err, errlen, "@every: bad duration \"%.*s\" (units: ms, s, m, h)",
                        shown((size_t)(end - start)), start);
        if (n > max_ms / units[u].ms || total + n * units[u].ms > max_ms)
            return fail(err, errlen, "@every: duration \"%.*s\" is longer than 5 years",
                        shown((size_t)(end - start)), start);
        total += n * units[u].ms;
        p += ulen;
    }
    if (total == 0)
        return fail(err, errlen, "@every: duration must be positive");
    c->every_ms = total;
    return SK_OK;
}

static int parse_macro(sk_cron_t *c, const char *p, char *err, size_t errlen)
{
    const char *end = skip_word(p);
    size_t len = (size_t)(end - p);

    if (word_is(p, len, "@every"))
        return parse_every(c, end, err, errlen);
    for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
        if (!word_is(p, len, macros[i].name))
            continue;
        if (*skip_space(end) != '\0')
            return fail(err, errlen, "%s takes no fields", macros[i].name);
        return parse_fields(c, macros[i].fields, err, errlen);
    }
    return fail(err, errlen, "unknown macro \"%.*s\"", shown(len), p);
}

/* glibc quietly falls back to UTC for a zone it cannot load, so check here
 * that the name is a TZif file under the zoneinfo directory. */
static int parse_zone(sk_cron_t *c, const char *name, size_t len, char *err, size_t errlen)
{
    const char *dir = getenv("TZDIR");
    char path[512], magic[4];
    FILE *f;
    size_t got;

    if (len == 0 || len >= ZONE_MAX || name[0] == '/' || name[0] == '.')
        return fail(err, errlen, "time zone: bad zone name \"%.*s\"", shown(len), name);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];

        if (!isalnum(ch) && ch != '/' && ch != '_' && ch != '-' && ch != '+' && ch != '.')
            return fail(err, errlen, "time zone: bad zone name \"%.*s\"", shown(len), name);
        if (ch == '.' && i + 1 < len && name[i + 1] == '.')
            return fail(err, errlen, "time zone: bad zone name \"%.*s\"", shown(len), name);
    }
    if (word_is(name, len, "UTC")) {
        c->zone[0] = '\0';
        return SK_OK;
    }
    if (dir == NULL || dir[0] == '\0')
        dir = "/usr/share/zoneinfo";
    snprintf(path, sizeof(path), "%s/%.*s", dir, (int)len, name);
    f = fopen(path, "rb");
    if (f == NULL)
        return fail(err, errlen, "time zone: unknown zone \"%.*s\"", shown(len), name);
    got = fread(magic, 1, sizeof(magic), f);
    fclose(f);
    if (got != sizeof(magic) || memcmp(magic, "TZif", 4) != 0)
        return fail(err, errlen, "time zone: unknown zone \"%.*s\"", shown(len), name);
    memcpy(c->zone, name, len);
    c->zone[len] = '\0';
    return SK_OK;
}

sk_cron_t *sk_cron_parse(const char *expr, char *err, size_t errlen)
{
    sk_cron_t *c;
    const char *p;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (expr == NULL) {
        fail(err, errlen, "empty expression");
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        fail(err, errlen, "out of memory");
        return NULL;
    }
    p = skip_space(expr);
    if (strncmp(p, "TZ=", 3) == 0 || strncmp(p, "CRON_TZ=", 8) == 0) {
        const char *name = strchr(p, '=') + 1;
        const char *end = skip_word(name);

        if (parse_zone(c, name, (size_t)(end - name), err, errlen) != SK_OK)
            goto failed;
        p = skip_space(end);
    }
    if (*p == '@') {
        if (parse_macro(c, p, err, errlen) != SK_OK)
            goto failed;
    } else if (parse_fields(c, p, err, errlen) != SK_OK) {
        goto failed;
    }
    return c;

failed:
    free(c);
    return NULL;
}

void sk_cron_free(sk_cron_t *c)
{
    free(c);
}

/* ---- calendar -------------------------------------------------------------- */

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Leap years among 1..y-1 (proleptic Gregorian; negative y works too). */
static int64_t leaps_before(int64_t y)
{
    int64_t p = y - 1;

    return floor_div(p, 4) - floor_div(p, 100) + floor_div(p, 400);
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    static const int before[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};

    return 365 * (y - 1970) + leaps_before(y) - leaps_before(1970) + before[m - 1] +
           (m > 2 && is_leap(y)) + d - 1;
}

static bool day_matches(const sk_cron_t *c, int64_t y, int m, int d)
{
    int wday = (int)(((days_from_civil(y, m, d) + 4) % 7 + 7) % 7); /* 1970-01-01: Thursday */
    bool dom = (c->mask[F_DOM] >> d) & 1;
    bool dow = (c->mask[F_DOW] >> wday) & 1;

    if (c->dom_star || c->dow_star)
        return dom && dow;
    return dom || dow;
}

/* Lowest set bit >= from, or -1. */
static int next_bit(uint64_t mask, int from)
{
    if (from > 63)
        return -1;
    mask &= ~UINT64_C(0) << from;
    return mask == 0 ? -1 : __builtin_ctzll(mask);
}

/* First matching wall second >= from, if any <= limit.  Each step either
 * accepts a field or jumps to the next candidate of that field, resetting
 * the smaller ones, so impossible schedules cost a few hundred steps. */
static bool civil_next(const sk_cron_t *c, int64_t from, int64_t limit, int64_t *out)
{
    time_t tt = (time_t)from;
    struct tm tm;
    int64_t y, ylimit;
    int mo, d, h, mi, s, v;

    if (gmtime_r(&tt, &tm) == NULL)
        return false;
    y = (int64_t)tm.tm_year + 1900;
    mo = tm.tm_mon + 1;
    d = tm.tm_mday;
    h = tm.tm_hour;
    mi = tm.tm_min;
    s = tm.tm_sec;
    ylimit = y + (limit - from) / (365 * DAY_S) + 1;
    for (;;) {
        if (s > 59) {
            s = 0;
            mi++;
        }
        if (mi > 59) {
            mi = 0;
            h++;
        }
        if (h > 23) {
            h = 0;
            d++;
        }
        if (d > days_in_month(y, mo)) {
            d = 1;
            mo++;
        }
        if (mo > 12) {
            mo = 1;
            y++;
        }
        if (y > ylimit)
            return false;
        v = next_bit(c->mask[F_MON], mo);
        if (v < 0) {
            y++;
            mo = 1;
            d = 1;
            h = mi = s = 0;
            continue;
        }
        if (v != mo) {
            mo = v;
            d = 1;
            h = mi = s = 0;
        }
        if (!day_matches(c, y, mo, d)) {
            d++;
            h = mi = s = 0;
            continue;
        }
        v = next_bit(c->mask[F_HOUR], h);
        if (v < 0) {
            d++;
            h = mi = s = 0;
            continue;
        }
        if (v != h) {
            h = v;
            mi = s = 0;
        }
        v = next_bit(c->mask[F_MIN], mi);
        if (v < 0) {
            h++;
            mi = s = 0;
            continue;
        }
        if (v != mi) {
            mi = v;
            s = 0;
        }
        v = next_bit(c->mask[F_SEC], s);
        if (v < 0) {
            mi++;
            s = 0;
            continue;
        }
        s = v;
        *out = days_from_civil(y, mo, d) * DAY_S + h * 3600 + mi * 60 + s;
        return *out <= limit;
    }
}

/* ---- time zones ------------------------------------------------------------ */

typedef struct {
    bool had;  /* TZ was set before */
    char *old; /* its value, copied: setenv may free what getenv returned */
} tz_saved_t;

static int tz_enter(const char *zone, tz_saved_t *saved)
{
    const char *old = getenv("TZ");
    char val[ZONE_MAX + 1];

    saved->had = old != NULL;
    saved->old = NULL;
    if (old != NULL) {
        saved->old = strdup(old);
        if (saved->old == NULL)
            return SK_ERROR;
    }
    /* ':' makes glibc read the file and never parse the name as a POSIX rule. */
    snprintf(val, sizeof(val), ":%s", zone);
    if (setenv("TZ", val, 1) != 0) {
        free(saved->old);
        return SK_ERROR;
    }
    tzset();
    return SK_OK;
}

static void tz_leave(tz_saved_t *saved)
{
    if (saved->had)
        setenv("TZ", saved->old, 1);
    else
        unsetenv("TZ");
    free(saved->old);
    tzset();
}

/* UTC offset in seconds at instant t.  localtime_r cannot fail within
 * TIME_BOUND; treat a failure as UTC rather than inventing an error path. */
static int64_t offset_at(int64_t t)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (localtime_r(&tt, &tm) == NULL)
        return 0;
    return tm.tm_gmtoff;
}

/* First instant in (from, to] whose offset differs from `off`. */
static bool find_transition(int64_t from, int64_t to, int64_t off, int64_t *at)
{
    int64_t lo = from;

    while (lo < to) {
        int64_t hi = to - lo > DAY_S ? lo + DAY_S : to;

        if (offset_at(hi) != off) {
            while (hi - lo > 1) {
                int64_t mid = lo + (hi - lo) / 2;

                if (offset_at(mid) == off)
                    lo = mid;
                else
                    hi = mid;
            }
            *at = hi;
            return true;
        }
        lo = hi;
    }
    return false;
}

/* Next tick strictly after second `cur`, in the zone TZ points at. */
static bool zoned_search(const sk_cron_t *c, int64_t cur, int64_t *out)
{
    const int64_t limit = cur + LIMIT_S;
    const bool every_hour = (c->mask[F_HOUR] & ALL_HOURS) == ALL_HOURS;
    int64_t off = offset_at(cur);
    int64_t from = cur + off + 1; /* first wall second still to consider */

    if (!every_hour) {
        /* Inside a repeated hour: wall times shown before the fall-back
         * already fired. */
        int64_t prev = offset_at(cur - DAY_S), at;

        if (prev > off && find_transition(cur - DAY_S, cur, prev, &at) && at + prev > from)
            from = at + prev;
    }
    for (;;) {
        int64_t wall, t, at, next_off;

        if (!civil_next(c, from, limit + DAY_S, &wall))
            return false;
        t = wall - off;
        if (t > limit)
            return false;
        if (!find_transition(cur, t, off, &at)) {
            *out = t;
            return true;
        }
        next_off = offset_at(at);
        if (next_off > off && wall < at + next_off) {
            *out = at; /* wall is in the gap: fire as the gap ends */
            return true;
        }
        /* wall >= at + off, so it is at or past the repeat and the gap;
         * hourly schedules go back and fire through the repeated hour. */
        from = next_off < off && every_hour ? at + next_off : wall;
        cur = at;
        off = next_off;
    }
}

static int64_t every_next(int64_t period, int64_t after_ms)
{
    int64_t q = floor_div(after_ms, period);

    if (q >= INT64_MAX / period)
        return -1;
    return (q + 1) * period;
}

int64_t sk_cron_next(const sk_cron_t *c, int64_t after_ms)
{
    int64_t cur, t;
    tz_saved_t saved;
    bool found = false;

    if (c == NULL)
        return -1;
    if (c->every_ms > 0)
        return every_next(c->every_ms, after_ms);
    cur = floor_div(after_ms, 1000);
    if (cur < -TIME_BOUND || cur > TIME_BOUND)
        return -1;
    if (c->zone[0] == '\0') {
        if (!civil_next(c, cur + 1, cur + LIMIT_S, &t))
            return -1;
        return t * 1000;
    }
    pthread_mutex_lock(&tz_lock);
    if (tz_enter(c->zone, &saved) != SK_OK)
        goto done; /* out of memory copying TZ: no tick can be computed */
    found = zoned_search(c, cur, &t);
    tz_leave(&saved);

done:
    pthread_mutex_unlock(&tz_lock);
    return found ? t * 1000 : -1;
}
