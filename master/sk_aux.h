/*
 * sk_aux - the master's auxiliary process: one process beside the workers
 * that serves HTTP (/livez, /readyz, /metrics; see sk_http.h), with its own
 * database connection, so the master itself keeps no socket and does no
 * database work.
 *
 * Supervised like a worker: forked with every signal blocked and the
 * master's watchers dropped in the child, reaped through its own ev_child
 * (libev also hands the exit to sk_supervise's pid-0 watcher, which ignores
 * a pid that is not a worker's), restarted after a crash with the same
 * backoff rule (min(restart_max, restart_base * 2^n) +-20%, n reset after a
 * stable minute).  It differs in two ways: its crashes never stop the master
 * (workflows go on without metrics), and exit code 2 (the address cannot be
 * bound, a configuration error) is logged once and not retried.
 *
 * The master also keeps the heartbeat that /livez reads: a 1 s timer of its
 * own loop writes CLOCK_MONOTONIC into the metrics region.
 */
#ifndef SK_AUX_H
#define SK_AUX_H

#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

typedef struct {
    struct ev_loop *loop; /* the master's default loop (ev_child) */
    int restart_base_ms;
    int restart_max_ms;
    int alive_write_fd;          /* master only: closed in the child */
    void (*in_child)(void *arg); /* in the new process: stop the master's watchers */
    int (*main)(void *arg);      /* the process's body; returns its exit code */
    void (*on_exit)(void *arg);  /* after the process was reaped and not restarted */
    void *arg;
} sk_aux_params_t;

typedef struct {
    sk_aux_params_t p;
    pid_t master_pid;
    pid_t pid; /* 0: none */
    int respawn;
    int crash_count;
    int64_t started_ms;
    uint64_t rng;
    ev_child child;
    ev_timer restart;
    ev_timer heartbeat;
} sk_aux_t;

/* Start the heartbeat and fork the process. */
void sk_aux_start(sk_aux_t *a, const sk_aux_params_t *p);
/* No more restarts; send `sig` to the process if it runs. */
void sk_aux_stop(sk_aux_t *a, int sig);
/* 1 while a process is alive (not reaped yet). */
int sk_aux_live(const sk_aux_t *a);
/* Stop the watchers (in children, and when the master exits). */
void sk_aux_close(sk_aux_t *a);

#endif
