/*
 * The step-model test workflows: sleep, signals, child runs and parallel
 * groups (STEPKIT-SEMANTICS.md, "Step kinds"), one per case the suite
 * tests/integration/test_steps*.c checks.  Registered by testwf.c's entry
 * point through stepwf_register(), in the same library.
 *
 * Counting as in testwf.c: every handler entry, body execution and
 * after-step code appends "<run_id> <key>\n" to $STEPKIT_TEST_COUNTS with
 * one write(2) on an O_APPEND descriptor.  Keys: "handler", "after",
 * "catch" and the step id for bodies.  Retries are immediate.
 *
 * Inputs (JSON):
 *   step-sleep            {"ms": int}  (default 1000)
 *   step-wait             {"signal": name, "timeout_ms": int}  (default: none)
 *   step-wait-validated   {"signal": name}: the data must be {"approved": boolean}
 *   step-signal-ref       {"signal": name, "url": conninfo, "schema": name,
 *                          "delay_ms": int (default 1000)}
 *   step-send             {"signal": name}
 */
#include "stepwf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stepkit.h>

#include "wfcount.h"
#include <stepkit_client.h>

#define NO_DELAY SK_RETRY(0, 1, 0)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int is_nil(const msgpack_object *o)
{
    return o == NULL || o->type == MSGPACK_OBJECT_NIL;
}

/* input.data[key] as an integer, or `def` when absent. */
static long long data_int(sk_ctx_t *ctx, const char *key, long long def)
{
    const msgpack_object *v = sk_get(sk_data(ctx), key);

    return is_nil(v) ? def : sk_int(v);
}

static int fatal(sk_ctx_t *ctx, const char *name, const char *message)
{
    return sk_raise(ctx, sk_error_set_retryable(sk_error_new(ctx, name, "%s", message), false));
}

/* A body that counts itself under its step id and returns a string:
 * arg is {step id, output}. */
static int body_str(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const char *const *spec = arg;

    wf_count(ctx, spec[0]);
    return sk_pack_str(out, spec[1]);
}

/* The same, after sleeping 1 s. */
static int body_str_slow(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const char *const *spec = arg;

    wf_count(ctx, spec[0]);
    sleep_ms(1000);
    return sk_pack_str(out, spec[1]);
}

/* ---- step-sleep: handler 2, after 1 -------------------------------------------------- */

static int step_sleep(sk_ctx_t *ctx, msgpack_packer *out)
{
    wf_count(ctx, "handler");
    SK_STEP(sk_sleep(ctx, "nap", data_int(ctx, "ms", 1000)));
    wf_count(ctx, "after");
    return sk_pack_str(out, "rested");
}

/* ---- step-quick: one step, for "a sleeping run holds no worker" ---------------------- */

static int step_quick(sk_ctx_t *ctx, msgpack_packer *out)
{
    static const char *const spec[] = {"quick", "quick"};
    const msgpack_object *r;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "quick", body_str, (void *)spec, &r));
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

/* ---- step-wait: wait for input.signal; output {data, signal} or nil ------------------ */

static int step_wait(sk_ctx_t *ctx, msgpack_packer *out)
{
    const char *signal = sk_str(ctx, sk_get(sk_data(ctx), "signal"));
    const msgpack_object *r;

    wf_count(ctx, "handler");
    SK_STEP(sk_wait_for_signal(ctx, "wait", signal, data_int(ctx, "timeout_ms", -1), NULL, &r));
    wf_count(ctx, "after");
    return is_nil(r) ? msgpack_pack_nil(out) : sk_pack_object(out, r);
}

/* ---- step-wait-validated: the signal data must be {"approved": boolean} -------------- */

static void approved_data(const msgpack_object *data, sk_issues_t *issues)
{
    sk_expect(issues, data, "approved", SK_T_BOOL);
}

