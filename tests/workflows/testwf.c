/*
 * The test workflow library ($(BUILD)/tests/testwf.so): one workflow per
 * case of the contract (STEPKIT-SEMANTICS.md), each counting what the
 * integration suite asserts on.
 *
 * Counting: every handler entry, body execution and after-step code appends
 * one line "<run_id> <key>\n" to the file named by STEPKIT_TEST_COUNTS, with
 * a single write(2) on an O_APPEND descriptor, so lines from concurrent
 * worker processes never interleave.  Keys: "handler", "after", "catch" and
 * the step id for bodies.  Retries are immediate (SK_RETRY(0, 1, 0)) to keep
 * the suite fast: set on every workflow but retry-once, whose step sets it
 * with sk_run_retry.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stepkit.h>

#include "wfcount.h"

#include "cronwf.h"
#include "groupwf.h"
#include "hostilewf.h"
#include "runswf.h"
#include "stepwf.h"
#include "supwf.h"

#define NO_DELAY SK_RETRY(0, 1, 0)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A body that counts itself under its step id and returns the string in arg. */
static int body_str(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const char *const *spec = arg; /* {step id, output} */

    wf_count(ctx, spec[0]);
    return sk_pack_str(out, spec[1]);
}

/* ---- two-steps: handler 3, a 1, b 1, after 1; output ["A", "B"] ------------------- */

static int two_steps(sk_ctx_t *ctx, msgpack_packer *out)
{
    static const char *const a_spec[] = {"a", "A"}, *const b_spec[] = {"b", "B"};
    const msgpack_object *a, *b;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "a", body_str, (void *)a_spec, &a));
    SK_STEP(sk_run(ctx, "b", body_str, (void *)b_spec, &b));
    wf_count(ctx, "after");
    if (msgpack_pack_array(out, 2) != 0 || sk_pack_object(out, a) != SK_OK)
        return SK_ERROR;
    return sk_pack_object(out, b);
}

/* ---- dup-ids: two calls of step "same": "first" then "second" ---------------------- */

static int dup_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const char *result = arg;

    wf_count(ctx, result); /* "first" / "second": which call ran */
    return sk_pack_str(out, result);
}

static int dup_ids(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *x, *y;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "same", dup_body, "first", &x));
    SK_STEP(sk_run(ctx, "same", dup_body, "second", &y));
    wf_count(ctx, "after");
    if (msgpack_pack_array(out, 2) != 0 || sk_pack_object(out, x) != SK_OK)
        return SK_ERROR;
    return sk_pack_object(out, y);
}

/* ---- retry-once: the body fails on attempt 1, succeeds on 2 ------------------------- */

static int flaky_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)arg;
    wf_count(ctx, "flaky");
    if (sk_attempt(ctx) == 1)
        return sk_fail(ctx, "FlakyError", "attempt %d failed", sk_attempt(ctx));
    return sk_pack_fmt(out, "ok on attempt %d", sk_attempt(ctx));
}

static int retry_once(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    wf_count(ctx, "handler");
    /* The workflow keeps the default retry delay (1 s); the step's own
     * zero delay must win. */
    SK_STEP(sk_run_retry(ctx, "flaky", flaky_body, NULL, NO_DELAY, &r));
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

/* ---- exhausted: max_attempts 2, FooError("oh no") caused by BarError ---------------- */

static int foo_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    sk_error_t *e;

    (void)out;
    (void)arg;
    wf_count(ctx, "foo");
    e = sk_error_new(ctx, "FooError", "oh no");
    sk_error_set_cause(e, sk_error_new(ctx, "BarError", "the cause"));
    return sk_raise(ctx, e);
}

static int exhausted(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;
    int rc;

    wf_count(ctx, "handler");
    rc = sk_run(ctx, "foo", foo_body, NULL, &r);
    if (rc == SK_FAILED) {
        wf_count(ctx, "catch");
        return sk_raise(ctx, sk_ctx_error(ctx));
    }
    if (rc != SK_OK)
        return rc;
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

/* ---- non-retryable: max_attempts 2, the body raises a non-retryable error ----------- */

static int fatal_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)out;
    (void)arg;
    wf_count(ctx, "fatal");
    return sk_raise(ctx, sk_error_set_retryable(sk_error_new(ctx, "FatalError", "give up"), false));
}

static int non_retryable(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "fatal", fatal_body, NULL, &r));
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

/* ---- validated: input {"name": string} -------------------------------------------- */

static void validate_name(const msgpack_object *data, sk_issues_t *issues)
{
    sk_expect(issues, data, "name", SK_T_STRING);
}

static int validated(sk_ctx_t *ctx, msgpack_packer *out)
{
    wf_count(ctx, "handler");
    return sk_pack_fmt(out, "hello %s", sk_str(ctx, sk_get(sk_data(ctx), "name")));
}

/* ---- nested: step "outer" calls step "inner" from its body ------------------------- */

static int inner_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)arg;
    wf_count(ctx, "inner");
    return sk_pack_str(out, "inner");
}

