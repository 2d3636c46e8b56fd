/*
 * The HTTP process (--http): /livez, /readyz and /metrics of a real master,
 * their status codes in each state (ready, database not answering,
 * draining, gone), the counters after a workload, the exposition through
 * `promtool check metrics`, and a real Prometheus server scraping it and
 * answering a query for a counter.  Requests go through curl.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "itest.h"
#include "sk_config.h"
#include "sk_migrate.h"

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

typedef struct {
    int code; /* HTTP status, 0 when nothing answered */
    char *body;
} resp_t;

/* GET http://127.0.0.1:port/path (curl; 3 s at most). */
static resp_t get(int port, const char *path)
{
    char url[128];
    const char *argv[] = {"curl", "-s", "-m", "3", "-w", "\n%{http_code}", url, NULL};
    itest_cmd_t r;
    resp_t out = {0, NULL};
    char *nl;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    itest_run_cmd(argv, NULL, 10000, &r);
    nl = strrchr(r.out, '\n');
    cr_assert_not_null(nl, "curl output: %s", r.out);
    out.code = atoi(nl + 1);
    *nl = '\0';
    out.body = strdup(r.out);
    itest_cmd_free(&r);
    return out;
}

/* Poll path until it answers `code` with a body starting with `prefix` (NULL:
 * any body), at most timeout_ms; the last answer. */
static resp_t wait_answer(int port, const char *path, int code, const char *prefix, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    resp_t r;

    for (;;) {
        r = get(port, path);
        if (r.code == code && (!prefix || strncmp(r.body, prefix, strlen(prefix)) == 0))
            return r;
        if (now_ms() > deadline)
            return r;
        free(r.body);
        nap(100);
    }
}

static resp_t wait_code(int port, const char *path, int code, int timeout_ms)
{
    return wait_answer(port, path, code, NULL, timeout_ms);
}

static itest_master_t *master_with_http(int port, int workers)
{
    static char addr[64];
    itest_master_opts_t o = {.workers = workers, .shutdown_ms = 15000};

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    o.extra[0] = "--http";
    o.extra[1] = addr;
    return itest_master_up(&o);
}

/* The value of one sample line ("name{labels} value") in an exposition; -1 when absent. */
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