static int step_wait_validated(sk_ctx_t *ctx, msgpack_packer *out)
{
    const char *signal = sk_str(ctx, sk_get(sk_data(ctx), "signal"));
    const msgpack_object *r;
    int rc;

    wf_count(ctx, "handler");
    rc = sk_wait_for_signal(ctx, "wait", signal, -1, approved_data, &r);
    if (rc == SK_FAILED) {
        wf_count(ctx, "catch");
        return sk_raise(ctx, sk_ctx_error(ctx));
    }
    if (rc != SK_OK)
        return rc;
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

/* ---- step-signal-ref: the reference signal case ------------------------------------- */

/* Sleep 1 s (input.delay_ms), then send input.signal with {"msg": "hi"}
 * through the client API, from outside the step API; output the
 * receiver's run id (or nil). */
static int delay_send(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const msgpack_object *in = sk_data(ctx);
    char err[512], to[SK_UUID_LEN];
    msgpack_sbuffer buf;
    msgpack_packer pk;
    sk_client_t *c;
    int rc;

    (void)arg;
    wf_count(ctx, "delay");
    sleep_ms((long)data_int(ctx, "delay_ms", 1000));
    c = sk_client_connect(sk_str(ctx, sk_get(in, "url")), sk_str(ctx, sk_get(in, "schema")), err,
                          sizeof(err));
    if (c == NULL)
        return fatal(ctx, "ClientError", err);
    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    sk_pack_str(&pk, "msg");
    sk_pack_str(&pk, "hi");
    rc = sk_client_signal(c, sk_str(ctx, sk_get(in, "signal")), buf.data, buf.size, to, err,
                          sizeof(err));
    msgpack_sbuffer_destroy(&buf);
    sk_client_close(c);
    if (rc != SK_OK)
        return fatal(ctx, "ClientError", err);
    return to[0] != '\0' ? sk_pack_str(out, to) : msgpack_pack_nil(out);
}

/* A group: wait for the signal (timeout 2000 ms) while `delay` sends it.
 * Output {"wait": <the wait's result>, "sent_to": <delay's output>}. */
static int step_signal_ref(sk_ctx_t *ctx, msgpack_packer *out)
{
    const char *signal = sk_str(ctx, sk_get(sk_data(ctx), "signal"));
    const msgpack_object *res;
    sk_group_t *g;

    wf_count(ctx, "handler");
    g = sk_group(ctx);
    sk_group_wait_for_signal(g, "wait", signal, 2000, NULL);
    sk_group_run(g, "delay", delay_send, NULL);
    SK_STEP(sk_group_await(g, &res));
    wf_count(ctx, "after");
    msgpack_pack_map(out, 2);
    sk_pack_str(out, "wait");
    sk_pack_object(out, &res->via.array.ptr[0]);
    sk_pack_str(out, "sent_to");
    return sk_pack_object(out, &res->via.array.ptr[1]);
}

/* ---- step-send: send_signal as a step, then more steps that replay it --------------- */

static int step_send(sk_ctx_t *ctx, msgpack_packer *out)
{
    static const char *const next_spec[] = {"next", "next"};
    const char *signal = sk_str(ctx, sk_get(sk_data(ctx), "signal"));
    const msgpack_object *sent, *r;
    msgpack_sbuffer buf;
    msgpack_packer pk;
    int rc;

    wf_count(ctx, "handler");
    /* The data names the sender, so the receiver shows whose send it got. */
    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    sk_pack_str(&pk, "from");
    sk_pack_str(&pk, sk_run_id(ctx));
    rc = sk_send_signal(ctx, "send", signal, buf.data, buf.size, &sent);
    msgpack_sbuffer_destroy(&buf);
    SK_STEP(rc);
    SK_STEP(sk_run(ctx, "next", body_str, (void *)next_spec, &r));
    SK_STEP(sk_sleep(ctx, "linger", 200));
    wf_count(ctx, "after");
    return is_nil(sent) ? msgpack_pack_nil(out) : sk_pack_object(out, sent);
}

/* ---- child runs ------------------------------------------------------------------------ */

/* One step, output "Hello": handler 2, greet 1, after 1. */
static int step_child_hello(sk_ctx_t *ctx, msgpack_packer *out)
{
    static const char *const spec[] = {"greet", "Hello"};
    const msgpack_object *r;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "greet", body_str, (void *)spec, &r));
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

/* The handler itself fails with MyError("oh no") every time. */
static int step_child_fail(sk_ctx_t *ctx, msgpack_packer *out)
{
    int rc;

    wf_count(ctx, "handler");
    rc = sk_fail(ctx, "MyError", "oh no");
    if (rc == SK_FAILED)
        return rc;
    wf_count(ctx, "after"); /* the code after the failing point: never */
    return sk_pack_str(out, "unreachable");
}

/* No step: the handler takes 2 s and ends. */
static int step_child_slow(sk_ctx_t *ctx, msgpack_packer *out)
{
    wf_count(ctx, "handler");
    sleep_ms(2000);
    wf_count(ctx, "after");
    return sk_pack_str(out, "slow done");
}

/* Invoke `workflow` as step "call"; a failure is counted ("catch") and
 * raised again. */
static int invoke_counted(sk_ctx_t *ctx, const char *workflow, int64_t timeout_ms,
                          const msgpack_object **r)
{
    int rc = sk_invoke(ctx, "call", workflow, NULL, 0, timeout_ms, r);

    if (rc == SK_FAILED) {
        wf_count(ctx, "catch");
        return sk_raise(ctx, sk_ctx_error(ctx));
    }
    return rc;
}

/* A `delay` step, the invoke, code after: handler 3, delay 1, after 1. */
static int step_invoke_ok(sk_ctx_t *ctx, msgpack_packer *out)
{
    static const char *const spec[] = {"delay", "delayed"};
    const msgpack_object *d, *r;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "delay", body_str, (void *)spec, &d));
    SK_STEP(invoke_counted(ctx, "step-child-hello", 2000, &r));
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

