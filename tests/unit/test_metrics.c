/*
 * sk_metrics: counters written by forked workers in shared memory add up in
 * the exposition; histograms are cumulative; labels are escaped; workflows
 * past the table share "_other".  And the /readyz decision in every state.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../master/sk_http.h"
#include "sk_metrics.h"
#include "sk_registry.h"
#include "stepkit.h"

static int handler(sk_ctx_t *ctx, msgpack_packer *out)
{
    (void)ctx;
    (void)out;
    return SK_OK;
}

static sk_registry_t *registry(const char *const *ids)
{
    sk_registry_t *reg = sk_registry_new();

    cr_assert_not_null(reg);
    for (int i = 0; ids[i] != NULL; i++)
        cr_assert_eq(sk_register(reg, &(sk_workflow_t){.id = ids[i], .handler = handler}), SK_OK,
                     "%s", sk_registry_error(reg));
    return reg;
}

/* The exposition as one malloc'd string. */
static char *render(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    cr_assert_not_null(f);
    cr_assert_eq(sk_metrics_render(f), SK_OK);
    fclose(f);
    return buf;
}

static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    const char *p = text;

    while ((p = strstr(p, series)) != NULL) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p += n;
    }
    return -1;
}

Test(metrics, without_a_region_every_call_is_a_no_op)
{
    FILE *f = fopen("/dev/null", "w");

    sk_metrics_attach_slot(0);
    sk_metrics_count(SK_MC_CLAIMS);
    sk_metrics_count_wf("x", SK_MC_RUNS_STARTED);
    sk_metrics_step("x", SK_MC_STEPS_EXECUTED, 1.0);
    sk_metrics_run_end("x", 1, 1.0);
    sk_metrics_worker_restart(SK_RESTART_SIGNAL);
    cr_assert_eq(sk_metrics_master_heartbeat_ms(), 0);
    cr_assert_eq(sk_metrics_render(f), SK_ERROR);
    fclose(f);
}

