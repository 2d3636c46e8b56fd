/*
 * sk_cli_runs - `stepkit runs | cancel | retry | prune | stats` and the
 * start options.  Each command is one client call (sk_client_runs.c), so
 * the command line, the C client and SQL callers behave the same.
 */
#include "sk_cli_runs.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "sk_duration.h"
#include "sk_log.h"
#include "stepkit.h"

#define EXIT_FAILED 1
#define EXIT_USAGE  2

/* Which command takes which of this module's options. */
static const struct {
    const char *option;
    const char *commands; /* space-separated */
} owners[] = {
    {"--workflow", " runs cancel "},
    {"--status", " runs cancel "},
    {"--since", " runs "},
    {"--until", " runs "},
    {"--limit", " runs "},
    {"--after", " runs "},
    {"--reason", " cancel "},
    {"--yes", " cancel "},
    {"--key", " start "},
    {"--at", " start "},
    {"--delay", " start "},
    {"--older-than", " prune "},
    {"--batch", " prune "},
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "stepkit: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'stepkit --help'.\n");
    return EXIT_USAGE;
}

/* A database message may quote the connection string: masked like sk_cli.c's. */
static void print_err(const char *err)
{
    char masked[1100];

    sk_log_mask(err, masked, sizeof(masked));
    fprintf(stderr, "stepkit: %s\n", masked);
}

void sk_cli_runs_init(sk_cli_runs_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->delay_ms = -1;
    o->older_than_ms = -1;
    o->priority = -1;
}

static void seen(sk_cli_runs_opts_t *o, const char *name)
{
    for (size_t i = 0; i < sizeof(owners) / sizeof(owners[0]); i++) {
        if (strcmp(owners[i].option, name) == 0 &&
            o->nseen < (int)(sizeof(o->seen) / sizeof(o->seen[0])))
            o->seen[o->nseen++] = owners[i].option;
    }
}

int sk_cli_runs_flag(sk_cli_runs_opts_t *o, const char *name)
{
    if (strcmp(name, "--yes") != 0)
        return 0;
    o->yes = 1;
    seen(o, name);
    return 1;
}

static int parse_count(const char *val, int min, int max, int *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(val, &end, 10);
    if (errno || *end || end == val || v < min || v > max)
        return SK_ERROR;
    *out = (int)v;
    return SK_OK;
}

/* --since/--until: a time as PostgreSQL reads it, or a duration meaning
 * that long ago (on this machine's clock). */
