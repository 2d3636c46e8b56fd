/*
 * sk_renew - lease renewal while a body runs (see sk_renew.h).
 *
 * One mutex and one condition variable (on CLOCK_MONOTONIC) between the
 * worker's main thread, which only sets what to renew and until when, and
 * the renewal thread, which does every database call on its own blocking
 * connection (connect_timeout and statement_timeout bound each call).  The
 * thread blocks every signal: they belong to the main thread's loop.
 */
#include "sk_renew.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "sk_log.h"
#include "stepkit.h"

#define RENEW_RETRY_MS 1000 /* after a failed renewal */

static const char renew_sql[] =
    "UPDATE exec_queue SET visible_at = greatest(visible_at,"
    "                                            now() + $3::int8 * interval '1 millisecond')"
    " WHERE item_id = $1::int8 AND epoch = $2::int4 AND leased";

struct sk_renew {
    const sk_config_t *cfg;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int started;
    int quit;
    /* what to renew (under mu) */
    int active;
    uint64_t gen; /* +1 per body: a renewal of an earlier body is not rescheduled */
    int64_t item;
    int32_t epoch;
    int64_t deadline_ms;
    int64_t next_ms; /* next renewal due */
    uint64_t renewed;
    PGconn *pg;       /* the thread's own */
    pid_t master_pid; /* the worker's parent when it started */
};

/* How often a running body's thread checks that the master is alive. */
#define MASTER_CHECK_MS 250

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t period_ms(const sk_renew_t *r)
{
    int64_t p = r->cfg->lease_ms / 3;

    return p < 1 ? 1 : p;
}

/* Thread side: a connection whose search_path is our schema, or NULL. */
static PGconn *connection(sk_renew_t *r)
{
    const char *keys[] = {"dbname", "fallback_application_name", "connect_timeout", "options",
                          NULL};
    const char *vals[] = {r->cfg->database_url[0] ? r->cfg->database_url : NULL, "stepkit-renew",
                          "5", "-c statement_timeout=5000", NULL};
    const char *params[1] = {r->cfg->schema};
    PGresult *res;

    if (r->pg != NULL && PQstatus(r->pg) == CONNECTION_OK)
        return r->pg;
    if (r->pg != NULL)
        PQfinish(r->pg);
    r->pg = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(r->pg) != CONNECTION_OK) {
        sk_log_warn("event=renew_connect_failed error=\"%.*s\"",
                    (int)strcspn(PQerrorMessage(r->pg), "\n\""), PQerrorMessage(r->pg));
        PQfinish(r->pg);
        r->pg = NULL;
        return NULL;
    }
    res = PQexecParams(r->pg, "SELECT pg_catalog.set_config('search_path', $1, false)", 1, NULL,
                       params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        PQfinish(r->pg);
        r->pg = NULL;
        return NULL;
    }
    PQclear(res);
    sk_log_debug("event=renew_connected");
    return r->pg;
}

/* Thread side: 1 renewed, 0 the lease is no longer ours, -1 failed. */
static int renew_once(sk_renew_t *r, int64_t item, int32_t epoch)
{
    char item_s[24], epoch_s[16], lease_s[16];
    const char *params[3] = {item_s, epoch_s, lease_s};
    PGconn *pg = connection(r);
    PGresult *res;
    int rc;

    if (pg == NULL)
        return -1;
    snprintf(item_s, sizeof(item_s), "%lld", (long long)item);
    snprintf(epoch_s, sizeof(epoch_s), "%d", (int)epoch);
    snprintf(lease_s, sizeof(lease_s), "%d", r->cfg->lease_ms);
    res = PQexecParams(pg, renew_sql, 3, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        sk_log_warn("event=renew_failed item=%lld error=\"%.*s\"", (long long)item,
                    (int)strcspn(PQresultErrorMessage(res), "\n\""), PQresultErrorMessage(res));
        rc = -1;
    } else {
        rc = strcmp(PQcmdTuples(res), "1") == 0 ? 1 : 0;
    }
    PQclear(res);
    return rc;
}

/* An idle thread wakes this often on its own, so that sk_renew_begin need
 * not wake it (a wake-up per step was two context switches per step): a
 * body that begins meanwhile gets its first master check and its first
 * renewal on time, since neither is due sooner than this. */
static int64_t idle_wait_ms(const sk_renew_t *r)
{
    int64_t p = period_ms(r);

    return p < MASTER_CHECK_MS ? p : MASTER_CHECK_MS;
}

