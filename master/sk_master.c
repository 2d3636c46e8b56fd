/*
 * stepkit-master - the supervisor process.
 *
 *   init -> migrating -> starting -> run -> draining -> exit
 *                                     \         \
 *                                      +-> stopping -> exit
 *
 * init/migrating: parse the configuration, load the workflow libraries,
 * connect (retrying with backoff), migrate, check the schema, publish the
 * workflows, and close the connection: from then on the master does no
 * database work and holds no connection when it forks.
 * starting/run: fork the workers and supervise them (sk_supervise).
 * draining (SIGTERM/SIGINT): workers are told to stop claiming and to exit;
 * after shutdown_timeout_ms the rest are killed.  stopping: a fatal worker
 * exit, a crash loop or SIGQUIT: workers are stopped, the master exits
 * non-zero.  See docs/master.md.
 *
 * Every transition goes through set_state(), which logs it and mirrors it
 * into shared memory, where the workers read it between steps.  Signals
 * arrive through ev_signal watchers: no work happens in a signal handler.
 * The master only reads the workers' shared slots and never locks them.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <libpq-fe.h>

#include "sk_argv.h"
#include "sk_aux.h"
#include "sk_config.h"
#include "sk_heritage.h"
#include "sk_http.h"
#include "sk_log.h"
#include "sk_metrics.h"
#include "sk_migrate.h"
#include "sk_pg.h"
#include "sk_registry.h"
#include "sk_shm.h"
#include "sk_supervise.h"
#include "stepkit.h"

#define EXIT_CLEAN 0
#define EXIT_CRASH 1
#define EXIT_FATAL 2

#define CONNECT_FIRST_DELAY_MS 200
#define CONNECT_MAX_DELAY_MS   5000
#define CONNECT_DEADLINE_MS    60000
#define HEARTBEAT_CHECK_S      0.25 /* step deadlines are checked this often */
#define STALL_MIN_MS           60000

typedef struct {
    sk_config_t cfg;
    sk_registry_t *reg;
    sk_shm_t *shm;
    struct ev_loop *loop;
    int alive[2]; /* [0] read end: workers; [1] write end: master only */
    sk_master_state_t state;
    int exit_code;
    int shutdown_requested; /* a signal before the workers were forked */
    ev_signal sig_term, sig_int, sig_quit, sig_hup;
    ev_timer wait_timer;  /* sleeps between connection attempts */
    ev_timer drain_timer; /* shutdown_timeout_ms, then SIGKILL */
    ev_timer heartbeat_timer;
    int sup_ready;
    sk_sup_t sup;
    sk_metrics_t *metrics; /* counters of the workers, read by the HTTP process */
    sk_aux_t aux;          /* the HTTP process (sk_aux, sk_http), unless --http off */
    sk_http_args_t http_args;
} master_t;

static master_t the_master; /* static: the supervisor's slot table is large */

static const char *const state_names[] = {
    [SK_MASTER_INIT] = "init",         [SK_MASTER_MIGRATING] = "migrating",
    [SK_MASTER_STARTING] = "starting", [SK_MASTER_RUN] = "run",
    [SK_MASTER_DRAINING] = "draining", [SK_MASTER_STOPPING] = "stopping",
    [SK_MASTER_EXIT] = "exit",
};

_Static_assert(sizeof(state_names) / sizeof(state_names[0]) == SK_MASTER_EXIT + 1,
               "a name for every master state");

#define BIT(s) (1u << (s))

/* Which states each state may move to; anything else is a bug. */
static const unsigned allowed_next[] = {
    [SK_MASTER_INIT] = BIT(SK_MASTER_MIGRATING) | BIT(SK_MASTER_EXIT),
    [SK_MASTER_MIGRATING] = BIT(SK_MASTER_STARTING) | BIT(SK_MASTER_EXIT),
    [SK_MASTER_STARTING] = BIT(SK_MASTER_RUN) | BIT(SK_MASTER_DRAINING) | BIT(SK_MASTER_STOPPING),
    [SK_MASTER_RUN] = BIT(SK_MASTER_DRAINING) | BIT(SK_MASTER_STOPPING),
    [SK_MASTER_DRAINING] = BIT(SK_MASTER_STOPPING) | BIT(SK_MASTER_EXIT),
    [SK_MASTER_STOPPING] = BIT(SK_MASTER_EXIT),
    [SK_MASTER_EXIT] = 0,
};

