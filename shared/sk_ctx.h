/*
 * sk_ctx - the replay runtime behind stepkit.h, as the engine sees it.
 *
 * The worker builds a context from a claimed run (input and recorded ops),
 * then calls sk_ctx_enter() once per replay.  Each entry runs the handler
 * from the top; step calls return recorded results, and at most one new op
 * executes per entry.  The entry's outcome says what the engine must make
 * durable.  The context never talks to the database itself: before a new
 * body runs it calls the engine's before_body hook, which commits what is
 * pending (so one commit per step), and everything else is read back from
 * the outcome.
 *
 * Ownership: the context owns the ops it is given (copies), its arena
 * (strings, errors; reset at each entry) and the outcome's buffers (valid
 * until the next entry or sk_ctx_free).
 */
#ifndef SK_CTX_H
#define SK_CTX_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "sk_registry.h"
#include "stepkit.h"

typedef enum {
    SK_OP_RETRY = 0, /* attempts failed so far; it runs again */
    SK_OP_OK,        /* final: output */
    SK_OP_ERROR,     /* final: error map */
    SK_OP_WAITING    /* suspended: sleep, signal wait, child run (wait_info) */
} sk_op_status_t;

/* How a new op of this entry is written: by sk_op_put (none) or by the
 * statement of its kind, which does more than record it. */
typedef enum {
    SK_INTENT_NONE = 0,
    SK_INTENT_SIGNAL, /* register a waiter */
    SK_INTENT_SEND,   /* deliver a signal, record the receiver */
    SK_INTENT_INVOKE  /* start a child run, register the parent */
} sk_intent_t;

/* One op as recorded (or about to be). */
typedef struct sk_op {
    char key[41];
    char *step_id;
    const char *kind; /* run, sleep, signal, send, invoke (static strings) */
    sk_op_status_t status;
    int attempts; /* executions so far */
    char *data;   /* msgpack output or error map */
    size_t len;
    int64_t started_ms; /* wall clock, first execution of this attempt */
    int committed;      /* 1 once durable */
    int64_t until_ms;   /* waiting: wall-clock ms it ends or times out; -1 never;
                         * retry of a group's kept run: when it is due */
    char *wait_info;    /* msgpack {kind, until, signal, child, workflow} */
    size_t wait_len;
    sk_intent_t intent; /* new this entry: written by its intent statement */
    char *signal;       /* intent: signal name */
    char *workflow;     /* intent: child workflow */
    char child[40];     /* intent: child run id */
    char *payload;      /* intent: msgpack data sent or given to the child */
    size_t payload_len;
    int64_t timeout_ms;        /* intent: relative timeout, -1 none */
    msgpack_unpacked unpacked; /* lazily unpacked data */
    int unpacked_ok;
    struct sk_op *next;       /* hash chain */
    struct sk_op *order_next; /* insertion order */
} sk_op_t;

typedef enum {
    SK_ENTRY_COMPLETED,   /* handler returned its output */
    SK_ENTRY_FAILED,      /* the run fails now (fatal error, or handler failed) */
    SK_ENTRY_STEP_DONE,   /* a body ran to a final result: pending op, replay again */
    SK_ENTRY_STEP_RETRY,  /* a body failed and runs again after retry_delay_ms */
    SK_ENTRY_SUSPENDED,   /* the run waits: commit new ops and intents, hand the item back */
    SK_ENTRY_TARGET_IDLE, /* target mode: the target op did not run (already recorded) */
    SK_ENTRY_YIELD,       /* the engine asked to stop before a new body (draining) */
    SK_ENTRY_ABORTED      /* before_body failed (lease lost, connection gone) */
} sk_entry_kind_t;

typedef struct {
    sk_entry_kind_t kind;
    /* COMPLETED: the output (one msgpack value) */
    const char *output;
    size_t output_len;
    /* FAILED: the error map; fatal = not retryable (never retry the handler) */
    const char *error;
    size_t error_len;
    int fatal;
    /* STEP_DONE / STEP_RETRY / FAILED after a body: the op that ran */
    sk_op_t *op;
    int retry_delay_ms;
    /* SUSPENDED: ms until the run must be replayed (-1: only when woken);
     * 0 when a signal was sent (its receiver may be this run). */
    int64_t visible_ms;
} sk_entry_t;

/* Around every body: before it with the op's key, step id and the step's
 * own timeout (0: the workflow's default), after it with NULL, NULL, 0. */
typedef void (*sk_body_hook_fn)(void *arg, const char *key, const char *step_id, int timeout_ms);
/* sk_heartbeat() inside a body. */
typedef void (*sk_heartbeat_fn)(void *arg);

