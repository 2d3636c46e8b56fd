/*
 * Hostile input (docs/security.md): over-long names at every entry point,
 * writes the database refuses for good, passwords in argv, logs and
 * errors, and the command line's --data-file.  Workflows in
 * tests/workflows/hostilewf.c.
 */
#include "test_steps.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#define LEASE_MS 5000

/* `len` bytes of `c` (malloc'd). */
static char *repeat(char c, size_t len)
{
    char *s = malloc(len + 1);

    cr_assert_not_null(s);
    memset(s, c, len);
    s[len] = '\0';
    return s;
}

/* Start hostile-name with {kind, len} and wait for its end. */
static void run_name(const char *kind, long len, sk_run_result_t *res, char run_id[SK_UUID_LEN])
{
    char input[128];

    snprintf(input, sizeof(input), "{\"kind\":\"%s\",\"len\":%ld}", kind, len);
    itest_start("hostile-name", input, run_id);
    st_wait(run_id, 20000, res);
}

/* The run failed with `name` (not retryable), its message holding `has`. */
static void expect_failed_with(const sk_run_result_t *res, const char *name, const char *has)
{
    json_t *e = st_error(res);

    cr_expect_str_eq(itest_jstr(e, "name"), name, "run %s", res->run_id);
    cr_expect(strstr(itest_jstr(e, "message") ? itest_jstr(e, "message") : "", has) != NULL,
              "message of run %s lacks '%s': %s", res->run_id, has, itest_jstr(e, "message"));
    cr_expect(json_is_false(itest_jget(e, "retryable")), "run %s: error is retryable", res->run_id);
    json_decref(e);
}

/* ---- names ------------------------------------------------------------------------------ */

Test(hostile, step_id_over_255_bytes_fails_at_once_with_invalid_step_error, ITEST_FIXTURES)
{
    char run_id[SK_UUID_LEN];
    sk_run_result_t res;
    itest_master_t *m = itest_master_up(NULL);

    run_name("run", 255, &res, run_id);
    st_expect_output(&res, "\"done\"");
    sk_run_result_clear(&res);

    run_name("run", 256, &res, run_id);
    expect_failed_with(&res, "InvalidStepError", "step id is 256 bytes long: the limit is 255");
    cr_expect_eq(COUNT(run_id, "handler"), 1, "the handler ran once");
    cr_expect_eq(COUNT(run_id, "body"), 0, "the body never ran");
    cr_expect_eq(st_ops(run_id, NULL), 0, "nothing was written for the step");
    sk_run_result_clear(&res);
    cr_expect_eq(itest_log_count(m, "event=write_failed"), 0);
    itest_finish();
}

/* The issue's case: a 100 kB signal name used to overflow the btree row
 * limit, abandon the lease five times and end with WorkerLostError. */
Test(hostile, signal_name_of_100_kb_fails_at_once_not_after_five_takeovers, ITEST_FIXTURES)
{
    char run_id[SK_UUID_LEN];
    sk_run_result_t res;
    itest_master_opts_t o = {.lease_ms = LEASE_MS};
    itest_master_t *m = itest_master_up(&o);
    long ms;

    run_name("signal", 100 * 1024, &res, run_id);
    expect_failed_with(&res, "InvalidStepError", "signal name is 102400 bytes long");
    ms = st_run_ms(run_id);
    cr_expect_lt(ms, LEASE_MS, "ended %ld ms after its start: a lease expired on the way", ms);
    cr_expect_eq(COUNT(run_id, "handler"), 1);
    cr_expect_eq(itest_long("SELECT count(*) FROM waiting_signals"), 0);
    sk_run_result_clear(&res);

    /* 255 bytes is a name like any other: the wait times out (50 ms) with nil. */
    run_name("signal", 255, &res, run_id);
    st_expect_output(&res, "null");
    sk_run_result_clear(&res);
    cr_expect_eq(itest_log_count(m, "event=write_failed"), 0);
    cr_expect_eq(itest_log_count(m, "event=lease_lost"), 0);
    itest_finish();
}

