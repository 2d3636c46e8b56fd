/*
 * Flow control (sql/010_flow.sql, sql/013_flow_steps.sql,
 * docs/flow-control.md): concurrency limits per key across two masters
 * with runs finishing and failing meanwhile, no starving key, priorities,
 * start rate limits, step rate limits, debounce and singleton, the wake-up
 * of a released parked run.
 *
 * The limits are checked from the bodies' own wall-clock intervals (the
 * counts file), not from the engine's bookkeeping.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../workflows/flowwf.h"
#include "itest.h"
#include "sk_log.h"
#include "sk_migrate.h"
#include "sk_registry.h"

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

/* Read from the order the runs end, so one item at a time (--batch 1): a
 * batch claims in priority order too, but runs what it holds side by side
 * (a round whose window filled leaves later entries to the next round). */
Test(flow, higher_priority_runs_go_first, ITEST_FIXTURES)
{
    itest_master_opts_t o = {.workers = 1, .extra = {"--batch", "1"}};
    itest_master_t *m;
    long inversions;

    /* Registered by a first master, queued while none runs. */
    m = itest_master_up(&o);
    cr_assert_eq(itest_master_stop(m, 10000), 0);
    for (int i = 0; i < 10; i++)
        PQclear(itest_query("SELECT start_run_prio('flow-plain', '{\"customer\": \"low\"}', 0)"));
    for (int i = 0; i < 10; i++)
        PQclear(
            itest_query("SELECT start_run_prio('flow-plain', '{\"customer\": \"high\"}', 600)"));
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
    PQclear(itest_query("INSERT INTO workflows (workflow_id, max_attempts) VALUES ('deb', 4)"));
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
    PQclear(itest_query("UPDATE exec_queue SET visible_at = now() WHERE run_id = $1", a));
    PQclear(itest_query("SELECT * FROM claim(30000, 'test', '{deb}')")); /* 'other' */
    PQclear(itest_query("SELECT * FROM claim(30000, 'test', '{deb}')")); /* a */
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
    PQclear(itest_query("INSERT INTO workflows (workflow_id, max_attempts) VALUES ('one', 4)"));
    a = itest_str("SELECT start_run_singleton('one', '{\"n\": 1}', 'k')");
    b = itest_str("SELECT start_run_singleton('one', '{\"n\": 2}', 'k')");
    cr_expect_str_eq(a, b, "a second run while the first is pending");
    c = itest_bytea_json("SELECT data FROM runs WHERE run_id = $1", a);
    cr_expect_str_eq(c, "{\"n\":1}", "the first input stays");
    /* Ended: the next start is a new run (no window). */
    PQclear(
        itest_query("UPDATE runs SET status = 'completed', ended_at = now() WHERE run_id = $1", a));
    e = itest_str("SELECT start_run_singleton('one', '{\"n\": 3}', 'k')");
    cr_expect_str_neq(a, e);
    /* With a window, even an ended run counts while the window lasts. */
    PQclear(
        itest_query("UPDATE runs SET status = 'completed', ended_at = now() WHERE run_id = $1", e));
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
    PQclear(itest_query("INSERT INTO workflows (workflow_id, max_attempts) VALUES ('s', 4)"));
    /* Keys from the input by paths, composite keys. */
    free(itest_str("SELECT set_flow_control('s', 1, 'region, who.id')"));
    PQclear(itest_query(
        "SELECT start_run('s', '{\"region\": \"eu\", \"who\": {\"id\": 42, \"x\": [1]}}')"));
    PQclear(itest_query("SELECT start_run('s', '{\"region\": \"eu\", \"who\": {\"id\": 42}}')"));
    PQclear(itest_query("SELECT start_run('s', '{\"who\": {\"id\": -7}}')"));
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE flow_key = 'eu/42'"), 2);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE flow_key = '/-7'"), 1);
    /* Limit 1: the second run of eu/42 is parked, the other key runs. */
    for (int i = 0; i < 3; i++)
        PQclear(itest_query("SELECT * FROM claim(30000, 'test', '{s}')"));
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

/* ---- step rates (sql/013_flow_steps.sql) ------------------------------------------ */

