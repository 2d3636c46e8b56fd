/*
 * stepkit - the command line: migrate the schema, start and invoke runs,
 * inspect them.  JSON in and out goes through jansson (sk_json).
 * Exit codes: 0 success, 1 the run or the operation failed, 2 usage or
 * configuration, 3 timed out.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "sk_argv.h"
#include "sk_cli_runs.h"
#include "sk_config.h"
#include "sk_json.h"
#include "sk_limits.h"
#include "sk_log.h"
#include "sk_migrate.h"
#include "sk_pg.h"
#include "stepkit.h"
#include "stepkit_client.h"

#define EXIT_FAILED  1
#define EXIT_USAGE   2
#define EXIT_TIMEOUT 3

typedef struct {
    const char *url;
    char url_buf[SK_URL_MAX];
    const char *schema;
    const char *command;
    const char *args[4];
    int nargs;
    const char *data;
    const char *data_file; /* --data-file PATH, "-" = stdin */
    char *data_buf;        /* what --data-file read (malloc'd) */
    size_t data_len;
    const char *event_id;
    long timeout_ms;
    long priority; /* start --priority; -1: the workflow's */
    int json;
    sk_cli_runs_opts_t runs; /* run management options (sk_cli_runs.c) */
    int require_registered;  /* --require-registered: refuse an unregistered workflow */
} cli_t;

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: stepkit [--database-url URL] [--schema NAME] COMMAND ...\n"
        "\n"
        "commands:\n"
        "  migrate                                   apply pending schema migrations\n"
        "  start <workflow> [--data JSON] [--require-registered] [--priority N]\n"
        "        [--key K] [--at TIME | --delay DURATION] [--json]\n"
        "                                            start a run, print its id (priority\n"
        "                                            0..86400: ranks as if queued N s earlier;\n"
        "                                            the same --key again returns the first\n"
        "                                            run; --json: {run_id, event_id, ...})\n"
        "  invoke <workflow> [--data JSON] [--timeout MS] [--require-registered]\n"
        "                                            start a run, wait, print its output\n"
        "  run <run-id> [--json]                     show a run and its steps\n"
        "  signal <name> [--data JSON]               send a signal, print the receiving run\n"
        "                                            id (or null when nobody waits)\n"
        "  send <event> [--data JSON] [--id UUID]    send an event: start every workflow\n"
        "                                            listening to it; print the event id,\n"
        "                                            then one line per run started (the\n"
        "                                            same --id again starts nothing); --json:\n"
        "                                            one {run_id, event_id} per run\n"
        "  runs [--workflow W] [--status S] [--since T] [--until T] [--limit N]\n"
        "       [--after CURSOR] [--json]            list runs, newest first\n"
        "  cancel <run-id> [--reason TEXT]           cancel a run and its child runs\n"
        "  cancel --workflow W [--status S] [--reason TEXT] [--yes]\n"
        "                                            count (without --yes) or cancel runs\n"
        "  retry <run-id>                            resume a failed or cancelled run\n"
        "  prune --older-than DURATION [--batch N]   delete runs that ended before then\n"
        "  stats [--json]                            per workflow: queued, running, waiting,\n"
        "                                            ended in the last hour, oldest ready\n"
        "\n"
        "TIME: ISO-8601 (2026-01-31T12:00:00Z) or, for --since/--until, a duration ago;\n"
        "DURATION: 500ms, 30s, 15m, 2h, 7d, 1h30m.  docs/cli.md has the details.\n"
        "A run of a workflow no master has registered yet waits until a worker that\n"
        "serves it connects (a warning says so); --require-registered refuses it instead.\n"
        "--data-file PATH reads the JSON from a file instead (- for stdin), up to 16 MiB;\n"
        "it and --data exclude each other.  Names are at most 255 bytes.\n"
        "environment: DATABASE_URL (or DATABASE_URL_FILE; preferred to --database-url,\n"
        "which other users can read in ps), STEPKIT_SCHEMA, and libpq's PG*\n"
        "exit codes: 0 ok, 1 the run failed, 2 usage, 3 timed out\n");
}

