/*
 * sk_aux - fork, reap and restart the auxiliary (HTTP) process (see sk_aux.h).
 */
#include "sk_aux.h"

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
#include "sk_supervise.h"
#include "stepkit.h"

#define AUX_STABLE_MS   60000
#define AUX_EXIT_FATAL  2
#define HEARTBEAT_EVERY 1.0

static void spawn(sk_aux_t *a);

static void on_heartbeat(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)w;
    (void)revents;
    sk_metrics_master_heartbeat(sk_shm_now_ms());
}

static void schedule_restart(sk_aux_t *a, int64_t uptime_ms)
{
    int64_t d;

    if (uptime_ms >= AUX_STABLE_MS)
        a->crash_count = 0;
    d = sk_sup_backoff(&a->rng, a->p.restart_base_ms, a->p.restart_max_ms, a->crash_count);
    if (a->crash_count < 62)
        a->crash_count++;
    ev_timer_set(&a->restart, (double)d / 1000.0, 0.);
    ev_timer_start(a->p.loop, &a->restart);
    sk_log_info("event=http_respawn_scheduled delay_ms=%lld crashes_in_a_row=%d", (long long)d,
                a->crash_count);
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
    sk_aux_t *a = w->data;
    int status = w->rstatus, code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int64_t uptime = sk_shm_now_ms() - a->started_ms;

    (void)revents;
    ev_child_stop(loop, w);
    a->pid = 0;
    if (WIFEXITED(status))
        sk_log(!a->respawn              ? SK_LOG_INFO
               : code == AUX_EXIT_FATAL ? SK_LOG_ERROR
                                        : SK_LOG_WARN,
               "event=http_exit pid=%d status=exited code=%d uptime_ms=%lld", (int)w->rpid, code,
               (long long)uptime);
    else
        sk_log(!a->respawn ? SK_LOG_INFO : SK_LOG_WARN,
               "event=http_exit pid=%d status=signaled signal=%d uptime_ms=%lld", (int)w->rpid,
               WTERMSIG(status), (long long)uptime);
    if (a->respawn && code == AUX_EXIT_FATAL) {
        /* The address cannot be served: retrying will not help.  Workers go on. */
        sk_log_error("event=http_disabled reason=\"cannot serve the --http address (see "
                     "http_listen_failed)\"");
        a->respawn = 0;
    }
    if (a->respawn) {
        schedule_restart(a, uptime);
        return;
    }
    if (a->p.on_exit != NULL)
        a->p.on_exit(a->p.arg);
}

static void on_restart(struct ev_loop *loop, ev_timer *w, int revents)
{
    sk_aux_t *a = w->data;

    (void)loop;
    (void)revents;
    if (a->respawn && a->pid == 0)
        spawn(a);
}

/* In the new process: the same steps as a worker's (STYLE 5).  Never returns. */
static _Noreturn void run_child(sk_aux_t *a)
{
    struct sigaction dfl;
    sigset_t none;

    if (a->p.in_child != NULL)
        a->p.in_child(a->p.arg);
    sk_aux_close(a);
    ev_loop_destroy(a->p.loop);
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sig != SIGKILL && sig != SIGSTOP && sig != SIGPIPE)
            (void)sigaction(sig, &dfl, NULL);
    }
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != a->master_pid)
        _exit(1);
    (void)prctl(PR_SET_NAME, "stepkit-http");
    if (a->p.alive_write_fd >= 0)
        close(a->p.alive_write_fd);
    sk_log_set_role("http", -1);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    _exit(a->p.main(a->p.arg));
}

static void spawn(sk_aux_t *a)
{
    sigset_t all, old;
    pid_t pid;
    int saved;

    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    fflush(NULL);
    pid = fork();
    if (pid == 0)
        run_child(a);
    saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        sk_log_error("event=http_fork_failed error=\"%s\"", strerror(saved));
        schedule_restart(a, 0);
        return;
    }
    a->pid = pid;
    a->started_ms = sk_shm_now_ms();
    ev_child_set(&a->child, pid, 0);
    ev_child_start(a->p.loop, &a->child);
    sk_log_info("event=http_start pid=%d", (int)pid);
}

void sk_aux_start(sk_aux_t *a, const sk_aux_params_t *p)
{
    struct timespec ts;

    memset(a, 0, sizeof(*a));
    a->p = *p;
    a->master_pid = getpid();
    a->respawn = 1;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    a->rng = ((uint64_t)ts.tv_nsec << 17) ^ (uint64_t)ts.tv_sec ^ 0x9E3779B97F4A7C15ull;
    ev_child_init(&a->child, on_child, 0, 0);
    a->child.data = a;
    ev_timer_init(&a->restart, on_restart, 0., 0.);
    a->restart.data = a;
    ev_timer_init(&a->heartbeat, on_heartbeat, 0., HEARTBEAT_EVERY);
    a->heartbeat.data = a;
    sk_metrics_master_heartbeat(sk_shm_now_ms());
    ev_timer_start(a->p.loop, &a->heartbeat);
    spawn(a);
}

void sk_aux_stop(sk_aux_t *a, int sig)
{
    a->respawn = 0;
    ev_timer_stop(a->p.loop, &a->restart);
    if (a->pid > 0 && kill(a->pid, sig) != 0)
        sk_log_warn("event=kill_failed role=http pid=%d signal=%d error=\"%s\"", (int)a->pid, sig,
                    strerror(errno));
}

int sk_aux_live(const sk_aux_t *a)
{
    return a->pid > 0;
}

void sk_aux_close(sk_aux_t *a)
{
    if (a->p.loop == NULL)
        return;
    ev_child_stop(a->p.loop, &a->child);
    ev_timer_stop(a->p.loop, &a->restart);
    ev_timer_stop(a->p.loop, &a->heartbeat);
}