#define MAX_STAMPS              400
#define STR_(x)                 #x
#define STR(x)                  STR_(x)
#define FLOWWF_STEP_LIMIT_S     STR(FLOWWF_STEP_LIMIT)
#define FLOWWF_STEP_PERIOD_MS_S STR(FLOWWF_STEP_PERIOD_MS)

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

/* The body start times (us) of one key, from the "st:" lines, sorted. */
static int load_stamps(const char *key, long long *t, int max)
{
    FILE *f = fopen(itest.counts, "r");
    char line[512];
    int n = 0;

    cr_assert_not_null(f, "no counts file %s", itest.counts);
    while (fgets(line, sizeof(line), f) != NULL) {
        char run[64], k[64];
        long long a;

        if (sscanf(line, "%63s st:%63[^:]:%lld", run, k, &a) != 3 || strcmp(k, key) != 0)
            continue;
        cr_assert_lt(n, max);
        t[n++] = a;
    }
    fclose(f);
    qsort(t, (size_t)n, sizeof(*t), cmp_ll);
    return n;
}

/* The database's own record of every take and every refusal of a step
 * token (table take_log), from a trigger on flow_step_rates. */
static void install_take_log(void)
{
    itest_exec_sql("CREATE TABLE take_log (key text, at bigint, taken boolean)");
    itest_exec_sql("CREATE FUNCTION take_log() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                   "  INSERT INTO take_log SELECT NEW.key, x.h, true FROM"
                   "   (SELECT h FROM unnest(NEW.hits) h EXCEPT ALL"
                   "    SELECT h FROM unnest(OLD.hits) h) x;"
                   "  IF NEW.hits = OLD.hits THEN"
                   "    INSERT INTO take_log VALUES (NEW.key, NULL, false);"
                   "  END IF;"
                   "  RETURN NULL; END $$");
    itest_exec_sql("CREATE TRIGGER take_log AFTER UPDATE ON flow_step_rates"
                   " FOR EACH ROW EXECUTE FUNCTION take_log()");
}

/* Takes of one key closer than a period to the LIMIT-th before them. */
static long takes_too_close(void)
{
    return itest_long("SELECT count(*) FROM (SELECT at - lag(at, $1::int) OVER"
                      "  (PARTITION BY key ORDER BY at) AS d FROM take_log WHERE taken) x"
                      " WHERE d < $2::int",
                      FLOWWF_STEP_LIMIT_S, FLOWWF_STEP_PERIOD_MS_S);
}

/*
 * 2 masters x 3 workers; flow-steps allows FLOWWF_STEP_LIMIT (4) body
 * executions per FLOWWF_STEP_PERIOD_MS (500) per customer.  A hot key with
 * a backlog and two cold keys; runs that retry a step, runs that fail.
 * Checked from the bodies' own start times: the (LIMIT+1)-th execution
 * after any execution of a key starts a period later.  The token is taken
 * on the database clock and committed just before the body starts (one
 * commit later); the check allows 50 ms for that.  On the database clock
 * (a trigger logs every take) the bound is exact.
 */
