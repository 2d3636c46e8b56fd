/*
 * stepkit-chaos: the chaos driver (docs/chaos.md).
 *
 * Starts a throwaway PostgreSQL (tests/pg-cluster.sh), M masters of W
 * workers each with the chaos workflow library, installs audit triggers,
 * then starts runs before and during a storm: a SIGKILL to a random worker
 * every 200-500 ms, one master SIGKILL (restarted 1 s later) and one
 * PostgreSQL restart, with poison runs among the others.  It waits for
 * every run to end, stops everything, and chaos_report() checks the
 * outcome.  Exit status: 0 pass, 1 a check failed, 2 the harness itself
 * could not run.
 */
#include "chaos_driver.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "chaos.h"
#include "sk_config.h"
#include <stepkit.h>
#include <stepkit_client.h>

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;

    fputs("chaos: ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

long long chaos_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !interrupted)
        ;
}

const char *chaos_kind_workflow(chaos_kind_t k)
{
    static const char *const names[K_COUNT] = {"chaos-seq",    "chaos-group", "chaos-parent",
                                               "chaos-signal", "chaos-ext",   "chaos-segv",
                                               "chaos-exit",   "chaos-hang"};

    return names[k];
}

bool chaos_kind_poison(chaos_kind_t k)
{
    return k == K_SEGV || k == K_EXIT || k == K_HANG;
}

long long chaos_expected(const chaos_run_t *r)
{
    switch (r->kind) {
    case K_SEQ:
        return chaos_seq_b(chaos_seq_a(r->n));
    case K_GROUP:
        return chaos_group_out(r->n);
    case K_PARENT:
        return chaos_parent_out(r->n);
    case K_SIGNAL:
        return chaos_signal_out(r->n);
    case K_EXT:
        return chaos_ext_out(r->n);
    default:
        return 0;
    }
}

static void add_event(chaos_t *c, chaos_ev_kind_t kind, long long t, pid_t pid, int master)
{
    chaos_event_t *e;

    if (c->n_ev == c->cap_ev) {
        c->cap_ev = c->cap_ev ? c->cap_ev * 2 : 64;
        c->ev = realloc(c->ev, (size_t)c->cap_ev * sizeof(*c->ev));
        if (c->ev == NULL)
            abort();
    }
    e = &c->ev[c->n_ev++];
    *e = (chaos_event_t){kind, t, 0, 0, pid, master, -1};
}

/* ---- child processes -------------------------------------------------------------------- */

/* fork + exec argv with stdout/stderr appended to `log` (NULL: inherited). */
static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    if (pid != 0)
        return pid;
    if (log != NULL) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

        if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
            _exit(127);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    /* A driver killed outright must not leave masters behind. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    execv(argv[0], argv);
    _exit(127);
}

/* Runs `pg-cluster.sh CMD DIR` and returns its exit status; its stdout (the
 * URL for start) goes to `out`. */