static void set_state(master_t *m, sk_master_state_t to)
{
    if (!(allowed_next[m->state] & BIT(to))) {
        sk_log_error("event=bad_state_transition from=%s to=%s", state_names[m->state],
                     state_names[to]);
        abort();
    }
    sk_log_info("event=state from=%s to=%s", state_names[m->state], state_names[to]);
    m->state = to;
    if (m->shm != NULL)
        sk_shm_set_master_state(m->shm, to);
}

/* Error text goes inside error="..." in a log line: no double quotes in it. */
static const char *quotable(char *s)
{
    for (char *p = s; *p != '\0'; p++) {
        if (*p == '"')
            *p = '\'';
    }
    return s;
}

/* ---- ending ------------------------------------------------------------------------ */

/* Draining or stopping, and every worker reaped: leave the loop. */
static void maybe_finish(master_t *m)
{
    if (m->state != SK_MASTER_DRAINING && m->state != SK_MASTER_STOPPING)
        return;
    if (sk_sup_live(&m->sup) > 0)
        return;
    if (sk_aux_live(&m->aux)) {
        /* The HTTP process goes last: /readyz said "draining" until now. */
        sk_aux_stop(&m->aux, SIGTERM);
        return; /* on_aux_exit() comes back here */
    }
    ev_timer_stop(m->loop, &m->drain_timer);
    ev_timer_stop(m->loop, &m->heartbeat_timer);
    set_state(m, SK_MASTER_EXIT);
    ev_break(m->loop, EVBREAK_ALL);
}

/* SIGTERM to every worker, SIGKILL to the rest after shutdown_timeout_ms. */
static void ask_workers_to_stop(master_t *m)
{
    int n;

    sk_sup_stop_respawning(&m->sup);
    n = sk_sup_signal_all(&m->sup, SIGTERM);
    if (!ev_is_active(&m->drain_timer)) {
        ev_timer_set(&m->drain_timer, m->cfg.shutdown_timeout_ms / 1000.0, 0.);
        ev_timer_start(m->loop, &m->drain_timer);
    }
    sk_log_info("event=stopping_workers signal=SIGTERM workers=%d timeout_ms=%d", n,
                m->cfg.shutdown_timeout_ms);
}

static void begin_drain(master_t *m)
{
    set_state(m, SK_MASTER_DRAINING); /* workers see it between steps: stop claiming */
    ask_workers_to_stop(m);
    maybe_finish(m);
}

/* A fatal worker exit or a crash loop: stop everything, exit with `code`. */
static void begin_stop(master_t *m, int code)
{
    if (m->exit_code == EXIT_CLEAN)
        m->exit_code = code;
    if (m->state == SK_MASTER_STOPPING)
        return;
    set_state(m, SK_MASTER_STOPPING);
    ask_workers_to_stop(m);
    maybe_finish(m);
}

/* SIGKILL every worker now (second SIGTERM, drain timeout, SIGQUIT). */
static void kill_workers(master_t *m, const char *why)
{
    int n;

    sk_sup_stop_respawning(&m->sup);
    if (m->state != SK_MASTER_STOPPING)
        set_state(m, SK_MASTER_STOPPING);
    ev_timer_stop(m->loop, &m->drain_timer);
    n = sk_sup_signal_all(&m->sup, SIGKILL);
    if (sk_aux_live(&m->aux))
        sk_aux_stop(&m->aux, SIGKILL);
    sk_log_warn("event=killing_workers signal=SIGKILL workers=%d reason=%s", n, why);
    maybe_finish(m);
}

