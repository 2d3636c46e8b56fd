/*
 * sk_config - the master's configuration, driven by one table
 * (name, type, offset, default, bounds, environment variable, help) that
 * gives flags, environment, validation, --help and docs/configuration.md.
 *
 * The struct is plain data (fixed-size strings, no pointers) because the
 * master publishes it to the workers in shared memory (sk_shm).
 */
#ifndef SK_CONFIG_H
#define SK_CONFIG_H

#include <stddef.h>
#include <stdio.h>

/* The release, as --version and stepkit_build_info show it (-DSK_VERSION=... overrides). */
#ifndef SK_VERSION
#define SK_VERSION "0.1.0"
#endif

#define SK_MAX_WORKERS   256
#define SK_MAX_LIBRARIES 16
#define SK_URL_MAX       1024
#define SK_PATH_MAX      512
#define SK_NAME_MAX      64
#define SK_HTTP_DEFAULT  "0.0.0.0:9464" /* probes and metrics; "off" disables */
#define SK_UI_TOKEN_MIN  16             /* --ui-token-file: printable, no blanks */
#define SK_UI_TOKEN_MAX  256

typedef struct {
    char database_url[SK_URL_MAX]; /* "" = libpq defaults (PG* variables) */
    char schema[SK_NAME_MAX];      /* schema holding our tables, default "stepkit" */
    int workers;                   /* forked workers, 1..SK_MAX_WORKERS */
    int poll_interval_ms;          /* idle poll, doubles to poll_max_ms */
    int poll_max_ms;
    int lease_ms;            /* how long a claim holds an item */
    int batch;               /* most items a worker claims and commits together (1: none) */
    int batch_window_ms;     /* a batch round runs steps this long at most, then commits */
    int step_timeout_ms;     /* a body showing no progress this long gets its worker killed */
    int shutdown_timeout_ms; /* drain grace before SIGKILL */
    int restart_base_ms;     /* worker respawn backoff */
    int restart_max_ms;
    int no_migrate;         /* 1: refuse to migrate, only check */
    int log_level;          /* sk_log_level_t */
    int log_format;         /* sk_log_format_t */
    char http[SK_NAME_MAX]; /* "ADDR:PORT" of the HTTP process, or "off" */
    char retention[16]; /* "off" or a duration (sk_duration): workers prune older finished runs */
    int ui;             /* 1: the dashboard under /ui of the --http listener */
    char ui_token_file[SK_PATH_MAX];    /* "" read-only; else the token allowing cancel/retry */
    char ui_allowed_hosts[SK_PATH_MAX]; /* Host names the dashboard answers, besides IP literals */
    int n_libraries;
    char libraries[SK_MAX_LIBRARIES][SK_PATH_MAX]; /* --workflows, repeatable */
} sk_config_t;

/* An --http value taken apart: family AF_INET or AF_INET6, a numeric host
 * ("0.0.0.0" for every interface), the port. */
typedef struct {
    int family;
    char host[SK_NAME_MAX];
    int port;
} sk_http_addr_t;

/* SK_OK, SK_AGAIN for "off", SK_ERROR when the value is not ADDRESS:PORT. */
int sk_config_http_addr(const char *value, sk_http_addr_t *out) __attribute__((warn_unused_result));

/* The dashboard token: the first line of `path`, SK_UI_TOKEN_MIN..MAX
 * printable characters without blanks.  SK_ERROR when unreadable or not so. */
int sk_config_ui_token(const char *path, char *out, size_t len) __attribute__((warn_unused_result));

/* Defaults for every field. */
void sk_config_defaults(sk_config_t *cfg);

/*
 * Fill `cfg` from the environment then the command line (flags win).
 * Returns SK_OK, SK_ERROR with a one-line message in `err` (the caller
 * prints it and exits 2), or SK_AGAIN when --help/--version was printed to
 * `out` (exit 0).  DATABASE_URL and DATABASE_URL_FILE together are an error.
 */
int sk_config_load(sk_config_t *cfg, int argc, char **argv, FILE *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Check a whole struct (bounds, non-empty required strings). */
int sk_config_validate(const sk_config_t *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* --help text, generated from the table. */
void sk_config_usage(FILE *out, const char *prog);

/* Markdown reference of every option (docs/configuration.md). */
void sk_config_write_markdown(FILE *out);

#endif
