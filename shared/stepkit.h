/*
 * stepkit.h - the authoring API: write durable workflows in C.
 *
 * A workflow is a handler that the engine runs by *replay*: every time the
 * run makes progress the handler is entered again from the top, and every
 * step call returns its recorded result instead of running again.  Code
 * outside steps must be deterministic; side effects belong in step bodies.
 *
 * A complete workflow library (build it with
 *   cc -shared -fPIC -o my.so my.c $(pkg-config --cflags --libs stepkit)
 * and start `stepkit-master --workflows ./my.so`):
 *
 *   #include <stepkit.h>
 *   #include <stdlib.h>
 *
 *   static int pick(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
 *   {
 *       (void)ctx; (void)arg;
 *       return sk_pack_int(out, rand() % 100);
 *   }
 *
 *   static int say_hi(sk_ctx_t *ctx, msgpack_packer *out)
 *   {
 *       const msgpack_object *n;
 *       SK_STEP(sk_run(ctx, "random-number", pick, NULL, &n));
 *       return sk_pack_fmt(out, "Hello %s! Your random number is %lld.",
 *                          sk_str(ctx, sk_get(sk_data(ctx), "name")), sk_int(n));
 *   }
 *
 *   SK_WORKFLOWS(reg)
 *   {
 *       return sk_register(reg, &(sk_workflow_t){.id = "say-hi", .handler = say_hi});
 *   }
 *
 * Return codes.  Every step call returns one of:
 *   SK_OK       the step's result is in *result;
 *   SK_SUSPEND  the run must stop here (the step is new, or waits): the
 *               handler returns this code at once - SK_STEP() does that;
 *   SK_FAILED   the step failed for good: sk_ctx_error() is its error; the
 *               handler may handle it, or return SK_FAILED to fail with it.
 * A handler returns SK_OK after packing its output (nothing packed = nil),
 * SK_SUSPEND passed up from a step, or SK_FAILED from sk_raise()/sk_fail().
 *
 * Ownership.  Everything the engine hands out (results, errors, input,
 * strings) belongs to the context and stays valid until the handler returns;
 * copy what must outlive it.  Errors made with sk_error_new() belong to the
 * context as well: never free them.
 */
#ifndef STEPKIT_H
#define STEPKIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with -fvisibility=hidden: what this header declares
 * is all it exports. */
#pragma GCC visibility push(default)

#define SK_OK      0
#define SK_ERROR   (-1)
#define SK_AGAIN   (-2)
#define SK_SUSPEND 1
#define SK_FAILED  2

/* Workflow ids, step ids, signal and event names: 1..255 bytes of valid
 * UTF-8 (workflow ids and event names without line breaks).  A step given
 * a longer name fails with InvalidStepError (not retryable) before anything
 * is written; the client, the command line and the SQL functions refuse it
 * too. */
#define SK_NAME_LEN_MAX 255

/* Return from the handler at once unless the step call gave SK_OK. */
#define SK_STEP(call)                                                                              \
    do {                                                                                           \
        int sk_step_rc_ = (call);                                                                  \
        if (sk_step_rc_ != SK_OK)                                                                  \
            return sk_step_rc_;                                                                    \
    } while (0)

typedef struct sk_ctx sk_ctx_t;           /* one execution of a run (opaque) */
typedef struct sk_error sk_error_t;       /* an error value (opaque, owned by a ctx) */
typedef struct sk_issues sk_issues_t;     /* validation issues being collected */
typedef struct sk_registry sk_registry_t; /* where a library registers its workflows */

/* A handler: pack the run's output into `out` and return SK_OK. */
typedef int (*sk_handler_fn)(sk_ctx_t *ctx, msgpack_packer *out);

/* A step body: pack the step's output into `out` and return SK_OK, or
 * return sk_raise()/sk_fail().  `ctx` is the run's context: calling a step
 * on it from inside a body fails the run with NestedStepError. */
typedef int (*sk_body_fn)(sk_ctx_t *ctx, msgpack_packer *out, void *arg);

/* An input validator: add an issue for each problem with `data`. */
typedef void (*sk_validate_fn)(const msgpack_object *data, sk_issues_t *issues);

