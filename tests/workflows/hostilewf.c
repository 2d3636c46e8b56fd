/*
 * Hostile-input workflows (tests/integration/test_hostile.c).
 *
 *   hostile-name   {"kind": "run"|"signal"|"send"|"invoke", "len": N}: one
 *                  step whose name (the step id for "run", the signal name,
 *                  the child's workflow id) is N bytes of 'x'; output "done"
 *                  or the step's result.  Counts "handler" and "body".
 *   hostile-poison {"kind": "run"|"sleep"}: a step with id "poison" (the test
 *                  adds a CHECK constraint refusing it), then "after".
 *   hostile-tour   {"signal": name}: a run step, a 20 ms sleep, a wait for
 *                  the signal (10 s), a child run of step-child-hello and a
 *                  group of two run steps; output {"signal", "child", "group"}.
 *   hostile-event  started by the event "hostile-event": echoes its data.
 */
#include "hostilewf.h"

#include <string.h>

#include "wfcount.h"

#define NO_DELAY      SK_RETRY(0, 1, 0)
#define NAME_MAX_TEST (256 * 1024)

/* One run at a time per worker process: a static name buffer will do. */
static char name_buf[NAME_MAX_TEST + 1];

static const char *name_of(long long len)
{
    if (len < 0)
        len = 0;
    if (len > NAME_MAX_TEST)
        len = NAME_MAX_TEST;
    memset(name_buf, 'x', (size_t)len);
    name_buf[len] = '\0';
    return name_buf;
}

static int body_done(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    wf_count(ctx, arg ? (const char *)arg : "body");
    return sk_pack_str(out, "done");
}

static int hostile_name(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *data = sk_data(ctx), *r = NULL;
    const char *kind = sk_str(ctx, sk_get(data, "kind"));
    const char *name = name_of(sk_int(sk_get(data, "len")));

    wf_count(ctx, "handler");
    if (kind == NULL)
        return sk_fail(ctx, "BadInput", "kind is required");
    if (strcmp(kind, "run") == 0)
        SK_STEP(sk_run(ctx, name, body_done, NULL, &r));
    else if (strcmp(kind, "signal") == 0)
        SK_STEP(sk_wait_for_signal(ctx, "wait", name, 50, NULL, &r));
    else if (strcmp(kind, "send") == 0)
        SK_STEP(sk_send_signal(ctx, "send", name, NULL, 0, &r));
    else if (strcmp(kind, "invoke") == 0)
        SK_STEP(sk_invoke(ctx, "child", name, NULL, 0, 2000, &r));
    else
        return sk_fail(ctx, "BadInput", "unknown kind %s", kind);
    return r != NULL ? sk_pack_object(out, r) : msgpack_pack_nil(out);
}

static int hostile_poison(sk_ctx_t *ctx, msgpack_packer *out)
{
    const char *kind = sk_str(ctx, sk_get(sk_data(ctx), "kind"));
    const msgpack_object *r;

    wf_count(ctx, "handler");
    if (kind != NULL && strcmp(kind, "sleep") == 0)
        SK_STEP(sk_sleep(ctx, "poison", 10));
    else
        SK_STEP(sk_run(ctx, "poison", body_done, NULL, &r));
    wf_count(ctx, "after");
    return sk_pack_str(out, "unreachable");
}

static int hostile_tour(sk_ctx_t *ctx, msgpack_packer *out)
{
    const char *signal = sk_str(ctx, sk_get(sk_data(ctx), "signal"));
    const msgpack_object *a, *s, *c, *g;
    sk_group_t *grp;

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "first", body_done, "first", &a));
    SK_STEP(sk_sleep(ctx, "nap", 20));
    SK_STEP(sk_wait_for_signal(ctx, "wait", signal, 10000, NULL, &s));
    SK_STEP(sk_invoke(ctx, "child", "step-child-hello", NULL, 0, 10000, &c));
    grp = sk_group(ctx);
    sk_group_run(grp, "p1", body_done, "p1");
    sk_group_run(grp, "p2", body_done, "p2");
    SK_STEP(sk_group_await(grp, &g));
    if (msgpack_pack_map(out, 3) != 0 || sk_pack_str(out, "signal") != SK_OK ||
        sk_pack_object(out, s) != SK_OK || sk_pack_str(out, "child") != SK_OK ||
        sk_pack_object(out, c) != SK_OK || sk_pack_str(out, "group") != SK_OK ||
        sk_pack_object(out, g) != SK_OK)
        return SK_ERROR;
    return SK_OK;
}

static int hostile_event(sk_ctx_t *ctx, msgpack_packer *out)
{
    wf_count(ctx, "handler");
    return sk_pack_object(out, sk_data(ctx));
}

static const char *const event_names[] = {"hostile-event", NULL};

int hostilewf_register(sk_registry_t *reg)
{
    static const sk_workflow_t wfs[] = {
        {.id = "hostile-name", .handler = hostile_name, .retry = NO_DELAY},
        {.id = "hostile-poison", .handler = hostile_poison, .retry = NO_DELAY},
        {.id = "hostile-tour", .handler = hostile_tour, .retry = NO_DELAY},
        {.id = "hostile-event", .handler = hostile_event, .events = event_names},
    };

    for (size_t i = 0; i < sizeof(wfs) / sizeof(wfs[0]); i++) {
        if (sk_register(reg, &wfs[i]) != SK_OK)
            return SK_ERROR;
    }
    return SK_OK;
}
