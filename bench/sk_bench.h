/*
 * sk_bench - the parts of stepkit-bench (docs/bench.md):
 *   sk_bench_db.c      the monitoring connection: server counters read
 *                      around a workload, progress of the runs, latencies
 *                      recorded in the runs table;
 *   sk_bench_report.c  the worker's memory (/proc), the printed table, the
 *                      JSON lines of bench/results/, the ceiling ratios;
 *   stepkit-bench.c    options, producers, the workloads, main().
 */
#ifndef SK_BENCH_H
#define SK_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <libpq-fe.h>

#include "stepkit.h"        /* SK_OK, SK_ERROR */
#include "stepkit_client.h" /* SK_UUID_LEN */

#define SK_BENCH_TS_MAX     64
#define SK_BENCH_STR_MAX    128
#define SK_BENCH_PASSES_MAX 9 /* history: passes per phase */

/* The comment bench/run-bench.sh puts on the schemas it makes (its MARK):
 * the history workload empties `runs` and `ops` only in a schema that
 * carries it. */
#define SK_BENCH_SCHEMA_MARK "stepkit-bench scratch schema"

/* Server-wide counters at one instant, read on a connection of their own
 * (see sk_bench_db_counters for why). */
typedef struct {
    char ts[SK_BENCH_TS_MAX]; /* clock_timestamp() as text, in the server's zone */
    uint64_t wal_lsn;         /* pg_current_wal_lsn() as a byte position */
    uint64_t next_xid;        /* pg_snapshot_xmax(pg_current_snapshot()) */
    int64_t xact_commit;      /* pg_stat_database, this database */
    int64_t xact_rollback;
} sk_bench_counters_t;

/* Where a batch of runs stands. */
typedef struct {
    long total;     /* runs of the batch found in the runs table */
    long completed; /* ... of which completed */
    long failed;    /* ... of which failed */
    double seconds; /* max(ended_at) - since, in seconds; < 0 when no run ended */
} sk_bench_progress_t;

/* One workload's figures: what is printed and written as a JSON line. */
typedef struct {
    char session[SK_BENCH_STR_MAX]; /* ties the lines of one `make bench` together */
    char commit[SK_BENCH_STR_MAX];  /* git rev-parse --short HEAD */
    char workload[16];              /* chain, single, latency, backlog, burst, history, io */
    char workflow[32];
    int runs;
    int steps_per_run;
    int producers;
    int workers; /* the master's --workers, as given to us */
    double seconds;
    double runs_per_s;
    double steps_per_s;
    int has_latency;                        /* latency workload: the percentiles below are set */
    double p50_ms, p95_ms, p99_ms;          /* client side, start to completion */
    double max_ms, mean_ms;                 /* client side too */
    double db_p50_ms, db_p95_ms, db_p99_ms; /* runs.ended_at - runs.created_at */
    int has_backlog;                        /* backlog workload: the three below are set */
    long backlog_ready, backlog_future;     /* items of a workflow no master serves */
    double idle_cpu_pct;        /* the workers' CPU (all of them, % of one core) while idle */
    int has_burst;              /* burst workload: the figures below are set */
    double start_runs_per_s;    /* start_runs() of the whole burst in one statement */
    double burst_first_s;       /* runs ended in the first second after the commit */
    double burst_min_s;         /* the slowest whole second */
    int burst_nsec;             /* whole seconds sampled */
    long burst_per_s[600];      /* runs ended in each second */
    double xacts_per_run;       /* pg_stat_database xact_commit delta / runs */
    double write_xacts_per_run; /* transaction ids assigned / runs */
    double rollbacks_per_run;   /* xact_rollback delta / runs */
    double wal_bytes_per_run;
    long worker_rss_kb; /* largest VmRSS among the master's children; -1 unknown */
    long worker_hwm_kb; /* its VmHWM (peak) */
    int worker_count;   /* children of the master seen */
    int server_version; /* PQserverVersion */

    int has_history;       /* history workload: the figures below are set */
    long history_runs;     /* finished runs (one op each) loaded before the second pass */
    double history_load_s; /* loading them, VACUUM ANALYZE included */
    int checkpointed;      /* a CHECKPOINT preceded each pass (0: not allowed) */
    double empty_seconds;  /* the last pass on emptied runs and ops */
    double empty_runs_per_s;
    double empty_write_xacts_per_run;
    double empty_wal_bytes_per_run;
    double history_runs_ratio; /* runs/s with history / runs/s on empty tables */
    double history_wal_ratio;  /* WAL per run with history / on empty tables */
    int passes; /* with the history; twice as many on empty tables (before and after) */
    double empty_runs_per_s_pass[2 * SK_BENCH_PASSES_MAX], empty_wal_pass[2 * SK_BENCH_PASSES_MAX];
    double history_runs_per_s_pass[SK_BENCH_PASSES_MAX], history_wal_pass[SK_BENCH_PASSES_MAX];

    int has_io;              /* io workload: the figures below are set */
    int step_sleep_ms;       /* each step's body sleeps this long */
    double ideal_runs_per_s; /* workers / (steps x sleep): a pool that only sleeps */
    long pool_rss_kb;        /* sum of the workers' VmRSS; -1 unknown */
    long pool_pss_kb;        /* sum of their Pss (shared pages split); -1 unknown */
    int db_conns_engine_max; /* most engine connections seen while the runs ran */
    int db_conns_total_max;  /* most client connections to the database, ours included */
} sk_bench_result_t;