/*
 * Retry delay: attempt n (1-based) that failed waits
 *   min(max_ms, initial_ms * factor^(n-1)), with +-20% jitter,
 * before the next one.  A zero-initialised sk_retry_t means "the default",
 * SK_RETRY_DEFAULT = 1 s doubling up to 5 min; SK_RETRY(0, 1, 0) retries
 * at once.
 */
typedef struct {
    int set; /* 0: use the default (of the workflow, then the engine) */
    int initial_ms;
    double factor;
    int max_ms;
} sk_retry_t;

#define SK_RETRY(initial_ms, factor, max_ms) ((sk_retry_t){1, (initial_ms), (factor), (max_ms)})
#define SK_RETRY_DEFAULT                     SK_RETRY(1000, 2.0, 300000)
#define SK_MAX_ATTEMPTS_DEFAULT              4

/* Flow control (docs/flow-control.md).  A key is read from the run's
 * input data by a path ("customer", "customer.id"); several paths
 * separated by commas make a key of their values ("region,customer").
 * key NULL: one limit for the whole workflow. */
typedef struct {
    const char *key;
    int limit; /* runs in progress (first claim to end) per key; 0: no limit */
} sk_concurrency_t;

typedef struct {
    const char *key;
    int limit;     /* run starts per period per key (sliding window); 0: no limit */
    int period_ms; /* 1 ms .. 1 day */
} sk_rate_t;

typedef struct {
    const char *id;               /* unique workflow id (required) */
    sk_handler_fn handler;        /* required */
    int max_attempts;             /* executions per op and of the handler; 0 = 4 */
    sk_validate_fn validate;      /* optional input validator */
    sk_retry_t retry;             /* default retry delay of its steps and handler */
    const char *const *events;    /* NULL-terminated event names that start it */
    const char *const *schedules; /* NULL-terminated cron schedules that start it */
    int step_timeout_ms; /* a body without progress this long is killed; 0 = --step-timeout */
    sk_concurrency_t concurrency; /* e.g. {.key = "customer_id", .limit = 2} */
    sk_rate_t rate; /* e.g. {.key = "customer_id", .limit = 100, .period_ms = 60000} */
    int priority;   /* default priority of its runs, 0..86400: a run ranks among ready runs as if
                     * queued this many seconds earlier */
    sk_rate_t step_rate; /* executions of run-step bodies (retries included, replays not) per
                          * period per key, e.g. {.key = "customer_id", .limit = 10,
                          * .period_ms = 1000}: a step that calls a rate-limited API */
} sk_workflow_t;

/* Called by the library's entry point; copies `wf` (its strings must stay
 * valid while the library is loaded: literals are fine).  Returns SK_OK, or
 * SK_ERROR when `wf` is invalid (an id of 0 or more than 200 characters or
 * with a line break, no handler, max_attempts outside 0..1000, a bad retry
 * setting, an invalid event name or cron schedule) or its id is taken: the
 * entry point should then return SK_ERROR, and the master refuses to start
 * with the reason in its log. */
int sk_register(sk_registry_t *reg, const sk_workflow_t *wf);

/* The entry point every workflow library exports (the suffix is the ABI
 * version the engine checks):  SK_WORKFLOWS(reg) { return sk_register(...); }
 * 2: sk_workflow_t grew (flow control, step rates): the engine would read a
 * version-1 library's workflows past their end, so it refuses them.  The
 * entry point is exported even from a library built with -fvisibility=hidden. */
#define SK_ABI_VERSION 2
#define SK_WORKFLOWS(reg)                                                                          \
    __attribute__((visibility("default"))) int stepkit_workflows_v2(sk_registry_t *reg);           \
    int stepkit_workflows_v2(sk_registry_t *reg)

/* ---- the context ------------------------------------------------------- */

const char *sk_run_id(const sk_ctx_t *ctx);
/* {data, id, name, time, type} */
const msgpack_object *sk_input(const sk_ctx_t *ctx);
/* input.data */
const msgpack_object *sk_data(const sk_ctx_t *ctx);
/* 1-based attempt of the current step body (inside a body), else of the handler */
int sk_attempt(const sk_ctx_t *ctx);
/* The error the last step call (SK_FAILED) raised. */
const sk_error_t *sk_ctx_error(const sk_ctx_t *ctx);

/* ---- steps --------------------------------------------------------------- */

