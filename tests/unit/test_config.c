/*
 * sk_config: defaults, environment, flags and every class of bad value.
 * Each Criterion test runs in its own process, so setenv() stays local.
 */
#include <criterion/criterion.h>

#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sk_config.h"
#include "sk_log.h"
#include "stepkit.h"

static const char *const env_names[] = {
    "DATABASE_URL",
    "DATABASE_URL_FILE",
    "STEPKIT_SCHEMA",
    "STEPKIT_WORKERS",
    "STEPKIT_WORKFLOWS",
    "STEPKIT_NO_MIGRATE",
    "STEPKIT_POLL_INTERVAL_MS",
    "STEPKIT_POLL_MAX_MS",
    "STEPKIT_LEASE_MS",
    "STEPKIT_SHUTDOWN_TIMEOUT_MS",
    "STEPKIT_RESTART_BASE_MS",
    "STEPKIT_RESTART_MAX_MS",
    "STEPKIT_LOG_LEVEL",
    "STEPKIT_LOG_FORMAT",
    "STEPKIT_UI_ALLOWED_HOSTS",
};

/* The outer environment (a CI job with DATABASE_URL set) must not leak in. */
static void clean_env(void)
{
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
        unsetenv(env_names[i]);
}

TestSuite(config, .init = clean_env);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})

static char err[512];

/* sk_config_load with argv = {"stepkit-master", args...}; output to `out` or a sink. */
static int load_to(sk_config_t *cfg, const char *const *args, FILE *out)
{
    char *argv[64];
    int argc = 0;
    FILE *sink = NULL;
    int rc;

    argv[argc++] = (char *)(uintptr_t) "stepkit-master";
    for (int i = 0; args[i] != NULL; i++)
        argv[argc++] = (char *)(uintptr_t)args[i];
    argv[argc] = NULL;
    if (out == NULL)
        out = sink = fopen("/dev/null", "w");
    memset(err, 0, sizeof(err));
    rc = sk_config_load(cfg, argc, argv, out, err, sizeof(err));
    if (sink != NULL)
        fclose(sink);
    return rc;
}

static int load(sk_config_t *cfg, const char *const *args)
{
    return load_to(cfg, args, NULL);
}

static void expect_error(const char *const *args, const char *message)
{
    sk_config_t cfg;

    cr_assert_eq(load(&cfg, args), SK_ERROR, "expected an error: %s", message);
    cr_assert_str_eq(err, message);
}

static char *write_temp(const char *content)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/sk_test_config_XXXXXX");
    fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
    close(fd);
    return path;
}

/* ---- defaults, flags, environment ---------------------------------------------- */

Test(config, defaults)
{
    sk_config_t cfg;
    cpu_set_t set;

    cr_assert_eq(load(&cfg, ARGS(NULL)), SK_OK, "%s", err);
    cr_assert_str_eq(cfg.database_url, "");
    cr_assert_str_eq(cfg.schema, "stepkit");
    cr_assert_eq(cfg.poll_interval_ms, 100);
    cr_assert_eq(cfg.poll_max_ms, 1000);
    cr_assert_eq(cfg.lease_ms, 30000);
    cr_assert_eq(cfg.shutdown_timeout_ms, 25000);
    cr_assert_eq(cfg.restart_base_ms, 500);
    cr_assert_eq(cfg.restart_max_ms, 30000);
    cr_assert_eq(cfg.no_migrate, 0);
    cr_assert_eq(cfg.log_level, SK_LOG_INFO);
    cr_assert_eq(cfg.log_format, SK_LOG_LOGFMT);
    cr_assert_eq(cfg.n_libraries, 0);
    /* the CPU count, bounded by the affinity mask (and any cgroup quota) */
    CPU_ZERO(&set);
    cr_assert_eq(sched_getaffinity(0, sizeof(set), &set), 0);
    cr_assert(cfg.workers >= 1 && cfg.workers <= CPU_COUNT(&set), "workers=%d", cfg.workers);
    cr_assert_eq(sk_config_validate(&cfg, err, sizeof(err)), SK_OK, "%s", err);
}

Test(config, defaults_function_matches_load)
{
    sk_config_t a, b;

    sk_config_defaults(&a);
    cr_assert_eq(load(&b, ARGS(NULL)), SK_OK);
    cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
}

