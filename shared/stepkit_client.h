/*
 * stepkit_client.h - start, invoke and inspect runs from C.
 *
 * A client is one blocking libpq connection (not thread-safe: one client
 * per thread).  Payloads are msgpack bytes; sk_json.h converts from JSON.
 *
 *   char err[256];
 *   sk_client_t *c = sk_client_connect(getenv("DATABASE_URL"), NULL, err, sizeof err);
 *   sk_run_result_t res;
 *   if (c && sk_client_invoke(c, "say-hi", data, len, 10000, &res, err, sizeof err) == SK_OK)
 *       ... res.status, res.output ...
 *   sk_run_result_clear(&res);
 *   sk_client_close(c);
 *
 * A workflow that fails because its input is invalid ends with error
 * {name: "InvalidInputError", message: "Invalid input", retryable: false,
 *  cause: {name: "ValidationError", message, issues: [{path, expected,
 *  message}, ...]}}: the issues are in error.cause.issues.
 */
#ifndef STEPKIT_CLIENT_H
#define STEPKIT_CLIENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: what this header declares
 * is all it exports. */
#pragma GCC visibility push(default)

#define SK_UUID_LEN 37 /* 36 characters and the NUL */

typedef struct sk_client sk_client_t;

typedef struct {
    char run_id[SK_UUID_LEN];
    char status[16]; /* "pending", "completed", "failed" or "cancelled" */
    char *output;    /* msgpack bytes (malloc'd) when completed, else NULL */
    size_t output_len;
    char *error; /* msgpack error map (malloc'd) when failed or cancelled, else NULL */
    size_t error_len;
} sk_run_result_t;

/* conninfo: URL or key=value string, NULL/"" for libpq defaults (PG*).
 * schema: NULL for "stepkit". NULL with a message in err on failure. */
sk_client_t *sk_client_connect(const char *conninfo, const char *schema, char *err, size_t errlen);
void sk_client_close(sk_client_t *c);

/* Start a run of `workflow` with msgpack `data` (NULL = nil).  Fills
 * run_id and event_id.  A workflow no master has registered yet is
 * accepted: the run waits until a worker that serves it connects (deploy
 * producers and workers in any order). */
int sk_client_start(sk_client_t *c, const char *workflow, const char *data, size_t len,
                    char run_id[SK_UUID_LEN], char event_id[SK_UUID_LEN], char *err, size_t errlen);

/* Flags of sk_client_start_flags. */
#define SK_START_REQUIRE_REGISTERED 0x1u /* refuse a workflow no master has registered */

/* sk_client_start with flags.  SK_START_REQUIRE_REGISTERED: an unknown
 * workflow fails ("unknown workflow ...", SQLSTATE SK002), the guard
 * against a typo.  *registered (may be NULL) tells whether some master has
 * registered the workflow. */
int sk_client_start_flags(sk_client_t *c, const char *workflow, const char *data, size_t len,
                          unsigned flags, char run_id[SK_UUID_LEN], char event_id[SK_UUID_LEN],
                          int *registered, char *err, size_t errlen);

/* The same with a priority 0..86400 (sql/010_flow.sql): the run ranks among
 * ready runs as if queued that many seconds earlier. */
int sk_client_start_priority(sk_client_t *c, const char *workflow, const char *data, size_t len,
                             int priority, char run_id[SK_UUID_LEN], char event_id[SK_UUID_LEN],
                             char *err, size_t errlen);
/* Both: a priority and the flags of sk_client_start_flags. */
int sk_client_start_priority_flags(sk_client_t *c, const char *workflow, const char *data,
                                   size_t len, int priority, unsigned flags,
                                   char run_id[SK_UUID_LEN], char event_id[SK_UUID_LEN],
                                   int *registered, char *err, size_t errlen);

/* Wait until the run ends (woken by NOTIFY): SK_OK with res filled,
 * SK_AGAIN on timeout (timeout_ms < 0: forever), SK_ERROR with err. */
int sk_client_wait(sk_client_t *c, const char *run_id, int timeout_ms, sk_run_result_t *res,
                   char *err, size_t errlen);