Test(hostile, send_signal_and_invoke_with_long_names_fail_with_invalid_step_error, ITEST_FIXTURES)
{
    char run_id[SK_UUID_LEN];
    sk_run_result_t res;

    itest_master_up(NULL);
    run_name("send", 300, &res, run_id);
    expect_failed_with(&res, "InvalidStepError", "signal name is 300 bytes long");
    sk_run_result_clear(&res);
    run_name("invoke", 5000, &res, run_id);
    expect_failed_with(&res, "InvalidStepError", "workflow id is 5000 bytes long");
    sk_run_result_clear(&res);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs"), 2, "no child run was started");
    itest_finish();
}

static void expect_cli(const char *const *args, int code, const char *out_has, const char *err_has)
{
    itest_cmd_t r;

    itest_cli(args, &r);
    cr_expect_eq(r.code, code, "stepkit %s %s: exit %d\nstdout: %.300s\nstderr: %.300s", args[0],
                 args[1] ? args[1] : "", r.code, r.out, r.err);
    if (out_has != NULL)
        cr_expect(strstr(r.out, out_has) != NULL, "stdout lacks '%s': %.300s", out_has, r.out);
    if (err_has != NULL)
        cr_expect(strstr(r.err, err_has) != NULL, "stderr lacks '%s': %.300s", err_has, r.err);
    itest_cmd_free(&r);
}

/* ---- writes the database refuses ---------------------------------------------------------- */

/* A constraint the step's write violates (SQLSTATE 23514) fails the run
 * at once with the database's message, not after five lease expiries. */
static void refused_write(const char *kind)
{
    char run_id[SK_UUID_LEN], input[64];
    sk_run_result_t res;
    itest_master_opts_t o = {.lease_ms = LEASE_MS};
    itest_master_t *m;
    long ms;

    expect_cli((const char *[]){"migrate", NULL}, 0, "applied", NULL);
    itest_exec_sql("ALTER TABLE ops ADD CONSTRAINT no_poison CHECK (step_id <> 'poison')");
    m = itest_master_up(&o);
    snprintf(input, sizeof(input), "{\"kind\":\"%s\"}", kind);
    itest_start("hostile-poison", input, run_id);
    st_wait(run_id, 20000, &res);
    expect_failed_with(&res, "DatabaseError", "no_poison");
    expect_failed_with(&res, "DatabaseError", "(SQLSTATE 23514)");
    ms = st_run_ms(run_id);
    cr_expect_lt(ms, LEASE_MS, "ended %ld ms after its start: a lease expired on the way", ms);
    /* Code after the step may have run in memory (a step's result is
     * committed with the next write); nothing of it was recorded. */
    cr_expect_eq(st_ops(run_id, NULL), 0, "an op was recorded");
    cr_expect_eq(itest_log_count(m, "event=write_refused"), 1);
    cr_expect_eq(itest_log_count(m, "sqlstate=23514"), 1);
    cr_expect_eq(itest_long("SELECT count(*) FROM exec_queue"), 0, "the item was removed");
    sk_run_result_clear(&res);

    /* The pool is fine: other runs go on. */
    itest_invoke("two-steps", NULL, &res);
    cr_expect_str_eq(res.status, "completed");
    sk_run_result_clear(&res);
    itest_finish();
}

Test(hostile, refused_step_result_fails_the_run_with_database_error, ITEST_FIXTURES)
{
    refused_write("run");
}

Test(hostile, refused_suspending_step_fails_the_run_with_database_error, ITEST_FIXTURES)
{
    refused_write("sleep");
}

/* ---- SQL API and C client ------------------------------------------------------------------ */

