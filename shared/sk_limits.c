#include "sk_limits.h"

#include <stdio.h>
#include <string.h>

int sk_utf8_valid(const char *s, size_t len, size_t *bad)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        unsigned c = p[i];
        size_t need;
        unsigned cp, min;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            goto invalid;
        }
        if (len - i <= need)
            goto invalid;
        for (size_t k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                goto invalid;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            goto invalid;
        i += need + 1;
    }
    return 1;
invalid:
    if (bad != NULL)
        *bad = i;
    return 0;
}

int sk_name_check(const char *what, const char *name, int flags, char *err, size_t errlen)
{
    size_t len, bad = 0;

    if (name == NULL || *name == '\0') {
        snprintf(err, errlen, "%s is required (got %s)", what, name ? "an empty string" : "NULL");
        return SK_ERROR;
    }
    len = strlen(name);
    if (len > SK_NAME_LEN_MAX) {
        /* Quote its start, cut on a character boundary: the message may
         * end up in a run's error, which must stay valid UTF-8. */
        size_t shown = 32;
        while (shown > 0 && !sk_utf8_valid(name, shown, NULL))
            shown--;
        snprintf(err, errlen, "%s is %zu bytes long: the limit is %d bytes (it starts with '%.*s')",
                 what, len, SK_NAME_LEN_MAX, (int)shown, name);
        return SK_ERROR;
    }
    if (!sk_utf8_valid(name, len, &bad)) {
        snprintf(err, errlen, "%s is not valid UTF-8 (bad byte 0x%02x at offset %zu)", what,
                 (unsigned)(unsigned char)name[bad], bad);
        return SK_ERROR;
    }
    if ((flags & SK_NAME_NO_BREAKS) && strpbrk(name, "\n\r") != NULL) {
        snprintf(err, errlen, "%s contains a line break", what);
        return SK_ERROR;
    }
    return SK_OK;
}
