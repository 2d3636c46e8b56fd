/*
 * The worker process: a libev loop around its own connection.  It waits
 * for work with LISTEN/NOTIFY plus a backoff poll and a timer for the
 * earliest future item, and executes runs one at a time (sk_exec).  A
 * periodic watcher wakes its cron scheduler (sk_sched) at the next tick.
 * SIGUSR2 from a sibling says "more work is ready": claim.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>

#include "sk_exec.h"
#include "sk_heritage.h"
#include "sk_log.h"
#include "sk_metrics.h"
#include "sk_prune.h"
#include "sk_sched.h"
#include "sk_wconn.h"
#include "stepkit.h"

#define HEARTBEAT_S 1.0

#define CRON_RETRY_S 1.0    /* after a failed cron batch */
#define CRON_IDLE_S  3600.0 /* no tick known: search again after this */

typedef struct {
    struct ev_loop *loop;
    const sk_heritage_t *h;
    sk_config_t cfg;
    sk_worker_slot_t *slot;
    pid_t master_pid;
    sk_wconn_t *conn;
    sk_exec_t *exec;
    sk_sched_t *sched;
    ev_signal sig_term, sig_int, sig_quit, sig_hup, sig_more;
    ev_io alive;
    ev_timer poll, due, heartbeat;
    ev_periodic cron;     /* wall clock: the next cron tick */
    ev_timer prune;       /* retention: the next prune batch (--retention) */
    int64_t retention_ms; /* -1: off */
    int poll_ms;
    int busy;   /* inside sk_exec_work: callbacks only take note */
    int wanted; /* work was asked for while busy */
    int stopping;
    int exit_code;
    int cron_wanted; /* a cron tick came while busy: fire after */
} worker_t;

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_state(worker_t *w, sk_worker_state_t st)
{
    atomic_store(&w->slot->state, (int32_t)st);
}

static void begin_stop(worker_t *w, const char *why)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    set_state(w, SK_WORKER_DRAINING);
    sk_log_info("event=worker_stopping reason=%s", why);
    if (w->busy)
        return; /* the executor yields at its next step; the loop ends after */
    sk_wconn_quiet(w->conn);
    ev_break(w->loop, EVBREAK_ALL);
}

/* Also asked by the executor between a run's entries and between runs,
 * never from inside a handler (no user code is on the stack). */
static int must_stop(void *arg)
{
    worker_t *w = arg;
    sk_master_state_t ms;

    /* Serve signals and the alive pipe between steps: a long queue must
     * not delay a shutdown.  Re-entry into the executor is guarded by busy. */
    ev_run(w->loop, EVRUN_NOWAIT);
    if (w->stopping)
        return 1;
    ms = sk_shm_master_state(w->h->shm);
    if (ms >= SK_MASTER_DRAINING)
        begin_stop(w, "master_draining");
    else if (getppid() != w->master_pid)
        begin_stop(w, "master_gone");
    return w->stopping;
}

static void arm_timers(worker_t *w, int worked, int64_t next_due_ms)
{
    ev_timer_stop(w->loop, &w->poll);
    ev_timer_stop(w->loop, &w->due);
    if (w->stopping)
        return;
    /* Poll at the interval while there is work, doubling to the cap while idle. */
    w->poll_ms = worked
                     ? w->cfg.poll_interval_ms
                     : (w->poll_ms * 2 > w->cfg.poll_max_ms ? w->cfg.poll_max_ms : w->poll_ms * 2);
    ev_timer_set(&w->poll, w->poll_ms / 1000.0, 0.);
    ev_timer_start(w->loop, &w->poll);
    /* A future item (retry, sleep, lease expiry) due before the next poll. */
    if (next_due_ms > 0 && next_due_ms < w->poll_ms) {
        ev_timer_set(&w->due, (double)next_due_ms / 1000.0 + 0.001, 0.);
        ev_timer_start(w->loop, &w->due);
    }
}

static void cron_fire(worker_t *w);

