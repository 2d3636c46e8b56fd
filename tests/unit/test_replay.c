/*
 * The replay runtime without a database: a tiny engine loop drives
 * sk_ctx_enter() the way worker/sk_exec.c does and checks the contract's
 * counts and outcomes.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "sk_ctx.h"
#include "sk_json.h"

static int n_handler, n_a, n_b, n_after, n_catch, n_inner;

static int body_const(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)ctx;
    if (strcmp(arg, "A") == 0)
        n_a++;
    else
        n_b++;
    return sk_pack_str(out, arg);
}

static int two_steps(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *a, *b;

    n_handler++;
    SK_STEP(sk_run(ctx, "a", body_const, "A", &a));
    SK_STEP(sk_run(ctx, "b", body_const, "B", &b));
    n_after++;
    msgpack_pack_array(out, 2);
    sk_pack_object(out, a);
    return sk_pack_object(out, b);
}

static int dup_ids(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *a, *b;

    n_handler++;
    SK_STEP(sk_run(ctx, "same", body_const, "A", &a));
    SK_STEP(sk_run(ctx, "same", body_const, "B", &b));
    msgpack_pack_array(out, 2);
    sk_pack_object(out, a);
    return sk_pack_object(out, b);
}

static int body_fails_with_cause(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)out;
    (void)arg;
    n_a++;
    return sk_raise(ctx, sk_error_set_cause(sk_error_new(ctx, "FooError", "oh no"),
                                            sk_error_new(ctx, "BarError", "the cause")));
}

static int catch_rethrow(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *a;
    int rc;

    (void)out;
    n_handler++;
    rc = sk_run(ctx, "a", body_fails_with_cause, NULL, &a);
    if (rc == SK_FAILED) {
        n_catch++;
        return sk_raise(ctx, sk_ctx_error(ctx));
    }
    SK_STEP(rc);
    n_after++;
    return SK_OK;
}

static int body_fatal(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)out;
    (void)arg;
    n_a++;
    return sk_raise(ctx, sk_error_set_retryable(sk_error_new(ctx, "Fatal", "no"), false));
}

static int non_retryable(sk_ctx_t *ctx, msgpack_packer *out)
{
    (void)out;
    n_handler++;
    SK_STEP(sk_run(ctx, "a", body_fatal, NULL, NULL));
    n_after++;
    return SK_OK;
}

static int body_inner(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)ctx;
    (void)arg;
    n_inner++;
    return sk_pack_int(out, 1);
}

static int body_outer(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)arg;
    n_a++;
    SK_STEP(sk_run(ctx, "inner", body_inner, NULL, NULL));
    return sk_pack_int(out, 2);
}

static int nested(sk_ctx_t *ctx, msgpack_packer *out)
{
    (void)out;
    n_handler++;
    SK_STEP(sk_run(ctx, "outer", body_outer, NULL, NULL));
    return SK_OK;
}

static void need_name(const msgpack_object *data, sk_issues_t *issues)
{
    sk_expect(issues, data, "name", SK_T_STRING);
}

typedef struct {
    int entries;
    sk_entry_t last;
} drive_t;

/* The engine's loop in miniature: replay until the run ends, retrying
 * steps at once; handler failures retried up to max_attempts with the
 * per-op budget. */
static void drive(sk_ctx_t *ctx, drive_t *d)
{
    int attempt = 0, attempt_ops = -1;

    for (;;) {
        cr_assert_eq(sk_ctx_enter(ctx, &d->last), SK_OK);
        d->entries++;
        cr_assert_lt(d->entries, 50, "runaway replay");
        {
            sk_ctx_writes_t w;
            cr_assert_eq(sk_ctx_writes(ctx, &w), SK_OK);
            sk_ctx_committed(ctx, &w);
        }
        switch (d->last.kind) {
        case SK_ENTRY_STEP_DONE:
        case SK_ENTRY_STEP_RETRY:
            continue;
        case SK_ENTRY_FAILED: {
            int final_ops = (int)sk_ctx_final_ops(ctx);
            attempt = attempt_ops == final_ops ? attempt + 1 : 1;
            attempt_ops = final_ops;
            if (d->last.fatal || attempt >= sk_ctx_workflow(ctx)->max_attempts)
                return;
            sk_ctx_set_handler_attempt(ctx, attempt + 1);
            continue;
        }
        default:
            return;
        }
    }
}