Test(config, flags)
{
    sk_config_t cfg;

    cr_assert_eq(load(&cfg, ARGS("--database-url", "postgresql://u@db/app", "--schema", "jobs_2",
                                 "--workers", "3", "--workflows", "/opt/a.so", "--no-migrate",
                                 "--poll-interval", "50", "--poll-max", "5000", "--lease", "100",
                                 "--shutdown-timeout", "0", "--restart-base", "10", "--restart-max",
                                 "20", "--log-level", "debug", "--log-format", "json")),
                 SK_OK, "%s", err);
    cr_assert_str_eq(cfg.database_url, "postgresql://u@db/app");
    cr_assert_str_eq(cfg.schema, "jobs_2");
    cr_assert_eq(cfg.workers, 3);
    cr_assert_eq(cfg.n_libraries, 1);
    cr_assert_str_eq(cfg.libraries[0], "/opt/a.so");
    cr_assert_eq(cfg.no_migrate, 1);
    cr_assert_eq(cfg.poll_interval_ms, 50);
    cr_assert_eq(cfg.poll_max_ms, 5000);
    cr_assert_eq(cfg.lease_ms, 100);
    cr_assert_eq(cfg.shutdown_timeout_ms, 0);
    cr_assert_eq(cfg.restart_base_ms, 10);
    cr_assert_eq(cfg.restart_max_ms, 20);
    cr_assert_eq(cfg.log_level, SK_LOG_DEBUG);
    cr_assert_eq(cfg.log_format, SK_LOG_JSON);
}

Test(config, equals_form)
{
    sk_config_t cfg;

    cr_assert_eq(load(&cfg, ARGS("--workers=7", "--schema=s", "--workflows=/x.so",
                                 "--database-url=host=db dbname=app", "--no-migrate=false",
                                 "--log-level=warn")),
                 SK_OK, "%s", err);
    cr_assert_eq(cfg.workers, 7);
    cr_assert_str_eq(cfg.schema, "s");
    cr_assert_str_eq(cfg.libraries[0], "/x.so");
    cr_assert_str_eq(cfg.database_url, "host=db dbname=app"); /* only the first '=' splits */
    cr_assert_eq(cfg.no_migrate, 0);
    cr_assert_eq(cfg.log_level, SK_LOG_WARN);
}

Test(config, env)
{
    sk_config_t cfg;

    setenv("DATABASE_URL", "postgresql://env@db/app", 1);
    setenv("STEPKIT_SCHEMA", "from_env", 1);
    setenv("STEPKIT_WORKERS", "5", 1);
    setenv("STEPKIT_WORKFLOWS", "/a.so:/b.so", 1);
    setenv("STEPKIT_NO_MIGRATE", "yes", 1);
    setenv("STEPKIT_POLL_INTERVAL_MS", "200", 1);
    setenv("STEPKIT_POLL_MAX_MS", "2000", 1);
    setenv("STEPKIT_LEASE_MS", "60000", 1);
    setenv("STEPKIT_SHUTDOWN_TIMEOUT_MS", "1000", 1);
    setenv("STEPKIT_RESTART_BASE_MS", "100", 1);
    setenv("STEPKIT_RESTART_MAX_MS", "1000", 1);
    setenv("STEPKIT_LOG_LEVEL", "error", 1);
    setenv("STEPKIT_LOG_FORMAT", "json", 1);
    cr_assert_eq(load(&cfg, ARGS(NULL)), SK_OK, "%s", err);
    cr_assert_str_eq(cfg.database_url, "postgresql://env@db/app");
    cr_assert_str_eq(cfg.schema, "from_env");
    cr_assert_eq(cfg.workers, 5);
    cr_assert_eq(cfg.n_libraries, 2);
    cr_assert_str_eq(cfg.libraries[0], "/a.so");
    cr_assert_str_eq(cfg.libraries[1], "/b.so");
    cr_assert_eq(cfg.no_migrate, 1);
    cr_assert_eq(cfg.poll_interval_ms, 200);
    cr_assert_eq(cfg.poll_max_ms, 2000);
    cr_assert_eq(cfg.lease_ms, 60000);
    cr_assert_eq(cfg.shutdown_timeout_ms, 1000);
    cr_assert_eq(cfg.restart_base_ms, 100);
    cr_assert_eq(cfg.restart_max_ms, 1000);
    cr_assert_eq(cfg.log_level, SK_LOG_ERROR);
    cr_assert_eq(cfg.log_format, SK_LOG_JSON);
}