static int die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int die_usage(const char *fmt, ...)
{
    char msg[1024], masked[1100];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* A connection string given in the wrong place must not be echoed. */
    sk_log_mask(msg, masked, sizeof(masked));
    fprintf(stderr, "stepkit: %s\nTry 'stepkit --help'.\n", masked);
    return EXIT_USAGE;
}

/* An error from the library: passwords masked already, mask again anyway. */
static void print_err(const char *err)
{
    char masked[1100];

    sk_log_mask(err, masked, sizeof(masked));
    fprintf(stderr, "stepkit: %s\n", masked);
}

/* 8-4-4-4-12 hexadecimal digits. */
static int is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

static int read_url_file(cli_t *c, const char *path)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (f == NULL) {
        fprintf(stderr, "stepkit: DATABASE_URL_FILE %s: %s\n", path, strerror(errno));
        return EXIT_USAGE;
    }
    n = fread(c->url_buf, 1, sizeof(c->url_buf) - 1, f);
    fclose(f);
    c->url_buf[n] = '\0';
    while (n > 0 && (c->url_buf[n - 1] == '\n' || c->url_buf[n - 1] == '\r'))
        c->url_buf[--n] = '\0';
    c->url = c->url_buf;
    return 0;
}

static int parse(cli_t *c, int argc, char **argv)
{
    const char *env_url = getenv("DATABASE_URL"), *env_file = getenv("DATABASE_URL_FILE");

    memset(c, 0, sizeof(*c));
    sk_cli_runs_init(&c->runs);
    c->timeout_ms = -1;
    c->priority = -1;
    c->schema = getenv("STEPKIT_SCHEMA") ? getenv("STEPKIT_SCHEMA") : "stepkit";
    if (env_url && *env_url && env_file && *env_file)
        return die_usage("%s", "DATABASE_URL and DATABASE_URL_FILE are both set: keep one");
    if (env_file && *env_file) {
        int rc = read_url_file(c, env_file);
        if (rc != 0)
            return rc;
    } else {
        c->url = env_url;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        char name[32];

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return -1;
        }
        if (strncmp(a, "--", 2) != 0) {
            if (c->command == NULL)
                c->command = a;
            else if (c->nargs < 4)
                c->args[c->nargs++] = a;
            else
                return die_usage("unexpected argument '%s'", a);
            continue;
        }
        snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - a) : (int)strlen(a), a);
        if (strcmp(name, "--json") == 0) {
            c->json = 1;
            continue;
        }
        if (strcmp(name, "--require-registered") == 0) {
            c->require_registered = 1;
            continue;
        }
        if (sk_cli_runs_flag(&c->runs, name))
            continue;
        if (eq != NULL)
            val = eq + 1;
        else if (i + 1 < argc)
            val = argv[++i];
        else
            return die_usage("%s needs a value", name);
        if (strcmp(name, "--database-url") == 0) {
            /* Copied, then scrubbed from argv below: ps must not show it. */
            if (strlen(val) >= sizeof(c->url_buf))
                return die_usage("--database-url: longer than %zu bytes", sizeof(c->url_buf) - 1);
            snprintf(c->url_buf, sizeof(c->url_buf), "%s", val);
            c->url = c->url_buf;
        } else if (strcmp(name, "--data-file") == 0) {
            c->data_file = val;
        } else if (strcmp(name, "--schema") == 0) {
            c->schema = val;
        } else if (strcmp(name, "--data") == 0) {
            c->data = val;
        } else if (strcmp(name, "--id") == 0) {
            if (!is_uuid(val))
                return die_usage("--id: '%s' is not a UUID", val);
            c->event_id = val;
        } else if (strcmp(name, "--priority") == 0) {
            char *end;
            errno = 0;
            c->priority = strtol(val, &end, 10);
            if (errno || *end || end == val || c->priority < 0 || c->priority > 86400)
                return die_usage("--priority: '%s' is not a number 0..86400", val);
        } else if (strcmp(name, "--timeout") == 0) {
            char *end;
            errno = 0;
            c->timeout_ms = strtol(val, &end, 10);
            if (errno || *end || end == val || c->timeout_ms < 0 || c->timeout_ms > INT_MAX)
                return die_usage("--timeout: '%s' is not a number of milliseconds", val);
        } else {
            int taken = sk_cli_runs_option(&c->runs, name, val);
            if (taken < 0)
                return EXIT_USAGE;
            if (taken == 0)
                return die_usage("unknown option '%s'", name);
        }
    }
    sk_argv_scrub(argc, argv, "--database-url");
    sk_log_add_secrets(c->url);
    if (c->url != NULL && *c->url != '\0') {
        /* A malformed connection string is a usage error; libpq's message
         * may quote the password's bad token: masked in die_usage. */
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(c->url, &perr);
        if (opts == NULL) {
            int rc = die_usage("invalid connection string: %.*s",
                               perr ? (int)strcspn(perr, "\n") : 13, perr ? perr : "out of memory");
            PQfreemem(perr);
            return rc;
        }
        PQconninfoFree(opts);
    }
    if (c->command == NULL) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (c->data != NULL && c->data_file != NULL)
        return die_usage("%s", "--data and --data-file exclude each other: give one");
    if (!sk_pg_schema_valid(c->schema))
        return die_usage("--schema: '%s' is not a valid schema name ([a-z_][a-z0-9_]*)", c->schema);
    return 0;
}

