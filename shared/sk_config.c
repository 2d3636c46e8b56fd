/*
 * sk_config - the master's configuration.
 *
 * One table (`options` below) drives everything: defaults, the environment,
 * the command line, validation, --help and docs/configuration.md.  Every
 * value from outside goes through set_value(), which checks it before it
 * lands in the struct; sk_config_validate() then checks the whole struct,
 * including the rules that tie two options together.
 *
 * Order: defaults, then the environment, then the flags (flags win).  An
 * environment variable set to the empty string counts as unset, so a
 * template that renders `STEPKIT_WORKERS=` keeps the default.
 */
#include "sk_config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sk_duration.h"
#include "sk_log.h"
#include "sk_metrics.h"
#include "stepkit.h"

#define PROG_NAME "stepkit-master"

typedef enum {
    OPT_INT,    /* int field, bounds min..max */
    OPT_STRING, /* char[size] field */
    OPT_BOOL,   /* int field, 0/1 */
    OPT_LIST,   /* char[max][size] field and an int count at count_offset */
    OPT_LEVEL,  /* int field, sk_log_level_t */
    OPT_LOGFMT, /* int field, sk_log_format_t */
    OPT_FILE,   /* the value names a file whose contents fill a string field */
    OPT_ACTION  /* --help, --version, --help-markdown: no field */
} opt_type_t;

typedef enum { ACT_NONE = 0, ACT_HELP, ACT_VERSION, ACT_MARKDOWN, ACT_METRICS } opt_action_t;

typedef struct {
    const char *flag; /* long flag without the leading "--" */
    const char *env;  /* environment variable, NULL when none */
    opt_type_t type;
    size_t offset;                   /* field in sk_config_t */
    size_t size;                     /* OPT_STRING/OPT_FILE: buffer size; OPT_LIST: entry size */
    size_t count_offset;             /* OPT_LIST: the int holding the count */
    const char *def;                 /* default, parsed like any other value; NULL: none */
    int (*def_fn)(void);             /* OPT_INT computed default (instead of def) */
    const char *def_doc;             /* how docs show a computed default */
    long long min, max;              /* OPT_INT: bounds; OPT_LIST: most entries */
    opt_action_t action;             /* OPT_ACTION */
    int (*valid)(const char *value); /* OPT_STRING: extra rule, NULL when none */
    const char *rule;                /* what `valid` checks, for the message */
    const char *metavar;             /* value name in --help, NULL for flags without one */
    const char *help;
} opt_t;

static int default_workers(void);
static int schema_name_valid(const char *s);
static int http_valid(const char *s);
static int retention_valid(const char *s);
static int ui_token_file_valid(const char *s);
static int ui_hosts_valid(const char *s);

#define FIELD(f)      offsetof(sk_config_t, f), sizeof(((sk_config_t *)0)->f)
#define LIST_ENTRY(f) offsetof(sk_config_t, f), sizeof(((sk_config_t *)0)->f[0])

