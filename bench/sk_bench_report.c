/*
 * sk_bench_report - the worker's memory, the printed table, the JSON lines
 * of bench/results/ and the ratios to the pgbench ceiling.
 */
#include "sk_bench.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h> /* isfinite, isnan, NAN: macros, no libm */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

/* ---- the worker's memory ----------------------------------------------------- */

/* The parent pid from /proc/<pid>/stat ("pid (comm) state ppid ..."; comm
 * may hold spaces and parentheses, so read after the last ')'). */
static long parent_of(const char *pid)
{
    char path[64], buf[512];
    FILE *f;
    size_t n;
    char *p;
    long ppid;

    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL || sscanf(p + 1, " %*c %ld", &ppid) != 1)
        return -1;
    return ppid;
}

/* VmRSS and VmHWM (kB) from /proc/<pid>/status. */
static int memory_of(const char *pid, long *rss_kb, long *hwm_kb)
{
    char path[64], line[256];
    FILE *f;

    snprintf(path, sizeof path, "/proc/%s/status", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return SK_ERROR;
    *rss_kb = -1;
    *hwm_kb = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss_kb = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm_kb = strtol(line + 6, NULL, 10);
    }
    fclose(f);
    return *rss_kb >= 0 ? SK_OK : SK_ERROR;
}

long sk_bench_worker_rss(pid_t master, long *hwm_kb, int *count)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long best = -1, rss, hwm;

    *count = 0;
    *hwm_kb = -1;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]) || parent_of(e->d_name) != (long)master)
            continue;
        if (memory_of(e->d_name, &rss, &hwm) != SK_OK)
            continue;
        (*count)++;
        if (rss > best) {
            best = rss;
            *hwm_kb = hwm;
        }
    }
    closedir(d);
    return best;
}

/* A "Name:   value kB" field of a /proc file (status, smaps_rollup), -1
 * when absent or unreadable. */
static long proc_kb(const char *pid, const char *file, const char *field)
{
    char path[320], line[256];
    size_t flen = strlen(field);
    long v = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%s/%s", pid, file);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            v = strtol(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* The HTTP process names itself (prctl PR_SET_NAME); workers keep the
 * master's name. */
static int is_http(const char *pid)
{
    char path[300], comm[32] = "";
    FILE *f;

    snprintf(path, sizeof path, "/proc/%s/comm", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return 0;
    if (fgets(comm, sizeof comm, f) == NULL)
        comm[0] = '\0';
    fclose(f);
    comm[strcspn(comm, "\n")] = '\0';
    return strcmp(comm, "stepkit-http") == 0;
}

int sk_bench_pool_memory(pid_t master, long *sum_rss_kb, long *sum_pss_kb, long *max_rss_kb,
                         long *max_hwm_kb)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long rss, hwm, pss;
    int n = 0;

    *sum_rss_kb = *sum_pss_kb = *max_rss_kb = *max_hwm_kb = -1;
    if (d == NULL)
        return 0;
    *sum_rss_kb = *sum_pss_kb = 0;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]) || parent_of(e->d_name) != (long)master ||
            is_http(e->d_name) || memory_of(e->d_name, &rss, &hwm) != SK_OK)
            continue;
        n++;
        *sum_rss_kb += rss;
        pss = proc_kb(e->d_name, "smaps_rollup", "Pss");
        if (pss < 0 || *sum_pss_kb < 0)
            *sum_pss_kb = -1; /* one unreadable: no sum */
        else
            *sum_pss_kb += pss;
        if (rss > *max_rss_kb) {
            *max_rss_kb = rss;
            *max_hwm_kb = hwm;
        }
    }
    closedir(d);
    if (n == 0)
        *sum_rss_kb = *sum_pss_kb = -1;
    return n;
}

