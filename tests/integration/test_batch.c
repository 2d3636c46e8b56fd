/*
 * Batching (--batch): one worker claims several ready items at once, runs
 * the next step of each and commits their results in one transaction.
 * Fencing stays per item: when one item of a batch loses its lease while
 * the batch's steps run, the others' results still commit (in that same
 * transaction), and the lost item's step is recorded once, by whoever
 * takes the item over.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"

#define CHAINS 4

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A schema with its migrations applied and no master running. */
static void migrated_schema(void)
{
    itest_master_opts_t opts = {.workers = 1};
    itest_master_t *m = itest_master_up(&opts);

    cr_assert_eq(itest_master_stop(m, 10000), 0);
}

/*
 * A warm-up chain3 run, CHAINS chain3 runs, then one slow-once run whose
 * first body sleeps slow_ms, queued before a single batching worker (lease
 * lease_ms, a window long enough that a round never stops early) starts.
 * The worker takes one item at a time until it has timed a body (the
 * warm-up run), then the others at once; returns once its first round runs
 * the slow body, after the chains' first steps.
 */
static itest_master_t *round_with_a_slow_body(int lease_ms, const char *slow_json,
                                              char warm[SK_UUID_LEN],
                                              char chains[CHAINS][SK_UUID_LEN],
                                              char slow[SK_UUID_LEN])
{
    itest_master_opts_t opts = {
        .workers = 1, .lease_ms = lease_ms, .extra = {"--batch", "8", "--batch-window", "10000"}};
    itest_master_t *m;

    migrated_schema();
    itest_start("chain3", "{\"sleep_ms\": 0}", warm);
    for (int i = 0; i < CHAINS; i++)
        itest_start("chain3", "{\"sleep_ms\": 0}", chains[i]);
    itest_start("slow-once", slow_json, slow);
    m = itest_master_up(&opts);
    for (int i = 0; i < 500 && itest_count(itest.counts, slow, "slow") < 1; i++)
        nap(10);
    cr_assert_eq(itest_count(itest.counts, slow, "slow"), 1);
    for (int i = 0; i < CHAINS; i++)
        cr_assert_eq(itest_count(itest.counts, chains[i], "s1"), 1, "chain %d's s1 not run yet", i);
    return m;
}

/*
 * A warm-up chain3 run, four chain3 runs, then one slow-once run (its body
 * sleeps 1500 ms) are queued before the only worker starts.  A new worker
 * takes one item at a time until it has timed a body (the warm-up run);
 * then it claims the five others at once and its first round runs the
 * first step of each (the window is long: the round does not stop early).
 * While the slow body sleeps, the first chain run's item is taken away (its
 * epoch moves on, as a takeover does).  The round's commit must leave the
 * lost item out and commit the other five results together.  The lost
 * run's lease expires, the worker takes it over and runs its first step
 * again, and every run completes with each op recorded once.
 */