static void expect_sql_error(const char *sql, const char *arg, const char *state, const char *has)
{
    const char *params[1] = {arg};
    PGresult *res = PQexecParams(itest.pg, sql, 1, NULL, params, NULL, NULL, 0);
    const char *got = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    cr_expect_eq(PQresultStatus(res), PGRES_FATAL_ERROR, "%s succeeded", sql);
    cr_expect(got != NULL && strcmp(got, state) == 0, "%s: SQLSTATE %s, want %s", sql,
              got ? got : "none", state);
    cr_expect(msg != NULL && strstr(msg, has) != NULL, "%s: message '%s' lacks '%s'", sql,
              msg ? msg : "", has);
    PQclear(res);
}

Test(hostile, sql_functions_refuse_names_over_255_bytes_with_22023, ITEST_FIXTURES)
{
    char *n256 = repeat('w', 256), *big = repeat('s', 100 * 1024), *n255 = repeat('e', 255);
    PGresult *res;

    itest_master_up(NULL);
    expect_sql_error("SELECT start_run($1, '{}')", n256, "22023",
                     "a workflow id is 256 bytes long: the limit is 255 bytes");
    expect_sql_error("SELECT * FROM send_event($1, '{}')", n256, "22023",
                     "an event name is 256 bytes long");
    expect_sql_error("SELECT send_signal($1, '{}')", big, "22023",
                     "a signal name is 102400 bytes long");
    expect_sql_error("SELECT * FROM send_event($1, '{}')", "a\nb", "22023",
                     "must be 1..255 bytes without line breaks");
    /* At the limit: accepted (nobody listens, nobody waits). */
    res = itest_query("SELECT run_id IS NULL FROM send_event($1, '{}')", n255);
    cr_expect_str_eq(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    res = itest_query("SELECT send_signal($1, '{}') IS NULL", n255);
    cr_expect_str_eq(PQgetvalue(res, 0, 0), "t");
    PQclear(res);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs"), 0);
    free(n256);
    free(big);
    free(n255);
    itest_finish();
}

Test(hostile, client_refuses_long_names_before_any_query, ITEST_FIXTURES)
{
    char *big = repeat('c', 100 * 1024), err[512], run_id[SK_UUID_LEN], event_id[SK_UUID_LEN];
    sk_event_result_t ev;

    cr_expect_eq(sk_client_start(itest.client, big, NULL, 0, run_id, event_id, err, sizeof(err)),
                 SK_ERROR);
    cr_expect(strstr(err, "a workflow id is 102400 bytes long") != NULL, "%s", err);
    cr_expect_eq(sk_client_signal(itest.client, big, NULL, 0, run_id, err, sizeof(err)), SK_ERROR);
    cr_expect(strstr(err, "a signal name is 102400 bytes long") != NULL, "%s", err);
    cr_expect_eq(sk_client_send_event(itest.client, big, NULL, 0, NULL, &ev, err, sizeof(err)),
                 SK_ERROR);
    cr_expect(strstr(err, "an event name is 102400 bytes long") != NULL, "%s", err);
    cr_expect_eq(
        sk_client_start(itest.client, "bad\xff", NULL, 0, run_id, event_id, err, sizeof(err)),
        SK_ERROR);
    cr_expect(strstr(err, "not valid UTF-8") != NULL, "%s", err);
    free(big);
    itest_finish();
}

/* ---- the command line -------------------------------------------------------------------------
 */

Test(hostile, cli_long_names_exit_2_before_connecting, ITEST_FIXTURES)
{
    char *n = repeat('n', 256);

    expect_cli((const char *[]){"start", n, NULL}, 2, NULL, "workflow id is 256 bytes long");
    expect_cli((const char *[]){"invoke", n, NULL}, 2, NULL, "workflow id is 256 bytes long");
    expect_cli((const char *[]){"signal", n, NULL}, 2, NULL, "signal name is 256 bytes long");
    expect_cli((const char *[]){"send", n, NULL}, 2, NULL, "event name is 256 bytes long");
    expect_cli((const char *[]){"send", "a\nb", NULL}, 2, NULL, "event name contains a line break");
    free(n);
    itest_finish();
}

/* Write `len` bytes of a JSON document {"blob": "xxx..."} to a file. */
static void write_json_file(const char *path, size_t len)
{
    FILE *f = fopen(path, "w");

    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs("{\"blob\":\"", f);
    for (size_t i = 11; i < len; i++)
        fputc('x', f);
    fputs("\"}", f);
    cr_assert_eq(fclose(f), 0);
}

/* `stepkit ARGS < input` through sh, against this test's schema. */
static void cli_stdin(const char *args, const char *input, itest_cmd_t *r)
{
    char cmd[2048], url[1100], schema[96];
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    const char *env[] = {url, schema, NULL};

    snprintf(cmd, sizeof(cmd), "exec '%s/bin/stepkit' %s < '%s'", itest.build, args, input);
    snprintf(url, sizeof(url), "DATABASE_URL=%s", itest.url);
    snprintf(schema, sizeof(schema), "STEPKIT_SCHEMA=%s", itest.schema);
    itest_run_cmd(argv, env, 60000, r);
}

Test(hostile, cli_data_file_takes_1_mb_from_stdin_and_refuses_bad_files, ITEST_FIXTURES)
{
    char big[ITEST_PATH_MAX + 80], huge[ITEST_PATH_MAX + 80], bad[ITEST_PATH_MAX + 80];
    itest_cmd_t r;
    FILE *f;
    char *want;
    size_t want_len;

    snprintf(big, sizeof(big), "%s/%s.1mb.json", itest.logdir, itest.schema);
    snprintf(huge, sizeof(huge), "%s/%s.17mb.json", itest.logdir, itest.schema);
    snprintf(bad, sizeof(bad), "%s/%s.bad.json", itest.logdir, itest.schema);
    write_json_file(big, 1024 * 1024);
    write_json_file(huge, 17 * 1024 * 1024);
    f = fopen(bad, "w");
    cr_assert_not_null(f);
    fputs("{\"not\": json", f);
    fclose(f);
    itest_master_up(NULL);

    /* 1 MB through stdin: hostile-event echoes its input. */
    cli_stdin("invoke hostile-event --data-file - --timeout 30000", big, &r);
    cr_assert_eq(r.code, 0, "exit %d: %.500s", r.code, r.err);
    f = fopen(big, "r");
    cr_assert_not_null(f);
    want = malloc(2 * 1024 * 1024);
    cr_assert_not_null(want);
    want_len = fread(want, 1, 2 * 1024 * 1024, f);
    fclose(f);
    cr_expect_eq(strlen(r.out), want_len + 1, "output of %zu bytes for %zu in", strlen(r.out),
                 want_len);
    cr_expect_eq(strncmp(r.out, want, want_len), 0, "the output is not the input");
    free(want);
    itest_cmd_free(&r);

    /* The same file by path, with start. */
    expect_cli((const char *[]){"start", "hostile-event", "--data-file", big, NULL}, 0, "-", NULL);

    expect_cli(
        (const char *[]){"start", "hostile-event", "--data-file", "/nonexistent/x.json", NULL}, 2,
        NULL, "--data-file /nonexistent/x.json: No such file or directory");
    expect_cli((const char *[]){"start", "hostile-event", "--data-file", bad, NULL}, 2, NULL,
               "--data-file is not valid JSON");
    expect_cli((const char *[]){"signal", "s", "--data-file", huge, NULL}, 2, NULL,
               "larger than the payload limit of 16777216 bytes");
    expect_cli((const char *[]){"send", "e", "--data", "{}", "--data-file", big, NULL}, 2, NULL,
               "--data and --data-file exclude each other");
    cli_stdin("start hostile-event --data-file -", huge, &r);
    cr_expect_eq(r.code, 2, "exit %d: %.300s", r.code, r.err);
    cr_expect(strstr(r.err, "--data-file - (stdin): larger than the payload limit") != NULL, "%s",
              r.err);
    itest_cmd_free(&r);
    cr_expect_eq(itest_long("SELECT count(*) FROM runs"), 2, "only the two good starts ran");
    unlink(big);
    unlink(huge);
    unlink(bad);
    itest_finish();
}

/* ---- secrets
 * ------------------------------------------------------------------------------------- */

#define USERINFO_PW "S3cretUserinfoPw"
#define QUERY_PW    "S3cretQueryPw"

/* The test URL with two passwords (trust authentication ignores them) and
 * the application_name itest uses to find master k's sessions. */
static void secret_url(int k, char *out, size_t outlen)
{
    const char *at = strchr(itest.url, '@');
    const char *scheme_end = strstr(itest.url, "://");

    cr_assert(at != NULL && scheme_end != NULL, "POSTGRES_TEST_URL %s has no user", itest.url);
    snprintf(out, outlen, "%.*s:%s%s%spassword=%s&application_name=%s_m%d", (int)(at - itest.url),
             itest.url, USERINFO_PW, at, strchr(itest.url, '?') ? "&" : "?", QUERY_PW, itest.schema,
             k);
}

/* /proc/<pid>/cmdline with NULs shown as spaces (malloc'd). */
static char *cmdline(pid_t pid)
{
    char path[64], *buf = calloc(1, 65536);
    ssize_t n;
    int fd;

    cr_assert_not_null(buf);
    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    fd = open(path, O_RDONLY);
    cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
    n = read(fd, buf, 65535);
    close(fd);
    cr_assert_gt(n, 0, "%s is empty", path);
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\0')
            buf[i] = ' ';
    }
    return buf;
}