Test(metrics, counters_of_forked_workers_add_up)
{
    static const char *const ids[] = {"orders", "mail", NULL};
    sk_registry_t *reg = registry(ids);
    sk_metrics_t *m = sk_metrics_create(3, reg);
    char *text;
    int status;

    cr_assert_not_null(m);
    for (int slot = 0; slot < 3; slot++) {
        pid_t pid = fork();
        cr_assert(pid >= 0);
        if (pid == 0) {
            sk_metrics_attach_slot(slot);
            for (int i = 0; i <= slot; i++) {
                sk_metrics_count(SK_MC_CLAIMS);
                sk_metrics_count_wf("orders", SK_MC_RUNS_STARTED);
                sk_metrics_run_end("orders", 1, 0.5);
            }
            sk_metrics_run_end("mail", 0, 2.0);
            sk_metrics_count(SK_MC_WAKE_NOTIFY);
            _exit(0);
        }
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    sk_metrics_worker_restart(SK_RESTART_SIGNAL);
    sk_metrics_worker_restart(SK_RESTART_SIGNAL);
    sk_metrics_master_heartbeat(1234);
    cr_assert_eq(sk_metrics_master_heartbeat_ms(), 1234);

    text = render();
    cr_assert_eq(sample(text, "stepkit_claims_total"), 6, "%s", text); /* 1 + 2 + 3 */
    cr_assert_eq(sample(text, "stepkit_runs_started_total{workflow=\"orders\"}"), 6);
    cr_assert_eq(sample(text, "stepkit_runs_completed_total{workflow=\"orders\"}"), 6);
    cr_assert_eq(sample(text, "stepkit_runs_failed_total{workflow=\"orders\"}"), 0);
    cr_assert_eq(sample(text, "stepkit_runs_failed_total{workflow=\"mail\"}"), 3);
    cr_assert_eq(sample(text, "stepkit_run_duration_seconds_count{workflow=\"mail\"}"), 3);
    cr_assert_eq(sample(text, "stepkit_run_duration_seconds_sum{workflow=\"mail\"}"), 6);
    cr_assert_eq(sample(text, "stepkit_wakeups_total{source=\"notify\"}"), 3);
    cr_assert_eq(sample(text, "stepkit_wakeups_total{source=\"poll\"}"), 0);
    cr_assert_eq(sample(text, "stepkit_worker_restarts_total{cause=\"signal\"}"), 2);
    cr_assert_eq(sample(text, "stepkit_worker_restarts_total{cause=\"exit\"}"), 0);
    cr_assert_null(strstr(text, "_other"), "no _other row while nothing landed there");
    /* every counter family has HELP and TYPE, once */
    cr_assert_not_null(strstr(text, "# TYPE stepkit_claims_total counter\n"));
    cr_assert_not_null(strstr(text, "# TYPE stepkit_run_duration_seconds histogram\n"));
    free(text);
    sk_metrics_destroy(m);
    sk_registry_free(reg);
}

Test(metrics, histogram_buckets_are_cumulative)
{
    static const char *const ids[] = {"w", NULL};
    sk_registry_t *reg = registry(ids);
    sk_metrics_t *m = sk_metrics_create(1, reg);
    char *text;

    sk_metrics_attach_slot(0);
    sk_metrics_step("w", SK_MC_STEPS_EXECUTED, 0.003);
    sk_metrics_step("w", SK_MC_STEPS_RETRIED, 0.2);
    sk_metrics_step("w", SK_MC_STEPS_FAILED, 1000);
    sk_metrics_step("w", SK_MC_STEPS_EXECUTED, -5); /* clock skew: counted as 0 */
    text = render();
    cr_assert_eq(sample(text, "stepkit_step_duration_seconds_bucket{workflow=\"w\",le=\"0.005\"}"),
                 2, "%s", text);
    cr_assert_eq(sample(text, "stepkit_step_duration_seconds_bucket{workflow=\"w\",le=\"0.1\"}"),
                 2);
    cr_assert_eq(sample(text, "stepkit_step_duration_seconds_bucket{workflow=\"w\",le=\"0.25\"}"),
                 3);
    cr_assert_eq(sample(text, "stepkit_step_duration_seconds_bucket{workflow=\"w\",le=\"300\"}"),
                 3);
    cr_assert_eq(sample(text, "stepkit_step_duration_seconds_bucket{workflow=\"w\",le=\"+Inf\"}"),
                 4);
    cr_assert_eq(sample(text, "stepkit_step_duration_seconds_count{workflow=\"w\"}"), 4);
    cr_assert_float_eq(sample(text, "stepkit_step_duration_seconds_sum{workflow=\"w\"}"), 1000.203,
                       1e-6);
    cr_assert_eq(sample(text, "stepkit_steps_executed_total{workflow=\"w\"}"), 2);
    cr_assert_eq(sample(text, "stepkit_steps_retried_total{workflow=\"w\"}"), 1);
    cr_assert_eq(sample(text, "stepkit_steps_failed_total{workflow=\"w\"}"), 1);
    free(text);
    sk_metrics_destroy(m);
    sk_registry_free(reg);
}

Test(metrics, label_values_are_escaped_and_unknown_workflows_share_other)
{
    static const char *const ids[] = {"say \"hi\" \\ now", NULL};
    sk_registry_t *reg = registry(ids);
    sk_metrics_t *m = sk_metrics_create(1, reg);
    char *text;

    sk_metrics_attach_slot(0);
    sk_metrics_count_wf("say \"hi\" \\ now", SK_MC_RUNS_STARTED);
    sk_metrics_count_wf("not-registered", SK_MC_RUNS_STARTED);
    sk_metrics_count_wf(NULL, SK_MC_RUNS_STARTED);
    text = render();
    cr_assert_eq(sample(text, "stepkit_runs_started_total{workflow=\"say \\\"hi\\\" \\\\ now\"}"),
                 1, "%s", text);
    cr_assert_eq(sample(text, "stepkit_runs_started_total{workflow=\"_other\"}"), 2);
    free(text);
    sk_metrics_destroy(m);
    sk_registry_free(reg);
}

Test(metrics, slots_out_of_range_write_nothing)
{
    static const char *const ids[] = {"w", NULL};
    sk_registry_t *reg = registry(ids);
    sk_metrics_t *m = sk_metrics_create(2, reg);
    char *text;

    sk_metrics_attach_slot(2);
    sk_metrics_count(SK_MC_CLAIMS);
    sk_metrics_attach_slot(-1);
    sk_metrics_count(SK_MC_CLAIMS);
    text = render();
    cr_assert_eq(sample(text, "stepkit_claims_total"), 0);
    free(text);
    cr_assert_eq(sk_metrics_shmem_size(0, 1), 0);
    cr_assert_eq(sk_metrics_shmem_size(SK_MAX_WORKERS + 1, 1), 0);
    cr_assert_gt(sk_metrics_shmem_size(SK_MAX_WORKERS, 1000), 0, "workflows past the table");
    sk_metrics_destroy(m);
    sk_registry_free(reg);
}

Test(metrics, the_reference_lists_every_metric_with_base_units)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    static const char *const names[] = {
        "stepkit_build_info",
        "stepkit_runs_started_total",
        "stepkit_runs_completed_total",
        "stepkit_runs_failed_total",
        "stepkit_steps_executed_total",
        "stepkit_steps_retried_total",
        "stepkit_steps_failed_total",
        "stepkit_claims_total",
        "stepkit_lease_takeovers_total",
        "stepkit_fence_refusals_total",
        "stepkit_worker_restarts_total",
        "stepkit_wakeups_total",
        "stepkit_step_duration_seconds",
        "stepkit_run_duration_seconds",
        "stepkit_queue_ready_items",
        "stepkit_queue_oldest_ready_age_seconds",
        "stepkit_queue_leased_items",
        "stepkit_runs_waiting",
        "stepkit_workers_connected",
        "stepkit_ready",
    };

    sk_metrics_write_markdown(f);
    fclose(f);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const sk_metric_doc_t *d = sk_metrics_doc(names[i]);
        char cell[128];
        cr_assert_not_null(d, "%s has no entry", names[i]);
        snprintf(cell, sizeof(cell), "| `%s` |", names[i]);
        cr_assert_not_null(strstr(buf, cell), "%s missing from the reference", names[i]);
        if (strcmp(d->type, "counter") == 0)
            cr_assert(strstr(names[i], "_total") != NULL, "counter %s ends in _total", names[i]);
        cr_assert(strstr(d->labels, "run") == NULL, "%s: no run label", names[i]);
    }
    free(buf);
}