static const char *time_or_ago(const char *val, char *buf, size_t len)
{
    int64_t ms;
    struct timespec ts;
    time_t t;
    struct tm tm;
    char base[32];

    if (sk_duration_parse(val, &ms) != SK_OK)
        return val;
    clock_gettime(CLOCK_REALTIME, &ts);
    ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - ms;
    t = (time_t)(ms / 1000);
    gmtime_r(&t, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03dZ", base, (int)(ms % 1000));
    return buf;
}

int sk_cli_runs_option(sk_cli_runs_opts_t *o, const char *name, const char *val)
{
    if (strcmp(name, "--workflow") == 0) {
        o->workflow = val;
    } else if (strcmp(name, "--status") == 0) {
        o->status = val;
    } else if (strcmp(name, "--since") == 0) {
        o->since = time_or_ago(val, o->since_buf, sizeof(o->since_buf));
    } else if (strcmp(name, "--until") == 0) {
        o->until = time_or_ago(val, o->until_buf, sizeof(o->until_buf));
    } else if (strcmp(name, "--after") == 0) {
        o->after = val;
    } else if (strcmp(name, "--limit") == 0) {
        if (parse_count(val, 1, 10000, &o->limit) != SK_OK) {
            usage_error("--limit: '%s' is not a number from 1 to 10000", val);
            return -1;
        }
    } else if (strcmp(name, "--reason") == 0) {
        o->reason = val;
    } else if (strcmp(name, "--key") == 0) {
        o->key = val;
    } else if (strcmp(name, "--at") == 0) {
        o->at = val;
    } else if (strcmp(name, "--delay") == 0) {
        if (sk_duration_parse(val, &o->delay_ms) != SK_OK) {
            usage_error("--delay: '%s' is not a duration (e.g. 500ms, 30s, 15m, 2h, 7d)", val);
            return -1;
        }
    } else if (strcmp(name, "--older-than") == 0) {
        if (sk_duration_parse(val, &o->older_than_ms) != SK_OK) {
            usage_error("--older-than: '%s' is not a duration (e.g. 12h, 30d)", val);
            return -1;
        }
    } else if (strcmp(name, "--batch") == 0) {
        if (parse_count(val, 1, 100000, &o->batch) != SK_OK) {
            usage_error("--batch: '%s' is not a number from 1 to 100000", val);
            return -1;
        }
    } else {
        return 0;
    }
    seen(o, name);
    return 1;
}

int sk_cli_runs_is_command(const char *command)
{
    return strcmp(command, "runs") == 0 || strcmp(command, "cancel") == 0 ||
           strcmp(command, "retry") == 0 || strcmp(command, "prune") == 0 ||
           strcmp(command, "stats") == 0;
}

int sk_cli_runs_check(const sk_cli_runs_opts_t *o, const char *command)
{
    char word[40];

    snprintf(word, sizeof(word), " %s ", command);
    for (int i = 0; i < o->nseen; i++) {
        for (size_t k = 0; k < sizeof(owners) / sizeof(owners[0]); k++) {
            if (strcmp(owners[k].option, o->seen[i]) == 0 &&
                strstr(owners[k].commands, word) == NULL)
                return usage_error("%s is not an option of %s", o->seen[i], command);
        }
    }
    if (o->at != NULL && o->delay_ms >= 0)
        return usage_error("give --at or --delay, not both");
    return 0;
}

/* ---- start --------------------------------------------------------------------------- */

int sk_cli_runs_start(sk_client_t *cl, const sk_cli_runs_opts_t *o, const char *workflow,
                      const char *data, size_t len, int require_registered, int json)
{
    sk_start_opts_t so = {.key = o->key,
                          .start_at = o->at,
                          .delay_ms = o->delay_ms > 0 ? o->delay_ms : 0,
                          .require_registered = require_registered,
                          .has_priority = o->priority >= 0,
                          .priority = o->priority >= 0 ? (int)o->priority : 0};
    char err[1024], run_id[SK_UUID_LEN], event_id[SK_UUID_LEN];
    int created = 1;

    if (sk_client_start_opts(cl, workflow, data, len, &so, run_id, event_id, &created, err,
                             sizeof(err)) != SK_OK) {
        print_err(err);
        return EXIT_FAILED;
    }
    if (json)
        printf("{\"run_id\":\"%s\",\"event_id\":\"%s\",\"created\":%s}\n", run_id, event_id,
               created ? "true" : "false");
    else
        printf("%s\n", run_id);
    return 0;
}

/* ---- runs ------------------------------------------------------------------------------ */

static const char *str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s ? s : "-";
}

static int cmd_runs(sk_client_t *cl, const sk_cli_runs_opts_t *o, int json)
{
    sk_list_filter_t f = {.workflow = o->workflow,
                          .status = o->status,
                          .since = o->since,
                          .until = o->until,
                          .after = o->after,
                          .limit = o->limit > 0 ? o->limit : 50};
    char err[1024];
    char *text = sk_client_list_json(cl, &f, err, sizeof(err));
    json_t *arr, *row;
    size_t i;

    if (text == NULL) {
        print_err(err);
        return EXIT_FAILED;
    }
    arr = json_loads(text, 0, NULL);
    free(text);
    if (!json_is_array(arr)) {
        json_decref(arr);
        fprintf(stderr, "stepkit: list runs: unreadable answer\n");
        return EXIT_FAILED;
    }
    if (!json) {
        printf("%-36s  %-20s  %-9s  %-24s  %-24s  %s\n", "RUN", "WORKFLOW", "STATUS", "CREATED",
               "ENDED", "NOTE");
    }
    json_array_foreach(arr, i, row)
    {
        if (json) {
            char *line = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER);
            printf("%s\n", line ? line : "{}");
            free(line);
            continue;
        }
        long long retries = json_integer_value(json_object_get(row, "retries"));
        const char *parent = json_string_value(json_object_get(row, "parent_run_id"));
        const char *reason = json_string_value(json_object_get(row, "cancel_reason"));
        printf("%-36s  %-20s  %-9s  %-24s  %-24s ", str(row, "run_id"), str(row, "workflow"),
               str(row, "status"), str(row, "created_at"), str(row, "ended_at"));
        if (retries > 0)
            printf(" retries=%lld", retries);
        if (parent != NULL)
            printf(" parent=%s", parent);
        if (reason != NULL)
            printf(" reason=\"%s\"", reason);
        printf("\n");
    }
    if (!json && json_array_size(arr) == (size_t)f.limit) {
        /* A full page: there may be more. */
        printf("next page: --after %s\n",
               str(json_array_get(arr, json_array_size(arr) - 1), "cursor"));
    }
    json_decref(arr);
    return 0;
}

