/*
 * sk_http - the body of the HTTP process (forked by sk_aux): /livez,
 * /readyz and /metrics with libmicrohttpd.
 *
 * Two threads.  libmicrohttpd's internal polling thread accepts and answers
 * requests (MHD_USE_AUTO_INTERNAL_THREAD: epoll or poll, at most 32
 * connections, 10 s idle timeout); every answer is built from shared memory
 * and from a snapshot, so a request never waits for the database.  The main
 * thread runs a libev loop: the SIGTERM/SIGINT/SIGQUIT watchers, the master's
 * alive pipe (EOF: the master is gone, exit), and a non-blocking libpq
 * connection (PQconnectStart/Poll, PQsendQueryPrepared) that refreshes the
 * snapshot every 5 s: the schema version, and the queue gauges.  A mutex
 * guards the snapshot; it is private to this process (never in shared
 * memory), and the request thread holds it only to copy the snapshot.
 *
 * /livez   200 while the master's supervision loop heartbeat (sk_metrics) is
 *          under 10 s old, else 503.  Never depends on the database: an
 *          outage must not turn into restarts.
 * /readyz  200 "ready" when the master runs (not starting, not draining:
 *          false from the moment SIGTERM arrives), the last database read
 *          succeeded within 15 s, the schema is one this binary accepts
 *          (sk_schema_check: nothing pending, every newer migration
 *          compatible), and at least one worker is connected with a fresh
 *          heartbeat; else 503 with a one-line reason.
 * /metrics Prometheus text format 0.0.4 (docs/metrics.md).
 * /ui      the dashboard, with --ui only (sk_ui.h, docs/dashboard.md).
 *
 * Exit codes: 0 asked to stop, 1 crash (restarted with backoff), 2 the
 * address cannot be listened on (not restarted).
 */
#ifndef SK_HTTP_H
#define SK_HTTP_H

#include "sk_config.h"
#include "sk_shm.h"

typedef struct {
    const sk_config_t *cfg;
    sk_shm_t *shm;
    int alive_fd; /* read end of the master's alive pipe */
} sk_http_args_t;

/* The process's main: serve until told to stop; returns the exit code. */
int sk_http_main(void *args);

/* Readiness as /readyz computes it, from explicit inputs (unit-testable):
 * returns 1 (ready) or 0 and writes the one-line reason. */
typedef struct {
    int master_state;     /* sk_master_state_t */
    int db_ok;            /* the last refresh succeeded */
    int64_t db_age_ms;    /* since the last successful refresh (-1: never) */
    const char *db_error; /* the last failure, "" when none */
    int schema_have;      /* version read from the database (0: unknown) */
    int schema_known;     /* this binary's */
    int schema_missing;   /* migrations this binary knows that are not applied */
    int schema_breaking;  /* a newer migration that refuses this binary (0: none) */
    int workers_connected;
    int workers_configured;
} sk_http_ready_in_t;

int sk_http_ready(const sk_http_ready_in_t *in, char *reason, size_t len);

#endif