Test(config, flags_win_over_env)
{
    sk_config_t cfg;

    setenv("STEPKIT_WORKERS", "5", 1);
    setenv("STEPKIT_SCHEMA", "from_env", 1);
    setenv("STEPKIT_NO_MIGRATE", "1", 1);
    setenv("STEPKIT_WORKFLOWS", "/env1.so:/env2.so", 1);
    cr_assert_eq(load(&cfg, ARGS("--workers", "2", "--schema=from_flag", "--no-migrate=no",
                                 "--workflows", "/flag.so")),
                 SK_OK, "%s", err);
    cr_assert_eq(cfg.workers, 2);
    cr_assert_str_eq(cfg.schema, "from_flag");
    cr_assert_eq(cfg.no_migrate, 0);
    /* --workflows replaces the environment's list, it does not append to it */
    cr_assert_eq(cfg.n_libraries, 1);
    cr_assert_str_eq(cfg.libraries[0], "/flag.so");
}

Test(config, empty_env_counts_as_unset)
{
    sk_config_t cfg;

    setenv("STEPKIT_WORKERS", "", 1);
    setenv("STEPKIT_SCHEMA", "", 1);
    setenv("DATABASE_URL", "", 1);
    setenv("DATABASE_URL_FILE", "", 1);
    cr_assert_eq(load(&cfg, ARGS(NULL)), SK_OK, "%s", err);
    cr_assert_str_eq(cfg.schema, "stepkit");
    cr_assert(cfg.workers >= 1);
}

Test(config, repeatable_workflows)
{
    sk_config_t cfg;

    cr_assert_eq(
        load(&cfg, ARGS("--workflows", "/a.so", "--workflows=/b.so", "--workflows", "/c.so")),
        SK_OK, "%s", err);
    cr_assert_eq(cfg.n_libraries, 3);
    cr_assert_str_eq(cfg.libraries[0], "/a.so");
    cr_assert_str_eq(cfg.libraries[1], "/b.so");
    cr_assert_str_eq(cfg.libraries[2], "/c.so");
}

Test(config, env_workflows_skip_empty_entries)
{
    sk_config_t cfg;

    setenv("STEPKIT_WORKFLOWS", ":/a.so::/b.so:", 1);
    cr_assert_eq(load(&cfg, ARGS(NULL)), SK_OK, "%s", err);
    cr_assert_eq(cfg.n_libraries, 2);
    cr_assert_str_eq(cfg.libraries[1], "/b.so");
}

Test(config, too_many_workflows)
{
    const char *args[2 * SK_MAX_LIBRARIES + 3];
    int n = 0;

    for (int i = 0; i <= SK_MAX_LIBRARIES; i++) {
        args[n++] = "--workflows";
        args[n++] = "/x.so";
    }
    args[n] = NULL;
    expect_error(args, "--workflows: more than 16 libraries");
}

Test(config, too_many_workflows_in_env)
{
    char list[256] = "";

    for (int i = 0; i <= SK_MAX_LIBRARIES; i++)
        strcat(list, "/x.so:");
    setenv("STEPKIT_WORKFLOWS", list, 1);
    expect_error(ARGS(NULL), "STEPKIT_WORKFLOWS: more than 16 libraries");
}

Test(config, bool_values)
{
    sk_config_t cfg;
    const char *yes[] = {"1", "true", "yes", "TRUE", "Yes"};
    const char *no[] = {"0", "false", "no", "FALSE", "No"};

    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        setenv("STEPKIT_NO_MIGRATE", yes[i], 1);
        cr_assert_eq(load(&cfg, ARGS(NULL)), SK_OK, "%s", err);
        cr_assert_eq(cfg.no_migrate, 1, "%s", yes[i]);
        setenv("STEPKIT_NO_MIGRATE", no[i], 1);
        cr_assert_eq(load(&cfg, ARGS(NULL)), SK_OK, "%s", err);
        cr_assert_eq(cfg.no_migrate, 0, "%s", no[i]);
    }
}

/* ---- help, version, markdown ------------------------------------------------------ */

static char *capture(const char *const *args, int *rc)
{
    sk_config_t cfg;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);

    cr_assert_not_null(out);
    *rc = load_to(&cfg, args, out);
    fclose(out);
    return buf;
}

