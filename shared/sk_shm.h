/*
 * sk_shm - the one shared-memory region, made by the master before the
 * first fork (mmap MAP_SHARED|MAP_ANONYMOUS).
 *
 * Layout: header, configuration under a seqlock, master state, one slot per
 * worker.  Who writes what:
 *   header          master, once, before fork; read-only afterwards
 *   config          master only (seqlock: odd while writing); workers copy it
 *   master_state    master only; workers read it between steps (draining)
 *   slot[i]         worker i only (heartbeat, state, counters, what it holds:
 *                   item, run, op in flight, step deadline); the master reads
 *                   them, bounded, and never locks.  The in-flight part
 *                   outlives its worker: the next worker of the slot reads it
 *                   to hand a dead worker's item back, then clears it.
 *   death[i]        master only: how the last worker of slot i ended; the
 *                   next worker of the slot reads it (written before fork).
 */
#ifndef SK_SHM_H
#define SK_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sk_config.h"

#define SK_SHM_MAGIC          0x534b53484d454d31ull /* "SKSHMEM1" */
#define SK_SHM_LAYOUT_VERSION 3
#define SK_SHM_STEP_MAX       64 /* step id bytes kept in a slot (cut: messages only) */
#define SK_SHM_BATCH_MAX      64 /* items a slot lists: the most --batch allows */

typedef enum {
    SK_MASTER_INIT = 0,
    SK_MASTER_MIGRATING,
    SK_MASTER_STARTING,
    SK_MASTER_RUN,
    SK_MASTER_DRAINING,
    SK_MASTER_STOPPING,
    SK_MASTER_EXIT
} sk_master_state_t;

typedef enum {
    SK_WORKER_EMPTY = 0, /* no process */
    SK_WORKER_CONNECTING,
    SK_WORKER_IDLE,
    SK_WORKER_BUSY,
    SK_WORKER_DRAINING,
    SK_WORKER_EXITED
} sk_worker_state_t;

/* What a worker holds: plain data, copied in and out under the slot's
 * seqlock (run_seq). */
typedef struct {
    int32_t pid;        /* the worker that published it */
    int32_t epoch;      /* of the item's lease */
    int64_t item_id;    /* 0: holds no item */
    int64_t timeout_ms; /* the running body's step timeout */
    char run_id[40];    /* "" when idle */
    char op_key[41];    /* "" unless a body runs */
    char step_id[SK_SHM_STEP_MAX];
} sk_inflight_t;

/* The items a batching worker holds (--batch above 1), listed so that the
 * slot's next worker hands every one back after a death, not only the one
 * whose body ran.  Copied in and out under the slot's batch_seq. */
typedef struct {
    int32_t pid; /* the worker that published it */
    int32_t n;
    struct {
        int64_t item_id;
        int32_t epoch;
        int32_t unused;
    } items[SK_SHM_BATCH_MAX];
} sk_held_batch_t;

/* Written by its worker only; read by the master and the slot's next worker. */
typedef struct {
    _Atomic int32_t pid;
    _Atomic int32_t state;        /* sk_worker_state_t */
    _Atomic int64_t heartbeat_ms; /* CLOCK_MONOTONIC ms of last loop turn */
    _Atomic uint64_t steps_done;
    _Atomic uint64_t runs_done;
    _Atomic int32_t ready;       /* 1 once its first claim round trip came back */
    _Atomic int64_t deadline_ms; /* a running body must show progress by (monotonic); 0: none */
    _Atomic uint32_t run_seq;    /* seqlock over `held` */
    sk_inflight_t held;          /* bytes accessed with __atomic builtins only */
    _Atomic uint32_t batch_seq;  /* seqlock over `batch` */
    sk_held_batch_t batch;       /* bytes accessed with __atomic builtins only */
} sk_worker_slot_t;

