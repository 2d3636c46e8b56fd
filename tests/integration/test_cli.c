/*
 * The `stepkit` command line against a running master that loads both the
 * test workflows and the examples (say-hi): output, exit codes and the
 * JSON view of a run.  DATABASE_URL and STEPKIT_SCHEMA come from the
 * environment, as a user would set them.
 */
#include <criterion/criterion.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

static const char *const with_say_hi[] = {"two-steps", "say-hi", NULL};

static itest_master_t *master_with_examples(void)
{
    itest_master_opts_t opts = {.with_examples = 1};
    itest_master_t *m = itest_master_start(&opts);

    itest_master_wait_ready(m, with_say_hi);
    return m;
}

/* "Hello <name>! Your random number is N." exactly, N in 0..99; returns N. */
static int greeting_number(const char *text, const char *name)
{
    char prefix[128];
    size_t plen;
    char *end;
    long n;

    snprintf(prefix, sizeof(prefix), "Hello %s! Your random number is ", name);
    plen = strlen(prefix);
    cr_assert(strncmp(text, prefix, plen) == 0, "not a greeting for %s: %s", name, text);
    cr_assert(isdigit((unsigned char)text[plen]), "no number in: %s", text);
    n = strtol(text + plen, &end, 10);
    cr_assert_str_eq(end, ".", "greeting ends with '%s'", end);
    cr_assert(n >= 0 && n <= 99, "random number %ld out of 0..99", n);
    return (int)n;
}

static int is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

Test(cli, invoke_prints_the_output_or_the_error, ITEST_FIXTURES)
{
    const char *ok[] = {"invoke", "say-hi", "--data", "{\"name\":\"Ada\"}", NULL};
    const char *bad[] = {"invoke", "say-hi", "--data", "{\"name\":1}", NULL};
    itest_cmd_t r;
    json_t *out;

    master_with_examples();

    itest_cli(ok, &r);
    cr_assert_eq(r.code, 0, "invoke exited %d: %s%s", r.code, r.out, r.err);
    /* One line: the output as a JSON string. */
    cr_assert(strlen(r.out) > 0 && strchr(r.out, '\n') == r.out + strlen(r.out) - 1,
              "not one line: '%s'", r.out);
    out = itest_parse(r.out);
    cr_assert(json_is_string(out), "output is not a JSON string: %s", r.out);
    greeting_number(json_string_value(out), "Ada");
    json_decref(out);
    itest_cmd_free(&r);

    itest_cli(bad, &r);
    cr_expect_eq(r.code, 1, "invalid input: exit %d: %s%s", r.code, r.out, r.err);
    cr_expect(strstr(r.out, "InvalidInputError") != NULL, "no InvalidInputError in: %s%s", r.out,
              r.err);
    itest_cmd_free(&r);
    itest_finish();
}

Test(cli, start_prints_a_run_id_and_run_shows_it_as_json, ITEST_FIXTURES)
{
    const char *start[] = {"start", "say-hi", "--data", "{\"name\":\"Bob\"}", NULL};
    const char *run[] = {"run", NULL, "--json", NULL};
    char run_id[SK_UUID_LEN], key[41], err[256];
    sk_run_result_t res;
    itest_cmd_t r;
    json_t *j, *steps;
    int n;

    master_with_examples();

    itest_cli(start, &r);
    cr_assert_eq(r.code, 0, "start exited %d: %s", r.code, r.err);
    cr_assert_eq(strlen(r.out), 37, "start printed '%s'", r.out);
    cr_assert_eq(r.out[36], '\n');
    snprintf(run_id, sizeof(run_id), "%.36s", r.out);
    cr_assert(is_uuid(run_id), "not a UUID: %s", run_id);
    itest_cmd_free(&r);
    cr_assert_eq(sk_client_wait(itest.client, run_id, 30000, &res, err, sizeof(err)), SK_OK,
                 "wait: %s", err);
    cr_assert_str_eq(res.status, "completed");
    sk_run_result_clear(&res);

    run[1] = run_id;
    itest_cli(run, &r);
    cr_assert_eq(r.code, 0, "run exited %d: %s", r.code, r.err);
    j = itest_parse(r.out); /* exactly one JSON value (jansson rejects trailing text) */
    cr_assert(json_is_object(j), "not a JSON object: %s", r.out);
    cr_expect_str_eq(itest_jstr(j, "run_id"), run_id);
    cr_expect_str_eq(itest_jstr(j, "workflow"), "say-hi");
    cr_expect_str_eq(itest_jstr(j, "status"), "completed");
    cr_assert(json_is_string(itest_jget(j, "output")), "output: %s", r.out);
    n = greeting_number(itest_jstr(j, "output"), "Bob");
    cr_expect(json_is_null(itest_jget(j, "error")), "error is not null: %s", r.out);
    steps = itest_jget(j, "steps");
    cr_assert(json_is_array(steps) && json_array_size(steps) == 1, "steps: %s", r.out);
    cr_expect_str_eq(itest_jstr(j, "steps.0.step_id"), "random-number");
    itest_op_key("random-number", 0, key);
    cr_expect_str_eq(itest_jstr(j, "steps.0.op_key"), key);
    cr_expect_str_eq(itest_jstr(j, "steps.0.status"), "ok");
    cr_expect_eq(json_integer_value(itest_jget(j, "steps.0.attempts")), 1);
    /* The greeting used the recorded step result. */
    cr_expect(json_is_integer(itest_jget(j, "steps.0.output")), "step output: %s", r.out);
    cr_expect_eq(json_integer_value(itest_jget(j, "steps.0.output")), n);
    json_decref(j);
    itest_cmd_free(&r);
    itest_finish();
}