/* The children of `pid` (its workers), from /proc/<n>/stat. */
static int children_of(pid_t pid, pid_t *out, int max)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    int n = 0;

    cr_assert_not_null(d);
    while ((e = readdir(d)) != NULL && n < max) {
        char path[300], buf[512], *p;
        int ppid = -1;
        FILE *f;

        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        f = fopen(path, "r");
        if (f == NULL)
            continue;
        if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL)
            sscanf(p + 2, "%*c %d", &ppid);
        fclose(f);
        if (ppid == (int)pid)
            out[n++] = (pid_t)atoi(e->d_name);
    }
    closedir(d);
    return n;
}

Test(hostile, no_password_in_cmdline_of_master_workers_and_cli_nor_in_logs, ITEST_FIXTURES)
{
    char url[1024], run_id[SK_UUID_LEN], bin[ITEST_PATH_MAX], signal[96], input[256];
    itest_master_opts_t o = {.workers = 2};
    itest_master_t *m;
    pid_t kids[8], cli;
    sk_run_result_t res;
    char *log, *line;
    int n, status;

    secret_url(1, url, sizeof(url));
    o.extra[0] = "--database-url";
    o.extra[1] = url;
    m = itest_master_up(&o);
    line = cmdline(m->pid);
    cr_expect(strstr(line, "S3cret") == NULL, "master cmdline: %s", line);
    cr_expect(strstr(line, "--database-url postgresql://postgres:***@") != NULL,
              "master cmdline: %s", line);
    free(line);
    n = children_of(m->pid, kids, 8);
    cr_expect_eq(n, 2, "%d workers found", n);
    for (int i = 0; i < n; i++) {
        line = cmdline(kids[i]);
        cr_expect(strstr(line, "S3cret") == NULL, "worker %d cmdline: %s", (int)kids[i], line);
        free(line);
    }

    /* The command line: read its cmdline while it waits on a run. */
    st_signal_name("pw", 0, signal, sizeof(signal));
    snprintf(input, sizeof(input), "{\"signal\":\"%s\"}", signal);
    snprintf(bin, sizeof(bin), "%s/bin/stepkit", itest.build);
    secret_url(9, url, sizeof(url));
    fflush(NULL);
    cli = fork();
    cr_assert(cli >= 0);
    if (cli == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(null, 1);
        dup2(null, 2);
        setenv("STEPKIT_SCHEMA", itest.schema, 1);
        unsetenv("DATABASE_URL");
        execl(bin, bin, "--database-url", url, "invoke", "step-wait", "--data", input, "--timeout",
              "20000", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && itest_long("SELECT count(*) FROM runs WHERE workflow_id = "
                                          "'step-wait'") == 0;
         i++)
        st_nap(20);
    line = cmdline(cli);
    cr_expect(strstr(line, "S3cret") == NULL, "stepkit cmdline: %s", line);
    cr_expect(strstr(line, "invoke step-wait") != NULL, "stepkit cmdline: %s", line);
    free(line);
    line = itest_str("SELECT run_id::text FROM runs WHERE workflow_id = 'step-wait'");
    st_wait_suspended(line, "signal", 10000);
    free(line);
    st_signal(signal, "{}", run_id);
    cr_assert_eq(waitpid(cli, &status, 0), cli);
    cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "stepkit exited %d", status);

    itest_invoke("two-steps", NULL, &res);
    sk_run_result_clear(&res);
    cr_expect_eq(itest_master_stop(m, 10000), 0);
    log = itest_master_log(m);
    cr_expect(strstr(log, "S3cret") == NULL, "a password in the master's log");
    cr_expect(strstr(log, "event=start") != NULL);
    free(log);
    itest_finish();
}