static void work(worker_t *w)
{
    int64_t next_due = -1;
    int worked = 0, any = 0;

    if (w->busy) {
        w->wanted = 1;
        return;
    }
    if (w->stopping || !sk_wconn_ready(w->conn))
        return;
    w->busy = 1;
    /* When it went busy: a sibling woken by the same notification sees that
     * this worker took it (lower_sibling_answers). */
    atomic_store(&w->slot->heartbeat_ms, mono_ms());
    do {
        w->wanted = 0;
        sk_wconn_take_notified(w->conn);
        set_state(w, SK_WORKER_BUSY);
        if (sk_exec_work(w->exec, &next_due, &worked) != SK_OK)
            break;
        any |= worked;
    } while (!w->stopping && (w->wanted || sk_wconn_take_notified(w->conn)));
    w->busy = 0;
    if (w->stopping) {
        begin_stop(w, "stopping");
        sk_wconn_quiet(w->conn);
        ev_break(w->loop, EVBREAK_ALL);
        return;
    }
    set_state(w, SK_WORKER_IDLE);
    arm_timers(w, any, next_due);
    if (w->cron_wanted)
        cron_fire(w);
}

/* Fire the due cron ticks, arm the periodic for the next one, and claim
 * the runs just started (their notification was read during the batch). */
static void cron_fire(worker_t *w)
{
    int64_t next;
    int fired = 0, rc;
    ev_tstamp at;

    w->cron_wanted = 0;
    ev_periodic_stop(w->loop, &w->cron);
    if (sk_sched_count(w->sched) == 0 || w->stopping || !sk_wconn_ready(w->conn))
        return; /* on_ready fires again after a reconnect */
    if (w->busy) {
        w->cron_wanted = 1; /* after the run at hand; idle workers fire on time */
        return;
    }
    rc = sk_sched_run(w->sched, w->conn, wall_ms(), &fired);
    if (!sk_wconn_ready(w->conn))
        return;
    next = sk_sched_next(w->sched);
    at = rc != SK_OK ? ev_time() + CRON_RETRY_S
         : next < 0  ? ev_time() + CRON_IDLE_S
                     : (ev_tstamp)next / 1000.0 + 0.001;
    ev_periodic_set(&w->cron, at, 0., 0);
    ev_periodic_start(w->loop, &w->cron);
    if (fired > 0 || sk_wconn_take_notified(w->conn))
        work(w);
}

/*
 * One retention batch.  Also called while a run executes: the timer fires
 * from must_stop's non-blocking loop pass, between two of the run's
 * entries, when the connection is idle with no transaction open, so
 * a busy worker still prunes (under steady load it may never go idle).
 */
static void prune_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    worker_t *w = t->data;
    int deleted = 0;
    int64_t took_ms = 0;

    (void)loop;
    (void)revents;
    if (w->stopping || !sk_wconn_ready(w->conn))
        return; /* on_ready arms it again after a reconnect */
    if (sk_prune_once(w->conn, w->retention_ms, &deleted, &took_ms) != SK_OK)
        deleted = 0;
    if (!sk_wconn_ready(w->conn))
        return;
    ev_timer_set(&w->prune, sk_prune_next_s(w->retention_ms, deleted, took_ms, w->cfg.workers), 0.);
    ev_timer_start(w->loop, &w->prune);
}

static void on_ready(void *arg)
{
    worker_t *w = arg;

    if (w->busy) {
        w->wanted = 1; /* reconnected between a run's steps: look for work after it */
        return;
    }
    /* A dead worker of this slot may have left an item: hand it back before
     * claiming anything (its lease would otherwise run out first). */
    if (sk_exec_reclaim(w->exec, sk_shm_death(w->h->shm, w->h->slot)) != SK_OK &&
        !sk_wconn_ready(w->conn))
        return; /* the connection went: on_ready comes again */
    w->poll_ms = w->cfg.poll_interval_ms;
    if (w->retention_ms >= 0 && !ev_is_active(&w->prune)) {
        ev_timer_set(&w->prune, sk_prune_next_s(w->retention_ms, 0, 0, w->cfg.workers), 0.);
        ev_timer_start(w->loop, &w->prune);
    }
    set_state(w, SK_WORKER_IDLE);
    cron_fire(w);
    work(w);
}

#define SIBLING_FRESH_MS 3000 /* a slot whose heartbeat is older is not trusted */
#define JUST_BUSY_MS     50   /* a sibling busy since then took the notification */

static int sibling_idle(worker_t *w, int i, int64_t now)
{
    sk_worker_slot_t *s = sk_shm_slot(w->h->shm, i);

    return i != w->h->slot && atomic_load(&s->state) == SK_WORKER_IDLE &&
           now - atomic_load(&s->heartbeat_ms) < SIBLING_FRESH_MS;
}

