/*
 * stepkit-bench - drive one workload against a running stepkit-master and
 * report its figures (docs/bench.md).  bench/run-bench.sh calls it once per
 * workload, then once more with the pgbench ceiling.
 *
 *   chain    --runs (1000) runs of bench-chain3, started by --producers (8)
 *            threads, each with its own client;
 *   single   --runs (5000) runs of bench-single, the same way;
 *   latency  --runs (200) runs of bench-single, one after another, each
 *            timed from its start to its completion;
 *   backlog  single, while --backlog-ready ready items and --backlog-future
 *            future items of a workflow no master serves wait in the queue
 *            (inserted first, removed after); then the workers' idle CPU;
 *   burst    --runs (10000) runs of bench-single started at once by one
 *            start_runs() call; how many end in each second after its commit;
 *   history  single twice: on emptied runs and ops, then with --history
 *            (100000) finished runs loaded into them; the ratios of the two;
 *   io       --runs (1000) runs of bench-io3 (three steps sleeping 20 ms
 *            each): throughput against a pool that only slept, the
 *            workers' memory, the engine's connections;
 *   ceiling  the pgbench figures given as options, set against the lines
 *            this --session wrote to --out.
 *
 * Throughput is timed from the server's clock just before the first start
 * to the latest runs.ended_at: the durable completion of the last run.
 */
#include "sk_bench.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stepkit_client.h"

#define ERR_MAX 512

typedef enum {
    WL_CHAIN,
    WL_SINGLE,
    WL_LATENCY,
    WL_BACKLOG,
    WL_BURST,
    WL_HISTORY,
    WL_IO,
    WL_CEILING
} workload_t;

typedef struct {
    const char *name;
    const char *workflow;
    int steps_per_run;
    int default_runs;
    int default_producers;
} workload_info_t;

static const workload_info_t workloads[] = {
    [WL_CHAIN] = {"chain", "bench-chain3", 3, 1000, 8},
    [WL_SINGLE] = {"single", "bench-single", 1, 5000, 8},
    [WL_LATENCY] = {"latency", "bench-single", 1, 200, 1},
    [WL_BACKLOG] = {"backlog", "bench-single", 1, 5000, 8},
    [WL_BURST] = {"burst", "bench-single", 1, 10000, 1},
    [WL_HISTORY] = {"history", "bench-single", 1, 5000, 8},
    [WL_IO] = {"io", "bench-io3", 3, 1000, 8},
    [WL_CEILING] = {"ceiling", NULL, 0, 0, 0},
};

typedef struct {
    const char *url;
    const char *schema;
    const char *out;
    const char *session;
    const char *commit;
    workload_t workload;
    int runs;
    int producers;
    int workers;
    int warmup;
    int poll_ms;
    int settle_ms;
    int timeout_s;
    int ready_timeout_s;
    long master_pid;
    long backlog_ready, backlog_future;
    long history;       /* history: finished runs loaded before the second pass */
    long history_batch; /* ... inserted this many per statement */
    int passes;         /* history: passes per phase, the median reported */
    sk_bench_ceiling_t ceiling;
} opts_t;

/* One producer thread and the client it alone uses. */
typedef struct {
    pthread_t tid;
    const char *workflow;
    sk_client_t *client;
    int count;                /* runs to start */
    int started;              /* runs started */
    char (*ids)[SK_UUID_LEN]; /* their ids, count of them */
    int rc;
    char err[ERR_MAX];
} producer_t;

static const char *prog = "stepkit-bench";

static void usage(FILE *out)
{
    fprintf(out,
            "usage: %s --workload chain|single|latency|backlog|burst|history|io [options]\n"
            "       %s --workload ceiling --session ID --out FILE --clients N \\\n"
            "              --insert-tps X --checkpoint-tps Y --checkpoint-1c-tps Z \\\n"
            "              --checkpoint-1c-latency-ms L\n"
            "\n"
            "Workload options:\n"
            "  --database-url URL   PostgreSQL URL or key=value string (default $DATABASE_URL)\n"
            "  --schema NAME        the engine's schema (default stepkit)\n"
            "  --runs N             runs to measure (chain 1000, single 5000, latency 200,\n"
            "                       backlog 5000, burst 10000, history 5000 per pass, io 1000)\n"
            "  --producers P        starting threads (default 8; latency: 1)\n"
            "  --warmup N           runs started and finished first, not counted (default 50)\n"
            "  --workers W          the master's worker count, recorded in the results\n"
            "  --master-pid PID     the master: the largest of its children's RSS is reported\n"
            "  --poll-ms MS         completion poll interval (default 50)\n"
            "  --settle-ms MS       pause before the closing counters are read (default 1500)\n"
            "  --timeout S          give up on a workload after S seconds (default 300)\n"
            "  --ready-timeout S    wait this long for the master to accept runs (default 60)\n"
            "  --backlog-ready N    backlog: ready items of an unserved workflow (default 100000)\n"
            "  --backlog-future N   backlog: future items of it (default 100000)\n"
            "  --history N          history: finished runs loaded before the second pass\n"
            "                       (default 100000); runs and ops are emptied first, and\n"
            "                       after, in a schema marked by run-bench.sh only\n"
            "  --history-batch N    history: runs inserted per statement (default 1000000)\n"
            "  --passes N           history: passes of --runs runs on the empty tables, as\n"
            "                       many with the history, as many on the tables emptied\n"
            "                       again; medians reported (default 1)\n"
            "Results:\n"
            "  --out FILE           append one JSON line per workload to FILE\n"
            "  --session ID         ties the lines of one bench together\n"
            "  --commit SHA         the commit measured (git rev-parse --short HEAD)\n",
            prog, prog);
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die_usage(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(%s --help lists the options)\n", prog);
    exit(2);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static long parse_long(const char *opt, const char *s, long min, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        die_usage("%s: expected an integer from %ld to %ld, got \"%s\"", opt, min, max, s);
    return v;
}

static double parse_positive(const char *opt, const char *s)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0)
        die_usage("%s: expected a positive number, got \"%s\"", opt, s);
    return v;
}

