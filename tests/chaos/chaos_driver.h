/*
 * The chaos driver's state: what it started, what it killed and when, what
 * it saw.  chaos.c fills it while the storm runs; chaos_report.c reads it,
 * with the database and the effects file, to check and print the results.
 * All times are CLOCK_REALTIME milliseconds, the clock the workflow
 * library stamps its effect lines with and PostgreSQL's now() follows.
 */
#ifndef CHAOS_DRIVER_H
#define CHAOS_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <libpq-fe.h>

#define CHAOS_MAX_MASTERS 4
#define CHAOS_MAX_WORKERS 16

typedef enum {
    K_SEQ,
    K_GROUP,
    K_PARENT,
    K_SIGNAL,
    K_EXT,
    K_SEGV,
    K_EXIT,
    K_HANG,
    K_COUNT
} chaos_kind_t;

typedef struct {
    chaos_kind_t kind;
    long long n, ms, nap;
    long long plan_ms;    /* when to start it, relative to the storm's start */
    char run_id[37];      /* "" until started */
    bool start_unsure;    /* a start failed on a broken connection: look it up first */
    bool ext_sent;        /* chaos-ext: the driver's signal reached it */
    long long started_at; /* driver clock when the start committed */
} chaos_run_t;

/* One process death the driver caused or saw. */
typedef enum { EV_WORKER_KILL, EV_MASTER_KILL, EV_MASTER_EXIT, EV_PG_RESTART } chaos_ev_kind_t;

typedef struct {
    chaos_ev_kind_t kind;
    long long t;          /* when (the kill; for PG: when the stop began) */
    long long t_mid;      /* PG: when the stop returned */
    long long t_end;      /* PG: when it accepted connections again; master: restart */
    pid_t pid;            /* the worker, or the master */
    int master;           /* master slot */
    long long respawn_ms; /* worker kill: until a new worker showed up; -1 none */
} chaos_event_t;

/* Every worker pid the sampler saw, with its master. */
typedef struct {
    pid_t pid;
    int master;
    int master_gen; /* which start of that master slot */
    long long first_seen, last_seen;
} chaos_worker_t;

typedef struct {
    /* options */
    int runs, poison, masters, workers, lease_ms, step_timeout_ms;
    int storm_s, drain_s, kill_min_ms, kill_max_ms;
    bool master_kill, pg_restart, hang_poison;
    unsigned seed;
    const char *build, *outdir, *pg_cluster;
    int batch;                  /* the masters' --batch (STEPKIT_BATCH): bodies a kill may lose */
    char step_timeout_flag[64]; /* "" when the master has none */
    bool http_flag;             /* the master has --http (its HTTP process is off here) */

    /* the plan and what happened */
    chaos_run_t *run;
    int n_run;
    chaos_event_t *ev;
    int n_ev, cap_ev;
    chaos_worker_t *wk;
    int n_wk, cap_wk;
    long long t0, storm_end, drain_end;
    double live_sum;
    long live_samples;
    int live_min;
    long done_notifies;
    int pg_url_changed;
    int orphans; /* workers still alive once every master had stopped */

    /* master slots */
    pid_t master_pid[CHAOS_MAX_MASTERS];
    int master_gen[CHAOS_MAX_MASTERS];
    long long master_started[CHAOS_MAX_MASTERS];

    char url[256];
    char effects[512];
} chaos_t;

long long chaos_now_ms(void);
const char *chaos_kind_workflow(chaos_kind_t k);
bool chaos_kind_poison(chaos_kind_t k);
long long chaos_expected(const chaos_run_t *r);

/* Checks everything and prints the report; the number of failures (0: pass). */
int chaos_report(chaos_t *c, PGconn *db);

#endif
