/*
 * sk_cli_runs - the command line's run management: `runs`, `cancel`,
 * `retry`, `prune`, `stats`, and the start options (--key, --at, --delay).
 * sk_cli.c parses the common options and hands the rest here.
 */
#ifndef SK_CLI_RUNS_H
#define SK_CLI_RUNS_H

#include <stdint.h>

#include "stepkit_client.h"

typedef struct {
    const char *workflow, *status, *since, *until, *after; /* runs, cancel */
    char since_buf[40], until_buf[40];                     /* a duration made a time */
    int limit;
    const char *reason; /* cancel */
    int yes;            /* cancel by filter: do it */
    const char *key;    /* start */
    const char *at;
    int64_t delay_ms;      /* start; -1: not given */
    long priority;         /* start --priority with --key; -1: the workflow's */
    int64_t older_than_ms; /* prune; -1: not given */
    int batch;             /* prune */
    const char *seen[8];   /* options given, for the per-command check */
    int nseen;
} sk_cli_runs_opts_t;

void sk_cli_runs_init(sk_cli_runs_opts_t *o);

/* A --name (without value: --yes) this module owns: 1 taken, 0 not ours,
 * -1 a bad value (message printed). */
int sk_cli_runs_flag(sk_cli_runs_opts_t *o, const char *name);
int sk_cli_runs_option(sk_cli_runs_opts_t *o, const char *name, const char *val);

/* Whether `command` is one of this module's. */
int sk_cli_runs_is_command(const char *command);

/* Options of this module given to a command that does not take them: a
 * usage message and 2, else 0. */
int sk_cli_runs_check(const sk_cli_runs_opts_t *o, const char *command);

/* Run one of this module's commands; returns the exit code. */
int sk_cli_runs_main(sk_client_t *cl, const sk_cli_runs_opts_t *o, const char *command,
                     const char *const *args, int nargs, int json);

/* `start` with its options; prints the run id, or {run_id, event_id, created}. */
int sk_cli_runs_start(sk_client_t *cl, const sk_cli_runs_opts_t *o, const char *workflow,
                      const char *data, size_t len, int require_registered, int json);

/* The lines `stepkit run` adds for parent, children, cancel reason and retries. */
void sk_cli_runs_print_extra(const char *run_json);

#endif
