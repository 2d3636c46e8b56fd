/* Times for table-driven tests: ISO-8601 UTC text <-> Unix ms. */
#ifndef UT_TIME_H
#define UT_TIME_H

#include <stddef.h>
#include <stdint.h>

/* "2026-03-29T01:00:00Z" (optionally ".123") -> Unix ms; fails the test on bad text. */
int64_t ut_iso_ms(const char *s);
/* Unix ms -> "YYYY-MM-DDTHH:MM:SS.mmmZ" in buf ("-1" for -1). */
const char *ut_ms_iso(int64_t ms, char *buf, size_t len);

#endif
