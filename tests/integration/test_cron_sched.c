/*
 * Cron triggers across masters (docs/cron.md): one run per tick however
 * many masters run, no tick lost while one of them restarts, and one
 * coalesced catch-up run after a full outage.
 *
 * Real stepkit-master processes (fork + exec, one process group each) run
 * the "cron-every-second" workflow of testwf.so (tests/workflows/cronwf.c,
 * scheduled "@every 1s" because STEPKIT_TEST_CRON is set) in a schema of
 * their own, "t_<pid>_<n>", dropped at the end.  Their logs go to
 * $STEPKIT_TEST_LOGDIR/<schema>-<k>.log.  Self-contained: these helpers are
 * static, the suite depends on no other test file.
 *
 * Environment: POSTGRES_TEST_URL (required; tests/run-tests.sh sets it),
 * STEPKIT_BUILD (default "build"), STEPKIT_TEST_LOGDIR.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <msgpack.h>

#define WORKFLOW   "cron-every-second"
#define SCHEDULE   "@every 1s"
#define MAX_MASTER 4
#define PATH_LEN   768

extern char **environ;

typedef struct {
    pid_t pid; /* also its process group */
    int k;     /* 1-based, in start order; names the log */
    char app[96];
    char log[PATH_LEN];
    int exited;
    int status;
} master_t;

static struct {
    const char *url;
    const char *build;
    char logdir[PATH_LEN / 2];
    char schema[64];
    char counts[PATH_LEN];
    PGconn *pg;
    master_t m[MAX_MASTER];
    int n;
} env;

/* ---- time --------------------------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Sleep until the wall clock is `at_ms` past a whole second: the ticks of
 * "@every 1s" are whole seconds, so nothing fires right then. */
static void nap_to_second_offset(int64_t at_ms)
{
    int64_t off = wall_ms() % 1000;

    nap_ms(off <= at_ms ? at_ms - off : 1000 - off + at_ms);
}

static void iso(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    if (snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000)) >= (int)len)
        cr_assert_fail("time buffer too small");
}

/* ---- files -------------------------------------------------------------------------- */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f != NULL) {
        do {
            if (cap - len < 4096) {
                cap = cap ? cap * 2 : 65536;
                buf = realloc(buf, cap);
                cr_assert_not_null(buf);
            }
            n = fread(buf + len, 1, cap - len - 1, f);
            len += n;
        } while (n > 0);
        fclose(f);
    }
    if (buf == NULL) {
        buf = malloc(1);
        cr_assert_not_null(buf);
    }
    buf[len] = '\0';
    return buf;
}

/* Lines of `text` that contain every one of the NULL-terminated needles. */
static int count_lines(const char *text, const char *const *needles)
{
    int n = 0;

    for (const char *p = text; *p != '\0';) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        int all = 1;
        char *line = strndup(p, len);

        cr_assert_not_null(line);
        for (int i = 0; needles[i] != NULL && all; i++)
            all = strstr(line, needles[i]) != NULL;
        n += all;
        free(line);
        p += len + (end ? 1 : 0);
    }
    return n;
}

/* Lines "<run_id> <key>" in the counts file the workflow writes. */
static int counted(const char *run_id, const char *key)
{
    char *text = slurp(env.counts), want[160];
    int n;

    snprintf(want, sizeof(want), "%s %s", run_id, key);
    n = count_lines(text, (const char *const[]){want, NULL});
    free(text);
    return n;
}

/* ---- SQL ---------------------------------------------------------------------------- */