/* start + wait (an unregistered workflow's run waits too: until timeout_ms). */
int sk_client_invoke(sk_client_t *c, const char *workflow, const char *data, size_t len,
                     int timeout_ms, sk_run_result_t *res, char *err, size_t errlen);
/* sk_client_invoke with the flags of sk_client_start_flags. */
int sk_client_invoke_flags(sk_client_t *c, const char *workflow, const char *data, size_t len,
                           unsigned flags, int timeout_ms, sk_run_result_t *res, char *err,
                           size_t errlen);

/* Current state of a run without waiting (status "pending" while it runs). */
int sk_client_get(sk_client_t *c, const char *run_id, sk_run_result_t *res, char *err,
                  size_t errlen);

/*
 * Everything about a run as one JSON object (malloc'd; free()), the same
 * as `stepkit run --json`:
 *   {run_id, workflow, status, input: {data, id, name, type}, output, error,
 *    created_at, ended_at,
 *    steps: [{step_id, op_key, kind, status, attempts, started_at,
 *             ended_at | waiting_for: {kind, until, signal | child, workflow},
 *             output | error}],
 *    parent_run_id, idempotency_key, cancel_reason,
 *    children: [{run_id, workflow, status, created_at}],
 *    retries: [{retry, status, error, cancel_reason, ended_at, retried_at,
 *               cleared_steps: [{step_id, kind, status, attempts, error}]}]}
 * status: "completed", "failed" or "cancelled" once the run ended; before
 * that "running" (a worker holds it), "queued" (ready, not claimed yet),
 * "retrying" (a step waits for its retry delay), "waiting" (a sleep, a
 * signal or a child run) or "scheduled" (a delayed start).  Times are
 * ISO-8601 UTC with milliseconds; output and errors are JSON.  An error is
 * {name, message, retryable, stack?, cause?, issues?}: a run whose input
 * the workflow's validator rejected fails with InvalidInputError whose
 * cause is a ValidationError carrying the issues (error.cause.issues:
 * [{path, expected, message}]).  A step of a group member, a step status
 * is "ok", "error", "retry" (attempts so far, error of the last one) or
 * "waiting".
 */
char *sk_client_run_json(sk_client_t *c, const char *run_id, char *err, size_t errlen);

/* Send a signal (msgpack `data`, NULL = nil): the oldest run waiting on
 * `signal` receives it.  run_id gets the receiver, or "" when nobody
 * waited (the signal is dropped). */
int sk_client_signal(sk_client_t *c, const char *signal, const char *data, size_t len,
                     char run_id[SK_UUID_LEN], char *err, size_t errlen);

void sk_run_result_clear(sk_run_result_t *res);

typedef struct {
    char event_id[SK_UUID_LEN];
    size_t n_runs;                /* runs this send started */
    char (*run_ids)[SK_UUID_LEN]; /* n_runs ids (malloc'd, NULL when none): sk_event_result_clear */
} sk_event_result_t;

/*
 * Send an event (msgpack `data`, NULL = nil): one run of every workflow
 * whose events include `name` starts (input.type "event", input.name =
 * name, input.id = the event id), in one transaction.  event_id: NULL for a
 * fresh id, or a UUID of your own: the same id sent again starts nothing
 * (each workflow runs at most once per event id), so retrying a send is
 * safe.  res gets the event id and the runs started (none when no workflow
 * listens, or the id was sent before); clear it with sk_event_result_clear.
 */
int sk_client_send_event(sk_client_t *c, const char *name, const char *data, size_t len,
                         const char *event_id, sk_event_result_t *res, char *err, size_t errlen);

void sk_event_result_clear(sk_event_result_t *res);

/* ---- run management (sql/007_runs.sql; docs/cli.md) ------------------------------- */

