/*
 * sk_limits - names checked before anything is written.
 *
 * Workflow ids, event and signal names and step ids land in text columns,
 * several of them in btree indexes, whose rows cannot exceed about 2.7 kB:
 * a longer name would fail at the write, where it looks like a database
 * problem.  Every entry point (authoring API, C client, command line, SQL
 * functions) refuses it first with the same rule: 1..SK_NAME_LEN_MAX bytes
 * of valid UTF-8 (docs/steps.md, docs/sql-api.md).
 */
#ifndef SK_LIMITS_H
#define SK_LIMITS_H

#include <stddef.h>

#include "stepkit.h"

/* Also refuse '\n' and '\r' (workflow ids and event names). */
#define SK_NAME_NO_BREAKS 1

/* SK_OK, or SK_ERROR with "<what> is ..." in err.  `what`: "step id",
 * "signal name", "event name", "workflow id". */
int sk_name_check(const char *what, const char *name, int flags, char *err, size_t errlen);

/* Whether s[0..len) is valid UTF-8 (no overlong forms, surrogates or
 * code points above U+10FFFF); *bad gets the offset of the first bad byte. */
int sk_utf8_valid(const char *s, size_t len, size_t *bad);

#endif
