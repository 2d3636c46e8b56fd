/*
 * runs-child:  step "c1" (sleeps data.sleep_ms in its body), then waits for
 *              the signal data.signal (no timeout), then "after".
 * runs-parent: invokes runs-child with its own input (no timeout); counts
 *              "catch" when the child's error reaches it, then re-raises.
 * runs-fail3:  steps s1, s2, s3; s3's first two executions fail (max 2
 *              attempts: the run fails in its third step), later ones pass.
 */
#include "runswf.h"

#include <errno.h>
#include <time.h>

#include "wfcount.h"

#define NO_DELAY SK_RETRY(0, 1, 0)

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int c1_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    long ms = (long)sk_int(sk_get(sk_data(ctx), "sleep_ms"));

    (void)arg;
    wf_count(ctx, "c1");
    if (ms > 0)
        sleep_ms(ms);
    wf_count(ctx, "c1-done");
    return sk_pack_str(out, "C1");
}

static int runs_child(sk_ctx_t *ctx, msgpack_packer *out)
{
    const char *signal = sk_str(ctx, sk_get(sk_data(ctx), "signal"));
    const msgpack_object *r;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "c1", c1_body, NULL, &r));
    SK_STEP(sk_wait_for_signal(ctx, "wait", signal, -1, NULL, &r));
    wf_count(ctx, "after");
    return sk_pack_str(out, "child done");
}

static int runs_parent(sk_ctx_t *ctx, msgpack_packer *out)
{
    msgpack_sbuffer buf;
    msgpack_packer pk;
    const msgpack_object *r;
    int rc;

    wf_count(ctx, "handler");
    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, *sk_data(ctx)) != 0) {
        msgpack_sbuffer_destroy(&buf);
        return SK_ERROR;
    }
    rc = sk_invoke(ctx, "call", "runs-child", buf.data, buf.size, -1, &r);
    msgpack_sbuffer_destroy(&buf);
    if (rc == SK_FAILED) {
        wf_count(ctx, "catch");
        return sk_raise(ctx, sk_ctx_error(ctx));
    }
    if (rc != SK_OK)
        return rc;
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

static int step_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const char *id = arg;

    wf_count(ctx, id);
    return sk_pack_str(out, id);
}

static int s3_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    int n = wf_counted(ctx, "s3");

    (void)arg;
    wf_count(ctx, "s3");
    if (n < 2)
        return sk_fail(ctx, "StepThreeError", "s3 failed (execution %d)", n + 1);
    return sk_pack_str(out, "s3");
}

static int runs_fail3(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *a, *b, *c;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "s1", step_body, "s1", &a));
    SK_STEP(sk_run(ctx, "s2", step_body, "s2", &b));
    SK_STEP(sk_run(ctx, "s3", s3_body, NULL, &c));
    wf_count(ctx, "after");
    if (msgpack_pack_array(out, 3) != 0 || sk_pack_object(out, a) != SK_OK ||
        sk_pack_object(out, b) != SK_OK)
        return SK_ERROR;
    return sk_pack_object(out, c);
}

int runswf_register(sk_registry_t *reg)
{
    static const sk_workflow_t wfs[] = {
        {.id = "runs-child", .handler = runs_child, .retry = NO_DELAY},
        {.id = "runs-parent", .handler = runs_parent, .retry = NO_DELAY},
        {.id = "runs-fail3", .handler = runs_fail3, .max_attempts = 2, .retry = NO_DELAY},
    };

    for (size_t i = 0; i < sizeof(wfs) / sizeof(wfs[0]); i++) {
        if (sk_register(reg, &wfs[i]) != SK_OK)
            return SK_ERROR;
    }
    return SK_OK;
}