static int step_invoke_fail(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    wf_count(ctx, "handler");
    SK_STEP(invoke_counted(ctx, "step-child-fail", 2000, &r));
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

static int step_invoke_timeout(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    wf_count(ctx, "handler");
    SK_STEP(invoke_counted(ctx, "step-child-slow", 1000, &r));
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

/* The child ends well before the 1000 ms timeout; the run then sleeps past
 * it, so replays happen after the timeout's time. */
static int step_invoke_late(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    wf_count(ctx, "handler");
    SK_STEP(invoke_counted(ctx, "step-child-hello", 1000, &r));
    SK_STEP(sk_sleep(ctx, "linger", 1500));
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

/* ---- parallel groups ------------------------------------------------------------------- */

/* a; {run p1, run p2, sleep p3 1 s, sleep p4 2 s}; b (1 s); output the group. */
static int step_parallel(sk_ctx_t *ctx, msgpack_packer *out)
{
    static const char *const a[] = {"a", "A"}, *const p1[] = {"p1", "P1"},
                             *const p2[] = {"p2", "P2"}, *const b[] = {"b", "B"};
    const msgpack_object *r, *res;
    sk_group_t *g;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "a", body_str, (void *)a, &r));
    g = sk_group(ctx);
    sk_group_run(g, "p1", body_str, (void *)p1);
    sk_group_run(g, "p2", body_str, (void *)p2);
    sk_group_sleep(g, "p3", 1000);
    sk_group_sleep(g, "p4", 2000);
    SK_STEP(sk_group_await(g, &res));
    SK_STEP(sk_run(ctx, "b", body_str_slow, (void *)b, &r));
    wf_count(ctx, "after");
    return sk_pack_object(out, res);
}

/* Branch 2: p2.1 then p2.2, their outputs joined. */
static int p2_branch(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    static const char *const p21[] = {"p2.1", "P2.1"}, *const p22[] = {"p2.2", "P2.2"};
    const msgpack_object *x, *y;

    (void)arg;
    SK_STEP(sk_run(ctx, "p2.1", body_str, (void *)p21, &x));
    SK_STEP(sk_run(ctx, "p2.2", body_str, (void *)p22, &y));
    return sk_pack_fmt(out, "%s %s", sk_str(ctx, x), sk_str(ctx, y));
}

/* a; {run p1, branch p2.1 -> p2.2}; b; output the group. */
static int step_branch(sk_ctx_t *ctx, msgpack_packer *out)
{
    static const char *const a[] = {"a", "A"}, *const p1[] = {"p1", "P1"}, *const b[] = {"b", "B"};
    const msgpack_object *r, *res;
    sk_group_t *g;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "a", body_str, (void *)a, &r));
    g = sk_group(ctx);
    sk_group_run(g, "p1", body_str, (void *)p1);
    sk_group_branch(g, p2_branch, NULL);
    SK_STEP(sk_group_await(g, &res));
    SK_STEP(sk_run(ctx, "b", body_str, (void *)b, &r));
    wf_count(ctx, "after");
    return sk_pack_object(out, res);
}

int stepwf_register(sk_registry_t *reg)
{
    static const sk_workflow_t wfs[] = {
        {.id = "step-sleep", .handler = step_sleep, .retry = NO_DELAY},
        {.id = "step-quick", .handler = step_quick, .retry = NO_DELAY},
        {.id = "step-wait", .handler = step_wait, .retry = NO_DELAY},
        {.id = "step-wait-validated", .handler = step_wait_validated, .retry = NO_DELAY},
        {.id = "step-signal-ref", .handler = step_signal_ref, .retry = NO_DELAY},
        {.id = "step-send", .handler = step_send, .retry = NO_DELAY},
        {.id = "step-child-hello", .handler = step_child_hello, .retry = NO_DELAY},
        {.id = "step-child-fail", .handler = step_child_fail, .retry = NO_DELAY},
        {.id = "step-child-slow", .handler = step_child_slow, .retry = NO_DELAY},
        {.id = "step-invoke-ok", .handler = step_invoke_ok, .retry = NO_DELAY},
        {.id = "step-invoke-fail", .handler = step_invoke_fail, .retry = NO_DELAY},
        {.id = "step-invoke-timeout", .handler = step_invoke_timeout, .retry = NO_DELAY},
        {.id = "step-invoke-late", .handler = step_invoke_late, .retry = NO_DELAY},
        {.id = "step-parallel", .handler = step_parallel, .retry = NO_DELAY},
        {.id = "step-branch", .handler = step_branch, .retry = NO_DELAY},
    };

    for (size_t i = 0; i < sizeof(wfs) / sizeof(wfs[0]); i++) {
        if (sk_register(reg, &wfs[i]) != SK_OK)
            return SK_ERROR;
    }
    return SK_OK;
}
