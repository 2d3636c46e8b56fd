/*
 * sk_supervise - fork, reap and respawn the workers (see sk_supervise.h).
 *
 * Everything here runs in callbacks of the master's default loop; nothing
 * runs in a signal handler.  The only code that runs in a child is
 * run_child(), which turns the fresh process into a worker and never
 * returns.
 */
#include "sk_supervise.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sk_log.h"
#include "sk_metrics.h"
#include "sk_shm.h"
#include "stepkit.h"

#define EXIT_FATAL 2 /* a worker's "configuration or schema" exit code */

static void spawn(sk_sup_t *sup, sk_sup_slot_t *slot);
static void respawn_in(sk_sup_t *sup, sk_sup_slot_t *slot, int64_t delay, const char *why);

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGHUP:
        return "SIGHUP";
    case SIGINT:
        return "SIGINT";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGILL:
        return "SIGILL";
    case SIGABRT:
        return "SIGABRT";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGKILL:
        return "SIGKILL";
    case SIGSEGV:
        return "SIGSEGV";
    case SIGPIPE:
        return "SIGPIPE";
    case SIGTERM:
        return "SIGTERM";
    default:
        return "other";
    }
}

/* xorshift64*: jitter only, no need for more */
static double random_unit(uint64_t *rng)
{
    uint64_t x = *rng;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *rng = x;
    return (double)((x * 0x2545F4914F6CDD1Dull) >> 11) / (double)(1ull << 53);
}

int64_t sk_sup_backoff(uint64_t *rng, int base_ms, int max_ms, int n)
{
    int64_t d = base_ms, max = max_ms;

    for (int i = 0; i < n && d < max; i++)
        d *= 2;
    if (d > max)
        d = max;
    d = (int64_t)((double)d * (0.8 + 0.4 * random_unit(rng)));
    return d < 1 ? 1 : d;
}

/* min(restart_max, restart_base * 2^n), then +-20% */
static int64_t backoff_ms(sk_sup_t *sup, int n)
{
    return sk_sup_backoff(&sup->rng, sup->p.restart_base_ms, sup->p.restart_max_ms, n);
}

static sk_sup_slot_t *slot_by_pid(sk_sup_t *sup, pid_t pid)
{
    for (int i = 0; i < sup->p.workers; i++) {
        if (sup->slots[i].pid == pid && sup->slots[i].state == SK_SUP_RUNNING)
            return &sup->slots[i];
    }
    return NULL;
}

/*
 * Count a crash (uptime_ms: how long the process ran, 0 for a failed fork)
 * and schedule the respawn.  Returns SK_ERROR on a crash loop.
 */
static int record_crash(sk_sup_t *sup, sk_sup_slot_t *slot, int64_t now, int64_t uptime_ms)
{
    const unsigned ring = SK_SUP_CRASH_LIMIT + 1;
    int64_t delay, oldest;

    if (uptime_ms >= SK_SUP_STABLE_MS)
        slot->crash_count = 0; /* it ran well before this crash: start the backoff over */
    slot->crashed_ms = now;
    slot->crash_times[slot->crash_total % ring] = now;
    slot->crash_total++;
    if (slot->crash_total >= ring) {
        oldest = slot->crash_times[slot->crash_total % ring];
        if (now - oldest < SK_SUP_CRASH_WINDOW_MS) {
            slot->state = SK_SUP_EMPTY;
            sk_log_error("event=crash_loop slot=%d crashes=%u window_ms=%d", slot->index, ring,
                         SK_SUP_CRASH_WINDOW_MS);
            return SK_ERROR;
        }
    }
    delay = backoff_ms(sup, slot->crash_count);
    if (slot->crash_count < 62)
        slot->crash_count++;
    respawn_in(sup, slot, delay, "died_at_start");
    return SK_OK;
}

/* Schedule a respawn in delay_ms (0: now, from this callback). */
static void respawn_in(sk_sup_t *sup, sk_sup_slot_t *slot, int64_t delay, const char *why)
{
    sk_log_info("event=worker_respawn_scheduled slot=%d delay_ms=%lld crashes_in_a_row=%d "
                "reason=%s",
                slot->index, (long long)delay, slot->crash_count, why);
    if (delay <= 0) {
        slot->state = SK_SUP_EMPTY;
        spawn(sup, slot);
        return;
    }
    slot->state = SK_SUP_BACKOFF;
    ev_timer_set(&slot->respawn, (double)delay / 1000.0, 0.);
    ev_timer_start(sup->p.loop, &slot->respawn);
}