/* utime + stime (fields 14 and 15 of /proc/<pid>/stat), -1 if unreadable. */
static long ticks_of(const char *pid)
{
    char path[64], buf[1024];
    FILE *f;
    size_t n;
    char *p;
    unsigned long ut, st;

    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    f = fopen(path, "r");
    if (f == NULL)
        return -1;
    n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    p = strrchr(buf, ')');
    if (p == NULL ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return -1;
    return (long)(ut + st);
}

long sk_bench_worker_ticks(pid_t master)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long sum = -1, t;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (!isdigit((unsigned char)e->d_name[0]) || parent_of(e->d_name) != (long)master)
            continue;
        t = ticks_of(e->d_name);
        if (t >= 0)
            sum = (sum < 0 ? 0 : sum) + t;
    }
    closedir(d);
    return sum;
}

double sk_bench_percentile(const double *sorted, size_t n, double p)
{
    double exact = p / 100.0 * (double)n;
    size_t rank;

    if (n == 0)
        return -1;
    rank = (size_t)exact; /* ceil, without libm */
    if ((double)rank < exact)
        rank++;
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return sorted[rank - 1];
}

/* ---- the table ------------------------------------------------------------ */

static const char *label_of(const char *workload)
{
    if (strcmp(workload, "chain") == 0)
        return "W1 chain";
    if (strcmp(workload, "single") == 0)
        return "W2 single";
    if (strcmp(workload, "latency") == 0)
        return "W3 latency";
    if (strcmp(workload, "backlog") == 0)
        return "W4 backlog";
    if (strcmp(workload, "history") == 0)
        return "W5 history";
    if (strcmp(workload, "burst") == 0)
        return "W6 burst";
    if (strcmp(workload, "io") == 0)
        return "W7 io";
    return workload;
}

/* One phase of the history workload, with each pass's runs/s when several. */
static void print_phase(FILE *out, const char *what, double rps, double wal, double wx,
                        const double *pass_rps, int passes)
{
    fprintf(out, "  %-14s %.1f runs/s, %.0f WAL bytes per run, %.2f write xacts per run", what, rps,
            wal, wx);
    for (int i = 0; passes > 1 && i < passes; i++)
        fprintf(out, "%s%.0f", i == 0 ? " (each pass: " : " ", pass_rps[i]);
    fprintf(out, "%s\n", passes > 1 ? ")" : "");
}

