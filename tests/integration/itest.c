/* The integration harness (itest.h). */
#include "itest.h"

#include <criterion/criterion.h>

#include <ctype.h>
#include <dirent.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

#include <openssl/evp.h>

#include "sk_json.h"
#include "stepkit.h"

#define READY_TIMEOUT_MS 10000
#define MAX_PARAMS       16

extern char **environ;

itest_env_t itest;

const char *const itest_test_workflows[] = {
    "two-steps",
    "dup-ids",
    "retry-once",
    "exhausted",
    "non-retryable",
    "validated",
    "nested",
    "always-fails",
    "chain5",
    "chain3",
    "slow-once",
    "slow-twice",
    "kills-its-worker",
    "hangs",
    "segfaults",
    "exits",
    "long-step",
    "heartbeats",
    "handler-segfaults",
    NULL,
};

/* ---- small helpers ------------------------------------------------------------------ */

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (f != NULL) {
        for (;;) {
            if (cap - len < 4096) {
                cap = cap ? cap * 2 : 65536;
                buf = realloc(buf, cap);
                cr_assert_not_null(buf);
            }
            n = fread(buf + len, 1, cap - len - 1, f);
            len += n;
            if (n == 0)
                break;
        }
        fclose(f);
    }
    if (buf == NULL) {
        buf = malloc(1);
        cr_assert_not_null(buf);
    }
    buf[len] = '\0';
    return buf;
}

static void mkdir_p(const char *path)
{
    char tmp[ITEST_PATH_MAX];

    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(tmp, 0755);
            *p = '/';
        }
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        cr_assert_fail("mkdir %s: %s", path, strerror(errno));
}

/* Live (non-zombie) processes in process group pgid, from /proc. */
static int group_alive(pid_t pgid)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL) {
        char path[300], buf[512], *p;
        FILE *f;
        char state;
        int ppid, pgrp;

        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        f = fopen(path, "re");
        if (f == NULL)
            continue;
        if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL &&
            sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid && state != 'Z' &&
            state != 'X')
            n++;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* environ without the variables that would change what the binaries do,
 * plus `extra` ("NAME=value"). */
static char **build_env(const char *const *extra)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n] != NULL)
        n++;
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        n++;
    env = calloc(n + 1, sizeof(*env));
    cr_assert_not_null(env);
    for (size_t i = 0; environ[i] != NULL; i++) {
        const char *e = environ[i];
        int drop = strncmp(e, "STEPKIT_", 8) == 0 || strncmp(e, "DATABASE_URL", 12) == 0 ||
                   strncmp(e, "PGOPTIONS=", 10) == 0;
        if (!drop)
            env[k++] = (char *)e;
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        env[k++] = (char *)extra[i];
    env[k] = NULL;
    return env;
}

/* The test URL with application_name=app, so a master's sessions can be
 * found in pg_stat_activity. */
static void url_with_app(const char *url, const char *app, char *out, size_t outlen)
{
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)
        snprintf(out, outlen, "%s%sapplication_name=%s", url, strchr(url, '?') ? "&" : "?", app);
    else
        snprintf(out, outlen, "%s%sapplication_name=%s", url, *url ? " " : "", app);
}

static int decode_status(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

/* ---- fixtures ---------------------------------------------------------------------- */

void itest_setup(void)
{
    static int seq;
    char err[512];
    PGresult *res;
    const char *params[1];

    memset(&itest, 0, sizeof(itest));
    itest.url = getenv("POSTGRES_TEST_URL");
    itest.build = getenv("STEPKIT_BUILD");
    if (itest.build == NULL || *itest.build == '\0')
        itest.build = "build";
    cr_assert(itest.url != NULL && *itest.url != '\0',
              "POSTGRES_TEST_URL is not set: run the suite through tests/run-tests.sh");
    snprintf(itest.schema, sizeof(itest.schema), "t_%d_%d", (int)getpid(), ++seq);
    if (getenv("STEPKIT_TEST_LOGDIR") != NULL && *getenv("STEPKIT_TEST_LOGDIR") != '\0')
        snprintf(itest.logdir, sizeof(itest.logdir), "%s", getenv("STEPKIT_TEST_LOGDIR"));
    else
        snprintf(itest.logdir, sizeof(itest.logdir), "%s/tests/logs", itest.build);
    mkdir_p(itest.logdir);
    snprintf(itest.counts, sizeof(itest.counts), "%s/%s.counts", itest.logdir, itest.schema);
    unlink(itest.counts);

    itest.pg = PQconnectdb(itest.url);
    cr_assert(PQstatus(itest.pg) == CONNECTION_OK, "connect to POSTGRES_TEST_URL: %s",
              PQerrorMessage(itest.pg));
    PQclear(PQexec(itest.pg, "SET client_min_messages = warning"));
    params[0] = itest.schema;
    res = PQexecParams(itest.pg, "SELECT pg_catalog.set_config('search_path', $1, false)", 1, NULL,
                       params, NULL, NULL, 0);
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "set search_path: %s",
              PQerrorMessage(itest.pg));
    PQclear(res);
    itest.client = sk_client_connect(itest.url, itest.schema, err, sizeof(err));
    cr_assert_not_null(itest.client, "sk_client_connect: %s", err);
}