typedef enum {
    SK_DEATH_NONE = 0,
    SK_DEATH_CRASH,       /* died by itself or by an outside signal */
    SK_DEATH_STEP_TIMEOUT /* killed by the master: a body passed its step deadline */
} sk_death_cause_t;

/* Written by the master only, when it reaps the slot's worker and before it
 * forks the next one; read by that next worker. */
typedef struct {
    _Atomic uint32_t seq;  /* deaths recorded in this slot */
    _Atomic int32_t pid;   /* the worker that died */
    _Atomic int32_t cause; /* sk_death_cause_t */
    _Atomic int32_t code;  /* exit code, -1 when killed by a signal */
    _Atomic int32_t signo; /* the signal, 0 when it exited */
    _Atomic int64_t at_ms; /* CLOCK_MONOTONIC ms it was reaped */
} sk_death_t;

typedef struct sk_shm sk_shm_t;

/* Bytes needed for `workers` slots (overflow-checked; 0 on overflow). */
size_t sk_shm_size(int workers);
/* Map and initialise the region; NULL on failure (errno set). */
sk_shm_t *sk_shm_create(const sk_config_t *cfg);
void sk_shm_destroy(sk_shm_t *shm);

/* Seqlock: the master publishes, workers copy a consistent snapshot. */
void sk_shm_publish_config(sk_shm_t *shm, const sk_config_t *cfg);
void sk_shm_read_config(const sk_shm_t *shm, sk_config_t *out);
uint64_t sk_shm_config_seq(const sk_shm_t *shm);

void sk_shm_set_master_state(sk_shm_t *shm, sk_master_state_t st);
sk_master_state_t sk_shm_master_state(const sk_shm_t *shm);
pid_t sk_shm_master_pid(const sk_shm_t *shm);

int sk_shm_slots(const sk_shm_t *shm);
sk_worker_slot_t *sk_shm_slot(sk_shm_t *shm, int i);
/* The master's death record of slot i. */
sk_death_t *sk_shm_death(sk_shm_t *shm, int i);

/* Worker side: publish what it holds (NULL: nothing). */
void sk_shm_slot_set_held(sk_worker_slot_t *slot, const sk_inflight_t *held);
/* Any side: a consistent copy of what the slot's worker holds.  SK_OK, or
 * SK_AGAIN (`out` zeroed) when no consistent copy came within a bounded
 * number of tries: a writer stopped or killed mid-write. */
int sk_shm_slot_held(const sk_worker_slot_t *slot, sk_inflight_t *out);
/* Worker side (batch mode): publish the items it holds (n 0: none; at most
 * SK_SHM_BATCH_MAX are listed). */
void sk_shm_slot_set_batch(sk_worker_slot_t *slot, const sk_held_batch_t *batch);
/* The slot's next worker: a consistent copy of that list, or SK_AGAIN
 * (`out` emptied) as for sk_shm_slot_held. */
int sk_shm_slot_batch(const sk_worker_slot_t *slot, sk_held_batch_t *out);
/* Worker side: publish the current run alone ("" or NULL when idle). */
void sk_shm_slot_set_run(sk_worker_slot_t *slot, const char *run_id);
/* Any side: the slot's current run ("" when idle, "unknown" when no
 * consistent copy came within a bounded number of tries: SK_AGAIN). */
int sk_shm_slot_run(const sk_worker_slot_t *slot, char *out, size_t outlen);
/* Worker side, first thing in a new process: claim the slot (pid, state
 * CONNECTING, heartbeat now, not ready, no deadline).  What the previous
 * worker held stays for sk_shm_slot_set_held(NULL) after its hand-back;
 * a sequence counter left odd (a worker killed mid-write) is made even
 * again and the torn copy dropped: returns 1 then, else 0. */
int sk_shm_slot_claim(sk_worker_slot_t *slot, pid_t pid);

/* CLOCK_MONOTONIC in milliseconds: the clock of heartbeat_ms. */
int64_t sk_shm_now_ms(void);

#endif
