/*
 * sk_cron - cron expressions and their next tick.
 *
 * Forms: five fields "min hour dom month dow", six with a leading seconds
 * field, the macros @yearly @annually @monthly @weekly @daily @midnight
 * @hourly, and "@every <n>{ms|s|m|h}".  An optional leading
 * "TZ=<zone> " (or "CRON_TZ=") names an IANA zone; UTC otherwise.
 * Fields take *, lists (1,2), ranges (1-5), steps (*\/15, 1-30/2) and
 * names (jan-dec, sun-sat; 7 = sunday).  Day of month and day of week
 * follow Vixie cron: when both are restricted, either matching is enough.
 */
#ifndef SK_CRON_H
#define SK_CRON_H

#include <stddef.h>
#include <stdint.h>

typedef struct sk_cron sk_cron_t;

/* Parse; NULL with a message in err when invalid. */
sk_cron_t *sk_cron_parse(const char *expr, char *err, size_t errlen);
void sk_cron_free(sk_cron_t *c);

/* The first tick strictly after `after_ms` (Unix ms, UTC), or -1 if none
 * within the next 5 years.  For @every, ticks are multiples of the period
 * since the Unix epoch. */
int64_t sk_cron_next(const sk_cron_t *c, int64_t after_ms);

#endif