/* Run `sql` with text parameters (NULL-terminated); asserts success. */
static PGresult *query(const char *sql, ...)
{
    const char *params[8];
    int n = 0;
    va_list ap;
    PGresult *res;
    ExecStatusType st;

    va_start(ap, sql);
    while (n < 8 && (params[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    res = PQexecParams(env.pg, sql, n, NULL, params, NULL, NULL, 0);
    st = PQresultStatus(res);
    cr_assert(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", sql,
              PQerrorMessage(env.pg));
    return res;
}

static long long query_ll(const char *sql, ...)
{
    const char *params[8];
    int n = 0;
    va_list ap;
    PGresult *res;
    long long v;

    va_start(ap, sql);
    while (n < 8 && (params[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    res = PQexecParams(env.pg, sql, n, NULL, params, NULL, NULL, 0);
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1, "%s: %s", sql,
              PQerrorMessage(env.pg));
    v = PQgetisnull(res, 0, 0) ? -1 : strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

#define TICKS_MS                                                                                   \
    "SELECT (extract(epoch FROM tick_at) * 1000)::int8 FROM cron_ticks"                            \
    " WHERE workflow_id = '" WORKFLOW "' AND schedule = '" SCHEDULE "' ORDER BY tick_at"

/* The fired ticks (Unix ms, ascending); *n gets how many (caller frees). */
static int64_t *ticks(int *n)
{
    PGresult *res = query(TICKS_MS, (const char *)NULL);
    int64_t *t = calloc((size_t)PQntuples(res) + 1, sizeof(*t));

    cr_assert_not_null(t);
    *n = PQntuples(res);
    for (int i = 0; i < *n; i++)
        t[i] = strtoll(PQgetvalue(res, i, 0), NULL, 10);
    PQclear(res);
    return t;
}

/* Cron runs not yet ended: wait (max timeout_ms) until there are none. */
static long long wait_cron_runs_ended(int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    long long pending;

    for (;;) {
        pending = query_ll("SELECT count(*) FROM runs WHERE trigger_type = 'cron'"
                           " AND status = 'pending'",
                           (const char *)NULL);
        if (pending == 0 || mono_ms() > deadline)
            return pending;
        nap_ms(50);
    }
}

/* ---- masters ------------------------------------------------------------------------ */

static void url_with_app(const char *app, char *out, size_t len)
{
    const char *u = env.url;

    if (strncmp(u, "postgresql://", 13) == 0 || strncmp(u, "postgres://", 11) == 0)
        snprintf(out, len, "%s%sapplication_name=%s", u, strchr(u, '?') ? "&" : "?", app);
    else
        snprintf(out, len, "%s application_name=%s", u, app);
}

static int decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}

static int reap(master_t *m, int nohang)
{
    if (!m->exited && waitpid(m->pid, &m->status, nohang ? WNOHANG : 0) == m->pid)
        m->exited = 1;
    return m->exited;
}

static long long sessions(const master_t *m)
{
    return query_ll("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", m->app,
                    (const char *)NULL);
}

/* Start a master with 2 workers, the cron schedule on, and wait (max 10 s)
 * until its workflows are published and both workers are connected. */
static master_t *master_start(void)
{
    char url[1200], bin[PATH_LEN], wf[PATH_LEN], counts[PATH_LEN + 32];
    const char *argv[32];
    char **envp;
    master_t *m;
    int n = 0, fd, e = 0;
    int64_t deadline;
    pid_t pid;

    cr_assert_lt(env.n, MAX_MASTER);
    m = &env.m[env.n++];
    memset(m, 0, sizeof(*m));
    m->k = env.n;
    snprintf(m->app, sizeof(m->app), "%s_m%d", env.schema, m->k);
    snprintf(m->log, sizeof(m->log), "%s/%s-%d.log", env.logdir, env.schema, m->k);
    snprintf(bin, sizeof(bin), "%s/bin/stepkit-master", env.build);
    snprintf(wf, sizeof(wf), "%s/tests/testwf.so", env.build);
    snprintf(counts, sizeof(counts), "STEPKIT_TEST_COUNTS=%s", env.counts);
    url_with_app(m->app, url, sizeof(url));
    cr_assert(access(bin, X_OK) == 0 && access(wf, R_OK) == 0, "build %s and %s first", bin, wf);

    argv[n++] = bin;
    argv[n++] = "--database-url";
    argv[n++] = url;
    argv[n++] = "--schema";
    argv[n++] = env.schema;
    argv[n++] = "--workers";
    argv[n++] = "2";
    argv[n++] = "--workflows";
    argv[n++] = wf;
    argv[n++] = "--http"; /* parallel masters: no HTTP process (test_http covers it) */
    argv[n++] = "off";
    argv[n++] = "--poll-interval";
    argv[n++] = "20";
    argv[n++] = "--poll-max";
    argv[n++] = "200";
    argv[n++] = "--lease";
    argv[n++] = "2000"; /* a run held by a killed master is taken over soon */
    argv[n++] = "--shutdown-timeout";
    argv[n++] = "5000";
    argv[n] = NULL;

    /* The environment without what would change the binaries, plus ours. */
    for (n = 0; environ[n] != NULL; n++)
        ;
    envp = calloc((size_t)n + 3, sizeof(*envp));
    cr_assert_not_null(envp);
    for (int i = 0; environ[i] != NULL; i++) {
        if (strncmp(environ[i], "STEPKIT_", 8) != 0 &&
            strncmp(environ[i], "DATABASE_URL", 12) != 0 &&
            strncmp(environ[i], "PGOPTIONS=", 10) != 0)
            envp[e++] = environ[i];
    }
    envp[e++] = "STEPKIT_TEST_CRON=1";
    envp[e++] = counts;
    envp[e] = NULL;

    fd = open(m->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    cr_assert(fd >= 0, "open %s: %s", m->log, strerror(errno));
    fflush(NULL);
    pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* the test dies: so does the master */
        if (null >= 0)
            dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execve(bin, (char *const *)argv, envp);
        dprintf(2, "test_cron_sched: exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    m->pid = pid;
    free(envp);
    close(fd);

    deadline = mono_ms() + 10000;
    for (;;) {
        PGresult *res;
        long long wf_ok = 0;

        cr_assert(!reap(m, 1), "master %d exited with %d before it was ready; see %s", m->k,
                  decode_status(m->status), m->log);
        /* The table exists once the migration committed. */
        if (query_ll("SELECT count(*) FROM pg_tables WHERE schemaname = $1"
                     " AND tablename = 'workflows'",
                     env.schema, (const char *)NULL) == 1) {
            res = query("SELECT count(*) FROM workflows WHERE workflow_id = '" WORKFLOW
                        "' AND '" SCHEDULE "' = ANY(schedules)",
                        (const char *)NULL);
            wf_ok = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
            PQclear(res);
        }
        if (wf_ok == 1 && sessions(m) >= 2)
            return m;
        cr_assert(mono_ms() < deadline,
                  "master %d not ready after 10 s (is " WORKFLOW " registered with its "
                  "schedule? tests/workflows/cronwf.c); see %s",
                  m->k, m->log);
        nap_ms(20);
    }
}

/* SIGTERM the master (it drains its workers) and wait for its exit code. */
static int master_stop(master_t *m)
{
    int64_t deadline = mono_ms() + 15000;

    kill(m->pid, SIGTERM);
    while (!reap(m, 1)) {
        if (mono_ms() > deadline) {
            kill(-m->pid, SIGKILL);
            reap(m, 0);
            cr_assert_fail("master %d did not stop within 15 s after SIGTERM", m->k);
        }
        nap_ms(20);
    }
    return decode_status(m->status);
}

/* SIGKILL the master and its workers at once (the process group), and wait
 * until their database sessions are gone. */
static void master_kill(master_t *m)
{
    int64_t deadline = mono_ms() + 10000;

    kill(-m->pid, SIGKILL);
    reap(m, 0);
    while (sessions(m) > 0) {
        cr_assert(mono_ms() < deadline, "sessions of killed master %d still there", m->k);
        nap_ms(20);
    }
}

/* No level=error line in any master's log. */
static void expect_clean_logs(void)
{
    for (int i = 0; i < env.n; i++) {
        char *text = slurp(env.m[i].log);
        cr_expect_eq(count_lines(text, (const char *const[]){"level=error", NULL}), 0,
                     "error lines in %s", env.m[i].log);
        free(text);
    }
}

/* Lines of every master's log with all the needles. */
static int count_in_logs(const char *const *needles)
{
    int n = 0;

    for (int i = 0; i < env.n; i++) {
        char *text = slurp(env.m[i].log);
        n += count_lines(text, needles);
        free(text);
    }
    return n;
}

/* ---- fixtures ----------------------------------------------------------------------- */

static void setup(void)
{
    static int seq;
    const char *dir = getenv("STEPKIT_TEST_LOGDIR");
    const char *params[1];
    PGresult *res;

    memset(&env, 0, sizeof(env));
    env.url = getenv("POSTGRES_TEST_URL");
    env.build = getenv("STEPKIT_BUILD");
    if (env.build == NULL || *env.build == '\0')
        env.build = "build";
    cr_assert(env.url != NULL && *env.url != '\0',
              "POSTGRES_TEST_URL is not set: run the suite through tests/run-tests.sh");
    if (dir != NULL && *dir != '\0')
        snprintf(env.logdir, sizeof(env.logdir), "%s", dir);
    else
        snprintf(env.logdir, sizeof(env.logdir), "%s/tests/logs", env.build);
    mkdir(env.logdir, 0755);
    snprintf(env.schema, sizeof(env.schema), "t_%d_%d", (int)getpid(), ++seq);
    snprintf(env.counts, sizeof(env.counts), "%s/%s.counts", env.logdir, env.schema);
    unlink(env.counts);
    env.pg = PQconnectdb(env.url);
    cr_assert(PQstatus(env.pg) == CONNECTION_OK, "connect: %s", PQerrorMessage(env.pg));
    PQclear(PQexec(env.pg, "SET client_min_messages = warning"));
    params[0] = env.schema;
    res = PQexecParams(env.pg, "SELECT pg_catalog.set_config('search_path', $1, false)", 1, NULL,
                       params, NULL, NULL, 0);
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "%s", PQerrorMessage(env.pg));
    PQclear(res);
}

static void teardown(void)
{
    char sql[128];

    for (int i = 0; i < env.n; i++) {
        if (!env.m[i].exited) {
            kill(-env.m[i].pid, SIGKILL);
            reap(&env.m[i], 0);
        }
    }
    if (env.pg == NULL)
        return;
    for (int i = 0; i < env.n; i++) {
        int64_t deadline = mono_ms() + 5000;
        while (sessions(&env.m[i]) > 0 && mono_ms() < deadline)
            nap_ms(20);
    }
    snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", env.schema);
    PQclear(PQexec(env.pg, sql));
    PQfinish(env.pg);
    env.pg = NULL;
}

/* ---- checks ------------------------------------------------------------------------- */

/* msgpack map[key] as a NUL-terminated string in buf, or "" when absent. */
static const char *map_str(const msgpack_object *map, const char *key, char *buf, size_t len)
{
    buf[0] = '\0';
    if (map->type != MSGPACK_OBJECT_MAP)
        return buf;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
            memcmp(kv->key.via.str.ptr, key, strlen(key)) == 0 &&
            kv->val.type == MSGPACK_OBJECT_STR) {
            snprintf(buf, len, "%.*s", (int)kv->val.via.str.size, kv->val.via.str.ptr);
            break;
        }
    }
    return buf;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0;
}

/* Check a msgpack map given as hex: the listed key/value string pairs. */
static void expect_map(const char *hex, const char *const *kv, const char *what)
{
    size_t len = strlen(hex) / 2;
    char *bytes = malloc(len + 1), buf[128];
    msgpack_unpacked u;

    cr_assert_not_null(bytes);
    for (size_t i = 0; i < len; i++)
        bytes[i] = (char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    msgpack_unpacked_init(&u);
    cr_assert_eq(msgpack_unpack_next(&u, bytes, len, NULL), MSGPACK_UNPACK_SUCCESS,
                 "%s: not msgpack", what);
    cr_expect_eq(u.data.type, MSGPACK_OBJECT_MAP, "%s: not a map", what);
    for (int i = 0; kv[i] != NULL; i += 2)
        cr_expect_str_eq(map_str(&u.data, kv[i], buf, sizeof(buf)), kv[i + 1], "%s: %s", what,
                         kv[i]);
    msgpack_unpacked_destroy(&u);
    free(bytes);
}

/* Every tick has one run, of trigger type cron, completed, with the input
 * and output the workflow promises; no cron run lacks its tick. */
static void expect_one_completed_run_per_tick(int exact_bodies)
{
    PGresult *res = query(
        "SELECT (extract(epoch FROM t.tick_at) * 1000)::int8, r.run_id::text, r.status,"
        "       r.trigger_type, r.trigger_name, encode(r.data, 'hex'), encode(r.output, 'hex')"
        "  FROM cron_ticks t LEFT JOIN runs r ON r.run_id = t.run_id"
        " WHERE t.workflow_id = '" WORKFLOW "' ORDER BY t.tick_at",
        (const char *)NULL);
    int n = PQntuples(res);

    cr_expect_eq(
        query_ll("SELECT count(*) FROM runs WHERE trigger_type = 'cron'", (const char *)NULL), n,
        "cron runs without a tick");
    cr_expect_eq(query_ll("SELECT count(DISTINCT run_id) FROM cron_ticks", (const char *)NULL), n,
                 "two ticks share a run");
    for (int i = 0; i < n; i++) {
        char tick[40], what[96];
        const char *run = PQgetvalue(res, i, 1);

        iso(strtoll(PQgetvalue(res, i, 0), NULL, 10), tick, sizeof(tick));
        snprintf(what, sizeof(what), "tick %s run %s", tick, run);
        cr_assert(!PQgetisnull(res, i, 1), "%s: no run", what);
        cr_expect_str_eq(PQgetvalue(res, i, 2), "completed", "%s", what);
        cr_expect_str_eq(PQgetvalue(res, i, 3), "cron", "%s", what);
        cr_expect_str_eq(PQgetvalue(res, i, 4), WORKFLOW, "%s", what);
        expect_map(PQgetvalue(res, i, 5),
                   (const char *const[]){"tick", tick, "schedule", SCHEDULE, NULL}, what);
        if (!PQgetisnull(res, i, 6))
            expect_map(PQgetvalue(res, i, 6),
                       (const char *const[]){"tick", tick, "schedule", SCHEDULE, "type", "cron",
                                             "name", WORKFLOW, NULL},
                       what);
        if (exact_bodies) {
            cr_expect_eq(counted(run, "record"), 1, "%s: step body", what);
            cr_expect_eq(counted(run, "handler"), 2, "%s: handler entries", what);
            cr_expect_eq(counted(run, "after"), 1, "%s: code after the step", what);
        } else {
            cr_expect_geq(counted(run, "record"), 1, "%s: step body", what);
            cr_expect_geq(counted(run, "after"), 1, "%s: code after the step", what);
        }
    }
    PQclear(res);
}

/* Ticks from index `from` on are consecutive whole seconds. */
static void expect_consecutive(const int64_t *t, int from, int n)
{
    char a[40], b[40];

    for (int i = from; i < n; i++)
        cr_expect_eq(t[i] % 1000, 0, "tick %lld is not a whole second", (long long)t[i]);
    for (int i = from + 1; i < n; i++) {
        iso(t[i - 1], a, sizeof(a));
        iso(t[i], b, sizeof(b));
        cr_expect_eq(t[i] - t[i - 1], 1000, "gap or duplicate between ticks %s and %s", a, b);
    }
}

/* ---- tests -------------------------------------------------------------------------- */

TestSuite(cron_sched, .init = setup, .fini = teardown,
          .timeout = 150) /* = ITEST_TIMEOUT_S: Criterion 2.4.1 leaks when tests of different
                             timeouts run in parallel */
    ;

Test(cron_sched, one_run_per_tick_with_two_masters)
{
    master_t *a = master_start(), *b = master_start();
    int64_t *t;
    int n;

    nap_ms(3500);
    nap_to_second_offset(500);
    cr_expect_eq(wait_cron_runs_ended(5000), 0, "cron runs still pending");
    cr_expect_eq(master_stop(a), 0, "master 1 exit code");
    cr_expect_eq(master_stop(b), 0, "master 2 exit code");

    t = ticks(&n);
    cr_expect_geq(n, 3, "only %d ticks fired in 3.5 s", n);
    expect_consecutive(t, 0, n);
    expect_one_completed_run_per_tick(1);
    /* One winner per tick: exactly one cron_fired line each, among 4 workers. */
    cr_expect_eq(count_in_logs((const char *const[]){"event=cron_fired", NULL}), n);
    expect_clean_logs();
    free(t);
}

Test(cron_sched, no_tick_lost_while_one_master_restarts)
{
    master_t *a = master_start(), *b = master_start();
    int64_t killed_at, back_at, *t;
    int n, during = 0;

    nap_ms(2000);
    nap_to_second_offset(300);
    killed_at = wall_ms();
    master_kill(a);
    nap_ms(2500);
    back_at = wall_ms();
    a = master_start();
    nap_ms(2000);
    nap_to_second_offset(500);
    /* A run the killed master held is taken over when its lease (2 s) ends. */
    cr_expect_eq(wait_cron_runs_ended(10000), 0, "cron runs still pending");
    cr_expect_eq(master_stop(a), 0, "restarted master exit code");
    cr_expect_eq(master_stop(b), 0, "surviving master exit code");

    t = ticks(&n);
    cr_expect_geq(n, 6, "only %d ticks fired", n);
    expect_consecutive(t, 0, n);
    for (int i = 0; i < n; i++)
        during += t[i] > killed_at && t[i] < back_at;
    cr_expect_geq(during, 2, "only %d ticks while master 1 was down", during);
    cr_expect_lt(t[0], killed_at, "no tick before the kill");
    cr_expect_gt(t[n - 1], back_at, "no tick after the restart");
    /* A body may run twice when its worker was killed in it (at-least-once). */
    expect_one_completed_run_per_tick(0);
    expect_clean_logs();
    free(t);
}

Test(cron_sched, catch_up_after_a_full_outage_is_one_run_for_the_latest_missed_tick)
{
    master_t *a = master_start();
    int64_t last, restart_at, first_after, *t;
    int n, k;
    char last_s[40], first_s[40], missed_s[40], tick_kv[64], missed_kv[64];

    nap_ms(2200);
    master_kill(a);
    last = query_ll("SELECT (extract(epoch FROM max(tick_at)) * 1000)::int8 FROM cron_ticks",
                    (const char *)NULL);
    cr_assert_gt(last, 0, "no tick fired before the outage");
    nap_ms(3500);
    nap_to_second_offset(100);
    restart_at = wall_ms();
    a = master_start();
    nap_ms(1500);
    nap_to_second_offset(500);
    cr_expect_eq(wait_cron_runs_ended(10000), 0, "cron runs still pending");
    cr_expect_eq(master_stop(a), 0, "restarted master exit code");

    t = ticks(&n);
    for (k = 0; k < n && t[k] <= last; k++)
        ;
    cr_assert_lt(k, n, "nothing fired after the restart");
    first_after = t[k];
    iso(last, last_s, sizeof(last_s));
    iso(first_after, first_s, sizeof(first_s));
    iso(last + 1000, missed_s, sizeof(missed_s));
    /* The missed ticks were not fired one by one: the first run after the
     * outage is for the most recent tick at the restart, and it says which
     * tick it covers from. */
    cr_expect_geq(first_after, restart_at - restart_at % 1000,
                  "first tick after the outage %s is older than the restart: missed ticks were "
                  "fired one by one (last before the outage %s)",
                  first_s, last_s);
    cr_expect_lt(first_after, restart_at + 2000, "first tick after the outage %s is late", first_s);
    cr_expect_geq(first_after - last, 3000, "no outage between %s and %s?", last_s, first_s);
    snprintf(tick_kv, sizeof(tick_kv), "tick=%s", first_s);
    snprintf(missed_kv, sizeof(missed_kv), "missed_from=%s", missed_s);
    cr_expect_eq(count_in_logs((const char *const[]){"event=cron_fired", tick_kv, missed_kv, NULL}),
                 1, "no catch-up line for %s with %s", tick_kv, missed_kv);
    expect_consecutive(t, 0, k);
    expect_consecutive(t, k, n);
    cr_expect_geq(n - k, 2, "the schedule did not go on after the catch-up");
    expect_one_completed_run_per_tick(0);
    expect_clean_logs();
    free(t);
}
