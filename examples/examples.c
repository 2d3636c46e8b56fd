/*
 * The example workflows (build/examples/examples.so).
 *
 *   say-hi    input {"name": string}: one step picks a random number, the
 *             output greets by name: "Hello Ada! Your random number is 42."
 *   nap       input {"ms": int}: sleeps that long (holding no worker), "rested".
 *   approval  input {"id": string, "timeout_ms": int}: waits for the signal
 *             "approval-<id>" carrying {"approved": bool, "by": string};
 *             {"status": "approved"|"rejected", "by": ...} or {"status": "expired"}.
 *   welcome   started by the event "user.signup": greets data.name.
 *   fan-out   input {"names": [string, ...]} (at most 8): greets every name
 *             in parallel by invoking say-hi for each, and counts the letters
 *             in a parallel step; output {"greetings": [...], "letters": n}.
 *   per-customer  input {"customer": string, "ms": int}: at most 2 runs in
 *             progress per customer (docs/flow-control.md); one step sleeps
 *             ms and returns {"customer", "started_ms", "ended_ms"} (wall-clock
 *             Unix milliseconds around the sleep), so the limit can be checked
 *             from the outputs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <stepkit.h>

static void say_hi_input(const msgpack_object *data, sk_issues_t *issues)
{
    sk_expect(issues, data, "name", SK_T_STRING);
}

/* A side effect belongs in a step: its result is recorded once. */
static int random_number(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)ctx;
    (void)arg;
    return sk_pack_int(out, random() % 100);
}

static int say_hi(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *n;

    SK_STEP(sk_run(ctx, "random-number", random_number, NULL, &n));
    return sk_pack_fmt(out, "Hello %s! Your random number is %lld.",
                       sk_str(ctx, sk_get(sk_data(ctx), "name")), sk_int(n));
}

static void nap_input(const msgpack_object *data, sk_issues_t *issues)
{
    sk_expect(issues, data, "ms", SK_T_INT);
}

static int nap(sk_ctx_t *ctx, msgpack_packer *out)
{
    SK_STEP(sk_sleep(ctx, "nap", sk_int(sk_get(sk_data(ctx), "ms"))));
    return sk_pack_str(out, "rested");
}

static void approval_input(const msgpack_object *data, sk_issues_t *issues)
{
    sk_expect(issues, data, "id", SK_T_STRING);
    sk_expect(issues, data, "timeout_ms", SK_T_INT);
}

static void decision_input(const msgpack_object *data, sk_issues_t *issues)
{
    sk_expect(issues, data, "approved", SK_T_BOOL);
    sk_expect(issues, data, "by", SK_T_STRING);
}

static int approval(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *in = sk_data(ctx), *got, *d;
    char signal[256];

    snprintf(signal, sizeof(signal), "approval-%s", sk_str(ctx, sk_get(in, "id")));
    SK_STEP(sk_wait_for_signal(ctx, "decision", signal, sk_int(sk_get(in, "timeout_ms")),
                               decision_input, &got));
    if (got == NULL || got->type == MSGPACK_OBJECT_NIL) {
        msgpack_pack_map(out, 1);
        sk_pack_str(out, "status");
        return sk_pack_str(out, "expired");
    }
    d = sk_get(got, "data");
    msgpack_pack_map(out, 2);
    sk_pack_str(out, "status");
    sk_pack_str(out, sk_get(d, "approved")->via.boolean ? "approved" : "rejected");
    sk_pack_str(out, "by");
    return sk_pack_object(out, sk_get(d, "by"));
}

static int welcome(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *name = sk_get(sk_data(ctx), "name");

    return sk_pack_fmt(out, "Welcome, %s!", name ? sk_str(ctx, name) : "friend");
}

static void fan_out_input(const msgpack_object *data, sk_issues_t *issues)
{
    const msgpack_object *names = sk_get(data, "names");

    if (!sk_expect(issues, data, "names", SK_T_ARRAY))
        return;
    if (names->via.array.size > 8) {
        static const char *const path[] = {"names", NULL};
        sk_issue(issues, path, "at most 8 names", "Invalid input: too many names");
    }
    for (uint32_t i = 0; i < names->via.array.size; i++) {
        if (names->via.array.ptr[i].type != MSGPACK_OBJECT_STR) {
            static const char *const path[] = {"names", NULL};
            sk_issue(issues, path, "string", "Invalid input: names must be strings");
            return;
        }
    }
}