static int pg_cluster(chaos_t *c, const char *cmd, const char *dir, char *out, size_t outlen)
{
    char line[512];
    FILE *p;
    int st;

    snprintf(line, sizeof(line), "'%s' %s '%s' 2>>'%s/pg-cluster.log'", c->pg_cluster, cmd, dir,
             c->outdir);
    fflush(NULL);
    p = popen(line, "r");
    if (p == NULL)
        return -1;
    if (out != NULL) {
        out[0] = '\0';
        if (fgets(out, (int)outlen, p) != NULL)
            out[strcspn(out, "\n")] = '\0';
    }
    while (fgets(line, sizeof(line), p) != NULL)
        ;
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The same in the background: its pid; the URL of a start goes to
 * OUTDIR/pg-url (pg_started_url reads it). */
static pid_t pg_cluster_bg(chaos_t *c, const char *cmd, const char *dir)
{
    char line[1600];
    char *argv[] = {"/bin/sh", "-c", line, NULL};

    snprintf(line, sizeof(line), "exec '%s' %s '%s' >'%s/pg-url' 2>>'%s/pg-cluster.log'",
             c->pg_cluster, cmd, dir, c->outdir, c->outdir);
    return spawn(argv, NULL);
}

static int pg_started_url(chaos_t *c, char *out, size_t outlen)
{
    char path[700];
    FILE *f;

    snprintf(path, sizeof(path), "%s/pg-url", c->outdir);
    f = fopen(path, "re");
    if (f == NULL)
        return -1;
    out[0] = '\0';
    if (fgets(out, (int)outlen, f) != NULL)
        out[strcspn(out, "\n")] = '\0';
    fclose(f);
    return out[0] != '\0' ? 0 : -1;
}

static void start_master(chaos_t *c, int m)
{
    char workers[16], lease[16], lib[600], master[600], log[700], st[32];
    char *argv[24];
    int a = 0;

    snprintf(master, sizeof(master), "%s/bin/stepkit-master", c->build);
    snprintf(lib, sizeof(lib), "%s/tests/chaoswf.so", c->build);
    snprintf(workers, sizeof(workers), "%d", c->workers);
    snprintf(lease, sizeof(lease), "%d", c->lease_ms);
    snprintf(log, sizeof(log), "%s/master-%d.log", c->outdir, m);
    argv[a++] = master;
    argv[a++] = "--database-url";
    argv[a++] = c->url;
    argv[a++] = "--workflows";
    argv[a++] = lib;
    argv[a++] = "--workers";
    argv[a++] = workers;
    argv[a++] = "--lease";
    argv[a++] = lease;
    /* The master escalates to SIGKILL itself within the driver's 15 s
     * stop (its default, 25 s, is longer). */
    argv[a++] = "--shutdown-timeout";
    argv[a++] = "5000";
    /* The HTTP process is a child of the master too: off, so the sampler
     * and the storm see workers only (and two masters need no ports). */
    if (c->http_flag) {
        argv[a++] = "--http";
        argv[a++] = "off";
    }
    if (c->step_timeout_flag[0] != '\0') {
        snprintf(st, sizeof(st), "%d", c->step_timeout_ms);
        argv[a++] = c->step_timeout_flag;
        argv[a++] = st;
    }
    argv[a] = NULL;
    c->master_pid[m] = spawn(argv, log);
    c->master_gen[m]++;
    c->master_started[m] = chaos_now_ms();
}

/* Does `stepkit-master --help` know a step timeout flag (fills
 * step_timeout_flag, else leaves it empty) and --http? */
static void probe_step_timeout(chaos_t *c)
{
    char cmd[700], line[512];
    FILE *p;

    c->step_timeout_flag[0] = '\0';
    snprintf(cmd, sizeof(cmd), "'%s/bin/stepkit-master' --help 2>&1", c->build);
    p = popen(cmd, "r");
    if (p == NULL)
        return;
    while (fgets(line, sizeof(line), p) != NULL) {
        const char *f = strstr(line, "--step-timeout");

        if (f != NULL && c->step_timeout_flag[0] == '\0' && (f[14] == ' ' || f[14] == '\n'))
            snprintf(c->step_timeout_flag, sizeof(c->step_timeout_flag), "--step-timeout");
        if (strstr(line, "--http ") != NULL)
            c->http_flag = true;
    }
    pclose(p);
}

/* Live (not zombie) children of `pid`, into out[]; their count. */
static int children_of(pid_t pid, pid_t *out, int max)
{
    char path[64], buf[4096], st[64];
    int n = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
    f = fopen(path, "re");
    if (f == NULL)
        return 0;
    if (fgets(buf, sizeof(buf), f) == NULL)
        buf[0] = '\0';
    fclose(f);
    for (char *tok = strtok(buf, " \n"); tok != NULL && n < max; tok = strtok(NULL, " \n")) {
        pid_t k = (pid_t)atoi(tok);
        char *rp;
        FILE *s;

        snprintf(path, sizeof(path), "/proc/%d/stat", (int)k);
        s = fopen(path, "re");
        if (s == NULL)
            continue;
        if (fgets(st, sizeof(st), s) == NULL)
            st[0] = '\0';
        fclose(s);
        rp = strrchr(st, ')');
        if (rp == NULL || rp[1] == '\0' || rp[2] == 'Z')
            continue;
        out[n++] = k;
    }
    return n;
}

static chaos_worker_t *find_worker(chaos_t *c, pid_t pid)
{
    for (int i = c->n_wk - 1; i >= 0; i--) {
        if (c->wk[i].pid == pid)
            return &c->wk[i];
    }
    return NULL;
}

/* Samples every master's workers: records new pids, credits respawns to the
 * oldest unanswered kill of that master, and counts live workers during the
 * storm.  Fills live[m][]. */
static void sample(chaos_t *c, pid_t live[][CHAOS_MAX_WORKERS], int *n_live)
{
    long long now = chaos_now_ms();
    int total = 0;

    for (int m = 0; m < c->masters; m++) {
        n_live[m] =
            c->master_pid[m] > 0 ? children_of(c->master_pid[m], live[m], CHAOS_MAX_WORKERS) : 0;
        total += n_live[m];
        for (int i = 0; i < n_live[m]; i++) {
            chaos_worker_t *w = find_worker(c, live[m][i]);

            if (w != NULL && w->master == m) {
                w->last_seen = now;
                continue;
            }
            if (c->n_wk == c->cap_wk) {
                c->cap_wk = c->cap_wk ? c->cap_wk * 2 : 256;
                c->wk = realloc(c->wk, (size_t)c->cap_wk * sizeof(*c->wk));
                if (c->wk == NULL)
                    abort();
            }
            c->wk[c->n_wk++] = (chaos_worker_t){live[m][i], m, c->master_gen[m], now, now};
            for (int e = 0; e < c->n_ev; e++) {
                if (c->ev[e].kind == EV_WORKER_KILL && c->ev[e].master == m &&
                    c->ev[e].respawn_ms < 0 && c->ev[e].t <= now) {
                    c->ev[e].respawn_ms = now - c->ev[e].t;
                    break;
                }
            }
        }
    }
    if (now >= c->t0 && now < c->storm_end) {
        c->live_sum += total;
        c->live_samples++;
        if (c->live_min < 0 || total < c->live_min)
            c->live_min = total;
    }
}

/* Which pids are inside a poison body right now: the effects file read as
 * it grows, each pid's last line. */
typedef struct {
    long off;
    int n;
    pid_t pid[512];
    bool poison[512];
} effects_tail_t;

static void follow_effects(const chaos_t *c, effects_tail_t *t)
{
    char line[CHAOS_LINE_LEN + 1], run[40], step[16];
    int attempt, pid;
    long long ms;
    FILE *f = fopen(c->effects, "re");

    if (f == NULL || fseek(f, t->off, SEEK_SET) != 0) {
        if (f != NULL)
            fclose(f);
        return;
    }
    while (fread(line, 1, CHAOS_LINE_LEN, f) == CHAOS_LINE_LEN) {
        bool poison = false;
        int slot;

        line[CHAOS_LINE_LEN] = '\0';
        t->off += CHAOS_LINE_LEN;
        if (sscanf(line, "%39s %15s %d %d %lld", run, step, &attempt, &pid, &ms) != 5)
            continue;
        for (int i = 0; i < c->n_run && !poison; i++)
            poison = chaos_kind_poison(c->run[i].kind) && strcmp(c->run[i].run_id, run) == 0;
        for (slot = 0; slot < t->n && t->pid[slot] != pid; slot++)
            ;
        if (slot == t->n) {
            if (t->n == (int)(sizeof(t->pid) / sizeof(t->pid[0])))
                slot = pid % t->n; /* full: forget an old pid */
            else
                t->n++;
        }
        t->pid[slot] = pid;
        t->poison[slot] = poison;
    }
    fclose(f);
}

static bool in_poison(const effects_tail_t *t, pid_t pid)
{
    for (int i = 0; i < t->n; i++) {
        if (t->pid[i] == pid)
            return t->poison[i];
    }
    return false;
}

/* ---- database ----------------------------------------------------------------------------- */

static PGconn *db_connect(const char *url)
{
    PGconn *db = PQconnectdb(url);

    if (PQstatus(db) != CONNECTION_OK) {
        PQfinish(db);
        return NULL;
    }
    return db;
}

static bool db_exec(PGconn *db, const char *sql)
{
    PGresult *r = PQexec(db, sql);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

    if (!ok)
        say("SQL failed: %s", PQerrorMessage(db));
    PQclear(r);
    return ok;
}

/* DDL beside a live pool: CREATE TRIGGER takes a table lock per table, and
 * a worker's transaction holding one table while it waits for the other
 * can close a cycle (the deadlock detector then cancels the DDL).  The SQL
 * runs as one transaction, so a retry starts clean. */
static bool db_exec_ddl(PGconn *db, const char *sql)
{
    for (int attempt = 1;; attempt++) {
        PGresult *r = PQexec(db, sql);
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
        bool again =
            !ok && state != NULL && (strcmp(state, "40P01") == 0 || strcmp(state, "55P03") == 0);

        PQclear(r);
        if (ok)
            return true;
        if (!again || attempt == 20) {
            say("SQL failed: %s", PQerrorMessage(db));
            PQclear(PQexec(db, "ROLLBACK"));
            return false;
        }
        PQclear(PQexec(db, "ROLLBACK"));
        say("DDL met a lock conflict (attempt %d): trying again", attempt);
        sleep_ms(100L * attempt);
    }
}

/* Audit triggers on the engine's tables, in a schema of the harness: every
 * change of a run's status and every update of a run that had ended (an
 * end recorded twice), every update of a final op (a recorded result
 * replaced). */
static const char *const audit_sql =
    "BEGIN; SET LOCAL lock_timeout = '2s';"
    "CREATE SCHEMA chaos;"
    "CREATE TABLE chaos.run_ends (run_id uuid, old_status text, new_status text,"
    "  at timestamptz DEFAULT clock_timestamp());"
    "CREATE TABLE chaos.op_rewrites (run_id uuid, op_key text, old_status text,"
    "  new_status text, at timestamptz DEFAULT clock_timestamp());"
    "CREATE FUNCTION chaos.note_run() RETURNS trigger LANGUAGE plpgsql AS $$"
    "BEGIN INSERT INTO chaos.run_ends (run_id, old_status, new_status)"
    "  VALUES (NEW.run_id, OLD.status, NEW.status); RETURN NULL; END $$;"
    "CREATE FUNCTION chaos.note_op() RETURNS trigger LANGUAGE plpgsql AS $$"
    "BEGIN INSERT INTO chaos.op_rewrites (run_id, op_key, old_status, new_status)"
    "  VALUES (NEW.run_id, NEW.op_key, OLD.status, NEW.status); RETURN NULL; END $$;"
    "CREATE TRIGGER chaos_run_ends AFTER UPDATE ON stepkit.runs FOR EACH ROW"
    "  WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.status <> 'pending')"
    "  EXECUTE FUNCTION chaos.note_run();"
    "CREATE TRIGGER chaos_op_rewrites AFTER UPDATE ON stepkit.ops FOR EACH ROW"
    "  WHEN (OLD.status IN ('ok', 'error'))"
    "  EXECUTE FUNCTION chaos.note_op();"
    "COMMIT;";

static void pack_input(msgpack_sbuffer *buf, const chaos_run_t *r)
{
    msgpack_packer pk;

    msgpack_sbuffer_init(buf);
    msgpack_packer_init(&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    msgpack_pack_str(&pk, 1);
    msgpack_pack_str_body(&pk, "n", 1);
    msgpack_pack_int64(&pk, r->n);
    msgpack_pack_str(&pk, 2);
    msgpack_pack_str_body(&pk, "ms", 2);
    msgpack_pack_int64(&pk, r->ms);
    msgpack_pack_str(&pk, 3);
    msgpack_pack_str_body(&pk, "nap", 3);
    msgpack_pack_int64(&pk, r->nap);
}

/* Starts run r (notify_end on, so its end is NOTIFYed).  After a start that
 * failed on a broken connection the commit may have happened: look the run
 * up by its input first (every input is unique).  false: try again later. */
static bool start_run(PGconn *db, chaos_run_t *r)
{
    const char *wf = chaos_kind_workflow(r->kind);
    msgpack_sbuffer buf;
    const char *params[2];
    int lengths[2], formats[2] = {0, 1};
    PGresult *res;
    bool ok = false;

    pack_input(&buf, r);
    params[0] = wf;
    params[1] = buf.data;
    lengths[0] = 0;
    lengths[1] = (int)buf.size;
    if (r->start_unsure) {
        res = PQexecParams(db,
                           "SELECT run_id::text FROM stepkit.runs WHERE workflow_id = $1"
                           " AND data = $2::bytea",
                           2, NULL, params, lengths, formats, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            goto done;
        if (PQntuples(res) == 1) {
            snprintf(r->run_id, sizeof(r->run_id), "%s", PQgetvalue(res, 0, 0));
            r->started_at = chaos_now_ms();
            ok = true;
            goto done;
        }
        PQclear(res);
    }
    res =
        PQexecParams(db, "SELECT run_id::text FROM stepkit.start_run_msgpack($1, $2::bytea, true)",
                     2, NULL, params, lengths, formats, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        snprintf(r->run_id, sizeof(r->run_id), "%s", PQgetvalue(res, 0, 0));
        r->started_at = chaos_now_ms();
        r->start_unsure = false;
        ok = true;
    } else {
        r->start_unsure = true;
    }
done:
    PQclear(res);
    msgpack_sbuffer_destroy(&buf);
    return ok;
}

/* chaos-ext runs: send each its signal until it reached the run. */
static void send_ext(chaos_t *c, sk_client_t **cl)
{
    char err[512], to[SK_UUID_LEN], name[64];
    msgpack_sbuffer buf;
    msgpack_packer pk;

    for (int i = 0; i < c->n_run; i++) {
        chaos_run_t *r = &c->run[i];
        int rc;

        if (r->kind != K_EXT || r->run_id[0] == '\0' || r->ext_sent)
            continue;
        if (*cl == NULL) {
            *cl = sk_client_connect(c->url, NULL, err, sizeof(err));
            if (*cl == NULL)
                return;
        }
        snprintf(name, sizeof(name), "chaos-ext-%lld", r->n);
        msgpack_sbuffer_init(&buf);
        msgpack_packer_init(&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        msgpack_pack_str(&pk, 1);
        msgpack_pack_str_body(&pk, "v", 1);
        msgpack_pack_int64(&pk, chaos_ext_v(r->n));
        rc = sk_client_signal(*cl, name, buf.data, buf.size, to, err, sizeof(err));
        msgpack_sbuffer_destroy(&buf);
        if (rc != SK_OK) {
            sk_client_close(*cl);
            *cl = NULL;
            return;
        }
        if (strcmp(to, r->run_id) == 0)
            r->ext_sent = true;
    }
}

/* Runs still pending (every run, children included), or -1 when unknown.
 * Also marks ended chaos-ext runs as sent (a send whose reply was lost). */
static long pending_runs(chaos_t *c, PGconn *db)
{
    PGresult *r = PQexec(db, "SELECT run_id::text, workflow_id FROM stepkit.runs"
                             " WHERE status = 'pending'");
    long n = -1;

    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        n = PQntuples(r);
        for (int i = 0; i < c->n_run; i++) {
            chaos_run_t *x = &c->run[i];
            bool pending = false;

            if (x->kind != K_EXT || x->ext_sent || x->run_id[0] == '\0')
                continue;
            for (long j = 0; j < n && !pending; j++)
                pending = strcmp(PQgetvalue(r, (int)j, 0), x->run_id) == 0;
            if (!pending)
                x->ext_sent = true;
        }
    }
    PQclear(r);
    return n;
}

static void drain_notifies(chaos_t *c, PGconn **ln)
{
    PGnotify *n;

    if (*ln == NULL) {
        *ln = db_connect(c->url);
        if (*ln == NULL || !db_exec(*ln, "LISTEN \"stepkit.done\"")) {
            PQfinish(*ln);
            *ln = NULL;
            return;
        }
    }
    if (!PQconsumeInput(*ln)) {
        PQfinish(*ln);
        *ln = NULL;
        return;
    }
    while ((n = PQnotifies(*ln)) != NULL) {
        c->done_notifies++;
        PQfreemem(n);
    }
}

/* ---- the plan ------------------------------------------------------------------------------ */

static unsigned long long rng_state;

static unsigned rnd(unsigned n)
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((rng_state >> 33) % n);
}

/* A quarter of the runs before the storm, the rest spread over its first
 * 80 %; poison runs at random moments between 10 % and 70 % of it.  Body
 * lengths: mostly short, some long enough to be in flight at a kill. */
static void plan(chaos_t *c)
{
    static const chaos_kind_t mix[] = {K_SEQ,    K_SEQ,    K_SEQ,    K_GROUP,  K_GROUP,
                                       K_PARENT, K_PARENT, K_SIGNAL, K_SIGNAL, K_EXT};
    static const int body_ms[] = {0, 0, 5, 10, 20, 50, 100, 300};
    int kinds = c->hang_poison ? 3 : 2;
    long long storm = (long long)c->storm_s * 1000;

    c->n_run = c->runs + c->poison * kinds;
    c->run = calloc((size_t)c->n_run, sizeof(*c->run));
    if (c->run == NULL)
        abort();
    for (int i = 0; i < c->runs; i++) {
        chaos_run_t *r = &c->run[i];

        r->kind = mix[rnd(sizeof(mix) / sizeof(mix[0]))];
        r->n = 1000 + i;
        r->ms = body_ms[rnd(sizeof(body_ms) / sizeof(body_ms[0]))];
        r->nap = 50 + rnd(400);
        r->plan_ms = i < c->runs / 4 ? -1 : (long long)rnd((unsigned)(storm * 8 / 10));
    }
    for (int i = c->runs; i < c->n_run; i++) {
        chaos_run_t *r = &c->run[i];
        int p = (i - c->runs) % kinds;

        r->kind = p == 0 ? K_SEGV : p == 1 ? K_EXIT : K_HANG;
        r->n = 1000 + i;
        r->plan_ms = storm / 10 + (long long)rnd((unsigned)(storm * 6 / 10));
    }
}

static void usage(FILE *f)
{
    fputs("usage: stepkit-chaos [options]  (run from the repository root; docs/chaos.md)\n"
          "  --runs N            runs besides the poison ones (200)\n"
          "  --storm S           seconds of worker kills (30)\n"
          "  --drain S           longest wait for the runs after the storm (60)\n"
          "  --poison N          poison runs of each kind (1)\n"
          "  --masters M         masters (2)\n"
          "  --workers W         workers per master (2)\n"
          "  --lease MS          the masters' --lease (10000)\n"
          "  --step-timeout MS   the masters' step timeout, when they have one (3000)\n"
          "  --kill-every A-B    worker kill interval in ms (200-500)\n"
          "  --no-master-kill    skip the master kill\n"
          "  --no-pg-restart     skip the PostgreSQL restart\n"
          "  --seed N            the plan's random seed (time)\n"
          "  --build DIR         build directory ($BUILD or build)\n"
          "  --out DIR           logs and the effects file (BUILD/tests/chaos)\n",
          f);
}

static int int_opt(const char *name, const char *v, int min, int max)
{
    char *end;
    long x;

    errno = 0;
    x = strtol(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0' || x < min || x > max) {
        fprintf(stderr, "stepkit-chaos: %s: '%s' is not a number in %d..%d\n", name, v, min, max);
        exit(2);
    }
    return (int)x;
}

static void parse(chaos_t *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"runs", 1, 0, 'r'},          {"storm", 1, 0, 's'},
        {"drain", 1, 0, 'd'},         {"poison", 1, 0, 'p'},
        {"masters", 1, 0, 'm'},       {"workers", 1, 0, 'w'},
        {"lease", 1, 0, 'l'},         {"step-timeout", 1, 0, 't'},
        {"kill-every", 1, 0, 'k'},    {"no-master-kill", 0, 0, 'M'},
        {"no-pg-restart", 0, 0, 'P'}, {"seed", 1, 0, 'S'},
        {"build", 1, 0, 'b'},         {"out", 1, 0, 'o'},
        {"help", 0, 0, 'h'},          {0, 0, 0, 0}};
    static char outbuf[600];
    int o;

    c->runs = 200;
    c->storm_s = 30;
    c->drain_s = 60;
    c->poison = 1;
    c->masters = 2;
    c->workers = 2;
    c->lease_ms = 10000;
    c->step_timeout_ms = 3000;
    c->kill_min_ms = 200;
    c->kill_max_ms = 500;
    c->master_kill = c->pg_restart = true;
    c->seed = (unsigned)time(NULL);
    c->build = getenv("BUILD") && *getenv("BUILD") ? getenv("BUILD") : "build";
    /* The masters' --batch: STEPKIT_BATCH, else the engine's default, put
     * in the environment the masters inherit so both sides agree. */
    if (getenv("STEPKIT_BATCH") == NULL || *getenv("STEPKIT_BATCH") == '\0') {
        sk_config_t defaults;
        char def[16];
        sk_config_defaults(&defaults);
        snprintf(def, sizeof(def), "%d", defaults.batch);
        setenv("STEPKIT_BATCH", def, 1);
    }
    {
        char *end;
        long b = strtol(getenv("STEPKIT_BATCH"), &end, 10);
        if (*end != '\0' || b < 1 || b > 1000) {
            fprintf(stderr, "chaos: STEPKIT_BATCH must be 1..1000\n");
            exit(2);
        }
        c->batch = (int)b;
    }
    c->outdir = NULL;
    c->pg_cluster = "tests/pg-cluster.sh";
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'r':
            c->runs = int_opt("--runs", optarg, 0, 1000000);
            break;
        case 's':
            c->storm_s = int_opt("--storm", optarg, 1, 86400);
            break;
        case 'd':
            c->drain_s = int_opt("--drain", optarg, 1, 86400);
            break;
        case 'p':
            c->poison = int_opt("--poison", optarg, 0, 1000);
            break;
        case 'm':
            c->masters = int_opt("--masters", optarg, 1, CHAOS_MAX_MASTERS);
            break;
        case 'w':
            c->workers = int_opt("--workers", optarg, 1, CHAOS_MAX_WORKERS);
            break;
        case 'l':
            c->lease_ms = int_opt("--lease", optarg, 100, 86400000);
            break;
        case 't':
            c->step_timeout_ms = int_opt("--step-timeout", optarg, 100, 86400000);
            break;
        case 'k':
            if (sscanf(optarg, "%d-%d", &c->kill_min_ms, &c->kill_max_ms) != 2 ||
                c->kill_min_ms < 1 || c->kill_max_ms < c->kill_min_ms) {
                fprintf(stderr, "stepkit-chaos: --kill-every: want A-B milliseconds, A <= B\n");
                exit(2);
            }
            break;
        case 'M':
            c->master_kill = false;
            break;
        case 'P':
            c->pg_restart = false;
            break;
        case 'S':
            c->seed = (unsigned)int_opt("--seed", optarg, 0, 2147483647);
            break;
        case 'b':
            c->build = optarg;
            break;
        case 'o':
            c->outdir = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc) {
        usage(stderr);
        exit(2);
    }
    if (c->outdir == NULL) {
        snprintf(outbuf, sizeof(outbuf), "%s/tests/chaos", c->build);
        c->outdir = outbuf;
    }
}