/* ---- callbacks ---------------------------------------------------------------------- */

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    master_t *m = w->data;
    const char *name = w->signum == SIGTERM   ? "SIGTERM"
                       : w->signum == SIGINT  ? "SIGINT"
                       : w->signum == SIGQUIT ? "SIGQUIT"
                                              : "SIGHUP";

    (void)revents;
    if (w->signum == SIGHUP) {
        sk_log_warn("event=reload_unsupported signal=SIGHUP");
        return;
    }
    sk_log_info("event=signal signal=%s state=%s", name, state_names[m->state]);
    switch (m->state) {
    case SK_MASTER_INIT:
    case SK_MASTER_MIGRATING:
        /* No worker yet: stop at the next chance (see sleep_on_loop). */
        m->shutdown_requested = 1;
        m->exit_code = w->signum == SIGQUIT ? EXIT_CRASH : EXIT_CLEAN;
        ev_break(loop, EVBREAK_ALL);
        return;
    case SK_MASTER_STARTING:
    case SK_MASTER_RUN:
        if (w->signum == SIGQUIT) {
            m->exit_code = EXIT_CRASH;
            kill_workers(m, "sigquit");
        } else {
            begin_drain(m);
        }
        return;
    case SK_MASTER_DRAINING:
    case SK_MASTER_STOPPING:
        /* a second signal escalates */
        if (w->signum == SIGQUIT)
            m->exit_code = EXIT_CRASH;
        kill_workers(m, w->signum == SIGQUIT ? "sigquit" : "second_signal");
        return;
    case SK_MASTER_EXIT:
        return;
    }
}

static void on_drain_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    master_t *m = w->data;

    (void)loop;
    (void)revents;
    sk_log_warn("event=drain_timeout timeout_ms=%d remaining=%d", m->cfg.shutdown_timeout_ms,
                sk_sup_live(&m->sup));
    kill_workers(m, "drain_timeout");
}

static void on_heartbeat_check(struct ev_loop *loop, ev_timer *w, int revents)
{
    master_t *m = w->data;
    int64_t stall_ms = 2 * (int64_t)m->cfg.lease_ms;

    (void)loop;
    (void)revents;
    if (stall_ms < STALL_MIN_MS)
        stall_ms = STALL_MIN_MS;
    if (m->state == SK_MASTER_RUN)
        sk_sup_check_stalls(&m->sup, sk_shm_now_ms(), stall_ms);
}

