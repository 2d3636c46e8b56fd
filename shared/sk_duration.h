/*
 * sk_duration - durations as people write them on a command line:
 * "500ms", "30s", "15m", "2h", "7d", or several run together ("1h30m").
 * Used by --retention (master), --delay, --older-than and --since (CLI).
 */
#ifndef SK_DURATION_H
#define SK_DURATION_H

#include <stdint.h>

/* Parse `s` into milliseconds.  "0" is zero; every other number needs a
 * unit (ms, s, m, h, d).  SK_OK, or SK_ERROR for anything else (empty,
 * unknown unit, negative, beyond 100 years). */
int sk_duration_parse(const char *s, int64_t *ms);

#endif