Test(hostile, malformed_url_errors_never_echo_the_password, ITEST_FIXTURES)
{
    char url[512], cmd[1024];
    const char *sh[] = {"/bin/sh", "-c", cmd, NULL};
    itest_master_opts_t o = {0};
    itest_master_t *m;
    itest_cmd_t r;
    char *log;
    int code;

    /* libpq echoes a badly encoded token alone: 'invalid percent-encoded token: "..."'. */
    snprintf(url, sizeof(url), "postgresql://u:S3cretBad%%zz@127.0.0.1:1/db");
    o.extra[0] = "--database-url";
    o.extra[1] = url;
    m = itest_master_start(&o);
    code = itest_master_wait_exit(m, 10000);
    cr_expect_eq(code, 2, "master exited %d", code);
    log = itest_master_log(m);
    cr_expect(strstr(log, "S3cret") == NULL, "master output: %s", log);
    cr_expect(strstr(log, "invalid connection string") != NULL, "master output: %s", log);
    free(log);

    snprintf(cmd, sizeof(cmd),
             "exec '%s/bin/stepkit' --database-url 'postgresql://u:S3cretBad%%zz@127.0.0.1:1/db' "
             "start x",
             itest.build);
    itest_run_cmd(sh, NULL, 10000, &r);
    cr_expect_eq(r.code, 2, "stepkit exited %d: %s", r.code, r.err);
    cr_expect(strstr(r.err, "S3cret") == NULL, "stepkit stderr: %s", r.err);
    cr_expect(strstr(r.err, "invalid connection string") != NULL, "stepkit stderr: %s", r.err);
    itest_cmd_free(&r);

    /* Unreachable server, key=value form: the error names the database, masked. */
    snprintf(cmd, sizeof(cmd),
             "exec '%s/bin/stepkit' --database-url \"host=127.0.0.1 port=1 password='S3cret two' "
             "connect_timeout=2\" start x",
             itest.build);
    itest_run_cmd(sh, NULL, 20000, &r);
    cr_expect_eq(r.code, 1, "stepkit exited %d: %s", r.code, r.err);
    cr_expect(strstr(r.err, "S3cret") == NULL, "stepkit stderr: %s", r.err);
    cr_expect(strstr(r.err, "password='***'") != NULL, "stepkit stderr: %s", r.err);
    itest_cmd_free(&r);
    itest_allow_error("invalid connection string");
    itest_finish();
}