void sk_bench_print(FILE *out, const sk_bench_result_t *r)
{
    fprintf(out, "%s: %d runs of %s (%d step%s each), %d producer%s", label_of(r->workload),
            r->runs, r->workflow, r->steps_per_run, r->steps_per_run == 1 ? "" : "s", r->producers,
            r->producers == 1 ? "" : "s");
    if (r->workers > 0)
        fprintf(out, ", %d workers", r->workers);
    fprintf(out, "\n");
    fprintf(out, "  %-14s %.3f s, first start to durable completion of the last run\n", "time",
            r->seconds);
    fprintf(out, "  %-14s %.1f runs/s, %.1f steps/s\n", "throughput", r->runs_per_s,
            r->steps_per_s);
    if (r->has_latency) {
        fprintf(out,
                "  %-14s p50 %.2f ms, p95 %.2f ms, p99 %.2f ms (client: start to completion)\n",
                "latency", r->p50_ms, r->p95_ms, r->p99_ms);
        fprintf(out, "  %-14s mean %.2f ms, max %.2f ms\n", "", r->mean_ms, r->max_ms);
        fprintf(out, "  %-14s p50 %.2f ms, p95 %.2f ms, p99 %.2f ms (runs.ended_at - created_at)\n",
                "", r->db_p50_ms, r->db_p95_ms, r->db_p99_ms);
    }
    if (r->has_backlog)
        fprintf(out,
                "  %-14s %ld ready and %ld future items of a workflow no master serves; "
                "workers idle after: %.1f%% of a core (all of them)\n",
                "backlog", r->backlog_ready, r->backlog_future, r->idle_cpu_pct);
    if (r->has_burst) {
        fprintf(out, "  %-14s start_runs: %.0f runs/s (all in one statement)\n", "burst",
                r->start_runs_per_s);
        fprintf(out,
                "  %-14s drained %.0f runs/s in the first second, %.0f in the slowest; per s:", "",
                r->burst_first_s, r->burst_min_s);
        for (int i = 0; i < r->burst_nsec && i < 30; i++)
            fprintf(out, " %ld", r->burst_per_s[i]);
        fprintf(out, "%s\n", r->burst_nsec > 30 ? " ..." : "");
    }
    if (r->has_history) {
        fprintf(out,
                "  %-14s %d pass%s on empty tables, %d with the history, %d on the tables "
                "emptied again;\n  %-14s medians of runs/s and WAL per run\n",
                "", r->passes, r->passes == 1 ? "" : "es", r->passes, r->passes, "");
        print_phase(out, "empty tables", r->empty_runs_per_s, r->empty_wal_bytes_per_run,
                    r->empty_write_xacts_per_run, r->empty_runs_per_s_pass, 2 * r->passes);
        print_phase(out, "with history", r->runs_per_s, r->wal_bytes_per_run,
                    r->write_xacts_per_run, r->history_runs_per_s_pass, r->passes);
        fprintf(out, "  %-14s %ld finished runs (one op each) loaded in %.1f s; a CHECKPOINT %s\n",
                "", r->history_runs, r->history_load_s,
                r->checkpointed ? "before each pass"
                                : "was not allowed (the WAL ratio is noisier)");
        fprintf(out, "  %-14s runs/s %.3f (aim >= 0.90), WAL per run %.3f (aim <= 1.30)\n",
                "history/empty", r->history_runs_ratio, r->history_wal_ratio);
    }
    if (r->has_io) {
        fprintf(out,
                "  %-14s %d ms per step body: a pool that only slept would do %.1f runs/s; "
                "%.0f%% of that\n",
                "io", r->step_sleep_ms, r->ideal_runs_per_s,
                100.0 * r->runs_per_s / r->ideal_runs_per_s);
        if (r->pool_rss_kb >= 0)
            fprintf(out, "  %-14s RSS %ld kB summed over %d workers (Pss %ld kB), largest %ld kB\n",
                    "pool memory", r->pool_rss_kb, r->worker_count, r->pool_pss_kb,
                    r->worker_rss_kb);
        fprintf(out, "  %-14s at most %d of the engine's, %d in all to the database\n",
                "connections", r->db_conns_engine_max, r->db_conns_total_max);
    }
    fprintf(out, "  %-14s %.2f write (transaction ids), %.2f commits, %.3f rollbacks per run\n",
            "transactions", r->write_xacts_per_run, r->xacts_per_run, r->rollbacks_per_run);
    fprintf(out, "  %-14s %.0f bytes per run\n", "WAL", r->wal_bytes_per_run);
    if (r->worker_rss_kb >= 0)
        fprintf(out, "  %-14s %ld kB (peak %ld kB; the largest of the master's %d child%s)\n",
                "worker RSS", r->worker_rss_kb, r->worker_hwm_kb, r->worker_count,
                r->worker_count == 1 ? "" : "ren");
    else
        fprintf(out, "  %-14s unknown (no --master-pid, or no child found)\n", "worker RSS");
}

/* ---- JSON lines ------------------------------------------------------------- */

static void now_iso(char *buf, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A number, or null when there is none (json_dumps rounds it to
 * JSON_REAL_PRECISION significant digits). */
static json_t *real(double v)
{
    if (!isfinite(v))
        return json_null();
    return json_real(v);
}

/* An array of n numbers; NULL when out of memory. */
static json_t *reals(const double *v, int n)
{
    json_t *a = json_array();

    for (int i = 0; a != NULL && i < n; i++) {
        if (json_array_append_new(a, real(v[i])) != 0) {
            json_decref(a);
            a = NULL;
        }
    }
    return a;
}

static int set(json_t *o, const char *key, json_t *v)
{
    return v != NULL && json_object_set_new(o, key, v) == 0 ? SK_OK : SK_ERROR;
}

/* The fields every line shares. */
static json_t *line_new(const char *session, const char *commit, const char *workload)
{
    char ts[32], host[256];
    json_t *o = json_object();
    int rc = SK_OK;

    if (o == NULL)
        return NULL;
    now_iso(ts, sizeof ts);
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = '\0';
    rc |= set(o, "ts", json_string(ts));
    rc |= set(o, "session", json_string(session));
    rc |= set(o, "commit", json_string(commit));
    rc |= set(o, "host", json_string(host));
    rc |= set(o, "workload", json_string(workload));
    if (rc != SK_OK) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Append `o` as one line with one write(2). */
static int append_line(const char *path, const json_t *o, char *err, size_t errlen)
{
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    size_t len;
    ssize_t w;
    int fd, rc = SK_ERROR;

    if (text == NULL) {
        snprintf(err, errlen, "%s: cannot encode the JSON line", path);
        return SK_ERROR;
    }
    len = strlen(text);
    text[len] = '\n'; /* replaces the NUL: written by length */
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        goto done;
    }
    w = write(fd, text, len + 1);
    if (w != (ssize_t)(len + 1))
        snprintf(err, errlen, "%s: %s", path, w < 0 ? strerror(errno) : "short write");
    else
        rc = SK_OK;
    if (close(fd) != 0 && rc == SK_OK) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        rc = SK_ERROR;
    }
done:
    free(text);
    return rc;
}

