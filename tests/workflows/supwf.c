/*
 * Supervision test workflows (see supwf.h).  Input data (all optional):
 *   timeout_ms  the step's own timeout (sk_run_opts), 0 = the defaults
 *   ms          how long a body sleeps (long-step, heartbeats)
 * Counts: "handler", the step id for each body execution, "after".
 */
#include "supwf.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "wfcount.h"

#define NO_DELAY SK_RETRY(0, 1, 0)

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int data_int(sk_ctx_t *ctx, const char *key)
{
    const msgpack_object *o = sk_get(sk_data(ctx), key);

    return o != NULL ? (int)sk_int(o) : 0;
}

/* A body that never returns. */
static int hang_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)out;
    (void)arg;
    wf_count(ctx, "hang");
    for (;;)
        pause();
    return SK_OK;
}

/*
 * A real SIGSEGV death.  Sanitizer builds install their own SIGSEGV handler
 * (and refuse a user's signal() on it): the default action is put back with
 * the raw system call, so the process dies of the signal in every build
 * instead of writing a sanitizer report.
 */
static int segv_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        unsigned long mask;
    } dfl = {0};

    (void)out;
    (void)arg;
    wf_count(ctx, "segv");
    (void)syscall(SYS_rt_sigaction, SIGSEGV, &dfl, NULL, sizeof(dfl.mask));
    raise(SIGSEGV);
    return SK_OK;
}

static int exit_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)out;
    (void)arg;
    wf_count(ctx, "exit");
    exit(0);
}

static int sleep_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)arg;
    wf_count(ctx, "long");
    nap_ms(data_int(ctx, "ms"));
    return sk_pack_str(out, "done");
}

/* Sleeps `ms` in 50 ms naps, saying "progress" after each. */
static int beating_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    int left = data_int(ctx, "ms");

    (void)arg;
    wf_count(ctx, "beat");
    for (; left > 0; left -= 50) {
        nap_ms(50);
        sk_heartbeat(ctx);
    }
    return sk_pack_str(out, "alive");
}

/* One step running `arg` with the input's timeout_ms. */
static int one_step(sk_ctx_t *ctx, msgpack_packer *out, const char *id, sk_body_fn body)
{
    sk_step_opts_t opts = {.retry = NO_DELAY, .timeout_ms = data_int(ctx, "timeout_ms")};
    const msgpack_object *r;

    wf_count(ctx, "handler");
    SK_STEP(sk_run_opts(ctx, id, body, NULL, &opts, &r));
    wf_count(ctx, "after");
    return sk_pack_object(out, r);
}

static int hangs(sk_ctx_t *ctx, msgpack_packer *out)
{
    return one_step(ctx, out, "hang", hang_body);
}

static int segfaults(sk_ctx_t *ctx, msgpack_packer *out)
{
    return one_step(ctx, out, "segv", segv_body);
}

static int exits(sk_ctx_t *ctx, msgpack_packer *out)
{
    return one_step(ctx, out, "exit", exit_body);
}

static int long_step(sk_ctx_t *ctx, msgpack_packer *out)
{
    return one_step(ctx, out, "long", sleep_body);
}

static int heartbeats(sk_ctx_t *ctx, msgpack_packer *out)
{
    return one_step(ctx, out, "beat", beating_body);
}

/* The handler itself crashes its worker (no body runs). */
static int handler_segfaults(sk_ctx_t *ctx, msgpack_packer *out)
{
    (void)out;
    wf_count(ctx, "handler");
    return segv_body(ctx, NULL, NULL);
}

static int ok_body(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)arg;
    wf_count(ctx, "ok");
    return sk_pack_str(out, "ok");
}

/* {run ok, run segv}: "ok" is the member the run's worker keeps, "segv"
 * is dispatched to another worker through its own item, where it crashes
 * its worker at every attempt. */
static int group_segfaults(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *res;
    sk_group_t *g;

    wf_count(ctx, "handler");
    g = sk_group(ctx);
    sk_group_run(g, "ok", ok_body, NULL);
    sk_group_run(g, "segv", segv_body, NULL);
    SK_STEP(sk_group_await(g, &res));
    wf_count(ctx, "after");
    return sk_pack_object(out, res);
}

int supwf_register(sk_registry_t *reg)
{
    static const sk_workflow_t wfs[] = {
        {.id = "hangs", .handler = hangs, .max_attempts = 2, .retry = NO_DELAY},
        {.id = "segfaults", .handler = segfaults, .retry = NO_DELAY},
        {.id = "exits", .handler = exits, .retry = NO_DELAY},
        {.id = "long-step", .handler = long_step, .retry = NO_DELAY},
        {.id = "heartbeats", .handler = heartbeats, .retry = NO_DELAY},
        {.id = "group-segfaults", .handler = group_segfaults, .max_attempts = 2, .retry = NO_DELAY},
        {.id = "handler-segfaults",
         .handler = handler_segfaults,
         .max_attempts = 2,
         .retry = NO_DELAY},
    };

    for (size_t i = 0; i < sizeof(wfs) / sizeof(wfs[0]); i++) {
        if (sk_register(reg, &wfs[i]) != SK_OK)
            return SK_ERROR;
    }
    return SK_OK;
}