/* [a-z_][a-z0-9_]{0,62}, the engine's rule for schema names. */
static int schema_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    }
    return 1;
}

/* A short label for the JSON (session, commit): printable, no quotes needed
 * but jansson escapes anyway; only the length is bounded here. */
static const char *check_label(const char *opt, const char *s)
{
    if (strlen(s) == 0 || strlen(s) >= SK_BENCH_STR_MAX)
        die_usage("%s: expected 1 to %d characters", opt, SK_BENCH_STR_MAX - 1);
    return s;
}

enum {
    OPT_URL = 256,
    OPT_SCHEMA,
    OPT_WORKLOAD,
    OPT_RUNS,
    OPT_PRODUCERS,
    OPT_WORKERS,
    OPT_WARMUP,
    OPT_MASTER_PID,
    OPT_OUT,
    OPT_SESSION,
    OPT_COMMIT,
    OPT_POLL_MS,
    OPT_SETTLE_MS,
    OPT_TIMEOUT,
    OPT_READY_TIMEOUT,
    OPT_CLIENTS,
    OPT_INSERT_TPS,
    OPT_CHECKPOINT_TPS,
    OPT_CHECKPOINT_1C_TPS,
    OPT_CHECKPOINT_1C_LAT,
    OPT_BACKLOG_READY,
    OPT_BACKLOG_FUTURE,
    OPT_HISTORY,
    OPT_HISTORY_BATCH,
    OPT_PASSES,
    OPT_HELP
};

static const struct option long_opts[] = {
    {"database-url", required_argument, NULL, OPT_URL},
    {"schema", required_argument, NULL, OPT_SCHEMA},
    {"workload", required_argument, NULL, OPT_WORKLOAD},
    {"runs", required_argument, NULL, OPT_RUNS},
    {"producers", required_argument, NULL, OPT_PRODUCERS},
    {"workers", required_argument, NULL, OPT_WORKERS},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"master-pid", required_argument, NULL, OPT_MASTER_PID},
    {"out", required_argument, NULL, OPT_OUT},
    {"session", required_argument, NULL, OPT_SESSION},
    {"commit", required_argument, NULL, OPT_COMMIT},
    {"poll-ms", required_argument, NULL, OPT_POLL_MS},
    {"settle-ms", required_argument, NULL, OPT_SETTLE_MS},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"ready-timeout", required_argument, NULL, OPT_READY_TIMEOUT},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"insert-tps", required_argument, NULL, OPT_INSERT_TPS},
    {"checkpoint-tps", required_argument, NULL, OPT_CHECKPOINT_TPS},
    {"checkpoint-1c-tps", required_argument, NULL, OPT_CHECKPOINT_1C_TPS},
    {"checkpoint-1c-latency-ms", required_argument, NULL, OPT_CHECKPOINT_1C_LAT},
    {"backlog-ready", required_argument, NULL, OPT_BACKLOG_READY},
    {"backlog-future", required_argument, NULL, OPT_BACKLOG_FUTURE},
    {"history", required_argument, NULL, OPT_HISTORY},
    {"history-batch", required_argument, NULL, OPT_HISTORY_BATCH},
    {"passes", required_argument, NULL, OPT_PASSES},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static void parse_options(int argc, char **argv, opts_t *o)
{
    int have_workload = 0;
    int c;

    memset(o, 0, sizeof *o);
    o->url = getenv("DATABASE_URL") != NULL ? getenv("DATABASE_URL") : "";
    o->schema = "stepkit";
    o->commit = "unknown";
    o->session = NULL;
    o->runs = -1;
    o->producers = -1;
    o->warmup = 50;
    o->poll_ms = 50;
    o->settle_ms = 1500;
    o->timeout_s = 300;
    o->ready_timeout_s = 60;
    o->ceiling.clients = -1;
    o->backlog_ready = 100000;
    o->backlog_future = 100000;
    o->history = 100000;
    o->history_batch = 1000000;
    o->passes = 1;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", long_opts, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "?";

        switch (c) {
        case OPT_URL:
            o->url = optarg;
            break;
        case OPT_SCHEMA:
            if (!schema_valid(optarg))
                die_usage("--schema: \"%s\" is not a valid schema name ([a-z_][a-z0-9_]{0,62})",
                          optarg);
            o->schema = optarg;
            break;
        case OPT_WORKLOAD: {
            size_t i;

            for (i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
                if (strcmp(optarg, workloads[i].name) == 0)
                    break;
            }
            if (i == sizeof workloads / sizeof workloads[0])
                die_usage(
                    "--workload: expected chain, single, latency, backlog, burst, history, io "
                    "or ceiling, got \"%s\"",
                    optarg);
            o->workload = (workload_t)i;
            have_workload = 1;
            break;
        }
        case OPT_RUNS:
            o->runs = (int)parse_long("--runs", optarg, 1, 10000000);
            break;
        case OPT_PRODUCERS:
            o->producers = (int)parse_long("--producers", optarg, 1, 256);
            break;
        case OPT_WORKERS:
            o->workers = (int)parse_long("--workers", optarg, 1, 256);
            break;
        case OPT_WARMUP:
            o->warmup = (int)parse_long("--warmup", optarg, 0, 100000);
            break;
        case OPT_MASTER_PID:
            o->master_pid = parse_long("--master-pid", optarg, 1, INT_MAX);
            break;
        case OPT_OUT:
            if (optarg[0] == '\0')
                die_usage("--out: expected a file name");
            o->out = optarg;
            break;
        case OPT_SESSION:
            o->session = check_label("--session", optarg);
            break;
        case OPT_COMMIT:
            o->commit = check_label("--commit", optarg);
            break;
        case OPT_POLL_MS:
            o->poll_ms = (int)parse_long("--poll-ms", optarg, 1, 10000);
            break;
        case OPT_SETTLE_MS:
            o->settle_ms = (int)parse_long("--settle-ms", optarg, 0, 60000);
            break;
        case OPT_TIMEOUT:
            o->timeout_s = (int)parse_long("--timeout", optarg, 1, 86400);
            break;
        case OPT_READY_TIMEOUT:
            o->ready_timeout_s = (int)parse_long("--ready-timeout", optarg, 1, 3600);
            break;
        case OPT_CLIENTS:
            o->ceiling.clients = (int)parse_long("--clients", optarg, 1, 10000);
            break;
        case OPT_INSERT_TPS:
            o->ceiling.insert_tps = parse_positive("--insert-tps", optarg);
            break;
        case OPT_CHECKPOINT_TPS:
            o->ceiling.checkpoint_tps = parse_positive("--checkpoint-tps", optarg);
            break;
        case OPT_CHECKPOINT_1C_TPS:
            o->ceiling.checkpoint_1c_tps = parse_positive("--checkpoint-1c-tps", optarg);
            break;
        case OPT_CHECKPOINT_1C_LAT:
            o->ceiling.checkpoint_1c_lat_ms = parse_positive("--checkpoint-1c-latency-ms", optarg);
            break;
        case OPT_BACKLOG_READY:
            o->backlog_ready = parse_long("--backlog-ready", optarg, 0, 100000000);
            break;
        case OPT_BACKLOG_FUTURE:
            o->backlog_future = parse_long("--backlog-future", optarg, 0, 100000000);
            break;
        case OPT_HISTORY:
            /* At most one run per millisecond of the week they are spread
             * over (time-ordered ids keep distinct milliseconds). */
            o->history = parse_long("--history", optarg, 1, 100000000);
            break;
        case OPT_HISTORY_BATCH:
            o->history_batch = parse_long("--history-batch", optarg, 1000, 10000000);
            break;
        case OPT_PASSES:
            o->passes = (int)parse_long("--passes", optarg, 1, SK_BENCH_PASSES_MAX);
            break;
        case OPT_HELP:
            usage(stdout);
            exit(0);
        case ':':
            die_usage("%s: expects a value", name);
        default:
            die_usage("unknown option %s", name);
        }
    }
    if (optind < argc)
        die_usage("unexpected argument \"%s\"", argv[optind]);
    if (!have_workload)
        die_usage("--workload is required");

    if (o->workload == WL_CEILING) {
        sk_bench_ceiling_t *ce = &o->ceiling;

        if (o->session == NULL || o->out == NULL)
            die_usage("--workload ceiling needs --session and --out");
        if (ce->clients < 0 || ce->insert_tps <= 0 || ce->checkpoint_tps <= 0 ||
            ce->checkpoint_1c_tps <= 0 || ce->checkpoint_1c_lat_ms <= 0)
            die_usage("--workload ceiling needs --clients, --insert-tps, --checkpoint-tps, "
                      "--checkpoint-1c-tps and --checkpoint-1c-latency-ms");
        snprintf(ce->session, sizeof ce->session, "%s", o->session);
        snprintf(ce->commit, sizeof ce->commit, "%s", o->commit);
        return;
    }
    if (o->ceiling.clients >= 0 || o->ceiling.insert_tps > 0 || o->ceiling.checkpoint_tps > 0 ||
        o->ceiling.checkpoint_1c_tps > 0 || o->ceiling.checkpoint_1c_lat_ms > 0)
        die_usage("the pgbench options (--clients, --insert-tps, ...) go with --workload ceiling");
    if (o->runs < 0)
        o->runs = workloads[o->workload].default_runs;
    if (o->producers < 0)
        o->producers = workloads[o->workload].default_producers;
    if (o->workload == WL_IO && o->workers <= 0)
        die_usage("--workload io needs --workers: the pool its throughput is set against");
    if (o->workload == WL_LATENCY && o->producers != 1)
        die_usage("--workload latency starts runs one after another: --producers must be 1");
    if (o->producers > o->runs)
        die_usage("--producers (%d) exceeds --runs (%d)", o->producers, o->runs);
    if (o->session == NULL)
        o->session = "adhoc";
}

