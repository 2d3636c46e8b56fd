#include "sk_argv.h"

#include <stdlib.h>
#include <string.h>

#include "sk_log.h"

static void scrub(char *value)
{
    size_t len = strlen(value), n;
    char *masked = malloc(len + 8);

    if (masked == NULL) {
        memset(value, '*', len); /* no memory to be subtle: hide it all */
        return;
    }
    n = sk_log_mask(value, masked, len + 8);
    if (strcmp(masked, value) != 0) {
        if (n <= len) {
            /* Host, user and database stay readable; the password does not. */
            memcpy(value, masked, n);
            memset(value + n, '\0', len - n);
        } else {
            memset(value, '*', len); /* a one-letter password: no room for "***" */
        }
    }
    free(masked);
}

int sk_argv_scrub(int argc, char **argv, const char *flag)
{
    size_t flen = strlen(flag);
    int n = 0;

    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (strncmp(a, flag, flen) != 0)
            continue;
        if (a[flen] == '=') {
            scrub(a + flen + 1);
            n++;
        } else if (a[flen] == '\0' && i + 1 < argc) {
            scrub(argv[++i]);
            n++;
        }
    }
    return n;
}
