/*
 * The master's option parsing (sk_config.c): flags, environment variables
 * and every value parser behind them, through sk_config_load.
 *
 * Input: tokens separated by NUL bytes.
 *   "E<NAME>=<value>"  an environment variable (only DATABASE_URL* and
 *                      STEPKIT_* names are set, and all are unset after)
 *   "F<bytes>"         the contents of the secret file (a memfd)
 *   "L<n>"             the size of the error buffer (default 256)
 *   anything else      the next argv element
 * In values and arguments "@F" stands for the secret file's path, so
 * --database-url-file reads the fuzzed contents instead of whatever path
 * the fuzzer makes up.
 *
 * Properties: no crash; the result is SK_OK, SK_ERROR or SK_AGAIN; an error
 * has a terminated message; an accepted configuration passes
 * sk_config_validate and holds only terminated strings.  When no connection
 * string is given directly, an accepted one read from the secret file is the
 * whole file less its trailing newlines, never a cut-off part of it.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "sk_config.h"
#include "stepkit.h"

#define MAX_ARGS 64
#define MAX_ENV  16

static int secret_fd = -1;
static char secret_path[64];
static FILE *sink;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    secret_fd = memfd_create("fuzz-secret", MFD_CLOEXEC);
    FUZZ_CHECK(secret_fd >= 0, "memfd_create");
    snprintf(secret_path, sizeof(secret_path), "/proc/self/fd/%d", secret_fd);
    sink = fopen("/dev/null", "w");
    FUZZ_CHECK(sink != NULL, "/dev/null");
    /* The caller's own settings must not leak into the runs. */
    unsetenv("DATABASE_URL");
    unsetenv("DATABASE_URL_FILE");
    return 0;
}

/* A copy of s with every "@F" replaced by the secret file's path. */
static char *expand(const char *s)
{
    size_t n = 0, plen = strlen(secret_path);
    char *out, *o;

    for (const char *p = s; *p; p++)
        n += (p[0] == '@' && p[1] == 'F') ? plen : 1;
    out = o = malloc(n + 1);
    FUZZ_CHECK(out != NULL, "oom");
    for (const char *p = s; *p; p++) {
        if (p[0] == '@' && p[1] == 'F') {
            memcpy(o, secret_path, plen);
            o += plen;
            p++;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
    return out;
}

static bool env_name_allowed(const char *name, size_t len)
{
    return (len > 8 && strncmp(name, "STEPKIT_", 8) == 0) ||
           (len >= 12 && strncmp(name, "DATABASE_URL", 12) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy, *argv[MAX_ARGS + 2], *env[MAX_ENV];
    char *err;
    size_t errlen = 256, flen = 0;
    const char *fdata = NULL;
    bool direct_url = false;
    int argc = 0, nenv = 0, rc;
    sk_config_t cfg;

    copy = malloc(size + 1);
    FUZZ_CHECK(copy != NULL, "oom");
    memcpy(copy, data, size);
    copy[size] = '\0';
    FUZZ_CHECK(ftruncate(secret_fd, 0) == 0, "ftruncate");

    argv[argc++] = expand("stepkit-master");
    for (size_t pos = 0; pos < size;) {
        char *tok = copy + pos;
        size_t len = strlen(tok);

        pos += len + 1;
        if (tok[0] == 'E') {
            char *eq = strchr(tok + 1, '=');

            if (eq == NULL || !env_name_allowed(tok + 1, (size_t)(eq - tok - 1)) || nenv == MAX_ENV)
                continue;
            *eq = '\0';
            direct_url |= strcmp(tok + 1, "DATABASE_URL") == 0 && eq[1] != '\0';
            env[nenv] = expand(eq + 1);
            FUZZ_CHECK(setenv(tok + 1, env[nenv], 1) == 0, "setenv");
            free(env[nenv]);
            env[nenv++] = tok + 1; /* the name, to unset afterwards */
        } else if (tok[0] == 'F') {
            /* The token runs to the end of the input: the file may hold NULs. */
            fdata = tok + 1;
            flen = size - (size_t)(tok + 1 - copy);
            FUZZ_CHECK(pwrite(secret_fd, fdata, flen, 0) == (ssize_t)flen, "pwrite");
            break;
        } else if (tok[0] == 'L' && tok[1] >= '0' && tok[1] <= '9') {
            errlen = (size_t)strtoul(tok + 1, NULL, 10) % 512;
        } else if (argc < MAX_ARGS) {
            direct_url |=
                strncmp(tok, "--database-url", 14) == 0 && (tok[14] == '\0' || tok[14] == '=');
            argv[argc++] = expand(tok);
        }
    }
    argv[argc] = NULL;

    /* Exactly errlen bytes, so ASan sees any write past the end. */
    err = malloc(errlen > 0 ? errlen : 1);
    FUZZ_CHECK(err != NULL, "oom");
    rc = sk_config_load(&cfg, argc, argv, sink, err, errlen);
    FUZZ_CHECK(rc == SK_OK || rc == SK_ERROR || rc == SK_AGAIN, "rc %d", rc);
    if (rc == SK_ERROR && errlen > 1) /* one byte only holds the terminator */
        FUZZ_CHECK_ERR(err, errlen);
    else if (rc == SK_ERROR && errlen == 1)
        FUZZ_CHECK(err[0] == '\0', "error message not terminated");
    if (rc == SK_OK) {
        char verr[256] = "";

        FUZZ_CHECK(sk_config_validate(&cfg, verr, sizeof(verr)) == SK_OK,
                   "loaded a configuration that fails validation: %s", verr);
        FUZZ_CHECK(memchr(cfg.database_url, '\0', sizeof(cfg.database_url)) != NULL,
                   "database_url not terminated");
        FUZZ_CHECK(memchr(cfg.schema, '\0', sizeof(cfg.schema)) != NULL, "schema not terminated");
        if (!direct_url && fdata != NULL) {
            size_t ulen = strlen(cfg.database_url), end = flen;

            while (end > 0 && (fdata[end - 1] == '\n' || fdata[end - 1] == '\r'))
                end--;
            FUZZ_CHECK(!(ulen > 0 && ulen < end && memcmp(cfg.database_url, fdata, ulen) == 0),
                       "the connection string is the first %zu of the file's %zu bytes", ulen, end);
        }
    }

    free(err);
    for (int i = 0; i < nenv; i++)
        unsetenv(env[i]);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(copy);
    return 0;
}
