/*
 * itest - the integration harness: a private schema per test, real
 * stepkit-master processes (fork + exec, one process group each), the
 * counts file the test workflows write, direct SQL and the `stepkit` CLI.
 *
 * Criterion runs every test in its own process, in parallel: each test
 * works in its own schema "t_<pid>_<n>" (dropped at the end), its masters
 * log to $STEPKIT_BUILD/tests/logs/<schema>-<k>.log and its workflows count
 * into $STEPKIT_BUILD/tests/logs/<schema>.counts.
 *
 * Environment: POSTGRES_TEST_URL (superuser URL of a throwaway cluster,
 * required) and STEPKIT_BUILD (build directory, default "build").
 *
 * A test uses the fixtures ITEST_FIXTURES, starts masters, asserts, and
 * ends with itest_finish(), which stops the masters that still run (each
 * must exit 0) and fails the test on unexpected level=error log lines.
 * Criterion ignores assertions made in .fini, so the check cannot live
 * there; the .fini only cleans up (kills leftovers, drops the schema).
 */
#ifndef ITEST_H
#define ITEST_H

#include <stddef.h>
#include <sys/types.h>

#include <libpq-fe.h>
#include <jansson.h>
#include <msgpack.h>

#include "stepkit.h"
#include "stepkit_client.h"

#define ITEST_MAX_MASTERS 4
#define ITEST_MAX_ALLOW   8
#define ITEST_PATH_MAX    512

/* The workflows of testwf.so, for readiness checks. */
extern const char *const itest_test_workflows[];

typedef struct {
    pid_t pid; /* also its process group id */
    int k;     /* 1-based index in the test */
    int workers;
    char app[64]; /* application_name of its connections: finds its backends */
    char log[ITEST_PATH_MAX + 128];
    int reaped; /* waitpid done: status is valid */
    int status; /* wait status */
} itest_master_t;

typedef struct {
    int workers;          /* default 2 */
    int lease_ms;         /* default 5000 */
    int shutdown_ms;      /* default 5000 */
    int no_migrate;       /* add --no-migrate */
    int with_examples;    /* also load $STEPKIT_BUILD/examples/examples.so */
    const char *bindir;   /* the master from $STEPKIT_BUILD/<bindir> (NULL: "bin"; "prev/bin":
                             the previous release, see PREV_SCHEMA in GNUmakefile) */
    const char *extra[8]; /* more flags, NULL-terminated */
} itest_master_opts_t;

typedef struct {
    const char *url;   /* POSTGRES_TEST_URL */
    const char *build; /* STEPKIT_BUILD */
    char schema[48];
    char logdir[ITEST_PATH_MAX];
    char counts[ITEST_PATH_MAX + 128];
    PGconn *pg; /* search_path = schema */
    sk_client_t *client;
    itest_master_t masters[ITEST_MAX_MASTERS];
    int nmasters;
    const char *allow[ITEST_MAX_ALLOW]; /* substrings that excuse a level=error line */
    int nallow;
} itest_env_t;

extern itest_env_t itest;

void itest_setup(void);
void itest_teardown(void);
/* One safety timeout for every test: Criterion 2.4.1 leaks a timeout entry
 * in its runner (48 bytes, reported by LeakSanitizer under `make asan`)
 * when a test with a longer timeout ends while one with a shorter timeout
 * still runs. */
#define ITEST_TIMEOUT_S 150
#define ITEST_FIXTURES  .init = itest_setup, .fini = itest_teardown, .timeout = ITEST_TIMEOUT_S

/* ---- masters ---------------------------------------------------------------------- */

/* Start a master (opts NULL = defaults); it is not waited for. */
itest_master_t *itest_master_start(const itest_master_opts_t *opts);
/* Wait (max 10 s) until `workflows` are registered in the schema and all
 * of the master's workers are connected; fails the test if it exits. */
void itest_master_wait_ready(itest_master_t *m, const char *const *workflows);
/* itest_master_start + itest_master_wait_ready(testwf's workflows). */
itest_master_t *itest_master_up(const itest_master_opts_t *opts);
/* SIGTERM, wait up to timeout_ms, then SIGKILL the group.  Returns the exit
 * code, or 128 + signal when it was killed. */
int itest_master_stop(itest_master_t *m, int timeout_ms);
/* SIGKILL the master and all its workers at once (the process group), reap
 * the master and wait until none of their database sessions is left. */
void itest_master_kill(itest_master_t *m);
/* Wait for a master that is expected to exit by itself: exit code, 128 +
 * signal, or -1 if still running after timeout_ms. */
