/*
 * Flow control (sql/010_flow.sql, docs/flow-control.md): concurrency limits
 * per key across two masters with runs finishing and failing meanwhile, no
 * starving key, priorities, start rate limits, debounce and singleton.
 *
 * The limits are checked from the bodies' own wall-clock intervals (the
 * counts file), not from the engine's bookkeeping.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"
#include "sk_log.h"
#include "sk_migrate.h"

#define MAX_RUNS 400

/* A run's span: first body start to last body end (us), and its key. */
typedef struct {
    char run[64];
    char key[64];
    long long start, end;
} span_t;

static int load_spans(span_t *s, int max)
{
    FILE *f = fopen(itest.counts, "r");
    char line[512];
    int n = 0;

    cr_assert_not_null(f, "no counts file %s", itest.counts);
    while (fgets(line, sizeof(line), f) != NULL) {
        char run[64], key[64];
        long long a, b;
        int i;

        if (sscanf(line, "%63s iv:%63[^:]:%lld:%lld", run, key, &a, &b) != 4)
            continue;
        for (i = 0; i < n && strcmp(s[i].run, run) != 0; i++)
            ;
        if (i == n) {
            cr_assert_lt(n, max);
            snprintf(s[n].run, sizeof(s[n].run), "%s", run);
            snprintf(s[n].key, sizeof(s[n].key), "%s", key);
            s[n].start = a;
            s[n].end = b;
            n++;
        } else {
            s[i].start = a < s[i].start ? a : s[i].start;
            s[i].end = b > s[i].end ? b : s[i].end;
        }
    }
    fclose(f);
    return n;
}

/* Most spans of `key` open at one instant (a span is open on [start, end)). */
static int max_overlap(const span_t *s, int n, const char *key)
{
    int best = 0;

    for (int i = 0; i < n; i++) {
        int open = 0;
        if (strcmp(s[i].key, key) != 0)
            continue;
        for (int j = 0; j < n; j++) {
            if (strcmp(s[j].key, key) == 0 && s[j].start <= s[i].start && s[i].start < s[j].end)
                open++;
        }
        best = open > best ? open : best;
    }
    return best;
}

/* The schema migrated without a master (the SQL-only tests). */
static void migrate_only(void)
{
    PGconn *mig = PQconnectdb(itest.url);
    char err[512];
    int applied = 0;

    cr_assert_eq(PQstatus(mig), CONNECTION_OK);
    sk_log_level = SK_LOG_WARN;
    cr_assert_eq(sk_migrate(mig, itest.schema, &applied, err, sizeof(err)), SK_OK, "migrate: %s",
                 err);
    PQfinish(mig);
}

static void up_two_masters(int workers)
{
    itest_master_opts_t o = {.workers = workers};
    itest_master_t *m1 = itest_master_start(&o), *m2 = itest_master_start(&o);

    itest_master_wait_ready(m1, itest_test_workflows);
    itest_master_wait_ready(m2, itest_test_workflows);
}

