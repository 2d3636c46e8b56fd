/* Workflow libraries: loading, registration and publication. */
#include "sk_registry.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sk_cron.h"
#include "sk_limits.h"
#include "sk_log.h"
#include "sk_migrate.h"
#include "sk_pg.h"

struct sk_registry {
    sk_wf_t *wfs;
    size_t n, cap;
    void **handles;
    size_t nhandles;
    char err[512];
};

typedef int (*entry_fn)(sk_registry_t *);

sk_registry_t *sk_registry_new(void)
{
    return calloc(1, sizeof(sk_registry_t));
}

void sk_registry_free(sk_registry_t *reg)
{
    if (reg == NULL)
        return;
    /* Handles stay open: handlers may still be referenced by forked workers'
     * copies; the process is ending anyway when the registry is freed. */
    free(reg->handles);
    free(reg->wfs);
    free(reg);
}

const char *sk_registry_error(const sk_registry_t *reg)
{
    return reg->err;
}

size_t sk_registry_count(const sk_registry_t *reg)
{
    return reg->n;
}

const sk_wf_t *sk_registry_at(const sk_registry_t *reg, size_t i)
{
    return i < reg->n ? &reg->wfs[i] : NULL;
}

const sk_wf_t *sk_registry_find(const sk_registry_t *reg, const char *id)
{
    for (size_t i = 0; i < reg->n; i++) {
        if (strcmp(reg->wfs[i].id, id) == 0)
            return &reg->wfs[i];
    }
    return NULL;
}

/* Flow control within the bounds sql/010_flow.sql and sql/013_flow_steps.sql check. */
static int flow_check(const sk_workflow_t *wf, char *err, size_t errlen)
{
    const char *keys[3] = {wf->concurrency.key, wf->rate.key, wf->step_rate.key};

    if (wf->concurrency.limit < 0 || wf->concurrency.limit > 1000000) {
        snprintf(err, errlen, "workflow %s: concurrency limit %d is out of range 0..1000000",
                 wf->id, wf->concurrency.limit);
        return SK_ERROR;
    }
    if (wf->rate.limit < 0 || wf->rate.limit > 10000 ||
        (wf->rate.limit > 0 && (wf->rate.period_ms < 1 || wf->rate.period_ms > 86400000))) {
        snprintf(err, errlen,
                 "workflow %s: rate wants limit 0..10000 and, with a limit, period_ms 1..86400000",
                 wf->id);
        return SK_ERROR;
    }
    if (wf->step_rate.limit < 0 || wf->step_rate.limit > 10000 ||
        (wf->step_rate.limit > 0 &&
         (wf->step_rate.period_ms < 1 || wf->step_rate.period_ms > 86400000))) {
        snprintf(err, errlen,
                 "workflow %s: step_rate wants limit 0..10000 and, with a limit, period_ms "
                 "1..86400000 (got limit %d, period_ms %d)",
                 wf->id, wf->step_rate.limit, wf->step_rate.period_ms);
        return SK_ERROR;
    }
    if (wf->priority < 0 || wf->priority > 86400) {
        snprintf(err, errlen, "workflow %s: priority %d is out of range 0..86400", wf->id,
                 wf->priority);
        return SK_ERROR;
    }
    for (int i = 0; i < 3; i++) {
        char kerr[200];
        if (keys[i] != NULL && keys[i][0] != '\0' &&
            sk_name_check("flow key", keys[i], SK_NAME_NO_BREAKS, kerr, sizeof(kerr)) != SK_OK) {
            snprintf(err, errlen, "workflow %s: %s", wf->id, kerr);
            return SK_ERROR;
        }
    }
    return SK_OK;
}