Test(flow, step_rate_holds_in_every_window_across_masters, ITEST_FIXTURES)
{
    static long long t[MAX_STAMPS];
    static const char *const keys[] = {"hot", "cold1", "cold2"};
    const long long period_us = FLOWWF_STEP_PERIOD_MS * 1000LL;
    char run[SK_UUID_LEN], json[160];
    int runs = 0, failing = 0, flaky = 0, total = 0;
    long hot_before, refused;

    up_two_masters(3);
    install_take_log();
    for (int i = 0; i < 16; i++) {
        int fail = i % 5 == 3, fl = i % 3 == 1;
        snprintf(json, sizeof(json),
                 "{\"customer\": \"hot\", \"ms\": 5, \"flaky\": %s, \"fail\": %s}",
                 fl ? "true" : "false", fail ? "true" : "false");
        itest_start("flow-steps", json, run);
        runs++;
        failing += fail;
        flaky += fl;
    }
    for (int i = 0; i < 4; i++) {
        snprintf(json, sizeof(json), "{\"customer\": \"%s\", \"ms\": 5, \"flaky\": %s}",
                 keys[1 + i % 2], i < 2 ? "true" : "false");
        itest_start("flow-steps", json, run);
        runs++;
    }
    cr_assert_eq(itest_wait_ended(runs, 120000), runs);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'failed'"), failing);
    for (int k = 0; k < 3; k++) {
        int n = load_stamps(keys[k], t, MAX_STAMPS);
        total += n;
        for (int i = 0; i + FLOWWF_STEP_LIMIT < n; i++)
            cr_expect_geq(t[i + FLOWWF_STEP_LIMIT] - t[i], period_us - 50000,
                          "key %s: executions %d and %d started %lld us apart", keys[k], i,
                          i + FLOWWF_STEP_LIMIT, t[i + FLOWWF_STEP_LIMIT] - t[i]);
        if (k == 0) {
            /* 16 runs x 3 steps + the retries: every execution counted. */
            cr_expect_eq(n, 16 * 3 + flaky, "hot: %d executions", n);
            /* and the limit was reached: 53 executions at 4 per 500 ms
             * take 6 periods at least. */
            cr_expect_geq(t[n - 1] - t[0],
                          (long long)((n - 1) / FLOWWF_STEP_LIMIT) * period_us - 50000);
        }
    }
    cr_expect_eq(total, runs * 3 + flaky + 2, "executions counted: %d", total);
    /* Exact on the database clock: no LIMIT + 1 takes of a key within a
     * period, and one token per execution. */
    cr_expect_eq(itest_long("SELECT count(*) FROM take_log WHERE taken"), total);
    cr_expect_eq(takes_too_close(), 0, "a key had more than %d takes within %d ms",
                 FLOWWF_STEP_LIMIT, FLOWWF_STEP_PERIOD_MS);
    /* No herd: a waiter comes back once for its slot, not at every freed
     * token (16 hot runs waiting would make that dozens per execution). */
    refused = itest_long("SELECT count(*) FROM take_log WHERE NOT taken");
    cr_log_info("step rate: %d executions, %ld refused takes", total, refused);
    cr_expect_leq(refused, 2L * total, "%ld refusals for %d executions", refused, total);
    /* The cold keys ran beside the hot backlog, at their own rate. */
    hot_before = itest_long("SELECT count(*) FROM runs h"
                            " WHERE mp_path(h.data, '{customer}') = 'hot' AND h.ended_at <="
                            "   (SELECT max(ended_at) FROM runs c"
                            "     WHERE mp_path(c.data, '{customer}') <> 'hot')");
    cr_expect_lt(hot_before, 8, "%ld of 16 hot runs ended before the last cold one", hot_before);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM flow_step_rates WHERE workflow_id = "
                            "'flow-steps'"),
                 3);
    itest_finish();
}

/* A master killed with bodies in flight: their tokens are spent, their
 * leases expire, another master retries them with new tokens.  No body
 * ever runs without a token, and the bound holds throughout. */
Test(flow, step_rate_holds_when_a_master_dies, ITEST_FIXTURES)
{
    static long long t[MAX_STAMPS];
    itest_master_opts_t o = {.workers = 3, .lease_ms = 2000};
    itest_master_t *m1;
    char run[SK_UUID_LEN];
    long takes;
    int n;

    m1 = itest_master_up(&o);
    install_take_log();
    for (int i = 0; i < 8; i++)
        itest_start("flow-steps", "{\"customer\": \"k\", \"ms\": 150}", run);
    /* Killed while bodies run (each takes 150 ms). */
    for (int i = 0; i < 100 && itest_long("SELECT count(*) FROM take_log WHERE taken") < 6; i++)
        usleep(20000);
    itest_master_kill(m1);
    itest_master_up(&o);
    cr_assert_eq(itest_wait_ended(8, 60000), 8);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'completed'"), 8);
    n = load_stamps("k", t, MAX_STAMPS);
    takes = itest_long("SELECT count(*) FROM take_log WHERE taken");
    cr_expect_geq(n, 24, "%d executions for 8 runs of 3 steps", n);
    cr_expect_leq(n, takes, "%d bodies ran on %ld tokens", n, takes);
    cr_expect_eq(takes_too_close(), 0, "more than %d takes within %d ms", FLOWWF_STEP_LIMIT,
                 FLOWWF_STEP_PERIOD_MS);
    for (int i = 0; i + FLOWWF_STEP_LIMIT < n; i++)
        cr_expect_geq(t[i + FLOWWF_STEP_LIMIT] - t[i], FLOWWF_STEP_PERIOD_MS * 1000LL - 50000,
                      "executions %d and %d started %lld us apart", i, i + FLOWWF_STEP_LIMIT,
                      t[i + FLOWWF_STEP_LIMIT] - t[i]);
    cr_log_info("master killed: %d executions, %ld tokens", n, takes);
    itest_finish();
}

