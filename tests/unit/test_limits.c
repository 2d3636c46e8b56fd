/* sk_name_check: the one rule for names (1..255 bytes of UTF-8). */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "sk_limits.h"

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);

    cr_assert_not_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

Test(limits, names_up_to_255_bytes_pass_and_longer_ones_fail)
{
    char err[256];
    char *ok = repeat('a', SK_NAME_LEN_MAX), *big = repeat('b', 100000);

    cr_expect_eq(sk_name_check("signal name", ok, 0, err, sizeof(err)), SK_OK);
    cr_expect_eq(sk_name_check("step id", "a", 0, err, sizeof(err)), SK_OK);
    cr_expect_eq(sk_name_check("signal name", big, 0, err, sizeof(err)), SK_ERROR);
    cr_expect_not_null(strstr(err, "signal name is 100000 bytes long: the limit is 255 bytes"),
                       "%s", err);
    big[SK_NAME_LEN_MAX + 1] = '\0';
    cr_expect_eq(sk_name_check("step id", big, 0, err, sizeof(err)), SK_ERROR);
    cr_expect_not_null(strstr(err, "step id is 256 bytes long"), "%s", err);
    free(ok);
    free(big);
}

Test(limits, empty_null_bad_utf8_and_line_breaks)
{
    char err[256];

    cr_expect_eq(sk_name_check("event name", "", 0, err, sizeof(err)), SK_ERROR);
    cr_expect_str_eq(err, "event name is required (got an empty string)");
    cr_expect_eq(sk_name_check("event name", NULL, 0, err, sizeof(err)), SK_ERROR);
    cr_expect_str_eq(err, "event name is required (got NULL)");
    cr_expect_eq(sk_name_check("step id", "ab\xff", 0, err, sizeof(err)), SK_ERROR);
    cr_expect_str_eq(err, "step id is not valid UTF-8 (bad byte 0xff at offset 2)");
    cr_expect_eq(sk_name_check("workflow id", "a\nb", SK_NAME_NO_BREAKS, err, sizeof(err)),
                 SK_ERROR);
    cr_expect_str_eq(err, "workflow id contains a line break");
    cr_expect_eq(sk_name_check("signal name", "a\nb", 0, err, sizeof(err)), SK_OK);
    cr_expect_eq(sk_name_check("step id", "caf\xc3\xa9 \xf0\x9f\x98\x80", 0, err, sizeof(err)),
                 SK_OK);
}

Test(limits, utf8_validator_refuses_overlong_surrogates_and_truncation)
{
    static const struct {
        const char *s;
        int ok;
    } cases[] = {
        {"plain", 1},      {"\xc3\xa9", 1},     {"\xe2\x82\xac", 1}, {"\xf4\x8f\xbf\xbf", 1},
        {"\xc0\xaf", 0},   {"\xe0\x80\xaf", 0}, {"\xed\xa0\x80", 0}, {"\xf4\x90\x80\x80", 0},
        {"\xc3", 0},       {"\xe2\x82", 0},     {"\x80", 0},         {"\xf8\x88\x80\x80\x80", 0},
        {"a\xc3\xa9z", 1},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_expect_eq(sk_utf8_valid(cases[i].s, strlen(cases[i].s), NULL), cases[i].ok, "case %zu",
                     i);
}

/* The quoted start of an over-long name is cut on a character boundary:
 * the message becomes a run's error, which must stay valid UTF-8. */
Test(limits, message_quotes_a_valid_utf8_prefix)
{
    char err[256], *big = malloc(600);

    cr_assert_not_null(big);
    for (size_t i = 0; i + 1 < 600; i += 2) {
        big[i] = '\xc3';
        big[i + 1] = '\xa9';
    }
    big[599] = '\0';
    big[598] = 'x';
    cr_expect_eq(sk_name_check("step id", big, 0, err, sizeof(err)), SK_ERROR);
    cr_expect(sk_utf8_valid(err, strlen(err), NULL), "%s", err);
    free(big);
}