Test(cli, bad_arguments_exit_2, ITEST_FIXTURES)
{
    const char *unknown[] = {"frobnicate", NULL};
    const char *timeout[] = {"invoke", "say-hi", "--timeout", "abc", NULL};
    const char *data[] = {"invoke", "say-hi", "--data", "{bad", NULL};
    const char *const *cases[] = {unknown, timeout, data};
    const char *says[] = {"unknown command", "--timeout", "--data"};

    for (int i = 0; i < 3; i++) {
        itest_cmd_t r;
        itest_cli(cases[i], &r);
        cr_expect_eq(r.code, 2, "case %d exited %d: %s", i, r.code, r.err);
        cr_expect(strstr(r.err, says[i]) != NULL, "case %d: stderr lacks '%s': %s", i, says[i],
                  r.err);
        cr_expect_str_eq(r.out, "", "case %d printed to stdout", i);
        itest_cmd_free(&r);
    }
    itest_finish();
}

/* Deploy in any order: a run of a workflow no master has registered waits
 * (exit 0, a warning); --require-registered keeps the typo guard (exit 1,
 * nothing written). */
Test(cli, unknown_workflow_waits_unless_require_registered, ITEST_FIXTURES)
{
    const char *migrate[] = {"migrate", NULL};
    const char *invoke[] = {"invoke", "no-such-workflow", "--require-registered", NULL};
    const char *start[] = {"start", "no-such-workflow", "--require-registered", NULL};
    const char *const *cases[] = {invoke, start};
    const char *waits[] = {"start", "no-such-workflow", "--data", "{\"a\":1}", NULL};
    const char *waits_invoke[] = {"invoke", "no-such-workflow", "--timeout", "300", NULL};
    const char *misplaced[] = {"signal", "x", "--require-registered", NULL};
    itest_cmd_t r;

    itest_cli(migrate, &r);
    cr_assert_eq(r.code, 0, "migrate: %s", r.err);
    itest_cmd_free(&r);
    for (int i = 0; i < 2; i++) {
        itest_cli(cases[i], &r);
        cr_expect_eq(r.code, 1, "%s exited %d: %s", cases[i][0], r.code, r.err);
        cr_expect(strstr(r.err, "unknown workflow") != NULL, "%s: stderr: %s", cases[i][0], r.err);
        itest_cmd_free(&r);
    }
    cr_expect_eq(itest_long("SELECT count(*) FROM runs"), 0, "a refused run was written");

    itest_cli(waits, &r);
    cr_expect_eq(r.code, 0, "start of an unregistered workflow exited %d: %s", r.code, r.err);
    cr_expect(strstr(r.err, "warning: no master has registered workflow 'no-such-workflow'"),
              "stderr: %s", r.err);
    r.out[strcspn(r.out, "\n")] = '\0';
    cr_expect(is_uuid(r.out), "stdout is not a run id: %s", r.out);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs r JOIN exec_queue q USING (run_id)"
                            " WHERE r.run_id = $1::uuid AND r.status = 'pending'"
                            "   AND q.workflow_id = 'no-such-workflow'",
                            r.out),
                 1, "the run waits in the queue");
    itest_cmd_free(&r);

    itest_cli(waits_invoke, &r);
    cr_expect_eq(r.code, 3, "invoke of an unregistered workflow times out: %d %s", r.code, r.err);
    itest_cmd_free(&r);

    itest_cli(misplaced, &r);
    cr_expect_eq(r.code, 2, "--require-registered on signal: %d", r.code);
    itest_cmd_free(&r);
    itest_finish();
}