static void wait_sessions_gone(const char *app, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;

    while (mono_ms() < deadline) {
        const char *params[1] = {app};
        PGresult *res = PQexecParams(
            itest.pg, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", 1, NULL,
            params, NULL, NULL, 0);
        int n = PQresultStatus(res) == PGRES_TUPLES_OK ? atoi(PQgetvalue(res, 0, 0)) : 0;
        PQclear(res);
        if (n == 0)
            return;
        nap_ms(20);
    }
}

void itest_teardown(void)
{
    for (int i = 0; i < itest.nmasters; i++) {
        itest_master_t *m = &itest.masters[i];
        if (m->pid <= 0)
            continue;
        kill(-m->pid, SIGKILL);
        if (!m->reaped && waitpid(m->pid, &m->status, 0) == m->pid)
            m->reaped = 1;
    }
    sk_client_close(itest.client);
    itest.client = NULL;
    if (itest.pg != NULL) {
        char sql[128];
        for (int i = 0; i < itest.nmasters; i++)
            wait_sessions_gone(itest.masters[i].app, 5000);
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE", itest.schema);
        PQclear(PQexec(itest.pg, sql));
        PQfinish(itest.pg);
        itest.pg = NULL;
    }
}

/* ---- masters ------------------------------------------------------------------------ */