/* ---- /readyz ---------------------------------------------------------------------------- */

static sk_http_ready_in_t healthy(void)
{
    return (sk_http_ready_in_t){.master_state = SK_MASTER_RUN,
                                .db_ok = 1,
                                .db_age_ms = 1000,
                                .db_error = "",
                                .schema_have = 3,
                                .schema_known = 3,
                                .workers_connected = 2,
                                .workers_configured = 2};
}

static void expect(const sk_http_ready_in_t *in, int ready, const char *prefix)
{
    char reason[300];

    cr_assert_eq(sk_http_ready(in, reason, sizeof(reason)), ready, "%s", reason);
    cr_assert(strncmp(reason, prefix, strlen(prefix)) == 0, "reason '%s' does not start with '%s'",
              reason, prefix);
    cr_assert_null(strchr(reason, '\n'), "one line");
}

Test(readyz, each_state)
{
    sk_http_ready_in_t in = healthy();

    expect(&in, 1, "ready: 2 of 2 workers connected");
    in.master_state = SK_MASTER_STARTING;
    expect(&in, 0, "starting");
    in.master_state = SK_MASTER_MIGRATING;
    expect(&in, 0, "starting");
    in.master_state = SK_MASTER_DRAINING;
    expect(&in, 0, "draining");
    in.master_state = SK_MASTER_STOPPING;
    expect(&in, 0, "draining");

    in = healthy();
    in.db_age_ms = -1; /* not read yet */
    expect(&in, 0, "starting: the database has not been read yet");
    in.db_ok = 0;
    in.db_error = "connect: connection refused";
    expect(&in, 0, "database unreachable: connect: connection refused");
    in = healthy();
    in.db_age_ms = 16000; /* reads stopped answering */
    expect(&in, 0, "database unreachable: no answer for over 15 s");

    in = healthy();
    in.schema_have = 2;
    in.schema_missing = 1;
    expect(&in, 0, "schema at version 2, this binary needs 3: run stepkit migrate");
    in.schema_missing = 0;
    in.schema_have = 4;
    in.schema_breaking = 4;
    expect(&in, 0, "schema at version 4, this binary needs 3: this binary is older");
    /* a newer schema whose every newer migration accepts this binary: ready */
    in.schema_breaking = 0;
    expect(&in, 1, "ready");

    in = healthy();
    in.workers_connected = 0;
    expect(&in, 0, "no worker connected (0 of 2)");

    /* draining wins over everything else: false at once */
    in.master_state = SK_MASTER_DRAINING;
    in.db_ok = 0;
    expect(&in, 0, "draining");
}