Test(flow, concurrency_limit_per_key_holds_across_masters_with_failures, ITEST_FIXTURES)
{
    static span_t spans[MAX_RUNS];
    static const char *const keys[] = {"k0", "k1", "k2", "k3"};
    char run[SK_UUID_LEN], json[128];
    int n, failed = 0, reached = 0;

    up_two_masters(3);
    for (int i = 0; i < 80; i++) {
        int fail = i % 5 == 4;
        snprintf(json, sizeof(json), "{\"customer\": \"%s\", \"ms\": %d, \"fail\": %s}",
                 keys[i % 4], 10 + (i * 7) % 30, fail ? "true" : "false");
        itest_start("flow-call", json, run);
        failed += fail;
    }
    cr_assert_eq(itest_wait_ended(80, 120000), 80);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'failed'"), failed);
    n = load_spans(spans, MAX_RUNS);
    cr_expect_eq(n, 80, "%d runs counted a body", n);
    for (int k = 0; k < 4; k++) {
        int m = max_overlap(spans, n, keys[k]);
        cr_expect_leq(m, 2, "key %s had %d runs in progress at once", keys[k], m);
        reached += m == 2;
    }
    cr_expect_gt(reached, 0, "no key ever had 2 runs at once: the limit was not exercised");
    /* Every slot was given back, nothing is left parked. */
    cr_expect_eq(itest_long("SELECT coalesce(sum(in_flight), 0) FROM flow_slots"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM flow_holders"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    itest_finish();
}

Test(flow, a_key_with_a_backlog_does_not_starve_the_others, ITEST_FIXTURES)
{
    char run[SK_UUID_LEN], json[128];
    long hot_before;

    up_two_masters(2);
    for (int i = 0; i < 40; i++)
        itest_start("flow-call", "{\"customer\": \"hot\", \"ms\": 20}", run);
    for (int i = 0; i < 6; i++) {
        snprintf(json, sizeof(json), "{\"customer\": \"cold%d\", \"ms\": 5}", i);
        itest_start("flow-call", json, run);
    }
    cr_assert_eq(itest_wait_ended(46, 120000), 46);
    /* The cold keys ran beside the hot backlog (2 of 4 workers are free
     * of it), not after it. */
    hot_before = itest_long("SELECT count(*) FROM runs h WHERE h.data = to_msgpack("
                            "'{\"customer\": \"hot\", \"ms\": 20}') AND h.ended_at <= "
                            "(SELECT max(ended_at) FROM runs c WHERE c.data <> h.data)");
    cr_expect_lt(hot_before, 30, "%ld of 40 hot runs ended before the last cold one", hot_before);
    itest_finish();
}

Test(flow, higher_priority_runs_go_first, ITEST_FIXTURES)
{
    itest_master_opts_t o = {.workers = 1};
    itest_master_t *m;
    long inversions;

    /* Registered by a first master, queued while none runs. */
    m = itest_master_up(&o);
    cr_assert_eq(itest_master_stop(m, 10000), 0);
    for (int i = 0; i < 10; i++)
        itest_query("SELECT start_run_prio('flow-plain', '{\"customer\": \"low\"}', 0)");
    for (int i = 0; i < 10; i++)
        itest_query("SELECT start_run_prio('flow-plain', '{\"customer\": \"high\"}', 600)");
    itest_master_up(&o);
    cr_assert_eq(itest_wait_ended(20, 60000), 20);
    inversions = itest_long("SELECT count(*) FROM runs l, runs h"
                            " WHERE l.data = to_msgpack('{\"customer\": \"low\"}')"
                            "   AND h.data = to_msgpack('{\"customer\": \"high\"}')"
                            "   AND l.ended_at < h.ended_at");
    cr_expect_eq(inversions, 0, "%ld low-priority runs ended before high ones", inversions);
    itest_finish();
}

Test(flow, start_rate_holds_in_every_window, ITEST_FIXTURES)
{
    static span_t spans[MAX_RUNS];
    long long starts[64];
    char run[SK_UUID_LEN];
    int n, k = 0;

    up_two_masters(2);
    for (int i = 0; i < 15; i++)
        itest_start("flow-rated", "{\"customer\": \"r\", \"ms\": 1}", run);
    itest_start("flow-rated", "{\"customer\": \"other\", \"ms\": 1}", run);
    cr_assert_eq(itest_wait_ended(16, 60000), 16);
    n = load_spans(spans, MAX_RUNS);
    for (int i = 0; i < n; i++) {
        if (strcmp(spans[i].key, "r") == 0)
            starts[k++] = spans[i].start;
    }
    cr_assert_eq(k, 15);
    for (int i = 0; i < k; i++) /* sort */
        for (int j = i + 1; j < k; j++)
            if (starts[j] < starts[i]) {
                long long t = starts[i];
                starts[i] = starts[j];
                starts[j] = t;
            }
    /* 5 per 1000 ms: the 6th admission after any admission is a period
     * later.  The rate is enforced when the claim admits a run; its body
     * starts a little later (a commit, a replay: tens of ms on this shared
     * machine), so body starts are checked with 200 ms of slack. */
    for (int i = 0; i + 5 < k; i++)
        cr_expect_geq(starts[i + 5] - starts[i], 800000, "starts %d and %d are %lld us apart", i,
                      i + 5, starts[i + 5] - starts[i]);
    /* 15 starts at 5 a second take two periods at least. */
    cr_expect_geq(starts[k - 1] - starts[0], 1900000);
    itest_finish();
}

Test(flow, debounce_replaces_the_pending_run_until_it_starts, ITEST_FIXTURES)
{
    char *a, *b, *c, *d;

    migrate_only();
    itest_query("INSERT INTO workflows (workflow_id, max_attempts) VALUES ('deb', 4)");
    a = itest_str("SELECT start_run_debounced('deb', '{\"n\": 1}', 'k', 60000)");
    b = itest_str("SELECT start_run_debounced('deb', '{\"n\": 2}', 'k', 60000)");
    cr_expect_str_eq(a, b, "a start within the window made another run");
    c = itest_bytea_json("SELECT data FROM runs WHERE run_id = $1", a);
    cr_expect_str_eq(c, "{\"n\":2}", "the last input wins");
    cr_expect_eq(itest_long("SELECT count(*) FROM runs"), 1);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE visible_at > now() + "
                            "interval '59 s'"),
                 1, "the start was not pushed to the end of the window");
    /* Another key is another run. */
    free(itest_str("SELECT start_run_debounced('deb', '{\"n\": 3}', 'other', 0)"));
    cr_expect_eq(itest_long("SELECT count(*) FROM runs"), 2);
    /* Once the run has started (claimed), a start makes a new one. */
    itest_query("UPDATE exec_queue SET visible_at = now() WHERE run_id = $1", a);
    itest_query("SELECT * FROM claim(30000, 'test', '{deb}')"); /* 'other' */
    itest_query("SELECT * FROM claim(30000, 'test', '{deb}')"); /* a */
    cr_expect_eq(itest_long("SELECT epoch FROM exec_queue WHERE run_id = $1", a), 1);
    d = itest_str("SELECT start_run_debounced('deb', '{\"n\": 4}', 'k', 60000)");
    cr_expect_str_neq(a, d, "a started run was replaced");
    cr_expect_eq(itest_long("SELECT count(*) FROM runs"), 3);
    free(a);
    free(b);
    free(c);
    free(d);
    itest_finish();
}