/*
 * Results and buffers, for every step call below and the sk_group_* calls:
 * - On SK_OK, *result is never NULL.  A step with no value (a sleep, a
 *   signal wait that timed out) gives a nil object (type
 *   MSGPACK_OBJECT_NIL), not NULL.  On SK_SUSPEND and SK_FAILED, *result is
 *   NULL.  `result` itself may be NULL when the value is not needed.
 * - Results are owned by the context: valid until the handler returns.
 * - Strings and buffers you pass in (ids, signal and workflow names, the
 *   msgpack `data` of sk_send_signal, sk_invoke and sk_group_invoke) are
 *   copied before the call returns: they may be freed or reused right
 *   after it.  A `data` of NULL or length 0 sends nil.
 */

/* Run `body` once, durably; its output is memoized forever. */
int sk_run(sk_ctx_t *ctx, const char *id, sk_body_fn body, void *arg,
           const msgpack_object **result);
/* The same with a retry delay of its own. */
int sk_run_retry(sk_ctx_t *ctx, const char *id, sk_body_fn body, void *arg, sk_retry_t retry,
                 const msgpack_object **result);

/* Options of one run step; zero-initialised = every default. */
typedef struct {
    sk_retry_t retry; /* retry delay; .set 0: the workflow's */
    int timeout_ms;   /* step timeout: a body showing no progress (sk_heartbeat) this long
                       * gets its worker killed, and the attempt fails with
                       * StepTimeoutError; 0: the workflow's, then --step-timeout */
} sk_step_opts_t;

/* sk_run with options (opts NULL = sk_run). */
int sk_run_opts(sk_ctx_t *ctx, const char *id, sk_body_fn body, void *arg,
                const sk_step_opts_t *opts, const msgpack_object **result);

/* Inside a step body: "still making progress".  Pushes the step's deadline
 * a full step timeout out and has the run's lease renewed at once.  A body
 * that may run longer than its step timeout calls it now and then.  The
 * lease is renewed by itself while a body runs (up to the deadline), so
 * bodies longer than the lease need nothing.  Outside a body: no effect. */
void sk_heartbeat(sk_ctx_t *ctx);

/* Suspend the run for `ms` milliseconds (or until `unix_ms`); holds no
 * worker meanwhile.  Result: nothing (SK_OK once the time has come). */
int sk_sleep(sk_ctx_t *ctx, const char *id, int64_t ms);
int sk_sleep_until(sk_ctx_t *ctx, const char *id, int64_t unix_ms);

/* Wait until a signal named `signal` is sent (each send wakes the oldest
 * waiter of its name) or `timeout_ms` passes (< 0: no timeout).  *result:
 * {"data": ..., "signal": name}, or nil on timeout.  `validate`, optional,
 * checks the data: rejected data fails the step with InvalidInputError. */
int sk_wait_for_signal(sk_ctx_t *ctx, const char *id, const char *signal, int64_t timeout_ms,
                       sk_validate_fn validate, const msgpack_object **result);

/* Send a signal durably (msgpack `data`, NULL = nil): *result is
 * {"run_id": receiver} or nil when nobody waited.  Recorded like any step,
 * so a replay never sends twice. */
int sk_send_signal(sk_ctx_t *ctx, const char *id, const char *signal, const char *data, size_t len,
                   const msgpack_object **result);

/* Start a run of `workflow` (msgpack `data`) and wait for its end: *result
 * is its output; its failure is raised here as a non-retryable error (a
 * cancelled child: CancelledError); after `timeout_ms` (< 0: none) the step
 * fails with InvokeTimeoutError ("invoked run <child id> timed out") and
 * the child runs on by itself.  The child's run id is not part of the
 * result: a workflow that needs it lets the child return sk_run_id() in its
 * output; operators see it with `stepkit run <parent>` ("children") or
 * `SELECT run_id FROM runs WHERE parent_run_id = ...`. */
int sk_invoke(sk_ctx_t *ctx, const char *id, const char *workflow, const char *data, size_t len,
              int64_t timeout_ms, const msgpack_object **result);

/* ---- parallel steps -------------------------------------------------------- */