/* ---- main ------------------------------------------------------------------------------------ */

static void stop_masters(chaos_t *c)
{
    long long deadline = chaos_now_ms() + 15000;
    bool any;

    for (int m = 0; m < c->masters; m++) {
        if (c->master_pid[m] > 0)
            kill(c->master_pid[m], SIGTERM);
    }
    do {
        any = false;
        for (int m = 0; m < c->masters; m++) {
            if (c->master_pid[m] > 0 && waitpid(c->master_pid[m], NULL, WNOHANG) == 0)
                any = true;
            else
                c->master_pid[m] = 0;
        }
        if (any)
            sleep_ms(50);
    } while (any && chaos_now_ms() < deadline);
    for (int m = 0; m < c->masters; m++) {
        if (c->master_pid[m] > 0) {
            say("master %d (pid %d) did not stop in 15 s: SIGKILL", m, (int)c->master_pid[m]);
            kill(c->master_pid[m], SIGKILL);
            waitpid(c->master_pid[m], NULL, 0);
            c->master_pid[m] = 0;
        }
    }
}

/* Workers that outlived their master (a master must take its workers with
 * it, whatever they run): counted, reported and killed. */
static void kill_orphans(chaos_t *c)
{
    char path[64], cmd[4096];

    for (int i = 0; i < c->n_wk; i++) {
        pid_t pid = c->wk[i].pid;
        size_t n;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        f = fopen(path, "re");
        if (f == NULL)
            continue;
        n = fread(cmd, 1, sizeof(cmd) - 1, f);
        fclose(f);
        for (size_t k = 0; k < n; k++)
            cmd[k] = cmd[k] == '\0' ? ' ' : cmd[k];
        cmd[n] = '\0';
        if (strstr(cmd, "stepkit-master") == NULL || strstr(cmd, "chaoswf.so") == NULL)
            continue; /* the pid is someone else's now */
        c->orphans++;
        say("ORPHAN: worker pid %d of master %d is alive after every master stopped: SIGKILL",
            (int)pid, c->wk[i].master);
        kill(pid, SIGKILL);
    }
}

