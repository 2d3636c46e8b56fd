/*
 * sk_shm - the one shared-memory region, made by the master before the
 * first fork (mmap MAP_SHARED|MAP_ANONYMOUS).
 *
 * Layout: header, configuration under a seqlock, master state, one slot per
 * worker.  Who writes what:
 *   header          master, once, before fork; read-only afterwards
 *   config          master only (seqlock: odd while writing); workers copy it
 *   master_state    master only; workers read it between steps (draining)
 *   slot[i]         worker i only (heartbeat, state, counters, current run);
 *                   the master reads them, bounded, and never locks.
 */
#ifndef SK_SHM_H
#define SK_SHM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sk_config.h"

#define SK_SHM_MAGIC          0x534b53484d454d31ull /* "SKSHMEM1" */
#define SK_SHM_LAYOUT_VERSION 1

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

typedef struct {
    _Atomic int32_t pid;
    _Atomic int32_t state;        /* sk_worker_state_t */
    _Atomic int64_t heartbeat_ms; /* CLOCK_MONOTONIC ms of last loop turn */
    _Atomic uint64_t steps_done;
    _Atomic uint64_t runs_done;
    _Atomic uint32_t run_seq; /* seqlock over run_id */
    char run_id[40];          /* current run, "" when idle */
} sk_worker_slot_t;

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
/* Worker side: set the current run ("" or NULL when idle). */
void sk_shm_slot_set_run(sk_worker_slot_t *slot, const char *run_id);
/* Any side: a consistent copy of the slot's current run ("" when idle). */
void sk_shm_slot_run(const sk_worker_slot_t *slot, char *out, size_t outlen);
/* Worker side, first thing in a new process: claim the slot (pid, state
 * CONNECTING, heartbeat now, no run); the counters are left as they are. */
void sk_shm_slot_claim(sk_worker_slot_t *slot, pid_t pid);

/* CLOCK_MONOTONIC in milliseconds: the clock of heartbeat_ms. */
int64_t sk_shm_now_ms(void);

#endif
