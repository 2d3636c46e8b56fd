/*
 * sk_exec - claim queue items and execute their runs by replay.
 *
 * One claim returns the item with its run and recorded ops.  The run is
 * replayed in memory: each new op's result is committed (one transaction,
 * fenced by the item's lease) just before the next body runs, and the last
 * one together with the end of the run, which also claims the next item.
 * No transaction is open while user code runs.
 *
 * With --batch N > 1 a worker claims up to N ready items at once (as many
 * as bodies of their mean time fit in --batch-window) and runs them in
 * rounds: the next step of each, the results committed together in one
 * transaction (batch_fence checks every item's lease first, so a lost one
 * is left out without undoing the others).  One item claimed runs as
 * above.  docs/performance.md, section 8.
 *
 * The executor is split along its jobs, sharing the private header
 * sk_exec_int.h: the run lifecycle and the loop (sk_exec.c), the SQL write
 * layer (sk_exec_sql.c), batches of items run in rounds (sk_exec_round.c)
 * and what a dead worker left (sk_exec_reclaim.c).
 */
#ifndef SK_EXEC_H
#define SK_EXEC_H

#include <stdint.h>

#include "sk_config.h"
#include "sk_registry.h"
#include "sk_shm.h"
#include "sk_wconn.h"

typedef struct sk_exec sk_exec_t;

/* Returns non-zero when the worker must stop starting new steps.  Asked
 * between a run's entries and between runs, never while a handler runs
 * (it may serve the worker's event loop); a body that would start after a
 * yes yields its item instead. */
typedef int (*sk_stop_fn)(void *arg);

sk_exec_t *sk_exec_new(sk_wconn_t *conn, const sk_config_t *cfg, const sk_registry_t *reg,
                       sk_worker_slot_t *slot, sk_stop_fn stop, void *stop_arg);
void sk_exec_free(sk_exec_t *x);

/* Called when a claim took an item and saw another one ready: the worker
 * wakes an idle sibling (a burst spreads over the pool without every idle
 * worker claiming on every notification). */
void sk_exec_on_more(sk_exec_t *x, void (*more)(void *arg), void *arg);

/*
 * Claim and execute items until none is visible or the worker must stop.
 * *next_due_ms: ms until the earliest item this worker could run becomes
 * visible (-1: none queued).  *worked: whether anything was executed.
 * SK_ERROR when the connection failed (it reconnects by itself).
 */
int sk_exec_work(sk_exec_t *x, int64_t *next_due_ms, int *worked);

/*
 * Before the first claim of a new worker: the item a dead worker of this
 * slot still held (the slot shows it) is handed back in one fenced
 * statement (reclaim_item), its death counted as a failed attempt
 * (`death`: the master's record of how it ended), and the slot cleared.
 * SK_ERROR when the statement failed (kept for the next try).
 */
int sk_exec_reclaim(sk_exec_t *x, const sk_death_t *death);

#endif
