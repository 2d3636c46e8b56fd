/*
 * sk_wconn - a worker's own libpq connection.
 *
 * Connecting is asynchronous (PQconnectStart/PQconnectPoll driven by
 * libev), with reconnect backoff, so signals and the alive pipe stay
 * served while the database is away.  Once up, the connection is in
 * pipeline mode; sk_wconn_run() sends a batch of prepared statements (one
 * transaction when asked) in a single round trip and waits for the
 * results with poll(2), bounded by a timeout.  A worker executes one run
 * at a time and user code blocks it anyway, so waiting for its own commit
 * costs nothing the event loop could use; the idle wait for work is where
 * the loop matters, and there it only watches the socket.
 */
#ifndef SK_WCONN_H
#define SK_WCONN_H

#include <stddef.h>

#include <ev.h>
#include <libpq-fe.h>

#include "sk_config.h"

#define SK_CMD_MAX_PARAMS 12

/* sk_wconn_run: the database refused the batch with an error that trying
 * again cannot fix (sk_wconn_sqlstate_final); the transaction rolled back,
 * the connection is fine, the lease still holds. */
#define SK_WCONN_REFUSED (-3)

typedef struct {
    const char *stmt; /* prepared statement name */
    int nparams;
    const char *values[SK_CMD_MAX_PARAMS];
    int lengths[SK_CMD_MAX_PARAMS];
    int formats[SK_CMD_MAX_PARAMS]; /* 1 = binary (bytea) */
    int binary_result;
} sk_cmd_t;

typedef struct sk_wconn sk_wconn_t;

typedef struct {
    void (*ready)(void *arg);  /* connected, statements prepared, LISTENing */
    void (*notify)(void *arg); /* a work notification arrived while idle */
    void (*lost)(void *arg);   /* the connection dropped (reconnecting unless fatal) */
    void *arg;
} sk_wconn_cb_t;

sk_wconn_t *sk_wconn_new(struct ev_loop *loop, const sk_config_t *cfg, const sk_wconn_cb_t *cb);
void sk_wconn_free(sk_wconn_t *c);
/* Start (or restart after a loss) connecting, after `delay_ms`. */
void sk_wconn_connect(sk_wconn_t *c, int delay_ms);
int sk_wconn_ready(const sk_wconn_t *c);
/* Stop watching the socket for notifications (draining). */
void sk_wconn_quiet(sk_wconn_t *c);

/*
 * Run `n` commands in one round trip, as one transaction (pipeline mode:
 * the commands up to a sync are one implicit transaction).
 * res[i] gets each command's result (caller PQclears; NULL when it did
 * not run).  Returns SK_OK; SK_AGAIN when a command raised SK001 (lease
 * lost: the transaction rolled back); SK_WCONN_REFUSED when a command
 * failed deterministically (err has the server's message,
 * sk_wconn_sqlstate() its SQLSTATE); SK_ERROR on any other failure with
 * err filled (a broken connection is dropped and reconnects by itself).
 */
int sk_wconn_run(sk_wconn_t *c, sk_cmd_t *cmds, int n, PGresult **res, char *err, size_t errlen);

/* SQLSTATE of the last batch's first error ("" when none). */
const char *sk_wconn_sqlstate(const sk_wconn_t *c);
/* DETAIL of the last batch's SK001 ("" when none): batch_fence lists the
 * lost items there, comma-separated. */
const char *sk_wconn_lost_detail(const sk_wconn_t *c);
/* Whether an error of this SQLSTATE would come back on every try. */
int sk_wconn_sqlstate_final(const char *state);

/* The schema's channel names, e.g. "stepkit.work". */
const char *sk_wconn_done_channel(const sk_wconn_t *c);

/* Deliver notifications buffered during sk_wconn_run (called from idle). */
int sk_wconn_take_notified(sk_wconn_t *c);

/* Exit code to return when the connection found a fatal condition
 * (schema version mismatch): 0 when none. */
int sk_wconn_fatal(const sk_wconn_t *c);

#endif