itest_master_t *itest_master_start(const itest_master_opts_t *opts)
{
    itest_master_opts_t o = opts ? *opts : (itest_master_opts_t){0};
    char url[1024], workers[16], lease[16], shutdown[16], bin[ITEST_PATH_MAX];
    char testwf[ITEST_PATH_MAX], examples[ITEST_PATH_MAX], counts_env[ITEST_PATH_MAX + 160];
    const char *argv[48];
    const char *extra_env[2] = {counts_env, NULL};
    char **env;
    itest_master_t *m;
    int n = 0, fd;
    pid_t pid;

    cr_assert_lt(itest.nmasters, ITEST_MAX_MASTERS, "too many masters in one test");
    m = &itest.masters[itest.nmasters++];
    memset(m, 0, sizeof(*m));
    m->k = itest.nmasters;
    m->workers = o.workers > 0 ? o.workers : 2;
    snprintf(m->app, sizeof(m->app), "%s_m%d", itest.schema, m->k);
    snprintf(m->log, sizeof(m->log), "%s/%s-%d.log", itest.logdir, itest.schema, m->k);
    url_with_app(itest.url, m->app, url, sizeof(url));
    snprintf(workers, sizeof(workers), "%d", m->workers);
    snprintf(lease, sizeof(lease), "%d", o.lease_ms > 0 ? o.lease_ms : 5000);
    snprintf(shutdown, sizeof(shutdown), "%d", o.shutdown_ms > 0 ? o.shutdown_ms : 5000);
    snprintf(bin, sizeof(bin), "%s/%s/stepkit-master", itest.build, o.bindir ? o.bindir : "bin");
    snprintf(testwf, sizeof(testwf), "%s/tests/testwf.so", itest.build);
    snprintf(examples, sizeof(examples), "%s/examples/examples.so", itest.build);
    snprintf(counts_env, sizeof(counts_env), "STEPKIT_TEST_COUNTS=%s", itest.counts);
    cr_assert(access(bin, X_OK) == 0, "%s is missing: build it first", bin);
    cr_assert(access(testwf, R_OK) == 0, "%s is missing: build it first", testwf);

    argv[n++] = bin;
    argv[n++] = "--database-url";
    argv[n++] = url;
    argv[n++] = "--schema";
    argv[n++] = itest.schema;
    argv[n++] = "--workers";
    argv[n++] = workers;
    argv[n++] = "--workflows";
    argv[n++] = testwf;
    if (o.with_examples) {
        argv[n++] = "--workflows";
        argv[n++] = examples;
    }
    argv[n++] = "--poll-interval";
    argv[n++] = "20";
    argv[n++] = "--poll-max";
    argv[n++] = "200";
    argv[n++] = "--lease";
    argv[n++] = lease;
    argv[n++] = "--shutdown-timeout";
    argv[n++] = shutdown;
    if (o.no_migrate)
        argv[n++] = "--no-migrate";
    /* No HTTP process unless a test asks for one in `extra` (a later flag wins):
     * masters of parallel tests would all want the default port. */
    argv[n++] = "--http";
    argv[n++] = "off";
    for (int i = 0; i < 8 && o.extra[i] != NULL; i++)
        argv[n++] = o.extra[i];
    argv[n] = NULL;

    fd = open(m->log, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    cr_assert(fd >= 0, "open %s: %s", m->log, strerror(errno));
    env = build_env(extra_env);
    fflush(NULL);
    pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        setpgid(0, 0);
        /* Should this test process die, take the master down with it
         * (its workers follow through the alive pipe). */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (null >= 0)
            dup2(null, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        /* Nothing of Criterion's (its arena, its pipes) leaks into the daemon. */
        close_range(3, ~0U, 0);
        execve(bin, (char *const *)argv, env);
        dprintf(2, "itest: exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* both sides, so a kill right away reaches the group */
    m->pid = pid;
    free(env);
    close(fd);
    return m;
}

/* The last lines of a log, for failure messages (malloc'd). */
static char *log_tail(const char *path, size_t max)
{
    char *text = read_file(path);
    size_t len = strlen(text);

    if (len > max)
        memmove(text, text + len - max, max + 1);
    return text;
}

static int poll_exit(itest_master_t *m)
{
    if (!m->reaped && waitpid(m->pid, &m->status, WNOHANG) == m->pid)
        m->reaped = 1;
    return m->reaped;
}

void itest_master_wait_ready(itest_master_t *m, const char *const *workflows)
{
    char list[2048] = "{", app[64];
    int64_t deadline = mono_ms() + READY_TIMEOUT_MS;
    long want = 0;

    for (int i = 0; workflows[i] != NULL; i++, want++) {
        strncat(list, i ? "," : "", sizeof(list) - strlen(list) - 1);
        strncat(list, workflows[i], sizeof(list) - strlen(list) - 1);
    }
    strncat(list, "}", sizeof(list) - strlen(list) - 1);
    snprintf(app, sizeof(app), "%s", m->app);
    for (;;) {
        PGresult *res;
        long registered = -1, sessions = -1;

        if (poll_exit(m)) {
            char *tail = log_tail(m->log, 2000);
            cr_assert_fail("master %d exited with %d before it was ready; log:\n%s", m->k,
                           decode_status(m->status), tail);
        }
        /* The table exists once the migration committed: look it up first
         * rather than provoke errors in the server log. */
        res = PQexecParams(itest.pg,
                           "SELECT to_regclass(quote_ident($1) || '.workflows') IS NOT NULL,"
                           "       (SELECT count(*) FROM pg_stat_activity"
                           "         WHERE application_name = $2)",
                           2, NULL, (const char *[]){itest.schema, app}, NULL, NULL, 0);
        if (PQresultStatus(res) == PGRES_TUPLES_OK) {
            sessions = atol(PQgetvalue(res, 0, 1));
            if (strcmp(PQgetvalue(res, 0, 0), "t") == 0)
                registered = 0;
        }
        PQclear(res);
        if (registered == 0) {
            res = PQexecParams(itest.pg,
                               "SELECT count(*) FROM workflows WHERE workflow_id = ANY($1::text[])",
                               1, NULL, (const char *[]){list}, NULL, NULL, 0);
            if (PQresultStatus(res) == PGRES_TUPLES_OK)
                registered = atol(PQgetvalue(res, 0, 0));
            PQclear(res);
        }
        if (registered == want && sessions >= m->workers)
            return;
        if (mono_ms() > deadline) {
            char *tail = log_tail(m->log, 2000);
            cr_assert_fail("master %d not ready after %d ms (%ld of %ld workflows registered, "
                           "%ld of %d sessions); log:\n%s",
                           m->k, READY_TIMEOUT_MS, registered, want, sessions, m->workers, tail);
        }
        nap_ms(20);
    }
}

itest_master_t *itest_master_up(const itest_master_opts_t *opts)
{
    itest_master_t *m = itest_master_start(opts);

    itest_master_wait_ready(m, itest_test_workflows);
    return m;
}

int itest_master_wait_exit(itest_master_t *m, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;

    while (!poll_exit(m)) {
        if (mono_ms() > deadline)
            return -1;
        nap_ms(10);
    }
    return decode_status(m->status);
}

int itest_master_stop(itest_master_t *m, int timeout_ms)
{
    int code;

    if (m->reaped)
        return decode_status(m->status);
    kill(m->pid, SIGTERM);
    code = itest_master_wait_exit(m, timeout_ms);
    if (code < 0) {
        kill(-m->pid, SIGKILL);
        waitpid(m->pid, &m->status, 0);
        m->reaped = 1;
        code = decode_status(m->status);
        cr_expect_fail("master %d did not stop within %d ms of SIGTERM (killed)", m->k, timeout_ms);
    }
    return code;
}

void itest_master_kill(itest_master_t *m)
{
    int64_t deadline = mono_ms() + 10000;

    kill(-m->pid, SIGKILL);
    if (!m->reaped) {
        waitpid(m->pid, &m->status, 0);
        m->reaped = 1;
    }
    while (group_alive(m->pid) > 0) {
        cr_assert_lt(mono_ms(), deadline, "processes of master %d survive SIGKILL", m->k);
        nap_ms(10);
    }
    /* Their transactions are over (committed or rolled back) only when the
     * server has seen the sessions go. */
    wait_sessions_gone(m->app, 10000);
    cr_assert_eq(
        itest_long("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", m->app), 0,
        "sessions of killed master %d are still open", m->k);
}

char *itest_master_log(const itest_master_t *m)
{
    return read_file(m->log);
}

int itest_log_count_all(const itest_master_t *m, const char *const *needles)
{
    char *text = read_file(m->log), *line, *save = NULL;
    int n = 0;

    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int all = 1;
        for (int i = 0; needles[i] != NULL && all; i++)
            all = strstr(line, needles[i]) != NULL;
        n += all;
    }
    free(text);
    return n;
}

int itest_log_count(const itest_master_t *m, const char *needle)
{
    const char *needles[2] = {needle, NULL};

    return itest_log_count_all(m, needles);
}

int itest_log_wait_count(const itest_master_t *m, const char *needle, int n, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    int seen;

    for (;;) {
        seen = itest_log_count(m, needle);
        if (seen >= n || mono_ms() > deadline)
            return seen;
        nap_ms(20);
    }
}

int itest_log_wait(const itest_master_t *m, const char *needle, int timeout_ms)
{
    return itest_log_wait_count(m, needle, 1, timeout_ms) >= 1;
}

void itest_allow_error(const char *substring)
{
    cr_assert_lt(itest.nallow, ITEST_MAX_ALLOW);
    itest.allow[itest.nallow++] = substring;
}

void itest_finish(void)
{
    char bad[4096] = "";
    int nbad = 0;

    for (int i = 0; i < itest.nmasters; i++) {
        itest_master_t *m = &itest.masters[i];
        if (!m->reaped) {
            int code = itest_master_stop(m, 15000);
            cr_expect_eq(code, 0, "master %d exited with %d on SIGTERM", m->k, code);
        }
        /* Workers must not outlive their master. */
        for (int64_t deadline = mono_ms() + 5000; group_alive(m->pid) > 0;) {
            if (mono_ms() > deadline) {
                cr_expect_fail("processes of master %d outlived it", m->k);
                kill(-m->pid, SIGKILL);
                break;
            }
            nap_ms(10);
        }
    }
    for (int i = 0; i < itest.nmasters; i++) {
        char *text = read_file(itest.masters[i].log), *line, *save = NULL;

        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            int allowed = 0;
            if (strstr(line, "level=error") == NULL)
                continue;
            for (int j = 0; j < itest.nallow && !allowed; j++)
                allowed = strstr(line, itest.allow[j]) != NULL;
            if (allowed)
                continue;
            if (nbad++ < 8) {
                strncat(bad, line, sizeof(bad) - strlen(bad) - 2);
                strncat(bad, "\n", sizeof(bad) - strlen(bad) - 1);
            }
        }
        free(text);
    }
    cr_assert_eq(nbad, 0, "%d unexpected level=error log line(s):\n%s", nbad, bad);
}

/* ---- SQL ------------------------------------------------------------------------------ */

static PGresult *vquery(const char *sql, va_list ap)
{
    const char *params[MAX_PARAMS];
    const char *p;
    int n = 0;
    PGresult *res;
    ExecStatusType st;

    while ((p = va_arg(ap, const char *)) != NULL) {
        cr_assert_lt(n, MAX_PARAMS);
        params[n++] = p;
    }
    res = PQexecParams(itest.pg, sql, n, NULL, params, NULL, NULL, 0);
    st = PQresultStatus(res);
    cr_assert(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "query failed: %s\n%s",
              PQerrorMessage(itest.pg), sql);
    return res;
}

PGresult *itest_query_(const char *sql, ...)
{
    va_list ap;
    PGresult *res;

    va_start(ap, sql);
    res = vquery(sql, ap);
    va_end(ap);
    return res;
}

static PGresult *one_value(const char *sql, va_list ap)
{
    PGresult *res = vquery(sql, ap);

    cr_assert(PQntuples(res) == 1 && PQnfields(res) == 1,
              "expected one value, got %d rows of %d columns: %s", PQntuples(res), PQnfields(res),
              sql);
    return res;
}

long itest_long_(const char *sql, ...)
{
    va_list ap;
    PGresult *res;
    long v;

    va_start(ap, sql);
    res = one_value(sql, ap);
    va_end(ap);
    cr_assert(!PQgetisnull(res, 0, 0), "NULL from %s", sql);
    v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

char *itest_str_(const char *sql, ...)
{
    va_list ap;
    PGresult *res;
    char *s;

    va_start(ap, sql);
    res = one_value(sql, ap);
    va_end(ap);
    s = PQgetisnull(res, 0, 0) ? NULL : strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return s;
}

char *itest_bytea_json_(const char *sql, ...)
{
    const char *params[MAX_PARAMS];
    const char *p;
    va_list ap;
    int n = 0;
    PGresult *res;
    char *s = NULL;

    va_start(ap, sql);
    while ((p = va_arg(ap, const char *)) != NULL) {
        cr_assert_lt(n, MAX_PARAMS);
        params[n++] = p;
    }
    va_end(ap);
    /* Binary results: bytea arrives as the raw msgpack bytes. */
    res = PQexecParams(itest.pg, sql, n, NULL, params, NULL, NULL, 1);
    cr_assert(PQresultStatus(res) == PGRES_TUPLES_OK, "query failed: %s\n%s",
              PQerrorMessage(itest.pg), sql);
    cr_assert(PQntuples(res) == 1 && PQnfields(res) == 1,
              "expected one value, got %d rows of %d columns: %s", PQntuples(res), PQnfields(res),
              sql);
    if (!PQgetisnull(res, 0, 0))
        s = itest_json(PQgetvalue(res, 0, 0), (size_t)PQgetlength(res, 0, 0));
    PQclear(res);
    return s;
}

json_t *itest_parse(const char *json)
{
    json_error_t e;
    json_t *j;

    cr_assert_not_null(json, "no JSON text");
    j = json_loads(json, JSON_DECODE_ANY, &e);
    cr_assert_not_null(j, "not JSON (%s at line %d column %d): %s", e.text, e.line, e.column, json);
    return j;
}

json_t *itest_jget(json_t *root, const char *path)
{
    char buf[256], *seg, *save = NULL;
    json_t *cur = root;

    snprintf(buf, sizeof(buf), "%s", path);
    for (seg = strtok_r(buf, ".", &save); seg && cur; seg = strtok_r(NULL, ".", &save)) {
        if (json_is_array(cur) && isdigit((unsigned char)seg[0]))
            cur = json_array_get(cur, (size_t)atol(seg));
        else
            cur = json_is_object(cur) ? json_object_get(cur, seg) : NULL;
    }
    return cur;
}

const char *itest_jstr(json_t *root, const char *path)
{
    return json_string_value(itest_jget(root, path));
}

void itest_exec_sql(const char *sql)
{
    PGresult *res = PQexec(itest.pg, sql);
    ExecStatusType st = PQresultStatus(res);

    cr_assert(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "query failed: %s\n%s",
              PQerrorMessage(itest.pg), sql);
    PQclear(res);
}

long itest_wait_ended(long n, int timeout_ms)
{
    int64_t deadline = mono_ms() + timeout_ms;
    long ended;

    for (;;) {
        ended = itest_long("SELECT count(*) FROM runs WHERE status <> 'pending'");
        if (ended >= n || mono_ms() > deadline)
            return ended;
        nap_ms(50);
    }
}

/* ---- runs ------------------------------------------------------------------------------ */

void itest_pack_json(const char *json, msgpack_sbuffer *buf)
{
    char err[256];

    msgpack_sbuffer_init(buf);
    cr_assert_eq(sk_json_to_msgpack(json, strlen(json), buf, err, sizeof(err)), SK_OK, "%s: %s",
                 json, err);
}

char *itest_json(const char *data, size_t len)
{
    char err[256];
    char *s;

    cr_assert_not_null(data, "no msgpack value to show");
    s = sk_msgpack_bytes_to_json(data, len, err, sizeof(err));
    cr_assert_not_null(s, "msgpack -> JSON: %s", err);
    return s;
}

void itest_start(const char *workflow, const char *json, char run_id[SK_UUID_LEN])
{
    msgpack_sbuffer buf;
    char err[512], event_id[SK_UUID_LEN];

    itest_pack_json(json ? json : "null", &buf);
    cr_assert_eq(sk_client_start(itest.client, workflow, buf.data, buf.size, run_id, event_id, err,
                                 sizeof(err)),
                 SK_OK, "start %s: %s", workflow, err);
    msgpack_sbuffer_destroy(&buf);
}

void itest_invoke(const char *workflow, const char *json, sk_run_result_t *res)
{
    msgpack_sbuffer buf;
    char err[512];
    int rc;

    itest_pack_json(json ? json : "null", &buf);
    rc = sk_client_invoke(itest.client, workflow, buf.data, buf.size, 30000, res, err, sizeof(err));
    msgpack_sbuffer_destroy(&buf);
    cr_assert_neq(rc, SK_AGAIN, "run %s of %s did not end within 30 s", res->run_id, workflow);
    cr_assert_eq(rc, SK_OK, "invoke %s: %s", workflow, err);
}

void itest_op_key(const char *step_id, int index, char out[41])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char buf[256];
    int n = snprintf(buf, sizeof(buf), "%s:%d", step_id, index);

    cr_assert(EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha1(), NULL) == 1 && mdlen == 20);
    for (unsigned int i = 0; i < mdlen; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[40] = '\0';
}

/* ---- counts ------------------------------------------------------------------------------ */

struct itest_counts {
    char *text;
    char **lines;
    size_t n;
};

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

itest_counts_t *itest_counts_load(const char *file)
{
    itest_counts_t *c = calloc(1, sizeof(*c));
    size_t cap = 0;
    char *line, *save = NULL;

    cr_assert_not_null(c);
    c->text = read_file(file);
    for (line = strtok_r(c->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (c->n == cap) {
            cap = cap ? cap * 2 : 1024;
            c->lines = realloc(c->lines, cap * sizeof(*c->lines));
            cr_assert_not_null(c->lines);
        }
        c->lines[c->n++] = line;
    }
    if (c->n > 0)
        qsort(c->lines, c->n, sizeof(*c->lines), cmp_line);
    return c;
}

int itest_counts_get(const itest_counts_t *c, const char *run_id, const char *key)
{
    char want[256];
    size_t lo = 0, hi = c->n;
    int n = 0;

    snprintf(want, sizeof(want), "%s %s", run_id, key);
    while (lo < hi) { /* first line >= want */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(c->lines[mid], want) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (lo < c->n && strcmp(c->lines[lo++], want) == 0)
        n++;
    return n;
}

void itest_counts_free(itest_counts_t *c)
{
    if (c == NULL)
        return;
    free(c->lines);
    free(c->text);
    free(c);
}

int itest_count(const char *file, const char *run_id, const char *key)
{
    itest_counts_t *c = itest_counts_load(file);
    int n = itest_counts_get(c, run_id, key);

    itest_counts_free(c);
    return n;
}

/* ---- commands ----------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
} growbuf_t;

static int drain(int fd, growbuf_t *g)
{
    char tmp[4096];
    ssize_t n = read(fd, tmp, sizeof(tmp));

    if (n <= 0)
        return n == 0 || errno != EINTR ? 0 : 1;
    if (g->len + (size_t)n + 1 > g->cap) {
        g->cap = (g->len + (size_t)n + 1) * 2;
        g->buf = realloc(g->buf, g->cap);
        cr_assert_not_null(g->buf);
    }
    memcpy(g->buf + g->len, tmp, (size_t)n);
    g->len += (size_t)n;
    g->buf[g->len] = '\0';
    return 1;
}

static char *take(growbuf_t *g)
{
    if (g->buf == NULL) {
        g->buf = calloc(1, 1);
        cr_assert_not_null(g->buf);
    }
    return g->buf;
}

void itest_run_cmd(const char *const *argv, const char *const *env, int timeout_ms,
                   itest_cmd_t *res)
{
    int out[2], err[2], status;
    char **envp = build_env(env);
    growbuf_t gout = {0}, gerr = {0};
    int64_t deadline = mono_ms() + timeout_ms;
    int open_fds = 2;
    pid_t pid;

    memset(res, 0, sizeof(*res));
    cr_assert(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0);
    fflush(NULL);
    pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (null >= 0)
            dup2(null, 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        close_range(3, ~0U, 0);
        execvpe(argv[0], (char *const *)argv, envp);
        dprintf(2, "itest: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    free(envp);
    close(out[1]);
    close(err[1]);
    struct pollfd pfd[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    while (open_fds > 0) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            cr_assert_fail("%s did not finish within %d ms", argv[0], timeout_ms);
        }
        if (poll(pfd, 2, (int)left) < 0 && errno != EINTR)
            cr_assert_fail("poll: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            if (pfd[i].fd >= 0 && (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))) {
                if (!drain(pfd[i].fd, i == 0 ? &gout : &gerr)) {
                    close(pfd[i].fd);
                    pfd[i].fd = -1;
                    open_fds--;
                }
            }
        }
    }
    while (waitpid(pid, &status, 0) < 0) {
        cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
    }
    res->code = decode_status(status);
    res->out = take(&gout);
    res->err = take(&gerr);
}

void itest_cli(const char *const *args, itest_cmd_t *res)
{
    char bin[ITEST_PATH_MAX], url[1024 + 16], schema[96];
    const char *argv[32];
    const char *env[3] = {url, schema, NULL};
    int n = 0;

    snprintf(bin, sizeof(bin), "%s/bin/stepkit", itest.build);
    snprintf(url, sizeof(url), "DATABASE_URL=%s", itest.url);
    snprintf(schema, sizeof(schema), "STEPKIT_SCHEMA=%s", itest.schema);
    argv[n++] = bin;
    for (int i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    itest_run_cmd(argv, env, 30000, res);
}

void itest_cmd_free(itest_cmd_t *res)
{
    free(res->out);
    free(res->err);
    memset(res, 0, sizeof(*res));
}

int itest_timing_slack_ms(void)
{
    const char *san = getenv("STEPKIT_TEST_SANITIZE");

    return san != NULL && *san != '\0' ? 1000 : 0;
}

int itest_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

    cr_assert(fd >= 0);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind: %s", strerror(errno));
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

pid_t itest_holder_pid(const char *run_id)
{
    char *by =
        itest_str("SELECT claimed_by FROM exec_queue WHERE run_id = $1::uuid AND leased", run_id);
    const char *colon;
    pid_t pid;

    cr_assert_not_null(by, "run %s is not leased", run_id);
    colon = strrchr(by, ':');
    cr_assert_not_null(colon, "claimed_by %s", by);
    pid = (pid_t)atol(colon + 1);
    free(by);
    return pid;
}
