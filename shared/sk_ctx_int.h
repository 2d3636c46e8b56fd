/*
 * sk_ctx_int.h - the replay context's private header, shared by the
 * context's modules (shared/sk_ctx*.c) and by nothing else; not installed.
 * It holds the context's structure, the error and issue structures, the
 * step call and the functions more than one of the modules uses.  Those
 * are hidden: libstepkit.so exports what it exported before the split.
 */
#ifndef SK_CTX_INT_H
#define SK_CTX_INT_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "sk_ctx.h"

#define COUNTER_BUCKETS 64
#define ID_MAX          40 /* a UUID and its NUL */

struct sk_error {
    const char *name;
    const char *message;
    const char *stack;
    const sk_error_t *cause;
    bool retryable;
    const char *issues; /* packed msgpack array of validation issues, or NULL */
    size_t issues_len;
};

struct sk_issues {
    sk_ctx_t *ctx;
    msgpack_sbuffer buf; /* packed issue maps, count below */
    size_t count;
    const char *first_message;
};

typedef struct alloc {
    struct alloc *next;
    max_align_t data[];
} alloc_t;

typedef struct counter {
    struct counter *next;
    const char *id;
    int n;
} counter_t;

typedef enum { EXEC_NONE = 0, EXEC_DONE, EXEC_RETRY, EXEC_FATAL } exec_kind_t;

/* An unpacked object the ctx owns until the entry ends, with its bytes. */
typedef struct unp {
    struct unp *next;
    msgpack_unpacked u;
    char buf[];
} unp_t;

struct sk_ctx {
    const sk_wf_t *wf;
    char run_id[ID_MAX];
    char event_id[ID_MAX];
    sk_before_body_fn before_body;
    sk_body_hook_fn body_hook;
    sk_heartbeat_fn heartbeat;
    void *hook_arg;
    int handler_attempt;

    msgpack_sbuffer input_buf;
    msgpack_unpacked input;
    const msgpack_object *data_obj;

    sk_op_t **buckets;
    size_t nbuckets, nops;
    sk_op_t *order_head, *order_tail;

    alloc_t *arena;
    counter_t *counters[COUNTER_BUCKETS];

    /* per-entry state */
    int in_body;
    const char *body_id;
    int body_attempt;
    int nested;
    const char *nested_inner, *nested_outer;
    int yield, aborted;
    exec_kind_t exec_kind;
    sk_op_t *exec_op;
    int retry_delay_ms;
    const sk_error_t *last_error; /* raised at a step call site */
    const sk_error_t *raised;     /* given to sk_raise */

    msgpack_sbuffer out_buf;
    msgpack_sbuffer err_buf;

    char target[41];      /* target mode: the one op to execute */
    int64_t now_ms;       /* fixed per entry: a replay sees one time */
    int group_depth;      /* > 0: step calls start concurrently */
    int started;          /* a new suspending op started this entry */
    int waiting;          /* a waiting op is not ready yet */
    int64_t due_ms;       /* earliest due time of a kept run's retry; -1 none */
    int sent;             /* a signal is sent this entry */
    char (*dispatch)[41]; /* group run bodies for other workers */
    /* The first new run of a group in this entry: this worker runs it
     * itself when the group is awaited, once the others are dispatched. */
    struct {
        int set;
        char key[41];
        const char *id;
        sk_body_fn body;
        void *arg;
        int has_retry;
        sk_retry_t retry;
        int timeout_ms;
    } cand;
    size_t ndispatch, capdispatch;
    sk_op_t **writes; /* sk_ctx_writes: the uncommitted ops handed out */
    size_t capwrites;
    unp_t *unps;
};

typedef enum { K_RUN, K_SLEEP, K_SIGNAL, K_SEND, K_INVOKE } call_kind_t;

/* One step call, whatever its kind. */
typedef struct {
    call_kind_t kind;
    const char *id;
    sk_body_fn body; /* run */
    void *arg;
    const sk_retry_t *retry;
    int step_timeout_ms; /* run: its own step timeout, 0 = default */
    int64_t until_ms;    /* sleep: absolute wall-clock ms */
    int64_t timeout_ms;  /* signal, invoke: relative, < 0 none */
    const char *signal;  /* signal, send */
    sk_validate_fn validate;
    const char *workflow; /* invoke */
    const char *data;     /* send, invoke: msgpack */
    size_t len;
} call_t;

/* Functions of one module another uses (hidden, as everything outside
 * stepkit.h and stepkit_client.h: the build uses -fvisibility=hidden). */

/* sk_ctx.c: small helpers and the entry */
int64_t sk_ctx_wall_ms(void);
void *sk_ctx_arena_alloc(sk_ctx_t *ctx, size_t n);
char *sk_ctx_arena_strndup(sk_ctx_t *ctx, const char *s, size_t n);
char *sk_ctx_arena_strdup(sk_ctx_t *ctx, const char *s);
char *sk_ctx_heap_copy(const char *p, size_t n);
uint32_t sk_ctx_hash_str(const char *s);
void sk_ctx_entry_reset(sk_ctx_t *ctx);
int sk_ctx_fail_with(sk_ctx_t *ctx, sk_entry_t *out, const sk_error_t *e);

/* sk_ctx_error.c */
int sk_ctx_pack_cstr(msgpack_packer *pk, const char *s);
int sk_ctx_pack_error_buf(msgpack_sbuffer *buf, const sk_error_t *e);
const char *sk_ctx_obj_strdup(sk_ctx_t *ctx, const msgpack_object *o);
const sk_error_t *sk_ctx_error_from_obj(sk_ctx_t *ctx, const msgpack_object *o, int depth);

/* sk_ctx_ops.c */
sk_op_t *sk_ctx_op_find(const sk_ctx_t *ctx, const char *key);
sk_op_t *sk_ctx_op_put(sk_ctx_t *ctx, const char *key, const char *step_id, const char *kind,
                       sk_op_status_t status, int attempts, const char *data, size_t len);
const msgpack_object *sk_ctx_op_object(sk_op_t *op);
void sk_ctx_op_clear_extra(sk_op_t *op);

/* sk_ctx_step.c */
int sk_ctx_output_check(msgpack_sbuffer *buf);
int sk_ctx_execute_body(sk_ctx_t *ctx, const char *key, const char *id, sk_op_t *prev,
                        sk_body_fn body, void *arg, const sk_retry_t *retry, int timeout_ms,
                        int kept);
int sk_ctx_dispatch(sk_ctx_t *ctx, const char *key, const call_t *c);
int sk_ctx_step(sk_ctx_t *ctx, const call_t *c, const msgpack_object **result);

/* sk_ctx_group.c */
void sk_ctx_dispatch_candidate(sk_ctx_t *ctx);

#endif