/* Read --data-file (at most SK_PAYLOAD_MAX bytes) into c->data_buf. */
static int read_data_file(cli_t *c)
{
    int is_stdin = strcmp(c->data_file, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(c->data_file, "rb");
    const char *shown = is_stdin ? "- (stdin)" : c->data_file;
    size_t cap = 64 * 1024, len = 0, n;
    char *buf = NULL, *p;
    int rc = SK_ERROR;

    if (f == NULL) {
        fprintf(stderr, "stepkit: --data-file %s: %s\n", shown, strerror(errno));
        return SK_ERROR;
    }
    for (;;) {
        if (len == cap || buf == NULL) {
            /* One byte past the limit tells "too big" from "just fits". */
            cap = buf == NULL ? cap : cap * 2;
            if (cap > (size_t)SK_PAYLOAD_MAX + 1)
                cap = (size_t)SK_PAYLOAD_MAX + 1;
            p = realloc(buf, cap + 1);
            if (p == NULL) {
                fprintf(stderr, "stepkit: --data-file %s: out of memory\n", shown);
                goto done;
            }
            buf = p;
        }
        n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (len > SK_PAYLOAD_MAX) {
            fprintf(stderr, "stepkit: --data-file %s: larger than the payload limit of %u bytes\n",
                    shown, SK_PAYLOAD_MAX);
            goto done;
        }
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "stepkit: --data-file %s: %s\n", shown, strerror(errno));
        goto done;
    }
    buf[len] = '\0';
    c->data_buf = buf;
    c->data_len = len;
    buf = NULL;
    rc = SK_OK;
done:
    free(buf);
    if (!is_stdin)
        fclose(f);
    return rc;
}

static int pack_data(cli_t *c, msgpack_sbuffer *buf)
{
    char err[256];
    const char *text = c->data;
    size_t len;

    if (c->data_file != NULL) {
        if (read_data_file(c) != SK_OK)
            return SK_ERROR;
        text = c->data_buf;
    }
    if (text == NULL)
        return SK_OK;
    len = c->data_file != NULL ? c->data_len : strlen(text);
    if (len == 0) {
        fprintf(stderr, "stepkit: %s is empty: give a JSON value (null for none)\n",
                c->data_file != NULL ? "--data-file" : "--data");
        return SK_ERROR;
    }
    if (sk_json_to_msgpack(text, len, buf, err, sizeof(err)) != SK_OK) {
        fprintf(stderr, "stepkit: %s is not valid JSON: %s\n",
                c->data_file != NULL ? "--data-file" : "--data", err);
        return SK_ERROR;
    }
    return SK_OK;
}

/* The name the command acts on, checked before connecting. */
static int check_arg_name(const cli_t *c)
{
    char err[256];
    const char *what = strcmp(c->command, "signal") == 0 ? "signal name"
                       : strcmp(c->command, "send") == 0 ? "event name"
                                                         : "workflow id";
    int flags = strcmp(c->command, "signal") == 0 ? 0 : SK_NAME_NO_BREAKS;

    if (strcmp(c->command, "run") == 0)
        return SK_OK;
    if (sk_name_check(what, c->args[0], flags, err, sizeof(err)) != SK_OK) {
        print_err(err);
        return SK_ERROR;
    }
    return SK_OK;
}

