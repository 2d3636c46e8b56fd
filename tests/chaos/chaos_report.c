/*
 * The chaos driver's checks and report: reads the effects file, the runs
 * and ops tables and the harness's audit tables, and compares them with
 * what the driver did (chaos_driver.h).  Prints one `chaos: key=value`
 * line per figure (docs/chaos.md explains each) and returns how many
 * checks failed.
 */
#include "chaos_driver.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <stepkit.h>

#include "chaos.h"

typedef struct {
    char run[37];
    char step[8];
    int attempt;
    int pid;
    long long t;
} effect_t;

typedef struct {
    char run[37];
    char workflow[32];
    char status[16];
    char parent[37];
    long long n; /* input.data.n */
    bool has_out;
    long long out;     /* the output, when an integer */
    char err_name[64]; /* error.name, when failed */
    char err_msg[160]; /* error.message */
    long long created, ended;
    int ends, rewrites; /* from the audit table */
} row_t;

static void out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void out(const char *fmt, ...)
{
    va_list ap;

    fputs("chaos: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
}

static int cmp_effect(const void *a, const void *b)
{
    const effect_t *x = a, *y = b;
    int c = strcmp(x->run, y->run);

    if (c == 0)
        c = strcmp(x->step, y->step);
    if (c == 0)
        c = (x->t > y->t) - (x->t < y->t);
    return c;
}

static int cmp_row(const void *a, const void *b)
{
    return strcmp(((const row_t *)a)->run, ((const row_t *)b)->run);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;

    return (x > y) - (x < y);
}

static effect_t *load_effects(const char *path, int *n)
{
    char line[256];
    effect_t *e = NULL;
    int cap = 0;
    FILE *f = fopen(path, "re");

    *n = 0;
    if (f == NULL)
        return NULL;
    while (fgets(line, sizeof(line), f) != NULL) {
        effect_t x;

        if (strlen(line) != CHAOS_LINE_LEN ||
            sscanf(line, "%36s %7s %d %d %lld", x.run, x.step, &x.attempt, &x.pid, &x.t) != 5) {
            out("malformed effect line: %s", line);
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 4096;
            e = realloc(e, (size_t)cap * sizeof(*e));
            if (e == NULL)
                abort();
        }
        e[(*n)++] = x;
    }
    fclose(f);
    qsort(e, (size_t)*n, sizeof(*e), cmp_effect);
    return e;
}

/* msgpack helpers: a map's string value, an integer. */
static const msgpack_object *mp_get(const msgpack_object *o, const char *key)
{
    size_t len = strlen(key);

    if (o == NULL || o->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];

        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == len &&
            memcmp(kv->key.via.str.ptr, key, len) == 0)
            return &kv->val;
    }
    return NULL;
}

static bool mp_int(const msgpack_object *o, long long *v)
{
    if (o == NULL)
        return false;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        *v = (long long)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return true;
    }
    return false;
}

static void mp_strcpy(const msgpack_object *o, char *dst, size_t n)
{
    size_t len;

    dst[0] = '\0';
    if (o == NULL || o->type != MSGPACK_OBJECT_STR)
        return;
    len = o->via.str.size < n - 1 ? o->via.str.size : n - 1;
    memcpy(dst, o->via.str.ptr, len);
    dst[len] = '\0';
}

/* Unpacks a bytea column (text format) and hands the object to fn. */
static void with_bytea(const PGresult *res, int row, int col,
                       void (*fn)(const msgpack_object *, row_t *), row_t *r)
{
    unsigned char *raw;
    size_t len;
    msgpack_unpacked u;

    if (PQgetisnull(res, row, col))
        return;
    raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, row, col), &len);
    if (raw == NULL)
        return;
    msgpack_unpacked_init(&u);
    if (msgpack_unpack_next(&u, (const char *)raw, len, NULL) == MSGPACK_UNPACK_SUCCESS)
        fn(&u.data, r);
    msgpack_unpacked_destroy(&u);
    PQfreemem(raw);
}

static void take_data(const msgpack_object *o, row_t *r)
{
    mp_int(mp_get(o, "n"), &r->n);
}

static void take_output(const msgpack_object *o, row_t *r)
{
    r->has_out = mp_int(o, &r->out);
}