int sk_bench_append_json(const char *path, const sk_bench_result_t *r, char *err, size_t errlen)
{
    json_t *o = line_new(r->session, r->commit, r->workload);
    int rc = SK_OK;

    if (o == NULL) {
        snprintf(err, errlen, "out of memory");
        return SK_ERROR;
    }
    rc |= set(o, "workflow", json_string(r->workflow));
    rc |= set(o, "runs", json_integer(r->runs));
    rc |= set(o, "steps_per_run", json_integer(r->steps_per_run));
    rc |= set(o, "producers", json_integer(r->producers));
    rc |= set(o, "workers", r->workers > 0 ? json_integer(r->workers) : json_null());
    rc |= set(o, "server_version", json_integer(r->server_version));
    rc |= set(o, "seconds", real(r->seconds));
    rc |= set(o, "runs_per_s", real(r->runs_per_s));
    rc |= set(o, "steps_per_s", real(r->steps_per_s));
    if (r->has_latency) {
        rc |= set(o, "p50_ms", real(r->p50_ms));
        rc |= set(o, "p95_ms", real(r->p95_ms));
        rc |= set(o, "p99_ms", real(r->p99_ms));
        rc |= set(o, "mean_ms", real(r->mean_ms));
        rc |= set(o, "max_ms", real(r->max_ms));
        rc |= set(o, "db_p50_ms", real(r->db_p50_ms));
        rc |= set(o, "db_p95_ms", real(r->db_p95_ms));
        rc |= set(o, "db_p99_ms", real(r->db_p99_ms));
    }
    if (r->has_backlog) {
        rc |= set(o, "backlog_ready", json_integer(r->backlog_ready));
        rc |= set(o, "backlog_future", json_integer(r->backlog_future));
        rc |= set(o, "idle_cpu_pct", real(r->idle_cpu_pct));
    }
    if (r->has_burst) {
        json_t *a = json_array();
        for (int i = 0; a != NULL && i < r->burst_nsec; i++)
            rc |= json_array_append_new(a, json_integer(r->burst_per_s[i]));
        rc |= set(o, "start_runs_per_s", real(r->start_runs_per_s));
        rc |= set(o, "burst_first_s", real(r->burst_first_s));
        rc |= set(o, "burst_min_s", real(r->burst_min_s));
        rc |= set(o, "burst_per_s", a != NULL ? a : json_null());
    }
    if (r->has_history) {
        rc |= set(o, "history_runs", json_integer(r->history_runs));
        rc |= set(o, "history_load_s", real(r->history_load_s));
        rc |= set(o, "checkpointed", json_boolean(r->checkpointed));
        rc |= set(o, "empty_seconds", real(r->empty_seconds));
        rc |= set(o, "empty_runs_per_s", real(r->empty_runs_per_s));
        rc |= set(o, "empty_write_xacts_per_run", real(r->empty_write_xacts_per_run));
        rc |= set(o, "empty_wal_bytes_per_run", real(r->empty_wal_bytes_per_run));
        rc |= set(o, "history_runs_ratio", real(r->history_runs_ratio));
        rc |= set(o, "history_wal_ratio", real(r->history_wal_ratio));
        rc |= set(o, "passes", json_integer(r->passes));
        rc |= set(o, "empty_runs_per_s_passes", reals(r->empty_runs_per_s_pass, 2 * r->passes));
        rc |= set(o, "empty_wal_bytes_per_run_passes", reals(r->empty_wal_pass, 2 * r->passes));
        rc |= set(o, "history_runs_per_s_passes", reals(r->history_runs_per_s_pass, r->passes));
        rc |= set(o, "history_wal_bytes_per_run_passes", reals(r->history_wal_pass, r->passes));
    }
    if (r->has_io) {
        rc |= set(o, "step_sleep_ms", json_integer(r->step_sleep_ms));
        rc |= set(o, "ideal_runs_per_s", real(r->ideal_runs_per_s));
        rc |= set(o, "io_efficiency", real(r->runs_per_s / r->ideal_runs_per_s));
        rc |=
            set(o, "pool_rss_kb", r->pool_rss_kb >= 0 ? json_integer(r->pool_rss_kb) : json_null());
        rc |=
            set(o, "pool_pss_kb", r->pool_pss_kb >= 0 ? json_integer(r->pool_pss_kb) : json_null());
        rc |= set(o, "pool_workers", json_integer(r->worker_count));
        rc |= set(o, "db_connections_engine", json_integer(r->db_conns_engine_max));
        rc |= set(o, "db_connections_total", json_integer(r->db_conns_total_max));
    }
    rc |= set(o, "xacts_per_run", real(r->xacts_per_run));
    rc |= set(o, "write_xacts_per_run", real(r->write_xacts_per_run));
    rc |= set(o, "rollbacks_per_run", real(r->rollbacks_per_run));
    rc |= set(o, "wal_bytes_per_run", real(r->wal_bytes_per_run));
    rc |= set(o, "worker_rss_kb",
              r->worker_rss_kb >= 0 ? json_integer(r->worker_rss_kb) : json_null());
    rc |= set(o, "worker_hwm_kb",
              r->worker_hwm_kb >= 0 ? json_integer(r->worker_hwm_kb) : json_null());
    if (rc != SK_OK) {
        json_decref(o);
        snprintf(err, errlen, "out of memory");
        return SK_ERROR;
    }
    rc = append_line(path, o, err, errlen);
    json_decref(o);
    return rc;
}