static int count_letters(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const msgpack_object *names = arg;
    long long n = 0;

    (void)ctx;
    for (uint32_t i = 0; i < names->via.array.size; i++)
        n += names->via.array.ptr[i].via.str.size;
    return sk_pack_int(out, n);
}

static int fan_out(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *names = sk_get(sk_data(ctx), "names"), *res;
    sk_group_t *g = sk_group(ctx);
    msgpack_sbuffer child[8];
    uint32_t n = names->via.array.size;
    int rc;

    /* Every child invocation and the counting step start together. */
    for (uint32_t i = 0; i < n; i++) {
        msgpack_packer pk;
        char id[32];
        msgpack_sbuffer_init(&child[i]);
        msgpack_packer_init(&pk, &child[i], msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        sk_pack_str(&pk, "name");
        sk_pack_object(&pk, &names->via.array.ptr[i]);
        snprintf(id, sizeof(id), "greet-%u", i);
        sk_group_invoke(g, id, "say-hi", child[i].data, child[i].size, 60000);
    }
    sk_group_run(g, "count-letters", count_letters, (void *)names);
    rc = sk_group_await(g, &res);
    for (uint32_t i = 0; i < n; i++)
        msgpack_sbuffer_destroy(&child[i]);
    SK_STEP(rc);
    msgpack_pack_map(out, 2);
    sk_pack_str(out, "greetings");
    msgpack_pack_array(out, n);
    for (uint32_t i = 0; i < n; i++)
        sk_pack_object(out, &res->via.array.ptr[i]);
    sk_pack_str(out, "letters");
    return sk_pack_object(out, &res->via.array.ptr[n]);
}

static void per_customer_input(const msgpack_object *data, sk_issues_t *issues)
{
    sk_expect(issues, data, "customer", SK_T_STRING);
    sk_expect(issues, data, "ms", SK_T_INT);
}

static long long wall_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int customer_call(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    const msgpack_object *d = sk_data(ctx);
    long long ms = sk_int(sk_get(d, "ms")), started, ended;
    struct timespec t;

    (void)arg;
    if (ms < 0)
        ms = 0;
    t.tv_sec = (time_t)(ms / 1000);
    t.tv_nsec = (long)(ms % 1000) * 1000000L;
    started = wall_ms();
    while (nanosleep(&t, &t) != 0)
        ; /* interrupted: sleep the rest */
    ended = wall_ms();
    msgpack_pack_map(out, 3);
    sk_pack_str(out, "customer");
    sk_pack_object(out, sk_get(d, "customer"));
    sk_pack_str(out, "started_ms");
    sk_pack_int(out, started);
    sk_pack_str(out, "ended_ms");
    return sk_pack_int(out, ended);
}

static int per_customer(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *r;
    SK_STEP(sk_run(ctx, "call", customer_call, NULL, &r));
    return sk_pack_object(out, r);
}

static const char *const welcome_events[] = {"user.signup", NULL};

SK_WORKFLOWS(reg)
{
    srandom((unsigned)time(NULL));
    if (sk_register(
            reg, &(sk_workflow_t){.id = "say-hi", .handler = say_hi, .validate = say_hi_input}) ||
        sk_register(reg, &(sk_workflow_t){.id = "nap", .handler = nap, .validate = nap_input}) ||
        sk_register(
            reg,
            &(sk_workflow_t){.id = "approval", .handler = approval, .validate = approval_input}) ||
        sk_register(
            reg, &(sk_workflow_t){.id = "welcome", .handler = welcome, .events = welcome_events}) ||
        sk_register(
            reg,
            &(sk_workflow_t){.id = "fan-out", .handler = fan_out, .validate = fan_out_input}) ||
        sk_register(reg, &(sk_workflow_t){.id = "per-customer",
                                          .handler = per_customer,
                                          .validate = per_customer_input,
                                          .concurrency = {.key = "customer", .limit = 2}}))
        return SK_ERROR;
    return SK_OK;
}
