/*
 * Regression tests for what the libFuzzer targets in tests/fuzz/ found.
 * Each test feeds the exact input the fuzzer saved (also kept in
 * tests/fuzz/corpus/<target>/ under the name given) through the same calls
 * and asserts the behaviour the fix or the documentation settled on.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "sk_config.h"
#include "sk_cron.h"
#include "sk_json.h"
#include "stepkit.h"
#include "ut_time.h"

/* fuzz_msgpack_json, crash-nul-in-map-key: a map whose key "i\x17\0ms" holds a
 * NUL renders as JSON, but that JSON does not pack again (jansson cannot read a
 * NUL in a key): a clear error, the buffer untouched, as sk_json.h documents. */
Test(fuzz_regress, nul_in_a_map_key_renders_but_does_not_read_back)
{
    static const unsigned char in[] =
        "\x83\xa5\x6f\x72\x64\x65\x72\xcd\x04\x7f\xa5\x69\x17\x00\x6d\x73\x92\x81\xa3\x73\x6b"
        "\x75\xa3\x41\x2d\x31\x81\xa3\x73\x6b\x75\xa3\x42\x2d\x32\xa4\x70\x61\x69\x64\xc3";
    char err[256] = "";
    msgpack_sbuffer sb;
    char *json;

    json = sk_msgpack_bytes_to_json((const char *)in, sizeof(in) - 1, err, sizeof(err));
    cr_assert_not_null(json, "%s", err);
    cr_expect_str_eq(json, "{\"order\":1151,\"i\\u0017\\u0000ms\":[{\"sku\":\"A-1\"},"
                           "{\"sku\":\"B-2\"}],\"paid\":true}");

    msgpack_sbuffer_init(&sb);
    cr_expect_eq(sk_json_to_msgpack(json, strlen(json), &sb, err, sizeof(err)), SK_ERROR);
    cr_expect(strstr(err, "NUL byte in object key") != NULL, "error: %s", err);
    cr_expect_eq(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
    free(json);
}

/* fuzz_cron, crash-dow-sun-sun-meant-every-day (and -names): the day-of-week
 * range "0-0" ("sun-sun") was widened to 0-7, every day, by the rule that
 * lets "fri-sun" end on Sunday.  The fuzzer's start instant (8 bytes
 * 01 00 .. 00) is 1900-01-01T00:00:00Z, a Monday: the next tick is Sunday. */
Test(fuzz_regress, dow_range_sun_sun_is_sunday_only)
{
    static const char *const exprs[] = {"0 0 * * 0-0", "0 0 * * sun-sun", "0 0 * * 7-0"};
    char err[256] = "";

    for (size_t i = 0; i < sizeof(exprs) / sizeof(exprs[0]); i++) {
        sk_cron_t *c = sk_cron_parse(exprs[i], err, sizeof(err));
        int64_t t;

        cr_assert_not_null(c, "%s: %s", exprs[i], err);
        t = sk_cron_next(c, ut_iso_ms("1900-01-01T00:00:00Z"));
        cr_expect_eq(t, ut_iso_ms("1900-01-07T00:00:00Z"), "%s: tick %lld", exprs[i], (long long)t);
        t = sk_cron_next(c, t);
        cr_expect_eq(t, ut_iso_ms("1900-01-14T00:00:00Z"), "%s: tick %lld", exprs[i], (long long)t);
        sk_cron_free(c);
    }
}

/* fuzz_config, crash-secret-file-cut-at-buffer: DATABASE_URL_FILE naming a
 * file of "host=db", 1100 newlines and "x".  The reader filled its buffer with
 * the start of the file, stripped the newlines that buffer ended with and
 * accepted "host=db", a cut-off value.  A file longer than the buffer is now
 * too long, whatever it ends with. */
Test(fuzz_regress, secret_file_longer_than_the_buffer_is_too_long)
{
    char path[] = "/tmp/stepkit-fuzz-regress.XXXXXX", err[256] = "";
    char *argv[] = {(char *)"stepkit-master", (char *)"--workflows=a", NULL};
    static char content[8 + 1100 + 1];
    FILE *sink = fopen("/dev/null", "w");
    sk_config_t cfg;
    int fd, rc;

    memcpy(content, "host=db", 7);
    memset(content + 7, '\n', 1100);
    content[7 + 1100] = 'x';
    fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, content, 7 + 1100 + 1), 7 + 1100 + 1);
    close(fd);
    unsetenv("DATABASE_URL");
    cr_assert_eq(setenv("DATABASE_URL_FILE", path, 1), 0);

    rc = sk_config_load(&cfg, 2, argv, sink, err, sizeof(err));
    unlink(path);
    fclose(sink);
    cr_expect_eq(rc, SK_ERROR, "accepted database_url '%s'", cfg.database_url);
    cr_expect(strstr(err, "DATABASE_URL_FILE") != NULL && strstr(err, "too long") != NULL,
              "error: %s", err);
}