/* ---- least privilege
 * ------------------------------------------------------------------------------ */

/* A runtime role with the grants of docs/security.md: no CREATE anywhere. */
static void create_runtime_role(char *role, size_t rolelen)
{
    char sql[2048];

    snprintf(role, rolelen, "%s_rt", itest.schema);
    snprintf(sql, sizeof(sql),
             "DROP ROLE IF EXISTS %1$s; CREATE ROLE %1$s LOGIN;"
             "GRANT USAGE ON SCHEMA %2$s TO %1$s;"
             "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA %2$s TO %1$s;"
             "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA %2$s TO %1$s;"
             "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA %2$s TO %1$s;",
             role, itest.schema);
    itest_exec_sql(sql);
    cr_assert_eq(itest_long("SELECT count(*) FROM pg_roles WHERE rolname = $1 AND NOT rolsuper"
                            "   AND NOT has_database_privilege(rolname, current_database(), "
                            "'CREATE') AND NOT has_schema_privilege(rolname, $2, 'CREATE')",
                            role, itest.schema),
                 1, "role %s may create", role);
}

static void drop_runtime_role(const char *role)
{
    char sql[256];

    snprintf(sql, sizeof(sql), "DROP OWNED BY %1$s; DROP ROLE %1$s", role);
    itest_exec_sql(sql);
}