/*
 * How the worker of `slot` ended, for its next worker: only when the dead
 * one published what it held (else the record of an earlier death, whose
 * item is still unclaimed, stays).  Written before the next fork.
 */
static void record_death(sk_sup_t *sup, sk_sup_slot_t *slot, pid_t pid, int status, int64_t now)
{
    sk_death_t *d = sk_shm_death(sup->p.shm, slot->index);
    const sk_worker_slot_t *ws = sk_shm_slot(sup->p.shm, slot->index);
    sk_inflight_t h;

    if (sk_shm_slot_held(ws, &h) != SK_OK || h.pid != (int32_t)pid)
        return;
    atomic_store_explicit(&d->cause, slot->killed_timeout ? SK_DEATH_STEP_TIMEOUT : SK_DEATH_CRASH,
                          memory_order_relaxed);
    atomic_store_explicit(&d->code, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                          memory_order_relaxed);
    atomic_store_explicit(&d->signo, WIFSIGNALED(status) ? WTERMSIG(status) : 0,
                          memory_order_relaxed);
    atomic_store_explicit(&d->at_ms, now, memory_order_relaxed);
    atomic_fetch_add_explicit(&d->seq, 1, memory_order_relaxed);
    atomic_store_explicit(&d->pid, (int32_t)pid, memory_order_release);
}

static void notify(sk_sup_t *sup, sk_sup_slot_t *slot, sk_sup_event_t ev)
{
    if (sup->p.notify != NULL)
        sup->p.notify(sup, slot->index, ev, sup->p.data);
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
    sk_sup_t *sup = w->data;
    int status = w->rstatus, code = -1;
    pid_t pid = w->rpid;
    sk_sup_slot_t *slot;
    const sk_worker_slot_t *ws;
    int64_t now, uptime;
    int expected, ready;

    (void)loop;
    (void)revents;
    slot = slot_by_pid(sup, pid);
    if (slot == NULL) {
        /* not ours: an orphan re-parented to us when we run as PID 1 */
        sk_log_debug("event=reaped_unknown pid=%d", (int)pid);
        return;
    }
    now = sk_shm_now_ms();
    uptime = now - slot->started_ms;
    ws = sk_shm_slot(sup->p.shm, slot->index);
    /* Trust the slot only if this process had claimed it. */
    ready = atomic_load_explicit(&ws->pid, memory_order_acquire) == (int32_t)pid &&
            atomic_load_explicit(&ws->ready, memory_order_acquire);
    record_death(sup, slot, pid, status, now);
    slot->pid = 0;
    slot->state = SK_SUP_EMPTY;
    slot->stalled = 0;
    if (WIFEXITED(status))
        code = WEXITSTATUS(status);
    expected = !sup->respawn && code != EXIT_FATAL;

    if (WIFEXITED(status))
        sk_log(expected             ? SK_LOG_INFO
               : code == EXIT_FATAL ? SK_LOG_ERROR
                                    : SK_LOG_WARN,
               "event=worker_exit slot=%d pid=%d status=exited code=%d uptime_ms=%lld "
               "generation=%llu",
               slot->index, (int)pid, code, (long long)uptime,
               (unsigned long long)slot->generation);
    else
        sk_log(expected ? SK_LOG_INFO : SK_LOG_WARN,
               "event=worker_exit slot=%d pid=%d status=signaled signal=%d signame=%s core=%d "
               "uptime_ms=%lld generation=%llu",
               slot->index, (int)pid, WTERMSIG(status), signal_name(WTERMSIG(status)),
               WCOREDUMP(status) ? 1 : 0, (long long)uptime, (unsigned long long)slot->generation);

    if (code == EXIT_FATAL) {
        notify(sup, slot, SK_SUP_FATAL);
        return;
    }
    if (!sup->respawn) {
        notify(sup, slot, SK_SUP_EXITED);
        return;
    }
    /* Running normally: any exit, even 0, is a crash.  One that had served
     * is replaced at once; one that died before is a start-up failure. */
    sk_metrics_worker_restart(slot->killed_timeout ? SK_RESTART_STEP_TIMEOUT
                              : WIFEXITED(status)  ? SK_RESTART_EXIT
                                                   : SK_RESTART_SIGNAL);
    if (ready || slot->killed_timeout) {
        slot->crash_count = 0;
        respawn_in(sup, slot, 0, slot->killed_timeout ? "step_timeout" : "died_after_start");
        notify(sup, slot, SK_SUP_CRASHED);
        return;
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
        respawn_in(sup, slot, backoff_ms(sup, slot->crash_count), "killed_at_start");
        notify(sup, slot, SK_SUP_CRASHED);
        return;
    }
    if (record_crash(sup, slot, now, uptime) != SK_OK) {
        notify(sup, slot, SK_SUP_CRASH_LOOP);
        return;
    }
    notify(sup, slot, SK_SUP_CRASHED);
}