Test(config, help_prints_usage)
{
    int rc;
    char *text = capture(ARGS("--workers", "2", "--help"), &rc);

    cr_assert_eq(rc, SK_AGAIN);
    cr_assert(strstr(text, "Usage: stepkit-master") != NULL);
    cr_assert(strstr(text, "--poll-interval MS") != NULL);
    cr_assert(strstr(text, "STEPKIT_POLL_INTERVAL_MS") != NULL);
    cr_assert(strstr(text, "range 1..60000") != NULL);
    free(text);
}

Test(config, version)
{
    int rc;
    char *text = capture(ARGS("--version"), &rc);

    cr_assert_eq(rc, SK_AGAIN);
    cr_assert_eq(strncmp(text, "stepkit-master ", 15), 0, "%s", text);
    free(text);
}

Test(config, help_markdown)
{
    int rc;
    char *text = capture(ARGS("--help-markdown"), &rc);

    cr_assert_eq(rc, SK_AGAIN);
    cr_assert(strstr(text, "`stepkit-master --help-markdown`") != NULL);
    cr_assert(strstr(text, "| `--workers N` | `STEPKIT_WORKERS` | CPU count | 1..256 |") != NULL);
    cr_assert(strstr(text, "`DATABASE_URL_FILE`") != NULL);
    free(text);
}

/* ---- every error class --------------------------------------------------------------- */

Test(config, not_a_number)
{
    expect_error(ARGS("--workers", "abc"), "--workers: 'abc' is not a number");
    expect_error(ARGS("--workers="), "--workers: '' is not a number");
    expect_error(ARGS("--lease", " 500"), "--lease: ' 500' is not a number");
}

Test(config, trailing_garbage)
{
    expect_error(ARGS("--workers", "12x"), "--workers: '12x' is not a number");
    expect_error(ARGS("--poll-interval=1.5"), "--poll-interval: '1.5' is not a number");
}

Test(config, overflow)
{
    expect_error(ARGS("--lease", "99999999999999999999"),
                 "--lease: 99999999999999999999 is out of range 100..86400000");
    expect_error(ARGS("--workers", "4294967297"), "--workers: 4294967297 is out of range 1..256");
}

Test(config, out_of_range)
{
    expect_error(ARGS("--poll-interval", "0"), "--poll-interval: 0 is out of range 1..60000");
    expect_error(ARGS("--workers", "257"), "--workers: 257 is out of range 1..256");
    expect_error(ARGS("--shutdown-timeout=-1"),
                 "--shutdown-timeout: -1 is out of range 0..3600000");
}

Test(config, env_errors_name_the_variable)
{
    setenv("STEPKIT_WORKERS", "abc", 1);
    expect_error(ARGS(NULL), "STEPKIT_WORKERS: 'abc' is not a number");
    setenv("STEPKIT_WORKERS", "0", 1);
    expect_error(ARGS(NULL), "STEPKIT_WORKERS: 0 is out of range 1..256");
    unsetenv("STEPKIT_WORKERS");
    setenv("STEPKIT_NO_MIGRATE", "maybe", 1);
    expect_error(ARGS(NULL),
                 "STEPKIT_NO_MIGRATE: 'maybe' is not a boolean (1/0, true/false, yes/no)");
}

Test(config, bad_env_is_reported_even_when_a_flag_would_override_it)
{
    setenv("STEPKIT_LEASE_MS", "soon", 1);
    expect_error(ARGS("--lease", "1000"), "STEPKIT_LEASE_MS: 'soon' is not a number");
}

Test(config, unknown_flag)
{
    expect_error(ARGS("--wrokers", "2"), "unknown option '--wrokers'");
    expect_error(ARGS("--nope=1"), "unknown option '--nope'");
    expect_error(ARGS("-w"), "unexpected argument '-w'");
    expect_error(ARGS("extra"), "unexpected argument 'extra'");
}

Test(config, missing_argument)
{
    expect_error(ARGS("--workers"), "--workers: missing value");
    expect_error(ARGS("--schema", "--workers", "2"), "--schema: missing value");
    expect_error(ARGS("--workflows"), "--workflows: missing value");
}

Test(config, flag_without_value_rejects_one)
{
    expect_error(ARGS("--help=yes"), "--help: takes no value");
}

