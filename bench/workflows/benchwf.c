/*
 * benchwf - the workflows `make bench` measures.  Their step bodies do
 * nothing, so what is timed is the engine: claiming, replaying,
 * checkpointing each step and completing the run.
 *
 *   bench-chain3   three sequential sk_run steps "s1", "s2", "s3"
 *   bench-single   one sk_run step "s1"
 *
 * Each body packs nil; each handler returns nil (packs nothing).
 */
#include "stepkit.h"

static int noop(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)ctx;
    (void)arg;
    return msgpack_pack_nil(out) == 0 ? SK_OK : SK_ERROR;
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

SK_WORKFLOWS(reg)
{
    if (sk_register(reg, &(sk_workflow_t){.id = "bench-chain3", .handler = chain3}) != SK_OK)
        return SK_ERROR;
    return sk_register(reg, &(sk_workflow_t){.id = "bench-single", .handler = single});
}