static void print_error_chain(FILE *out, const char *data, size_t len)
{
    char err[256];
    char *text = sk_msgpack_bytes_to_json(data, len, err, sizeof(err));
    json_t *e = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    const char *prefix = "error";

    for (json_t *cur = e; json_is_object(cur); cur = json_object_get(cur, "cause")) {
        fprintf(out, "%s: %s: %s\n", prefix, json_string_value(json_object_get(cur, "name")),
                json_string_value(json_object_get(cur, "message")));
        json_t *issues = json_object_get(cur, "issues");
        if (json_is_array(issues)) {
            char *s = json_dumps(issues, JSON_COMPACT | JSON_PRESERVE_ORDER);
            fprintf(out, "  issues: %s\n", s ? s : "");
            free(s);
        }
        prefix = "  cause";
    }
    if (e == NULL)
        fprintf(out, "error: (unreadable: %s)\n", text ? "bad JSON" : err);
    json_decref(e);
    free(text);
}

static int print_result(const sk_run_result_t *res)
{
    char err[256];

    if (strcmp(res->status, "completed") == 0) {
        char *text = sk_msgpack_bytes_to_json(res->output, res->output_len, err, sizeof(err));
        if (text == NULL) {
            fprintf(stderr, "stepkit: output of run %s cannot be shown as JSON: %s\n", res->run_id,
                    err);
            return EXIT_FAILED;
        }
        printf("%s\n", text);
        free(text);
        return 0;
    }
    print_error_chain(stdout, res->error, res->error_len);
    return EXIT_FAILED;
}

static int cmd_migrate(const cli_t *c)
{
    char err[1024];
    int applied = 0, rc = EXIT_FAILED;
    PGconn *pg = sk_pg_connect(c->url, c->schema, "stepkit-migrate", err, sizeof(err));

    if (pg == NULL) {
        print_err(err);
        return EXIT_FAILED;
    }
    if (sk_migrate(pg, c->schema, &applied, err, sizeof(err)) != SK_OK) {
        fprintf(stderr, "stepkit: migrate: %s\n", err);
        goto done;
    }
    printf("schema %s at version %d (%d migration%s applied)\n", c->schema,
           sk_schema_version_known(), applied, applied == 1 ? "" : "s");
    rc = 0;
done:
    PQfinish(pg);
    return rc;
}