Test(config, string_too_long)
{
    char schema[SK_NAME_MAX + 1], url[SK_URL_MAX + 16], path[SK_PATH_MAX + 1];

    memset(schema, 'a', SK_NAME_MAX);
    schema[SK_NAME_MAX] = '\0';
    expect_error(ARGS("--schema", schema), "--schema: value is too long (at most 63 bytes)");

    memcpy(url, "postgresql://u:secret@h/", 24);
    memset(url + 24, 'd', sizeof(url) - 25);
    url[sizeof(url) - 1] = '\0';
    expect_error(ARGS("--database-url", url),
                 "--database-url: value is too long (at most 1023 bytes)");
    cr_assert_null(strstr(err, "secret"), "the value must not be echoed");

    memset(path, 'p', SK_PATH_MAX);
    path[SK_PATH_MAX] = '\0';
    expect_error(ARGS("--workflows", path), "--workflows: value is too long (at most 511 bytes)");
}

Test(config, longest_strings_fit)
{
    sk_config_t cfg;
    char schema[SK_NAME_MAX];

    memset(schema, 'a', SK_NAME_MAX - 1);
    schema[SK_NAME_MAX - 1] = '\0';
    cr_assert_eq(load(&cfg, ARGS("--schema", schema)), SK_OK, "%s", err);
    cr_assert_str_eq(cfg.schema, schema);
}

Test(config, invalid_schema_name)
{
    expect_error(ARGS("--schema", "Jobs"),
                 "--schema: 'Jobs' is not a valid schema name ([a-z_][a-z0-9_]{0,62})");
    expect_error(ARGS("--schema", "1jobs"),
                 "--schema: '1jobs' is not a valid schema name ([a-z_][a-z0-9_]{0,62})");
    expect_error(ARGS("--schema", "a;drop"),
                 "--schema: 'a;drop' is not a valid schema name ([a-z_][a-z0-9_]{0,62})");
    expect_error(ARGS("--schema="),
                 "--schema: '' is not a valid schema name ([a-z_][a-z0-9_]{0,62})");
}

Test(config, invalid_log_level)
{
    expect_error(ARGS("--log-level", "loud"),
                 "--log-level: 'loud' is not one of error|warn|info|debug");
}

Test(config, invalid_log_format)
{
    expect_error(ARGS("--log-format", "yaml"), "--log-format: 'yaml' is not one of logfmt|json");
}

Test(config, empty_workflows_path)
{
    expect_error(ARGS("--workflows="), "--workflows: empty path");
}

Test(config, poll_max_below_interval)
{
    expect_error(ARGS("--poll-interval", "500", "--poll-max", "100"),
                 "--poll-max: 100 is less than --poll-interval 500");
}

Test(config, restart_max_below_base)
{
    expect_error(ARGS("--restart-base", "1000", "--restart-max", "999"),
                 "--restart-max: 999 is less than --restart-base 1000");
}

/* ---- DATABASE_URL_FILE ------------------------------------------------------------------ */

Test(config, url_and_url_file_conflict)
{
    setenv("DATABASE_URL", "postgresql://a@b/c", 1);
    setenv("DATABASE_URL_FILE", "/does/not/matter", 1);
    expect_error(ARGS(NULL), "DATABASE_URL and DATABASE_URL_FILE are both set; use one of them");
}

Test(config, url_and_url_file_flags_conflict)
{
    char *path = write_temp("postgresql://f@h/db\n");

    expect_error(ARGS("--database-url", "x", "--database-url-file", path),
                 "--database-url and --database-url-file are both given; use one of them");
    unlink(path);
}

Test(config, url_file_is_read)
{
    sk_config_t cfg;
    char *path = write_temp("postgresql://user:pw@db:5432/app\r\n\n");

    setenv("DATABASE_URL_FILE", path, 1);
    cr_assert_eq(load(&cfg, ARGS(NULL)), SK_OK, "%s", err);
    cr_assert_str_eq(cfg.database_url, "postgresql://user:pw@db:5432/app");
    unsetenv("DATABASE_URL_FILE");
    cr_assert_eq(load(&cfg, ARGS("--database-url-file", path)), SK_OK, "%s", err);
    cr_assert_str_eq(cfg.database_url, "postgresql://user:pw@db:5432/app");
    unlink(path);
}

Test(config, url_flag_wins_over_url_file_env)
{
    sk_config_t cfg;
    char *path = write_temp("postgresql://file@h/db\n");

    setenv("DATABASE_URL_FILE", path, 1);
    cr_assert_eq(load(&cfg, ARGS("--database-url", "postgresql://flag@h/db")), SK_OK, "%s", err);
    cr_assert_str_eq(cfg.database_url, "postgresql://flag@h/db");
    unlink(path);
}

