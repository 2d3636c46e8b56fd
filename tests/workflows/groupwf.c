/*
 * Retries of a group's kept member (docs/steps.md, "Parallel groups"): the
 * worker that reaches {run k, run o1, run o2} dispatches o1 and o2 and runs
 * k itself, on the run's own item.  Here k fails or kills its worker:
 *   group-kept-retry        k fails (retryable) on attempt 1, no delay
 *   group-kept-retry-delay  the same with a 1 s retry delay (+-20%)
 *   group-kept-crash        k's attempt 1 kills its worker (SIGKILL)
 *   group-kept-fails        k fails every time (max_attempts 3), 200 ms apart:
 *                           with no delay its three attempts could all end
 *                           before another worker had claimed o1 or o2 (seen
 *                           under ASan), and the run failed with o2 never run
 *   group-kept-crashes      k kills its worker every time (max_attempts 3)
 * o1 and o2 sleep 100 ms, so they end (and wake the run) after k's first
 * attempt.  Counts (wfcount.h): "handler", "k", "o1", "o2", "after".
 * Output: ["K", "O1", "O2"].
 */
#include "groupwf.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "wfcount.h"

#define NO_DELAY SK_RETRY(0, 1, 0)

typedef enum { FAIL_ONCE, CRASH_ONCE, FAIL_ALWAYS, CRASH_ALWAYS } how_t;

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The kept member: arg is how it misbehaves (a how_t). */
static int kept_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    how_t how = *(const how_t *)arg;
    int first = sk_attempt(ctx) == 1;

    wf_count(ctx, "k");
    if ((how == CRASH_ONCE && first) || how == CRASH_ALWAYS)
        raise(SIGKILL);
    if ((how == FAIL_ONCE && first) || how == FAIL_ALWAYS)
        return sk_fail(ctx, "FlakyError", "k failed on attempt %d", sk_attempt(ctx));
    return sk_pack_str(out, "K");
}

/* A dispatched member: arg is {step id, output}. */
static int other_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const char *const *spec = arg;

    wf_count(ctx, spec[0]);
    nap_ms(100);
    return sk_pack_str(out, spec[1]);
}

static int kept_group(sk_ctx_t *ctx, msgpack_packer *out, how_t how)
{
    static const char *const o1[] = {"o1", "O1"}, *const o2[] = {"o2", "O2"};
    static const how_t hows[] = {FAIL_ONCE, CRASH_ONCE, FAIL_ALWAYS, CRASH_ALWAYS};
    const msgpack_object *res;
    sk_group_t *g;

    wf_count(ctx, "handler");
    g = sk_group(ctx);
    sk_group_run(g, "k", kept_body, (void *)&hows[how]);
    sk_group_run(g, "o1", other_body, (void *)o1);
    sk_group_run(g, "o2", other_body, (void *)o2);
    SK_STEP(sk_group_await(g, &res));
    wf_count(ctx, "after");
    return sk_pack_object(out, res);
}

static int kept_retry(sk_ctx_t *ctx, msgpack_packer *out)
{
    return kept_group(ctx, out, FAIL_ONCE);
}

static int kept_crash(sk_ctx_t *ctx, msgpack_packer *out)
{
    return kept_group(ctx, out, CRASH_ONCE);
}

static int kept_fails(sk_ctx_t *ctx, msgpack_packer *out)
{
    return kept_group(ctx, out, FAIL_ALWAYS);
}

static int kept_crashes(sk_ctx_t *ctx, msgpack_packer *out)
{
    return kept_group(ctx, out, CRASH_ALWAYS);
}

int groupwf_register(sk_registry_t *reg)
{
    static const sk_workflow_t wfs[] = {
        {.id = "group-kept-retry", .handler = kept_retry, .retry = NO_DELAY},
        {.id = "group-kept-retry-delay", .handler = kept_retry, .retry = SK_RETRY(1000, 1, 0)},
        {.id = "group-kept-crash", .handler = kept_crash, .retry = NO_DELAY},
        {.id = "group-kept-fails",
         .handler = kept_fails,
         .max_attempts = 3,
         .retry = SK_RETRY(200, 1, 0)},
        {.id = "group-kept-crashes", .handler = kept_crashes, .max_attempts = 3, .retry = NO_DELAY},
    };

    for (size_t i = 0; i < sizeof(wfs) / sizeof(wfs[0]); i++) {
        if (sk_register(reg, &wfs[i]) != SK_OK)
            return SK_ERROR;
    }
    return SK_OK;
}
