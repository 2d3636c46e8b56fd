/*
 * The chaos harness's workflow library (see chaos.h for what the driver
 * checks).  Inputs are {"n": int, "ms": int, "nap": int}: n makes the
 * output, ms is how long each body sleeps (so that some bodies are in
 * flight when a worker is killed), nap the length of sleep steps.
 *
 *   chaos-seq     run a; sleep nap; run b
 *   chaos-group   run pre; {run g1, run g2, sleep, branch(run q1; run q2)}
 *   chaos-parent  run a; invoke chaos-child; run b
 *   chaos-child   sleep; run c
 *   chaos-signal  {wait for its own signal; branch(sleep; send_signal)}
 *   chaos-ext     wait for a signal the driver sends; run c
 *   chaos-segv    poison: the body segfaults
 *   chaos-exit    poison: the body calls exit(0)
 *   chaos-hang    poison: the body never returns
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stepkit.h>

#include "chaos.h"

#define CHAOS_RETRY  SK_RETRY(100, 2, 1000)
#define POISON_RETRY SK_RETRY(100, 1, 100)

static void sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* One fixed-size line per body execution; aborts when it cannot write it
 * (a lost line would hide a re-execution). */
static void effect(sk_ctx_t *ctx, const char *step)
{
    const char *file = getenv("CHAOS_EFFECTS");
    char line[CHAOS_LINE_LEN + 1];
    struct timespec now;
    int n, fd;

    if (file == NULL || *file == '\0')
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    n = snprintf(line, sizeof(line), CHAOS_LINE_FMT, sk_run_id(ctx), step, sk_attempt(ctx),
                 (int)getpid(), (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
    if (n != CHAOS_LINE_LEN)
        abort();
    fd = open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        abort();
    if (write(fd, line, (size_t)n) != n)
        abort();
    close(fd);
}

static long long data_int(sk_ctx_t *ctx, const char *key)
{
    return sk_int(sk_get(sk_data(ctx), key));
}

/* A body that logs itself, sleeps input.ms, and returns f(x). */
typedef struct {
    const char *step;
    long long (*f)(long long);
    long long x;
} calc_t;

static int body_calc(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const calc_t *c = arg;

    effect(ctx, c->step);
    sleep_ms(data_int(ctx, "ms"));
    return sk_pack_int(out, c->f(c->x));
}

static int run_calc(sk_ctx_t *ctx, calc_t *c, long long *v)
{
    const msgpack_object *r;
    int rc = sk_run(ctx, c->step, body_calc, c, &r);

    if (rc == SK_OK)
        *v = sk_int(r);
    return rc;
}

static long long twice(long long x)
{
    return x * 2;
}
static long long thrice(long long x)
{
    return x * 3;
}
static long long plus1(long long x)
{
    return x + 1;
}
static long long plus3(long long x)
{
    return x + 3;
}
static long long plus5(long long x)
{
    return x + 5;
}
static long long plus11(long long x)
{
    return x + 11;
}
static long long times5(long long x)
{
    return x * 5;
}
static long long double_plus1(long long x)
{
    return x * 2 + 1;
}

/* ---- chaos-seq ------------------------------------------------------------------------ */

static int chaos_seq(sk_ctx_t *ctx, msgpack_packer *out)
{
    calc_t a = {"a", chaos_seq_a, data_int(ctx, "n")}, b = {"b", chaos_seq_b, 0};
    long long r;

    SK_STEP(run_calc(ctx, &a, &b.x));
    SK_STEP(sk_sleep(ctx, "nap", data_int(ctx, "nap")));
    SK_STEP(run_calc(ctx, &b, &r));
    return sk_pack_int(out, r);
}

/* ---- chaos-group ---------------------------------------------------------------------- */

/* The branch's calc_t live in the handler's frame: a group's first new run
 * member executes in sk_group_await, after the branch function returned,
 * so its body's arg must outlive the branch. */
static int q_branch(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    calc_t *q = arg; /* q[0]: q1, q[1]: q2 */
    long long r;

    SK_STEP(run_calc(ctx, &q[0], &q[1].x));
    SK_STEP(run_calc(ctx, &q[1], &r));
    return sk_pack_int(out, r);
}

static int chaos_group(sk_ctx_t *ctx, msgpack_packer *out)
{
    calc_t pre = {"pre", plus5, data_int(ctx, "n")}, g1 = {"g1", twice, 0}, g2 = {"g2", thrice, 0},
           q[2] = {{"q1", plus1, data_int(ctx, "n")}, {"q2", times5, 0}};
    const msgpack_object *res;
    sk_group_t *g;

    SK_STEP(run_calc(ctx, &pre, &g1.x));
    g2.x = g1.x;
    g = sk_group(ctx);
    sk_group_run(g, g1.step, body_calc, &g1);
    sk_group_run(g, g2.step, body_calc, &g2);
    sk_group_sleep(g, "g3", data_int(ctx, "nap"));
    sk_group_branch(g, q_branch, q);
    SK_STEP(sk_group_await(g, &res));
    if (res->type != MSGPACK_OBJECT_ARRAY || res->via.array.size != 4)
        return sk_fail(ctx, "ChaosError", "group result is not an array of 4");
    return sk_pack_int(out, sk_int(&res->via.array.ptr[0]) + 10 * sk_int(&res->via.array.ptr[1]) +
                                100 * sk_int(&res->via.array.ptr[3]));
}

/* ---- chaos-parent, chaos-child ---------------------------------------------------------- */

static int chaos_child(sk_ctx_t *ctx, msgpack_packer *out)
{
    calc_t c = {"c", chaos_child_out, data_int(ctx, "n")};
    long long r;

    SK_STEP(sk_sleep(ctx, "z", data_int(ctx, "nap")));
    SK_STEP(run_calc(ctx, &c, &r));
    return sk_pack_int(out, r);
}

static int chaos_parent(sk_ctx_t *ctx, msgpack_packer *out)
{
    calc_t a = {"a", plus11, data_int(ctx, "n")}, b = {"b", double_plus1, 0};
    const msgpack_object *child;
    msgpack_sbuffer buf;
    msgpack_packer pk;
    long long n_child, r;
    int rc;

    SK_STEP(run_calc(ctx, &a, &n_child));
    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    sk_pack_str(&pk, "n");
    sk_pack_int(&pk, n_child);
    sk_pack_str(&pk, "ms");
    sk_pack_int(&pk, data_int(ctx, "ms"));
    sk_pack_str(&pk, "nap");
    sk_pack_int(&pk, data_int(ctx, "nap"));
    rc = sk_invoke(ctx, "child", "chaos-child", buf.data, buf.size, 300000, &child);
    msgpack_sbuffer_destroy(&buf);
    SK_STEP(rc);
    b.x = sk_int(child);
    SK_STEP(run_calc(ctx, &b, &r));
    return sk_pack_int(out, r);
}

/* ---- chaos-signal ------------------------------------------------------------------------ */

static int send_branch(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const char *name = arg;
    const msgpack_object *sent;
    msgpack_sbuffer buf;
    msgpack_packer pk;
    int rc;

    SK_STEP(sk_sleep(ctx, "s", data_int(ctx, "nap")));
    msgpack_sbuffer_init(&buf);
    msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    sk_pack_str(&pk, "v");
    sk_pack_int(&pk, chaos_signal_v(data_int(ctx, "n")));
    rc = sk_send_signal(ctx, "tx", name, buf.data, buf.size, &sent);
    msgpack_sbuffer_destroy(&buf);
    SK_STEP(rc);
    /* 1 when the send reached this very run. */
    return sk_pack_int(out, sent != NULL && sent->type == MSGPACK_OBJECT_MAP &&
                                strcmp(sk_str(ctx, sk_get(sent, "run_id")), sk_run_id(ctx)) == 0);
}

static int chaos_signal(sk_ctx_t *ctx, msgpack_packer *out)
{
    char name[64];
    const msgpack_object *res, *got;
    sk_group_t *g;

    snprintf(name, sizeof(name), "chaos-sig-%s", sk_run_id(ctx));
    g = sk_group(ctx);
    sk_group_wait_for_signal(g, "w", name, 120000, NULL);
    sk_group_branch(g, send_branch, name);
    SK_STEP(sk_group_await(g, &res));
    if (res->type != MSGPACK_OBJECT_ARRAY || res->via.array.size != 2)
        return sk_fail(ctx, "ChaosError", "group result is not an array of 2");
    got = &res->via.array.ptr[0];
    if (got->type != MSGPACK_OBJECT_MAP) /* the wait timed out */
        return sk_pack_int(out, -1);
    return sk_pack_int(out, 2 * sk_int(sk_get(sk_get(got, "data"), "v")) +
                                sk_int(&res->via.array.ptr[1]));
}

/* ---- chaos-ext ----------------------------------------------------------------------------- */

static int chaos_ext(sk_ctx_t *ctx, msgpack_packer *out)
{
    char name[64];
    const msgpack_object *got;
    calc_t c = {"c", plus3, 0};
    long long r;

    snprintf(name, sizeof(name), "chaos-ext-%lld", data_int(ctx, "n"));
    SK_STEP(sk_wait_for_signal(ctx, "w", name, 600000, NULL, &got));
    if (got == NULL || got->type != MSGPACK_OBJECT_MAP) /* timed out */
        return sk_pack_int(out, -1);
    c.x = sk_int(sk_get(sk_get(got, "data"), "v"));
    SK_STEP(run_calc(ctx, &c, &r));
    return sk_pack_int(out, r);
}

/* ---- poison ---------------------------------------------------------------------------------- */

static int body_segv(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)out;
    (void)arg;
    effect(ctx, "boom");
    *(volatile int *)(uintptr_t)data_int(ctx, "addr") = 1; /* addr is 0 */
    return SK_OK;
}

static int body_exit(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)out;
    (void)arg;
    effect(ctx, "boom");
    exit(0);
}

