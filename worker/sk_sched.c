/* The worker's cron scheduler: the database side (sk_sched.h, docs/cron.md). */
#include "sk_sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "sk_log.h"
#include "sk_wconn.h"
#include "stepkit.h"

#define NUM_LEN 24
#define ISO_LEN 32

typedef struct {
    const char *workflow; /* registry strings: live as long as the library */
    const char *expr;
    sk_cron_t *cron;
    int64_t next_ms; /* first tick not handled yet; -1: none known */
} entry_t;

struct sk_sched {
    entry_t *e;
    int n;
    int loaded;      /* next_ms resumed from cron_ticks (once per process) */
    char *workflows; /* entry workflows joined by newlines, for sk_cron_last */
    char *exprs;     /* entry expressions joined by newlines (they hold none) */
};

/* One tick to fire in a batch, with its parameters. */
typedef struct {
    entry_t *entry;
    int64_t fire_ms, next_ms;
    char tick_s[NUM_LEN];
    char iso[ISO_LEN];
    msgpack_sbuffer data;
} due_t;

static int cmp_entry(const void *a, const void *b)
{
    const entry_t *x = a, *y = b;
    int c = strcmp(x->workflow, y->workflow);

    return c != 0 ? c : strcmp(x->expr, y->expr);
}

static char *join(const entry_t *e, int n, int exprs)
{
    size_t len = 1;
    char *s;

    for (int i = 0; i < n; i++)
        len += strlen(exprs ? e[i].expr : e[i].workflow) + 1;
    s = malloc(len);
    if (s == NULL)
        return NULL;
    s[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i > 0)
            strcat(s, "\n");
        strcat(s, exprs ? e[i].expr : e[i].workflow);
    }
    return s;
}

sk_sched_t *sk_sched_new(const sk_registry_t *reg, char *err, size_t errlen)
{
    sk_sched_t *s = calloc(1, sizeof(*s));
    size_t total = 0;
    int k = 0;

    if (s == NULL)
        goto oom;
    for (size_t i = 0; i < sk_registry_count(reg); i++) {
        const sk_wf_t *wf = sk_registry_at(reg, i);
        for (size_t j = 0; wf->schedules != NULL && wf->schedules[j] != NULL; j++)
            total++;
    }
    if (total == 0)
        return s;
    s->e = calloc(total, sizeof(*s->e));
    if (s->e == NULL)
        goto oom;
    for (size_t i = 0; i < sk_registry_count(reg); i++) {
        const sk_wf_t *wf = sk_registry_at(reg, i);
        for (size_t j = 0; wf->schedules != NULL && wf->schedules[j] != NULL; j++) {
            entry_t *e = &s->e[s->n];
            /* Validated at registration: only memory can fail here. */
            e->cron = sk_cron_parse(wf->schedules[j], err, errlen);
            if (e->cron == NULL) {
                sk_sched_free(s);
                return NULL;
            }
            e->workflow = wf->id;
            e->expr = wf->schedules[j];
            e->next_ms = -1;
            s->n++;
        }
    }
    /* One order for every worker of every master: a batch takes its ticks'
     * key locks in that order, so two batches never wait on each other in
     * a cycle.  The same expression twice in a workflow is one schedule. */
    qsort(s->e, (size_t)s->n, sizeof(*s->e), cmp_entry);
    for (int i = 0; i < s->n; i++) {
        if (k > 0 && cmp_entry(&s->e[k - 1], &s->e[i]) == 0) {
            sk_cron_free(s->e[i].cron);
            continue;
        }
        s->e[k++] = s->e[i];
    }
    s->n = k;
    s->workflows = join(s->e, s->n, 0);
    s->exprs = join(s->e, s->n, 1);
    if (s->workflows == NULL || s->exprs == NULL)
        goto oom;
    return s;
oom:
    snprintf(err, errlen, "out of memory");
    sk_sched_free(s);
    return NULL;
}

void sk_sched_free(sk_sched_t *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->n; i++)
        sk_cron_free(s->e[i].cron);
    free(s->e);
    free(s->workflows);
    free(s->exprs);
    free(s);
}

int sk_sched_count(const sk_sched_t *s)
{
    return s->n;
}

int64_t sk_sched_next(const sk_sched_t *s)
{
    int64_t best = -1;

    for (int i = 0; i < s->n; i++) {
        int64_t t = s->e[i].next_ms;
        if (t >= 0 && (best < 0 || t < best))
            best = t;
    }
    return best;
}

/* Resume every schedule after its newest fired tick (sk_cron_last). */
static int load(sk_sched_t *s, sk_wconn_t *conn, int64_t now_ms)
{
    sk_cmd_t cmd = {.stmt = "sk_cron_last", .nparams = 2, .values = {s->workflows, s->exprs}};
    PGresult *res[1] = {NULL};
    char err[512];
    int rc = SK_ERROR;

    if (sk_wconn_run(conn, &cmd, 1, res, err, sizeof(err)) != SK_OK) {
        sk_log_error("event=cron_load_failed error=\"%s\"", err);
        goto done;
    }
    if (PQntuples(res[0]) != s->n) {
        sk_log_error("event=cron_load_failed error=\"%d rows for %d schedules\"", PQntuples(res[0]),
                     s->n);
        goto done;
    }
    for (int i = 0; i < s->n; i++) {
        entry_t *e = &s->e[i];
        int64_t last = PQgetisnull(res[0], i, 0) ? -1 : strtoll(PQgetvalue(res[0], i, 0), NULL, 10);
        char last_s[ISO_LEN], next_s[ISO_LEN];

        e->next_ms = sk_sched_resume(e->cron, last, now_ms);
        sk_log_debug("event=cron_resume workflow=%s schedule=\"%s\" last=%s next=%s", e->workflow,
                     e->expr, last < 0 ? "none" : sk_sched_iso(last, last_s, sizeof(last_s)),
                     e->next_ms < 0 ? "none" : sk_sched_iso(e->next_ms, next_s, sizeof(next_s)));
    }
    s->loaded = 1;
    sk_log_info("event=cron_loaded schedules=%d", s->n);
    rc = SK_OK;
done:
    PQclear(res[0]);
    return rc;
}