/* The test URL as `role`, with master k's application_name. */
static void role_url(const char *role, int k, char *out, size_t outlen)
{
    const char *at = strchr(itest.url, '@'), *scheme_end = strstr(itest.url, "://");

    cr_assert(at != NULL && scheme_end != NULL);
    snprintf(out, outlen, "%.*s%s%s%sapplication_name=%s_m%d", (int)(scheme_end + 3 - itest.url),
             itest.url, role, at, strchr(itest.url, '?') ? "&" : "?", itest.schema, k);
}

Test(privilege, runtime_role_without_create_runs_everything_without_no_migrate, ITEST_FIXTURES)
{
    char role[96], url[1024], signal[96], input[256], run_id[SK_UUID_LEN], to[SK_UUID_LEN],
        err[512], want[512];
    itest_master_opts_t o = {0};
    itest_master_t *m;
    sk_client_t *rt;
    sk_event_result_t ev;
    sk_run_result_t res;
    char *out;

    expect_cli((const char *[]){"migrate", NULL}, 0, "applied", NULL); /* the migration role */
    create_runtime_role(role, sizeof(role));
    role_url(role, 1, url, sizeof(url));
    o.extra[0] = "--database-url";
    o.extra[1] = url;
    m = itest_master_up(&o);
    cr_expect_eq(itest_log_count(m, "event=migrated schema="), 1);
    cr_expect_eq(itest_log_count(m, "event=migration_applied"), 0);
    cr_expect_eq(itest_long("SELECT count(*) FROM pg_stat_activity WHERE usename = $1", role), 2,
                 "the workers connect as %s", role);

    /* Clients as the runtime role too: start, signal, event. */
    rt = sk_client_connect(url, itest.schema, err, sizeof(err));
    cr_assert_not_null(rt, "%s", err);
    st_signal_name("priv", 0, signal, sizeof(signal));
    snprintf(input, sizeof(input), "{\"signal\":\"%s\"}", signal);
    itest_start("hostile-tour", input, run_id);
    st_wait_suspended(run_id, "signal", 10000);
    cr_assert_eq(sk_client_signal(rt, signal, "\x81\xa1k\x01", 4, to, err, sizeof(err)), SK_OK,
                 "%s", err);
    cr_expect_str_eq(to, run_id);
    st_wait(run_id, 20000, &res);
    snprintf(want, sizeof(want),
             "{\"signal\":{\"data\":{\"k\":1},\"signal\":\"%s\"},\"child\":\"Hello\","
             "\"group\":[\"done\",\"done\"]}",
             signal);
    out = st_output(&res);
    cr_expect_str_eq(out, want);
    free(out);
    sk_run_result_clear(&res);

    cr_assert_eq(sk_client_send_event(rt, "hostile-event",
                                      "\x81\xa1"
                                      "e\x02",
                                      4, NULL, &ev, err, sizeof(err)),
                 SK_OK, "%s", err);
    cr_assert_eq(ev.n_runs, 1);
    st_wait(ev.run_ids[0], 20000, &res);
    st_expect_output(&res, "{\"e\":2}");
    sk_run_result_clear(&res);
    sk_event_result_clear(&ev);
    sk_client_close(rt);

    cr_expect_eq(itest_master_stop(m, 10000), 0);
    itest_finish();
    drop_runtime_role(role);
}