static sk_ctx_t *make(const sk_wf_t *wf, const char *json)
{
    msgpack_sbuffer buf;
    char err[128];
    sk_ctx_params_t p = {.wf = wf,
                         .run_id = "00000000-0000-0000-0000-000000000001",
                         .event_id = "00000000-0000-0000-0000-000000000002",
                         .trigger_type = "invoke",
                         .trigger_name = wf->id};
    sk_ctx_t *ctx;

    msgpack_sbuffer_init(&buf);
    cr_assert_eq(sk_json_to_msgpack(json, strlen(json), &buf, err, sizeof(err)), SK_OK);
    p.data = buf.data;
    p.data_len = buf.size;
    ctx = sk_ctx_new(&p);
    msgpack_sbuffer_destroy(&buf);
    cr_assert_not_null(ctx);
    return ctx;
}

static sk_wf_t wf_of(const char *id, sk_handler_fn h, int max_attempts)
{
    sk_wf_t w = {.id = id, .handler = h, .max_attempts = max_attempts, .retry = SK_RETRY(0, 1, 0)};
    return w;
}

static char *to_json(const char *data, size_t len)
{
    char err[128];
    char *s = sk_msgpack_bytes_to_json(data, len, err, sizeof(err));

    cr_assert_not_null(s, "%s", err);
    return s;
}

static void reset_counts(void)
{
    n_handler = n_a = n_b = n_after = n_catch = n_inner = 0;
}

TestSuite(replay, .init = reset_counts);

Test(replay, op_key_is_sha1_of_id_and_index)
{
    char key[41];

    cr_assert_eq(sk_op_key("a", 0, key), SK_OK);
    cr_assert_str_eq(key, "d616db3cc1276a33b72d526499c69671aa7c8ab5");
    cr_assert_eq(sk_op_key("same", 1, key), SK_OK);
    cr_assert_str_eq(key, "c1023fa587daa4753ff5868c7e4bdbd03defda7d");
}

Test(replay, two_sequential_steps_enter_handler_three_times)
{
    sk_wf_t wf = wf_of("two", two_steps, 4);
    sk_ctx_t *ctx = make(&wf, "null");
    drive_t d = {0};
    char *out;

    drive(ctx, &d);
    cr_assert_eq(d.last.kind, SK_ENTRY_COMPLETED);
    cr_assert_eq(n_handler, 3);
    cr_assert_eq(n_a, 1);
    cr_assert_eq(n_b, 1);
    cr_assert_eq(n_after, 1);
    out = to_json(d.last.output, d.last.output_len);
    cr_assert_str_eq(out, "[\"A\",\"B\"]");
    free(out);
    sk_ctx_free(ctx);
}

Test(replay, duplicate_step_ids_are_two_ops)
{
    sk_wf_t wf = wf_of("dup", dup_ids, 4);
    sk_ctx_t *ctx = make(&wf, "null");
    drive_t d = {0};
    char *out;

    drive(ctx, &d);
    cr_assert_eq(n_handler, 3);
    cr_assert_eq(n_a + n_b, 2);
    out = to_json(d.last.output, d.last.output_len);
    cr_assert_str_eq(out, "[\"A\",\"B\"]");
    free(out);
    sk_ctx_free(ctx);
}