static const opt_t options[] = {
    {.flag = "database-url",
     .env = "DATABASE_URL",
     .type = OPT_STRING,
     FIELD(database_url),
     .def = "",
     .metavar = "URL",
     .help = "PostgreSQL connection string: a postgresql:// URL or libpq key=value pairs. "
             "Empty: libpq's defaults (PGHOST, PGDATABASE, PGUSER, ... and ~/.pgpass)."},
    {.flag = "database-url-file",
     .env = "DATABASE_URL_FILE",
     .type = OPT_FILE,
     FIELD(database_url),
     .metavar = "PATH",
     .help = "Read the connection string from this file (a mounted secret); trailing newlines "
             "are stripped. Setting both this and the connection string is an error."},
    {.flag = "schema",
     .env = "STEPKIT_SCHEMA",
     .type = OPT_STRING,
     FIELD(schema),
     .def = "stepkit",
     .valid = schema_name_valid,
     .rule = "a valid schema name ([a-z_][a-z0-9_]{0,62})",
     .metavar = "NAME",
     .help = "Schema holding StepKit's tables; must match [a-z_][a-z0-9_]{0,62}."},
    {.flag = "workers",
     .env = "STEPKIT_WORKERS",
     .type = OPT_INT,
     FIELD(workers),
     .def_fn = default_workers,
     .def_doc = "CPU count",
     .min = 1,
     .max = SK_MAX_WORKERS,
     .metavar = "N",
     .help = "Worker processes to fork. Default: the CPUs this process may run on, "
             "bounded by the cgroup v2 CPU quota (cpu.max) when there is one."},
    {.flag = "workflows",
     .env = "STEPKIT_WORKFLOWS",
     .type = OPT_LIST,
     LIST_ENTRY(libraries),
     .count_offset = offsetof(sk_config_t, n_libraries),
     .max = SK_MAX_LIBRARIES,
     .metavar = "PATH",
     .help = "Workflow library (.so) to load; repeat the flag for several (colon-separated "
             "in the environment). At least one is required."},
    {.flag = "no-migrate",
     .env = "STEPKIT_NO_MIGRATE",
     .type = OPT_BOOL,
     FIELD(no_migrate),
     .def = "0",
     .help = "Do not migrate the schema at start, only check that it is current. "
             "Environment values: 1/0, true/false, yes/no."},
    {.flag = "poll-interval",
     .env = "STEPKIT_POLL_INTERVAL_MS",
     .type = OPT_INT,
     FIELD(poll_interval_ms),
     .def = "100",
     .min = 1,
     .max = 60000,
     .metavar = "MS",
     .help = "First idle poll delay in milliseconds; doubles up to the poll maximum."},
    {.flag = "poll-max",
     .env = "STEPKIT_POLL_MAX_MS",
     .type = OPT_INT,
     FIELD(poll_max_ms),
     .def = "1000",
     .min = 1,
     .max = 600000,
     .metavar = "MS",
     .help = "Longest idle poll delay in milliseconds; at least the poll interval."},
    {.flag = "lease",
     .env = "STEPKIT_LEASE_MS",
     .type = OPT_INT,
     FIELD(lease_ms),
     .def = "30000",
     .min = 100,
     .max = 86400000,
     .metavar = "MS",
     .help = "How long a claim holds a work item before another worker may take it over."},
    {.flag = "batch",
     .env = "STEPKIT_BATCH",
     .type = OPT_INT,
     FIELD(batch),
     .def = "8",
     .min = 1,
     .max = 64,
     .metavar = "N",
     .help = "Most work items a worker holds at once when they are ready together; it runs the "
             "next step of each and commits their results in one transaction. A claim that finds "
             "one item ready runs it alone, one commit per step, as does 1 always. A killed "
             "worker's batch is handed back at once; the bodies it ran since its last commit run "
             "again."},
    {.flag = "batch-window",
     .env = "STEPKIT_BATCH_WINDOW_MS",
     .type = OPT_INT,
     FIELD(batch_window_ms),
     .def = "5",
     .min = 0,
     .max = 60000,
     .metavar = "MS",
     .help = "With --batch above 1: the step time one commit may cover. A worker holds as many "
             "items as steps of their mean time fit in it (one when steps are slow: no batching "
             "where a commit costs little next to the steps) and commits at the latest once its "
             "steps took this long. 0 disables batching."},
    {.flag = "step-timeout",
     .env = "STEPKIT_STEP_TIMEOUT_MS",
     .type = OPT_INT,
     FIELD(step_timeout_ms),
     .def = "300000",
     .min = 100,
     .max = 86400000,
     .metavar = "MS",
     .help = "How long a step body may run without progress (sk_heartbeat) before the master "
             "kills its worker and the attempt fails with StepTimeoutError. Workflows and steps "
             "may set their own."},
    {.flag = "shutdown-timeout",
     .env = "STEPKIT_SHUTDOWN_TIMEOUT_MS",
     .type = OPT_INT,
     FIELD(shutdown_timeout_ms),
     .def = "25000",
     .min = 0,
     .max = 3600000,
     .metavar = "MS",
     .help = "Drain grace after SIGTERM before the remaining workers are killed. Keep it "
             "below the orchestrator's own grace period (Kubernetes: 30 s)."},
    {.flag = "restart-base",
     .env = "STEPKIT_RESTART_BASE_MS",
     .type = OPT_INT,
     FIELD(restart_base_ms),
     .def = "500",
     .min = 1,
     .max = 3600000,
     .metavar = "MS",
     .help = "First delay before a crashed worker is restarted; doubles with each crash."},
    {.flag = "restart-max",
     .env = "STEPKIT_RESTART_MAX_MS",
     .type = OPT_INT,
     FIELD(restart_max_ms),
     .def = "30000",
     .min = 1,
     .max = 3600000,
     .metavar = "MS",
     .help = "Longest delay before a crashed worker is restarted; at least the restart base."},
    {.flag = "log-level",
     .env = "STEPKIT_LOG_LEVEL",
     .type = OPT_LEVEL,
     FIELD(log_level),
     .def = "info",
     .metavar = "LEVEL",
     .help = "One of error, warn, info, debug."},
    {.flag = "log-format",
     .env = "STEPKIT_LOG_FORMAT",
     .type = OPT_LOGFMT,
     FIELD(log_format),
     .def = "logfmt",
     .metavar = "FORMAT",
     .help = "logfmt: one key=value line per event; json: one JSON object per line with ts, "
             "level, role, pid, worker (slot), event, run_id, workflow and the event's other "
             "fields, for log collectors."},
    {.flag = "http",
     .env = "STEPKIT_HTTP",
     .type = OPT_STRING,
     FIELD(http),
     .def = SK_HTTP_DEFAULT,
     .valid = http_valid,
     .rule = "off or ADDRESS:PORT (0.0.0.0:9464, 127.0.0.1:9464, [::]:9464, :9464)",
     .metavar = "ADDR:PORT",
     .help = "Where the HTTP process listens for /livez, /readyz and /metrics (Prometheus). "
             "An IPv4 or [IPv6] address, empty for every interface; off: no HTTP process."},
    {.flag = "retention",
     .env = "STEPKIT_RETENTION",
     .type = OPT_STRING,
     FIELD(retention),
     .def = "off",
     .valid = retention_valid,
     .rule = "off or a duration of at least 1s (e.g. 12h, 30d)",
     .metavar = "DURATION",
     .help = "Delete finished runs (with their steps and history) that ended longer ago than "
             "this, in small batches, by whichever worker takes the schema's prune lock. "
             "off: keep everything (prune with `stepkit prune`). An event id or idempotency "
             "key is remembered only as long as its runs are kept."},
    {.flag = "ui",
     .env = "STEPKIT_UI",
     .type = OPT_BOOL,
     FIELD(ui),
     .def = "0",
     .help = "Serve the web dashboard (docs/dashboard.md) under /ui on the --http listener: runs, "
             "steps, workflows, the queue. Read-only unless --ui-token-file is set. Needs --http."},
    {.flag = "ui-token-file",
     .env = "STEPKIT_UI_TOKEN_FILE",
     .type = OPT_STRING,
     FIELD(ui_token_file),
     .def = "",
     .valid = ui_token_file_valid,
     .rule = "a readable file whose first line is a token of 16 to 256 printable characters",
     .metavar = "PATH",
     .help = "File holding the dashboard's token (first line). With it, the dashboard can cancel "
             "and retry runs for whoever presents the token; without it, it is read-only. Read "
             "when the HTTP process starts."},
    {.flag = "ui-allowed-hosts",
     .env = "STEPKIT_UI_ALLOWED_HOSTS",
     .type = OPT_STRING,
     FIELD(ui_allowed_hosts),
     .def = "",
     .valid = ui_hosts_valid,
     .rule = "host names separated by commas (letters, digits, '-' and '.'), or *",
     .metavar = "NAMES",
     .help = "Host names the dashboard answers to besides IP addresses and localhost (the name "
             "of an Ingress or a Service, say): a request whose Host header names another host "
             "is refused, so a web page cannot read the dashboard through a name it controls "
             "(DNS rebinding). * answers any name."},
    {.flag = "help", .type = OPT_ACTION, .action = ACT_HELP, .help = "Print this help and exit."},
    {.flag = "help-markdown",
     .type = OPT_ACTION,
     .action = ACT_MARKDOWN,
     .help = "Print this reference as Markdown (docs/configuration.md) and exit."},
    {.flag = "help-metrics",
     .type = OPT_ACTION,
     .action = ACT_METRICS,
     .help = "Print the metrics reference as Markdown (docs/metrics.md) and exit."},
    {.flag = "version",
     .type = OPT_ACTION,
     .action = ACT_VERSION,
     .help = "Print the version and exit."},
};