/* ---- the ceiling ---------------------------------------------------------- */

/* The last line of `path` for `session` and `workload` (a new reference),
 * or NULL; when `all` is given, every such line is appended to it too
 * (W7 writes one line per pool size). */
static json_t *find_line(const char *path, const char *session, const char *workload, char *err,
                         size_t errlen, int *failed, json_t *all)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    json_t *found = NULL;

    if (f == NULL) {
        if (errno != ENOENT) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            *failed = 1;
        }
        return NULL;
    }
    while (getline(&line, &cap, f) != -1) {
        json_t *o = json_loads(line, 0, NULL);
        const char *s = json_string_value(json_object_get(o, "session"));
        const char *w = json_string_value(json_object_get(o, "workload"));

        if (s != NULL && w != NULL && strcmp(s, session) == 0 && strcmp(w, workload) == 0) {
            if (all != NULL && json_array_append(all, o) != 0) {
                snprintf(err, errlen, "out of memory");
                *failed = 1;
            }
            json_decref(found);
            found = o;
        } else {
            json_decref(o);
        }
    }
    free(line);
    fclose(f);
    return found;
}

/* A number field of a line; NAN when absent. */
static double number(const json_t *line, const char *key)
{
    const json_t *v = json_object_get(line, key);

    return json_is_number(v) ? json_number_value(v) : NAN;
}

typedef struct {
    const char *what;
    const char *key; /* JSON key of the ratio */
    double value;    /* NAN: the workload's line is missing */
    int at_most;     /* 1: value <= aim, 0: value >= aim */
    double aim;
} aim_t;

#define NAIMS 10