/* Waits until `n` chaos workflows are registered; false on timeout. */
static bool wait_registered(PGconn **db, const char *url, int n, int timeout_ms)
{
    long long end = chaos_now_ms() + timeout_ms;

    while (chaos_now_ms() < end && !interrupted) {
        if (*db == NULL)
            *db = db_connect(url);
        if (*db != NULL) {
            PGresult *r = PQexec(*db, "SELECT count(*) FROM stepkit.workflows"
                                      " WHERE workflow_id LIKE 'chaos-%'");
            bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && atoi(PQgetvalue(r, 0, 0)) >= n;

            PQclear(r);
            if (ok)
                return true;
        }
        sleep_ms(100);
    }
    return false;
}

typedef enum { PG_UP, PG_STOPPING, PG_DOWN, PG_STARTING } pg_state_t;

int main(int argc, char **argv)
{
    chaos_t c = {0};
    char pgdir[] = "/tmp/stepkit-chaos-pg.XXXXXX", url2[256];
    pid_t live[CHAOS_MAX_MASTERS][CHAOS_MAX_WORKERS];
    int n_live[CHAOS_MAX_MASTERS] = {0};
    PGconn *db = NULL, *ln = NULL;
    sk_client_t *sig = NULL;
    long long next_kill, next_sample = 0, next_poll = 0, next_ext = 0, master_kill_at,
                         pg_restart_at, master_back_at[CHAOS_MAX_MASTERS] = {0}, pg_down_since = 0;
    pg_state_t pg = PG_UP;
    pid_t pg_pid = 0;
    static effects_tail_t eff;
    int pg_ev = -1, failures = 0, rc = 2, started = 0;
    long pending = -1;
    bool pg_started = false;
    struct sigaction sa;

    parse(&c, argc, argv);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rng_state = c.seed;
    c.live_min = -1;

    /* A fresh output directory: logs and the effects file. */
    {
        char cmd[700];

        snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", c.outdir, c.outdir);
        if (system(cmd) != 0) {
            say("cannot make %s", c.outdir);
            return 2;
        }
    }
    snprintf(c.effects, sizeof(c.effects), "%s/effects.log", c.outdir);
    setenv("CHAOS_EFFECTS", c.effects, 1);
    {
        int fd = open(c.effects, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);

        if (fd < 0) {
            say("cannot create %s", c.effects);
            return 2;
        }
        close(fd);
        chmod(c.effects, 0666);
    }
    probe_step_timeout(&c);
    c.hang_poison = c.step_timeout_flag[0] != '\0';
    plan(&c);
    say("seed=%u runs=%d poison=%d per kind masters=%d workers=%d lease_ms=%d storm_s=%d "
        "kill_every_ms=%d-%d out=%s",
        c.seed, c.runs, c.poison, c.masters, c.workers, c.lease_ms, c.storm_s, c.kill_min_ms,
        c.kill_max_ms, c.outdir);
    if (c.hang_poison)
        say("the master has %s: hang poison on, %s %d", c.step_timeout_flag, c.step_timeout_flag,
            c.step_timeout_ms);
    else
        say("NOTE: stepkit-master --help shows no --step-timeout: hang poison SKIPPED (a hung "
            "body would take every worker in turn)");

    if (mkdtemp(pgdir) == NULL) {
        say("mkdtemp: %s", strerror(errno));
        return 2;
    }
    if (pg_cluster(&c, "start", pgdir, c.url, sizeof(c.url)) != 0 || c.url[0] == '\0') {
        say("PostgreSQL did not start (see %s/pg-cluster.log)", c.outdir);
        goto cleanup;
    }
    pg_started = true;
    say("PostgreSQL at %s (%s)", c.url, pgdir);

    start_master(&c, 0);
    if (!wait_registered(&db, c.url, 9, 60000)) {
        say("master 0 did not register the chaos workflows in 60 s (see %s/master-0.log)",
            c.outdir);
        goto cleanup;
    }
    if (!db_exec_ddl(db, audit_sql))
        goto cleanup;
    for (int m = 1; m < c.masters; m++)
        start_master(&c, m);
    {
        long long end = chaos_now_ms() + 30000;
        int total;

        do {
            sleep_ms(100);
            sample(&c, live, n_live);
            total = 0;
            for (int m = 0; m < c.masters; m++)
                total += n_live[m];
        } while (total < c.masters * c.workers && chaos_now_ms() < end && !interrupted);
        if (total < c.masters * c.workers) {
            say("only %d of %d workers started in 30 s (see %s/master-*.log)", total,
                c.masters * c.workers, c.outdir);
            goto cleanup;
        }
    }
    drain_notifies(&c, &ln);

    /* Runs planned before the storm. */
    for (int i = 0; i < c.n_run; i++) {
        if (c.run[i].plan_ms < 0 && start_run(db, &c.run[i]))
            started++;
    }
    c.t0 = chaos_now_ms();
    c.storm_end = c.t0 + (long long)c.storm_s * 1000;
    c.drain_end = c.storm_end + (long long)c.drain_s * 1000;
    next_kill = c.t0 + c.kill_min_ms + rnd((unsigned)(c.kill_max_ms - c.kill_min_ms + 1));
    master_kill_at = c.master_kill ? c.t0 + (long long)c.storm_s * 300 : -1;
    pg_restart_at = c.pg_restart ? c.t0 + (long long)c.storm_s * 600 : -1;
    say("storm begins: %d runs started before it", started);

    while (!interrupted) {
        long long now = chaos_now_ms();

        /* Masters: reap, restart those that died (ours 1 s after the kill). */
        for (int m = 0; m < c.masters; m++) {
            int st;

            if (c.master_pid[m] > 0 && waitpid(c.master_pid[m], &st, WNOHANG) == c.master_pid[m]) {
                bool ours = false;

                for (int e = 0; e < c.n_ev; e++)
                    ours |= c.ev[e].kind == EV_MASTER_KILL && c.ev[e].pid == c.master_pid[m];
                if (!ours) {
                    add_event(&c, EV_MASTER_EXIT, now, c.master_pid[m], m);
                    say("UNPLANNED: master %d (pid %d) exited by itself (%s %d); restarting it "
                        "in 1 s",
                        m, (int)c.master_pid[m], WIFEXITED(st) ? "exit" : "signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
                }
                c.master_pid[m] = 0;
                master_back_at[m] = now + 1000;
            }
            if (c.master_pid[m] == 0 && master_back_at[m] > 0 && now >= master_back_at[m]) {
                start_master(&c, m);
                master_back_at[m] = 0;
                for (int e = c.n_ev - 1; e >= 0; e--) {
                    if ((c.ev[e].kind == EV_MASTER_KILL || c.ev[e].kind == EV_MASTER_EXIT) &&
                        c.ev[e].master == m && c.ev[e].t_end == 0) {
                        c.ev[e].t_end = c.master_started[m];
                        break;
                    }
                }
            }
        }

        if (now >= next_sample) {
            sample(&c, live, n_live);
            next_sample = now + 100;
        }

        /* The storm: worker kills, the master kill, the PostgreSQL restart. */
        if (now < c.storm_end && now >= next_kill) {
            pid_t cand[CHAOS_MAX_MASTERS * CHAOS_MAX_WORKERS];
            int cand_m[CHAOS_MAX_MASTERS * CHAOS_MAX_WORKERS], total = 0;

            /* Workers inside a poison body are left alone: their poison
             * must end them (a storm kill would turn a hang's
             * StepTimeoutError into a WorkerLostError). */
            follow_effects(&c, &eff);
            for (int m = 0; m < c.masters; m++) {
                for (int i = 0; i < n_live[m]; i++) {
                    if (!in_poison(&eff, live[m][i])) {
                        cand[total] = live[m][i];
                        cand_m[total++] = m;
                    }
                }
            }
            if (total > 0) {
                int pick = (int)rnd((unsigned)total), m = cand_m[pick];

                add_event(&c, EV_WORKER_KILL, chaos_now_ms(), cand[pick], m);
                kill(cand[pick], SIGKILL);
                /* Do not pick it again before the next sample. */
                for (int i = 0; i < n_live[m]; i++) {
                    if (live[m][i] == cand[pick]) {
                        live[m][i] = live[m][--n_live[m]];
                        break;
                    }
                }
            }
            next_kill = now + c.kill_min_ms + rnd((unsigned)(c.kill_max_ms - c.kill_min_ms + 1));
        }
        if (master_kill_at > 0 && now >= master_kill_at) {
            int m = (int)rnd((unsigned)c.masters);

            master_kill_at = -1;
            if (c.master_pid[m] > 0) {
                add_event(&c, EV_MASTER_KILL, chaos_now_ms(), c.master_pid[m], m);
                kill(c.master_pid[m], SIGKILL);
                say("SIGKILL master %d (pid %d) at +%.1f s", m, (int)c.master_pid[m],
                    (now - c.t0) / 1000.0);
            }
        }
        /* The restart runs pg-cluster.sh in the background, so the storm
         * and the sampling go on meanwhile. */
        if (pg_restart_at > 0 && now >= pg_restart_at && pg == PG_UP) {
            pg_restart_at = -1;
            add_event(&c, EV_PG_RESTART, now, 0, -1);
            pg_ev = c.n_ev - 1;
            say("PostgreSQL stop at +%.1f s", (now - c.t0) / 1000.0);
            pg_pid = pg_cluster_bg(&c, "stop", pgdir);
            pg = PG_STOPPING;
            PQfinish(db);
            db = NULL;
            PQfinish(ln);
            ln = NULL;
            sk_client_close(sig);
            sig = NULL;
        }
        if ((pg == PG_STOPPING || pg == PG_STARTING) && pg_pid > 0) {
            int st;

            if (waitpid(pg_pid, &st, WNOHANG) == pg_pid) {
                bool ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;

                pg_pid = 0;
                if (pg == PG_STOPPING) {
                    if (!ok)
                        say("pg-cluster.sh stop failed (see %s/pg-cluster.log)", c.outdir);
                    pg = PG_DOWN;
                    pg_down_since = chaos_now_ms();
                    c.ev[pg_ev].t_mid = pg_down_since;
                } else {
                    if (!ok || pg_started_url(&c, url2, sizeof(url2)) != 0) {
                        say("PostgreSQL did not start again (see %s/pg-cluster.log)", c.outdir);
                        goto cleanup;
                    }
                    if (strcmp(url2, c.url) != 0) {
                        say("PostgreSQL came back at %s, not %s: the masters cannot follow", url2,
                            c.url);
                        c.pg_url_changed = 1;
                    }
                    c.ev[pg_ev].t_end = chaos_now_ms();
                    say("PostgreSQL up again at +%.1f s", (c.ev[pg_ev].t_end - c.t0) / 1000.0);
                    pg = PG_UP;
                }
            }
        }
        if (pg == PG_DOWN && now >= pg_down_since + 2000) {
            pg = PG_STARTING;
            pg_pid = pg_cluster_bg(&c, "start", pgdir);
        }

        /* Starts, signals, progress, notifications: only with the database up. */
        if (pg == PG_UP) {
            if (db == NULL || PQstatus(db) != CONNECTION_OK) {
                PQfinish(db);
                db = db_connect(c.url);
            }
            for (int i = 0; db != NULL && i < c.n_run; i++) {
                chaos_run_t *r = &c.run[i];

                if (r->run_id[0] == '\0' && c.t0 + r->plan_ms <= now) {
                    if (start_run(db, r)) {
                        started++;
                    } else if (PQstatus(db) != CONNECTION_OK) {
                        break;
                    }
                }
            }
            if (now >= next_ext) {
                send_ext(&c, &sig);
                next_ext = now + 250;
            }
            drain_notifies(&c, &ln);
            if (db != NULL && now >= next_poll) {
                pending = pending_runs(&c, db);
                next_poll = now + 500;
            }
        }

        if (now >= c.storm_end && started == c.n_run && pending == 0)
            break;
        if (now >= c.drain_end) {
            say("drain deadline: %ld run(s) still pending %d s after the storm", pending,
                c.drain_s);
            break;
        }
        sleep_ms(10);
    }
    if (interrupted) {
        say("interrupted");
        goto cleanup;
    }
    say("all done at +%.1f s (storm %d s); stopping the masters", (chaos_now_ms() - c.t0) / 1000.0,
        c.storm_s);
    drain_notifies(&c, &ln);
    stop_masters(&c);
    sleep_ms(500); /* PDEATHSIG and the alive pipe take a moment */
    kill_orphans(&c);
    if (db == NULL || PQstatus(db) != CONNECTION_OK) {
        PQfinish(db);
        db = db_connect(c.url);
    }
    if (db == NULL) {
        say("cannot connect to PostgreSQL for the checks");
        goto cleanup;
    }
    failures = chaos_report(&c, db);
    rc = failures == 0 ? 0 : 1;

cleanup:
    stop_masters(&c);
    kill_orphans(&c);
    PQfinish(db);
    PQfinish(ln);
    sk_client_close(sig);
    if (pg_started) {
        char cmd[700];

        pg_cluster(&c, "stop", pgdir, NULL, 0);
        snprintf(cmd, sizeof(cmd), "cp '%s/postgresql.log' '%s/' 2>/dev/null; rm -rf '%s'", pgdir,
                 c.outdir, pgdir);
        if (system(cmd) != 0)
            say("could not remove %s", pgdir);
    } else {
        rmdir(pgdir);
    }
    say("logs in %s", c.outdir);
    return rc;
}