typedef struct {
    const char *key;        /* idempotency key (1..255 bytes), NULL: none */
    const char *start_at;   /* the run becomes visible then (ISO-8601, or any time
                             * PostgreSQL reads as timestamptz), NULL: now */
    long long delay_ms;     /* > 0: visible this much later (not with start_at) */
    int require_registered; /* refuse a workflow no master has registered (SK002) */
    int has_priority;       /* 1: priority below applies (else the workflow's) */
    int priority;           /* 0..86400: rank as if queued this many seconds earlier
                             * (sql/010_flow.sql); not with start_at or delay_ms: a
                             * delayed run ranks by its due time */
} sk_start_opts_t;

/*
 * sk_client_start with options (opts NULL: none).  With a key, a start of
 * the same workflow with the same key returns the run the first one
 * started (*created = 0) instead of starting another, also when the starts
 * race (exactly one run per (workflow, key) while that run is kept; see
 * retention).  A delayed run is queued and holds no worker until its time.
 * created may be NULL.
 */
int sk_client_start_opts(sk_client_t *c, const char *workflow, const char *data, size_t len,
                         const sk_start_opts_t *opts, char run_id[SK_UUID_LEN],
                         char event_id[SK_UUID_LEN], int *created, char *err, size_t errlen);

/*
 * Cancel a run and its unfinished child runs: they end with status
 * "cancelled" and error CancelledError (message "run cancelled: <reason>",
 * not retryable); a parent waiting on the run gets that error at its
 * invoke step.  A step already running may finish, but its result is
 * refused and nothing after it runs.  *cancelled (may be NULL) gets the
 * number of runs cancelled: 0 when the run had ended already (a no-op, not
 * an error).  SK_ERROR for an unknown run.
 */
int sk_client_cancel(sk_client_t *c, const char *run_id, const char *reason, int *cancelled,
                     char *err, size_t errlen);

/* Cancel every unfinished run of `workflow` (NULL: all workflows) in
 * `state` ("queued", "running", "waiting"; NULL or "pending": any), in
 * short transactions of 500 runs.  dry_run: only count them.  *count gets
 * the number cancelled (children included) or counted. */
int sk_client_cancel_where(sk_client_t *c, const char *workflow, const char *state,
                           const char *reason, int dry_run, long long *count, char *err,
                           size_t errlen);

/* Resume a failed or cancelled run: successful steps stay recorded and are
 * not run again; the steps that failed (or were cut short) run again with a
 * fresh attempt budget.  The earlier end stays in the run's history
 * (sk_client_run_json: retries).  *retry (may be NULL) gets the retry's
 * number (1, 2, ...).  SK_ERROR for a run that is pending or completed. */
int sk_client_retry(sk_client_t *c, const char *run_id, int *retry, char *err, size_t errlen);

typedef struct {
    const char *workflow; /* NULL: every workflow */
    const char *status;   /* "pending", "completed", "failed", "cancelled"; NULL: any */
    const char *since;    /* created at or after (timestamptz text), NULL: no bound */
    const char *until;    /* created before, NULL: no bound */
    const char *after;    /* a row's "cursor": the page after it; NULL: the newest */
    int limit;            /* 1..10000, 0: 50 */
} sk_list_filter_t;

/* Runs newest first as a JSON array (malloc'd; free()) of
 * {run_id, workflow, status, trigger_type, trigger_name, created_at,
 *  ended_at, parent_run_id, retries, idempotency_key, cancel_reason, cursor};
 * status as in sk_client_run_json.  Pass the last row's cursor as `after`
 * for the next page (keyset pagination: stable under inserts). */
char *sk_client_list_json(sk_client_t *c, const sk_list_filter_t *f, char *err, size_t errlen);

/* Per workflow (JSON array, malloc'd): {workflow, queued, running, waiting,
 * completed_1h, failed_1h, cancelled_1h, ready_items, oldest_ready_ms}. */
char *sk_client_stats_json(sk_client_t *c, char *err, size_t errlen);

/* Delete runs that ended more than older_than_ms ago, with their steps and
 * history, in batches of `batch` (0: 500), one transaction each.  Runs a
 * parent still waits on are kept.  *deleted gets the count. */
int sk_client_prune(sk_client_t *c, long long older_than_ms, int batch, long long *deleted,
                    char *err, size_t errlen);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif
