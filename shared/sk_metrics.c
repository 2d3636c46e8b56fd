/*
 * sk_metrics - counters and histograms in shared memory (see sk_metrics.h).
 */
#include "sk_metrics.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#include "sk_config.h"
#include "stepkit.h"

#define METRICS_MAGIC 0x534b4d4554524331ull /* "SKMETRC1" */
#define LINE          64                    /* cache line: one writer per line */
#define WF_NAME_MAX   128
#define OTHER         "_other" /* the label of workflows past SK_METRICS_MAX_WORKFLOWS */

/* Histogram bounds in seconds (le); one more bucket counts everything above. */
static const double step_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                     1,     2.5,  5,     10,   30,  60,   300};
static const double run_bounds[] = {0.01, 0.05, 0.1, 0.25, 0.5,  1,    2.5,   5,
                                    10,   30,   60,  300,  1800, 3600, 21600, 86400};
#define NB_STEP (sizeof(step_bounds) / sizeof(step_bounds[0]))
#define NB_RUN  (sizeof(run_bounds) / sizeof(run_bounds[0]))

/* One workflow's numbers in one worker's block.  Buckets are per bucket (not
 * cumulative) and sums in microseconds, so every update is one word. */
typedef struct {
    _Atomic uint64_t c[SK_MC_WF_COUNT];
    _Atomic uint64_t step_b[NB_STEP + 1];
    _Atomic uint64_t step_sum_us;
    _Atomic uint64_t run_b[NB_RUN + 1];
    _Atomic uint64_t run_sum_us;
} wf_block_t;

/* One worker's block: written by that worker only. */
typedef struct {
    _Atomic uint64_t c[SK_MC_WORKER_COUNT];
    wf_block_t wf[]; /* n_wf + 1: the registry's workflows, then "_other" */
} slot_block_t;

struct sk_metrics {
    /* header: master, once, before fork */
    uint64_t magic;
    uint32_t n_slots;
    uint32_t n_wf;
    uint64_t size;
    uint64_t stride; /* bytes per slot block, whole cache lines */
    uint64_t blocks; /* offset of slot block 0 */
    char names[SK_METRICS_MAX_WORKFLOWS][WF_NAME_MAX];
    /* master only */
    _Alignas(LINE) _Atomic int64_t master_heartbeat_ms;
    _Atomic uint64_t restarts[SK_RESTART_COUNT];
};

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "cross-process counters must be lock-free");
_Static_assert(sizeof(_Atomic uint64_t) == sizeof(uint64_t), "no hidden lock inside atomics");
_Static_assert(sizeof(wf_block_t) % sizeof(uint64_t) == 0, "workflow blocks are words");

static sk_metrics_t *region;  /* this process's region, inherited across fork() */
static slot_block_t *mine;    /* worker: its own block */
static const char *last_name; /* worker: the last workflow looked up, and its index */
static uint32_t last_index;

static size_t round_up(size_t n, size_t to)
{
    return (n + to - 1) / to * to;
}

static size_t slot_stride(uint32_t n_wf)
{
    return round_up(sizeof(slot_block_t) + ((size_t)n_wf + 1) * sizeof(wf_block_t), LINE);
}

size_t sk_metrics_shmem_size(int slots, size_t workflows)
{
    size_t n_wf = workflows > SK_METRICS_MAX_WORKFLOWS ? SK_METRICS_MAX_WORKFLOWS : workflows;
    size_t blocks, total;

    if (slots < 1 || slots > SK_MAX_WORKERS)
        return 0;
    if (__builtin_mul_overflow((size_t)slots, slot_stride((uint32_t)n_wf), &blocks))
        return 0;
    if (__builtin_add_overflow(round_up(sizeof(sk_metrics_t), LINE), blocks, &total))
        return 0;
    return total;
}

sk_metrics_t *sk_metrics_create(int slots, const sk_registry_t *reg)
{
    size_t nreg = reg ? sk_registry_count(reg) : 0;
    size_t size = sk_metrics_shmem_size(slots, nreg);
    sk_metrics_t *m;
    void *p;

    if (size == 0) {
        errno = EINVAL;
        return NULL;
    }
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    m = p; /* zero-filled: every counter starts at 0 */
    m->magic = METRICS_MAGIC;
    m->n_slots = (uint32_t)slots;
    m->n_wf = (uint32_t)(nreg > SK_METRICS_MAX_WORKFLOWS ? SK_METRICS_MAX_WORKFLOWS : nreg);
    m->size = size;
    m->stride = slot_stride(m->n_wf);
    m->blocks = round_up(sizeof(sk_metrics_t), LINE);
    for (uint32_t i = 0; i < m->n_wf; i++)
        snprintf(m->names[i], WF_NAME_MAX, "%s", sk_registry_at(reg, i)->id);
    region = m;
    return m;
}

void sk_metrics_destroy(sk_metrics_t *m)
{
    if (m == NULL)
        return;
    if (region == m) {
        region = NULL;
        mine = NULL;
    }
    munmap(m, m->size);
}

sk_metrics_t *sk_metrics_region(void)
{
    return region;
}

static slot_block_t *block(const sk_metrics_t *m, uint32_t i)
{
    return (slot_block_t *)(void *)((char *)(uintptr_t)m + m->blocks + (size_t)i * m->stride);
}

void sk_metrics_attach_slot(int slot)
{
    mine = NULL;
    last_name = NULL;
    if (region != NULL && region->magic == METRICS_MAGIC && slot >= 0 &&
        (uint32_t)slot < region->n_slots)
        mine = block(region, (uint32_t)slot);
}

/* One writer per word: load and store, no locked read-modify-write. */
static inline void bump(_Atomic uint64_t *p, uint64_t v)
{
    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + v,
                          memory_order_relaxed);
}

static inline uint64_t rd(const _Atomic uint64_t *p)
{
    return atomic_load_explicit(p, memory_order_relaxed);
}

/* The workflow's index, n_wf ("_other") when it has none. */
static uint32_t wf_index(const char *workflow)
{
    if (workflow == NULL)
        return region->n_wf;
    if (last_name != NULL && strcmp(workflow, last_name) == 0)
        return last_index;
    for (uint32_t i = 0; i < region->n_wf; i++) {
        if (strcmp(region->names[i], workflow) == 0) {
            last_name = region->names[i];
            last_index = i;
            return i;
        }
    }
    return region->n_wf;
}

void sk_metrics_count(sk_metric_worker_t which)
{
    if (mine != NULL && (unsigned)which < SK_MC_WORKER_COUNT)
        bump(&mine->c[which], 1);
}

void sk_metrics_count_wf(const char *workflow, sk_metric_wf_t which)
{
    if (mine != NULL && (unsigned)which < SK_MC_WF_COUNT)
        bump(&mine->wf[wf_index(workflow)].c[which], 1);
}

static size_t bucket(const double *bounds, size_t n, double v)
{
    size_t i = 0;

    while (i < n && v > bounds[i])
        i++;
    return i; /* n: above the last bound (+Inf only) */
}

static uint64_t micros(double seconds)
{
    if (!(seconds > 0))
        return 0; /* negative (clock skew between hosts) or NaN */
    if (seconds > 1e12)
        seconds = 1e12;
    return (uint64_t)(seconds * 1e6 + 0.5);
}

void sk_metrics_step(const char *workflow, sk_metric_wf_t outcome, double seconds)
{
    wf_block_t *b;

    if (mine == NULL)
        return;
    b = &mine->wf[wf_index(workflow)];
    if ((unsigned)outcome < SK_MC_WF_COUNT)
        bump(&b->c[outcome], 1);
    if (seconds < 0)
        seconds = 0;
    bump(&b->step_b[bucket(step_bounds, NB_STEP, seconds)], 1);
    bump(&b->step_sum_us, micros(seconds));
}

void sk_metrics_run_end(const char *workflow, int completed, double seconds)
{
    wf_block_t *b;

    if (mine == NULL)
        return;
    b = &mine->wf[wf_index(workflow)];
    bump(&b->c[completed ? SK_MC_RUNS_COMPLETED : SK_MC_RUNS_FAILED], 1);
    if (seconds < 0)
        seconds = 0;
    bump(&b->run_b[bucket(run_bounds, NB_RUN, seconds)], 1);
    bump(&b->run_sum_us, micros(seconds));
}

void sk_metrics_master_heartbeat(int64_t mono_ms)
{
    if (region != NULL)
        atomic_store_explicit(&region->master_heartbeat_ms, mono_ms, memory_order_release);
}

void sk_metrics_worker_restart(sk_restart_cause_t cause)
{
    if (region != NULL && (unsigned)cause < SK_RESTART_COUNT)
        bump(&region->restarts[cause], 1);
}

int64_t sk_metrics_master_heartbeat_ms(void)
{
    return region ? atomic_load_explicit(&region->master_heartbeat_ms, memory_order_acquire) : 0;
}

/* ---- the catalogue ------------------------------------------------------------------ */

static const sk_metric_doc_t docs[] = {
    {"stepkit_build_info", "gauge", "version, schema_version",
     "Always 1; the labels name the binary's version and the schema version it needs."},
    {"stepkit_ready", "gauge", "",
     "1 when /readyz answers 200 (schema current, database reachable, a worker connected, not "
     "draining)."},
    {"stepkit_draining", "gauge", "", "1 from the moment the master starts draining."},
    {"stepkit_master_heartbeat_age_seconds", "gauge", "",
     "Age of the master supervision loop's heartbeat in shared memory (/livez fails above 10 "
     "s)."},
    {"stepkit_workers_configured", "gauge", "", "Worker processes the master keeps."},
    {"stepkit_workers_connected", "gauge", "",
     "Workers connected to the database (idle or busy) with a recent heartbeat."},
    {"stepkit_database_up", "gauge", "", "1 when the HTTP process's last database read succeeded."},
    {"stepkit_runs_started_total", "counter", "workflow",
     "Runs whose first execution began in a worker of this master (a run taken over before its "
     "first step was recorded counts again)."},
    {"stepkit_runs_completed_total", "counter", "workflow",
     "Runs that ended completed, committed by a worker of this master."},
    {"stepkit_runs_failed_total", "counter", "workflow",
     "Runs that ended failed, committed by a worker of this master."},
    {"stepkit_steps_executed_total", "counter", "workflow",
     "Step bodies that ran to a successful result."},
    {"stepkit_steps_retried_total", "counter", "workflow",
     "Step bodies that failed and will run again after their retry delay."},
    {"stepkit_steps_failed_total", "counter", "workflow",
     "Steps that failed for good (attempts exhausted or a non-retryable error)."},
    {"stepkit_step_duration_seconds", "histogram", "workflow",
     "Time from the start of a step's attempt to its result, for every body execution."},
    {"stepkit_run_duration_seconds", "histogram", "workflow",
     "Run latency: from the run's creation (start_run) to its end, completed or failed."},
    {"stepkit_claims_total", "counter", "", "Work items claimed (leases taken)."},
    {"stepkit_lease_takeovers_total", "counter", "",
     "Claims that took over an expired lease of another worker (it died or stalled)."},
    {"stepkit_fence_refusals_total", "counter", "",
     "Writes refused because this worker's lease had been taken over (epoch fence)."},
    {"stepkit_wakeups_total", "counter", "source",
     "Worker wake-ups that looked for work, by source: notify (LISTEN/NOTIFY), poll (idle "
     "backoff poll), timer (an item due: retry, sleep, lease expiry)."},
    {"stepkit_worker_restarts_total", "counter", "cause",
     "Workers the master restarted, by cause: exit (exited on its own), signal (killed, for "
     "example by the OOM killer), fork_failed, step_timeout (the master killed a body past its "
     "step timeout)."},
    {"stepkit_queue_ready_items", "gauge", "workflow",
     "Work items that can be claimed now: visible, with no lease or an expired one (read from the "
     "database every 5 s)."},
    {"stepkit_queue_oldest_ready_age_seconds", "gauge", "workflow",
     "How long the oldest ready item has been visible without being claimed (0 when none)."},
    {"stepkit_queue_leased_items", "gauge", "workflow",
     "Work items held by a live lease (counted among the workflow's first 100,000 future items "
     "in due order: a lease is due at its expiry, before later sleeps and retries)."},
    {"stepkit_queue_unregistered_ready_items", "gauge", "",
     "Ready work items of workflows no master has registered: runs started before any worker "
     "serves their workflow (deploy in any order), or a typo in a workflow id. They wait until "
     "a worker that serves the workflow connects."},
    {"stepkit_runs_waiting", "gauge", "reason",
     "Suspended runs, by what they wait for: signal, child (an invoked run), timer (a sleep or "
     "a retry delay)."},
};

#define N_DOCS (sizeof(docs) / sizeof(docs[0]))

const sk_metric_doc_t *sk_metrics_doc(const char *name)
{
    for (size_t i = 0; i < N_DOCS; i++) {
        if (strcmp(docs[i].name, name) == 0)
            return &docs[i];
    }
    return NULL;
}

void sk_metrics_write_header(FILE *out, const char *name)
{
    const sk_metric_doc_t *d = sk_metrics_doc(name);

    if (d == NULL)
        return;
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help, d->name, d->type);
}

const char *sk_metrics_workflow(size_t i)
{
    if (region == NULL || i >= region->n_wf)
        return NULL;
    return region->names[i];
}

void sk_metrics_write_markdown(FILE *out)
{
    fprintf(out,
            "<!-- Generated by `stepkit-master --help-metrics` from the table in\n"
            "     shared/sk_metrics.c. Do not edit by hand: change the table and regenerate. "
            "-->\n"
            "\n"
            "# Metrics\n"
            "\n"
            "`GET /metrics` on the HTTP process (`--http`, see [operations.md](operations.md))\n"
            "answers in the Prometheus text format 0.0.4. Counters and histograms are kept by\n"
            "the workers in shared memory and count what this master's workers did since it\n"
            "started; gauges named `stepkit_queue_*` and `stepkit_runs_waiting` are read from\n"
            "the database every 5 s and are the same in every pod (aggregate them with `max`,\n"
            "not `sum`). Each of their counts stops at 100,000 (per workflow for the queue),\n"
            "so that reading them costs the same with a queue of any size: a gauge at 100000\n"
            "means at least that many. No label ever carries a run id: `workflow` takes the "
            "registered\n"
            "workflow ids (at most %d; further ones share `%s`).\n"
            "\n"
            "| Metric | Type | Labels | Description |\n"
            "|---|---|---|---|\n",
            SK_METRICS_MAX_WORKFLOWS, OTHER);
    for (size_t i = 0; i < N_DOCS; i++)
        fprintf(out, "| `%s` | %s | %s | %s |\n", docs[i].name, docs[i].type,
                docs[i].labels[0] ? docs[i].labels : "", docs[i].help);
    fprintf(out, "\nHistogram buckets (seconds, `le`): step duration");
    for (size_t i = 0; i < NB_STEP; i++)
        fprintf(out, "%s%g", i ? ", " : " ", step_bounds[i]);
    fprintf(out, "; run duration");
    for (size_t i = 0; i < NB_RUN; i++)
        fprintf(out, "%s%g", i ? ", " : " ", run_bounds[i]);
    fprintf(out, "; then `+Inf`.\n");
}

/* ---- exposition ---------------------------------------------------------------------- */

/* A label value: backslash, double quote and newline escaped (text format 0.0.4). */
static void label_value(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', out);
        if (*s == '\n') {
            fputs("\\n", out);
            continue;
        }
        fputc(*s, out);
    }
}

static const char *wf_name(const sk_metrics_t *m, uint32_t i)
{
    return i < m->n_wf ? m->names[i] : OTHER;
}

/* Sum of one per-workflow word over every worker block. */
static uint64_t sum_wf(const sk_metrics_t *m, uint32_t wf, size_t word)
{
    uint64_t n = 0;

    for (uint32_t s = 0; s < m->n_slots; s++) {
        const _Atomic uint64_t *w = (const _Atomic uint64_t *)(const void *)&block(m, s)->wf[wf];
        n += rd(&w[word]);
    }
    return n;
}

static uint64_t sum_worker(const sk_metrics_t *m, size_t which)
{
    uint64_t n = 0;

    for (uint32_t s = 0; s < m->n_slots; s++)
        n += rd(&block(m, s)->c[which]);
    return n;
}

#define WORD(field) (offsetof(wf_block_t, field) / sizeof(uint64_t))

/* The "_other" row only when something landed there. */
static int wf_shown(const sk_metrics_t *m, uint32_t wf)
{
    if (wf < m->n_wf)
        return 1;
    for (size_t w = 0; w < sizeof(wf_block_t) / sizeof(uint64_t); w++) {
        if (sum_wf(m, wf, w) != 0)
            return 1;
    }
    return 0;
}