#define N_OPTIONS ((int)(sizeof(options) / sizeof(options[0])))

/* Fixed-size fields only: the struct is copied into shared memory. */
_Static_assert(sizeof(((sk_config_t *)0)->database_url) == SK_URL_MAX, "database_url size");
_Static_assert(sizeof(((sk_config_t *)0)->libraries) == SK_MAX_LIBRARIES * SK_PATH_MAX,
               "libraries size");

/* ---- the default worker count ------------------------------------------------ */

/* CPU quota of one cgroup v2 directory, rounded up; 0 when unlimited or unknown. */
static int cgroup_quota(const char *dir)
{
    char path[PATH_MAX], line[128];
    long long quota, period;
    FILE *f;
    int n;

    n = snprintf(path, sizeof(path), "%s/cpu.max", dir);
    if (n < 0 || (size_t)n >= sizeof(path))
        return 0;
    f = fopen(path, "re");
    if (f == NULL)
        return 0;
    if (fgets(line, sizeof(line), f) == NULL) {
        fclose(f);
        return 0;
    }
    fclose(f);
    /* "max 100000" = unlimited, "150000 100000" = 1.5 CPUs */
    if (sscanf(line, "%lld %lld", &quota, &period) != 2 || quota <= 0 || period <= 0)
        return 0;
    quota = (quota + period - 1) / period;
    return quota > INT_MAX ? INT_MAX : (int)quota;
}

/*
 * The smallest quota on the way from our own cgroup up to the root of the
 * hierarchy we can see (inside a container's cgroup namespace that is just
 * /sys/fs/cgroup/cpu.max); 0 when none applies.
 */
static int cgroup_cpu_limit(void)
{
    char line[PATH_MAX], dir[PATH_MAX + 32];
    int limit = 0, q, n;
    FILE *f;
    char *p, *slash;

    limit = cgroup_quota("/sys/fs/cgroup");
    f = fopen("/proc/self/cgroup", "re");
    if (f == NULL)
        return limit;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "0::/", 4) != 0)
            continue; /* cgroup v1 controllers: not ours to read */
        p = line + 3;
        p[strcspn(p, "\n")] = '\0';
        n = snprintf(dir, sizeof(dir), "/sys/fs/cgroup%s", p);
        if (n < 0 || (size_t)n >= sizeof(dir))
            break;
        for (;;) {
            q = cgroup_quota(dir);
            if (q > 0 && (limit == 0 || q < limit))
                limit = q;
            slash = strrchr(dir, '/');
            if (slash == NULL || slash - dir <= (ptrdiff_t)strlen("/sys/fs/cgroup"))
                break;
            *slash = '\0';
        }
        break;
    }
    fclose(f);
    return limit;
}

static int default_workers(void)
{
    cpu_set_t set;
    long n = 0;
    int limit;

    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0)
        n = 1;
    limit = cgroup_cpu_limit();
    if (limit > 0 && limit < n)
        n = limit;
    if (n > SK_MAX_WORKERS)
        n = SK_MAX_WORKERS;
    return (int)n;
}

/* ---- the HTTP address ---------------------------------------------------------------- */