Test(privilege, runtime_role_facing_a_pending_migration_is_told_to_run_migrate, ITEST_FIXTURES)
{
    char role[96], url[1024];
    itest_master_opts_t o = {0};
    itest_master_t *m;
    int code;

    expect_cli((const char *[]){"migrate", NULL}, 0, "applied", NULL);
    create_runtime_role(role, sizeof(role));
    /* As if this binary were newer than the schema. */
    itest_exec_sql("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM "
                   "schema_migrations)");
    role_url(role, 1, url, sizeof(url));
    o.extra[0] = "--database-url";
    o.extra[1] = url;
    m = itest_master_start(&o);
    code = itest_master_wait_exit(m, 10000);
    cr_expect_eq(code, 2, "master exited %d", code);
    cr_expect_eq(itest_log_count(m, "event=migrate_failed"), 1);
    cr_expect_eq(itest_log_count(m, "run `stepkit migrate` with the migration role"), 1);
    itest_allow_error("event=migrate_failed");

    /* The migration role applies it; the runtime role then starts. */
    expect_cli((const char *[]){"migrate", NULL}, 0, "(1 migration applied)", NULL);
    role_url(role, 2, url, sizeof(url));
    o.extra[1] = url;
    m = itest_master_up(&o);
    cr_expect_eq(itest_master_stop(m, 10000), 0);
    itest_finish();
    drop_runtime_role(role);
}

/* A library built against an older stepkit.h (entry point of ABI 1) is
 * refused by name before anything connects: its sk_workflow_t is shorter
 * than this engine's, which would read past it. */
Test(hostile, library_of_an_older_abi_is_refused_with_the_reason, ITEST_FIXTURES)
{
    char src[2 * ITEST_PATH_MAX], so[2 * ITEST_PATH_MAX], bin[2 * ITEST_PATH_MAX];
    const char *cc[] = {"cc", "-shared", "-fPIC", "-o", so, src, NULL};
    const char *master[] = {bin, "--workflows", so, "--http", "off", NULL};
    itest_cmd_t r;
    FILE *f;

    snprintf(src, sizeof(src), "%s/%s-abi1.c", itest.logdir, itest.schema);
    snprintf(so, sizeof(so), "%s/%s-abi1.so", itest.logdir, itest.schema);
    snprintf(bin, sizeof(bin), "%s/bin/stepkit-master", itest.build);
    f = fopen(src, "w");
    cr_assert_not_null(f);
    fputs("int stepkit_workflows_v1(void *reg);\n"
          "int stepkit_workflows_v1(void *reg) { (void)reg; return 0; }\n",
          f);
    fclose(f);
    itest_run_cmd(cc, NULL, 60000, &r);
    cr_assert_eq(r.code, 0, "cc: %s", r.err);
    itest_cmd_free(&r);
    itest_run_cmd(master, NULL, 20000, &r);
    cr_expect_neq(r.code, 0);
    cr_expect(strstr(r.err, "built against an older stepkit.h (ABI 1)") != NULL, "%s", r.err);
    cr_expect(strstr(r.err, "db_connect") == NULL, "it connected first: %s", r.err);
    itest_cmd_free(&r);
    itest_finish();
}