static int body_hang(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)out;
    (void)arg;
    effect(ctx, "boom");
    for (;;)
        pause();
    return SK_ERROR; /* not reached */
}

static int poison(sk_ctx_t *ctx, msgpack_packer *out, sk_body_fn body)
{
    const msgpack_object *r;

    SK_STEP(sk_run(ctx, "boom", body, NULL, &r));
    return sk_pack_object(out, r);
}

static int chaos_segv(sk_ctx_t *ctx, msgpack_packer *out)
{
    return poison(ctx, out, body_segv);
}
static int chaos_exit(sk_ctx_t *ctx, msgpack_packer *out)
{
    return poison(ctx, out, body_exit);
}
static int chaos_hang(sk_ctx_t *ctx, msgpack_packer *out)
{
    return poison(ctx, out, body_hang);
}

SK_WORKFLOWS(reg)
{
    static const sk_workflow_t wfs[] = {
        {.id = "chaos-seq", .handler = chaos_seq, .retry = CHAOS_RETRY},
        {.id = "chaos-group", .handler = chaos_group, .retry = CHAOS_RETRY},
        {.id = "chaos-parent", .handler = chaos_parent, .retry = CHAOS_RETRY},
        {.id = "chaos-child", .handler = chaos_child, .retry = CHAOS_RETRY},
        {.id = "chaos-signal", .handler = chaos_signal, .retry = CHAOS_RETRY},
        {.id = "chaos-ext", .handler = chaos_ext, .retry = CHAOS_RETRY},
        {.id = "chaos-segv",
         .handler = chaos_segv,
         .max_attempts = CHAOS_POISON_ATTEMPTS,
         .retry = POISON_RETRY},
        {.id = "chaos-exit",
         .handler = chaos_exit,
         .max_attempts = CHAOS_POISON_ATTEMPTS,
         .retry = POISON_RETRY},
        {.id = "chaos-hang",
         .handler = chaos_hang,
         .max_attempts = CHAOS_POISON_ATTEMPTS,
         .retry = POISON_RETRY},
    };

    for (size_t i = 0; i < sizeof(wfs) / sizeof(wfs[0]); i++) {
        if (sk_register(reg, &wfs[i]) != SK_OK)
            return SK_ERROR;
    }
    return SK_OK;
}
