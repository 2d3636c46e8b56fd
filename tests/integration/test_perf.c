/*
 * What sql/006_perf.sql changed: the claim (one index descent per served
 * workflow), time-ordered ids, start_runs.  Behaviour only: nothing here
 * is timed beyond generous bounds on a run's completion.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

#define UNSERVED "nobody-serves-this"

/* uuid7(): version 7, the variant, the current millisecond in the first 48
 * bits, and ids of later milliseconds sort after earlier ones. */
Test(perf, uuid7_layout_and_order, ITEST_FIXTURES)
{
    PGresult *r;

    itest_master_up(NULL); /* migrates the schema */
    cr_assert_eq(
        itest_long("SELECT count(*) FROM (SELECT uuid7() AS u FROM generate_series(1, 1000)) s"
                   " WHERE substring(u::text FROM 15 FOR 1) = '7'"
                   "   AND substring(u::text FROM 20 FOR 1) IN ('8', '9', 'a', 'b')"),
        1000);
    cr_assert_eq(itest_long("SELECT count(*) FROM (SELECT uuid7() AS u) s"
                            " WHERE abs(uuid7_ms(u) - (extract(epoch FROM clock_timestamp())"
                            "                          * 1000)::int8) < 1000"),
                 1);
    /* 50 ids, 2 ms apart: sorted by id is sorted by the order made. */
    itest_exec_sql("CREATE TEMP TABLE ids (n int, u uuid)");
    itest_exec_sql("DO $$ BEGIN FOR i IN 1..50 LOOP"
                   " INSERT INTO ids VALUES (i, uuid7()); PERFORM pg_sleep(0.002);"
                   " END LOOP; END $$");
    r = itest_query("SELECT n FROM ids ORDER BY u");
    cr_assert_eq(PQntuples(r), 50);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(atoi(PQgetvalue(r, i, 0)), i + 1, "row %d", i);
    PQclear(r);
    /* Ids within one statement (same millisecond) are distinct. */
    cr_assert_eq(itest_long("SELECT count(DISTINCT u) FROM (SELECT uuid7() AS u"
                            "  FROM generate_series(1, 10000)) s"),
                 10000);
    itest_finish();
}

/* A served workflow's run completes while 50 k ready and 50 k future items
 * of a workflow no master serves sit in the queue, and the claim leaves
 * them untouched. */
Test(perf, foreign_backlog_does_not_starve, ITEST_FIXTURES)
{
    sk_run_result_t res;

    itest_master_up(NULL);
    itest_exec_sql("INSERT INTO exec_queue (run_id, workflow_id, visible_at)"
                   " SELECT gen_random_uuid(), '" UNSERVED "', now() - interval '1 minute'"
                   "   FROM generate_series(1, 50000)");
    itest_exec_sql("INSERT INTO exec_queue (run_id, workflow_id, visible_at)"
                   " SELECT gen_random_uuid(), '" UNSERVED "', now() + interval '1 hour'"
                   "   FROM generate_series(1, 50000)");
    itest_exec_sql("ANALYZE exec_queue");
    for (int i = 0; i < 3; i++) {
        itest_invoke("chain3", NULL, &res);
        cr_assert_str_eq(res.status, "completed", "run %d (%s)", i, res.run_id);
        sk_run_result_clear(&res);
    }
    cr_assert_eq(itest_long("SELECT count(*) FROM exec_queue WHERE workflow_id = '" UNSERVED
                            "' AND epoch = 0 AND NOT leased"),
                 100000, "the unserved items were never claimed");
    cr_assert_eq(itest_long("SELECT count(*) FROM exec_queue WHERE workflow_id <> '" UNSERVED "'"),
                 0);
    itest_finish();
}

/* One worker serving many workflows takes the oldest ready item first,
 * whichever workflow it belongs to.  Read from the order the runs end, so
 * one item at a time (--batch 1): a batch runs the items it claimed, in
 * this same order, side by side. */
Test(perf, claim_takes_the_oldest_across_workflows, ITEST_FIXTURES)
{
    static const char *const wfs[] = {"chain3", "two-steps", "chain5", "chain3", "two-steps"};
    char ids[5][SK_UUID_LEN];
    itest_master_opts_t o = {.workers = 1, .extra = {"--batch", "1"}};
    PGresult *r;

    /* Registered by a first master, started while none runs. */
    itest_master_stop(itest_master_up(&o), 10000);
    for (int i = 0; i < 5; i++) {
        itest_start(wfs[i], NULL, ids[i]);
        /* distinct visible_at, oldest first */
        PQclear(
            itest_query("UPDATE exec_queue SET visible_at = now() - ($2::int * interval '1 second')"
                        " WHERE run_id = $1::uuid",
                        ids[i],
                        i == 0   ? "50"
                        : i == 1 ? "40"
                        : i == 2 ? "30"
                        : i == 3 ? "20"
                                 : "10"));
    }
    itest_master_up(&o);
    cr_assert_eq(itest_wait_ended(5, 30000), 5);
    r = itest_query("SELECT run_id::text, status FROM runs ORDER BY ended_at");
    cr_assert_eq(PQntuples(r), 5);
    for (int i = 0; i < 5; i++) {
        cr_expect_str_eq(PQgetvalue(r, i, 0), ids[i], "run ended in position %d", i);
        cr_expect_str_eq(PQgetvalue(r, i, 1), "completed");
    }
    PQclear(r);
    itest_finish();
}

/* start_runs: one run per input in order, time-ordered ids, every run
 * completes; an unknown workflow starts nothing; an empty array is fine. */
