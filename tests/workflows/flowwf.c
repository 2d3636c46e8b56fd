/* Flow-control test workflows (see flowwf.h). */
#include "flowwf.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

#include "wfcount.h"

static long long wall_us(void)
{
    struct timespec t;

    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

/* Sleep input.ms and count the interval under input.customer. */
static int interval(sk_ctx_t *ctx)
{
    const msgpack_object *c = sk_get(sk_data(ctx), "customer");
    const msgpack_object *m = sk_get(sk_data(ctx), "ms");
    long ms = m != NULL ? (long)sk_int(m) : 0;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    long long start = wall_us();
    char key[300];

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    snprintf(key, sizeof(key), "iv:%s:%lld:%lld", c != NULL ? sk_str(ctx, c) : "", start,
             wall_us());
    wf_count(ctx, key);
    return SK_OK;
}

static int body_a(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)arg;
    if (interval(ctx) != SK_OK)
        return SK_ERROR;
    return sk_pack_str(out, "a");
}

static int body_b(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const msgpack_object *f = sk_get(sk_data(ctx), "fail");

    (void)arg;
    if (interval(ctx) != SK_OK)
        return SK_ERROR;
    if (f != NULL && f->type == MSGPACK_OBJECT_BOOLEAN && f->via.boolean)
        return sk_raise(
            ctx, sk_error_set_retryable(sk_error_new(ctx, "Refused", "told to fail"), false));
    return sk_pack_str(out, "b");
}

static int flow_call(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    SK_STEP(sk_run(ctx, "a", body_a, NULL, &r));
    SK_STEP(sk_sleep(ctx, "between", 20));
    SK_STEP(sk_run(ctx, "b", body_b, NULL, &r));
    return sk_pack_str(out, "done");
}

static int flow_one(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    SK_STEP(sk_run(ctx, "a", body_a, NULL, &r));
    return sk_pack_str(out, "done");
}

/* A body of flow-steps: counts "st:<customer>:<start us>" at its start
 * (every execution, retries included), then sleeps input.ms. */
static int stamp(sk_ctx_t *ctx)
{
    const msgpack_object *c = sk_get(sk_data(ctx), "customer");
    const msgpack_object *m = sk_get(sk_data(ctx), "ms");
    long ms = m != NULL ? (long)sk_int(m) : 0;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    char key[300];

    snprintf(key, sizeof(key), "st:%s:%lld", c != NULL ? sk_str(ctx, c) : "", wall_us());
    wf_count(ctx, key);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return SK_OK;
}

static int body_s1(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)arg;
    stamp(ctx);
    return sk_pack_str(out, "s1");
}

/* Fails its first execution (retryable) when input.flaky. */
static int body_s2(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const msgpack_object *f = sk_get(sk_data(ctx), "flaky");

    (void)arg;
    stamp(ctx);
    if (f != NULL && f->type == MSGPACK_OBJECT_BOOLEAN && f->via.boolean &&
        wf_counted(ctx, "flaky") == 0) {
        wf_count(ctx, "flaky");
        return sk_raise(ctx, sk_error_new(ctx, "Flaky", "first attempt fails"));
    }
    return sk_pack_str(out, "s2");
}

/* Fails for good when input.fail. */
static int body_s3(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const msgpack_object *f = sk_get(sk_data(ctx), "fail");

    (void)arg;
    stamp(ctx);
    if (f != NULL && f->type == MSGPACK_OBJECT_BOOLEAN && f->via.boolean)
        return sk_raise(
            ctx, sk_error_set_retryable(sk_error_new(ctx, "Refused", "told to fail"), false));
    return sk_pack_str(out, "s3");
}

static int flow_steps(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    SK_STEP(sk_run(ctx, "s1", body_s1, NULL, &r));
    SK_STEP(sk_run(ctx, "s2", body_s2, NULL, &r));
    SK_STEP(sk_run(ctx, "s3", body_s3, NULL, &r));
    return sk_pack_str(out, "done");
}

/* Five run steps at once (a group): the members run on several workers,
 * each taking its own token. */
static int flow_steps_group(sk_ctx_t *ctx, msgpack_packer *out)
{
    static const char *const ids[] = {"g0", "g1", "g2", "g3", "g4"};
    const msgpack_object *res;
    sk_group_t *g = sk_group(ctx);

    for (int i = 0; i < 5; i++)
        sk_group_run(g, ids[i], body_s1, NULL);
    SK_STEP(sk_group_await(g, &res));
    return msgpack_pack_object(out, *res) == 0 ? SK_OK : SK_ERROR;
}

/* Step "a" (counted "iv:..."), then a sleep of input.hold ms holding the
 * key's only slot. */
static int flow_hold(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;
    const msgpack_object *h = sk_get(sk_data(ctx), "hold");

    SK_STEP(sk_run(ctx, "a", body_a, NULL, &r));
    SK_STEP(sk_sleep(ctx, "hold", h != NULL ? sk_int(h) : 0));
    return sk_pack_str(out, "done");
}

int flowwf_register(sk_registry_t *reg)
{
    if (sk_register(reg, &(sk_workflow_t){.id = "flow-call",
                                          .handler = flow_call,
                                          .retry = SK_RETRY(0, 1, 0),
                                          .concurrency = {.key = "customer", .limit = 2}}) ||
        sk_register(reg,
                    &(sk_workflow_t){.id = "flow-rated",
                                     .handler = flow_one,
                                     .rate = {.key = "customer", .limit = 5, .period_ms = 1000}}) ||
        sk_register(reg, &(sk_workflow_t){.id = "flow-plain", .handler = flow_one}) ||
        sk_register(reg, &(sk_workflow_t){.id = "flow-steps",
                                          .handler = flow_steps,
                                          .retry = SK_RETRY(0, 1, 0),
                                          .step_rate = {.key = "customer",
                                                        .limit = FLOWWF_STEP_LIMIT,
                                                        .period_ms = FLOWWF_STEP_PERIOD_MS}}) ||
        sk_register(reg, &(sk_workflow_t){.id = "flow-steps-group",
                                          .handler = flow_steps_group,
                                          .step_rate = {.key = "customer",
                                                        .limit = FLOWWF_STEP_LIMIT,
                                                        .period_ms = FLOWWF_STEP_PERIOD_MS}}) ||
        sk_register(reg, &(sk_workflow_t){.id = "flow-hold",
                                          .handler = flow_hold,
                                          .concurrency = {.key = "customer", .limit = 1}}))
        return SK_ERROR;
    return SK_OK;
}