Test(config, url_file_errors)
{
    char msg[256], big[SK_URL_MAX + 2];
    char *path;

    setenv("DATABASE_URL_FILE", "/nonexistent/secret", 1);
    expect_error(ARGS(NULL),
                 "DATABASE_URL_FILE: cannot read '/nonexistent/secret': No such file or directory");

    path = write_temp("\n");
    setenv("DATABASE_URL_FILE", path, 1);
    snprintf(msg, sizeof(msg), "DATABASE_URL_FILE: '%s' is empty", path);
    expect_error(ARGS(NULL), msg);
    unlink(path);

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    path = write_temp(big);
    setenv("DATABASE_URL_FILE", path, 1);
    snprintf(msg, sizeof(msg), "DATABASE_URL_FILE: '%s' is too long (at most 1023 bytes)", path);
    expect_error(ARGS(NULL), msg);
    unlink(path);
}

/* ---- sk_config_validate on a struct built by hand ---------------------------------------- */

Test(config, validate_checks_the_whole_struct)
{
    sk_config_t cfg;

    sk_config_defaults(&cfg);
    cr_assert_eq(sk_config_validate(&cfg, err, sizeof(err)), SK_OK, "%s", err);
    cfg.workers = 0;
    cr_assert_eq(sk_config_validate(&cfg, err, sizeof(err)), SK_ERROR);
    cr_assert_str_eq(err, "--workers: 0 is out of range 1..256");

    sk_config_defaults(&cfg);
    memset(cfg.schema, 'a', sizeof(cfg.schema)); /* no terminator */
    cr_assert_eq(sk_config_validate(&cfg, err, sizeof(err)), SK_ERROR);
    cr_assert_str_eq(err, "--schema: value is not terminated");

    sk_config_defaults(&cfg);
    cfg.n_libraries = SK_MAX_LIBRARIES + 1;
    cr_assert_eq(sk_config_validate(&cfg, err, sizeof(err)), SK_ERROR);

    sk_config_defaults(&cfg);
    cfg.log_level = 9;
    cr_assert_eq(sk_config_validate(&cfg, err, sizeof(err)), SK_ERROR);
    cr_assert_str_eq(err, "--log-level: 9 is not a log level");

    sk_config_defaults(&cfg);
    cfg.log_format = 2;
    cr_assert_eq(sk_config_validate(&cfg, err, sizeof(err)), SK_ERROR);
    cr_assert_str_eq(err, "--log-format: 2 is not a log format");
}

/* ---- --retention ------------------------------------------------------------------------ */

Test(config, retention_is_off_or_a_duration)
{
    expect_error(ARGS("--retention", "10"),
                 "--retention: '10' is not off or a duration of at least 1s (e.g. 12h, 30d)");
    expect_error(ARGS("--retention", "500ms"),
                 "--retention: '500ms' is not off or a duration of at least 1s (e.g. 12h, 30d)");
    expect_error(ARGS("--retention", "7days"),
                 "--retention: '7days' is not off or a duration of at least 1s (e.g. 12h, 30d)");
}

/* ---- --ui-allowed-hosts -------------------------------------------------------------------- */

Test(config, ui_allowed_hosts_are_names_or_a_star)
{
    sk_config_t cfg;

    cr_assert_eq(load(&cfg, ARGS("--ui-allowed-hosts", "stepkit.example.com,ops-1")), SK_OK, "%s",
                 err);
    cr_assert_str_eq(cfg.ui_allowed_hosts, "stepkit.example.com,ops-1");
    cr_assert_eq(load(&cfg, ARGS("--ui-allowed-hosts", "*")), SK_OK, "%s", err);
    expect_error(ARGS("--ui-allowed-hosts", "a.example,,b"),
                 "--ui-allowed-hosts: 'a.example,,b' is not host names separated by commas "
                 "(letters, digits, '-' and '.'), or *");
    expect_error(ARGS("--ui-allowed-hosts", "a.example:8080"),
                 "--ui-allowed-hosts: 'a.example:8080' is not host names separated by commas "
                 "(letters, digits, '-' and '.'), or *");
    expect_error(ARGS("--ui-allowed-hosts", "*.example"),
                 "--ui-allowed-hosts: '*.example' is not host names separated by commas "
                 "(letters, digits, '-' and '.'), or *");
}