/* Group members (parallel run steps) each take a token, on whichever
 * worker runs them. */
Test(flow, step_rate_counts_group_members, ITEST_FIXTURES)
{
    static long long t[MAX_STAMPS];
    char run[SK_UUID_LEN];
    int n;

    up_two_masters(3);
    for (int i = 0; i < 3; i++)
        itest_start("flow-steps-group", "{\"customer\": \"g\", \"ms\": 5}", run);
    cr_assert_eq(itest_wait_ended(3, 60000), 3);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'completed'"), 3);
    n = load_stamps("g", t, MAX_STAMPS);
    cr_expect_eq(n, 15, "%d member executions", n);
    for (int i = 0; i + FLOWWF_STEP_LIMIT < n; i++)
        cr_expect_geq(t[i + FLOWWF_STEP_LIMIT] - t[i], FLOWWF_STEP_PERIOD_MS * 1000LL - 50000,
                      "executions %d and %d started %lld us apart", i, i + FLOWWF_STEP_LIMIT,
                      t[i + FLOWWF_STEP_LIMIT] - t[i]);
    cr_expect_geq(t[n - 1] - t[0], 3LL * FLOWWF_STEP_PERIOD_MS * 1000 - 50000);
    itest_finish();
}

/* The token from SQL: taken before the limit, refused after it with a
 * slot a period after the oldest, fenced by the item's epoch, and waiters
 * get successive slots of the schedule. */
Test(flow, step_token_is_fenced_and_scheduled, ITEST_FIXTURES)
{
    char item[4][24], epoch[4][24];
    long w1, w2, w3;
    PGresult *r;

    migrate_only();
    PQclear(itest_query("INSERT INTO workflows (workflow_id, max_attempts) VALUES ('t', 4)"));
    PQclear(itest_query("SELECT set_step_rate('t', 2, 10000, 'c')"));
    for (int i = 0; i < 4; i++)
        PQclear(itest_query("SELECT start_run('t', '{\"c\": \"x\"}')"));
    for (int i = 0; i < 4; i++) {
        r = itest_query("SELECT item_id, epoch FROM claim(30000, 'test', '{t}')");
        cr_assert_eq(PQntuples(r), 1);
        snprintf(item[i], sizeof(item[i]), "%s", PQgetvalue(r, 0, 0));
        snprintf(epoch[i], sizeof(epoch[i]), "%s", PQgetvalue(r, 0, 1));
        PQclear(r);
    }
    cr_expect_eq(itest_long("SELECT flow_step_take($1::int8, $2::int4)", item[0], epoch[0]), 0);
    cr_expect_eq(itest_long("SELECT flow_step_take($1::int8, $2::int4)", item[1], epoch[1]), 0);
    /* A lost lease takes nothing. */
    r = PQexecParams(itest.pg, "SELECT flow_step_take($1::int8, $2::int4 + 1)", 2, NULL,
                     (const char *[]){item[2], epoch[2]}, NULL, NULL, 0);
    cr_expect_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "SK001");
    PQclear(r);
    /* Used up: the next two wait a period for the two tokens to free, one
     * slot each (not both for the first). */
    w1 = itest_long("SELECT flow_step_take($1::int8, $2::int4)", item[2], epoch[2]);
    w2 = itest_long("SELECT flow_step_take($1::int8, $2::int4)", item[3], epoch[3]);
    cr_expect(w1 > 9000 && w1 <= 10001, "first waiter: %ld ms", w1);
    cr_expect(w2 > 9000 && w2 <= 10001, "second waiter: %ld ms", w2);
    cr_expect_eq(itest_long("SELECT count(DISTINCT step_slot_ms) FROM exec_queue"
                            " WHERE step_slot_ms IS NOT NULL"),
                 2);
    /* Back before its slot: the same slot, nothing taken. */
    w3 = itest_long("SELECT flow_step_take($1::int8, $2::int4)", item[2], epoch[2]);
    cr_expect(w3 <= w1 && w3 > 8000, "early return: %ld ms", w3);
    cr_expect_eq(itest_long("SELECT cardinality(hits) FROM flow_step_rates WHERE key = 'x'"), 2);
    /* A new item of the key waits behind them (the schedule is full). */
    PQclear(itest_query("SELECT start_run('t', '{\"c\": \"x\"}')"));
    r = itest_query("SELECT item_id, epoch FROM claim(30000, 'test', '{t}')");
    cr_expect_gt(itest_long("SELECT flow_step_take($1::int8, $2::int4)", PQgetvalue(r, 0, 0),
                            PQgetvalue(r, 0, 1)),
                 19000, "a new take passed the waiters");
    PQclear(r);
    /* Another key has its own tokens. */
    PQclear(itest_query("SELECT start_run('t', '{\"c\": \"y\"}')"));
    r = itest_query("SELECT item_id, epoch FROM claim(30000, 'test', '{t}')");
    cr_expect_eq(itest_long("SELECT flow_step_take($1::int8, $2::int4)", PQgetvalue(r, 0, 0),
                            PQgetvalue(r, 0, 1)),
                 0);
    PQclear(r);
    /* A changed rate: a waiter handed back for its slot comes back now,
     * without its slot, and the schedule restarts from the log. */
    PQclear(itest_query("UPDATE exec_queue SET leased = false, visible_at = now() + interval"
                        " '1 hour' WHERE item_id = $1::int8",
                        item[2]));
    PQclear(itest_query("SELECT set_step_rate('t', 2, 5000, 'c')"));
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE item_id = $1::int8"
                            " AND visible_at <= now() AND step_slot_ms IS NULL",
                            item[2]),
                 1, "the waiter was not released by the new rate");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE leased AND visible_at >"
                            " now() + interval '20 s'"),
                 5, "a held item's lease was touched");
    cr_expect_eq(itest_long("SELECT count(*) FROM flow_step_rates WHERE sched <> hits"), 0);
    /* Removed: no token needed. */
    PQclear(itest_query("SELECT set_step_rate('t')"));
    cr_expect_eq(itest_long("SELECT flow_step_take($1::int8, $2::int4)", item[3], epoch[3]), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue WHERE item_id = $1::int8"
                            " AND step_slot_ms IS NULL",
                            item[3]),
                 1);
    itest_finish();
}