/*
 * A group starts several steps at once and awaits them together:
 *
 *   sk_group_t *g = sk_group(ctx);
 *   sk_group_run(g, "p1", body1, NULL);
 *   sk_group_sleep(g, "p3", 1000);
 *   sk_group_branch(g, two_in_a_row, NULL);    // a sequence of steps
 *   SK_STEP(sk_group_await(g, &results));      // array, in declaration order
 *
 * Run bodies of a group execute concurrently on different workers, each
 * once.  A branch is a function that calls steps in order (with sk_run and
 * friends on the same ctx) and packs its result; it returns SK_SUSPEND
 * (SK_STEP does it) while one of its steps is pending.  sk_group_await
 * gives SK_FAILED with the first failed member's error (in declaration
 * order), SK_SUSPEND while any member is pending.
 *
 * A member's `arg` must stay valid until sk_group_await returns: the
 * group's first new run body executes inside sk_group_await, after the
 * branch that declared it has returned, so never point it at a branch's
 * local variables (the handler's are fine).
 */
typedef struct sk_group sk_group_t;
typedef int (*sk_branch_fn)(sk_ctx_t *ctx, msgpack_packer *out, void *arg);

sk_group_t *sk_group(sk_ctx_t *ctx);
void sk_group_run(sk_group_t *g, const char *id, sk_body_fn body, void *arg);
void sk_group_sleep(sk_group_t *g, const char *id, int64_t ms);
void sk_group_wait_for_signal(sk_group_t *g, const char *id, const char *signal, int64_t timeout_ms,
                              sk_validate_fn validate);
void sk_group_invoke(sk_group_t *g, const char *id, const char *workflow, const char *data,
                     size_t len, int64_t timeout_ms);
void sk_group_branch(sk_group_t *g, sk_branch_fn fn, void *arg);
int sk_group_await(sk_group_t *g, const msgpack_object **results);

/* ---- errors -------------------------------------------------------------- */

/* A new retryable error, owned by ctx. */
sk_error_t *sk_error_new(sk_ctx_t *ctx, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Setters return `e` so they chain. */
sk_error_t *sk_error_set_cause(sk_error_t *e, const sk_error_t *cause);
sk_error_t *sk_error_set_retryable(sk_error_t *e, bool retryable);
sk_error_t *sk_error_set_stack(sk_error_t *e, const char *stack);

const char *sk_error_name(const sk_error_t *e);
const char *sk_error_message(const sk_error_t *e);
const char *sk_error_stack(const sk_error_t *e); /* NULL when none */
const sk_error_t *sk_error_cause(const sk_error_t *e);
bool sk_error_retryable(const sk_error_t *e);

/* Raise `e` (from a handler or a body): returns SK_FAILED, to be returned. */
int sk_raise(sk_ctx_t *ctx, const sk_error_t *e);
/* sk_raise(ctx, sk_error_new(ctx, name, fmt, ...)) */
int sk_fail(sk_ctx_t *ctx, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- validation ---------------------------------------------------------- */

typedef enum {
    SK_T_NIL,
    SK_T_BOOL,
    SK_T_INT,
    SK_T_NUMBER,
    SK_T_STRING,
    SK_T_ARRAY,
    SK_T_OBJECT
} sk_type_t;

/* Record one issue: `path` is a NULL-terminated list of keys. */
void sk_issue(sk_issues_t *issues, const char *const *path, const char *expected,
              const char *message);
/* Expect data[key] to be of `type`; records "Invalid input: expected
 * string, received number" style issues.  Returns true when it is. */
bool sk_expect(sk_issues_t *issues, const msgpack_object *data, const char *key, sk_type_t type);

/* ---- reading and writing msgpack ------------------------------------------ */

/* map[key] or NULL (also NULL when map is not a map). */
const msgpack_object *sk_get(const msgpack_object *map, const char *key);
/* A NUL-terminated copy of a string object, owned by ctx (valid until the
 * handler returns); "" (never NULL) when `o` is NULL or not a string. */
const char *sk_str(sk_ctx_t *ctx, const msgpack_object *o);
/* Integer value (0 when not an integer). */
long long sk_int(const msgpack_object *o);
/* Type of an object, as validators name it. */
sk_type_t sk_type(const msgpack_object *o);
const char *sk_type_name(sk_type_t t);

/* Pack helpers: SK_OK or SK_ERROR. */
int sk_pack_str(msgpack_packer *pk, const char *s);
int sk_pack_int(msgpack_packer *pk, long long v);
int sk_pack_fmt(msgpack_packer *pk, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int sk_pack_object(msgpack_packer *pk, const msgpack_object *o);

#pragma GCC visibility pop

#ifdef __cplusplus
}
#endif

#endif /* STEPKIT_H */
