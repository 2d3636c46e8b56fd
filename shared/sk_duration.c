#include "sk_duration.h"

#include <ctype.h>
#include <string.h>

#include "stepkit.h"

#define DURATION_MAX_MS (100LL * 365 * 24 * 3600 * 1000)

int sk_duration_parse(const char *s, int64_t *ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    int64_t total = 0;

    if (s == NULL || *s == '\0')
        return SK_ERROR;
    if (strcmp(s, "0") == 0) {
        *ms = 0;
        return SK_OK;
    }
    while (*s != '\0') {
        int64_t n = 0, mult = 0;
        size_t best = 0;

        if (!isdigit((unsigned char)*s))
            return SK_ERROR;
        while (isdigit((unsigned char)*s)) {
            n = n * 10 + (*s++ - '0');
            if (n > DURATION_MAX_MS)
                return SK_ERROR;
        }
        /* The longest unit that matches: "ms" before "m". */
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
            size_t len = strlen(units[i].unit);
            if (strncmp(s, units[i].unit, len) == 0 && len > best) {
                best = len;
                mult = units[i].ms;
            }
        }
        if (best == 0 || n > DURATION_MAX_MS / mult)
            return SK_ERROR;
        total += n * mult;
        if (total > DURATION_MAX_MS)
            return SK_ERROR;
        s += best;
    }
    *ms = total;
    return SK_OK;
}