/*
 * A notification wakes every idle worker, but one claim answers it: the
 * lowest idle worker of this master claims, the others go back to sleep
 * (a lower sibling that went busy in the last JUST_BUSY_MS is taken to be
 * answering it: the siblings wake together, and the lowest is often busy
 * already when the others look; one whose heartbeat tick fell there is
 * mistaken for it, and the item waits for its next claim or the poll).
 * When a claim takes an item and sees another one ready, its worker wakes
 * the lowest idle sibling with SIGUSR2 (on_more), which claims and passes
 * it on the same way: a burst spreads over the pool in a few round trips,
 * and a lone run (W3) costs one claim instead of one per idle worker.
 * (Each idle sibling used to look again 2 ms after every notification and
 * claim if the lower ones were busy: for a lone run that is one empty
 * claim per idle worker, on the cores the run needs.)  Sibling slots are
 * only read here; each is written by its own worker.  Polls and timers
 * claim directly.
 */
static int lower_sibling_answers(worker_t *w)
{
    int64_t now = mono_ms();

    for (int i = 0; i < w->h->slot; i++) {
        sk_worker_slot_t *s = sk_shm_slot(w->h->shm, i);
        if (sibling_idle(w, i, now) || (atomic_load(&s->state) == SK_WORKER_BUSY &&
                                        now - atomic_load(&s->heartbeat_ms) < JUST_BUSY_MS))
            return 1;
    }
    return 0;
}

static void on_more(void *arg)
{
    worker_t *w = arg;
    int64_t now = mono_ms();

    for (int i = 0; i < sk_shm_slots(w->h->shm); i++) {
        pid_t pid = (pid_t)atomic_load(&sk_shm_slot(w->h->shm, i)->pid);
        if (pid > 0 && sibling_idle(w, i, now)) {
            kill(pid, SIGUSR2);
            return;
        }
    }
}

static void on_notify(void *arg)
{
    worker_t *w = arg;

    sk_metrics_count(SK_MC_WAKE_NOTIFY);
    if (!w->busy && lower_sibling_answers(w))
        return; /* the lower one claims, and wakes us if there is more */
    work(w);
}

static void on_lost(void *arg)
{
    worker_t *w = arg;

    set_state(w, SK_WORKER_CONNECTING);
    ev_periodic_stop(w->loop, &w->cron);
    if (sk_wconn_fatal(w->conn)) {
        w->exit_code = sk_wconn_fatal(w->conn);
        begin_stop(w, "fatal");
        ev_break(w->loop, EVBREAK_ALL);
    }
}

static void timer_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    worker_t *w = t->data;

    (void)loop;
    (void)revents;
    sk_metrics_count(t == &w->poll ? SK_MC_WAKE_POLL : SK_MC_WAKE_TIMER);
    work(w);
}

static void cron_cb(struct ev_loop *loop, ev_periodic *p, int revents)
{
    (void)loop;
    (void)revents;
    cron_fire(p->data);
}

static void heartbeat_cb(struct ev_loop *loop, ev_timer *t, int revents)
{
    worker_t *w = t->data;

    (void)loop;
    (void)revents;
    atomic_store(&w->slot->heartbeat_ms, mono_ms());
    if (sk_shm_master_state(w->h->shm) >= SK_MASTER_DRAINING)
        begin_stop(w, "master_draining");
}

static void signal_cb(struct ev_loop *loop, ev_signal *s, int revents)
{
    worker_t *w = s->data;

    (void)loop;
    (void)revents;
    switch (s->signum) {
    case SIGQUIT:
        w->exit_code = 1;
        sk_log_warn("event=worker_quit");
        w->stopping = 1;
        ev_break(w->loop, EVBREAK_ALL);
        break;
    case SIGHUP:
        break; /* configuration is the master's; it restarts us to change it */
    case SIGUSR2:
        work(w); /* a sibling saw more ready work (on_more) */
        break;
    default:
        begin_stop(w, s->signum == SIGTERM ? "sigterm" : "sigint");
        break;
    }
}