/* ---- cancel, retry -------------------------------------------------------------------- */

static int cmd_cancel(sk_client_t *cl, const sk_cli_runs_opts_t *o, const char *const *args,
                      int nargs, int json)
{
    char err[1024];

    if (nargs == 1) {
        int n = 0;
        sk_run_result_t res;
        if (o->workflow != NULL || o->status != NULL || o->yes)
            return usage_error("cancel <run-id> takes no filter (--workflow, --status, --yes)");
        if (sk_client_cancel(cl, args[0], o->reason, &n, err, sizeof(err)) != SK_OK) {
            print_err(err);
            return EXIT_FAILED;
        }
        if (json) {
            printf("{\"run_id\":\"%s\",\"cancelled\":%d}\n", args[0], n);
        } else if (n > 0) {
            printf("cancelled %s", args[0]);
            if (n > 1)
                printf(" and %d child run%s", n - 1, n == 2 ? "" : "s");
            printf("\n");
        } else if (sk_client_get(cl, args[0], &res, err, sizeof(err)) == SK_OK) {
            printf("run %s had already ended (%s): nothing to cancel\n", args[0], res.status);
            sk_run_result_clear(&res);
        } else {
            printf("run %s had already ended: nothing to cancel\n", args[0]);
        }
        return 0;
    }
    if (nargs > 1)
        return usage_error("cancel takes one run id, or filters");
    if (o->workflow == NULL && o->status == NULL)
        return usage_error("cancel needs a run id, or --workflow and/or --status");
    {
        long long n = 0;
        if (sk_client_cancel_where(cl, o->workflow, o->status, o->reason, !o->yes, &n, err,
                                   sizeof(err)) != SK_OK) {
            print_err(err);
            return EXIT_FAILED;
        }
        if (json)
            printf("{\"%s\":%lld}\n", o->yes ? "cancelled" : "matched", n);
        else if (o->yes)
            printf("cancelled %lld run%s\n", n, n == 1 ? "" : "s");
        else
            printf("%lld %s; nothing was cancelled: add --yes to cancel them\n", n,
                   n == 1 ? "run matches" : "runs match");
    }
    return 0;
}

static int cmd_retry(sk_client_t *cl, const char *const *args, int nargs, int json)
{
    char err[1024];
    int retry = 0;

    if (nargs != 1)
        return usage_error("retry takes exactly one run id");
    if (sk_client_retry(cl, args[0], &retry, err, sizeof(err)) != SK_OK) {
        print_err(err);
        return EXIT_FAILED;
    }
    if (json)
        printf("{\"run_id\":\"%s\",\"retry\":%d}\n", args[0], retry);
    else
        printf("retrying %s (retry %d)\n", args[0], retry);
    return 0;
}

/* ---- prune, stats ---------------------------------------------------------------------- */

static int cmd_prune(sk_client_t *cl, const sk_cli_runs_opts_t *o, int nargs, int json)
{
    char err[1024];
    long long n = 0;

    if (nargs != 0)
        return usage_error("prune takes no arguments");
    if (o->older_than_ms < 0)
        return usage_error("prune needs --older-than DURATION (e.g. 30d)");
    if (sk_client_prune(cl, o->older_than_ms, o->batch, &n, err, sizeof(err)) != SK_OK) {
        print_err(err);
        return EXIT_FAILED;
    }
    if (json)
        printf("{\"deleted\":%lld}\n", n);
    else
        printf("deleted %lld run%s\n", n, n == 1 ? "" : "s");
    return 0;
}