static void print_run_human(const char *json)
{
    json_t *r = json_loads(json, 0, NULL);
    json_t *steps, *s;
    size_t i;
    char *tmp;

    if (r == NULL)
        return;
    printf("run       %s\n", json_string_value(json_object_get(r, "run_id")));
    printf("workflow  %s\n", json_string_value(json_object_get(r, "workflow")));
    printf("status    %s\n", json_string_value(json_object_get(r, "status")));
    printf("created   %s\n", json_string_value(json_object_get(r, "created_at")));
    if (json_string_value(json_object_get(r, "ended_at")))
        printf("ended     %s\n", json_string_value(json_object_get(r, "ended_at")));
    tmp = json_dumps(json_object_get(json_object_get(r, "input"), "data"),
                     JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    printf("input     %s\n", tmp ? tmp : "null");
    free(tmp);
    if (!json_is_null(json_object_get(r, "output"))) {
        tmp = json_dumps(json_object_get(r, "output"),
                         JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        printf("output    %s\n", tmp ? tmp : "null");
        free(tmp);
    }
    if (!json_is_null(json_object_get(r, "error"))) {
        json_t *e = json_object_get(r, "error");
        printf("error     %s: %s\n", json_string_value(json_object_get(e, "name")),
               json_string_value(json_object_get(e, "message")));
    }
    steps = json_object_get(r, "steps");
    printf("steps     %zu\n", json_array_size(steps));
    json_array_foreach(steps, i, s)
    {
        json_t *v = json_object_get(s, "output");
        json_t *w = json_object_get(s, "waiting_for");
        if (v == NULL)
            v = json_object_get(s, "error");
        if (w != NULL) {
            /* A suspended step: what it waits for and until when. */
            const char *kind = json_string_value(json_object_get(w, "kind"));
            const char *what = json_string_value(json_object_get(w, "signal"));
            const char *until = json_string_value(json_object_get(w, "until"));
            if (what == NULL)
                what = json_string_value(json_object_get(w, "child"));
            printf("  %2zu. %-20s %-7s %-6s since %s  %s%s until %s\n", i + 1,
                   json_string_value(json_object_get(s, "step_id")), "waiting", kind ? kind : "",
                   json_string_value(json_object_get(s, "started_at")), what ? what : "",
                   what ? "" : "(time)", until ? until : "woken");
            continue;
        }
        tmp = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        printf("  %2zu. %-20s %-7s %-6s attempts=%lld  %s .. %s  %s\n", i + 1,
               json_string_value(json_object_get(s, "step_id")),
               json_string_value(json_object_get(s, "status")),
               json_string_value(json_object_get(s, "kind")),
               json_integer_value(json_object_get(s, "attempts")),
               json_string_value(json_object_get(s, "started_at")),
               json_string_value(json_object_get(s, "ended_at")), tmp ? tmp : "");
        free(tmp);
    }
    json_decref(r);
    sk_cli_runs_print_extra(json);
}

static unsigned start_flags(const cli_t *c)
{
    return c->require_registered ? SK_START_REQUIRE_REGISTERED : 0u;
}

/* Prints the event id, then one line per run started, and nothing else. */
static int cmd_send(sk_client_t *cl, const cli_t *c, const msgpack_sbuffer *buf)
{
    char err[1024];
    sk_event_result_t ev;

    if (sk_client_send_event(cl, c->args[0], buf->data, buf->size, c->event_id, &ev, err,
                             sizeof(err)) != SK_OK) {
        print_err(err);
        return EXIT_FAILED;
    }
    if (c->json) {
        /* One {run_id, event_id} per run started; run_id null when none was. */
        for (size_t i = 0; i < ev.n_runs; i++)
            printf("{\"run_id\":\"%s\",\"event_id\":\"%s\"}\n", ev.run_ids[i], ev.event_id);
        if (ev.n_runs == 0)
            printf("{\"run_id\":null,\"event_id\":\"%s\"}\n", ev.event_id);
        sk_event_result_clear(&ev);
        return 0;
    }
    printf("%s\n", ev.event_id);
    for (size_t i = 0; i < ev.n_runs; i++)
        printf("%s\n", ev.run_ids[i]);
    sk_event_result_clear(&ev);
    return 0;
}

int main(int argc, char **argv)
{
    cli_t c;
    char err[1024], run_id[SK_UUID_LEN], event_id[SK_UUID_LEN];
    msgpack_sbuffer buf;
    sk_client_t *cl = NULL;
    sk_run_result_t res;
    int rc = parse(&c, argc, argv);

    if (rc != 0)
        return rc < 0 ? 0 : rc;
    sk_log_set_role("cli", -1);
    memset(&res, 0, sizeof(res));
    msgpack_sbuffer_init(&buf);
    if (strcmp(c.command, "migrate") == 0) {
        rc = c.nargs == 0 ? cmd_migrate(&c) : die_usage("%s", "migrate takes no arguments");
        goto done;
    }
    if ((rc = sk_cli_runs_check(&c.runs, c.command)) != 0)
        goto done;
    if (sk_cli_runs_is_command(c.command)) {
        cl = sk_client_connect(c.url, c.schema, err, sizeof(err));
        if (cl == NULL) {
            print_err(err);
            rc = EXIT_FAILED;
            goto done;
        }
        rc = sk_cli_runs_main(cl, &c.runs, c.command, c.args, c.nargs, c.json);
        goto done;
    }
    if (strcmp(c.command, "start") != 0 && strcmp(c.command, "invoke") != 0 &&
        strcmp(c.command, "run") != 0 && strcmp(c.command, "signal") != 0 &&
        strcmp(c.command, "send") != 0) {
        rc = die_usage("unknown command '%s'", c.command);
        goto done;
    }
    if (c.priority >= 0 && strcmp(c.command, "start") != 0) {
        rc = die_usage("--priority is an option of start only");
        goto done;
    }
    if (c.event_id != NULL && strcmp(c.command, "send") != 0) {
        rc = die_usage("--id is an option of send only");
        goto done;
    }
    if (c.require_registered && strcmp(c.command, "start") != 0 &&
        strcmp(c.command, "invoke") != 0) {
        rc = die_usage("--require-registered is an option of start and invoke only");
        goto done;
    }
    if (c.nargs != 1) {
        rc = die_usage("%s takes exactly one argument", c.command);
        goto done;
    }
    if ((c.data != NULL || c.data_file != NULL) && strcmp(c.command, "run") == 0) {
        rc = die_usage("%s", "run takes no --data or --data-file");
        goto done;
    }
    if (check_arg_name(&c) != SK_OK || pack_data(&c, &buf) != SK_OK) {
        rc = EXIT_USAGE;
        goto done;
    }
    cl = sk_client_connect(c.url, c.schema, err, sizeof(err));
    if (cl == NULL) {
        print_err(err);
        rc = EXIT_FAILED;
        goto done;
    }
    if (strcmp(c.command, "send") == 0) {
        rc = cmd_send(cl, &c, &buf);
    } else if (strcmp(c.command, "signal") == 0) {
        if (sk_client_signal(cl, c.args[0], buf.data, buf.size, run_id, err, sizeof(err)) !=
            SK_OK) {
            print_err(err);
            rc = EXIT_FAILED;
            goto done;
        }
        printf("%s\n", run_id[0] ? run_id : "null");
        rc = 0;
    } else if (strcmp(c.command, "start") == 0) {
        if (c.runs.key != NULL || c.runs.at != NULL || c.runs.delay_ms >= 0) {
            /* Idempotency key or delayed start (sk_cli_runs.c). */
            if (c.priority >= 0 && (c.runs.at != NULL || c.runs.delay_ms >= 0)) {
                rc = die_usage("--priority cannot be combined with --at or --delay (a delayed run "
                               "ranks by its due time)");
                goto done;
            }
            c.runs.priority = c.priority;
            rc = sk_cli_runs_start(cl, &c.runs, c.args[0], buf.data, buf.size, c.require_registered,
                                   c.json);
            goto done;
        }
        int registered = 1;
        if ((c.priority >= 0
                 ? sk_client_start_priority_flags(cl, c.args[0], buf.data, buf.size,
                                                  (int)c.priority, start_flags(&c), run_id,
                                                  event_id, &registered, err, sizeof(err))
                 : sk_client_start_flags(cl, c.args[0], buf.data, buf.size, start_flags(&c), run_id,
                                         event_id, &registered, err, sizeof(err))) != SK_OK) {
            print_err(err);
            rc = EXIT_FAILED;
            goto done;
        }
        if (!registered)
            fprintf(stderr,
                    "stepkit: warning: no master has registered workflow '%s' in schema \"%s\" "
                    "yet: run %s waits until a worker that serves it connects "
                    "(--require-registered refuses instead)\n",
                    c.args[0], c.schema, run_id);
        if (c.json)
            printf("{\"run_id\":\"%s\",\"event_id\":\"%s\",\"created\":true}\n", run_id, event_id);
        else
            printf("%s\n", run_id);
        rc = 0;
    } else if (strcmp(c.command, "invoke") == 0) {
        int r = sk_client_invoke_flags(cl, c.args[0], buf.data, buf.size, start_flags(&c),
                                       (int)c.timeout_ms, &res, err, sizeof(err));
        if (r == SK_AGAIN) {
            fprintf(stderr, "stepkit: run %s did not end within %ld ms\n", res.run_id,
                    c.timeout_ms);
            rc = EXIT_TIMEOUT;
        } else if (r != SK_OK) {
            print_err(err);
            rc = EXIT_FAILED;
        } else {
            rc = print_result(&res);
        }
    } else {
        char *json = sk_client_run_json(cl, c.args[0], err, sizeof(err));
        if (json == NULL) {
            print_err(err);
            rc = EXIT_FAILED;
            goto done;
        }
        if (c.json)
            printf("%s\n", json);
        else
            print_run_human(json);
        free(json);
        rc = 0;
    }
done:
    free(c.data_buf);
    sk_run_result_clear(&res);
    sk_client_close(cl);
    msgpack_sbuffer_destroy(&buf);
    return rc;
}