static void on_wait_done(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static void on_worker_event(sk_sup_t *sup, int slot, sk_sup_event_t ev, void *data)
{
    master_t *m = data;

    (void)sup;
    switch (ev) {
    case SK_SUP_FATAL:
        if (m->state == SK_MASTER_STARTING || m->state == SK_MASTER_RUN) {
            sk_log_info("event=stop reason=worker_fatal slot=%d exit_code=%d", slot, EXIT_FATAL);
            begin_stop(m, EXIT_FATAL);
        }
        break;
    case SK_SUP_CRASH_LOOP:
        if (m->state == SK_MASTER_STARTING || m->state == SK_MASTER_RUN) {
            sk_log_info("event=stop reason=crash_loop slot=%d exit_code=%d", slot, EXIT_CRASH);
            begin_stop(m, EXIT_CRASH);
        }
        break;
    case SK_SUP_CRASHED:
    case SK_SUP_EXITED:
        break;
    }
    maybe_finish(m);
}

static void stop_watchers(master_t *m)
{
    ev_signal_stop(m->loop, &m->sig_term);
    ev_signal_stop(m->loop, &m->sig_int);
    ev_signal_stop(m->loop, &m->sig_quit);
    ev_signal_stop(m->loop, &m->sig_hup);
    ev_timer_stop(m->loop, &m->wait_timer);
    ev_timer_stop(m->loop, &m->drain_timer);
    ev_timer_stop(m->loop, &m->heartbeat_timer);
    sk_aux_close(&m->aux);
}

/* In a new worker process: the master's watchers must not follow it. */
static void in_child(void *data)
{
    stop_watchers(data);
}

/* In the new HTTP process: neither may the supervisor's. */
static void in_aux_child(void *data)
{
    master_t *m = data;

    stop_watchers(m);
    if (m->sup_ready)
        sk_sup_close(&m->sup);
}

static void on_aux_exit(void *data)
{
    maybe_finish(data);
}

static int http_main(void *data)
{
    master_t *m = data;

    return sk_http_main(&m->http_args);
}

/* The HTTP process beside the workers (sk_aux); the master only forks it. */
static void start_http(master_t *m)
{
    sk_aux_params_t p;

    if (strcmp(m->cfg.http, "off") == 0)
        return;
    m->http_args.cfg = &m->cfg;
    m->http_args.shm = m->shm;
    m->http_args.alive_fd = m->alive[0];
    memset(&p, 0, sizeof(p));
    p.loop = m->loop;
    p.restart_base_ms = m->cfg.restart_base_ms;
    p.restart_max_ms = m->cfg.restart_max_ms;
    p.alive_write_fd = m->alive[1];
    p.in_child = in_aux_child;
    p.main = http_main;
    p.on_exit = on_aux_exit;
    p.arg = m;
    sk_aux_start(&m->aux, &p);
}

/* ---- before the fork: libraries and the database --------------------------------------- */

static int load_libraries(master_t *m)
{
    char err[512];

    m->reg = sk_registry_new();
    if (m->reg == NULL) {
        sk_log_error("event=registry_failed error=\"out of memory\"");
        m->exit_code = EXIT_CRASH;
        return SK_ERROR;
    }
    for (int i = 0; i < m->cfg.n_libraries; i++) {
        if (sk_registry_load(m->reg, m->cfg.libraries[i], err, sizeof(err)) != SK_OK) {
            sk_log_error("event=workflows_load_failed path=%s error=\"%s\"", m->cfg.libraries[i],
                         quotable(err));
            m->exit_code = EXIT_FATAL;
            return SK_ERROR;
        }
        sk_log_info("event=workflows_loaded path=%s", m->cfg.libraries[i]);
    }
    sk_log_info("event=registry_ready libraries=%d workflows=%zu", m->cfg.n_libraries,
                sk_registry_count(m->reg));
    return SK_OK;
}

/* Sleep on the loop, so that a signal can cut it short: SK_AGAIN then. */
static int sleep_on_loop(master_t *m, int ms)
{
    ev_timer_set(&m->wait_timer, ms / 1000.0, 0.);
    ev_timer_start(m->loop, &m->wait_timer);
    ev_run(m->loop, 0);
    ev_timer_stop(m->loop, &m->wait_timer);
    return m->shutdown_requested ? SK_AGAIN : SK_OK;
}

/* A failure on a live connection is deterministic (SQL, permissions,
 * versions): fatal.  On a broken one it is the network: crash, retry later. */
static int failure_code(PGconn *conn)
{
    return PQstatus(conn) == CONNECTION_BAD ? EXIT_CRASH : EXIT_FATAL;
}

/* Connect, retrying with backoff for up to CONNECT_DEADLINE_MS. */
static PGconn *connect_with_retry(master_t *m)
{
    const char *conninfo = m->cfg.database_url[0] ? m->cfg.database_url : NULL;
    int64_t start = sk_shm_now_ms(), now;
    int delay = CONNECT_FIRST_DELAY_MS;
    char err[512], url[SK_URL_MAX];
    PGconn *conn;

    sk_log_mask_url(conninfo ? conninfo : "(libpq defaults)", url, sizeof(url));
    for (int attempt = 1;; attempt++) {
        conn = sk_pg_connect(conninfo, m->cfg.schema, "stepkit-master", err, sizeof(err));
        if (conn != NULL) {
            sk_log_info("event=db_connected url=\"%s\" attempt=%d", url, attempt);
            return conn;
        }
        now = sk_shm_now_ms();
        if (now - start + delay > CONNECT_DEADLINE_MS) {
            sk_log_error("event=db_unreachable url=\"%s\" attempts=%d waited_ms=%lld "
                         "error=\"%s\"",
                         url, attempt, (long long)(now - start), quotable(err));
            m->exit_code = EXIT_CRASH;
            return NULL;
        }
        sk_log_warn("event=db_connect_failed url=\"%s\" attempt=%d retry_in_ms=%d error=\"%s\"",
                    url, attempt, delay, quotable(err));
        if (sleep_on_loop(m, delay) == SK_AGAIN)
            return NULL; /* exit_code set by the signal */
        delay = delay * 2 > CONNECT_MAX_DELAY_MS ? CONNECT_MAX_DELAY_MS : delay * 2;
    }
}

/* Migrate (unless --no-migrate), check the schema, publish the workflows,
 * disconnect.  SK_OK, SK_AGAIN (a signal asked us to stop) or SK_ERROR. */
static int prepare_database(master_t *m)
{
    PGconn *conn;
    char err[512];
    int applied = 0, rc = SK_ERROR;

    conn = connect_with_retry(m);
    if (conn == NULL)
        return m->shutdown_requested ? SK_AGAIN : SK_ERROR;

    if (!m->cfg.no_migrate) {
        if (sk_migrate(conn, m->cfg.schema, &applied, err, sizeof(err)) != SK_OK) {
            sk_log_error("event=migrate_failed schema=%s error=\"%s\"", m->cfg.schema,
                         quotable(err));
            m->exit_code = failure_code(conn);
            goto done;
        }
        sk_log_info("event=migrated schema=%s applied=%d version=%d", m->cfg.schema, applied,
                    sk_schema_version_known());
    }
    if (sk_schema_check(conn, m->cfg.schema, err, sizeof(err)) != SK_OK) {
        sk_log_error("event=schema_check_failed schema=%s error=\"%s\"", m->cfg.schema,
                     quotable(err));
        m->exit_code = failure_code(conn);
        goto done;
    }
    if (sk_registry_publish(m->reg, conn, err, sizeof(err)) != SK_OK) {
        sk_log_error("event=workflows_publish_failed schema=%s error=\"%s\"", m->cfg.schema,
                     quotable(err));
        m->exit_code = failure_code(conn);
        goto done;
    }
    sk_log_info("event=workflows_published schema=%s workflows=%zu", m->cfg.schema,
                sk_registry_count(m->reg));
    rc = SK_OK;
done:
    PQfinish(conn); /* the master holds no connection from here on */
    return rc;
}

/* ---- the master ------------------------------------------------------------------------ */

static void init_watchers(master_t *m)
{
    ev_signal_init(&m->sig_term, on_signal, SIGTERM);
    ev_signal_init(&m->sig_int, on_signal, SIGINT);
    ev_signal_init(&m->sig_quit, on_signal, SIGQUIT);
    ev_signal_init(&m->sig_hup, on_signal, SIGHUP);
    ev_timer_init(&m->wait_timer, on_wait_done, 0., 0.);
    ev_timer_init(&m->drain_timer, on_drain_timeout, 0., 0.);
    ev_timer_init(&m->heartbeat_timer, on_heartbeat_check, HEARTBEAT_CHECK_S, HEARTBEAT_CHECK_S);
    m->sig_term.data = m->sig_int.data = m->sig_quit.data = m->sig_hup.data = m;
    m->wait_timer.data = m->drain_timer.data = m->heartbeat_timer.data = m;
    ev_signal_start(m->loop, &m->sig_term);
    ev_signal_start(m->loop, &m->sig_int);
    ev_signal_start(m->loop, &m->sig_quit);
    ev_signal_start(m->loop, &m->sig_hup);
}

static int start_workers(master_t *m)
{
    sk_sup_params_t p;

    if (pipe2(m->alive, O_CLOEXEC) != 0) {
        sk_log_error("event=pipe_failed error=\"%s\"", strerror(errno));
        m->exit_code = EXIT_CRASH;
        return SK_ERROR;
    }
    memset(&p, 0, sizeof(p));
    p.loop = m->loop;
    p.workers = m->cfg.workers;
    p.restart_base_ms = m->cfg.restart_base_ms;
    p.restart_max_ms = m->cfg.restart_max_ms;
    p.shm = m->shm;
    p.reg = m->reg;
    p.alive_read_fd = m->alive[0];
    p.alive_write_fd = m->alive[1];
    p.notify = on_worker_event;
    p.in_child = in_child;
    p.data = m;
    if (sk_sup_init(&m->sup, &p) != SK_OK) {
        sk_log_error("event=supervisor_failed workers=%d", m->cfg.workers);
        m->exit_code = EXIT_CRASH;
        return SK_ERROR;
    }
    m->sup_ready = 1;
    set_state(m, SK_MASTER_STARTING);
    sk_sup_start(&m->sup);
    start_http(m);
    set_state(m, SK_MASTER_RUN);
    ev_timer_start(m->loop, &m->heartbeat_timer);
    return SK_OK;
}

static int run(master_t *m)
{
    char url[SK_URL_MAX];
    int rc;

    m->alive[0] = m->alive[1] = -1;
    m->exit_code = EXIT_CLEAN;
    m->state = SK_MASTER_INIT;

    sk_log_mask_url(m->cfg.database_url, url, sizeof(url));
    sk_log_info("event=start workers=%d batch=%d schema=%s url=\"%s\" migrate=%s libraries=%d",
                m->cfg.workers, m->cfg.batch, m->cfg.schema, url[0] ? url : "(libpq defaults)",
                m->cfg.no_migrate ? "no" : "yes", m->cfg.n_libraries);

    if (load_libraries(m) != SK_OK)
        goto done;
    m->loop = ev_default_loop(EVFLAG_AUTO);
    if (m->loop == NULL) {
        sk_log_error("event=loop_failed");
        m->exit_code = EXIT_CRASH;
        goto done;
    }
    signal(SIGPIPE, SIG_IGN);
    init_watchers(m);
    m->shm = sk_shm_create(&m->cfg);
    if (m->shm == NULL) {
        sk_log_error("event=shm_failed workers=%d error=\"%s\"", m->cfg.workers, strerror(errno));
        m->exit_code = EXIT_CRASH;
        goto done;
    }
    m->metrics = sk_metrics_create(m->cfg.workers, m->reg);
    if (m->metrics == NULL) {
        sk_log_error("event=shm_failed part=metrics error=\"%s\"", strerror(errno));
        m->exit_code = EXIT_CRASH;
        goto done;
    }

    set_state(m, SK_MASTER_MIGRATING);
    rc = prepare_database(m);
    if (rc == SK_OK)
        ev_run(m->loop, EVRUN_NOWAIT); /* a signal that came during the blocking calls */
    if (rc != SK_OK || m->shutdown_requested) {
        set_state(m, SK_MASTER_EXIT);
        goto done;
    }

    if (start_workers(m) != SK_OK) {
        set_state(m, SK_MASTER_EXIT);
        goto done;
    }
    ev_run(m->loop, 0); /* until maybe_finish() breaks it */
    if (m->state != SK_MASTER_EXIT)
        sk_log_error("event=loop_ended state=%s", state_names[m->state]);

done:
    sk_log_info("event=exit code=%d", m->exit_code);
    if (m->sup_ready)
        sk_sup_close(&m->sup);
    if (m->loop != NULL)
        stop_watchers(m);
    if (m->alive[1] >= 0)
        close(m->alive[1]);
    if (m->alive[0] >= 0)
        close(m->alive[0]);
    sk_metrics_destroy(m->metrics);
    sk_shm_destroy(m->shm);
    if (m->reg != NULL)
        sk_registry_free(m->reg);
    return m->exit_code;
}

int main(int argc, char **argv)
{
    master_t *m = &the_master;
    char err[512], masked[600];
    int rc;

    rc = sk_config_load(&m->cfg, argc, argv, stdout, err, sizeof(err));
    /* The value is copied: hide its password from ps before any worker is
     * forked (they share these pages), and mask it wherever it may appear. */
    sk_argv_scrub(argc, argv, "--database-url");
    sk_log_add_secrets(m->cfg.database_url);
    if (rc == SK_AGAIN)
        return EXIT_CLEAN; /* --help, --version, --help-markdown */
    if (rc != SK_OK) {
        sk_log_mask(err, masked, sizeof(masked));
        fprintf(stderr, "stepkit-master: %s\nTry 'stepkit-master --help' for the options.\n",
                masked);
        return EXIT_FATAL;
    }
    if (m->cfg.n_libraries == 0) {
        fprintf(stderr, "stepkit-master: no workflow library: give --workflows PATH (or "
                        "STEPKIT_WORKFLOWS)\nTry 'stepkit-master --help' for the options.\n");
        return EXIT_FATAL;
    }
    if (m->cfg.database_url[0] != '\0') {
        /* A malformed connection string will not get better by retrying. */
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(m->cfg.database_url, &perr);
        if (opts == NULL) {
            sk_log_mask(perr ? perr : "out of memory\n", masked, sizeof(masked));
            fprintf(stderr, "stepkit-master: --database-url: invalid connection string: %s",
                    masked);
            PQfreemem(perr);
            return EXIT_FATAL;
        }
        PQconninfoFree(opts);
    }
    sk_log_level = m->cfg.log_level;
    sk_log_format = m->cfg.log_format;
    sk_log_set_role("master", -1);
    return run(m);
}
