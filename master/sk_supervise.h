/*
 * sk_supervise - the master's worker slots: fork, reap, respawn with backoff.
 *
 * One ev_child watcher for pid 0 on the default loop reaps every child (and,
 * as PID 1 in a container, every orphan handed to us); libev does the
 * waitpid(), we never do.  Per slot the supervisor keeps the pid, a state,
 * when it last started and crashed, the crash count that drives the backoff
 * and a generation (forks so far).  It never writes the shared slots: the
 * worker owns its slot; the supervisor only reads heartbeats.
 *
 * A worker that dies after its first claim round trip (it connected and
 * served: its slot says `ready`) is replaced at once: whatever killed it
 * (user code, the OOM killer, an operator) is no reason to leave the pool
 * short, and its item is handed back by the next worker of the slot.  Only
 * deaths before that point are start-up failures, the kind a restart may
 * fix or a broken setup repeats.  Respawn delay after the n-th such crash
 * in a row (n from 0):
 *   min(restart_max, restart_base * 2^n) +-20% jitter;
 * n goes back to 0 once a worker of the slot gets ready (or has run
 * SK_SUP_STABLE_MS).  A failed fork counts as a crash; a SIGKILL from
 * outside before the first claim waits the current delay but is not
 * counted.  More than SK_SUP_CRASH_LIMIT counted crashes of one slot within
 * SK_SUP_CRASH_WINDOW_MS is a crash loop: the supervisor stops respawning
 * that slot and tells the master, which stops everything and exits 1.
 *
 * Hang detection: a worker publishes the deadline of the body it runs; one
 * past it (no sk_heartbeat for a step timeout) is SIGKILLed, and the death
 * recorded in shared memory as a step timeout for the slot's next worker.
 */
#ifndef SK_SUPERVISE_H
#define SK_SUPERVISE_H

#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#include "sk_heritage.h"

#define SK_SUP_CRASH_LIMIT 10 /* more crashes than this ... */
#define SK_SUP_CRASH_WINDOW_MS                                                                     \
    600000 /* ... within 10 min: crash loop (reachable under the 30 s backoff cap) */
#define SK_SUP_STABLE_MS 60000 /* running this long resets the backoff */

typedef enum {
    SK_SUP_EMPTY = 0, /* no process and none planned */
    SK_SUP_RUNNING,   /* a process is alive (until reaped) */
    SK_SUP_BACKOFF    /* crashed; waiting for the respawn timer */
} sk_sup_state_t;

/* What the master hears about a worker's exit. */
typedef enum {
    SK_SUP_EXITED,    /* exited while the master was stopping workers: expected */
    SK_SUP_CRASHED,   /* unexpected exit (or failed fork); respawn scheduled */
    SK_SUP_FATAL,     /* exit code 2: configuration or schema; never respawned */
    SK_SUP_CRASH_LOOP /* too many crashes of one slot in the window; not respawned */
} sk_sup_event_t;

typedef struct sk_sup sk_sup_t;

/* Called on the master's loop after the slot is updated. */
typedef void (*sk_sup_notify_fn)(sk_sup_t *sup, int slot, sk_sup_event_t ev, void *data);
/* Called in a new child before anything else: stop the master's watchers. */
typedef void (*sk_sup_child_fn)(void *data);

typedef struct {
    int index;
    pid_t pid; /* 0 when no process */
    sk_sup_state_t state;
    int64_t started_ms;  /* CLOCK_MONOTONIC ms of the last successful fork */
    int64_t crashed_ms;  /* of the last crash, 0 when none */
    int crash_count;     /* crashes in a row without a stable run: the backoff exponent */
    uint64_t generation; /* successful forks of this slot */
    int64_t crash_times[SK_SUP_CRASH_LIMIT + 1]; /* ring of the latest crashes */
    unsigned crash_total;                        /* crashes ever (index into the ring) */
    int stalled;                                 /* a stall was logged for heartbeat `stalled_hb` */
    int64_t stalled_hb;
    int killed_timeout; /* we SIGKILLed it for passing its step deadline */
    int64_t killed_ms;  /* when */
    ev_timer respawn;
    sk_sup_t *sup;
} sk_sup_slot_t;

typedef struct {
    struct ev_loop *loop; /* must be the default loop (ev_child) */
    int workers;
    int restart_base_ms;
    int restart_max_ms;
    sk_shm_t *shm;
    const sk_registry_t *reg;
    int alive_read_fd;  /* handed to workers */
    int alive_write_fd; /* master only: closed in every child */
    sk_sup_notify_fn notify;
    sk_sup_child_fn in_child;
    void *data;
} sk_sup_params_t;

struct sk_sup {
    sk_sup_params_t p;
    pid_t master_pid;
    int respawn; /* 0 once the master drains or stops */
    uint64_t rng;
    ev_child child;
    sk_sup_slot_t slots[SK_MAX_WORKERS];
};

/* Respawn delay after the n-th crash in a row: min(max, base * 2^n) +-20%
 * (jitter from the xorshift state *rng); at least 1 ms.  Also the HTTP
 * process's (sk_aux). */
int64_t sk_sup_backoff(uint64_t *rng, int base_ms, int max_ms, int n);
/* Set up the slots and start reaping.  No process yet. */
int sk_sup_init(sk_sup_t *sup, const sk_sup_params_t *params) __attribute__((warn_unused_result));
/* Fork every slot; a failed fork is a crash (respawn scheduled). */
void sk_sup_start(sk_sup_t *sup);
/* Draining or stopping: no more respawns, pending ones cancelled. */
void sk_sup_stop_respawning(sk_sup_t *sup);
/* Send `sig` to every live worker; returns how many were signalled. */
int sk_sup_signal_all(sk_sup_t *sup, int sig);
/* Workers not reaped yet. */
int sk_sup_live(const sk_sup_t *sup);
/* SIGKILL every worker whose running body is past its step deadline (the
 * death is recorded as a step timeout); log `event=worker_stalled` once per
 * stall of a BUSY/IDLE worker outside a body whose heartbeat is older than
 * stall_ms. */
void sk_sup_check_stalls(sk_sup_t *sup, int64_t now_ms, int64_t stall_ms);
/* Stop the watchers (the loop stays). */
void sk_sup_close(sk_sup_t *sup);

#endif