Test(replay, exhausted_step_error_caught_and_reraised_keeps_its_cause)
{
    sk_wf_t wf = wf_of("ex", catch_rethrow, 2);
    sk_ctx_t *ctx = make(&wf, "null");
    drive_t d = {0};
    char *err;

    drive(ctx, &d);
    cr_assert_eq(d.last.kind, SK_ENTRY_FAILED);
    cr_assert_eq(n_handler, 4);
    cr_assert_eq(n_a, 2);
    cr_assert_eq(n_catch, 2);
    cr_assert_eq(n_after, 0);
    err = to_json(d.last.error, d.last.error_len);
    cr_assert_str_eq(err, "{\"name\":\"FooError\",\"message\":\"oh no\",\"retryable\":true,"
                          "\"cause\":{\"name\":\"BarError\",\"message\":\"the cause\","
                          "\"retryable\":true}}");
    free(err);
    sk_ctx_free(ctx);
}

Test(replay, non_retryable_step_error_fails_at_once)
{
    sk_wf_t wf = wf_of("nr", non_retryable, 2);
    sk_ctx_t *ctx = make(&wf, "null");
    drive_t d = {0};

    drive(ctx, &d);
    cr_assert_eq(d.last.kind, SK_ENTRY_FAILED);
    cr_assert(d.last.fatal);
    cr_assert_eq(n_handler, 1);
    cr_assert_eq(n_a, 1);
    cr_assert_eq(n_after, 0);
    sk_ctx_free(ctx);
}

Test(replay, nested_step_fails_run_without_running_inner)
{
    sk_wf_t wf = wf_of("nest", nested, 4);
    sk_ctx_t *ctx = make(&wf, "null");
    drive_t d = {0};
    char *err;

    drive(ctx, &d);
    cr_assert_eq(d.last.kind, SK_ENTRY_FAILED);
    cr_assert(d.last.fatal);
    cr_assert_eq(n_handler, 1);
    cr_assert_eq(n_a, 1);
    cr_assert_eq(n_inner, 0);
    err = to_json(d.last.error, d.last.error_len);
    cr_assert(strstr(err, "\"Step is nested inside another step: inner inside outer\"") != NULL,
              "%s", err);
    free(err);
    sk_ctx_free(ctx);
}

Test(replay, validator_rejects_input_with_issue_list)
{
    sk_wf_t wf = wf_of("val", two_steps, 4);
    sk_ctx_t *ctx;
    sk_entry_t e;
    char *err;

    wf.validate = need_name;
    ctx = make(&wf, "{\"name\": 1}");
    cr_assert_eq(sk_ctx_validate(ctx, &e), SK_FAILED);
    cr_assert(e.fatal);
    err = to_json(e.error, e.error_len);
    cr_assert(strstr(err, "\"name\":\"InvalidInputError\",\"message\":\"Invalid input\"") != NULL,
              "%s", err);
    cr_assert(strstr(err, "{\"path\":[\"name\"],\"expected\":\"string\",\"message\":\"Invalid "
                          "input: expected string, received number\"}") != NULL,
              "%s", err);
    cr_assert_eq(n_handler, 0);
    free(err);
    sk_ctx_free(ctx);

    ctx = make(&wf, "{\"name\": \"Ada\"}");
    cr_assert_eq(sk_ctx_validate(ctx, &e), SK_OK);
    sk_ctx_free(ctx);
}

Test(replay, backoff_grows_to_its_cap_with_jitter)
{
    sk_retry_t r = SK_RETRY(100, 2.0, 1000);

    for (int i = 0; i < 20; i++) {
        int d1 = sk_backoff_ms(&r, 1), d3 = sk_backoff_ms(&r, 3), d9 = sk_backoff_ms(&r, 9);
        cr_assert(d1 >= 80 && d1 <= 120, "%d", d1);
        cr_assert(d3 >= 320 && d3 <= 480, "%d", d3);
        cr_assert(d9 >= 800 && d9 <= 1200, "%d", d9);
    }
    r = SK_RETRY(0, 1, 0);
    cr_assert_eq(sk_backoff_ms(&r, 5), 0);
}