static void on_respawn(struct ev_loop *loop, ev_timer *w, int revents)
{
    sk_sup_slot_t *slot = w->data;

    (void)loop;
    (void)revents;
    if (slot->state != SK_SUP_BACKOFF || !slot->sup->respawn)
        return;
    slot->state = SK_SUP_EMPTY;
    spawn(slot->sup, slot);
}

/* ---- the child ------------------------------------------------------------------ */

/*
 * In the new process, with every signal still blocked: drop the master's
 * event loop and handlers, arrange to die with the master, claim the slot
 * and become a worker.  Never returns.
 */
static _Noreturn void run_child(sk_sup_t *sup, sk_sup_slot_t *slot)
{
    struct sigaction dfl;
    sigset_t none;
    sk_heritage_t h;

    /*
     * The master's watchers must not follow us: stopping its ev_signal
     * watchers also detaches those signals from its loop inside libev, so
     * the worker's own loop may take them.  Then the default loop goes
     * (this only closes our copies of its fds).
     */
    if (sup->p.in_child != NULL)
        sup->p.in_child(sup->p.data);
    sk_sup_close(sup);
    ev_loop_destroy(sup->p.loop);

    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP && sig != SIGPIPE) /* SIGPIPE stays ignored */
            (void)sigaction(sig, &dfl, NULL); /* glibc's reserved signals fail: fine */
    }

    /* Die with the master; it may already be gone (then PDEATHSIG never comes). */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != sup->master_pid)
        _exit(1);
    close(sup->p.alive_write_fd); /* else the pipe never reports EOF */

    sk_log_set_role("worker", slot->index);
    if (sk_shm_slot_claim(sk_shm_slot(sup->p.shm, slot->index), getpid()))
        sk_log_warn("event=slot_recovered reason=odd_sequence note=\"the previous worker died "
                    "mid-write; its item is left to its lease\"");

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    h.shm = sup->p.shm;
    h.slot = slot->index;
    h.alive_fd = sup->p.alive_read_fd;
    h.reg = sup->p.reg;
    _exit(sk_worker_main(&h));
}

static void spawn(sk_sup_t *sup, sk_sup_slot_t *slot)
{
    sigset_t all, old;
    pid_t pid;
    int saved;

    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    fflush(NULL);
    pid = fork();
    if (pid == 0)
        run_child(sup, slot);
    saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);

    if (pid < 0) {
        sk_log_error("event=fork_failed slot=%d error=\"%s\"", slot->index, strerror(saved));
        sk_metrics_worker_restart(SK_RESTART_FORK);
        if (record_crash(sup, slot, sk_shm_now_ms(), 0) != SK_OK)
            notify(sup, slot, SK_SUP_CRASH_LOOP);
        else
            notify(sup, slot, SK_SUP_CRASHED);
        return;
    }
    slot->pid = pid;
    slot->state = SK_SUP_RUNNING;
    slot->started_ms = sk_shm_now_ms();
    slot->generation++;
    slot->stalled = 0;
    slot->killed_timeout = 0;
    sk_log_info("event=worker_start slot=%d pid=%d generation=%llu", slot->index, (int)pid,
                (unsigned long long)slot->generation);
}

/* ---- the master's side ---------------------------------------------------------------- */

int sk_sup_init(sk_sup_t *sup, const sk_sup_params_t *params)
{
    struct timespec ts;

    if (params->workers < 1 || params->workers > SK_MAX_WORKERS || params->loop == NULL ||
        params->shm == NULL || sk_shm_slots(params->shm) < params->workers)
        return SK_ERROR;
    memset(sup, 0, sizeof(*sup));
    sup->p = *params;
    sup->master_pid = getpid();
    sup->respawn = 1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    sup->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
    if (sup->rng == 0)
        sup->rng = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < params->workers; i++) {
        sk_sup_slot_t *slot = &sup->slots[i];
        slot->index = i;
        slot->sup = sup;
        slot->state = SK_SUP_EMPTY;
        ev_timer_init(&slot->respawn, on_respawn, 0., 0.);
        slot->respawn.data = slot;
    }
    /* pid 0: every child, ours or an orphan; libev reaps them all */
    ev_child_init(&sup->child, on_child, 0, 0);
    sup->child.data = sup;
    ev_child_start(sup->p.loop, &sup->child);
    return SK_OK;
}