/* W7's lines boiled down for the ceiling line: one object per pool size. */
static json_t *w7_summary(const json_t *lines)
{
    static const char *const keys[] = {
        "workers",     "runs_per_s",    "io_efficiency",        "pool_rss_kb",
        "pool_pss_kb", "worker_rss_kb", "db_connections_engine"};
    json_t *a = json_array(), *l;
    size_t i;

    if (a == NULL)
        return NULL;
    json_array_foreach(lines, i, l)
    {
        json_t *e = json_object();

        if (e == NULL || json_array_append_new(a, e) != 0)
            goto failed;
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
            json_t *v = json_object_get(l, keys[k]);

            if (json_object_set_new(e, keys[k], v != NULL ? json_incref(v) : json_null()) != 0)
                goto failed;
        }
    }
    return a;
failed:
    json_decref(a);
    return NULL;
}

int sk_bench_ceiling_report(FILE *out, const char *path, const sk_bench_ceiling_t *c, char *err,
                            size_t errlen)
{
    int failed = 0, met = 0, known = 0, rc = SK_OK;
    json_t *w7 = json_array();
    json_t *w1 = find_line(path, c->session, "chain", err, errlen, &failed, NULL);
    json_t *w2 = failed ? NULL : find_line(path, c->session, "single", err, errlen, &failed, NULL);
    json_t *w3 = failed ? NULL : find_line(path, c->session, "latency", err, errlen, &failed, NULL);
    json_t *w4 = failed ? NULL : find_line(path, c->session, "backlog", err, errlen, &failed, NULL);
    json_t *w5 = failed ? NULL : find_line(path, c->session, "history", err, errlen, &failed, NULL);
    json_t *w6 = failed ? NULL : find_line(path, c->session, "burst", err, errlen, &failed, NULL);
    json_t *w7last = NULL, *o = NULL;
    aim_t aims[NAIMS];

    if (w7 == NULL) {
        snprintf(err, errlen, "out of memory");
        failed = 1;
    }
    if (!failed)
        w7last = find_line(path, c->session, "io", err, errlen, &failed, w7);
    if (failed) {
        rc = SK_ERROR;
        goto done;
    }

    aims[0] = (aim_t){"W1 steps/s / (b) tps", "w1_steps_per_s_ratio",
                      number(w1, "steps_per_s") / c->checkpoint_tps, 0, 0.70};
    aims[1] = (aim_t){"W2 runs/s / (b) tps", "w2_runs_per_s_ratio",
                      number(w2, "runs_per_s") / c->checkpoint_tps, 0, 0.55};
    aims[2] = (aim_t){"W3 p50 / (b) 1-client latency", "w3_p50_ratio",
                      number(w3, "p50_ms") / c->checkpoint_1c_lat_ms, 1, 1.5};
    aims[3] = (aim_t){"W1 write transactions per run", "w1_write_xacts_per_run",
                      number(w1, "write_xacts_per_run"), 1, 4};
    /* Issue 8's aims for a backlog of other work (docs/performance.md). */
    aims[4] = (aim_t){"W4 backlog runs/s / W2 runs/s", "w4_backlog_ratio",
                      number(w4, "runs_per_s") / number(w2, "runs_per_s"), 0, 0.9};
    aims[5] = (aim_t){"W4 idle workers' CPU, % of a core", "w4_idle_cpu_pct",
                      number(w4, "idle_cpu_pct"), 1, 2};
    aims[6] = (aim_t){"W6 burst, first second / W2 runs/s", "w6_first_s_ratio",
                      number(w6, "burst_first_s") / number(w2, "runs_per_s"), 0, 0.9};
    aims[7] = (aim_t){"W6 burst, slowest second / W2", "w6_min_s_ratio",
                      number(w6, "burst_min_s") / number(w2, "runs_per_s"), 0, 0.9};
    /* W5: the same work with a long history in runs and ops. */
    aims[8] = (aim_t){"W5 history runs/s / empty", "w5_runs_per_s_ratio",
                      number(w5, "history_runs_ratio"), 0, 0.9};
    aims[9] = (aim_t){"W5 history WAL per run / empty", "w5_wal_ratio",
                      number(w5, "history_wal_ratio"), 1, 1.3};

    fprintf(out, "pgbench ceiling, %d clients\n", c->clients);
    fprintf(out, "  %-32s %10.1f tps\n", "(a) single-row INSERT", c->insert_tps);
    fprintf(out, "  %-32s %10.1f tps\n", "(b) checkpoint transaction", c->checkpoint_tps);
    fprintf(out, "  %-32s %10.1f tps, latency average %.3f ms\n", "(b) at 1 client",
            c->checkpoint_1c_tps, c->checkpoint_1c_lat_ms);
    fprintf(out, "\n  %-32s %10s %10s\n", "against the aims", "measured", "aim");
    for (int i = 0; i < NAIMS; i++) {
        const aim_t *a = &aims[i];
        char aim[32];

        snprintf(aim, sizeof aim, "%s %.2f", a->at_most ? "<=" : ">=", a->aim);
        if (isnan(a->value)) {
            fprintf(out, "  %-32s %10s %10s   no figure (workload missing in %s)\n", a->what, "-",
                    aim, path);
            continue;
        }
        known++;
        if (a->at_most ? a->value <= a->aim : a->value >= a->aim) {
            met++;
            fprintf(out, "  %-32s %10.3f %10s   aim met\n", a->what, a->value, aim);
        } else {
            fprintf(out, "  %-32s %10.3f %10s   below aim\n", a->what, a->value, aim);
        }
    }
    fprintf(out, "  %d of %d aims met\n", met, known);
    if (w5 != NULL)
        fprintf(out,
                "\n  W5 with %.0f finished runs: %.1f runs/s and %.0f WAL bytes per run "
                "(empty tables: %.1f and %.0f)\n",
                number(w5, "history_runs"), number(w5, "runs_per_s"),
                number(w5, "wal_bytes_per_run"), number(w5, "empty_runs_per_s"),
                number(w5, "empty_wal_bytes_per_run"));
    if (json_array_size(w7) > 0) {
        size_t i;
        json_t *l;

        fprintf(out, "\n  W7 I/O-bound steps (three %.0f ms bodies a run)\n",
                number(w7last, "step_sleep_ms"));
        fprintf(out, "  %8s %9s %9s %13s %13s %12s %12s\n", "workers", "runs/s", "of ideal",
                "pool RSS kB", "pool Pss kB", "largest kB", "connections");
        json_array_foreach(w7, i, l)
        {
            fprintf(out, "  %8.0f %9.1f %8.0f%% %13.0f %13.0f %12.0f %12.0f\n",
                    number(l, "workers"), number(l, "runs_per_s"),
                    100.0 * number(l, "io_efficiency"), number(l, "pool_rss_kb"),
                    number(l, "pool_pss_kb"), number(l, "worker_rss_kb"),
                    number(l, "db_connections_engine"));
        }
    }

    o = line_new(c->session, c->commit, "ceiling");
    if (o == NULL) {
        rc = SK_ERROR;
    } else {
        rc |= set(o, "clients", json_integer(c->clients));
        rc |= set(o, "insert_tps", real(c->insert_tps));
        rc |= set(o, "checkpoint_tps", real(c->checkpoint_tps));
        rc |= set(o, "checkpoint_1c_tps", real(c->checkpoint_1c_tps));
        rc |= set(o, "checkpoint_1c_latency_ms", real(c->checkpoint_1c_lat_ms));
        for (int i = 0; i < NAIMS; i++)
            rc |= set(o, aims[i].key, real(aims[i].value));
        rc |= set(o, "aims_met", json_integer(met));
        rc |= set(o, "aims_known", json_integer(known));
        rc |= set(o, "w7", w7_summary(w7));
    }
    if (rc != SK_OK)
        snprintf(err, errlen, "out of memory");
    else
        rc = append_line(path, o, err, errlen);
done:
    json_decref(o);
    json_decref(w1);
    json_decref(w2);
    json_decref(w3);
    json_decref(w4);
    json_decref(w5);
    json_decref(w6);
    json_decref(w7last);
    json_decref(w7);
    return rc;
}