int sk_config_http_addr(const char *value, sk_http_addr_t *out)
{
    const char *colon, *host;
    char buf[SK_NAME_MAX];
    size_t hlen;
    long port;
    char *end;

    memset(out, 0, sizeof(*out));
    if (strcmp(value, "off") == 0)
        return SK_AGAIN;
    colon = strrchr(value, ':');
    if (colon == NULL || colon[1] == '\0')
        return SK_ERROR;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || errno != 0 || port < 1 || port > 65535 || !isdigit((unsigned char)colon[1]))
        return SK_ERROR;
    host = value;
    hlen = (size_t)(colon - value);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
        out->family = AF_INET6;
    } else {
        out->family = AF_INET;
    }
    if (hlen >= sizeof(buf))
        return SK_ERROR;
    memcpy(buf, host, hlen);
    buf[hlen] = '\0';
    if (hlen == 0 || strcmp(buf, "*") == 0) {
        if (out->family == AF_INET6)
            return SK_ERROR; /* "[]:9464" */
        snprintf(buf, sizeof(buf), "0.0.0.0");
    }
    if (out->family == AF_INET) {
        struct in_addr a;
        if (inet_pton(AF_INET, buf, &a) != 1)
            return SK_ERROR;
    } else {
        struct in6_addr a;
        if (inet_pton(AF_INET6, buf, &a) != 1)
            return SK_ERROR;
    }
    snprintf(out->host, sizeof(out->host), "%s", buf);
    out->port = (int)port;
    return SK_OK;
}

static int http_valid(const char *s)
{
    sk_http_addr_t a;

    return sk_config_http_addr(s, &a) != SK_ERROR;
}

static int ui_hosts_valid(const char *s)
{
    size_t n = 0; /* characters of the current name */

    if (s[0] == '\0' || strcmp(s, "*") == 0)
        return 1; /* "": IP addresses and localhost only */
    for (;; s++) {
        if (*s == ',' || *s == '\0') {
            if (n == 0 || n > 253)
                return 0; /* an empty or over-long name */
            if (*s == '\0')
                return 1;
            n = 0;
        } else if (isalnum((unsigned char)*s) || *s == '-' || *s == '.') {
            n++;
        } else {
            return 0;
        }
    }
}

static int ui_token_file_valid(const char *s)
{
    char tok[SK_UI_TOKEN_MAX + 1];

    return s[0] == '\0' || sk_config_ui_token(s, tok, sizeof(tok)) == SK_OK;
}

int sk_config_ui_token(const char *path, char *out, size_t len)
{
    char buf[SK_UI_TOKEN_MAX + 2];
    size_t n;
    FILE *f = fopen(path, "re");

    if (f == NULL)
        return SK_ERROR;
    if (fgets(buf, (int)sizeof(buf), f) == NULL) {
        fclose(f);
        return SK_ERROR;
    }
    fclose(f);
    n = strcspn(buf, "\r\n");
    buf[n] = '\0';
    if (n < SK_UI_TOKEN_MIN || n > SK_UI_TOKEN_MAX || n >= len)
        return SK_ERROR;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] <= ' ' || buf[i] > '~')
            return SK_ERROR;
    }
    memcpy(out, buf, n + 1);
    return SK_OK;
}

/* ---- setting one value ------------------------------------------------------- */

static int *int_field(sk_config_t *cfg, const opt_t *o)
{
    return (int *)(void *)((char *)cfg + o->offset);
}

static const int *int_field_c(const sk_config_t *cfg, const opt_t *o)
{
    return (const int *)(const void *)((const char *)cfg + o->offset);
}

static char *str_field(sk_config_t *cfg, const opt_t *o)
{
    return (char *)cfg + o->offset;
}

static int copy_string(char *dst, size_t size, const char *value, size_t len, const char *name,
                       char *err, size_t errlen)
{
    if (len >= size) {
        /* Never echo the value: it may be a connection string with a password. */
        snprintf(err, errlen, "%s: value is too long (at most %zu bytes)", name, size - 1);
        return SK_ERROR;
    }
    memcpy(dst, value, len);
    dst[len] = '\0';
    return SK_OK;
}

static int parse_int(const char *value, const opt_t *o, const char *name, int *out, char *err,
                     size_t errlen)
{
    long long v;
    char *end;

    /* strtoll alone would accept leading blanks and an empty string */
    if (!isdigit((unsigned char)value[0]) &&
        !((value[0] == '-' || value[0] == '+') && isdigit((unsigned char)value[1]))) {
        snprintf(err, errlen, "%s: '%s' is not a number", name, value);
        return SK_ERROR;
    }
    errno = 0;
    v = strtoll(value, &end, 10);
    if (*end != '\0') {
        snprintf(err, errlen, "%s: '%s' is not a number", name, value);
        return SK_ERROR;
    }
    if (errno == ERANGE || v < o->min || v > o->max) {
        snprintf(err, errlen, "%s: %s is out of range %lld..%lld", name, value, o->min, o->max);
        return SK_ERROR;
    }
    *out = (int)v;
    return SK_OK;
}

static int parse_bool(const char *value, const char *name, int *out, char *err, size_t errlen)
{
    static const char *const yes[] = {"1", "true", "yes"};
    static const char *const no[] = {"0", "false", "no"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(value, yes[i]) == 0) {
            *out = 1;
            return SK_OK;
        }
        if (strcasecmp(value, no[i]) == 0) {
            *out = 0;
            return SK_OK;
        }
    }
    snprintf(err, errlen, "%s: '%s' is not a boolean (1/0, true/false, yes/no)", name, value);
    return SK_ERROR;
}