int sk_register(sk_registry_t *reg, const sk_workflow_t *wf)
{
    sk_wf_t w;

    reg->err[0] = '\0';
    if (wf == NULL) {
        snprintf(reg->err, sizeof(reg->err), "no workflow given");
        return SK_ERROR;
    }
    if (sk_name_check("workflow id", wf->id, SK_NAME_NO_BREAKS, reg->err, sizeof(reg->err)) !=
        SK_OK)
        return SK_ERROR;
    if (wf->handler == NULL) {
        snprintf(reg->err, sizeof(reg->err), "workflow %s: no handler", wf->id);
        return SK_ERROR;
    }
    if (wf->max_attempts < 0 || wf->max_attempts > 1000) {
        snprintf(reg->err, sizeof(reg->err), "workflow %s: max_attempts %d is out of range 1..1000",
                 wf->id, wf->max_attempts);
        return SK_ERROR;
    }
    if (wf->retry.set && (wf->retry.initial_ms < 0 || wf->retry.max_ms < 0 ||
                          !(wf->retry.factor >= 1.0 && wf->retry.factor <= 100.0))) {
        snprintf(reg->err, sizeof(reg->err),
                 "workflow %s: retry wants initial_ms >= 0, max_ms >= 0, 1 <= factor <= 100",
                 wf->id);
        return SK_ERROR;
    }
    if (wf->step_timeout_ms < 0) {
        snprintf(reg->err, sizeof(reg->err), "workflow %s: step_timeout_ms %d is negative", wf->id,
                 wf->step_timeout_ms);
        return SK_ERROR;
    }
    if (flow_check(wf, reg->err, sizeof(reg->err)) != SK_OK)
        return SK_ERROR;
    if (sk_registry_find(reg, wf->id) != NULL) {
        snprintf(reg->err, sizeof(reg->err), "workflow %s registered twice", wf->id);
        return SK_ERROR;
    }
    for (size_t i = 0; wf->events != NULL && wf->events[i] != NULL; i++) {
        char nerr[200];
        if (sk_name_check("event name", wf->events[i], SK_NAME_NO_BREAKS, nerr, sizeof(nerr)) !=
            SK_OK) {
            snprintf(reg->err, sizeof(reg->err), "workflow %s: %s", wf->id, nerr);
            return SK_ERROR;
        }
    }
    for (size_t i = 0; wf->schedules != NULL && wf->schedules[i] != NULL; i++) {
        char cerr[256];
        sk_cron_t *c;
        /* It is part of the cron ticks' primary key: same limit as names. */
        if (sk_name_check("schedule", wf->schedules[i], SK_NAME_NO_BREAKS, cerr, sizeof(cerr)) !=
            SK_OK) {
            snprintf(reg->err, sizeof(reg->err), "workflow %s: %s", wf->id, cerr);
            return SK_ERROR;
        }
        c = sk_cron_parse(wf->schedules[i], cerr, sizeof(cerr));
        if (c == NULL || strpbrk(wf->schedules[i], "\n\r") != NULL) {
            snprintf(reg->err, sizeof(reg->err), "workflow %s: schedule '%s': %s", wf->id,
                     wf->schedules[i], c ? "newline in schedule" : cerr);
            sk_cron_free(c);
            return SK_ERROR;
        }
        sk_cron_free(c);
    }
    w.id = wf->id;
    w.handler = wf->handler;
    w.max_attempts = wf->max_attempts ? wf->max_attempts : SK_MAX_ATTEMPTS_DEFAULT;
    w.validate = wf->validate;
    w.retry = wf->retry.set ? wf->retry : SK_RETRY_DEFAULT;
    w.events = wf->events;
    w.schedules = wf->schedules;
    w.step_timeout_ms = wf->step_timeout_ms;
    w.concurrency = wf->concurrency;
    w.rate = wf->rate;
    w.priority = wf->priority;
    w.step_rate = wf->step_rate;
    if (reg->n == reg->cap) {
        size_t cap = reg->cap ? reg->cap * 2 : 16;
        sk_wf_t *p = realloc(reg->wfs, cap * sizeof(*p));
        if (p == NULL) {
            snprintf(reg->err, sizeof(reg->err), "out of memory");
            return SK_ERROR;
        }
        reg->wfs = p;
        reg->cap = cap;
    }
    reg->wfs[reg->n++] = w;
    return SK_OK;
}

int sk_registry_load(sk_registry_t *reg, const char *path, char *err, size_t errlen)
{
    void *h, **hs;
    entry_fn entry;
    size_t before = reg->n;

    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        snprintf(err, errlen, "cannot load workflow library %s: %s", path, dlerror());
        return SK_ERROR;
    }
    *(void **)(&entry) = dlsym(h, "stepkit_workflows_v2");
    if (entry == NULL) {
        if (dlsym(h, "stepkit_workflows_v1") != NULL)
            snprintf(err, errlen,
                     "%s was built against an older stepkit.h (ABI 1): sk_workflow_t has grown "
                     "since; rebuild the library against this version's stepkit.h",
                     path);
        else
            snprintf(err, errlen,
                     "%s does not export stepkit_workflows_v2 (define it with SK_WORKFLOWS; a "
                     "library built for another StepKit ABI cannot be loaded)",
                     path);
        dlclose(h);
        return SK_ERROR;
    }
    if (entry(reg) != SK_OK) {
        snprintf(err, errlen, "%s: registration failed: %s", path,
                 reg->err[0] ? reg->err : "its entry point returned an error");
        reg->n = before;
        dlclose(h);
        return SK_ERROR;
    }
    hs = realloc(reg->handles, (reg->nhandles + 1) * sizeof(*hs));
    if (hs == NULL) {
        snprintf(err, errlen, "out of memory");
        return SK_ERROR;
    }
    reg->handles = hs;
    reg->handles[reg->nhandles++] = h;
    return SK_OK;
}

/* NULL-terminated list joined by newlines (names cannot hold one). */
static char *join_lines(const char *const *list)
{
    size_t n = 1;
    char *s;

    for (size_t i = 0; list != NULL && list[i] != NULL; i++)
        n += strlen(list[i]) + 1;
    s = malloc(n);
    if (s == NULL)
        return NULL;
    s[0] = '\0';
    for (size_t i = 0; list != NULL && list[i] != NULL; i++) {
        if (i > 0)
            strcat(s, "\n");
        strcat(s, list[i]);
    }
    return s;
}