/* pgbench figures given to the ceiling report. */
typedef struct {
    char session[SK_BENCH_STR_MAX];
    char commit[SK_BENCH_STR_MAX];
    int clients;
    double insert_tps;           /* (a) at `clients` */
    double checkpoint_tps;       /* (b) at `clients` */
    double checkpoint_1c_tps;    /* (b) at one client */
    double checkpoint_1c_lat_ms; /* (b) at one client: pgbench "latency average" */
} sk_bench_ceiling_t;

/* ---- sk_bench_db.c ----------------------------------------------------- */

/* A connection for progress queries with search_path set to `schema`
 * (as a parameter).  NULL with a message in err. */
PGconn *sk_bench_db_connect(const char *url, const char *schema, char *err, size_t errlen);

/* Read the counters on a connection opened and closed for the purpose.
 * SK_OK, or SK_ERROR with err. */
int sk_bench_db_counters(const char *url, sk_bench_counters_t *c, int *server_version, char *err,
                         size_t errlen);

/* Move *cursor past the runs of ids[*cursor..n) that have ended (in
 * order, stopping at the first still pending); *failed grows by the failed
 * ones passed.  Reads runs by primary key, a window at a time; *stmts
 * counts the statements run. */
int sk_bench_db_advance(PGconn *conn, const char (*ids)[SK_UUID_LEN], long n, long *cursor,
                        long *failed, long *stmts, char *err, size_t errlen);

/* Where the runs ids[0..n) stand; seconds from `since` (text timestamptz)
 * to their latest ended_at. */
int sk_bench_db_progress(PGconn *conn, const char (*ids)[SK_UUID_LEN], long n, const char *since,
                         sk_bench_progress_t *p, char *err, size_t errlen);

/* How many of the runs ids[0..n) ended in each whole second after `since`
 * (text timestamptz), from their ended_at: per_s[0..*nsec), *nsec at most
 * max, the last partial second left out (at least one second is kept).
 * Exact whatever order the runs ended in. */
int sk_bench_db_ended_per_s(PGconn *conn, const char (*ids)[SK_UUID_LEN], long n, const char *since,
                            long *per_s, int max, int *nsec, char *err, size_t errlen);

/* p50/p95/p99 in ms of ended_at - created_at of the completed runs among
 * ids[0..n). */
int sk_bench_db_latency(PGconn *conn, const char (*ids)[SK_UUID_LEN], long n, double out[3],
                        char *err, size_t errlen);

/* Connections now open to the current database: the engine's
 * (application_name stepkit-*, the driver's and clients' excepted) and
 * all client backends.  SK_OK or SK_ERROR with err. */
int sk_bench_db_conns(PGconn *conn, int *engine, int *total, char *err, size_t errlen);

/* One statement, its result dropped.  SK_OK or SK_ERROR with err. */
int sk_bench_db_exec(PGconn *conn, const char *sql, int nparams, const char *const *params,
                     char *err, size_t errlen);

/* ---- sk_bench_report.c ------------------------------------------------- */

/* The largest VmRSS (and that process's VmHWM) among the children of
 * `master`; *count gets how many children were seen.  -1 when none. */
long sk_bench_worker_rss(pid_t master, long *hwm_kb, int *count);

/* The workers of `master` (its children but the HTTP process): the sum
 * of their VmRSS and of their Pss (smaps_rollup; -1 when unreadable), the
 * largest VmRSS and its VmHWM.  Returns how many were seen (0: none, the
 * figures -1). */
int sk_bench_pool_memory(pid_t master, long *sum_rss_kb, long *sum_pss_kb, long *max_rss_kb,
                         long *max_hwm_kb);

/* CPU time (user + system, in clock ticks) of the children of `master`,
 * summed; -1 when none was found. */
long sk_bench_worker_ticks(pid_t master);

/* Nearest-rank percentile (0 < p <= 100) of `n` sorted values. */
double sk_bench_percentile(const double *sorted, size_t n, double p);

void sk_bench_print(FILE *out, const sk_bench_result_t *r);

/* Append one JSON line to `path` (one write(2), O_APPEND). */
int sk_bench_append_json(const char *path, const sk_bench_result_t *r, char *err, size_t errlen);

/* Read the lines of `path` written for c->session, print the pgbench
 * figures and the ratios against the aims, append the ceiling line.
 * Never fails for an aim that is not met; SK_ERROR only when a file
 * cannot be read or written. */
int sk_bench_ceiling_report(FILE *out, const char *path, const sk_bench_ceiling_t *c, char *err,
                            size_t errlen);

#endif
