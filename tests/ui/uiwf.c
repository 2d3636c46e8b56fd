/*
 * Workflows of the dashboard's browser tests (tests/ui/run.sh): runs in every
 * state a person looks at.
 *
 *   ui-checkout  validate-cart, reserve-stock, charge-card (100 ms each), a
 *                sleep "cool-down" of data.sleep_ms (0: none), send-receipt.
 *                Completed, or sleeping.
 *   ui-payment   "authorize" fails 3 times (max_attempts 3) with
 *                PaymentDeclined <- GatewayError <- SocketTimeout: the run
 *                fails with that cause chain after prepare succeeded.
 *   ui-approval  "prepare", then waits for the signal data.signal (1 h).
 *   ui-crunch    one step that works for data.ms, with heartbeats: running.
 *   ui-order     "price" then invokes ui-checkout with its input: a parent
 *                and a child.
 */
#include <errno.h>
#include <time.h>

#include "stepkit.h"

#define NO_DELAY SK_RETRY(0, 1, 0)

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int work_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)ctx;
    nap_ms(100);
    return sk_pack_fmt(out, "%s done", (const char *)arg);
}

static int checkout(sk_ctx_t *ctx, msgpack_packer *out)
{
    long long sleep_ms = sk_int(sk_get(sk_data(ctx), "sleep_ms"));
    const msgpack_object *r;

    SK_STEP(sk_run(ctx, "validate-cart", work_body, "validate-cart", &r));
    SK_STEP(sk_run(ctx, "reserve-stock", work_body, "reserve-stock", &r));
    SK_STEP(sk_run(ctx, "charge-card", work_body, "charge-card", &r));
    if (sleep_ms > 0)
        SK_STEP(sk_sleep(ctx, "cool-down", sleep_ms));
    SK_STEP(sk_run(ctx, "send-receipt", work_body, "send-receipt", &r));
    return sk_pack_fmt(out, "order %s shipped", sk_run_id(ctx));
}

static int authorize_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    sk_error_t *timeout, *gateway, *declined;

    (void)out;
    (void)arg;
    nap_ms(50);
    timeout = sk_error_new(ctx, "SocketTimeout", "no answer from 10.0.0.7:443 within 3000 ms");
    gateway = sk_error_new(ctx, "GatewayError", "payment gateway answered 502 <Bad Gateway>");
    sk_error_set_cause(gateway, timeout);
    declined =
        sk_error_new(ctx, "PaymentDeclined", "card ending 4242 declined: issuer unavailable");
    sk_error_set_cause(declined, gateway);
    return sk_raise(ctx, declined);
}

static int payment(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    SK_STEP(sk_run(ctx, "prepare", work_body, "prepare", &r));
    SK_STEP(sk_run(ctx, "authorize", authorize_body, NULL, &r));
    return sk_pack_str(out, "paid");
}

static int approval(sk_ctx_t *ctx, msgpack_packer *out)
{
    const char *signal = sk_str(ctx, sk_get(sk_data(ctx), "signal"));
    const msgpack_object *r;

    SK_STEP(sk_run(ctx, "prepare", work_body, "prepare", &r));
    SK_STEP(
        sk_wait_for_signal(ctx, "await-approval", signal ? signal : "approve", 3600000, NULL, &r));
    SK_STEP(sk_run(ctx, "apply", work_body, "apply", &r));
    return sk_pack_str(out, "applied");
}

static int crunch_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    long long ms = sk_int(sk_get(sk_data(ctx), "ms"));

    (void)arg;
    for (long long done = 0; done < ms; done += 200) {
        nap_ms(200);
        sk_heartbeat(ctx);
    }
    return sk_pack_str(out, "crunched");
}

static int crunch(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    SK_STEP(sk_run(ctx, "crunch", crunch_body, NULL, &r));
    return sk_pack_object(out, r);
}

static int order(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    SK_STEP(sk_run(ctx, "price", work_body, "price", &r));
    SK_STEP(sk_invoke(ctx, "checkout", "ui-checkout", NULL, 0, -1, &r));
    return sk_pack_object(out, r);
}

SK_WORKFLOWS(reg)
{
    static const char *const nightly[] = {"*/5 * * * *", NULL};
    static const char *const placed[] = {"order.placed", NULL};
    static const sk_workflow_t wfs[] = {
        {.id = "ui-checkout", .handler = checkout, .retry = NO_DELAY, .events = placed},
        {.id = "ui-payment", .handler = payment, .max_attempts = 3, .retry = NO_DELAY},
        {.id = "ui-approval", .handler = approval, .retry = NO_DELAY},
        {.id = "ui-crunch", .handler = crunch, .retry = NO_DELAY, .schedules = nightly},
        {.id = "ui-order", .handler = order, .retry = NO_DELAY},
    };

    for (size_t i = 0; i < sizeof(wfs) / sizeof(wfs[0]); i++) {
        if (sk_register(reg, &wfs[i]) != SK_OK)
            return SK_ERROR;
    }
    return SK_OK;
}