/* ---- time ---------------------------------------------------------------- */

static double mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- producers ------------------------------------------------------------ */

static void *produce(void *arg)
{
    producer_t *p = arg;
    char run_id[SK_UUID_LEN], event_id[SK_UUID_LEN];

    for (p->started = 0; p->started < p->count; p->started++) {
        if (sk_client_start(p->client, p->workflow, NULL, 0, run_id, event_id, p->err,
                            sizeof p->err) != SK_OK) {
            p->rc = SK_ERROR;
            break;
        }
        memcpy(p->ids[p->started], run_id, SK_UUID_LEN);
    }
    return NULL;
}

static void close_producers(producer_t *ps, int n)
{
    for (int i = 0; i < n; i++) {
        if (ps[i].client != NULL)
            sk_client_close(ps[i].client);
        ps[i].client = NULL;
    }
}

/* Connect `n` clients and share `runs` starts among them; each writes the
 * ids of its runs into its own slice of ids[0..runs). */
static producer_t *connect_producers(const opts_t *o, const char *workflow, int runs, int n,
                                     char (*ids)[SK_UUID_LEN])
{
    producer_t *ps = calloc((size_t)n, sizeof *ps);
    char err[ERR_MAX];
    int at = 0;

    if (ps == NULL)
        fail("out of memory");
    for (int i = 0; i < n; i++) {
        ps[i].workflow = workflow;
        ps[i].count = runs / n + (i < runs % n ? 1 : 0);
        ps[i].ids = ids + at;
        at += ps[i].count;
        ps[i].client = sk_client_connect(o->url, o->schema, err, sizeof err);
        if (ps[i].client == NULL) {
            close_producers(ps, i);
            fail("producer %d: connect: %s", i, err);
        }
    }
    return ps;
}

/* Start every producer's runs concurrently; return when all are started.
 * The clients are closed (a closing backend publishes its statistics). */
static void run_producers(producer_t *ps, int n)
{
    int rc;

    for (int i = 0; i < n; i++) {
        rc = pthread_create(&ps[i].tid, NULL, produce, &ps[i]);
        if (rc != 0)
            fail("pthread_create: %s", strerror(rc));
    }
    for (int i = 0; i < n; i++)
        pthread_join(ps[i].tid, NULL);
    close_producers(ps, n);
    for (int i = 0; i < n; i++) {
        if (ps[i].rc != SK_OK)
            fail("producer %d: start %d of %d failed: %s", i, ps[i].started + 1, ps[i].count,
                 ps[i].err);
    }
}

