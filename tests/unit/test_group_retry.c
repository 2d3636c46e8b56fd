/*
 * A group's kept member in retry, without a database: the replay runtime's
 * decisions (run it again here, wait for its due time, or hand it to
 * another worker with its attempts) seen through sk_ctx_enter().  The
 * engine's side (commits, items) is in tests/integration/test_steps_group.c.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <time.h>

#include "sk_ctx.h"

static int n_k, n_n, k_attempt;

/* Fails (retryable) on its first attempt, then returns "K". */
static int body_k(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)arg;
    n_k++;
    k_attempt = sk_attempt(ctx);
    if (k_attempt == 1)
        return sk_fail(ctx, "FlakyError", "attempt %d", k_attempt);
    return sk_pack_str(out, "K");
}

static int body_n(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)ctx;
    (void)arg;
    n_n++;
    return sk_pack_str(out, "N");
}

/* {run k, run o}: k is kept, o dispatched. */
static int k_then_o(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *res;
    sk_group_t *g = sk_group(ctx);

    sk_group_run(g, "k", body_k, NULL);
    sk_group_run(g, "o", body_n, NULL);
    SK_STEP(sk_group_await(g, &res));
    return sk_pack_object(out, res);
}

/* {run n, run k}: n, declared first, takes the kept place when new. */
static int n_then_k(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *res;
    sk_group_t *g = sk_group(ctx);

    sk_group_run(g, "n", body_n, NULL);
    sk_group_run(g, "k", body_k, NULL);
    SK_STEP(sk_group_await(g, &res));
    return sk_pack_object(out, res);
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static sk_ctx_t *make(const sk_wf_t *wf, const char *target)
{
    sk_ctx_params_t p = {.wf = wf,
                         .run_id = "00000000-0000-0000-0000-000000000001",
                         .event_id = "00000000-0000-0000-0000-000000000002",
                         .trigger_type = "invoke",
                         .trigger_name = wf->id,
                         .target = target};
    sk_ctx_t *ctx = sk_ctx_new(&p);

    cr_assert_not_null(ctx);
    return ctx;
}

/* What the context hands the engine to commit now. */
static sk_ctx_writes_t writes(sk_ctx_t *ctx)
{
    sk_ctx_writes_t w;

    cr_assert_eq(sk_ctx_writes(ctx, &w), SK_OK);
    return w;
}

/* An op among them, by step id (index 0); NULL when not to commit.  (Not
 * const: the tests move a retry's due time as the clock would.) */
static sk_op_t *op_of(sk_ctx_t *ctx, const char *id)
{
    sk_ctx_writes_t w = writes(ctx);
    char key[41];

    cr_assert_eq(sk_op_key(id, 0, key), SK_OK);
    for (size_t i = 0; i < w.nops; i++) {
        if (strcmp(w.ops[i]->key, key) == 0)
            return (sk_op_t *)w.ops[i];
    }
    return NULL;
}

/* What the engine does after an entry: every op durable, dispatches sent. */
static void commit(sk_ctx_t *ctx)
{
    sk_ctx_writes_t w = writes(ctx);

    sk_ctx_committed(ctx, &w);
}

/* A retry op of k, loaded as the worker loads it (wait_info may be NULL). */
static void load_k_retry(sk_ctx_t *ctx, int attempts, const char *wait_info, size_t wait_len)
{
    static const char err[] = "\x83\xa4name\xaa"
                              "FlakyError\xa7message\xa0\xa9retryable\xc3";
    char key[41];

    cr_assert_eq(sk_op_key("k", 0, key), SK_OK);
    cr_assert_eq(sk_ctx_add_op(ctx, key, "k", "run", SK_OP_RETRY, attempts, err, sizeof(err) - 1,
                               wait_info, wait_len),
                 SK_OK);
}

static void reset(void)
{
    n_k = n_n = k_attempt = 0;
}

TestSuite(group_retry, .init = reset);

/* k fails with a 60 s delay; a sibling's wake-up replays the run before it
 * is due: the run suspends until then, k does not run; once due, k runs
 * again here as attempt 2. */
Test(group_retry, kept_member_waits_for_its_due_time_then_runs_here)
{
    sk_wf_t wf = {
        .id = "g", .handler = k_then_o, .max_attempts = 4, .retry = SK_RETRY(60000, 1, 0)};
    sk_ctx_t *ctx = make(&wf, NULL);
    sk_entry_t e;
    sk_op_t *k;
    int64_t before = now_ms();

    cr_assert_eq(sk_ctx_enter(ctx, &e), SK_OK);
    cr_assert_eq(e.kind, SK_ENTRY_STEP_RETRY);
    cr_assert_eq(n_k, 1);
    cr_assert_eq(writes(ctx).ndispatch, 1, "o is dispatched");
    k = op_of(ctx, "k");
    cr_assert_not_null(k);
    cr_assert_eq(k->status, SK_OP_RETRY);
    cr_assert_eq(k->attempts, 1);
    cr_assert_not_null(k->wait_info, "the retry says when it is due");
    cr_assert_geq(k->until_ms, before + 48000);
    cr_assert_leq(k->until_ms, now_ms() + 72000);
    commit(ctx);

    /* o ends and wakes the run: k is not due yet. */
    cr_assert_eq(sk_ctx_enter(ctx, &e), SK_OK);
    cr_assert_eq(e.kind, SK_ENTRY_SUSPENDED);
    cr_assert_eq(n_k, 1);
    cr_assert_eq(writes(ctx).ndispatch, 0, "nothing dispatched again");
    cr_assert_geq(e.visible_ms, 47000, "visible in %lld ms", (long long)e.visible_ms);
    cr_assert_leq(e.visible_ms, 72000, "visible in %lld ms", (long long)e.visible_ms);

    /* Its time has come. */
    k->until_ms = now_ms() - 1;
    cr_assert_eq(sk_ctx_enter(ctx, &e), SK_OK);
    cr_assert_eq(e.kind, SK_ENTRY_STEP_DONE);
    cr_assert_eq(n_k, 2);
    cr_assert_eq(k_attempt, 2);
    cr_assert_eq(k->status, SK_OP_OK);
    cr_assert_eq(k->attempts, 2);
    cr_assert_eq(writes(ctx).ndispatch, 0);
    sk_ctx_free(ctx);
}

/* The worker died in k's first attempt: reclaim_item left a retry row
 * with no wait_info; the next replay runs k here at once, as attempt 2. */
Test(group_retry, kept_member_lost_with_its_worker_runs_again_at_once)
{
    sk_wf_t wf = {
        .id = "g", .handler = k_then_o, .max_attempts = 4, .retry = SK_RETRY(60000, 1, 0)};
    sk_ctx_t *ctx = make(&wf, NULL);
    sk_entry_t e;

    load_k_retry(ctx, 1, NULL, 0);
    cr_assert_eq(sk_ctx_enter(ctx, &e), SK_OK);
    cr_assert_eq(e.kind, SK_ENTRY_STEP_DONE);
    cr_assert_eq(n_k, 1);
    cr_assert_eq(k_attempt, 2);
    cr_assert_eq(op_of(ctx, "k")->attempts, 2);
    cr_assert_eq(writes(ctx).ndispatch, 1, "o, new, is dispatched");
    sk_ctx_free(ctx);
}

/* k's retry is due but n, new and declared first, is kept: k goes to
 * another worker as a retry op with its attempts (never a fresh waiting
 * op), and its executor counts on from them. */
Test(group_retry, due_kept_member_is_dispatched_with_its_attempts)
{
    sk_wf_t wf = {.id = "g", .handler = n_then_k, .max_attempts = 4, .retry = SK_RETRY(0, 1, 0)};
    sk_ctx_t *ctx = make(&wf, NULL);
    sk_entry_t e;
    sk_op_t *k;
    char key[41];

    load_k_retry(ctx, 2, NULL, 0);
    cr_assert_eq(sk_ctx_enter(ctx, &e), SK_OK);
    cr_assert_eq(e.kind, SK_ENTRY_STEP_DONE);
    cr_assert_eq(n_n, 1);
    cr_assert_eq(n_k, 0);
    cr_assert_eq(writes(ctx).ndispatch, 1);
    cr_assert_eq(sk_op_key("k", 0, key), SK_OK);
    cr_assert_str_eq(writes(ctx).dispatch[0], key);
    k = op_of(ctx, "k");
    cr_assert_eq(k->status, SK_OP_RETRY);
    cr_assert_eq(k->attempts, 2);
    /* (k is among the writes: it commits with the dispatch) */
    cr_assert_not_null(k->wait_info);
    cr_assert_eq(k->until_ms, -1, "marked as dispatched");
    commit(ctx);

    /* The run's next replay waits for k's item. */
    cr_assert_eq(sk_ctx_enter(ctx, &e), SK_OK);
    cr_assert_eq(e.kind, SK_ENTRY_SUSPENDED);
    cr_assert_eq(e.visible_ms, -1);
    cr_assert_eq(writes(ctx).ndispatch, 0);
    cr_assert_eq(n_k, 0);

    /* k's item: target mode, attempt 3. */
    {
        sk_ctx_t *t = make(&wf, key);
        load_k_retry(t, 2, k->wait_info, k->wait_len);
        cr_assert_eq(sk_ctx_enter(t, &e), SK_OK);
        cr_assert_eq(e.kind, SK_ENTRY_STEP_DONE);
        cr_assert_eq(n_k, 1);
        cr_assert_eq(k_attempt, 3);
        cr_assert_eq(op_of(t, "k")->attempts, 3);
        sk_ctx_free(t);
    }
    sk_ctx_free(ctx);
}