Test(http, probes_answer_in_each_state, ITEST_FIXTURES)
{
    int port = itest_free_port();
    itest_master_t *m = master_with_http(port, 2);
    char run_id[SK_UUID_LEN];
    resp_t r;
    PGconn *locker;
    PGresult *res;
    char sql[256];
    int64_t t0;

    /* ready: workers connected, schema read (ready from the first worker on;
     * wait for both so the count is checked, not the fork order) */
    r = wait_answer(port, "/readyz", 200, "ready: 2 of 2", 10000);
    cr_assert_eq(r.code, 200, "/readyz: %d %s", r.code, r.body);
    cr_assert(strncmp(r.body, "ready: 2 of 2 workers connected", 31) == 0, "%s", r.body);
    free(r.body);
    r = get(port, "/livez");
    cr_assert_eq(r.code, 200, "/livez: %d %s", r.code, r.body);
    free(r.body);
    r = get(port, "/nowhere");
    cr_assert_eq(r.code, 404);
    free(r.body);

    /* database not answering: the gauges read waits on a lock; readiness goes
     * false with the reason, liveness stays true (no restart for an outage) */
    locker = PQconnectdb(itest.url);
    cr_assert_eq(PQstatus(locker), CONNECTION_OK);
    snprintf(sql, sizeof(sql), "BEGIN; LOCK TABLE %s.exec_queue IN ACCESS EXCLUSIVE MODE",
             itest.schema);
    res = PQexec(locker, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(locker));
    PQclear(res);
    t0 = now_ms();
    r = wait_code(port, "/readyz", 503, 25000);
    cr_assert_eq(r.code, 503, "/readyz while the database does not answer: %d %s", r.code, r.body);
    cr_assert(strstr(r.body, "database unreachable") == r.body, "reason: %s", r.body);
    cr_log_info("readyz 503 after %lld ms without answers: %s", (long long)(now_ms() - t0), r.body);
    free(r.body);
    r = get(port, "/livez");
    cr_assert_eq(r.code, 200, "/livez must not follow the database: %d %s", r.code, r.body);
    free(r.body);
    res = PQexec(locker, "ROLLBACK");
    PQclear(res);
    PQfinish(locker);
    r = wait_code(port, "/readyz", 200, 20000);
    cr_assert_eq(r.code, 200, "/readyz after the database answers again: %d %s", r.code, r.body);
    free(r.body);

    /* draining: a slow run holds a worker; from SIGTERM on /readyz says
     * draining while /livez stays 200, until the master is gone */
    itest_start("chain3", "{\"sleep_ms\": 1500}", run_id);
    nap(500); /* its first step is running */
    t0 = now_ms();
    kill(m->pid, SIGTERM);
    r = wait_code(port, "/readyz", 503, 2000);
    cr_log_info("drain: /readyz 503 %lld ms after SIGTERM", (long long)(now_ms() - t0));
    cr_assert_eq(r.code, 503, "/readyz after SIGTERM: %d %s", r.code, r.body);
    cr_assert(strncmp(r.body, "draining", 8) == 0, "reason: %s", r.body);
    free(r.body);
    r = get(port, "/livez");
    cr_assert_eq(r.code, 200, "/livez while draining: %d %s", r.code, r.body);
    free(r.body);
    cr_assert_eq(itest_master_wait_exit(m, 15000), 0, "the master drains and exits 0");
    cr_log_info("drain: master exited 0 %lld ms after SIGTERM (a 1.5 s step in flight)",
                (long long)(now_ms() - t0));
    r = get(port, "/readyz");
    cr_assert_eq(r.code, 0, "nothing listens once the master is gone (got %d)", r.code);
    free(r.body);
    cr_assert_eq(itest_log_count(m, "event=http_exit"), 1);
}

/* A workload, then /metrics: the counters add up, promtool accepts the text. */
Test(http, metrics_count_a_workload, ITEST_FIXTURES)
{
    int port = itest_free_port();
    itest_master_t *m = master_with_http(port, 2);
    char ids[12][SK_UUID_LEN], path[ITEST_PATH_MAX + 32];
    const char *check[] = {"sh", "-c", NULL, NULL};
    char cmd[ITEST_PATH_MAX + 64], info[128];
    itest_cmd_t pc;
    resp_t r;
    FILE *f;

    (void)m;
    for (int i = 0; i < 6; i++)
        itest_start("chain3", "{}", ids[i]);
    for (int i = 6; i < 9; i++)
        itest_start("retry-once", "{}", ids[i]);
    for (int i = 9; i < 11; i++)
        itest_start("exhausted", "{}", ids[i]);
    cr_assert_eq(itest_wait_ended(11, 30000), 11);
    /* The counters are written before the HTTP process reads them: no wait needed,
     * but the database gauges need one refresh. */
    r = wait_code(port, "/readyz", 200, 10000);
    free(r.body);
    r = get(port, "/metrics");
    cr_assert_eq(r.code, 200);

    cr_assert_eq(sample(r.body, "stepkit_runs_completed_total{workflow=\"chain3\"}"), 6, "%s",
                 r.body);
    cr_assert_eq(sample(r.body, "stepkit_runs_started_total{workflow=\"chain3\"}"), 6);
    cr_assert_eq(sample(r.body, "stepkit_steps_executed_total{workflow=\"chain3\"}"), 18);
    cr_assert_eq(sample(r.body, "stepkit_runs_completed_total{workflow=\"retry-once\"}"), 3);
    cr_assert_eq(sample(r.body, "stepkit_steps_retried_total{workflow=\"retry-once\"}"), 3);
    cr_assert_eq(sample(r.body, "stepkit_runs_failed_total{workflow=\"exhausted\"}"), 2);
    cr_assert_geq(sample(r.body, "stepkit_steps_failed_total{workflow=\"exhausted\"}"), 2);
    cr_assert_eq(sample(r.body, "stepkit_run_duration_seconds_count{workflow=\"chain3\"}"), 6);
    cr_assert_eq(
        sample(r.body, "stepkit_run_duration_seconds_bucket{workflow=\"chain3\",le=\"+Inf\"}"), 6);
    cr_assert_eq(sample(r.body, "stepkit_step_duration_seconds_count{workflow=\"chain3\"}"), 18);
    cr_assert_geq(sample(r.body, "stepkit_claims_total"), 11);
    cr_assert_eq(sample(r.body, "stepkit_fence_refusals_total"), 0);
    cr_assert_eq(sample(r.body, "stepkit_workers_connected"), 2);
    cr_assert_eq(sample(r.body, "stepkit_ready"), 1);
    cr_assert_eq(sample(r.body, "stepkit_database_up"), 1);
    cr_assert_eq(sample(r.body, "stepkit_worker_restarts_total{cause=\"signal\"}"), 0);
    cr_assert_geq(sample(r.body, "stepkit_wakeups_total{source=\"notify\"}") +
                      sample(r.body, "stepkit_wakeups_total{source=\"poll\"}"),
                  1);
    snprintf(info, sizeof(info), "stepkit_build_info{version=\"%s\",schema_version=\"%d\"}",
             SK_VERSION, sk_schema_version_known());
    cr_assert_eq(sample(r.body, info), 1, "%s", info);
    cr_assert_null(strstr(r.body, ids[0]), "a run id in the exposition");

    snprintf(path, sizeof(path), "%s/metrics-%d.txt", itest.logdir, port);
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(r.body, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "promtool check metrics < '%s'", path);
    check[2] = cmd;
    itest_run_cmd(check, NULL, 20000, &pc);
    cr_assert_eq(pc.code, 0, "promtool check metrics: %s%s", pc.out, pc.err);
    cr_log_info("promtool check metrics: exit 0 (%s)", path);
    itest_cmd_free(&pc);
    free(r.body);
}