Test(batch, lost_lease_of_one_item_does_not_undo_the_others, ITEST_FIXTURES)
{
    char warm[SK_UUID_LEN], chains[CHAINS][SK_UUID_LEN], slow[SK_UUID_LEN], needle[160], key_s1[41],
        key_slow[41];
    itest_master_t *m;
    long ended;

    /* The slow body runs: the chains' first steps ran before it, in this
     * round, and wait for its commit. */
    m = round_with_a_slow_body(2000, "{\"first_ms\": 1500}", warm, chains, slow);
    cr_assert_eq(itest_long("SELECT count(*) FROM ops WHERE run_id <> $1::uuid", warm), 0,
                 "a result committed before the round");
    cr_assert_eq(
        itest_long("SELECT count(*) FROM exec_queue WHERE run_id = $1::uuid AND leased", chains[0]),
        1);
    cr_assert_eq(itest_long("WITH u AS (UPDATE exec_queue SET epoch = epoch + 1"
                            "            WHERE op_key IS NULL AND run_id = $1::uuid RETURNING 1)"
                            " SELECT count(*) FROM u",
                            chains[0]),
                 1);

    ended = itest_wait_ended(CHAINS + 2, 30000);
    cr_assert_eq(ended, CHAINS + 2, "only %ld runs ended", ended);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'completed'"), CHAINS + 2);

    /* The lost item was left out of the batch's commit, named in the log. */
    snprintf(needle, sizeof(needle), "event=lease_lost run=%s", chains[0]);
    cr_expect_eq(itest_log_count(m, needle), 1, "'%s' lines in %s", needle, m->log);
    cr_expect_eq(itest_log_count(m, "event=lease_lost"), 1);

    /* The others' first results committed in one transaction, the round's;
     * the lost run's first step was recorded later, by the takeover. */
    itest_op_key("s1", 0, key_s1);
    itest_op_key("slow", 0, key_slow);
    cr_expect_eq(itest_long("SELECT count(DISTINCT xmin::text) FROM ops"
                            " WHERE (op_key = $1 AND run_id NOT IN ($3::uuid, $4::uuid))"
                            "    OR op_key = $2",
                            key_s1, key_slow, chains[0], warm),
                 1, "the batch's results did not commit together");
    cr_expect_eq(itest_long("SELECT count(*) FROM ops o, ops p"
                            " WHERE o.run_id = $2::uuid AND o.op_key = $1"
                            "   AND p.op_key = $1 AND p.run_id <> o.run_id AND p.xmin = o.xmin",
                            key_s1, chains[0]),
                 0, "the lost item's result committed with the batch");

    /* Bodies: the lost run's first step twice (its result was never
     * recorded the first time), everything else once. */
    cr_expect_eq(itest_count(itest.counts, chains[0], "s1"), 2);
    for (int i = 0; i < CHAINS; i++) {
        if (i > 0)
            cr_expect_eq(itest_count(itest.counts, chains[i], "s1"), 1, "chain %d", i);
        cr_expect_eq(itest_count(itest.counts, chains[i], "s2"), 1, "chain %d", i);
        cr_expect_eq(itest_count(itest.counts, chains[i], "s3"), 1, "chain %d", i);
        cr_expect_eq(itest_count(itest.counts, chains[i], "after"), 1, "chain %d", i);
        /* (chain 0: one entry more, the takeover's, reran s1) */
        cr_expect_eq(itest_count(itest.counts, chains[i], "handler"), i > 0 ? 4 : 5, "chain %d", i);
    }
    cr_expect_eq(itest_count(itest.counts, slow, "slow"), 1);
    cr_expect_eq(itest_count(itest.counts, slow, "handler"), 2);

    /* Every op recorded once, with one attempt; nothing left queued. */
    cr_expect_eq(itest_long("SELECT count(*) FROM ops"), (CHAINS + 1) * 3 + 1);
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE status <> 'ok' OR attempts <> 1"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    itest_finish();
}

/* Many short runs through a batching worker pool: every run ends once,
 * every step body runs once, and batches did form (several results share a
 * transaction). */
Test(batch, many_runs_complete_once, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 2, .extra = {"--batch", "8"}};
    static char runs[200][SK_UUID_LEN];
    itest_counts_t *counts;
    long ended;

    migrated_schema();
    for (int i = 0; i < 200; i++)
        itest_start("chain3", "{\"sleep_ms\": 0}", runs[i]);
    itest_master_up(&opts);
    ended = itest_wait_ended(200, 60000);
    cr_assert_eq(ended, 200, "only %ld runs ended", ended);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'completed'"), 200);
    cr_expect_eq(itest_long("SELECT count(*) FROM ops"), 600);
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE status <> 'ok' OR attempts <> 1"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    cr_expect_gt(itest_long("SELECT max(n) FROM (SELECT count(*) AS n FROM ops"
                            " GROUP BY xmin::text) t"),
                 1, "no two results committed together");
    counts = itest_counts_load(itest.counts);
    for (int i = 0; i < 200; i++) {
        cr_expect_eq(itest_counts_get(counts, runs[i], "s1"), 1);
        cr_expect_eq(itest_counts_get(counts, runs[i], "s3"), 1);
        cr_expect_eq(itest_counts_get(counts, runs[i], "handler"), 4);
    }
    itest_counts_free(counts);
    itest_finish();
}