/* input.data of a cron run: {"tick": ISO 8601 UTC, "schedule": expression}. */
static int pack_data(due_t *d)
{
    msgpack_packer pk;
    size_t tl = strlen(d->iso), sl = strlen(d->entry->expr);

    msgpack_packer_init(&pk, &d->data, msgpack_sbuffer_write);
    return msgpack_pack_map(&pk, 2) || msgpack_pack_str(&pk, 4) ||
                   msgpack_pack_str_body(&pk, "tick", 4) || msgpack_pack_str(&pk, tl) ||
                   msgpack_pack_str_body(&pk, d->iso, tl) || msgpack_pack_str(&pk, 8) ||
                   msgpack_pack_str_body(&pk, "schedule", 8) || msgpack_pack_str(&pk, sl) ||
                   msgpack_pack_str_body(&pk, d->entry->expr, sl)
               ? SK_ERROR
               : SK_OK;
}

static void log_fired(const due_t *d, const PGresult *res)
{
    char from[ISO_LEN];
    const char *run = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0) ? PQgetvalue(res, 0, 0) : NULL;

    if (run == NULL) {
        sk_log_debug("event=cron_tick_taken workflow=%s schedule=\"%s\" tick=%s",
                     d->entry->workflow, d->entry->expr, d->iso);
        return;
    }
    /* A catch-up says which tick it was the first to miss: the ones from
     * there to this tick are coalesced into this run. */
    if (d->fire_ms != d->entry->next_ms)
        sk_log_info("event=cron_fired workflow=%s schedule=\"%s\" tick=%s run=%s missed_from=%s",
                    d->entry->workflow, d->entry->expr, d->iso, run,
                    sk_sched_iso(d->entry->next_ms, from, sizeof(from)));
    else
        sk_log_info("event=cron_fired workflow=%s schedule=\"%s\" tick=%s run=%s",
                    d->entry->workflow, d->entry->expr, d->iso, run);
}

int sk_sched_run(sk_sched_t *s, sk_wconn_t *conn, int64_t now_ms, int *fired)
{
    due_t *due = NULL;
    sk_cmd_t *cmds = NULL;
    PGresult **res = NULL;
    char err[512];
    int n = 0, rc = SK_ERROR;

    *fired = 0;
    if (s->n == 0)
        return SK_OK;
    if (!s->loaded && load(s, conn, now_ms) != SK_OK)
        return SK_ERROR;
    due = calloc((size_t)s->n, sizeof(*due));
    cmds = calloc((size_t)s->n, sizeof(*cmds));
    res = calloc((size_t)s->n, sizeof(*res));
    if (due == NULL || cmds == NULL || res == NULL) {
        sk_log_error("event=cron_fire_failed error=\"out of memory\"");
        goto done;
    }
    /* Entries are sorted, so the batch is too. */
    for (int i = 0; i < s->n; i++) {
        entry_t *e = &s->e[i];
        due_t *d = &due[n];
        sk_cmd_t *k = &cmds[n];

        d->next_ms = e->next_ms;
        if (!sk_sched_step(e->cron, &d->next_ms, now_ms, &d->fire_ms)) {
            e->next_ms = d->next_ms; /* nothing due: only a fresh search from now */
            continue;
        }
        d->entry = e;
        msgpack_sbuffer_init(&d->data);
        n++;
        snprintf(d->tick_s, sizeof(d->tick_s), "%lld", (long long)d->fire_ms);
        sk_sched_iso(d->fire_ms, d->iso, sizeof(d->iso));
        if (pack_data(d) != SK_OK) {
            sk_log_error("event=cron_fire_failed error=\"out of memory\"");
            goto done;
        }
        k->stmt = "sk_fire_cron";
        k->nparams = 4;
        k->values[0] = e->workflow;
        k->values[1] = e->expr;
        k->values[2] = d->tick_s;
        k->values[3] = d->data.data;
        k->lengths[3] = (int)d->data.size;
        k->formats[3] = 1;
    }
    if (n == 0) {
        rc = SK_OK;
        goto done;
    }
    /* One round trip, one implicit transaction (the pipeline's statements up
     * to its sync; an error rolls it all back and leaves the session idle):
     * the ticks take their key locks in the entries' order. */
    if (sk_wconn_run(conn, cmds, n, res, err, sizeof(err)) != SK_OK) {
        sk_log_error("event=cron_fire_failed ticks=%d error=\"%s\"", n, err);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        log_fired(&due[i], res[i]);
        if (PQntuples(res[i]) == 1 && !PQgetisnull(res[i], 0, 0))
            (*fired)++;
        due[i].entry->next_ms = due[i].next_ms;
    }
    rc = SK_OK;
done:
    for (int i = 0; i < n; i++) {
        msgpack_sbuffer_destroy(&due[i].data);
        if (res != NULL)
            PQclear(res[i]);
    }
    free(due);
    free(cmds);
    free(res);
    return rc;
}