/* ---- waiting ---------------------------------------------------------------- */

static char (*new_ids(long n))[SK_UUID_LEN]
{
    char(*ids)[SK_UUID_LEN] = calloc((size_t)n, SK_UUID_LEN);

    if (ids == NULL)
        fail("out of memory");
    return ids;
}

/*
 * Poll until every run of ids[0..n) has ended, then read their figures
 * (seconds from `since` to the latest ended_at).  Each poll reads a window
 * of the runs by primary key from the first one still pending: the cost
 * does not depend on the history in `runs`.  The interval does not bias
 * the figures: the end time is read from the runs themselves.  *polls
 * counts the statements run on `mon`.  With `conns`, each poll also counts
 * the connections open to the database and keeps the largest counts there.
 */
static void wait_done(const opts_t *o, PGconn *mon, const char *workflow,
                      const char (*ids)[SK_UUID_LEN], long n, const char *since,
                      sk_bench_progress_t *p, long *polls, sk_bench_result_t *conns)
{
    double t0 = mono_ms(), deadline = t0 + (double)o->timeout_s * 1e3;
    char err[ERR_MAX];
    long cursor = 0, failed = 0;

    for (;;) {
        if (sk_bench_db_advance(mon, ids, n, &cursor, &failed, polls, err, sizeof err) != SK_OK)
            fail("%s", err);
        if (failed > 0)
            fail("%ld run(s) of %s failed (see the master's log, or stepkit get <run>)", failed,
                 workflow);
        if (cursor == n)
            break;
        if (conns != NULL) {
            int engine, total;

            if (sk_bench_db_conns(mon, &engine, &total, err, sizeof err) != SK_OK)
                fail("%s", err);
            (*polls)++;
            if (engine > conns->db_conns_engine_max)
                conns->db_conns_engine_max = engine;
            if (total > conns->db_conns_total_max)
                conns->db_conns_total_max = total;
        }
        if (mono_ms() > deadline)
            fail("timed out after %d s: %ld of %ld run(s) of %s ended", o->timeout_s, cursor, n,
                 workflow);
        sleep_ms(o->poll_ms);
    }
    if (sk_bench_db_progress(mon, ids, n, since, p, err, sizeof err) != SK_OK)
        fail("%s", err);
    (*polls)++;
}

/* Retry one start until the master has migrated the schema and registered
 * the workflows (a client refuses an unknown workflow). */
static void wait_ready(const opts_t *o, const char *workflow)
{
    double deadline = mono_ms() + (double)o->ready_timeout_s * 1e3;
    char err[ERR_MAX] = "";
    char run_id[SK_UUID_LEN], event_id[SK_UUID_LEN];

    for (;;) {
        sk_client_t *c = sk_client_connect(o->url, o->schema, err, sizeof err);

        if (c != NULL) {
            int rc = sk_client_start(c, workflow, NULL, 0, run_id, event_id, err, sizeof err);

            sk_client_close(c);
            if (rc == SK_OK)
                return;
        }
        if (mono_ms() > deadline)
            fail("the engine did not accept a run of %s within %d s: %s", workflow,
                 o->ready_timeout_s, err);
        sleep_ms(200);
    }
}

/* Runs not counted, so that connections, caches and the tables are warm. */
static void warm_up(const opts_t *o, const char *workflow)
{
    sk_bench_progress_t p;
    long polls = 0;
    char err[ERR_MAX];
    PGconn *mon;
    char(*ids)[SK_UUID_LEN];

    wait_ready(o, workflow);
    if (o->warmup == 0)
        return;
    ids = new_ids(o->warmup);
    {
        int n = o->producers < o->warmup ? o->producers : o->warmup;
        producer_t *ps = connect_producers(o, workflow, o->warmup, n, ids);

        run_producers(ps, n);
        free(ps);
    }
    mon = sk_bench_db_connect(o->url, o->schema, err, sizeof err);
    if (mon == NULL)
        fail("%s", err);
    wait_done(o, mon, workflow, (const char(*)[SK_UUID_LEN])ids, o->warmup,
              "1970-01-01 00:00:00+00", &p, &polls, NULL);
    PQfinish(mon);
    free(ids);
}

/* Start one run and wait for its end; the milliseconds it took, on the
 * client's monotonic clock.  `nth` (0: the warm-up) is for messages; the
 * run's id goes to `id` when given. */
static double invoke_one(const opts_t *o, sk_client_t *c, const char *workflow, int nth,
                         char id[SK_UUID_LEN])
{
    sk_run_result_t res;
    char err[ERR_MAX] = "";
    double t = mono_ms(), ms;
    int rc;

    memset(&res, 0, sizeof res);
    rc = sk_client_invoke(c, workflow, NULL, 0, o->timeout_s * 1000, &res, err, sizeof err);
    ms = mono_ms() - t;
    if (rc == SK_AGAIN)
        fail("run %d of %d (%s): not ended after %d s", nth, o->runs, res.run_id, o->timeout_s);
    if (rc != SK_OK)
        fail("run %d of %d: invoke: %s", nth, o->runs, err);
    if (strcmp(res.status, "completed") != 0)
        fail("run %d of %d (%s) ended %s", nth, o->runs, res.run_id, res.status);
    if (id != NULL)
        memcpy(id, res.run_id, SK_UUID_LEN);
    sk_run_result_clear(&res);
    return ms;
}

/* ---- backlog ------------------------------------------------------------------ */

#define UNSERVED "bench-unserved"
#define IDLE_MS  3000

/* Items of a workflow no master serves, ready (due a minute ago) and
 * future (due in a day), straight into the queue: no worker may ever
 * touch them, yet each could cost every claim something.  ANALYZE after,
 * as autovacuum would do soon. */
