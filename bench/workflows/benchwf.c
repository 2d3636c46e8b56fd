/*
 * benchwf - the workflows `make bench` measures.  The step bodies of the
 * first two do nothing, so what is timed is the engine: claiming,
 * replaying, checkpointing each step and completing the run.
 *
 *   bench-chain3   three sequential sk_run steps "s1", "s2", "s3"
 *   bench-single   one sk_run step "s1"
 *   bench-io3      three sequential steps whose bodies each sleep
 *                  IO_STEP_MS, as a step waiting on a remote service
 *                  would (W7: how a pool of W workers copes with bodies
 *                  that hold a worker without using a CPU)
 *
 * Each body packs nil; each handler returns nil (packs nothing).
 */
#include <errno.h>
#include <time.h>

#include "stepkit.h"

#define IO_STEP_MS 20

static int noop(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)ctx;
    (void)arg;
    return msgpack_pack_nil(out) == 0 ? SK_OK : SK_ERROR;
}

/* Sleep IO_STEP_MS in full: the worker's signals (a sibling's SIGUSR2
 * wake-up) interrupt nanosleep, which then resumes with what is left. */
static int io_wait(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    struct timespec left = {.tv_sec = 0, .tv_nsec = IO_STEP_MS * 1000000L};

    while (nanosleep(&left, &left) != 0) {
        if (errno != EINTR)
            return sk_fail(ctx, "SleepFailed", "nanosleep: errno %d", errno);
    }
    return noop(ctx, out, arg);
}

static int chain3(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    (void)out;
    SK_STEP(sk_run(ctx, "s1", noop, NULL, &r));
    SK_STEP(sk_run(ctx, "s2", noop, NULL, &r));
    SK_STEP(sk_run(ctx, "s3", noop, NULL, &r));
    return SK_OK;
}

static int single(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    (void)out;
    SK_STEP(sk_run(ctx, "s1", noop, NULL, &r));
    return SK_OK;
}

static int io3(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;

    (void)out;
    SK_STEP(sk_run(ctx, "s1", io_wait, NULL, &r));
    SK_STEP(sk_run(ctx, "s2", io_wait, NULL, &r));
    SK_STEP(sk_run(ctx, "s3", io_wait, NULL, &r));
    return SK_OK;
}

SK_WORKFLOWS(reg)
{
    if (sk_register(reg, &(sk_workflow_t){.id = "bench-chain3", .handler = chain3}) != SK_OK ||
        sk_register(reg, &(sk_workflow_t){.id = "bench-single", .handler = single}) != SK_OK)
        return SK_ERROR;
    return sk_register(reg, &(sk_workflow_t){.id = "bench-io3", .handler = io3});
}