static void take_error(const msgpack_object *o, row_t *r)
{
    mp_strcpy(mp_get(o, "name"), r->err_name, sizeof(r->err_name));
    mp_strcpy(mp_get(o, "message"), r->err_msg, sizeof(r->err_msg));
}

static row_t *load_runs(PGconn *db, int *n)
{
    PGresult *res = PQexec(
        db, "SELECT r.run_id::text, r.workflow_id, r.status, coalesce(r.parent_run_id::text, ''),"
            " r.data, r.output, r.error,"
            " (extract(epoch FROM r.created_at) * 1000)::bigint,"
            " coalesce((extract(epoch FROM r.ended_at) * 1000)::bigint, 0),"
            " coalesce(a.ends, 0), coalesce(a.rewrites, 0)"
            " FROM stepkit.runs r LEFT JOIN ("
            "   SELECT run_id, count(*) FILTER (WHERE old_status = 'pending'"
            "     AND new_status <> 'pending') AS ends,"
            "   count(*) FILTER (WHERE old_status <> 'pending') AS rewrites"
            "   FROM chaos.run_ends GROUP BY run_id) a USING (run_id)");
    row_t *rows = NULL;

    *n = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        out("reading runs failed: %s", PQerrorMessage(db));
        PQclear(res);
        return NULL;
    }
    *n = PQntuples(res);
    rows = calloc((size_t)*n + 1, sizeof(*rows));
    if (rows == NULL)
        abort();
    for (int i = 0; i < *n; i++) {
        row_t *r = &rows[i];

        snprintf(r->run, sizeof(r->run), "%s", PQgetvalue(res, i, 0));
        snprintf(r->workflow, sizeof(r->workflow), "%s", PQgetvalue(res, i, 1));
        snprintf(r->status, sizeof(r->status), "%s", PQgetvalue(res, i, 2));
        snprintf(r->parent, sizeof(r->parent), "%s", PQgetvalue(res, i, 3));
        with_bytea(res, i, 4, take_data, r);
        with_bytea(res, i, 5, take_output, r);
        with_bytea(res, i, 6, take_error, r);
        r->created = atoll(PQgetvalue(res, i, 7));
        r->ended = atoll(PQgetvalue(res, i, 8));
        r->ends = atoi(PQgetvalue(res, i, 9));
        r->rewrites = atoi(PQgetvalue(res, i, 10));
    }
    PQclear(res);
    qsort(rows, (size_t)*n, sizeof(*rows), cmp_row);
    return rows;
}

static row_t *find_row(row_t *rows, int n, const char *run)
{
    row_t key;

    snprintf(key.run, sizeof(key.run), "%s", run);
    return bsearch(&key, rows, (size_t)n, sizeof(*rows), cmp_row);
}