static int cmd_stats(sk_client_t *cl, int nargs, int json)
{
    char err[1024];
    char *text;
    json_t *arr, *row;
    size_t i;

    if (nargs != 0)
        return usage_error("stats takes no arguments");
    text = sk_client_stats_json(cl, err, sizeof(err));
    if (text == NULL) {
        print_err(err);
        return EXIT_FAILED;
    }
    arr = json_loads(text, 0, NULL);
    free(text);
    if (!json)
        printf("%-24s %8s %8s %8s %10s %8s %10s %8s %12s\n", "WORKFLOW", "QUEUED", "RUNNING",
               "WAITING", "DONE(1h)", "FAIL(1h)", "CANCEL(1h)", "READY", "OLDEST_MS");
    json_array_foreach(arr, i, row)
    {
        if (json) {
            char *line = json_dumps(row, JSON_COMPACT | JSON_PRESERVE_ORDER);
            printf("%s\n", line ? line : "{}");
            free(line);
            continue;
        }
        json_t *old = json_object_get(row, "oldest_ready_ms");
        char oldest[24] = "-";
        if (json_is_integer(old))
            snprintf(oldest, sizeof(oldest), "%lld", json_integer_value(old));
        printf("%-24s %8lld %8lld %8lld %10lld %8lld %10lld %8lld %12s\n", str(row, "workflow"),
               json_integer_value(json_object_get(row, "queued")),
               json_integer_value(json_object_get(row, "running")),
               json_integer_value(json_object_get(row, "waiting")),
               json_integer_value(json_object_get(row, "completed_1h")),
               json_integer_value(json_object_get(row, "failed_1h")),
               json_integer_value(json_object_get(row, "cancelled_1h")),
               json_integer_value(json_object_get(row, "ready_items")), oldest);
    }
    json_decref(arr);
    return 0;
}

int sk_cli_runs_main(sk_client_t *cl, const sk_cli_runs_opts_t *o, const char *command,
                     const char *const *args, int nargs, int json)
{
    if (strcmp(command, "runs") == 0)
        return nargs == 0 ? cmd_runs(cl, o, json)
                          : usage_error("runs takes no arguments (filters are options)");
    if (strcmp(command, "cancel") == 0)
        return cmd_cancel(cl, o, args, nargs, json);
    if (strcmp(command, "retry") == 0)
        return cmd_retry(cl, args, nargs, json);
    if (strcmp(command, "prune") == 0)
        return cmd_prune(cl, o, nargs, json);
    return cmd_stats(cl, nargs, json);
}

/* ---- stepkit run: relatives and history ------------------------------------------------- */

void sk_cli_runs_print_extra(const char *run_json)
{
    json_t *r = json_loads(run_json, 0, NULL);
    json_t *children, *retries, *x;
    size_t i;

    if (r == NULL)
        return;
    if (json_string_value(json_object_get(r, "parent_run_id")))
        printf("parent    %s\n", str(r, "parent_run_id"));
    if (json_string_value(json_object_get(r, "idempotency_key")))
        printf("key       %s\n", str(r, "idempotency_key"));
    if (json_string_value(json_object_get(r, "cancel_reason")))
        printf("reason    %s\n", str(r, "cancel_reason"));
    children = json_object_get(r, "children");
    if (json_array_size(children) > 0) {
        printf("children  %zu\n", json_array_size(children));
        json_array_foreach(children, i, x)
            printf("  %-36s  %-20s  %s\n", str(x, "run_id"), str(x, "workflow"), str(x, "status"));
    }
    retries = json_object_get(r, "retries");
    if (json_array_size(retries) > 0) {
        printf("retries   %zu\n", json_array_size(retries));
        json_array_foreach(retries, i, x)
        {
            json_t *e = json_object_get(x, "error"), *steps = json_object_get(x, "cleared_steps");
            json_t *s;
            size_t k;
            printf("  retry %lld at %s: had %s at %s",
                   json_integer_value(json_object_get(x, "retry")), str(x, "retried_at"),
                   str(x, "status"), str(x, "ended_at"));
            if (json_is_object(e))
                printf(" with %s: %s", str(e, "name"), str(e, "message"));
            printf("\n");
            json_array_foreach(steps, k, s)
            {
                json_t *se = json_object_get(s, "error");
                printf("    cleared %-20s %-7s attempts=%lld", str(s, "step_id"), str(s, "status"),
                       json_integer_value(json_object_get(s, "attempts")));
                if (json_is_object(se))
                    printf("  %s: %s", str(se, "name"), str(se, "message"));
                printf("\n");
            }
        }
    }
    json_decref(r);
}