/* One statement that writes a workflow's setting; errors name `what`. */
static int run_setting(PGconn *conn, const char *sql, int n, const char *const *params,
                       const char *what, char *err, size_t errlen)
{
    PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    int rc = SK_OK;

    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        sk_pg_error(conn, res, what, err, errlen);
        rc = SK_ERROR;
    }
    PQclear(res);
    return rc;
}

/* sql/010_flow.sql: the first schema with set_flow_control. */
#define SK_FLOW_SCHEMA_VERSION 10

/* The flow control a workflow declares (none declared: nothing written). */
static int publish_flow(const sk_wf_t *w, PGconn *conn, char *err, size_t errlen)
{
    static const char *sql =
        "SELECT set_flow_control($1, $2::int, $3, $4::int, $5::int, $6, $7::int)";
    char climit[16], rlimit[16], period[16], prio[16];
    const char *params[7] = {w->id, NULL, w->concurrency.key, NULL, NULL, w->rate.key, prio};

    if (w->concurrency.limit == 0 && w->rate.limit == 0 && w->priority == 0)
        return SK_OK;
    if (sk_schema_version_known() < SK_FLOW_SCHEMA_VERSION) {
        /* A build whose embedded migrations stop before 010 (the "previous
         * release" of the upgrade test) has no set_flow_control to call. */
        sk_log_warn("event=flow_control_unpublished workflow=%s reason=schema_too_old", w->id);
        return SK_OK;
    }
    snprintf(climit, sizeof(climit), "%d", w->concurrency.limit);
    snprintf(rlimit, sizeof(rlimit), "%d", w->rate.limit);
    snprintf(period, sizeof(period), "%d", w->rate.period_ms);
    snprintf(prio, sizeof(prio), "%d", w->priority);
    if (w->concurrency.limit > 0)
        params[1] = climit;
    if (w->rate.limit > 0) {
        params[3] = rlimit;
        params[4] = period;
    }
    return run_setting(conn, sql, 7, params, "set flow control", err, errlen);
}

/* sql/013_flow_steps.sql: the first schema with set_step_rate. */
#define SK_STEP_RATE_SCHEMA_VERSION 13

/* The step rate a workflow declares (none declared: nothing written). */
static int publish_step_rate(const sk_wf_t *w, PGconn *conn, char *err, size_t errlen)
{
    static const char *sql = "SELECT set_step_rate($1, $2::int, $3::int, $4)";
    char limit[16], period[16];
    const char *params[4] = {w->id, limit, period, w->step_rate.key};

    if (w->step_rate.limit == 0)
        return SK_OK;
    if (sk_schema_version_known() < SK_STEP_RATE_SCHEMA_VERSION) {
        sk_log_warn("event=step_rate_unpublished workflow=%s reason=schema_too_old", w->id);
        return SK_OK;
    }
    snprintf(limit, sizeof(limit), "%d", w->step_rate.limit);
    snprintf(period, sizeof(period), "%d", w->step_rate.period_ms);
    return run_setting(conn, sql, 4, params, "set step rate", err, errlen);
}

int sk_registry_publish(const sk_registry_t *reg, PGconn *conn, char *err, size_t errlen)
{
    static const char *sql =
        "INSERT INTO workflows (workflow_id, max_attempts, events, schedules)"
        " VALUES ($1, $2::int, coalesce(string_to_array(nullif($3, ''), E'\\n'), '{}'),"
        "         coalesce(string_to_array(nullif($4, ''), E'\\n'), '{}'))"
        " ON CONFLICT (workflow_id) DO UPDATE SET max_attempts = EXCLUDED.max_attempts,"
        "   events = EXCLUDED.events, schedules = EXCLUDED.schedules, registered_at = now()";
    int rc = SK_OK;

    for (size_t i = 0; i < reg->n && rc == SK_OK; i++) {
        const sk_wf_t *w = &reg->wfs[i];
        char attempts[16];
        char *events = join_lines(w->events), *scheds = join_lines(w->schedules);
        const char *params[4] = {w->id, attempts, events, scheds};
        PGresult *res;

        if (events == NULL || scheds == NULL) {
            snprintf(err, errlen, "out of memory");
            rc = SK_ERROR;
        } else {
            snprintf(attempts, sizeof(attempts), "%d", w->max_attempts);
            res = PQexecParams(conn, sql, 4, NULL, params, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                sk_pg_error(conn, res, "register workflow", err, errlen);
                rc = SK_ERROR;
            }
            PQclear(res);
        }
        free(events);
        free(scheds);
        if (rc == SK_OK)
            rc = publish_flow(w, conn, err, errlen);
        if (rc == SK_OK)
            rc = publish_step_rate(w, conn, err, errlen);
    }
    return rc;
}