int itest_master_wait_exit(itest_master_t *m, int timeout_ms);
/* The master's log (malloc'd, "" when empty). */
char *itest_master_log(const itest_master_t *m);
/* Wait until the master's log contains `needle` (max timeout_ms); 1 if seen. */
int itest_log_wait(const itest_master_t *m, const char *needle, int timeout_ms);
/* Wait until n lines contain `needle` (max timeout_ms); the count reached. */
int itest_log_wait_count(const itest_master_t *m, const char *needle, int n, int timeout_ms);
/* Number of lines of the master's log containing `needle`. */
int itest_log_count(const itest_master_t *m, const char *needle);
/* Extra ms a contract time bound allows in a sanitizer build (make asan):
 * 0 otherwise.  The bounds are checked exactly by the plain build; the
 * instrumented one runs several times slower and checks memory. */
int itest_timing_slack_ms(void);
/* A TCP port of 127.0.0.1 that nobody listens on right now. */
int itest_free_port(void);
/* Number of lines containing every one of `needles` (NULL-terminated). */
int itest_log_count_all(const itest_master_t *m, const char *const *needles);

/* Excuse level=error lines containing `substring` for this test. */
void itest_allow_error(const char *substring);
/* Stop every running master (each must exit 0) and check every log. */
void itest_finish(void);

/* ---- SQL ---------------------------------------------------------------------------- */

/* Run `sql` with text parameters (NULL-terminated list); asserts success. */
PGresult *itest_query_(const char *sql, ...);
#define itest_query(...) itest_query_(__VA_ARGS__, (const char *)NULL)
/* The single value of a one-row, one-column query, as a long / a malloc'd string. */
long itest_long_(const char *sql, ...);
#define itest_long(...) itest_long_(__VA_ARGS__, (const char *)NULL)
char *itest_str_(const char *sql, ...);
#define itest_str(...) itest_str_(__VA_ARGS__, (const char *)NULL)
/* A one-row query's single bytea column (msgpack) as compact JSON
 * (malloc'd), NULL when the value is NULL. */
char *itest_bytea_json_(const char *sql, ...);
#define itest_bytea_json(...) itest_bytea_json_(__VA_ARGS__, (const char *)NULL)
/* JSON text parsed with jansson (asserts it parses; caller decrefs). */
json_t *itest_parse(const char *json);
/* The value at a dotted path ("cause.issues.0.path"; digits index arrays)
 * or NULL; itest_jstr: its string, or NULL when absent or not a string. */
json_t *itest_jget(json_t *root, const char *path);
const char *itest_jstr(json_t *root, const char *path);
/* The same, `sql` run as-is without a result check (DDL in tests). */
void itest_exec_sql(const char *sql);
/* The pid of the worker holding the run's item ("host:pid" in claimed_by);
 * fails the test when nothing holds it. */
pid_t itest_holder_pid(const char *run_id);

/* Wait until at least n runs have ended (max timeout_ms); returns how many. */
long itest_wait_ended(long n, int timeout_ms);

/* ---- runs --------------------------------------------------------------------------- */

/* Pack JSON text into msgpack (asserts it parses); caller destroys buf. */
void itest_pack_json(const char *json, msgpack_sbuffer *buf);
/* msgpack bytes as compact JSON (malloc'd); asserts they convert. */
char *itest_json(const char *data, size_t len);
/* Start a run of `workflow` with JSON input; run_id receives its id. */
void itest_start(const char *workflow, const char *json, char run_id[SK_UUID_LEN]);
/* Invoke (start + wait, max 30 s) and assert it ended. */
void itest_invoke(const char *workflow, const char *json, sk_run_result_t *res);
/* Lowercase hex SHA-1 of "<step id>:<index>" (the op key). */
void itest_op_key(const char *step_id, int index, char out[41]);

/* ---- counts ------------------------------------------------------------------------- */

/* Lines "<run_id> <key>" in the counts file. */
int itest_count(const char *file, const char *run_id, const char *key);

/* The counts file loaded once, for suites that look up thousands of counts. */
typedef struct itest_counts itest_counts_t;
itest_counts_t *itest_counts_load(const char *file);
int itest_counts_get(const itest_counts_t *c, const char *run_id, const char *key);
void itest_counts_free(itest_counts_t *c);

/* ---- commands ------------------------------------------------------------------------ */

typedef struct {
    int code;  /* exit code, or 128 + signal */
    char *out; /* stdout (malloc'd) */
    char *err; /* stderr (malloc'd) */
} itest_cmd_t;

/* Run argv (argv[0] through PATH) with extra "NAME=value" environment
 * entries (NULL-terminated, may be NULL), capture its output, wait up to
 * timeout_ms (then SIGKILL; the test fails). */
void itest_run_cmd(const char *const *argv, const char *const *env, int timeout_ms,
                   itest_cmd_t *res);
/* The `stepkit` CLI against this test's schema (DATABASE_URL, STEPKIT_SCHEMA). */
void itest_cli(const char *const *args, itest_cmd_t *res);
void itest_cmd_free(itest_cmd_t *res);

#endif