static void backlog_load(const opts_t *o, sk_bench_result_t *r)
{
    static const char ins[] = "INSERT INTO exec_queue (run_id, workflow_id, visible_at)"
                              " SELECT gen_random_uuid(), '" UNSERVED "', now() + $2::interval"
                              "   FROM generate_series(1, $1::int8)";
    char err[ERR_MAX], n1[24], n2[24];
    const char *p1[2] = {n1, "-1 minute"}, *p2[2] = {n2, "1 day"};
    PGconn *c = sk_bench_db_connect(o->url, o->schema, err, sizeof err);

    if (c == NULL)
        fail("%s", err);
    snprintf(n1, sizeof n1, "%ld", o->backlog_ready);
    snprintf(n2, sizeof n2, "%ld", o->backlog_future);
    if (sk_bench_db_exec(c, "DELETE FROM exec_queue WHERE workflow_id = '" UNSERVED "'", 0, NULL,
                         err, sizeof err) != SK_OK ||
        sk_bench_db_exec(c, ins, 2, p1, err, sizeof err) != SK_OK ||
        sk_bench_db_exec(c, ins, 2, p2, err, sizeof err) != SK_OK ||
        sk_bench_db_exec(c, "ANALYZE exec_queue", 0, NULL, err, sizeof err) != SK_OK)
        fail("backlog: %s", err);
    PQfinish(c);
    r->has_backlog = 1;
    r->backlog_ready = o->backlog_ready;
    r->backlog_future = o->backlog_future;
}

/* The workers' CPU over IDLE_MS with nothing of theirs to do (after their
 * poll has backed off), then the backlog goes. */
static void backlog_idle_and_drop(const opts_t *o, sk_bench_result_t *r)
{
    char err[ERR_MAX];
    long t0, t1;
    double ms0, ms1;
    PGconn *c;

    r->idle_cpu_pct = NAN;
    if (o->master_pid > 0) {
        sleep_ms(1000);
        t0 = sk_bench_worker_ticks((pid_t)o->master_pid);
        ms0 = mono_ms();
        sleep_ms(IDLE_MS);
        t1 = sk_bench_worker_ticks((pid_t)o->master_pid);
        ms1 = mono_ms();
        if (t0 >= 0 && t1 >= t0)
            r->idle_cpu_pct =
                100.0 * ((double)(t1 - t0) / (double)sysconf(_SC_CLK_TCK)) / ((ms1 - ms0) / 1e3);
    }
    c = sk_bench_db_connect(o->url, o->schema, err, sizeof err);
    if (c == NULL ||
        sk_bench_db_exec(c, "DELETE FROM exec_queue WHERE workflow_id = '" UNSERVED "'", 0, NULL,
                         err, sizeof err) != SK_OK ||
        sk_bench_db_exec(c, "VACUUM ANALYZE exec_queue", 0, NULL, err, sizeof err) != SK_OK)
        fail("backlog: %s", err);
    PQfinish(c);
}

/* ---- burst -------------------------------------------------------------------- */

/* Start every run in one start_runs() statement (its rate is the batch
 * start API's); `since` gets the server's clock just after its commit. */