/* Called before a new body executes.  SK_OK: go on; SK_AGAIN: yield
 * (the handler is suspended, the entry ends YIELD); SK_ERROR: abort. */
typedef int (*sk_before_body_fn)(sk_ctx_t *ctx, void *arg);

typedef struct {
    const sk_wf_t *wf;
    const char *run_id;
    const char *event_id;
    const char *trigger_type; /* invoke | event | cron */
    const char *trigger_name;
    int64_t created_ms;
    const char *data; /* msgpack input.data (checked by the caller) */
    size_t data_len;
    int handler_attempt; /* 1-based attempt of the handler this execution */
    const char *target;  /* target mode: execute only this op (a group member) */
    sk_before_body_fn before_body;
    sk_body_hook_fn body_hook; /* optional */
    sk_heartbeat_fn heartbeat; /* optional */
    void *hook_arg;
} sk_ctx_params_t;

sk_ctx_t *sk_ctx_new(const sk_ctx_params_t *p);
void sk_ctx_free(sk_ctx_t *ctx);

/* Add a recorded op (copies data).  Data and wait_info must have passed
 * sk_msgpack_check. */
int sk_ctx_add_op(sk_ctx_t *ctx, const char *key, const char *step_id, const char *kind,
                  sk_op_status_t status, int attempts, const char *data, size_t len,
                  const char *wait_info, size_t wait_len);

/*
 * The hand-off between the context and the engine, as a value.  After an
 * entry (or before a body, from before_body) the engine asks what the
 * context has to commit: the ops recorded or changed since the last
 * commit, in the order they were recorded, and the group members whose
 * bodies other workers must run (target items, by op key).  It writes
 * them, and once they are durable hands the same value back.  The arrays
 * belong to the context and stay valid until sk_ctx_committed() or
 * sk_ctx_free(); the engine never changes the context's ops itself.
 */
typedef struct {
    const sk_op_t *const *ops;
    size_t nops;
    const char (*dispatch)[41];
    size_t ndispatch;
} sk_ctx_writes_t;

/* Fill *w (nothing to commit: both counts 0).  SK_ERROR: out of memory. */
int sk_ctx_writes(sk_ctx_t *ctx, sk_ctx_writes_t *w);
/* *w is durable: its ops are committed (their intents done) and its
 * dispatches made.  Returns how many of the ops were results (ok/error). */
size_t sk_ctx_committed(sk_ctx_t *ctx, const sk_ctx_writes_t *w);

/* Set a waiting op's outcome, to be committed (a sleep that came due). */
int sk_ctx_resolve_op(sk_ctx_t *ctx, sk_op_t *op, sk_op_status_t status, const char *data,
                      size_t len);
/* The engine settled waiting op `key` (a timeout it resolved in the
 * database): its outcome, already durable. */
int sk_ctx_op_settled(sk_ctx_t *ctx, const char *key, sk_op_status_t status, const char *data,
                      size_t len);
/* The next waiting op after `after` (NULL: the first) whose timeout has
 * passed at now_ms, sleeps left out (a replay resolves those); NULL: none. */
const sk_op_t *sk_ctx_due_wait(const sk_ctx_t *ctx, int64_t now_ms, const sk_op_t *after);
/* Whether op `key` has its final result (ok or error). */
int sk_ctx_op_final(const sk_ctx_t *ctx, const char *key);
/* Whether the run has recorded anything yet. */
int sk_ctx_has_ops(const sk_ctx_t *ctx);

/* A copy of error map `data` with retryable false, as a parent sees its
 * child's failure. */
int sk_error_repack_fatal(const char *data, size_t len, msgpack_sbuffer *out);

/* Validate the input with the workflow's validator: SK_OK, or SK_FAILED
 * with out filled (InvalidInputError, fatal). */
int sk_ctx_validate(sk_ctx_t *ctx, sk_entry_t *out);

/* One replay.  Returns SK_OK with `out` filled. */
int sk_ctx_enter(sk_ctx_t *ctx, sk_entry_t *out);

size_t sk_ctx_final_ops(const sk_ctx_t *ctx);
void sk_ctx_set_handler_attempt(sk_ctx_t *ctx, int attempt);
const sk_wf_t *sk_ctx_workflow(const sk_ctx_t *ctx);

/* Pack an error map {name, message, retryable[, stack][, cause]}: helpers
 * for the engine (lease errors, handler misuse). */
int sk_error_pack_simple(msgpack_sbuffer *buf, const char *name, const char *message,
                         int retryable);

/* Retry delay for failed attempt n (1-based) under `r` (jittered). */
int sk_backoff_ms(const sk_retry_t *r, int attempt);

/* Lowercase hex SHA-1 of "<step id>:<index>" into out[41]. */
int sk_op_key(const char *step_id, int index, char out[41]);

#endif