Test(perf, start_runs_in_bulk, ITEST_FIXTURES)
{
    PGresult *r;
    char *err;

    itest_master_up(NULL);
    r = itest_query("SELECT ord, run_id::text FROM start_runs('chain3',"
                    " ARRAY['{\"n\": 1}', 'null', NULL, '[1, 2]']::jsonb[])");
    cr_assert_eq(PQntuples(r), 4);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(atoi(PQgetvalue(r, i, 0)), i + 1);
        cr_assert_eq(PQgetvalue(r, i, 1)[14], '7', "%s", PQgetvalue(r, i, 1));
        if (i > 0)
            cr_assert(strcmp(PQgetvalue(r, i - 1, 1), PQgetvalue(r, i, 1)) < 0);
    }
    err = itest_bytea_json("SELECT data FROM runs WHERE run_id = $1::uuid", PQgetvalue(r, 0, 1));
    cr_expect_str_eq(err, "{\"n\":1}");
    free(err);
    err = itest_bytea_json("SELECT data FROM runs WHERE run_id = $1::uuid", PQgetvalue(r, 2, 1));
    cr_expect_str_eq(err, "null");
    free(err);
    PQclear(r);
    cr_assert_eq(itest_wait_ended(4, 30000), 4);
    cr_assert_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'completed'"), 4);

    cr_assert_eq(itest_long("SELECT count(*) FROM start_runs('chain3', ARRAY[]::jsonb[])"), 0);
    /* The typo guard on request (009_operations); without it the runs wait. */
    r = PQexec(itest.pg, "SELECT * FROM start_runs('no-such-workflow', ARRAY['1']::jsonb[], true)");
    cr_assert_eq(PQresultStatus(r), PGRES_FATAL_ERROR);
    cr_assert_str_eq(PQresultErrorField(r, PG_DIAG_SQLSTATE), "SK002");
    PQclear(r);
    cr_assert_eq(itest_long("SELECT count(*) FROM runs"), 4);
    cr_assert_eq(itest_long("SELECT count(*) FROM start_runs('no-such-workflow',"
                            " ARRAY['1', '2']::jsonb[])"),
                 2);
    cr_assert_eq(itest_long("SELECT count(*) FROM runs r JOIN exec_queue q USING (run_id)"
                            " WHERE r.workflow_id = 'no-such-workflow' AND r.status = 'pending'"),
                 2, "runs of an unregistered workflow wait in the queue");
    itest_allow_error("no-such-workflow");
    itest_finish();
}

/* A started run and its event get time-ordered ids (child runs, made in C
 * by the worker: test_steps_invoke.c). */
Test(perf, run_ids_are_uuid7, ITEST_FIXTURES)
{
    sk_run_result_t res;

    itest_master_up(NULL);
    itest_invoke("chain3", NULL, &res);
    cr_assert_str_eq(res.status, "completed");
    cr_assert_eq(res.run_id[14], '7', "%s", res.run_id);
    sk_run_result_clear(&res);
    cr_assert_eq(itest_long("SELECT count(*) FROM runs WHERE substring(run_id::text FROM 15 FOR 1)"
                            " = '7' AND substring(event_id::text FROM 15 FOR 1) = '7'"),
                 1);
    itest_finish();
}

/* Notifications received on itest.pg since the last call.  The notifying
 * commit has signalled this backend before it returned, so one round trip
 * here delivers what it sent (before its ReadyForQuery). */
static int notifications(void)
{
    PGnotify *n;
    int count = 0;

    PQclear(itest_query("SELECT 1"));
    cr_assert(PQconsumeInput(itest.pg));
    while ((n = PQnotifies(itest.pg)) != NULL) {
        count++;
        PQfreemem(n);
    }
    return count;
}

/* The insert trigger, asked per workflow: a start notifies only when no
 * other item of its workflow is ready and unclaimed (whatever other
 * workflows hold); a bulk start notifies once, and a large one does not
 * take quadratic time (the test's timeout would end it). */
Test(perf, insert_trigger_per_workflow, ITEST_FIXTURES)
{
    char sql[160], id[SK_UUID_LEN];

    itest_master_stop(itest_master_up(NULL), 10000);
    itest_exec_sql("INSERT INTO exec_queue (run_id, workflow_id, visible_at)"
                   " SELECT gen_random_uuid(), '" UNSERVED "', now() - interval '1 minute'"
                   "   FROM generate_series(1, 20000)");
    snprintf(sql, sizeof(sql), "LISTEN \"%s.work\"", itest.schema);
    itest_exec_sql(sql);
    notifications();

    itest_start("chain3", NULL, id);
    cr_assert_eq(notifications(), 1, "the first ready item of chain3 notifies");
    itest_start("chain3", NULL, id);
    cr_assert_eq(notifications(), 0, "one is ready and unclaimed already");
    itest_start("two-steps", NULL, id);
    cr_assert_eq(notifications(), 1, "another workflow's first item notifies");
    itest_exec_sql("UPDATE exec_queue SET leased = true, visible_at = now() + interval '1 minute'"
                   " WHERE workflow_id = 'chain3'");
    itest_start("chain3", NULL, id);
    cr_assert_eq(notifications(), 1, "the others are claimed");

    cr_assert_eq(itest_long("SELECT count(*) FROM start_runs('chain5',"
                            " array_fill('null'::jsonb, ARRAY[20000]))"),
                 20000);
    cr_assert_eq(notifications(), 1, "a bulk start notifies once");
    cr_assert_eq(itest_long("SELECT count(*) FROM exec_queue WHERE workflow_id = 'chain5'"), 20000);
    itest_finish();
}