/* A real Prometheus server scrapes the endpoint and answers a query. */
Test(http, prometheus_scrapes_a_counter, ITEST_FIXTURES)
{
    int port = itest_free_port(), pport = itest_free_port();
    char dir[ITEST_PATH_MAX + 32], cfgpath[ITEST_PATH_MAX + 64], arg_cfg[ITEST_PATH_MAX + 80],
        arg_db[ITEST_PATH_MAX + 80], arg_listen[64], url[256], id[SK_UUID_LEN];
    const char *q = "stepkit_runs_completed_total%7Bworkflow%3D%22chain3%22%7D";
    const char *curl[] = {"curl", "-s", "-m", "3", url, NULL};
    itest_cmd_t r;
    int64_t deadline;
    double value = -1;
    pid_t prom;
    FILE *f;

    master_with_http(port, 1);
    for (int i = 0; i < 4; i++)
        itest_start("chain3", "{}", id);
    cr_assert_eq(itest_wait_ended(4, 30000), 4);

    snprintf(dir, sizeof(dir), "%s/prometheus-%d", itest.logdir, pport);
    cr_assert(mkdir(dir, 0755) == 0 || errno == EEXIST);
    snprintf(cfgpath, sizeof(cfgpath), "%s/prometheus.yml", dir);
    f = fopen(cfgpath, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: stepkit\n    static_configs:\n"
            "      - targets: ['127.0.0.1:%d']\n",
            port);
    fclose(f);
    snprintf(arg_cfg, sizeof(arg_cfg), "--config.file=%s", cfgpath);
    snprintf(arg_db, sizeof(arg_db), "--storage.tsdb.path=%s/data", dir);
    snprintf(arg_listen, sizeof(arg_listen), "--web.listen-address=127.0.0.1:%d", pport);
    fflush(NULL);
    prom = fork();
    cr_assert(prom >= 0);
    if (prom == 0) {
        char logf[ITEST_PATH_MAX + 80];
        snprintf(logf, sizeof(logf), "%s/prometheus.log", dir);
        FILE *lf = freopen(logf, "w", stderr);
        (void)lf;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execlp("prometheus", "prometheus", arg_cfg, arg_db, arg_listen, (char *)NULL);
        _exit(127);
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/api/v1/query?query=%s", pport, q);
    deadline = now_ms() + 60000;
    while (now_ms() < deadline) {
        json_t *root;
        itest_run_cmd(curl, NULL, 10000, &r);
        if (r.code == 0 && r.out[0] == '{') {
            root = itest_parse(r.out);
            const char *v = itest_jstr(root, "data.result.0.value.1");
            if (v != NULL)
                value = strtod(v, NULL);
            json_decref(root);
        }
        itest_cmd_free(&r);
        if (value == 4)
            break;
        nap(500);
    }
    kill(prom, SIGTERM);
    waitpid(prom, NULL, 0);
    cr_assert_eq(value, 4, "Prometheus answered %g for %s", value, q);
    cr_log_info("prometheus query stepkit_runs_completed_total{workflow=\"chain3\"} = %g", value);
}

Test(http, off_starts_no_process, ITEST_FIXTURES)
{
    itest_master_t *m = itest_master_up(NULL); /* itest passes --http off */

    cr_assert_eq(itest_log_count(m, "event=http_start"), 0);
    cr_assert_eq(itest_master_stop(m, 10000), 0);
}

/* Two masters, one port: the second serves no HTTP but runs its workflows. */
Test(http, a_taken_port_leaves_the_workers_running, ITEST_FIXTURES)
{
    int port = itest_free_port();
    sk_run_result_t res;
    itest_master_t *a = master_with_http(port, 1), *b;

    itest_allow_error("event=http_listen_failed");
    itest_allow_error("event=http_disabled");
    itest_allow_error("event=http_exit");
    b = master_with_http(port, 1);
    cr_assert(itest_log_wait(b, "event=http_disabled", 10000), "the second master gives up HTTP");
    itest_master_stop(a, 10000);
    itest_invoke("chain3", "{}", &res);
    cr_assert_str_eq(res.status, "completed");
    sk_run_result_clear(&res);
    cr_assert_eq(itest_log_count(b, "event=http_start"), 1, "no restart after exit code 2");
}

/* --log-format json: every line of every process is one JSON object. */
Test(http, json_logs_from_every_process, ITEST_FIXTURES)
{
    int port = itest_free_port();
    itest_master_opts_t o = {.workers = 2};
    char addr[64], *log, *line, *save = NULL;
    int lines = 0, worker_lines = 0, http_lines = 0, master_lines = 0;
    itest_master_t *m;
    sk_run_result_t res;

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    o.extra[0] = "--log-format";
    o.extra[1] = "json";
    o.extra[2] = "--http";
    o.extra[3] = addr;
    m = itest_master_up(&o);
    itest_invoke("two-steps", "{}", &res);
    cr_assert_str_eq(res.status, "completed");
    sk_run_result_clear(&res);
    cr_assert_eq(itest_master_stop(m, 10000), 0);
    log = itest_master_log(m);
    for (line = strtok_r(log, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *o2 = json_loads(line, 0, &jerr);
        const char *role;
        cr_assert_not_null(o2, "not a JSON line (%s): %s", jerr.text, line);
        cr_assert(json_is_string(json_object_get(o2, "ts")), "%s", line);
        cr_assert(json_is_string(json_object_get(o2, "level")), "%s", line);
        cr_assert(json_is_integer(json_object_get(o2, "pid")), "%s", line);
        cr_assert(json_is_string(json_object_get(o2, "event")), "%s", line);
        cr_assert(strcmp(json_string_value(json_object_get(o2, "level")), "error") != 0, "%s",
                  line);
        role = json_string_value(json_object_get(o2, "role"));
        cr_assert_not_null(role, "%s", line);
        if (strcmp(role, "worker") == 0) {
            worker_lines++;
            cr_assert(json_is_integer(json_object_get(o2, "worker")), "%s", line);
        } else {
            cr_assert_null(json_object_get(o2, "worker"), "%s", line);
            http_lines += strcmp(role, "http") == 0;
            master_lines += strcmp(role, "master") == 0;
        }
        lines++;
        json_decref(o2);
    }
    cr_assert(worker_lines > 0 && http_lines > 0 && master_lines > 0,
              "lines: %d master, %d worker, %d http", master_lines, worker_lines, http_lines);
    cr_log_info("%d JSON lines: %d master, %d worker, %d http", lines, master_lines, worker_lines,
                http_lines);
    free(log);
}

/* The HTTP process is supervised like a worker: killed, it comes back. */
Test(http, a_killed_http_process_is_restarted, ITEST_FIXTURES)
{
    int port = itest_free_port();
    itest_master_t *m = master_with_http(port, 1);
    char *log, *p;
    int pid;
    resp_t r;

    r = wait_code(port, "/readyz", 200, 10000);
    cr_assert_eq(r.code, 200, "%s", r.body);
    free(r.body);
    log = itest_master_log(m);
    p = strstr(log, "event=http_start pid=");
    cr_assert_not_null(p);
    pid = atoi(p + strlen("event=http_start pid="));
    free(log);
    cr_assert_gt(pid, 1);
    cr_assert_eq(kill(pid, SIGKILL), 0);
    cr_assert(itest_log_wait(m, "event=http_respawn_scheduled", 5000));
    cr_assert_eq(itest_log_wait_count(m, "event=http_start", 2, 10000), 2);
    r = wait_code(port, "/readyz", 200, 10000);
    cr_assert_eq(r.code, 200, "after the restart: %d %s", r.code, r.body);
    free(r.body);
    cr_assert_eq(itest_log_count(m, "event=worker_exit"), 0, "the workers are untouched");
}

/* Deploy in any order: runs of a workflow no master registered show in a
 * gauge and in the log, until they are gone. */
Test(http, runs_of_unregistered_workflows_show_in_metrics_and_logs, ITEST_FIXTURES)
{
    int port = itest_free_port();
    itest_master_t *m = master_with_http(port, 1);
    char run_id[SK_UUID_LEN], err[256];
    int64_t deadline;
    double v = -1;
    resp_t r;

    for (int i = 0; i < 3; i++)
        cr_assert_eq(sk_client_start(itest.client, "not-deployed-yet", NULL, 0, run_id, NULL, err,
                                     sizeof(err)),
                     SK_OK, "%s", err);
    deadline = now_ms() + 15000;
    while (v != 3 && now_ms() < deadline) {
        r = get(port, "/metrics");
        v = sample(r.body, "stepkit_queue_unregistered_ready_items");
        free(r.body);
        if (v != 3)
            nap(250);
    }
    cr_expect_eq(v, 3, "stepkit_queue_unregistered_ready_items %g", v);
    cr_expect(itest_log_wait(m,
                             "event=runs_wait_for_unregistered_workflow "
                             "workflow=\"not-deployed-yet\" ready=3",
                             5000),
              "no log line says the runs wait for an unregistered workflow");
    itest_exec_sql("DELETE FROM exec_queue WHERE workflow_id = 'not-deployed-yet'");
    cr_expect(itest_log_wait(m, "event=unregistered_workflow_cleared workflow=\"not-deployed-yet\"",
                             15000));
    itest_finish();
}

/* The queue and wait gauges, each state counted, and every count stopping
 * at its bound (100,000): a master reads them every 5 s, so their cost must
 * not grow with the queue.  The workflows are nobody's: no worker touches
 * their items. */
Test(http, queue_gauges_count_each_state_up_to_their_bound, ITEST_FIXTURES)
{
    static const struct {
        const char *series;
        double want;
    } want[] = {
        {"stepkit_queue_ready_items{workflow=\"g-big\"}", 100000},
        {"stepkit_queue_ready_items{workflow=\"g-mixed\"}", 2},
        {"stepkit_queue_leased_items{workflow=\"g-mixed\"}", 3},
        {"stepkit_queue_leased_items{workflow=\"g-big\"}", 0},
        {"stepkit_queue_unregistered_ready_items", 100002},
        {"stepkit_runs_waiting{reason=\"signal\"}", 2},
        {"stepkit_runs_waiting{reason=\"child\"}", 1},
        {"stepkit_runs_waiting{reason=\"timer\"}", 4},
    };
    int port = itest_free_port();
    char *body = NULL;
    double oldest = -1;
    int64_t deadline;
    bool all = false;
    resp_t r;

    master_with_http(port, 1); /* (it migrates the schema) */
    itest_exec_sql("INSERT INTO exec_queue (run_id, workflow_id, visible_at)"
                   " SELECT gen_random_uuid(), 'g-big', now() - interval '1 minute'"
                   "   FROM generate_series(1, 150000)");
    itest_exec_sql("INSERT INTO exec_queue (run_id, workflow_id, visible_at, leased)"
                   " SELECT gen_random_uuid(), 'g-mixed', now() + v.due, v.leased"
                   "   FROM (VALUES (interval '-20 s', false), (interval '-1 s', false),"
                   "                (interval '30 s', true), (interval '31 s', true),"
                   "                (interval '32 s', true), (interval '1 h', false),"
                   "                (interval '2 h', false), (interval '3 h', false),"
                   "                (interval '1 day', false)) v(due, leased)");
    itest_exec_sql("INSERT INTO exec_queue (run_id, workflow_id, visible_at)"
                   " VALUES (gen_random_uuid(), 'g-parked', 'infinity')");
    itest_exec_sql("INSERT INTO waiting_signals (signal, run_id, op_key)"
                   " SELECT 's', ('00000000-0000-7000-8000-00000000000' || v.r)::uuid, v.k"
                   "   FROM (VALUES (1, 'a'), (1, 'b'), (2, 'a')) v(r, k)");
    itest_exec_sql("INSERT INTO waiting_invokes (child_run_id, parent_run_id, parent_op_key)"
                   " SELECT gen_random_uuid(), '00000000-0000-7000-8000-000000000009', v.k"
                   "   FROM (VALUES ('a'), ('b')) v(k)");
    itest_exec_sql("ANALYZE exec_queue");
    deadline = now_ms() + 20000;
    while (!all && now_ms() < deadline) {
        free(body);
        r = get(port, "/metrics");
        body = r.body;
        all = body != NULL;
        for (size_t i = 0; all && i < sizeof(want) / sizeof(want[0]); i++)
            all = sample(body, want[i].series) == want[i].want;
        if (!all)
            nap(250);
    }
    cr_assert_not_null(body, "no answer on /metrics");
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_expect_eq(sample(body, want[i].series), want[i].want, "%s: %g, want %g", want[i].series,
                     sample(body, want[i].series), want[i].want);
    oldest = sample(body, "stepkit_queue_oldest_ready_age_seconds{workflow=\"g-mixed\"}");
    cr_expect(oldest >= 20 && oldest < 60, "oldest ready item of g-mixed: %g s, want 20-60",
              oldest);
    free(body);
    itest_finish();
}

/* The status of GET path on 127.0.0.1:port over a plain socket (0 when
 * nothing answers): fast enough to poll right after a signal, where
 * starting curl would take longer than the whole drain. */
static int raw_status(int port, const char *path)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[256], buf[64];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), code = 0;
    ssize_t n, got = 0;

    if (fd < 0)
        return 0;
    a.sin_port = htons((uint16_t)port);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        n = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
        if (write(fd, req, (size_t)n) == n) {
            while (got < (ssize_t)sizeof(buf) - 1 &&
                   (n = read(fd, buf + got, sizeof(buf) - 1 - (size_t)got)) > 0)
                got += n;
            buf[got] = '\0';
            if (strncmp(buf, "HTTP/1.", 7) == 0 && got > 12)
                code = atoi(buf + 9);
        }
    }
    close(fd);
    return code;
}