static int outer_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const msgpack_object *r;
    int rc;

    (void)arg;
    wf_count(ctx, "outer");
    rc = sk_run(ctx, "inner", inner_body, NULL, &r);
    if (rc != SK_OK)
        return rc; /* the engine fails the run with NestedStepError */
    return sk_pack_object(out, r);
}

static int nested(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "outer", outer_body, NULL, &r));
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

/* ---- always-fails: the handler itself fails every time --------------------------- */

static int always_fails(sk_ctx_t *ctx, msgpack_packer *out)
{
    (void)out;
    wf_count(ctx, "handler");
    return sk_fail(ctx, "AlwaysError", "handler attempt %d", sk_attempt(ctx));
}

/* ---- chain5 / chain3: sequential counted steps (durability, concurrency) ---------- */

static int chain_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const char *id = arg;
    long ms = (long)sk_int(sk_get(sk_data(ctx), "sleep_ms"));

    wf_count(ctx, id);
    if (ms > 0)
        sleep_ms(ms);
    return sk_pack_str(out, id);
}

static int chain(sk_ctx_t *ctx, msgpack_packer *out, int n)
{
    static const char *const ids[] = {"s1", "s2", "s3", "s4", "s5"};
    const msgpack_object *r = NULL;

    wf_count(ctx, "handler");
    for (int i = 0; i < n; i++)
        SK_STEP(sk_run(ctx, ids[i], chain_body, (void *)ids[i], &r));
    wf_count(ctx, "after");
    return sk_pack_int(out, n);
}

static int chain5(sk_ctx_t *ctx, msgpack_packer *out)
{
    return chain(ctx, out, 5);
}

static int chain3(sk_ctx_t *ctx, msgpack_packer *out)
{
    return chain(ctx, out, 3);
}

/* ---- slow-once / slow-twice: executions that outlive their lease -------------------- */

/* Execution n (0-based, from the counts file) of step "slow": executions
 * whose index has a delay in {first_ms, second_ms} sleep that long and
 * return "late" / "slow"; any later one returns "fresh" at once. */
static int slow_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    static const char *const keys[] = {"first_ms", "second_ms"};
    static const char *const results[] = {"late", "slow"};
    const msgpack_object *data = sk_data(ctx);
    int n = wf_counted(ctx, "slow");

    (void)arg;
    wf_count(ctx, "slow");
    if (n < 2 && sk_get(data, keys[n]) != NULL && sk_int(sk_get(data, keys[n])) > 0) {
        sleep_ms((long)sk_int(sk_get(data, keys[n])));
        return sk_pack_str(out, results[n]);
    }
    return sk_pack_str(out, "fresh");
}

/* slow-once: {"first_ms": 1500}; slow-twice: {"first_ms": .., "second_ms": ..}. */
static int slow_steps(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "slow", slow_body, NULL, &r));
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

/* ---- kills-its-worker: a body that takes its process down every time ------------- */

static int killer_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)out;
    (void)arg;
    wf_count(ctx, "killer");
    raise(SIGKILL);
    return SK_OK;
}

static int kills_its_worker(sk_ctx_t *ctx, msgpack_packer *out)
{
    SK_STEP(sk_run(ctx, "killer", killer_body, NULL, NULL));
    return sk_pack_str(out, "survived");
}

SK_WORKFLOWS(reg)
{
    static const sk_workflow_t wfs[] = {
        {.id = "two-steps", .handler = two_steps, .retry = NO_DELAY},
        {.id = "dup-ids", .handler = dup_ids, .retry = NO_DELAY},
        {.id = "retry-once", .handler = retry_once},
        {.id = "exhausted", .handler = exhausted, .max_attempts = 2, .retry = NO_DELAY},
        {.id = "non-retryable", .handler = non_retryable, .max_attempts = 2, .retry = NO_DELAY},
        {.id = "validated", .handler = validated, .validate = validate_name, .retry = NO_DELAY},
        {.id = "nested", .handler = nested, .retry = NO_DELAY},
        {.id = "always-fails", .handler = always_fails, .retry = NO_DELAY},
        {.id = "chain5", .handler = chain5, .retry = NO_DELAY},
        {.id = "chain3", .handler = chain3, .retry = NO_DELAY},
        {.id = "slow-once", .handler = slow_steps, .retry = NO_DELAY},
        {.id = "slow-twice", .handler = slow_steps, .retry = NO_DELAY},
        {.id = "kills-its-worker", .handler = kills_its_worker, .retry = NO_DELAY},
    };

    for (size_t i = 0; i < sizeof(wfs) / sizeof(wfs[0]); i++) {
        if (sk_register(reg, &wfs[i]) != SK_OK)
            return SK_ERROR;
    }
    if (testwf_cron_register(reg) != SK_OK || supwf_register(reg) != SK_OK ||
        groupwf_register(reg) != SK_OK)
        return SK_ERROR;
    if (hostilewf_register(reg) != SK_OK || runswf_register(reg) != SK_OK)
        return SK_ERROR;
    return stepwf_register(reg);
}