static void expect_refused(const char *sql, const char *needle)
{
    PGresult *r = PQexecParams(itest.pg, sql, 0, NULL, NULL, NULL, NULL, 0);

    cr_expect_eq(PQresultStatus(r), PGRES_FATAL_ERROR, "%s accepted", sql);
    cr_expect(strstr(PQresultErrorMessage(r), needle) != NULL, "%s: %s", sql,
              PQresultErrorMessage(r));
    PQclear(r);
}

static int dummy_handler(sk_ctx_t *ctx, msgpack_packer *out)
{
    (void)ctx;
    return msgpack_pack_nil(out) == 0 ? SK_OK : SK_ERROR;
}

Test(flow, bad_step_rates_are_refused, ITEST_FIXTURES)
{
    static const sk_rate_t bad[] = {
        {.limit = 5},                                  /* no period */
        {.limit = -1, .period_ms = 1000},              /* negative */
        {.limit = 20000, .period_ms = 1000},           /* too many */
        {.limit = 5, .period_ms = 86400001},           /* too long */
        {.key = "a\nb", .limit = 5, .period_ms = 1000} /* a line break in the key */
    };
    sk_registry_t *reg = sk_registry_new();

    migrate_only();
    PQclear(itest_query("INSERT INTO workflows (workflow_id, max_attempts) VALUES ('b', 4)"));
    expect_refused("SELECT set_step_rate('b', 5)", "needs both a count and a period");
    expect_refused("SELECT set_step_rate('b', NULL, 1000)", "needs both a count and a period");
    expect_refused("SELECT set_step_rate('b', 0, 1000)", "limit must be 1..10000");
    expect_refused("SELECT set_step_rate('b', 10001, 1000)", "limit must be 1..10000");
    expect_refused("SELECT set_step_rate('b', 5, 0)", "period must be 1..86400000 ms");
    expect_refused("SELECT set_step_rate('b', 5, 1000, 'a,,b')", "is not a list of input paths");
    expect_refused("SELECT set_step_rate('b', 5, 1000, 'a.')", "is not a list of input paths");
    expect_refused("SELECT set_step_rate('nope', 5, 1000)", "unknown workflow");
    cr_expect_eq(itest_long("SELECT count(*) FROM workflows WHERE step_rate_limit IS NOT NULL"), 0);
    PQclear(itest_query("SELECT set_step_rate('b', 5, 1000, 'region, customer.id')"));
    cr_expect_eq(itest_long("SELECT count(*) FROM workflows WHERE step_rate_limit = 5"
                            " AND step_rate_key = 'region, customer.id'"),
                 1);

    cr_assert_not_null(reg);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_expect_eq(
            sk_register(
                reg, &(sk_workflow_t){.id = "bad", .handler = dummy_handler, .step_rate = bad[i]}),
            SK_ERROR, "step rate %zu accepted", i);
        cr_expect(strstr(sk_registry_error(reg), "bad:") != NULL, "%s", sk_registry_error(reg));
    }
    cr_expect(strstr(sk_registry_error(reg), "flow key") != NULL, "%s", sk_registry_error(reg));
    cr_expect_eq(sk_register(reg, &(sk_workflow_t){.id = "good",
                                                   .handler = dummy_handler,
                                                   .step_rate = {.limit = 5, .period_ms = 1000}}),
                 SK_OK, "%s", sk_registry_error(reg));
    sk_registry_free(reg);
    itest_finish();
}