/* SIGTERM as Kubernetes sends it, under load: 200 runs through 4 workers.
 * /readyz turns 503 at once; in-flight runs finish their step or are handed
 * back (no lease left for the next master to wait out: the lease is 60 s),
 * the master exits 0 within --shutdown-timeout, and a new master completes
 * every run, each step body exactly once. */
Test(http, sigterm_under_load_drains_in_time_and_loses_no_run, ITEST_FIXTURES)
{
    static char addr[64];
    itest_master_opts_t o = {.workers = 4, .shutdown_ms = 20000, .lease_ms = 60000};
    itest_master_opts_t after = {.workers = 4, .lease_ms = 60000, .no_migrate = 1};
    int port = itest_free_port(), code, ready;
    itest_master_t *m;
    itest_counts_t *counts;
    char run_id[SK_UUID_LEN];
    int64_t t0, t_ready, t_exit, t_new;
    long at_term, at_exit, leased, ended;
    PGresult *res;
    resp_t r;

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
    o.extra[0] = "--http";
    o.extra[1] = addr;
    m = itest_master_up(&o);
    r = wait_code(port, "/readyz", 200, 10000);
    cr_assert_eq(r.code, 200, "%s", r.body);
    free(r.body);
    for (int i = 0; i < 200; i++)
        itest_start("chain3", "{\"sleep_ms\": 50}", run_id);
    cr_assert_geq(itest_wait_ended(30, 30000), 30);

    at_term = itest_long("SELECT count(*) FROM runs WHERE status <> 'pending'");
    cr_assert_eq(raw_status(port, "/readyz"), 200);
    kill(m->pid, SIGTERM);
    t0 = now_ms();
    do
        ready = raw_status(port, "/readyz");
    while (ready == 200 && now_ms() - t0 < 2000);
    t_ready = now_ms() - t0;
    cr_assert_eq(ready, 503, "/readyz after SIGTERM: %d (%lld ms)", ready, (long long)t_ready);
    cr_expect_lt(t_ready, 1000, "/readyz still 200 %lld ms after SIGTERM", (long long)t_ready);
    code = itest_master_wait_exit(m, 30000);
    t_exit = now_ms() - t0;
    cr_assert_eq(code, 0, "the master exited %d after SIGTERM", code);
    cr_expect_lt(t_exit, 20000, "exit after --shutdown-timeout: %lld ms", (long long)t_exit);
    at_exit = itest_long("SELECT count(*) FROM runs WHERE status <> 'pending'");
    leased = itest_long("SELECT count(*) FROM exec_queue WHERE leased AND visible_at > now()");
    cr_expect_eq(leased, 0, "%ld items still leased after the drain", leased);
    cr_expect_eq(itest_log_count(m, "signal=9"), 0, "a worker had to be killed");

    t_new = now_ms();
    itest_master_up(&after);
    ended = itest_wait_ended(200, 30000);
    t_new = now_ms() - t_new;
    cr_assert_eq(ended, 200, "%ld of 200 runs ended after a new master started", ended);
    cr_expect_lt(t_new, 30000, "the new master waited for leases");
    cr_expect_eq(itest_long("SELECT count(*) FROM runs WHERE status = 'completed'"), 200);
    counts = itest_counts_load(itest.counts);
    res = itest_query("SELECT run_id::text FROM runs");
    for (int i = 0; i < PQntuples(res); i++) {
        const char *id = PQgetvalue(res, i, 0);
        for (int k = 0; k < 3; k++) {
            static const char *const steps[] = {"s1", "s2", "s3"};
            cr_expect_eq(itest_counts_get(counts, id, steps[k]), 1, "run %s step %s ran %d times",
                         id, steps[k], itest_counts_get(counts, id, steps[k]));
        }
    }
    PQclear(res);
    itest_counts_free(counts);
    cr_log_info("drain under load: /readyz 503 after %lld ms; master exit 0 after %lld ms "
                "(--shutdown-timeout 20000, grace 35 s in the manifests); runs ended %ld at "
                "SIGTERM, %ld at exit, 0 leased left; the next master ended the other %ld in "
                "%lld ms, every step body once",
                (long long)t_ready, (long long)t_exit, at_term, at_exit, 200 - at_exit,
                (long long)t_new);
    itest_finish();
}