static void *thread_main(void *arg)
{
    sk_renew_t *r = arg;

    pthread_mutex_lock(&r->mu);
    while (!r->quit) {
        int64_t now = mono_ms(), item, due;
        int32_t epoch;
        uint64_t gen;
        struct timespec ts;
        int rc;

        if (r->active && getppid() != r->master_pid) {
            /* The master died while user code holds the main thread: the
             * loop that serves PDEATHSIG and the alive pipe runs only
             * between steps, and a hung body would keep this worker (and
             * its item) forever.  The attempt counts like any death. */
            sk_log_warn("event=master_gone_during_body item=%lld action=exit", (long long)r->item);
            _exit(1);
        }
        if (!r->active || now >= r->deadline_ms || now < r->next_ms) {
            /* Idle, past the deadline (the master takes over), or not due;
             * while a body runs, look at the master every MASTER_CHECK_MS. */
            due = !r->active ? now + idle_wait_ms(r)
                  : now >= r->deadline_ms
                      ? now + MASTER_CHECK_MS
                      : (r->next_ms < now + MASTER_CHECK_MS ? r->next_ms : now + MASTER_CHECK_MS);
            ts.tv_sec = due / 1000;
            ts.tv_nsec = (due % 1000) * 1000000L;
            pthread_cond_timedwait(&r->cv, &r->mu, &ts);
            continue;
        }
        item = r->item;
        epoch = r->epoch;
        gen = r->gen;
        pthread_mutex_unlock(&r->mu);
        rc = renew_once(r, item, epoch);
        pthread_mutex_lock(&r->mu);
        if (rc > 0)
            r->renewed++;
        if (gen != r->gen)
            continue; /* that body is over; the next one has its own schedule */
        if (rc == 0) {
            r->active = 0; /* handed back or taken over: nothing left to keep */
            sk_log_warn("event=renew_lease_lost item=%lld epoch=%d", (long long)item, (int)epoch);
        } else {
            r->next_ms = mono_ms() + (rc > 0 ? period_ms(r) : RENEW_RETRY_MS);
            sk_log_debug("event=lease_renewed item=%lld ok=%d", (long long)item, rc > 0);
        }
    }
    pthread_mutex_unlock(&r->mu);
    if (r->pg != NULL)
        PQfinish(r->pg);
    r->pg = NULL;
    return NULL;
}

sk_renew_t *sk_renew_new(const sk_config_t *cfg)
{
    sk_renew_t *r = calloc(1, sizeof(*r));
    pthread_condattr_t ca;

    if (r == NULL)
        return NULL;
    r->cfg = cfg;
    r->master_pid = getppid();
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    return r;
}

static int start_thread(sk_renew_t *r)
{
    sigset_t all, old;
    int rc;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* the new thread inherits: no signal for it */
    rc = pthread_create(&r->thread, NULL, thread_main, r);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        sk_log_error("event=renew_thread_failed error=\"%s\"", strerror(rc));
        return SK_ERROR;
    }
    r->started = 1;
    return SK_OK;
}

void sk_renew_begin(sk_renew_t *r, int64_t item, int32_t epoch, int64_t deadline_ms)
{
    if (r == NULL || (!r->started && start_thread(r) != SK_OK))
        return;
    pthread_mutex_lock(&r->mu);
    r->active = 1;
    r->gen++;
    r->item = item;
    r->epoch = epoch;
    r->deadline_ms = deadline_ms;
    r->next_ms = mono_ms() + period_ms(r);
    pthread_mutex_unlock(&r->mu); /* no signal: see idle_wait_ms */
}

void sk_renew_touch(sk_renew_t *r, int64_t deadline_ms)
{
    if (r == NULL || !r->started)
        return;
    pthread_mutex_lock(&r->mu);
    if (r->active) {
        r->deadline_ms = deadline_ms;
        r->next_ms = 0; /* at once */
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
}

void sk_renew_end(sk_renew_t *r)
{
    if (r == NULL || !r->started)
        return;
    pthread_mutex_lock(&r->mu);
    r->active = 0;
    r->gen++;
    pthread_mutex_unlock(&r->mu);
}

uint64_t sk_renew_count(sk_renew_t *r)
{
    uint64_t n;

    if (r == NULL)
        return 0;
    pthread_mutex_lock(&r->mu);
    n = r->renewed;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void sk_renew_free(sk_renew_t *r)
{
    if (r == NULL)
        return;
    if (r->started) {
        pthread_mutex_lock(&r->mu);
        r->quit = 1;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