/*
 * A batching worker is killed while one of its batch's bodies runs: the
 * slot's next worker hands back every item of the batch at once, not only
 * the one whose body ran (the slot lists them all), so no run waits for its
 * 30 s lease.  The round's bodies whose results had not committed run
 * again; the killed body's step counts the death as an attempt.
 */
Test(batch, a_dead_workers_whole_batch_comes_back_at_once, ITEST_FIXTURES)
{
    char warm[SK_UUID_LEN], chains[CHAINS][SK_UUID_LEN], slow[SK_UUID_LEN];
    itest_master_t *m;
    int64_t killed;
    long ended;
    pid_t pid;

    /* The slow body runs after the chains' first steps, in one round. */
    m = round_with_a_slow_body(30000, "{\"first_ms\": 5000}", warm, chains, slow);
    pid = itest_holder_pid(slow);
    for (int i = 0; i < CHAINS; i++)
        cr_assert_eq(itest_holder_pid(chains[i]), pid, "chain %d is not in the batch", i);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    killed = now_ms();

    ended = itest_wait_ended(CHAINS + 2, 25000);
    cr_assert_eq(ended, CHAINS + 2, "only %ld runs ended", ended);
    cr_expect_lt(now_ms() - killed, 15000, "runs waited %lld ms: for their leases?",
                 (long long)(now_ms() - killed));
    cr_log_info("the batch's runs ended %lld ms after the kill (lease 30 s)",
                (long long)(now_ms() - killed));
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'completed'"), CHAINS + 2);
    cr_expect_eq(itest_log_count(m, "event=batch_reclaimed"), 1, "log %s", m->log);
    cr_expect_eq(itest_log_count(m, "items=4 handed_back=4"), 1, "log %s", m->log);
    cr_expect_eq(itest_log_count(m, "event=item_reclaimed"), 1, "log %s", m->log);

    /* The chains' first bodies ran again (never committed), the rest once;
     * the killed slow step's second attempt ran at once ("fresh"). */
    for (int i = 0; i < CHAINS; i++) {
        cr_expect_eq(itest_count(itest.counts, chains[i], "s1"), 2, "chain %d", i);
        cr_expect_eq(itest_count(itest.counts, chains[i], "s2"), 1, "chain %d", i);
        cr_expect_eq(itest_count(itest.counts, chains[i], "s3"), 1, "chain %d", i);
    }
    cr_expect_eq(itest_count(itest.counts, slow, "slow"), 2);
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE attempts <> 1"), 1);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    itest_finish();
}

/*
 * A batch takes at most one group member's item, as its last (sql/015):
 * members are dispatched to run side by side on several workers.  Four
 * ready items, the second a member's: one claim_batch takes the first two
 * and stops; the next takes the other two.
 */
Test(batch, a_batch_stops_after_a_group_members_item, ITEST_FIXTURES)
{
    char runs[4][SK_UUID_LEN];
    static const char *const ago[] = {"40", "30", "20", "10"};

    migrated_schema();
    for (int i = 0; i < 4; i++) {
        itest_start("chain3", "{\"sleep_ms\": 0}", runs[i]);
        PQclear(itest_query("UPDATE exec_queue SET visible_at = now() - $2::int * interval '1 s'"
                            " WHERE run_id = $1::uuid",
                            runs[i], ago[i]));
    }
    PQclear(itest_query("UPDATE exec_queue SET op_key = repeat('a', 40) WHERE run_id = $1::uuid",
                        runs[1]));
    cr_expect_eq(itest_long("SELECT count(DISTINCT item_id) FROM"
                            " claim_batch(30000, 'test:1', ARRAY['chain3'], 8)"
                            " WHERE item_id IS NOT NULL"),
                 2, "the batch did not stop after the member's item");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE leased AND run_id IN"
                            " ($1::uuid, $2::uuid)",
                            runs[0], runs[1]),
                 2);
    cr_expect_eq(itest_long("SELECT count(DISTINCT item_id) FROM"
                            " claim_batch(30000, 'test:1', ARRAY['chain3'], 8)"
                            " WHERE item_id IS NOT NULL"),
                 2);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE NOT leased"), 0);
    itest_finish();
}