static int add_list_entry(sk_config_t *cfg, const opt_t *o, const char *value, size_t len,
                          const char *name, char *err, size_t errlen)
{
    int *count = (int *)(void *)((char *)cfg + o->count_offset);
    char *entry;

    if (len == 0) {
        snprintf(err, errlen, "%s: empty path", name);
        return SK_ERROR;
    }
    if (*count >= o->max) {
        snprintf(err, errlen, "%s: more than %lld libraries", name, o->max);
        return SK_ERROR;
    }
    entry = str_field(cfg, o) + (size_t)*count * o->size;
    if (copy_string(entry, o->size, value, len, name, err, errlen) != SK_OK)
        return SK_ERROR;
    (*count)++;
    return SK_OK;
}

/* Read a secret file into `dst`: at most size-1 bytes once trailing newlines are gone. */
static int read_file_value(char *dst, size_t size, const char *path, const char *name, char *err,
                           size_t errlen)
{
    char buf[SK_URL_MAX + 8];
    size_t len = 0;
    ssize_t n;
    int fd, rc = SK_ERROR;

    if (path[0] == '\0') {
        snprintf(err, errlen, "%s: empty path", name);
        return SK_ERROR;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot read '%s': %s", name, path, strerror(errno));
        return SK_ERROR;
    }
    while (len < sizeof(buf)) {
        n = read(fd, buf + len, sizeof(buf) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: cannot read '%s': %s", name, path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    /* A full buffer may be only the start of the file: stripping the newlines
     * it ends with would accept a cut-off value. */
    if (len == sizeof(buf)) {
        char more;

        do
            n = read(fd, &more, 1);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            snprintf(err, errlen, "%s: cannot read '%s': %s", name, path, strerror(errno));
            goto done;
        }
        if (n > 0) {
            snprintf(err, errlen, "%s: '%s' is too long (at most %zu bytes)", name, path, size - 1);
            goto done;
        }
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len >= size || len >= sizeof(buf)) {
        snprintf(err, errlen, "%s: '%s' is too long (at most %zu bytes)", name, path, size - 1);
        goto done;
    }
    if (len == 0) {
        snprintf(err, errlen, "%s: '%s' is empty", name, path);
        goto done;
    }
    if (memchr(buf, '\0', len) != NULL) {
        snprintf(err, errlen, "%s: '%s' contains a NUL byte", name, path);
        goto done;
    }
    memcpy(dst, buf, len);
    dst[len] = '\0';
    rc = SK_OK;
done:
    close(fd);
    return rc;
}

/* Same rule as sk_pg_schema_valid(); kept here so sk_config has no libpq dependency. */
static int retention_valid(const char *s)
{
    int64_t ms;

    return strcmp(s, "off") == 0 || (sk_duration_parse(s, &ms) == SK_OK && ms >= 1000);
}

static int schema_name_valid(const char *s)
{
    size_t i;

    if (!(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z')))
        return 0;
    for (i = 1; s[i] != '\0'; i++) {
        if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    }
    return i <= 63;
}

/* Check and store one value; `name` is how the user wrote it ("--workers" or "STEPKIT_WORKERS"). */
static int set_value(sk_config_t *cfg, const opt_t *o, const char *value, const char *name,
                     char *err, size_t errlen)
{
    int level;

    switch (o->type) {
    case OPT_INT:
        return parse_int(value, o, name, int_field(cfg, o), err, errlen);
    case OPT_BOOL:
        return parse_bool(value, name, int_field(cfg, o), err, errlen);
    case OPT_LEVEL:
        level = sk_log_parse_level(value);
        if (level < 0) {
            snprintf(err, errlen, "%s: '%s' is not one of error|warn|info|debug", name, value);
            return SK_ERROR;
        }
        *int_field(cfg, o) = level;
        return SK_OK;
    case OPT_LOGFMT:
        level = sk_log_parse_format(value);
        if (level < 0) {
            snprintf(err, errlen, "%s: '%s' is not one of logfmt|json", name, value);
            return SK_ERROR;
        }
        *int_field(cfg, o) = level;
        return SK_OK;
    case OPT_STRING:
        if (copy_string(str_field(cfg, o), o->size, value, strlen(value), name, err, errlen) !=
            SK_OK)
            return SK_ERROR;
        if (o->valid != NULL && !o->valid(value)) {
            snprintf(err, errlen, "%s: '%s' is not %s", name, value, o->rule);
            return SK_ERROR;
        }
        return SK_OK;
    case OPT_FILE:
        return read_file_value(str_field(cfg, o), o->size, value, name, err, errlen);
    case OPT_LIST:
        return add_list_entry(cfg, o, value, strlen(value), name, err, errlen);
    case OPT_ACTION:
        break;
    }
    snprintf(err, errlen, "%s: cannot be set", name);
    return SK_ERROR;
}

/* ---- defaults, environment, flags -------------------------------------------- */

void sk_config_defaults(sk_config_t *cfg)
{
    char err[256];

    memset(cfg, 0, sizeof(*cfg));
    for (int i = 0; i < N_OPTIONS; i++) {
        const opt_t *o = &options[i];
        if (o->def_fn != NULL) {
            *int_field(cfg, o) = o->def_fn();
        } else if (o->def != NULL &&
                   set_value(cfg, o, o->def, o->flag, err, sizeof(err)) != SK_OK) {
            /* A default the table itself rejects is a bug in this file. */
            fprintf(stderr, "sk_config: bad default: %s\n", err);
            abort();
        }
    }
}

/*
 * Two options writing the same field (the URL and the URL file) set in the
 * same source is an error: we cannot tell which one the user meant.
 */
static int check_conflicts(const int *seen, int names_env, char *err, size_t errlen)
{
    for (int i = 0; i < N_OPTIONS; i++) {
        if (!seen[i] || options[i].type != OPT_FILE)
            continue;
        for (int j = 0; j < N_OPTIONS; j++) {
            if (j == i || !seen[j] || options[j].offset != options[i].offset ||
                options[j].type == OPT_ACTION)
                continue;
            if (names_env)
                snprintf(err, errlen, "%s and %s are both set; use one of them", options[j].env,
                         options[i].env);
            else
                snprintf(err, errlen, "--%s and --%s are both given; use one of them",
                         options[j].flag, options[i].flag);
            return SK_ERROR;
        }
    }
    return SK_OK;
}

static const char *env_value(const opt_t *o)
{
    const char *value = o->env ? getenv(o->env) : NULL;
    return value != NULL && value[0] != '\0' ? value : NULL;
}

static int load_env(sk_config_t *cfg, char *err, size_t errlen)
{
    int seen[N_OPTIONS] = {0};

    /* Conflicts first: a missing secret file is not the real problem then. */
    for (int i = 0; i < N_OPTIONS; i++)
        seen[i] = env_value(&options[i]) != NULL;
    if (check_conflicts(seen, 1, err, errlen) != SK_OK)
        return SK_ERROR;

    for (int i = 0; i < N_OPTIONS; i++) {
        const opt_t *o = &options[i];
        const char *value = env_value(o), *p, *colon;

        if (value == NULL)
            continue;
        if (o->type != OPT_LIST) {
            if (set_value(cfg, o, value, o->env, err, errlen) != SK_OK)
                return SK_ERROR;
            continue;
        }
        /* colon-separated, empty entries skipped ("a::b", trailing ':') */
        *(int *)(void *)((char *)cfg + o->count_offset) = 0;
        for (p = value; *p != '\0'; p = *colon ? colon + 1 : colon) {
            colon = strchrnul(p, ':');
            if (colon == p)
                continue;
            if (add_list_entry(cfg, o, p, (size_t)(colon - p), o->env, err, errlen) != SK_OK)
                return SK_ERROR;
        }
    }
    return SK_OK;
}

static const opt_t *find_flag(const char *name, size_t len)
{
    for (int i = 0; i < N_OPTIONS; i++) {
        if (strlen(options[i].flag) == len && strncmp(options[i].flag, name, len) == 0)
            return &options[i];
    }
    return NULL;
}

static int load_flags(sk_config_t *cfg, int argc, char **argv, opt_action_t *action, char *err,
                      size_t errlen)
{
    int seen[N_OPTIONS] = {0};
    char name[80];

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *eq, *value;
        const opt_t *o;
        size_t len;

        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0') {
            snprintf(err, errlen, "unexpected argument '%s'", arg);
            return SK_ERROR;
        }
        eq = strchr(arg + 2, '=');
        len = eq ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
        o = find_flag(arg + 2, len);
        if (o == NULL) {
            snprintf(err, errlen, "unknown option '%.*s'", (int)(len + 2), arg);
            return SK_ERROR;
        }
        snprintf(name, sizeof(name), "--%s", o->flag);

        if (o->type == OPT_ACTION) {
            if (eq != NULL) {
                snprintf(err, errlen, "%s: takes no value", name);
                return SK_ERROR;
            }
            if (*action == ACT_NONE)
                *action = o->action;
            continue;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (o->type == OPT_BOOL) {
            value = "1"; /* --no-migrate alone switches it on */
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            value = argv[++i];
        } else {
            snprintf(err, errlen, "%s: missing value", name);
            return SK_ERROR;
        }

        /* The first --workflows replaces the list from the environment. */
        if (o->type == OPT_LIST && !seen[o - options])
            *(int *)(void *)((char *)cfg + o->count_offset) = 0;
        seen[o - options] = 1;
        if (set_value(cfg, o, value, name, err, errlen) != SK_OK)
            return SK_ERROR;
    }
    return check_conflicts(seen, 0, err, errlen);
}

static const char *prog_name(int argc, char **argv)
{
    const char *slash;

    if (argc < 1 || argv[0] == NULL || argv[0][0] == '\0')
        return PROG_NAME;
    slash = strrchr(argv[0], '/');
    return slash ? slash + 1 : argv[0];
}

int sk_config_load(sk_config_t *cfg, int argc, char **argv, FILE *out, char *err, size_t errlen)
{
    opt_action_t action = ACT_NONE;

    if (errlen > 0)
        err[0] = '\0';
    sk_config_defaults(cfg);
    if (load_env(cfg, err, errlen) != SK_OK)
        return SK_ERROR;
    if (load_flags(cfg, argc, argv, &action, err, errlen) != SK_OK)
        return SK_ERROR;
    switch (action) {
    case ACT_HELP:
        sk_config_usage(out, prog_name(argc, argv));
        return SK_AGAIN;
    case ACT_VERSION:
        fprintf(out, "%s %s\n", prog_name(argc, argv), SK_VERSION);
        return SK_AGAIN;
    case ACT_MARKDOWN:
        sk_config_write_markdown(out);
        return SK_AGAIN;
    case ACT_METRICS:
        sk_metrics_write_markdown(out);
        return SK_AGAIN;
    case ACT_NONE:
        break;
    }
    return sk_config_validate(cfg, err, errlen);
}

int sk_config_validate(const sk_config_t *cfg, char *err, size_t errlen)
{
    for (int i = 0; i < N_OPTIONS; i++) {
        const opt_t *o = &options[i];
        const char *s;
        int v, n;

        switch (o->type) {
        case OPT_INT:
            v = *int_field_c(cfg, o);
            if (v < o->min || v > o->max) {
                snprintf(err, errlen, "--%s: %d is out of range %lld..%lld", o->flag, v, o->min,
                         o->max);
                return SK_ERROR;
            }
            break;
        case OPT_BOOL:
            v = *int_field_c(cfg, o);
            if (v != 0 && v != 1) {
                snprintf(err, errlen, "--%s: %d is not a boolean", o->flag, v);
                return SK_ERROR;
            }
            break;
        case OPT_LEVEL:
            v = *int_field_c(cfg, o);
            if (v < SK_LOG_ERROR || v > SK_LOG_DEBUG) {
                snprintf(err, errlen, "--%s: %d is not a log level", o->flag, v);
                return SK_ERROR;
            }
            break;
        case OPT_LOGFMT:
            v = *int_field_c(cfg, o);
            if (v != SK_LOG_LOGFMT && v != SK_LOG_JSON) {
                snprintf(err, errlen, "--%s: %d is not a log format", o->flag, v);
                return SK_ERROR;
            }
            break;
        case OPT_STRING:
            s = (const char *)cfg + o->offset;
            if (memchr(s, '\0', o->size) == NULL) {
                snprintf(err, errlen, "--%s: value is not terminated", o->flag);
                return SK_ERROR;
            }
            if (o->valid != NULL && !o->valid(s)) {
                snprintf(err, errlen, "--%s: '%s' is not %s", o->flag, s, o->rule);
                return SK_ERROR;
            }
            break;
        case OPT_LIST:
            n = *(const int *)(const void *)((const char *)cfg + o->count_offset);
            if (n < 0 || n > o->max) {
                snprintf(err, errlen, "--%s: %d entries, at most %lld", o->flag, n, o->max);
                return SK_ERROR;
            }
            for (int k = 0; k < n; k++) {
                s = (const char *)cfg + o->offset + (size_t)k * o->size;
                if (memchr(s, '\0', o->size) == NULL || s[0] == '\0') {
                    snprintf(err, errlen, "--%s: entry %d is empty or not terminated", o->flag,
                             k + 1);
                    return SK_ERROR;
                }
            }
            break;
        case OPT_FILE:
        case OPT_ACTION:
            break;
        }
    }
    if (cfg->poll_max_ms < cfg->poll_interval_ms) {
        snprintf(err, errlen, "--poll-max: %d is less than --poll-interval %d", cfg->poll_max_ms,
                 cfg->poll_interval_ms);
        return SK_ERROR;
    }
    if (cfg->restart_max_ms < cfg->restart_base_ms) {
        snprintf(err, errlen, "--restart-max: %d is less than --restart-base %d",
                 cfg->restart_max_ms, cfg->restart_base_ms);
        return SK_ERROR;
    }
    if (cfg->ui && strcmp(cfg->http, "off") == 0) {
        snprintf(err, errlen, "--ui: the dashboard is served by the HTTP process; --http is off");
        return SK_ERROR;
    }
    return SK_OK;
}

/* ---- --help and the markdown reference ----------------------------------------- */

static void format_default(const opt_t *o, char *buf, size_t len)
{
    if (o->def_fn != NULL)
        snprintf(buf, len, "%s", o->def_doc);
    else if (o->type == OPT_BOOL)
        snprintf(buf, len, "%s", o->def != NULL && o->def[0] == '1' ? "on" : "off");
    else if (o->def != NULL && o->def[0] != '\0')
        snprintf(buf, len, "%s", o->def);
    else
        buf[0] = '\0';
}

/* Print `text` wrapped at 79 columns, each line indented by `indent`. */
static void print_wrapped(FILE *out, const char *text, int indent)
{
    const int width = 79 - indent;
    const char *p = text;

    while (*p != '\0') {
        int len = (int)strlen(p), cut = len;
        if (len > width) {
            cut = width;
            while (cut > 0 && p[cut] != ' ')
                cut--;
            if (cut == 0)
                cut = width;
        }
        fprintf(out, "%*s%.*s\n", indent, "", cut, p);
        p += cut;
        while (*p == ' ')
            p++;
    }
}

void sk_config_usage(FILE *out, const char *prog)
{
    char line[160], def[64], extra[256];

    fprintf(out,
            "Usage: %s --workflows LIB.so [options]\n"
            "\n"
            "Runs StepKit workers for the workflows in the given libraries.\n"
            "Each option can also come from the environment variable shown;\n"
            "flags win over the environment.\n"
            "\n",
            prog ? prog : PROG_NAME);
    for (int i = 0; i < N_OPTIONS; i++) {
        const opt_t *o = &options[i];
        size_t n = 0;

        snprintf(line, sizeof(line), "--%s%s%s", o->flag, o->metavar ? " " : "",
                 o->metavar ? o->metavar : "");
        fprintf(out, "  %s\n", line);
        print_wrapped(out, o->help, 6);
        format_default(o, def, sizeof(def));
        extra[0] = '\0';
        if (o->env != NULL)
            n += (size_t)snprintf(extra + n, sizeof(extra) - n, "env %s", o->env);
        if (def[0] != '\0' && n < sizeof(extra))
            n += (size_t)snprintf(extra + n, sizeof(extra) - n, "%sdefault %s", n ? "; " : "", def);
        if (o->type == OPT_INT && n < sizeof(extra))
            snprintf(extra + n, sizeof(extra) - n, "%srange %lld..%lld", n ? "; " : "", o->min,
                     o->max);
        if (extra[0] != '\0')
            fprintf(out, "      (%s)\n", extra);
    }
    fprintf(out, "\nExit status: 0 clean shutdown, 1 crash or database unreachable,\n"
                 "2 configuration or schema error (do not restart).\n");
}

/* Help text inside a Markdown table cell: escape what Markdown would interpret. */
static void markdown_text(FILE *out, const char *s)
{
    for (; *s != '\0'; s++) {
        if (strchr("\\`*_[]|<>", *s) != NULL)
            fputc('\\', out);
        fputc(*s, out);
    }
}

void sk_config_write_markdown(FILE *out)
{
    char def[64];

    fprintf(out,
            "<!-- Generated by `stepkit-master --help-markdown` from the option table in\n"
            "     shared/sk_config.c. Do not edit by hand: change the table and regenerate. -->\n"
            "\n"
            "# Configuration\n"
            "\n"
            "`stepkit-master` reads its settings from environment variables, then from\n"
            "command-line flags: a flag wins over the variable of the same option. An\n"
            "environment variable set to the empty string counts as unset. Flags take their\n"
            "value as `--flag value` or `--flag=value`.\n"
            "\n"
            "Every value is checked before the master starts: a non-number, trailing\n"
            "characters, a value out of range, an unknown flag, a missing value or a string\n"
            "too long for its field stops the master with exit status 2 and one line naming\n"
            "the option, for example `stepkit-master: --workers: 'abc' is not a number`.\n"
            "\n"
            "| Flag | Environment | Default | Range | Description |\n"
            "|---|---|---|---|---|\n");
    for (int i = 0; i < N_OPTIONS; i++) {
        const opt_t *o = &options[i];

        format_default(o, def, sizeof(def));
        fprintf(out, "| `--%s%s%s` | %s%s%s | %s%s%s | ", o->flag, o->metavar ? " " : "",
                o->metavar ? o->metavar : "", o->env ? "`" : "", o->env ? o->env : "",
                o->env ? "`" : "", def[0] && o->def_fn == NULL ? "`" : "", def,
                def[0] && o->def_fn == NULL ? "`" : "");
        if (o->type == OPT_INT)
            fprintf(out, "%lld..%lld", o->min, o->max);
        else if (o->type == OPT_LIST)
            fprintf(out, "at most %lld", o->max);
        fputs(" | ", out);
        markdown_text(out, o->help);
        fputs(" |\n", out);
    }
    fprintf(out,
            "\n"
            "## Notes\n"
            "\n"
            "- **Connection string.** `DATABASE_URL` accepts anything libpq accepts\n"
            "  (`postgresql://user@host:5432/db?sslmode=require` or\n"
            "  `host=db dbname=app user=stepkit`). Left empty, libpq uses its own `PG*`\n"
            "  variables and `~/.pgpass`. With Kubernetes, mount the secret as a file and set\n"
            "  `DATABASE_URL_FILE`; setting both variables (or both flags) is an error.\n"
            "  Passwords never appear in logs or error messages (URL userinfo,\n"
            "  `?password=` and `password=` pairs are masked). Prefer `DATABASE_URL` or\n"
            "  `DATABASE_URL_FILE` to `--database-url`: the flag's value is overwritten in\n"
            "  the process's arguments at start, before workers are forked, so `ps` shows\n"
            "  `password=***`, but it is visible in between and in your shell's history.\n"
            "  Migration role versus runtime role: [security.md](security.md).\n"
            "- **Workers.** Without `--workers` the master forks one worker per CPU it may\n"
            "  use: the affinity mask (`taskset`, `--cpuset-cpus`), bounded by the cgroup v2\n"
            "  CPU quota (`/sys/fs/cgroup/cpu.max`, that is the container's CPU limit)\n"
            "  rounded up.\n"
            "- **Libraries.** `--workflows` may be repeated up to %d times; in\n"
            "  `STEPKIT_WORKFLOWS` separate paths with `:`. Any `--workflows` flag replaces\n"
            "  the whole list from the environment. Paths are at most %d bytes.\n"
            "- **Limits of strings.** The connection string is at most %d bytes, the schema\n"
            "  name at most %d.\n"
            "- **Cross-checks.** `--poll-max` must be at least `--poll-interval`, and\n"
            "  `--restart-max` at least `--restart-base`.\n"
            "- **`--help`, `--help-markdown`, `--version`** print to standard output and exit\n"
            "  with status 0.\n"
            "\n"
            "Exit statuses, signals and the restart backoff are described in\n"
            "[master.md](master.md).\n",
            SK_MAX_LIBRARIES, SK_PATH_MAX - 1, SK_URL_MAX - 1, SK_NAME_MAX - 1);
}