/* ---- releasing a parked run notifies the workers ----------------------------------- */

#define RELEASE_BOUND_MS 400 /* the workers poll every 3000 ms */

/* A run parked behind the key's only slot starts within RELEASE_BOUND_MS
 * of the slot being freed by an operator's cancel (no worker's end claims
 * it in the same transaction): only the notification explains that. */
Test(flow, a_released_parked_run_starts_at_once, ITEST_FIXTURES)
{
    static span_t spans[8];
    itest_master_opts_t o = {.workers = 2,
                             .extra = {"--poll-interval", "3000", "--poll-max", "3000", NULL}};
    char a[SK_UUID_LEN], b[SK_UUID_LEN], cancelled_s[24];
    long long cancelled_us = 0, started_us = -1;
    long took_ms;
    int n = 0;

    itest_master_up(&o);
    itest_start("flow-hold", "{\"customer\": \"x\", \"hold\": 600000}", a);
    for (int i = 0; i < 200 && itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid"
                                          " AND kind = 'sleep'",
                                          a) == 0;
         i++)
        usleep(50000);
    cr_assert_eq(itest_long("SELECT count(*) FROM flow_holders WHERE run_id = $1::uuid", a), 1);
    itest_start("flow-hold", "{\"customer\": \"x\", \"hold\": 0}", b);
    for (int i = 0; i < 200 && itest_long("SELECT count(*) FROM exec_queue WHERE run_id ="
                                          " $1::uuid AND flow_parked",
                                          b) == 0;
         i++)
        usleep(50000);
    cr_assert_eq(itest_long("SELECT count(*) FROM exec_queue WHERE run_id = $1::uuid"
                            " AND flow_parked",
                            b),
                 1, "run b was not parked");
    usleep(200000); /* the workers idle again */
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        cancelled_us = (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    }
    cr_assert_eq(itest_long("SELECT cancel_run($1::uuid, 'release the slot')", a), 1);
    cr_assert_eq(itest_wait_ended(2, 10000), 2);
    n = load_spans(spans, 8);
    for (int i = 0; i < n; i++) {
        if (strcmp(spans[i].run, b) == 0)
            started_us = spans[i].start;
    }
    cr_assert_geq(started_us, 0, "run b never ran a body");
    took_ms = (long)((started_us - cancelled_us) / 1000);
    snprintf(cancelled_s, sizeof(cancelled_s), "%ld", took_ms);
    cr_log_info("cancel -> released run's body: %s ms", cancelled_s);
    cr_expect_lt(took_ms, RELEASE_BOUND_MS + itest_timing_slack_ms(),
                 "the released run started %ld ms after the slot was freed", took_ms);
    itest_finish();
}