static void alive_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    worker_t *w = io->data;
    char buf[64];
    ssize_t n;

    (void)revents;
    n = read(io->fd, buf, sizeof(buf));
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        ev_io_stop(loop, io);
        begin_stop(w, "master_gone");
    }
}

int sk_worker_main(const sk_heritage_t *h)
{
    worker_t w;
    char err[256];

    memset(&w, 0, sizeof(w));
    w.h = h;
    w.slot = sk_shm_slot(h->shm, h->slot);
    w.master_pid = sk_shm_master_pid(h->shm);
    sk_shm_read_config(h->shm, &w.cfg);
    sk_log_level = w.cfg.log_level;
    sk_log_format = w.cfg.log_format;
    sk_metrics_attach_slot(h->slot);
    srandom((unsigned)(getpid() ^ time(NULL)));
    atomic_store(&w.slot->pid, (int32_t)getpid());
    atomic_store(&w.slot->heartbeat_ms, mono_ms());
    set_state(&w, SK_WORKER_CONNECTING);
    w.exit_code = 0;
    w.poll_ms = w.cfg.poll_interval_ms;

    w.loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
    if (w.loop == NULL) {
        sk_log_error("event=worker_start_failed reason=ev_loop_new");
        return 1;
    }
    sk_wconn_cb_t cb = {.ready = on_ready, .notify = on_notify, .lost = on_lost, .arg = &w};
    w.conn = sk_wconn_new(w.loop, &w.cfg, &cb);
    w.exec = w.conn ? sk_exec_new(w.conn, &w.cfg, h->reg, w.slot, must_stop, &w) : NULL;
    if (w.exec == NULL) {
        sk_log_error("event=worker_start_failed reason=out_of_memory");
        w.exit_code = 1;
        goto done;
    }
    sk_exec_on_more(w.exec, on_more, &w);
    w.sched = sk_sched_new(h->reg, err, sizeof(err));
    if (w.sched == NULL) {
        sk_log_error("event=worker_start_failed reason=cron error=\"%s\"", err);
        w.exit_code = 1;
        goto done;
    }
    ev_signal_init(&w.sig_term, signal_cb, SIGTERM);
    ev_signal_init(&w.sig_int, signal_cb, SIGINT);
    ev_signal_init(&w.sig_quit, signal_cb, SIGQUIT);
    ev_signal_init(&w.sig_hup, signal_cb, SIGHUP);
    ev_signal_init(&w.sig_more, signal_cb, SIGUSR2);
    w.sig_term.data = w.sig_int.data = w.sig_quit.data = w.sig_hup.data = w.sig_more.data = &w;
    ev_signal_start(w.loop, &w.sig_term);
    ev_signal_start(w.loop, &w.sig_int);
    ev_signal_start(w.loop, &w.sig_quit);
    ev_signal_start(w.loop, &w.sig_hup);
    ev_signal_start(w.loop, &w.sig_more);
    signal(SIGPIPE, SIG_IGN);
    if (h->alive_fd >= 0) {
        ev_io_init(&w.alive, alive_cb, h->alive_fd, EV_READ);
        w.alive.data = &w;
        ev_io_start(w.loop, &w.alive);
    }
    ev_init(&w.poll, timer_cb);
    ev_init(&w.due, timer_cb);
    w.poll.data = w.due.data = &w;
    ev_periodic_init(&w.cron, cron_cb, 0., 0., 0);
    w.cron.data = &w;
    ev_init(&w.prune, prune_cb);
    w.prune.data = &w;
    w.retention_ms = sk_prune_retention_ms(&w.cfg);
    ev_timer_init(&w.heartbeat, heartbeat_cb, HEARTBEAT_S, HEARTBEAT_S);
    w.heartbeat.data = &w;
    ev_timer_start(w.loop, &w.heartbeat);

    sk_log_info("event=worker_started lease_ms=%d poll_ms=%d", w.cfg.lease_ms,
                w.cfg.poll_interval_ms);
    sk_wconn_connect(w.conn, 0);
    ev_run(w.loop, 0);
done:
    set_state(&w, SK_WORKER_EXITED);
    sk_log_info("event=worker_exit code=%d", w.exit_code);
    sk_sched_free(w.sched);
    sk_exec_free(w.exec);
    sk_wconn_free(w.conn);
    if (w.loop != NULL)
        ev_loop_destroy(w.loop);
    return w.exit_code;
}