static void wf_counter(FILE *out, const sk_metrics_t *m, const char *name, sk_metric_wf_t which)
{
    sk_metrics_write_header(out, name);
    for (uint32_t wf = 0; wf <= m->n_wf; wf++) {
        if (!wf_shown(m, wf))
            continue;
        fprintf(out, "%s{workflow=\"", name);
        label_value(out, wf_name(m, wf));
        fprintf(out, "\"} %llu\n", (unsigned long long)sum_wf(m, wf, WORD(c) + (size_t)which));
    }
}

static void histogram(FILE *out, const sk_metrics_t *m, const char *name, const double *bounds,
                      size_t nb, size_t first_word, size_t sum_word)
{
    sk_metrics_write_header(out, name);
    for (uint32_t wf = 0; wf <= m->n_wf; wf++) {
        uint64_t cum = 0;
        if (!wf_shown(m, wf))
            continue;
        for (size_t i = 0; i <= nb; i++) {
            cum += sum_wf(m, wf, first_word + i);
            fprintf(out, "%s_bucket{workflow=\"", name);
            label_value(out, wf_name(m, wf));
            if (i < nb)
                fprintf(out, "\",le=\"%g\"} %llu\n", bounds[i], (unsigned long long)cum);
            else
                fprintf(out, "\",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
        }
        fprintf(out, "%s_sum{workflow=\"", name);
        label_value(out, wf_name(m, wf));
        fprintf(out, "\"} %.6f\n", (double)sum_wf(m, wf, sum_word) / 1e6);
        fprintf(out, "%s_count{workflow=\"", name);
        label_value(out, wf_name(m, wf));
        fprintf(out, "\"} %llu\n", (unsigned long long)cum);
    }
}

int sk_metrics_render(FILE *out)
{
    static const char *const wake[] = {"notify", "poll", "timer"};
    static const char *const causes[] = {"exit", "signal", "fork_failed", "step_timeout"};
    const sk_metrics_t *m = region;

    if (m == NULL || m->magic != METRICS_MAGIC)
        return SK_ERROR;
    wf_counter(out, m, "stepkit_runs_started_total", SK_MC_RUNS_STARTED);
    wf_counter(out, m, "stepkit_runs_completed_total", SK_MC_RUNS_COMPLETED);
    wf_counter(out, m, "stepkit_runs_failed_total", SK_MC_RUNS_FAILED);
    wf_counter(out, m, "stepkit_steps_executed_total", SK_MC_STEPS_EXECUTED);
    wf_counter(out, m, "stepkit_steps_retried_total", SK_MC_STEPS_RETRIED);
    wf_counter(out, m, "stepkit_steps_failed_total", SK_MC_STEPS_FAILED);
    histogram(out, m, "stepkit_step_duration_seconds", step_bounds, NB_STEP, WORD(step_b),
              WORD(step_sum_us));
    histogram(out, m, "stepkit_run_duration_seconds", run_bounds, NB_RUN, WORD(run_b),
              WORD(run_sum_us));
    sk_metrics_write_header(out, "stepkit_claims_total");
    fprintf(out, "stepkit_claims_total %llu\n", (unsigned long long)sum_worker(m, SK_MC_CLAIMS));
    sk_metrics_write_header(out, "stepkit_lease_takeovers_total");
    fprintf(out, "stepkit_lease_takeovers_total %llu\n",
            (unsigned long long)sum_worker(m, SK_MC_LEASE_TAKEOVERS));
    sk_metrics_write_header(out, "stepkit_fence_refusals_total");
    fprintf(out, "stepkit_fence_refusals_total %llu\n",
            (unsigned long long)sum_worker(m, SK_MC_FENCE_REFUSALS));
    sk_metrics_write_header(out, "stepkit_wakeups_total");
    for (size_t i = 0; i < 3; i++)
        fprintf(out, "stepkit_wakeups_total{source=\"%s\"} %llu\n", wake[i],
                (unsigned long long)sum_worker(m, SK_MC_WAKE_NOTIFY + i));
    sk_metrics_write_header(out, "stepkit_worker_restarts_total");
    for (size_t i = 0; i < SK_RESTART_COUNT; i++)
        fprintf(out, "stepkit_worker_restarts_total{cause=\"%s\"} %llu\n", causes[i],
                (unsigned long long)rd(&m->restarts[i]));
    return ferror(out) ? SK_ERROR : SK_OK;
}
