/*
 * sk_log_mask: every form a password takes in a connection string or in a
 * message that echoes one, table-driven; sk_argv_scrub on a real argv.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sk_argv.h"
#include "sk_log.h"

typedef struct {
    const char *in, *want;
} mask_case_t;

static const mask_case_t cases[] = {
    /* URL userinfo */
    {"postgresql://user:secret@host:5432/db", "postgresql://user:***@host:5432/db"},
    {"postgres://user:secret@host/db?sslmode=require",
     "postgres://user:***@host/db?sslmode=require"},
    {"postgresql://u:p%40ss@h/db", "postgresql://u:***@h/db"},
    {"postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"},
    {"postgresql://u:@h/db", "postgresql://u:***@h/db"},
    {"postgresql://user@host/db", "postgresql://user@host/db"},
    {"postgresql://host:5432/db", "postgresql://host:5432/db"},
    {"postgresql:///db?host=/tmp", "postgresql:///db?host=/tmp"},
    /* password= in a URL query */
    {"postgresql://host/db?password=secret", "postgresql://host/db?password=***"},
    {"postgresql://host/db?password=secret&sslmode=require",
     "postgresql://host/db?password=***&sslmode=require"},
    {"postgresql://host/db?sslmode=require&password=s%20t&user=u",
     "postgresql://host/db?sslmode=require&password=***&user=u"},
    {"postgresql://host/db?p%61ssword=secret", "postgresql://host/db?p%61ssword=***"},
    {"postgresql://host/db?%70%41SSWORD=secret&x=1", "postgresql://host/db?%70%41SSWORD=***&x=1"},
    {"postgresql://host/db?sslpassword=keypw", "postgresql://host/db?sslpassword=***"},
    {"postgresql://u:a@h/db?password=b", "postgresql://u:***@h/db?password=***"},
    /* key=value connection strings */
    {"host=h password=secret dbname=d", "host=h password=*** dbname=d"},
    {"password=secret", "password=***"},
    {"host=h password = secret", "host=h password = ***"},
    {"host=h password='x y' dbname=d", "host=h password='***' dbname=d"},
    {"password='it\\'s' user=u", "password='***' user=u"},
    {"password=a\\ b host=h", "password=*** host=h"},
    {"PASSWORD=secret", "PASSWORD=***"},
    {"sslpassword=abc host=h", "sslpassword=*** host=h"},
    {"host=h dbname=d user=u", "host=h dbname=d user=u"},
    {"passwordx=1 password_hint=2", "passwordx=1 password_hint=2"},
    {"host=h password=", "host=h password="},
    /* inside log lines and messages */
    {"event=db_connect_failed url=\"host=h password=pw\" attempt=1",
     "event=db_connect_failed url=\"host=h password=***\" attempt=1"},
    {"url=\"postgresql://u:pw@h/db\" error=\"x\"", "url=\"postgresql://u:***@h/db\" error=\"x\""},
    {"end of string reached when looking for matching \"]\" in IPv6 host address in URI: "
     "\"postgresql://u:pw@[::1\"",
     "end of string reached when looking for matching \"]\" in IPv6 host address in URI: "
     "\"postgresql://u:***@[::1\""},
    {"unexpected argument 'postgresql://a:b@c/d'", "unexpected argument 'postgresql://a:***@c/d'"},
    {"PGPASSWORD=hunter2 psql", "PGPASSWORD=*** psql"},
    {"", ""},
};

Test(mask, every_form_of_password_is_masked)
{
    char out[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = sk_log_mask(cases[i].in, out, sizeof(out));
        cr_expect_str_eq(out, cases[i].want, "case %zu: %s", i, cases[i].in);
        cr_expect_eq(n, strlen(out), "case %zu: returned length", i);
    }
}

Test(mask, null_and_small_buffers_are_safe)
{
    char out[8];

    cr_expect_eq(sk_log_mask(NULL, out, sizeof(out)), 0);
    cr_expect_str_eq(out, "");
    /* Truncated, still NUL-terminated, and the password never shows. */
    sk_log_mask("password=secretvalue", out, sizeof(out));
    cr_expect_str_eq(out, "passwor");
    sk_log_mask("password=secretvalue", out, 1);
    cr_expect_str_eq(out, "");
    cr_expect_eq(sk_log_mask("x", out, 0), 0);
}

Test(mask, url_form_is_the_same_masker)
{
    char out[128];

    sk_log_mask_url("postgresql://u:pw@h/db?password=x", out, sizeof(out));
    cr_expect_str_eq(out, "postgresql://u:***@h/db?password=***");
}

/* libpq echoes a badly encoded password alone, without its key: the
 * password remembered from the connection string is masked wherever it is. */
Test(mask, remembered_secrets_are_masked_anywhere)
{
    char out[256];

    sk_log_forget_secrets();
    sk_log_add_secrets("postgresql://u:p%zzsecret@h/db");
    sk_log_mask("invalid percent-encoded token: \"p%zzsecret\"", out, sizeof(out));
    cr_expect_str_eq(out, "invalid percent-encoded token: \"***\"");

    sk_log_add_secrets("host=h password='two words'");
    sk_log_mask("got two words here", out, sizeof(out));
    cr_expect_str_eq(out, "got *** here");

    /* Decoded forms too. */
    sk_log_add_secrets("postgresql://u:caf%C3%A9pass@h");
    sk_log_mask("pw café pass / cafépass", out, sizeof(out));
    cr_expect_str_eq(out, "pw café pass / ***");

    /* A short secret only where quoted: "ab" must not blank every ab. */
    sk_log_forget_secrets();
    sk_log_add_secrets("password=ab");
    sk_log_mask("token \"ab\" in tab", out, sizeof(out));
    cr_expect_str_eq(out, "token \"***\" in tab");
    sk_log_forget_secrets();
}

Test(argv, database_url_value_is_scrubbed_in_place)
{
    char a0[] = "stepkit-master", a1[] = "--database-url",
         a2[] = "postgresql://u:secret@h/db?password=other", a3[] = "--workers", a4[] = "2",
         a5[] = "--database-url=host=h password=hunter2", a6[] = "--database-url-file",
         a7[] = "/run/secret";
    char *argv[] = {a0, a1, a2, a3, a4, a5, a6, a7, NULL};
    size_t len2 = sizeof(a2) - 1;

    cr_expect_eq(sk_argv_scrub(8, argv, "--database-url"), 2);
    cr_expect_str_eq(a2, "postgresql://u:***@h/db?password=***");
    /* NUL padding up to the original length: nothing of the secret is left. */
    for (size_t i = strlen(a2); i < len2; i++)
        cr_expect_eq(a2[i], '\0', "byte %zu", i);
    cr_expect_str_eq(a5, "--database-url=host=h password=***");
    cr_expect_str_eq(a4, "2");
    cr_expect_str_eq(a7, "/run/secret", "the file's path is not a secret");
}

Test(argv, values_without_password_stay_and_tiny_ones_are_starred)
{
    char a0[] = "stepkit", a1[] = "--database-url", a2[] = "host=h dbname=d",
         a3[] = "--database-url", a4[] = "password=x";
    char *argv[] = {a0, a1, a2, a3, a4, NULL};

    sk_argv_scrub(5, argv, "--database-url");
    cr_expect_str_eq(a2, "host=h dbname=d");
    /* "password=***" is longer than "password=x": every byte starred. */
    cr_expect_str_eq(a4, "**********");
}