void sk_sup_start(sk_sup_t *sup)
{
    for (int i = 0; i < sup->p.workers && sup->respawn; i++) {
        if (sup->slots[i].state == SK_SUP_EMPTY)
            spawn(sup, &sup->slots[i]);
    }
}

void sk_sup_stop_respawning(sk_sup_t *sup)
{
    sup->respawn = 0;
    for (int i = 0; i < sup->p.workers; i++) {
        sk_sup_slot_t *slot = &sup->slots[i];
        if (slot->state == SK_SUP_BACKOFF) {
            ev_timer_stop(sup->p.loop, &slot->respawn);
            slot->state = SK_SUP_EMPTY;
        }
    }
}

int sk_sup_signal_all(sk_sup_t *sup, int sig)
{
    int n = 0;

    for (int i = 0; i < sup->p.workers; i++) {
        sk_sup_slot_t *slot = &sup->slots[i];
        if (slot->state != SK_SUP_RUNNING || slot->pid <= 0)
            continue;
        /* Not reaped yet, so the pid is still ours even if the process has exited. */
        if (kill(slot->pid, sig) == 0)
            n++;
        else
            sk_log_warn("event=kill_failed slot=%d pid=%d signal=%d error=\"%s\"", slot->index,
                        (int)slot->pid, sig, strerror(errno));
    }
    return n;
}

int sk_sup_live(const sk_sup_t *sup)
{
    int n = 0;

    for (int i = 0; i < sup->p.workers; i++)
        n += sup->slots[i].state == SK_SUP_RUNNING;
    return n;
}

void sk_sup_check_stalls(sk_sup_t *sup, int64_t now_ms, int64_t stall_ms)
{
    char run[48];

    for (int i = 0; i < sup->p.workers; i++) {
        sk_sup_slot_t *slot = &sup->slots[i];
        const sk_worker_slot_t *ws;
        int32_t st;
        int64_t hb, deadline;

        if (slot->state != SK_SUP_RUNNING)
            continue;
        ws = sk_shm_slot(sup->p.shm, i);
        /* A slot still showing an earlier process is not this worker's yet. */
        if (atomic_load_explicit(&ws->pid, memory_order_acquire) != (int32_t)slot->pid)
            continue;
        deadline = atomic_load_explicit(&ws->deadline_ms, memory_order_acquire);
        if (deadline != 0) {
            sk_inflight_t h;
            if (now_ms <= deadline || slot->killed_timeout)
                continue;
            /* Bounded read: a stopped writer must not hold the master. */
            (void)sk_shm_slot_held(ws, &h);
            if (kill(slot->pid, SIGKILL) != 0) {
                sk_log_warn("event=kill_failed slot=%d pid=%d signal=SIGKILL error=\"%s\"", i,
                            (int)slot->pid, strerror(errno));
                continue;
            }
            slot->killed_timeout = 1;
            slot->killed_ms = now_ms;
            sk_log_warn("event=step_timeout slot=%d pid=%d run=%s step=%s timeout_ms=%lld "
                        "overdue_ms=%lld action=SIGKILL",
                        i, (int)slot->pid, h.run_id[0] ? h.run_id : "unknown",
                        h.step_id[0] ? h.step_id : "unknown", (long long)h.timeout_ms,
                        (long long)(now_ms - deadline));
            continue;
        }
        st = atomic_load_explicit(&ws->state, memory_order_relaxed);
        if (st != SK_WORKER_BUSY && st != SK_WORKER_IDLE)
            continue;
        hb = atomic_load_explicit(&ws->heartbeat_ms, memory_order_relaxed);
        if (now_ms - hb > stall_ms) {
            if (slot->stalled && slot->stalled_hb == hb)
                continue; /* already reported this stall */
            sk_shm_slot_run(ws, run, sizeof(run));
            sk_log_warn("event=worker_stalled slot=%d pid=%d state=%s heartbeat_age_ms=%lld "
                        "run=%s",
                        i, (int)slot->pid, st == SK_WORKER_BUSY ? "busy" : "idle",
                        (long long)(now_ms - hb), run[0] ? run : "-");
            slot->stalled = 1;
            slot->stalled_hb = hb;
        } else if (slot->stalled) {
            sk_log_info("event=worker_recovered slot=%d pid=%d", i, (int)slot->pid);
            slot->stalled = 0;
        }
    }
}

void sk_sup_close(sk_sup_t *sup)
{
    for (int i = 0; i < sup->p.workers; i++)
        ev_timer_stop(sup->p.loop, &sup->slots[i].respawn);
    ev_child_stop(sup->p.loop, &sup->child);
}