static void burst_start(const opts_t *o, PGconn *mon, const char *workflow,
                        char (*ids)[SK_UUID_LEN], sk_bench_result_t *r, char *since,
                        size_t since_len)
{
    char n[24];
    const char *params[2] = {workflow, n};
    double t;
    PGresult *res;

    snprintf(n, sizeof n, "%d", o->runs);
    t = mono_ms();
    res = PQexecParams(mon,
                       "SELECT run_id::text FROM start_runs($1,"
                       " array_fill('null'::jsonb, ARRAY[$2::int])) ORDER BY ord",
                       2, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_FATAL_ERROR &&
        strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE), "42883") == 0) {
        /* A schema before start_runs (006): one start_run per run, still
         * in one statement and one transaction. */
        PQclear(res);
        res = PQexecParams(mon,
                           "SELECT (start_run_msgpack($1, NULL)).run_id::text"
                           "  FROM generate_series(1, $2::int)",
                           2, NULL, params, NULL, NULL, 0);
    }
    t = mono_ms() - t;
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != o->runs)
        fail("start_runs: %s", PQresultErrorMessage(res));
    for (int i = 0; i < o->runs; i++)
        snprintf(ids[i], SK_UUID_LEN, "%s", PQgetvalue(res, i, 0));
    PQclear(res);
    r->has_burst = 1;
    r->start_runs_per_s = o->runs / (t / 1e3);
    res = PQexec(mon, "SELECT clock_timestamp()::text");
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail("clock: %s", PQresultErrorMessage(res));
    snprintf(since, since_len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void burst_figures(sk_bench_result_t *r)
{
    r->burst_first_s = r->burst_nsec > 0 ? (double)r->burst_per_s[0] : NAN;
    r->burst_min_s = NAN;
    for (int i = 0; i < r->burst_nsec; i++) {
        if (isnan(r->burst_min_s) || r->burst_per_s[i] < r->burst_min_s)
            r->burst_min_s = (double)r->burst_per_s[i];
    }
}

/* ---- history ------------------------------------------------------------------ */

#define HISTORY_DAYS 7

/*
 * The layout of uuid7_at() (sql/012_hot_path.sql) of `us`, Unix
 * microseconds: 48 bits of milliseconds, version 7, 12 bits of
 * sub-millisecond fraction, the variant and 62 random bits.  Written out
 * rather than called, so the same history loads into a schema from before
 * 012 (to compare commits).
 */
#define UUID7_OF_US                                                                                \
    "encode(substring(int8send(us / 1000) FROM 3 FOR 6)"                                           \
    " || int2send((28672 + (us % 1000) * 4096 / 1000)::int2)"                                      \
    " || substring(uuid_send(gen_random_uuid()) FROM 9 FOR 8), 'hex')::uuid"

/*
 * Runs $4..$5 of the history in one statement: finished runs of workflow
 * $1 created every $3 microseconds from $2 (Unix microseconds), each
 * ended 5 ms after it started, with the one op ($6) the workflow records.
 * Their ids come from created_at, so they are time-ordered like the
 * engine's and every index on them is filled from the left: the history
 * sits where a real one would, before the runs measured after it.
 */
static const char history_sql[] =
    "WITH r AS ("
    "  INSERT INTO runs (run_id, workflow_id, event_id, trigger_type, trigger_name, data,"
    "                    status, output, created_at, ended_at)"
    "  SELECT " UUID7_OF_US ", $1, " UUID7_OF_US ", 'invoke', $1, '\\xc0'::bytea,"
    "         'completed', '\\xc0'::bytea, 'epoch'::timestamptz + us * interval '1 microsecond',"
    "         'epoch'::timestamptz + (us + 5000) * interval '1 microsecond'"
    "    FROM (SELECT $2::int8 + i * $3::int8 AS us"
    "            FROM generate_series($4::int8, $5::int8) i) s"
    "  RETURNING run_id, created_at, ended_at)"
    " INSERT INTO ops (run_id, op_key, step_id, status, result, attempts, started_at, ended_at)"
    " SELECT run_id, $6, 's1', 'ok', '\\xc0'::bytea, 1, created_at + interval '1 ms', ended_at"
    "   FROM r";

/* Only a schema run-bench.sh made (it carries SK_BENCH_SCHEMA_MARK) may
 * have its runs and ops emptied: never a schema of yours. */
static void history_check_schema(const opts_t *o, PGconn *c)
{
    const char *params[1] = {o->schema};
    PGresult *res = PQexecParams(c,
                                 "SELECT coalesce(pg_catalog.obj_description(n.oid,"
                                 " 'pg_namespace'), '') FROM pg_catalog.pg_namespace n"
                                 " WHERE n.nspname = $1",
                                 1, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        fail("history: schema %s not found: %s", o->schema, PQresultErrorMessage(res));
    if (strcmp(PQgetvalue(res, 0, 0), SK_BENCH_SCHEMA_MARK) != 0)
        fail("history: schema %s is not one bench/run-bench.sh made (its comment is not \"%s\"):"
             " its runs and ops are not emptied",
             o->schema, SK_BENCH_SCHEMA_MARK);
    PQclear(res);
}

/* Empty runs and ops (the workers are idle: nothing is queued). */
static void history_empty(const opts_t *o)
{
    char err[ERR_MAX];
    PGconn *c = sk_bench_db_connect(o->url, o->schema, err, sizeof err);

    if (c == NULL)
        fail("%s", err);
    history_check_schema(o, c);
    if (sk_bench_db_exec(c, "SET lock_timeout = '60s'", 0, NULL, err, sizeof err) != SK_OK ||
        sk_bench_db_exec(c, "TRUNCATE runs, ops", 0, NULL, err, sizeof err) != SK_OK ||
        sk_bench_db_exec(c, "ANALYZE runs, ops", 0, NULL, err, sizeof err) != SK_OK)
        fail("history: %s", err);
    PQfinish(c);
}

/* One int8 from a one-row, one-column query. */
static long long query_i64(PGconn *c, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    char *end;
    long long v;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
        fail("%s: %s", sql, PQresultErrorMessage(res));
    errno = 0;
    v = strtoll(PQgetvalue(res, 0, 0), &end, 10);
    if (errno != 0 || *end != '\0')
        fail("%s: unexpected value %s", sql, PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

/* o->history finished runs over the HISTORY_DAYS before a minute ago, in
 * batches (each one statement, in time order), progress printed; then
 * VACUUM ANALYZE, as autovacuum would do in time. */
static void history_load(const opts_t *o, sk_bench_result_t *r)
{
    const long long span_us = (long long)HISTORY_DAYS * 86400LL * 1000000LL;
    char err[ERR_MAX], op_key[SK_BENCH_STR_MAX], a2[24], a3[24], a4[24], a5[24];
    const char *params[6] = {workloads[o->workload].workflow, a2, a3, a4, a5, op_key};
    double t0 = mono_ms(), t;
    long long now_us, step_us;
    PGconn *c = sk_bench_db_connect(o->url, o->schema, err, sizeof err);
    PGresult *res;

    if (c == NULL)
        fail("%s", err);
    history_check_schema(o, c);
    /* The op key the engine gave step s1 (the first pass recorded it). */
    res = PQexec(c, "SELECT op_key FROM ops WHERE step_id = 's1' LIMIT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1 ||
        strlen(PQgetvalue(res, 0, 0)) >= sizeof op_key)
        fail("history: no op of step s1 to copy: %s", PQresultErrorMessage(res));
    snprintf(op_key, sizeof op_key, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);

    now_us =
        query_i64(c, "SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8", 0, NULL);
    step_us = span_us / o->history;
    snprintf(a2, sizeof a2, "%lld", now_us - 60LL * 1000000LL - span_us);
    snprintf(a3, sizeof a3, "%lld", step_us);
    printf("W5 history: loading %ld finished runs (one op each) of %s, one every %.1f s over the"
           " %d days before now\n",
           o->history, params[0], (double)step_us / 1e6, HISTORY_DAYS);
    for (long from = 1; from <= o->history; from += o->history_batch) {
        long to =
            from - 1 + o->history_batch < o->history ? from - 1 + o->history_batch : o->history;

        snprintf(a4, sizeof a4, "%ld", from);
        snprintf(a5, sizeof a5, "%ld", to);
        res = PQexecParams(c, history_sql, 6, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK ||
            strtol(PQcmdTuples(res), NULL, 10) != to - from + 1)
            fail("history: runs %ld-%ld: %s", from, to, PQresultErrorMessage(res));
        PQclear(res);
        t = mono_ms();
        printf("  %ld of %ld loaded, %.1f s\n", to, o->history, (t - t0) / 1e3);
    }
    t = mono_ms();
    if (sk_bench_db_exec(c, "VACUUM ANALYZE runs, ops", 0, NULL, err, sizeof err) != SK_OK)
        fail("history: %s", err);
    printf("  VACUUM ANALYZE runs, ops: %.1f s\n", (mono_ms() - t) / 1e3);
    PQfinish(c);
    r->history_runs = o->history;
    r->history_load_s = (mono_ms() - t0) / 1e3;
}

/* CHECKPOINT before a pass: both passes then start owing no full-page
 * image, whatever the load left in flight.  0 when not allowed (it needs
 * superuser or pg_checkpoint). */
static int try_checkpoint(const opts_t *o)
{
    char err[ERR_MAX];
    PGconn *c = sk_bench_db_connect(o->url, NULL, err, sizeof err);
    PGresult *res;
    int ok;

    if (c == NULL)
        fail("%s", err);
    res = PQexec(c, "CHECKPOINT");
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

        if (state == NULL || strcmp(state, "42501") != 0)
            fail("CHECKPOINT: %s", PQresultErrorMessage(res));
    }
    PQclear(res);
    PQfinish(c);
    return ok;
}

/* ---- one workload ------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/*
 * Commits of our own inside the counted interval, besides the polls: the
 * opening counters read (its query) and the start-up transaction of the
 * closing one's backend; the start-up transaction of the monitoring
 * connection and its set_config.  docs/bench.md has the reasoning.
 */
#define OWN_COMMITS 4

/* The step bodies of bench-io3 sleep this long (bench/workflows/benchwf.c). */
#define IO_STEP_MS 20

/*
 * One pass: warm up, start o->runs runs, wait for their end, read the
 * figures into r.  With `checkpointed`, a CHECKPOINT goes between the
 * warm-up and the first start, and *checkpointed is cleared when the
 * server refused it.
 */
static void measure(const opts_t *o, sk_bench_result_t *r, int *checkpointed)
{
    const workload_info_t *w = &workloads[o->workload];
    sk_bench_counters_t before, after;
    sk_bench_progress_t p;
    producer_t *ps = NULL;
    sk_client_t *lat_client = NULL;
    double *lat = NULL;
    long polls = 0;
    char err[ERR_MAX];
    PGconn *mon;
    char(*ids)[SK_UUID_LEN] = new_ids(o->runs);
    char burst_ts[SK_BENCH_TS_MAX] = "";

    warm_up(o, w->workflow);
    if (checkpointed != NULL && !try_checkpoint(o))
        *checkpointed = 0;

    if (o->workload == WL_LATENCY) {
        lat = calloc((size_t)o->runs, sizeof *lat);
        if (lat == NULL)
            fail("out of memory");
        lat_client = sk_client_connect(o->url, o->schema, err, sizeof err);
        if (lat_client == NULL)
            fail("connect: %s", err);
        /* One invoke not counted: the client's LISTEN happens here. */
        invoke_one(o, lat_client, w->workflow, 0, NULL);
    } else if (o->workload != WL_BURST) {
        ps = connect_producers(o, w->workflow, o->runs, o->producers, ids);
    }

    /* t0: the server's clock just before the first start. */
    if (sk_bench_db_counters(o->url, &before, &r->server_version, err, sizeof err) != SK_OK)
        fail("%s", err);
    mon = sk_bench_db_connect(o->url, o->schema, err, sizeof err);
    if (mon == NULL)
        fail("%s", err);

    if (o->workload == WL_LATENCY) {
        for (int i = 0; i < o->runs; i++)
            lat[i] = invoke_one(o, lat_client, w->workflow, i + 1, ids[i]);
        sk_client_close(lat_client);
    } else if (o->workload == WL_BURST) {
        burst_start(o, mon, w->workflow, ids, r, burst_ts, sizeof burst_ts);
        polls += 2;
    } else {
        run_producers(ps, o->producers);
        free(ps);
    }

    wait_done(o, mon, w->workflow, (const char(*)[SK_UUID_LEN])ids, o->runs,
              o->workload == WL_BURST ? burst_ts : before.ts, &p, &polls,
              o->workload == WL_IO ? r : NULL);
    if (o->workload == WL_BURST) {
        /* From the runs' own ends: the progress cursor above follows start
         * order, and runs started together end in any order (the queue's
         * ties follow where their rows landed in the heap). */
        if (sk_bench_db_ended_per_s(mon, (const char(*)[SK_UUID_LEN])ids, o->runs, burst_ts,
                                    r->burst_per_s,
                                    (int)(sizeof r->burst_per_s / sizeof(r->burst_per_s[0])),
                                    &r->burst_nsec, err, sizeof err) != SK_OK)
            fail("%s", err);
        burst_figures(r);
    }
    if (p.total != o->runs)
        fail("expected %d runs of %s, found %ld", o->runs, w->workflow, p.total);
    if (p.seconds <= 0)
        fail("the runs of %s completed without an ended_at", w->workflow);
    r->seconds = p.seconds;
    r->runs_per_s = o->runs / p.seconds;
    r->steps_per_s = (double)o->runs * w->steps_per_run / p.seconds;

    r->worker_rss_kb = -1;
    r->worker_hwm_kb = -1;
    r->pool_rss_kb = -1;
    r->pool_pss_kb = -1;
    if (o->master_pid > 0 && o->workload == WL_IO)
        r->worker_count =
            sk_bench_pool_memory((pid_t)o->master_pid, &r->pool_rss_kb, &r->pool_pss_kb,
                                 &r->worker_rss_kb, &r->worker_hwm_kb);
    else if (o->master_pid > 0)
        r->worker_rss_kb =
            sk_bench_worker_rss((pid_t)o->master_pid, &r->worker_hwm_kb, &r->worker_count);

    if (o->workload == WL_LATENCY) {
        double db[3];

        qsort(lat, (size_t)o->runs, sizeof *lat, cmp_double);
        r->has_latency = 1;
        r->p50_ms = sk_bench_percentile(lat, (size_t)o->runs, 50);
        r->p95_ms = sk_bench_percentile(lat, (size_t)o->runs, 95);
        r->p99_ms = sk_bench_percentile(lat, (size_t)o->runs, 99);
        r->max_ms = lat[o->runs - 1];
        for (int i = 0; i < o->runs; i++)
            r->mean_ms += lat[i] / o->runs;
        if (sk_bench_db_latency(mon, (const char(*)[SK_UUID_LEN])ids, o->runs, db, err,
                                sizeof err) != SK_OK)
            fail("%s", err);
        polls++;
        r->db_p50_ms = db[0];
        r->db_p95_ms = db[1];
        r->db_p99_ms = db[2];
        free(lat);
    }
    /* Closing publishes this connection's statistics: its `polls` commits
     * are then all in the closing counters, and subtracted. */
    PQfinish(mon);

    /* Let the workers' backends publish their statistics (at most once a
     * second while busy) and finish what follows a completion. */
    sleep_ms(o->settle_ms);
    if (sk_bench_db_counters(o->url, &after, NULL, err, sizeof err) != SK_OK)
        fail("%s", err);

    r->write_xacts_per_run = (double)(after.next_xid - before.next_xid) / o->runs;
    r->xacts_per_run =
        (double)(after.xact_commit - before.xact_commit - OWN_COMMITS - polls) / o->runs;
    r->rollbacks_per_run = (double)(after.xact_rollback - before.xact_rollback) / o->runs;
    r->wal_bytes_per_run = (double)(after.wal_lsn - before.wal_lsn) / o->runs;
    free(ids);
}

/* The median of n values (sorted in place). */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* n passes, each one's runs/s and WAL per run appended to rps[] and wal[]
 * at *at (which moves past them); r gets the last pass's figures. */
static void history_passes(const opts_t *o, sk_bench_result_t *r, int n, double *rps, double *wal,
                           int *at)
{
    for (int i = 0; i < n; i++, (*at)++) {
        measure(o, r, &r->checkpointed);
        rps[*at] = r->runs_per_s;
        wal[*at] = r->wal_bytes_per_run;
    }
}

/* The medians of the n passes in rps[] and wal[]: a pass that shared the
 * machine with a burst of someone else's work moves the ratio less. */
static void medians(const double *rps, const double *wal, int n, double *rps_med, double *wal_med)
{
    double v[2 * SK_BENCH_PASSES_MAX];

    memcpy(v, rps, (size_t)n * sizeof *v);
    *rps_med = median(v, n);
    memcpy(v, wal, (size_t)n * sizeof *v);
    *wal_med = median(v, n);
}

/*
 * W5: the passes on empty tables come on both sides of those with the
 * history (empty, load, history, empty again), so a machine that gets
 * busier or quieter during the workload moves both phases alike instead
 * of the ratio.  The tables are emptied at the end too (10 M runs are
 * gigabytes).  r keeps the history phase's figures, with the medians.
 */
static void history_workload(const opts_t *o, sk_bench_result_t *r)
{
    sk_bench_result_t hist;
    int ne = 0, nh = 0;

    r->has_history = 1;
    r->checkpointed = 1;
    r->passes = o->passes;
    history_empty(o);
    history_passes(o, r, o->passes, r->empty_runs_per_s_pass, r->empty_wal_pass, &ne);
    history_load(o, r);
    history_passes(o, r, o->passes, r->history_runs_per_s_pass, r->history_wal_pass, &nh);
    hist = *r;
    history_empty(o);
    history_passes(o, r, o->passes, r->empty_runs_per_s_pass, r->empty_wal_pass, &ne);
    hist.checkpointed = r->checkpointed;
    memcpy(hist.empty_runs_per_s_pass, r->empty_runs_per_s_pass, sizeof r->empty_runs_per_s_pass);
    memcpy(hist.empty_wal_pass, r->empty_wal_pass, sizeof r->empty_wal_pass);
    hist.empty_seconds = r->seconds;
    hist.empty_write_xacts_per_run = r->write_xacts_per_run;
    *r = hist;
    history_empty(o);

    medians(r->empty_runs_per_s_pass, r->empty_wal_pass, ne, &r->empty_runs_per_s,
            &r->empty_wal_bytes_per_run);
    medians(r->history_runs_per_s_pass, r->history_wal_pass, nh, &r->runs_per_s,
            &r->wal_bytes_per_run);
    r->steps_per_s = r->runs_per_s;
    r->history_runs_ratio = r->runs_per_s / r->empty_runs_per_s;
    r->history_wal_ratio =
        r->empty_wal_bytes_per_run > 0 ? r->wal_bytes_per_run / r->empty_wal_bytes_per_run : NAN;
}

static void run_workload(const opts_t *o, sk_bench_result_t *r)
{
    const workload_info_t *w = &workloads[o->workload];

    memset(r, 0, sizeof *r);
    snprintf(r->session, sizeof r->session, "%s", o->session);
    snprintf(r->commit, sizeof r->commit, "%s", o->commit);
    snprintf(r->workload, sizeof r->workload, "%s", w->name);
    snprintf(r->workflow, sizeof r->workflow, "%s", w->workflow);
    r->runs = o->runs;
    r->steps_per_run = w->steps_per_run;
    r->producers = o->producers;
    r->workers = o->workers;

    if (o->workload == WL_BACKLOG)
        backlog_load(o, r);
    if (o->workload == WL_HISTORY) {
        history_workload(o, r);
    } else {
        measure(o, r, NULL);
    }
    if (o->workload == WL_IO) {
        r->has_io = 1;
        r->step_sleep_ms = IO_STEP_MS;
        r->ideal_runs_per_s = o->workers * 1000.0 / (w->steps_per_run * IO_STEP_MS);
    }
    if (o->workload == WL_BACKLOG)
        backlog_idle_and_drop(o, r);
}

int main(int argc, char **argv)
{
    opts_t o;
    sk_bench_result_t r;
    char err[ERR_MAX];

    setvbuf(stdout, NULL, _IOLBF, 0);
    parse_options(argc, argv, &o);

    if (o.workload == WL_CEILING) {
        if (sk_bench_ceiling_report(stdout, o.out, &o.ceiling, err, sizeof err) != SK_OK)
            fail("%s", err);
        return 0;
    }

    run_workload(&o, &r);
    sk_bench_print(stdout, &r);
    if (o.out != NULL && sk_bench_append_json(o.out, &r, err, sizeof err) != SK_OK)
        fail("%s", err);
    return 0;
}