/* First effect of (run, step), or NULL. */
static const effect_t *find_effect(const effect_t *e, int n, const char *run, const char *step)
{
    int lo = 0, hi = n;

    while (lo < hi) {
        int mid = (lo + hi) / 2, c = strcmp(e[mid].run, run);

        if (c == 0)
            c = strcmp(e[mid].step, step);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && strcmp(e[lo].run, run) == 0 && strcmp(e[lo].step, step) == 0 ? &e[lo] : NULL;
}

/* What a run that never ended is waiting for: its ops and queue items. */
static void diagnose(PGconn *db, const char *run)
{
    const char *params[1] = {run};
    PGresult *res;

    res = PQexecParams(db,
                       "SELECT string_agg(step_id || ':' || kind || ':' || status || ':' ||"
                       " attempts, ' ' ORDER BY started_at) FROM stepkit.ops"
                       " WHERE run_id = $1::uuid",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        out("  ops (step:kind:status:attempts): %s", PQgetvalue(res, 0, 0));
    PQclear(res);
    res = PQexecParams(
        db,
        "SELECT string_agg(format('item %s op=%s leased=%s epoch=%s takeovers=%s visible_in=%s',"
        " item_id, coalesce(left(op_key, 8), 'run'), leased, epoch, takeovers,"
        " CASE WHEN visible_at = 'infinity' THEN 'never' ELSE"
        " round(extract(epoch FROM visible_at - now()), 1) || 's' END), '; ')"
        " FROM stepkit.exec_queue WHERE run_id = $1::uuid",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        out("  queue: %s", PQgetisnull(res, 0, 0) ? "(no item)" : PQgetvalue(res, 0, 0));
    PQclear(res);
    res = PQexecParams(db,
                       "SELECT string_agg(signal || ' timeout_in=' || coalesce(round(extract("
                       "epoch FROM timeout_at - now()), 1)::text, 'none'), '; ')"
                       " FROM stepkit.waiting_signals WHERE run_id = $1::uuid",
                       1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && !PQgetisnull(res, 0, 0))
        out("  waiting for signal: %s", PQgetvalue(res, 0, 0));
    PQclear(res);
}

static void print_dist(const char *what, long long *v, int n)
{
    if (n == 0) {
        out("%s: none", what);
        return;
    }
    qsort(v, (size_t)n, sizeof(*v), cmp_ll);
    out("%s: n=%d median=%lld p90=%lld max=%lld", what, n, v[n / 2], v[(n * 9) / 10], v[n - 1]);
}

static const chaos_worker_t *worker_of(const chaos_t *c, int pid, long long t)
{
    for (int i = c->n_wk - 1; i >= 0; i--) {
        if (c->wk[i].pid == pid && c->wk[i].first_seen <= t + 1000)
            return &c->wk[i];
    }
    return NULL;
}

/* Is the execution e, followed by another of the same op, explained by
 * something the driver did?  Returns the cause, "" when not; *kill_t gets
 * the moment of the cause. */
static const char *explain(const chaos_t *c, const effect_t *e, long long last_of_pid,
                           long long *kill_t)
{
    const chaos_worker_t *w = worker_of(c, e->pid, e->t);
    bool last = e->t >= last_of_pid;

    /* Kills first: they name the cause exactly; the restart's window is a
     * looser match. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < c->n_ev; i++) {
            const chaos_event_t *ev = &c->ev[i];

            *kill_t = ev->t;
            if (pass == 1) {
                if (ev->kind == EV_PG_RESTART && e->t >= ev->t - 2000 && e->t <= ev->t_end + 2000)
                    return "postgres restart";
                continue;
            }
            if (ev->kind == EV_WORKER_KILL && ev->pid == e->pid && ev->t >= e->t && last)
                return "worker kill";
            if ((ev->kind == EV_MASTER_KILL || ev->kind == EV_MASTER_EXIT) && w != NULL &&
                w->master == ev->master && w->first_seen <= ev->t && ev->t >= e->t && last)
                return ev->kind == EV_MASTER_KILL ? "master kill" : "master exit";
        }
    }
    return "";
}

/* A run that failed with WorkerLostError because the storm killed the
 * worker of one of its steps (or of a child's step) at every attempt: each
 * execution of that step coincides with a kill.  The contract allows it
 * (attempts count crashes, and an outside SIGKILL looks like one). */
static bool storm_casualty(const chaos_t *c, const effect_t *eff, int n_eff, const long long *last,
                           const row_t *rows, int n_rows, const row_t *row)
{
    long long kt;

    if (strcmp(row->status, "failed") != 0 || strcmp(row->err_name, "WorkerLostError") != 0)
        return false;
    for (int i = 0; i < n_eff;) {
        int j = i, explained = 0;
        bool mine = strcmp(eff[i].run, row->run) == 0;

        if (!mine) {
            const row_t *child = find_row((row_t *)rows, n_rows, eff[i].run);

            mine = child != NULL && strcmp(child->parent, row->run) == 0;
        }
        while (j < n_eff && strcmp(eff[j].run, eff[i].run) == 0 &&
               strcmp(eff[j].step, eff[i].step) == 0) {
            explained += explain(c, &eff[j], last[j], &kt)[0] != '\0';
            j++;
        }
        if (mine && j - i >= SK_MAX_ATTEMPTS_DEFAULT && explained == j - i)
            return true;
        i = j;
    }
    return false;
}

int chaos_report(chaos_t *c, PGconn *db)
{
    int n_eff, n_rows, fails = 0, lost = 0, wrong = 0, twice = 0, untracked = 0, children = 0,
                       ended_storm = 0, ended_tracked = 0;
    int reexec = 0, unexplained = 0, by_worker = 0, by_master = 0, by_pg = 0, no_exec = 0;
    int n_take = 0, n_resp = 0, worker_kills = 0, master_kills = 0, master_exits = 0,
        pg_restarts = 0, casualties = 0, poison_bad = 0, poison_lost = 0, shown = 0;
    long long *take, *resp, *last;
    long op_rewrites = -1;
    effect_t *eff = load_effects(c->effects, &n_eff);
    row_t *rows = load_runs(db, &n_rows);
    PGresult *res;

    if (rows == NULL) {
        free(eff);
        return 1;
    }
    /* For "a body the killed worker had not committed": the last effect
     * time of every pid, or the effect's own time when it is among the last
     * `batch` bodies of its pid (with --batch N a worker commits the results
     * of up to N bodies together, so a kill loses up to N of them). */
    last = calloc((size_t)n_eff + 1, sizeof(*last));
    take = calloc((size_t)n_eff + 1, sizeof(*take));
    resp = calloc((size_t)c->n_ev + 1, sizeof(*resp));
    if (take == NULL || resp == NULL || last == NULL)
        abort();
    for (int i = 0; i < n_eff; i++) {
        int after = 0;
        for (int j = 0; j < n_eff; j++) {
            if (eff[j].pid != eff[i].pid)
                continue;
            after += eff[j].t > eff[i].t;
            if (eff[j].t > last[i])
                last[i] = eff[j].t;
        }
        if (after < c->batch)
            last[i] = eff[i].t;
    }

    /* ---- runs: lost, wrong, ended twice ---- */
    for (int i = 0; i < c->n_run; i++) {
        const chaos_run_t *r = &c->run[i];
        row_t *row = r->run_id[0] ? find_row(rows, n_rows, r->run_id) : NULL;

        if (row == NULL) {
            lost++;
            out("LOST: %s n=%lld was never started", chaos_kind_workflow(r->kind), r->n);
            continue;
        }
        if (strcmp(row->status, "pending") == 0) {
            if (chaos_kind_poison(r->kind))
                poison_lost++;
            else
                lost++;
            out("%s: %s %s n=%lld never ended",
                chaos_kind_poison(r->kind) ? "POISON NOT ENDED" : "LOST", row->workflow, row->run,
                r->n);
            if (lost + poison_lost <= 10)
                diagnose(db, row->run);
            continue;
        }
        ended_tracked++;
        if (row->ended >= c->t0 && row->ended < c->storm_end)
            ended_storm++;
        if (chaos_kind_poison(r->kind)) {
            const char *want = r->kind == K_HANG ? "StepTimeoutError" : "WorkerLostError";
            /* The cause must be named: the signal, or the exit status. */
            const char *why = r->kind == K_SEGV ? "SIGSEGV" : r->kind == K_EXIT ? "status 0" : "";
            bool ok = strcmp(row->status, "failed") == 0 && strcmp(row->err_name, want) == 0 &&
                      strstr(row->err_msg, why) != NULL;

            poison_bad += !ok;
            out("poison: %s %s %s %s%s%s after %.1f s (expected failed %s%s%s)%s", row->workflow,
                row->run, row->status, row->err_name, row->err_name[0] ? ": " : "", row->err_msg,
                (row->ended - row->created) / 1000.0, want, why[0] ? " naming " : "", why,
                ok ? "" : " WRONG");
            continue;
        }
        if (storm_casualty(c, eff, n_eff, last, rows, n_rows, row)) {
            casualties++;
            out("storm casualty: %s %s: %s", row->workflow, row->run, row->err_msg);
        } else if (strcmp(row->status, "completed") != 0 || !row->has_out ||
                   row->out != chaos_expected(r)) {
            wrong++;
            if (shown++ < 20)
                out("WRONG: %s %s n=%lld %s output=%lld expected=%lld %s %s", row->workflow,
                    row->run, r->n, row->status, row->has_out ? row->out : 0, chaos_expected(r),
                    row->err_name, row->err_msg);
        }
    }
    for (int i = 0; i < n_rows; i++) {
        row_t *row = &rows[i];
        bool tracked = false;

        if (row->ends > 1 || row->rewrites > 0) {
            twice++;
            out("ENDED TWICE: %s %s ends=%d updates after the end=%d", row->workflow, row->run,
                row->ends, row->rewrites);
        }
        if (row->parent[0] != '\0') {
            children++;
            if (strcmp(row->status, "pending") == 0) {
                lost++;
                out("LOST: child %s %s never ended", row->workflow, row->run);
                if (lost <= 10)
                    diagnose(db, row->run);
            } else if (storm_casualty(c, eff, n_eff, last, rows, n_rows, row)) {
                casualties++;
                out("storm casualty: child %s %s: %s", row->workflow, row->run, row->err_msg);
            } else if (strcmp(row->status, "completed") != 0 || !row->has_out ||
                       row->out != chaos_child_out(row->n)) {
                wrong++;
                out("WRONG: child %s %s n=%lld %s output=%lld expected=%lld %s %s", row->workflow,
                    row->run, row->n, row->status, row->out, chaos_child_out(row->n), row->err_name,
                    row->err_msg);
            }
            continue;
        }
        for (int j = 0; j < c->n_run && !tracked; j++)
            tracked = strcmp(c->run[j].run_id, row->run) == 0;
        if (!tracked) {
            untracked++;
            out("UNTRACKED: %s %s (a run the driver did not start)", row->workflow, row->run);
        }
        if (strcmp(row->status, "pending") != 0 && row->ends == 0)
            out("NOTE: %s %s ended without an audit row (trigger missing?)", row->workflow,
                row->run);
    }
    res = PQexec(db, "SELECT count(*) FROM chaos.op_rewrites");
    if (PQresultStatus(res) == PGRES_TUPLES_OK)
        op_rewrites = atol(PQgetvalue(res, 0, 0));
    PQclear(res);

    /* ---- recorded results without a body execution ---- */
    res = PQexec(db, "SELECT o.run_id::text, o.step_id FROM stepkit.ops o"
                     " WHERE o.kind = 'run' AND o.status = 'ok'");
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(res); i++) {
            if (find_effect(eff, n_eff, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1)) == NULL) {
                no_exec++;
                out("RECORDED WITHOUT EXECUTION: run %s step %s", PQgetvalue(res, i, 0),
                    PQgetvalue(res, i, 1));
            }
        }
    } else {
        out("reading ops failed: %s", PQerrorMessage(db));
        fails++;
    }
    PQclear(res);

    /* ---- re-executed bodies ---- */
    {
        shown = 0;
        for (int i = 0; i + 1 < n_eff; i++) {
            const effect_t *e = &eff[i], *next = &eff[i + 1];
            row_t *row;
            const char *why;
            long long kt;

            if (strcmp(e->run, next->run) != 0 || strcmp(e->step, next->step) != 0)
                continue;
            row = find_row(rows, n_rows, e->run);
            if (row != NULL && (strcmp(row->workflow, "chaos-segv") == 0 ||
                                strcmp(row->workflow, "chaos-exit") == 0 ||
                                strcmp(row->workflow, "chaos-hang") == 0))
                continue; /* poison re-executes by design */
            reexec++;
            why = explain(c, e, last[i], &kt);
            if (strcmp(why, "worker kill") == 0) {
                by_worker++;
                take[n_take++] = next->t - kt;
            } else if (strcmp(why, "postgres restart") == 0) {
                by_pg++;
            } else if (why[0] != '\0') {
                by_master++;
            } else {
                unexplained++;
            }
            if (why[0] == '\0' || shown < 10) {
                shown++;
                out("re-executed: run %s step %s: attempt %d pid %d at +%.3f s, again attempt "
                    "%d pid %d at +%.3f s: %s%s",
                    e->run, e->step, e->attempt, e->pid, (e->t - c->t0) / 1000.0, next->attempt,
                    next->pid, (next->t - c->t0) / 1000.0, why[0] ? why : "UNEXPLAINED",
                    why[0] == '\0' && e->t < last[i] ? " (that worker ran other bodies after it)"
                                                     : "");
            }
        }
    }

    /* ---- events, recovery ---- */
    for (int i = 0; i < c->n_ev; i++) {
        const chaos_event_t *ev = &c->ev[i];

        switch (ev->kind) {
        case EV_WORKER_KILL:
            worker_kills++;
            if (ev->respawn_ms >= 0)
                resp[n_resp++] = ev->respawn_ms;
            break;
        case EV_MASTER_KILL:
        case EV_MASTER_EXIT: {
            long long first = -1;

            if (ev->kind == EV_MASTER_KILL)
                master_kills++;
            else
                master_exits++;
            for (int j = 0; j < n_eff; j++) {
                const chaos_worker_t *w = worker_of(c, eff[j].pid, eff[j].t);

                if (w != NULL && w->master == ev->master && ev->t_end > 0 &&
                    w->first_seen >= ev->t_end && eff[j].t >= ev->t &&
                    (first < 0 || eff[j].t < first))
                    first = eff[j].t;
            }
            out("%s %d (pid %d) at +%.1f s: restarted after %.1f s; first body by its new "
                "workers %.1f s after the kill",
                ev->kind == EV_MASTER_KILL ? "master kill" : "MASTER EXIT", ev->master,
                (int)ev->pid, (ev->t - c->t0) / 1000.0,
                ev->t_end > 0 ? (ev->t_end - ev->t) / 1000.0 : -1.0,
                first >= 0 ? (first - ev->t) / 1000.0 : -1.0);
            break;
        }
        case EV_PG_RESTART: {
            long long first = -1;

            pg_restarts++;
            for (int j = 0; j < n_eff; j++) {
                if (eff[j].t >= ev->t_end && (first < 0 || eff[j].t < first))
                    first = eff[j].t;
            }
            out("postgres restart at +%.1f s: the stop took %.1f s, down %.1f s in all; first "
                "body %.2f s after it was up",
                (ev->t - c->t0) / 1000.0, (ev->t_mid - ev->t) / 1000.0,
                (ev->t_end - ev->t) / 1000.0, first >= 0 ? (first - ev->t_end) / 1000.0 : -1.0);
            break;
        }
        }
    }

    /* ---- the summary ---- */
    out("runs=%d (+%d children, %d poison) ended=%d ended_during_storm=%d", c->runs, children,
        c->n_run - c->runs, ended_tracked, ended_storm);
    out("kills: worker=%d master=%d postgres=%d unplanned_master_exits=%d", worker_kills,
        master_kills, pg_restarts, master_exits);
    out("lost=%d ended_twice=%d final_ops_rewritten=%ld untracked_runs=%d orphaned_workers=%d",
        lost, twice, op_rewrites, untracked, c->orphans);
    out("done_notifications=%ld for %d ended runs started with notify_end (fewer is fine: the "
        "listener misses those sent while it reconnects)",
        c->done_notifies, ended_tracked);
    out("storm_casualties=%d (failed with WorkerLostError, every attempt of a step killed by the "
        "driver: allowed)",
        casualties);
    out("wrong_outputs=%d poison_not_ended=%d poison_wrong_error=%d recorded_without_execution=%d",
        wrong, poison_lost, poison_bad, no_exec);
    out("bodies executed=%d re-executed=%d (worker kill %d, master kill/exit %d, postgres "
        "restart %d, UNEXPLAINED %d)",
        n_eff, reexec, by_worker, by_master, by_pg, unexplained);
    print_dist("takeover after a worker kill, kill -> body again (ms)", take, n_take);
    print_dist("respawn after a worker kill, kill -> new worker seen (ms, 100 ms sampling)", resp,
               n_resp);
    if (c->live_samples > 0)
        out("mean live workers during the storm: %.2f of %d (min %d, %ld samples)",
            c->live_sum / (double)c->live_samples, c->masters * c->workers, c->live_min,
            c->live_samples);
    if (!c->hang_poison)
        out("NOTE: hang poison skipped (stepkit-master has no --step-timeout)");

    fails += lost + twice + untracked + wrong + poison_lost + poison_bad + no_exec + unexplained +
             master_exits + c->pg_url_changed + c->orphans;
    if (op_rewrites != 0)
        fails++;
    if (c->done_notifies > ended_tracked) {
        out("MORE done notifications (%ld) than ended runs (%d)", c->done_notifies, ended_tracked);
        fails++;
    }
    if (fails == 0)
        out("PASS");
    else
        out("FAIL: lost=%d ended_twice=%d wrong=%d poison_not_ended=%d poison_wrong_error=%d "
            "unexplained_reexec=%d unplanned_master_exits=%d (and %d other)",
            lost, twice, wrong, poison_lost, poison_bad, unexplained, master_exits,
            fails - lost - twice - wrong - poison_lost - poison_bad - unexplained - master_exits);
    fflush(stdout);
    free(take);
    free(resp);
    free(last);
    free(eff);
    free(rows);
    return fails;
}
