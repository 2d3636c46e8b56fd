/*
 * Fencing: a body that outlives its lease (400 ms lease, 1500 ms body) is
 * taken over by the other worker, which completes the run; the first
 * worker's late write is refused (event=lease_lost) and changes nothing.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "itest.h"

Test(fencing, late_write_after_lost_lease_is_refused, ITEST_FIXTURES)
{
    itest_master_opts_t opts = {.workers = 2, .lease_ms = 400};
    itest_master_t *m;
    sk_run_result_t res;
    char key[41], needle[128], *out, *ended_at, *ended_at_after, *result;

    m = itest_master_up(&opts);
    itest_invoke("slow-once", "{\"sleep_ms\": 1500}", &res);

    /* The second execution completed the run. */
    cr_assert_str_eq(res.status, "completed");
    out = itest_json(res.output, res.output_len);
    cr_expect_str_eq(out, "\"fresh\"");
    free(out);
    itest_op_key("slow", 0, key);
    result = itest_bytea_json("SELECT result FROM ops WHERE run_id = $1::uuid AND op_key = $2",
                              res.run_id, key);
    cr_expect_str_eq(result, "\"fresh\"");
    free(result);
    ended_at = itest_str("SELECT ended_at::text FROM runs WHERE run_id = $1::uuid", res.run_id);
    cr_assert_not_null(ended_at, "ended_at is set");

    /* The first worker wakes up and tries to commit "late": refused. */
    snprintf(needle, sizeof(needle), "event=lease_lost run=%s", res.run_id);
    cr_assert(itest_log_wait(m, needle, 10000), "no '%s' in %s", needle, m->log);
    cr_expect_eq(itest_count(itest.counts, res.run_id, "slow"), 2, "slow body executions");

    /* Nothing changed after the refused write: one op, still "fresh", the
     * run ended once (same ended_at, same output), nothing queued. */
    result = itest_bytea_json("SELECT result FROM ops WHERE run_id = $1::uuid AND op_key = $2",
                              res.run_id, key);
    cr_expect_str_eq(result, "\"fresh\"");
    free(result);
    result = itest_bytea_json("SELECT output FROM runs WHERE run_id = $1::uuid", res.run_id);
    cr_expect_str_eq(result, "\"fresh\"");
    free(result);
    cr_expect_eq(itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid", res.run_id), 1);
    ended_at_after =
        itest_str("SELECT ended_at::text FROM runs WHERE run_id = $1::uuid AND status = "
                  "'completed'",
                  res.run_id);
    cr_expect_str_eq(ended_at_after, ended_at, "ended_at was written again");
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0);
    free(ended_at);
    free(ended_at_after);
    sk_run_result_clear(&res);
    itest_finish();
}
