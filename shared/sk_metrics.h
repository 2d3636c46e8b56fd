/*
 * sk_metrics - Prometheus counters and histograms kept in shared memory.
 *
 * A region of its own (one more anonymous shared mapping, made by the master
 * before the first fork, next to sk_shm's), so the metrics never change the
 * layout of the worker slots:
 *
 *   header   master, once, before fork: magic, sizes, workflow names
 *   master   master only: its loop heartbeat (for /livez) and the worker
 *            restarts by cause
 *   slot[i]  worker i only: its counters and histogram buckets, per
 *            workflow; a new worker of the same slot keeps adding to them
 *
 * One writer per block, so the hot path is a relaxed atomic load and store
 * (no lock, no read-modify-write bus lock); the HTTP process reads every
 * block with relaxed loads and sums them when it renders /metrics.  A scrape
 * may see one histogram bucket updated and its count not yet: Prometheus
 * tolerates that, and the next scrape is consistent again.
 *
 * Every process finds the region through a global set by sk_metrics_create()
 * in the master and inherited across fork().  Without a region (tests, the
 * command line client) every call is a no-op.
 */
#ifndef SK_METRICS_H
#define SK_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sk_registry.h"

#define SK_METRICS_MAX_WORKFLOWS 64 /* label values; further workflows count as "_other" */

/* Per workflow, per worker. */
typedef enum {
    SK_MC_RUNS_STARTED = 0,
    SK_MC_RUNS_COMPLETED,
    SK_MC_RUNS_FAILED,
    SK_MC_STEPS_EXECUTED,
    SK_MC_STEPS_RETRIED,
    SK_MC_STEPS_FAILED,
    SK_MC_WF_COUNT
} sk_metric_wf_t;

/* Per worker. */
typedef enum {
    SK_MC_CLAIMS = 0,
    SK_MC_LEASE_TAKEOVERS,
    SK_MC_FENCE_REFUSALS,
    SK_MC_WAKE_NOTIFY,
    SK_MC_WAKE_POLL,
    SK_MC_WAKE_TIMER,
    SK_MC_WORKER_COUNT
} sk_metric_worker_t;

/* Why the master restarted a worker. */
typedef enum {
    SK_RESTART_EXIT = 0,     /* exited with a status (non-zero, or 0 while not asked to) */
    SK_RESTART_SIGNAL,       /* killed by a signal (crash, OOM killer) */
    SK_RESTART_FORK,         /* fork() failed */
    SK_RESTART_STEP_TIMEOUT, /* killed by the master: a body passed its step timeout */
    SK_RESTART_COUNT
} sk_restart_cause_t;

typedef struct sk_metrics sk_metrics_t;

/* Bytes for `slots` worker blocks and the registry's workflows (0 on overflow). */
size_t sk_metrics_shmem_size(int slots, size_t workflows);
/* Master, before the first fork: map and initialise the region, make it
 * this process's (and its children's).  NULL on failure (errno set). */
sk_metrics_t *sk_metrics_create(int slots, const sk_registry_t *reg);
void sk_metrics_destroy(sk_metrics_t *m);
/* The region of this process (NULL when none). */
sk_metrics_t *sk_metrics_region(void);

/* Worker, first thing: the block it writes from now on. */
void sk_metrics_attach_slot(int slot);

/* Worker hot path: counters of this worker's block. */
void sk_metrics_count(sk_metric_worker_t which);
void sk_metrics_count_wf(const char *workflow, sk_metric_wf_t which);
/* A step body ended (executed, retried or failed) after `seconds`. */
void sk_metrics_step(const char *workflow, sk_metric_wf_t outcome, double seconds);
/* A run ended (completed or failed), `seconds` after it was created. */
void sk_metrics_run_end(const char *workflow, int completed, double seconds);

/* Master only. */
void sk_metrics_master_heartbeat(int64_t mono_ms);
void sk_metrics_worker_restart(sk_restart_cause_t cause);

/* Anyone: the master's last heartbeat (CLOCK_MONOTONIC ms, 0 before the first). */
int64_t sk_metrics_master_heartbeat_ms(void);

/* Render every counter and histogram of the region in the Prometheus text
 * format 0.0.4 (HELP and TYPE lines included).  SK_OK or SK_ERROR (write). */
int sk_metrics_render(FILE *out);

/* The catalogue of every metric StepKit exports, from the table in
 * sk_metrics.c (the HTTP process's gauges included), as Markdown for
 * docs/metrics.md. */
void sk_metrics_write_markdown(FILE *out);

/* The i-th workflow of the region's table (the master's registry), NULL past the end. */
const char *sk_metrics_workflow(size_t i);

/* Catalogue entries the HTTP process renders itself (gauges from the
 * database and from shared memory): name, type and help for its lines. */
typedef struct {
    const char *name;
    const char *type;   /* counter, gauge, histogram */
    const char *labels; /* label names, "" when none */
    const char *help;
} sk_metric_doc_t;

/* The entry of `name`, NULL when unknown. */
const sk_metric_doc_t *sk_metrics_doc(const char *name);
/* "# HELP name help\n# TYPE name type\n" for a catalogue entry. */
void sk_metrics_write_header(FILE *out, const char *name);

#endif
