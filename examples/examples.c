/*
 * The example workflows (build/examples/examples.so).
 *
 *   say-hi  input {"name": string}: one step picks a random number, the
 *           output greets by name: "Hello Ada! Your random number is 42."
 */
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

SK_WORKFLOWS(reg)
{
    srandom((unsigned)time(NULL));
    return sk_register(reg, &(sk_workflow_t){
                                .id = "say-hi",
                                .handler = say_hi,
                                .validate = say_hi_input,
                            });
}
