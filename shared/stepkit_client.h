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
 */
#ifndef STEPKIT_CLIENT_H
#define STEPKIT_CLIENT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SK_UUID_LEN 37 /* 36 characters and the NUL */

typedef struct sk_client sk_client_t;

typedef struct {
    char run_id[SK_UUID_LEN];
    char status[16]; /* "pending", "completed" or "failed" */
    char *output;    /* msgpack bytes (malloc'd) when completed, else NULL */
    size_t output_len;
    char *error; /* msgpack error map (malloc'd) when failed, else NULL */
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

/* Everything about a run as one JSON object (malloc'd):
 * {run_id, workflow, status, input, output, error, created_at, ended_at,
 *  steps: [{step_id, op_key, kind, status, attempts, started_at, ended_at, output|error}]}. */
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

#ifdef __cplusplus
}
#endif

#endif