Test(flow, singleton_starts_one_run_per_key_and_window, ITEST_FIXTURES)
{
    char *a, *b, *c, *e;

    migrate_only();
    itest_query("INSERT INTO workflows (workflow_id, max_attempts) VALUES ('one', 4)");
    a = itest_str("SELECT start_run_singleton('one', '{\"n\": 1}', 'k')");
    b = itest_str("SELECT start_run_singleton('one', '{\"n\": 2}', 'k')");
    cr_expect_str_eq(a, b, "a second run while the first is pending");
    c = itest_bytea_json("SELECT data FROM runs WHERE run_id = $1", a);
    cr_expect_str_eq(c, "{\"n\":1}", "the first input stays");
    /* Ended: the next start is a new run (no window). */
    itest_query("UPDATE runs SET status = 'completed', ended_at = now() WHERE run_id = $1", a);
    e = itest_str("SELECT start_run_singleton('one', '{\"n\": 3}', 'k')");
    cr_expect_str_neq(a, e);
    /* With a window, even an ended run counts while the window lasts. */
    itest_query("UPDATE runs SET status = 'completed', ended_at = now() WHERE run_id = $1", e);
    free(b);
    b = itest_str("SELECT start_run_singleton('one', '{\"n\": 4}', 'k', 60000)");
    cr_expect_str_eq(b, e, "a start inside the window made a run");
    cr_expect_eq(itest_long("SELECT count(*) FROM runs"), 2);
    free(a);
    free(b);
    free(c);
    free(e);
    itest_finish();
}

Test(flow, sql_settings_keys_and_bad_input, ITEST_FIXTURES)
{
    PGresult *r;

    migrate_only();
    itest_query("INSERT INTO workflows (workflow_id, max_attempts) VALUES ('s', 4)");
    /* Keys from the input by paths, composite keys. */
    free(itest_str("SELECT set_flow_control('s', 1, 'region, who.id')"));
    itest_query("SELECT start_run('s', '{\"region\": \"eu\", \"who\": {\"id\": 42, \"x\": [1]}}')");
    itest_query("SELECT start_run('s', '{\"region\": \"eu\", \"who\": {\"id\": 42}}')");
    itest_query("SELECT start_run('s', '{\"who\": {\"id\": -7}}')");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE flow_key = 'eu/42'"), 2);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE flow_key = '/-7'"), 1);
    /* Limit 1: the second run of eu/42 is parked, the other key runs. */
    for (int i = 0; i < 3; i++)
        itest_query("SELECT * FROM claim(30000, 'test', '{s}')");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE flow_parked"), 1);
    cr_expect_eq(itest_long("SELECT count(*) FROM flow_holders"), 2);
    /* Raising the limit from SQL hands the new slot over at once. */
    free(itest_str("SELECT set_flow_control('s', 2, 'region, who.id')"));
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE flow_parked"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE visible_at <= now()"), 1);

    r = PQexecParams(itest.pg, "SELECT set_flow_control('s', 0)", 0, NULL, NULL, NULL, NULL, 0);
    cr_expect_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "limit 0 accepted");
    PQclear(r);
    r = PQexecParams(itest.pg, "SELECT set_flow_control('s', NULL, NULL, 5)", 0, NULL, NULL, NULL,
                     NULL, 0);
    cr_expect_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "a rate without a period accepted");
    cr_expect(strstr(PQresultErrorMessage(r), "period") != NULL, "%s", PQresultErrorMessage(r));
    PQclear(r);
    r = PQexecParams(itest.pg, "SELECT set_flow_control('nope', 1)", 0, NULL, NULL, NULL, NULL, 0);
    cr_expect_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "SK002");
    PQclear(r);
    r = PQexecParams(itest.pg, "SELECT start_run_prio('s', 'null', 90000)", 0, NULL, NULL, NULL,
                     NULL, 0);
    cr_expect_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "priority 90000 accepted");
    PQclear(r);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs"), 3, "a refused start left a run");

    /* The command line's --priority. */
    {
        static const char *const args[] = {"start", "s", "--priority", "600", NULL};
        static const char *const bad[] = {"start", "s", "--priority", "-1", NULL};
        itest_cmd_t c;
        itest_cli(args, &c);
        cr_expect_eq(c.code, 0, "stepkit start --priority: %s", c.err);
        c.out[strcspn(c.out, "\n")] = '\0';
        cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE run_id = $1::uuid"
                                " AND visible_at < now() - interval '590 s'",
                                c.out),
                     1, "run %s does not rank 600 s earlier", c.out);
        itest_cmd_free(&c);
        itest_cli(bad, &c);
        cr_expect_eq(c.code, 2, "a negative priority was accepted");
        itest_cmd_free(&c);
    }
    itest_finish();
}
