/*
 * sk_exec_int.h - the executor's private header, shared by its modules
 * (worker/sk_exec*.c) and by nothing else.  It holds the executor's
 * structure, the item, batch, run and slot types, and the functions more
 * than one of the modules uses, under the module that defines them.
 */
#ifndef SK_EXEC_INT_H
#define SK_EXEC_INT_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <msgpack.h>

#include "sk_ctx.h"
#include "sk_exec.h"
#include "sk_renew.h"
#include "sk_shm.h"
#include "sk_wconn.h"

#define NUM_LEN 24

struct sk_exec {
    sk_wconn_t *conn;
    const sk_config_t *cfg;
    const sk_registry_t *reg;
    sk_worker_slot_t *slot;
    sk_stop_fn stop;
    void *stop_arg;
    int stopping; /* what stop() said last: read inside handlers, asked between entries */
    char worker_name[96];
    char *workflows; /* ids joined by newlines: what this worker can run */
    char lease[NUM_LEN];
    sk_renew_t *renew;       /* keeps a running body's lease */
    sk_inflight_t held;      /* what the slot shows (published on change) */
    sk_held_batch_t listed;  /* batch mode: the items the slot lists (publish_batch) */
    char refused[700];       /* a write of the current run the database refused for good */
    void (*more)(void *arg); /* a claim saw more ready work (sk_exec_on_more) */
    void *more_arg;
    int found_none;      /* the last run's end claimed and found nothing... */
    int64_t next_due_ms; /* ...and this was its next-due answer */
    int batch;           /* most items held at once (--batch) */
    struct slot *slots;  /* batch entries; fixed: run states point into them */
    int nheld;
    struct item *incoming;  /* claimed, not yet in a slot */
    struct slot **round_in; /* the slots a round commits, in item order */
    int nincoming;
    int more_ready; /* the last claim saw more ready than it took */
    int rr;         /* round robin: the slot a round starts with */
    /* the current round (batch mode) */
    int round_max; /* most runs held: --batch-window over the bodies' mean time */
    int64_t body_t0_us, round_body_us; /* time in bodies during the round */
    int64_t body_avg_us;               /* moving mean of a body's time (-1: none yet) */
};

/* A claim's result, shared by the items it returned. */
typedef struct {
    PGresult *res;
    int refs;
} claim_res_t;

/* A claimed item with its run; pointers into its rows of cr->res (row0,
 * nrows), which it holds a reference to. */
typedef struct item {
    claim_res_t *cr;
    int row0, nrows;
    int64_t item_id;
    int32_t epoch;
    char item_s[NUM_LEN], epoch_s[NUM_LEN];
    const char *run_id, *target, *workflow, *event_id, *ttype, *tname, *status;
    const char *data;
    size_t data_len;
    int attempt, attempt_ops;
    int64_t created_ms;
    char wake_s[NUM_LEN]; /* wake_seq read by the claim */
    int takeovers;        /* claims in a row that found the lease expired */
    int step_rate;        /* its workflow has a step rate: a token before each body */
} item_t;

/* A batch of commands with room for their numeric parameters and the
 * buffers it owns. */
typedef struct {
    sk_cmd_t *cmds;
    char (*nums)[4][NUM_LEN];
    int n, cap;
    msgpack_sbuffer *owned;
    int nowned;
} batch_t;

typedef enum { FENCE_EXTEND, FENCE_RELEASE, FENCE_DELETE } fence_mode_t;

/* An item's writes held for its batch's transaction (batch mode) instead
 * of committed at once, and what to count once they are. */
typedef struct {
    batch_t b;
    int used;               /* b holds this item's writes */
    sk_ctx_writes_t w;      /* what of its context they hold (handed back once durable) */
    int ends;               /* its writes end its hold on the item */
    const char *end_status; /* "completed" / "failed": they end the run */
} defer_t;

typedef struct {
    sk_exec_t *x;
    item_t *it;
    sk_ctx_t *ctx;
    defer_t *defer;       /* batch mode: writes go here, committed by the round */
    struct slot *slot;    /* batch mode: the slot holding this run */
    int lost;             /* lease lost or connection gone: stop touching this item */
    int timeout_ms;       /* the running body's step timeout */
    int64_t rate_wait_ms; /* no token of the step rate: hand back for this long */
} run_state_t;

/* One item a worker holds, in batch mode between rounds. */
typedef struct slot {
    item_t it;
    run_state_t rs;
    defer_t out;
    int held;    /* the slot holds an item */
    int started; /* its context is built (item_begin ran) */
} slot_t;

/* sk_exec.c: the run lifecycle */
int64_t sk_exec_wall_now_ms(void);
int sk_exec_check_stop(sk_exec_t *x);
void sk_exec_hold_item(sk_exec_t *x, const item_t *it);
int sk_exec_fail_refused(run_state_t *rs);
int sk_exec_item_begin(run_state_t *rs, int *rc);
int sk_exec_item_step(run_state_t *rs, int *rc);

/* sk_exec_sql.c: the SQL write layer */
void sk_exec_item_drop(item_t *it);
int sk_exec_parse_claim(sk_exec_t *x, PGresult *res, int64_t *next_due_ms);
int sk_exec_batch_init(batch_t *b, int cap);
void sk_exec_batch_free(batch_t *b);
sk_cmd_t *sk_exec_batch_add(batch_t *b, const char *stmt);
void sk_exec_param(sk_cmd_t *k, const char *v, int len, int binary);
char *sk_exec_num(batch_t *b, int slot, long long v);
int sk_exec_add_fence(batch_t *b, const item_t *it, fence_mode_t mode, int64_t ms);
int sk_exec_add_writes(batch_t *b, const item_t *it, const sk_ctx_writes_t *w);
void sk_exec_writes_committed(sk_exec_t *x, sk_ctx_t *ctx, const sk_ctx_writes_t *w);
int sk_exec_add_claim(sk_exec_t *x, batch_t *b, int max);
int sk_exec_claim_room(const sk_exec_t *x);
void sk_exec_note_refused(sk_exec_t *x, const item_t *it, const char *err);
int sk_exec_run_batch(sk_exec_t *x, batch_t *b, const item_t *it, PGresult **res);
int sk_exec_checkpoint_one(run_state_t *rs, const sk_op_t *op);
batch_t *sk_exec_out_begin(run_state_t *rs, batch_t *local, const sk_ctx_writes_t *w, int extra);
void sk_exec_out_end(run_state_t *rs, batch_t *b, int rc);
int sk_exec_release(run_state_t *rs, int64_t delay_ms, int attempt, int attempt_ops);
int sk_exec_finish(run_state_t *rs, const char *status, const char *output, size_t output_len,
                   const char *error, size_t error_len);
int sk_exec_fail_simple(run_state_t *rs, const char *name, const char *msg);
int sk_exec_load_ops(run_state_t *rs, char *err, size_t errlen);
int sk_exec_resolve_timeouts(run_state_t *rs);
int sk_exec_target_done(run_state_t *rs);

/* sk_exec_round.c: batches of items */
void sk_exec_publish_batch(sk_exec_t *x);
void sk_exec_slot_free(sk_exec_t *x, slot_t *s);
void sk_exec_take_incoming(sk_exec_t *x);
int sk_exec_round_run(sk_exec_t *x);
void sk_exec_hand_back_all(sk_exec_t *x);

#endif
