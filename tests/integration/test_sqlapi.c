/*
 * The SQL API (sql/002_sql_api.sql, docs/sql-api.md): to_msgpack against
 * sk_json_to_msgpack byte for byte, start_run / send_event / send_signal
 * inside the caller's transaction, the C client and `stepkit send`, and
 * the same calls against a real stepkit-master.
 *
 * Every test works in its own schema (t_<pid>_<n>), migrated with
 * sk_migrate, and calls the functions schema-qualified from a session whose
 * search_path does not include it, as an application would.  Needs
 * POSTGRES_TEST_URL and STEPKIT_BUILD (tests/run-tests.sh exports both).
 */
#include <criterion/criterion.h>

#include "sk_pg.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "sk_json.h"
#include "sk_log.h"
#include "sk_migrate.h"
#include "stepkit.h"
#include "stepkit_client.h"

/* ---- per-test state and helpers ------------------------------------------------ */

static char schema[64];     /* t_<pid>_<n> */
static char app_schema[80]; /* the application's own tables (docs example) */
static char *qschema;       /* schema, quoted by PQescapeIdentifier */
static PGconn *db;          /* search_path: public (the schema is not on it) */
static pid_t master_pid = -1;
static char master_log[512];

static const char *env_or_fail(const char *name)
{
    const char *v = getenv(name);

    cr_assert(v != NULL && *v != '\0', "%s is not set: run through tests/run-tests.sh", name);
    return v;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* SQL text with every "{S}" replaced by the quoted test schema (malloc'd). */
static char *sql_for(const char *tmpl)
{
    size_t qn = strlen(qschema), n = strlen(tmpl) + 1;
    const char *p;
    char *out, *o;

    for (p = strstr(tmpl, "{S}"); p != NULL; p = strstr(p + 3, "{S}"))
        n += qn;
    out = malloc(n);
    cr_assert_not_null(out);
    for (o = out, p = tmpl; *p != '\0';) {
        if (strncmp(p, "{S}", 3) == 0) {
            memcpy(o, qschema, qn);
            o += qn;
            p += 3;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

/* Run tmpl with text parameters (lengths: NULL for C strings, else binary
 * parameters of those lengths); results in `format` (0 text, 1 binary). */
static PGresult *exec_raw(PGconn *conn, const char *tmpl, int n, const char *const *params,
                          const int *lengths, int format)
{
    char *sql = sql_for(tmpl);
    int formats[8] = {0};
    PGresult *res;

    cr_assert(n <= 8);
    for (int i = 0; lengths != NULL && i < n; i++)
        formats[i] = lengths[i] >= 0;
    res = PQexecParams(conn, sql, n, NULL, params, lengths, lengths ? formats : NULL, format);
    free(sql);
    return res;
}

static PGresult *exec_ok(const char *tmpl, int n, const char *const *params)
{
    PGresult *res = exec_raw(db, tmpl, n, params, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    cr_assert(st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK, "%s: %s", tmpl,
              PQresultErrorMessage(res));
    return res;
}

static void exec_cmd(const char *tmpl)
{
    PQclear(exec_ok(tmpl, 0, NULL));
}

/* Several statements in one string (no parameters). */
static void exec_script(const char *tmpl)
{
    char *sql = sql_for(tmpl);
    PGresult *res = PQexec(db, sql);

    cr_assert(PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK,
              "%s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    free(sql);
}

/* The single value a query returns, as text (malloc'd; NULL for SQL NULL). */
static char *scalar(const char *tmpl, int n, const char *const *params)
{
    PGresult *res = exec_ok(tmpl, n, params);
    char *v = NULL;

    cr_assert_eq(PQntuples(res), 1, "%s: %d rows", tmpl, PQntuples(res));
    if (!PQgetisnull(res, 0, 0))
        v = strdup(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static long count_of(const char *tmpl, int n, const char *const *params)
{
    char *v = scalar(tmpl, n, params);
    long c = v ? strtol(v, NULL, 10) : -1;

    free(v);
    return c;
}

/* The query must fail with SQLSTATE `state` and a message containing `what`. */
static void expect_error(const char *tmpl, int n, const char *const *params, const char *state,
                         const char *what)
{
    PGresult *res = exec_raw(db, tmpl, n, params, NULL, 0);
    const char *got = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);

    cr_expect_eq(PQresultStatus(res), PGRES_FATAL_ERROR, "%s (%s) succeeded", tmpl,
                 n > 0 && params[0] ? params[0] : "");
    cr_expect(got != NULL && strcmp(got, state) == 0, "%s: SQLSTATE %s, want %s (%s)", tmpl,
              got ? got : "none", state, msg ? msg : "");
    cr_expect(msg != NULL && strstr(msg, what) != NULL, "%s: message \"%s\" lacks \"%s\"", tmpl,
              msg ? msg : "", what);
    PQclear(res);
}

static PGconn *connect_db(void)
{
    PGconn *c = PQconnectdb(env_or_fail("POSTGRES_TEST_URL"));
    PGresult *res;

    cr_assert_eq(PQstatus(c), CONNECTION_OK, "connect: %s", PQerrorMessage(c));
    res = PQexec(c, "SET search_path = public; SET client_min_messages = warning");
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(c));
    PQclear(res);
    return c;
}

static void setup(void)
{
    static int seq;
    char err[512];
    PGconn *mig;
    int applied = 0;

    sk_log_level = SK_LOG_WARN; /* no line per migration applied */
    snprintf(schema, sizeof(schema), "t_%ld_%d", (long)getpid(), ++seq);
    snprintf(app_schema, sizeof(app_schema), "%s_app", schema);
    db = connect_db();
    qschema = PQescapeIdentifier(db, schema, strlen(schema));
    cr_assert_not_null(qschema);
    /* Migrate on a connection of its own: sk_migrate moves its search_path. */
    mig = connect_db();
    cr_assert_eq(sk_migrate(mig, schema, &applied, err, sizeof(err)), SK_OK, "migrate: %s", err);
    cr_assert_eq(applied, sk_migrations_count);
    PQfinish(mig);
}

static void stop_master(void)
{
    int64_t deadline;
    int status;

    if (master_pid <= 0)
        return;
    /* SIGTERM drains; the master and its workers share one process group. */
    kill(-master_pid, SIGTERM);
    deadline = now_ms() + 15000;
    while (waitpid(master_pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(-master_pid, SIGKILL);
            waitpid(master_pid, &status, 0);
            break;
        }
        sleep_ms(20);
    }
    master_pid = -1;
}

static void teardown(void)
{
    char sql[256];
    char *qapp;

    stop_master();
    if (db == NULL)
        return;
    if (PQtransactionStatus(db) != PQTRANS_IDLE)
        PQclear(PQexec(db, "ROLLBACK"));
    qapp = PQescapeIdentifier(db, app_schema, strlen(app_schema));
    if (qapp != NULL && qschema != NULL) {
        snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS %s CASCADE; DROP SCHEMA %s CASCADE", qapp,
                 qschema);
        PQclear(PQexec(db, sql));
    }
    PQfreemem(qapp);
    PQfreemem(qschema);
    qschema = NULL;
    PQfinish(db);
    db = NULL;
}

TestSuite(sqlapi, .init = setup, .fini = teardown,
          .timeout = 150) /* = ITEST_TIMEOUT_S: Criterion 2.4.1 leaks when tests of different
                             timeouts run in parallel */
    ;

/* Register a workflow by hand (no master): its id and event names. */
static void register_workflow(const char *id, const char *events)
{
    const char *params[2] = {id, events};

    PQclear(exec_ok("INSERT INTO {S}.workflows (workflow_id, max_attempts, events)"
                    " VALUES ($1, 4, $2::text[])",
                    2, params));
}

/* ---- to_msgpack against sk_json_to_msgpack ---------------------------------------- */

/* sk_json_to_msgpack of text (malloc'd bytes, *len). */
static char *c_pack(const char *json, size_t *len)
{
    msgpack_sbuffer sb;
    char err[256] = "";
    char *out;

    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sk_json_to_msgpack(json, strlen(json), &sb, err, sizeof(err)), SK_OK, "%.60s: %s",
                 json, err);
    *len = sb.size;
    out = malloc(sb.size ? sb.size : 1);
    cr_assert_not_null(out);
    memcpy(out, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return out;
}

/* to_msgpack($1::jsonb) (malloc'd bytes, *len). */
static char *sql_pack(const char *json, size_t *len)
{
    const char *params[1] = {json};
    PGresult *res = exec_raw(db, "SELECT {S}.to_msgpack($1::jsonb)", 1, params, NULL, 1);
    char *out;

    cr_assert_eq(PQresultStatus(res), PGRES_TUPLES_OK, "to_msgpack(%.60s): %s", json,
                 PQresultErrorMessage(res));
    *len = (size_t)PQgetlength(res, 0, 0);
    out = malloc(*len ? *len : 1);
    cr_assert_not_null(out);
    memcpy(out, PQgetvalue(res, 0, 0), *len);
    PQclear(res);
    return out;
}

static void hex(const char *b, size_t n, char *out, size_t outlen)
{
    size_t i, o = 0;

    for (i = 0; i < n && o + 3 < outlen; i++)
        o += (size_t)snprintf(out + o, outlen - o, "%02x", (unsigned char)b[i]);
    if (i < n && outlen > 4)
        snprintf(out + outlen - 4, 4, "...");
}

/* SQL's bytes for sql_json equal C's for c_json. */
static void expect_pack_equal(const char *sql_json, const char *c_json)
{
    size_t sn, cn;
    char *s = sql_pack(sql_json, &sn), *c = c_pack(c_json, &cn);
    char hs[80], hc[80];

    hex(s, sn, hs, sizeof(hs));
    hex(c, cn, hc, sizeof(hc));
    cr_expect(sn == cn && memcmp(s, c, sn) == 0, "%.40s: SQL %s (%zu bytes), C %s (%zu bytes)",
              sql_json, hs, sn, hc, cn);
    free(s);
    free(c);
}

/* "\"" + n bytes of `unit` repeated + "\"" (malloc'd). */
static char *json_string_of(const char *unit, size_t times)
{
    size_t u = strlen(unit);
    char *s = malloc(u * times + 3);

    cr_assert_not_null(s);
    s[0] = '"';
    for (size_t i = 0; i < times; i++)
        memcpy(s + 1 + i * u, unit, u);
    s[1 + u * times] = '"';
    s[2 + u * times] = '\0';
    return s;
}

/* [0,1,...,n-1] or {"k00000":0,...} with n entries (keys in jsonb order). */
static char *json_container(size_t n, int object)
{
    char *s = malloc(n * 16 + 3), *p = s;

    cr_assert_not_null(s);
    *p++ = object ? '{' : '[';
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *p++ = ',';
        if (object)
            p += sprintf(p, "\"k%05zu\":%zu", i, i % 200);
        else
            p += sprintf(p, "%zu", i % 300);
    }
    *p++ = object ? '}' : ']';
    *p = '\0';
    return s;
}

Test(sqlapi, to_msgpack_matches_c_byte_for_byte)
{
    /* Every key already in jsonb's order (shorter first, then bytewise). */
    static const char *const cases[] = {
        "null",
        "true",
        "false",
        "0",
        "1",
        "-1",
        "127",
        "128",
        "255",
        "256",
        "65535",
        "65536",
        "-32",
        "-33",
        "-128",
        "-129",
        "-32768",
        "-32769",
        "-2147483648",
        "-2147483649",
        "2147483648",
        "4294967295",
        "4294967296",
        "9223372036854775807",
        "-9223372036854775808",
        "1.5",
        "-0.25",
        "1.0",
        "0.1",
        "3.141592653589793",
        "-1234567.125",
        "1.5e-1",
        "-2.5E-3",
        "1e-400",
        "\"\"",
        "\"a\"",
        "\"h\\u00e9llo \\u2603 \\ud83d\\ude00\"",
        "\"caf\xc3\xa9\"",
        "\"tab\\tquote\\\"back\\\\slash\"",
        "[]",
        "{}",
        "[1,[2,[3,[]]],{\"a\":null}]",
        "{\"a\":{\"b\":[true,false,null]},\"bb\":\"x\"}",
        "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14]",    /* fixarray, 15 */
        "[0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15]", /* array16, 16 */
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,"
        "\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15}", /* fixmap, 15 */
        "{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,"
        "\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16}", /* map16, 16 */
        "{\"name\":\"Ada\",\"tags\":[\"x\",1.25,-7],\"email\":\"ada@example.com\"}",
    };
    static const size_t string_sizes[] = {31, 32, 255, 256, 65535, 65536};

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_pack_equal(cases[i], cases[i]);
    /* fixstr / str8 / str16 / str32 boundaries, in bytes. */
    for (size_t i = 0; i < sizeof(string_sizes) / sizeof(string_sizes[0]); i++) {
        char *s = json_string_of("x", string_sizes[i]);
        expect_pack_equal(s, s);
        free(s);
    }
    /* Multi-byte UTF-8 counts bytes, not characters: 16 x 2 bytes = str8. */
    {
        char *s = json_string_of("\xc3\xa9", 16);
        expect_pack_equal(s, s);
        free(s);
    }
    /* array32 and map32. */
    {
        char *a = json_container(65536, 0), *o = json_container(65536, 1);
        expect_pack_equal(a, a);
        expect_pack_equal(o, o);
        free(a);
        free(o);
    }
}

Test(sqlapi, to_msgpack_key_order_and_number_normalisation_are_jsonb_s)
{
    /* jsonb sorts keys (shorter first): same keys and values, jsonb's order. */
    expect_pack_equal("{\"bb\":1,\"a\":[2],\"c\":{\"zz\":1,\"y\":2}}",
                      "{\"a\":[2],\"c\":{\"y\":2,\"zz\":1},\"bb\":1}");
    /* jsonb stores 1e3 as 1000 (scale 0): an integer, where jansson reads a real. */
    expect_pack_equal("1e3", "1000");
    expect_pack_equal("2.5E+1", "25");
    {
        size_t sn, cn;
        char *s = sql_pack("1e3", &sn), *c = c_pack("1e3", &cn);
        cr_expect(sn != cn || memcmp(s, c, sn) != 0, "1e3 packed the same: the docs are stale");
        free(s);
        free(c);
    }
    /* A fractional exponent keeps a decimal point: a real, as in jansson. */
    expect_pack_equal("1.5e-1", "0.15");
    /* numeric has no negative zero. */
    expect_pack_equal("-0.0", "0.0");
}

Test(sqlapi, to_msgpack_refuses_what_json_payloads_cannot_carry)
{
    const char *too_big[] = {"9223372036854775808"}, *too_small[] = {"-9223372036854775809"};
    const char *huge[] = {"1e400"}; /* jsonb: an integer of 401 digits */
    char huge_real[400], deep[80], deeper[80];
    const char *p_huge_real[1] = {huge_real}, *p_deeper[1] = {deeper};

    expect_error("SELECT {S}.to_msgpack($1::jsonb)", 1, too_big, "22003", "int64");
    expect_error("SELECT {S}.to_msgpack($1::jsonb)", 1, too_small, "22003", "int64");
    expect_error("SELECT {S}.to_msgpack($1::jsonb)", 1, huge, "22003", "int64");
    /* 2 followed by 310 digits and a fraction: a real beyond float64. */
    memset(huge_real, '0', 311);
    huge_real[0] = '2';
    memcpy(huge_real + 311, ".5", 3);
    expect_error("SELECT {S}.to_msgpack($1::jsonb)", 1, p_huge_real, "22003", "float64");
    /* 32 levels of containers pass (as sk_json_to_msgpack), 33 do not. */
    snprintf(deep, sizeof(deep), "%.*s%.*s", 32, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 32,
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    snprintf(deeper, sizeof(deeper), "%.*s%.*s", 33, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", 33,
             "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    expect_pack_equal(deep, deep);
    expect_error("SELECT {S}.to_msgpack($1::jsonb)", 1, p_deeper, "54000", "deeper than 32");
    cr_expect_null(scalar("SELECT {S}.to_msgpack(NULL)", 0, NULL));
}

/* ---- the SQL functions without a master ------------------------------------------- */

Test(sqlapi, invalid_input_raises_clear_errors)
{
    const char *unknown[] = {"nope"}, *empty[] = {""}, *nl[] = {"a\nb"};

    register_workflow("w-a", "{}");
    expect_error("SELECT {S}.start_run($1, '{}', true)", 1, unknown, "SK002",
                 "unknown workflow 'nope'");
    expect_error("SELECT * FROM {S}.start_run_msgpack($1, NULL, false, true)", 1, unknown, "SK002",
                 "unknown workflow 'nope'");
    expect_error("SELECT {S}.start_run($1)", 1, empty, "22023", "workflow id is required");
    expect_error("SELECT {S}.start_run(NULL)", 0, NULL, "22023", "workflow id is required");
    expect_error("SELECT * FROM {S}.send_event($1, '{}')", 1, empty, "22023",
                 "event name is required");
    expect_error("SELECT * FROM {S}.send_event(NULL)", 0, NULL, "22023", "event name is required");
    expect_error("SELECT * FROM {S}.send_event($1)", 1, nl, "22023", "without line breaks");
    expect_error("SELECT {S}.send_signal($1, '{}')", 1, empty, "22023", "signal name is required");
    expect_error("SELECT {S}.start_run('w-a', '18446744073709551616')", 0, NULL, "22003", "int64");
    /* Nothing was left behind by the failed calls. */
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs", 0, NULL), 0);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.exec_queue", 0, NULL), 0);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.event_queue", 0, NULL), 0);
}

Test(sqlapi, start_run_writes_what_the_client_writes)
{
    static const char input[] = "{\"n\":[1,2.5,null],\"name\":\"Ada\"}";
    const char *params[1] = {input};
    char err[512], run_id[SK_UUID_LEN], event_id[SK_UUID_LEN];
    char *sql_run, *data_sql, *data_c, *cbytes;
    size_t clen;
    sk_client_t *cl;
    const char *p1[1], *p2[1];

    register_workflow("w-a", "{}");
    sql_run = scalar("SELECT {S}.start_run('w-a', $1::jsonb)", 1, params);
    cr_assert_not_null(sql_run);

    cl = sk_client_connect(env_or_fail("POSTGRES_TEST_URL"), schema, err, sizeof(err));
    cr_assert_not_null(cl, "%s", err);
    cbytes = c_pack(input, &clen);
    cr_assert_eq(sk_client_start(cl, "w-a", cbytes, clen, run_id, event_id, err, sizeof(err)),
                 SK_OK, "%s", err);
    cr_expect_neq(sk_client_start_flags(cl, "nope", cbytes, clen, SK_START_REQUIRE_REGISTERED,
                                        run_id, event_id, NULL, err, sizeof(err)),
                  SK_OK);
    cr_expect(strstr(err, "unknown workflow 'nope'") != NULL, "%s", err);
    cr_assert_eq(sk_client_start(cl, "w-a", cbytes, clen, run_id, event_id, err, sizeof(err)),
                 SK_OK, "%s", err);
    sk_client_close(cl);
    free(cbytes);

    /* Same row shape and the same payload bytes (this input's keys are in jsonb order). */
    p1[0] = sql_run;
    p2[0] = run_id;
    data_sql = scalar("SELECT workflow_id || ' ' || trigger_type || ' ' || trigger_name || ' ' ||"
                      " encode(data, 'hex') || ' ' || status || ' ' || notify_end"
                      " FROM {S}.runs WHERE run_id = $1::uuid",
                      1, p1);
    data_c = scalar("SELECT workflow_id || ' ' || trigger_type || ' ' || trigger_name || ' ' ||"
                    " encode(data, 'hex') || ' ' || status || ' ' || notify_end"
                    " FROM {S}.runs WHERE run_id = $1::uuid",
                    1, p2);
    cr_assert_not_null(data_sql);
    cr_assert_not_null(data_c);
    cr_expect_str_eq(data_sql, data_c);
    cr_expect(strncmp(data_sql, "w-a invoke w-a ", 15) == 0, "%s", data_sql);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.exec_queue WHERE run_id = $1::uuid AND"
                          " workflow_id = 'w-a' AND op_key IS NULL",
                          1, p1),
                 1);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs r JOIN {S}.runs s"
                          " ON s.run_id = $1::uuid AND r.event_id <> s.event_id"
                          " WHERE r.run_id = $2::uuid",
                          2, (const char *const[]){sql_run, run_id}),
                 1, "each start gets its own event id");
    /* SQL NULL input is JSON null. */
    free(data_sql);
    free(sql_run);
    sql_run = scalar("SELECT {S}.start_run('w-a', NULL)", 0, NULL);
    p1[0] = sql_run;
    data_sql = scalar("SELECT encode(data, 'hex') FROM {S}.runs WHERE run_id = $1::uuid", 1, p1);
    cr_expect_str_eq(data_sql, "c0");
    free(data_sql);
    free(data_c);
    free(sql_run);
}

/* Deploy in any order: a run of a workflow nobody registered is accepted and
 * waits in the queue, also from a trigger inside the caller's transaction;
 * the earlier call forms (three-argument start_run_msgpack, two-argument
 * start_run: what the previous release's binaries send) still work. */
Test(sqlapi, unregistered_workflow_runs_are_accepted_and_wait)
{
    char err[512], run_id[SK_UUID_LEN], event_id[SK_UUID_LEN];
    sk_client_t *cl;
    char *v;
    int registered = -1;

    register_workflow("w-a", "{}");
    v = scalar("SELECT {S}.start_run('later', '{\"x\":1}')", 0, NULL);
    cr_assert_not_null(v);
    free(v);
    v = scalar("SELECT registered::text FROM {S}.start_run_msgpack('later', NULL, false)", 0, NULL);
    cr_expect_str_eq(v, "false");
    free(v);
    v = scalar("SELECT registered::text FROM {S}.start_run_msgpack('w-a', NULL)", 0, NULL);
    cr_expect_str_eq(v, "true");
    free(v);
    cl = sk_client_connect(env_or_fail("POSTGRES_TEST_URL"), schema, err, sizeof(err));
    cr_assert_not_null(cl, "%s", err);
    cr_assert_eq(sk_client_start_flags(cl, "later", NULL, 0, 0, run_id, event_id, &registered, err,
                                       sizeof(err)),
                 SK_OK, "%s", err);
    cr_expect_eq(registered, 0);
    cr_assert_eq(sk_client_start(cl, "later", NULL, 0, run_id, event_id, err, sizeof(err)), SK_OK,
                 "%s", err);
    sk_client_close(cl);

    /* A database trigger of the user's starting runs: its transaction commits. */
    exec_script("CREATE TABLE {S}.user_orders (id int PRIMARY KEY);"
                "CREATE FUNCTION {S}.user_on_order() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN PERFORM {S}.start_run('ship-order', jsonb_build_object('id', NEW.id));"
                " RETURN NEW; END $$;"
                "CREATE TRIGGER orders_run AFTER INSERT ON {S}.user_orders"
                " FOR EACH ROW EXECUTE FUNCTION {S}.user_on_order();"
                "INSERT INTO {S}.user_orders VALUES (1), (2)");
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.user_orders", 0, NULL), 2);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs r JOIN {S}.exec_queue q USING (run_id)"
                          " WHERE r.workflow_id IN ('later', 'ship-order') AND r.status = 'pending'"
                          "   AND q.visible_at <= now() AND NOT q.leased",
                          0, NULL),
                 6, "every run waits, ready, in the queue");
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.workflows", 0, NULL), 1,
                 "starting a run registers nothing");
}

/* queue_depth(): ready items only (visible now, no live lease), by workflow,
 * capped; read through exec_queue_ready, never a scan of the table. */
Test(sqlapi, queue_depth_counts_ready_items_through_the_index)
{
    long seq_before, idx_before;

    /* 3000 ready items of w-a, 1000 of w-b, 2000 sleeping or suspended, 500 leased. */
    exec_script("INSERT INTO {S}.exec_queue (run_id, workflow_id, visible_at)"
                " SELECT gen_random_uuid(), CASE WHEN i % 4 = 0 THEN 'w-b' ELSE 'w-a' END,"
                "        now() - interval '1 minute'"
                "   FROM generate_series(1, 4000) i;"
                "INSERT INTO {S}.exec_queue (run_id, workflow_id, visible_at)"
                " SELECT gen_random_uuid(), 'w-a',"
                "        CASE WHEN i % 2 = 0 THEN 'infinity' ELSE now() + interval '1 hour' END"
                "   FROM generate_series(1, 2000) i;"
                "INSERT INTO {S}.exec_queue (run_id, workflow_id, visible_at, leased)"
                " SELECT gen_random_uuid(), 'w-a', now() + interval '30 seconds', true"
                "   FROM generate_series(1, 500) i;"
                "ANALYZE {S}.exec_queue");
    cr_expect_eq(count_of("SELECT {S}.queue_depth()", 0, NULL), 4000);
    cr_expect_eq(count_of("SELECT {S}.queue_depth('{w-a}')", 0, NULL), 3000);
    cr_expect_eq(count_of("SELECT {S}.queue_depth('{w-b,w-c}')", 0, NULL), 1000);
    cr_expect_eq(count_of("SELECT {S}.queue_depth('{}')", 0, NULL), 0);
    cr_expect_eq(count_of("SELECT {S}.queue_depth(NULL, 250)", 0, NULL), 250, "capped");
    /* An expired lease is ready again (a takeover will claim it). */
    exec_cmd("UPDATE {S}.exec_queue SET visible_at = now() - interval '1 second'"
             " WHERE item_id IN (SELECT item_id FROM {S}.exec_queue WHERE leased LIMIT 10)");
    cr_expect_eq(count_of("SELECT {S}.queue_depth()", 0, NULL), 4010);

    /* Index, not a table scan: the statistics of this backend, flushed. */
    PQclear(exec_ok("SELECT pg_stat_force_next_flush()", 0, NULL));
    PQclear(exec_ok("SELECT 1", 0, NULL));
    PQclear(exec_ok("SELECT pg_stat_clear_snapshot()", 0, NULL));
    seq_before = count_of("SELECT seq_scan FROM pg_stat_user_tables WHERE relid ="
                          " '{S}.exec_queue'::regclass",
                          0, NULL);
    idx_before = count_of("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid ="
                          " '{S}.exec_queue_ready'::regclass",
                          0, NULL);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(count_of("SELECT {S}.queue_depth('{w-a}', 100000)", 0, NULL), 3010);
    PQclear(exec_ok("SELECT pg_stat_force_next_flush()", 0, NULL));
    PQclear(exec_ok("SELECT 1", 0, NULL));
    PQclear(exec_ok("SELECT pg_stat_clear_snapshot()", 0, NULL));
    cr_expect_eq(count_of("SELECT seq_scan FROM pg_stat_user_tables WHERE relid ="
                          " '{S}.exec_queue'::regclass",
                          0, NULL),
                 seq_before, "queue_depth scanned the table");
    cr_expect_geq(count_of("SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelid ="
                           " '{S}.exec_queue_ready'::regclass",
                           0, NULL),
                  idx_before + 3, "queue_depth did not use exec_queue_ready");
    /* Autoscalers call it with EXECUTE only: revoked from PUBLIC. */
    cr_expect_eq(count_of("SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a"
                          " WHERE p.oid = '{S}.queue_depth(text[], bigint)'::regprocedure"
                          "   AND a.grantee = 0",
                          0, NULL),
                 0, "PUBLIC may execute queue_depth");
}

Test(sqlapi, send_event_fans_out_once_per_event_id)
{
    static const char eid[] = "5b0cf2ad-8a71-4e0a-9d61-2f0c8c1c5f01";
    const char *params[2] = {"user.signup", "{\"name\":\"Bo\"}"};
    const char *p_eid[1] = {eid};
    char err[512];
    sk_client_t *cl;
    sk_event_result_t ev;
    PGresult *res;
    char *ev_id;

    register_workflow("w-a", "{user.signup,other}");
    register_workflow("w-b", "{user.signup}");
    register_workflow("w-c", "{other}");

    res = exec_ok("SELECT event_id::text, run_id::text FROM {S}.send_event($1, $2::jsonb)", 2,
                  params);
    cr_assert_eq(PQntuples(res), 2, "one row per listening workflow");
    ev_id = strdup(PQgetvalue(res, 0, 0));
    cr_expect_str_eq(PQgetvalue(res, 1, 0), ev_id);
    for (int i = 0; i < 2; i++) {
        const char *p[3] = {PQgetvalue(res, i, 1), ev_id, i == 0 ? "w-a" : "w-b"};
        cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs WHERE run_id = $1::uuid"
                              " AND event_id = $2::uuid AND workflow_id = $3"
                              " AND trigger_type = 'event' AND trigger_name = 'user.signup'"
                              " AND data = '\\x81a46e616d65a2426f'::bytea",
                              3, p),
                     1, "run %d", i);
        cr_expect_eq(count_of("SELECT count(*) FROM {S}.exec_queue WHERE run_id = $1::uuid", 1, p),
                     1);
    }
    PQclear(res);
    free(ev_id);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.event_queue", 0, NULL), 0,
                 "a processed event leaves the queue");

    /* Nobody listens: the event id still comes back, with no run. */
    res = exec_ok("SELECT event_id::text, run_id FROM {S}.send_event('nobody.listens')", 0, NULL);
    cr_assert_eq(PQntuples(res), 1);
    cr_expect_eq(strlen(PQgetvalue(res, 0, 0)), 36);
    cr_expect(PQgetisnull(res, 0, 1));
    PQclear(res);

    /* An explicit id: the first send starts both, the second nothing. */
    res = exec_ok("SELECT run_id FROM {S}.send_event_msgpack('user.signup', '\\x80', $1::uuid)", 1,
                  p_eid);
    cr_expect_eq(PQntuples(res), 2);
    PQclear(res);
    res = exec_ok("SELECT event_id::text, run_id FROM"
                  " {S}.send_event_msgpack('user.signup', '\\x80', $1::uuid)",
                  1, p_eid);
    cr_assert_eq(PQntuples(res), 1);
    cr_expect_str_eq(PQgetvalue(res, 0, 0), eid);
    cr_expect(PQgetisnull(res, 0, 1));
    PQclear(res);

    /* The client path is the same function. */
    cl = sk_client_connect(env_or_fail("POSTGRES_TEST_URL"), schema, err, sizeof(err));
    cr_assert_not_null(cl, "%s", err);
    cr_assert_eq(sk_client_send_event(cl, "user.signup", NULL, 0, eid, &ev, err, sizeof(err)),
                 SK_OK, "%s", err);
    cr_expect_str_eq(ev.event_id, eid);
    cr_expect_eq(ev.n_runs, 0);
    cr_expect_null(ev.run_ids);
    sk_event_result_clear(&ev);
    cr_assert_eq(sk_client_send_event(cl, "other", "\x80", 1, NULL, &ev, err, sizeof(err)), SK_OK,
                 "%s", err);
    cr_expect_eq(ev.n_runs, 2);
    sk_event_result_clear(&ev);
    cr_expect_neq(sk_client_send_event(cl, "", NULL, 0, NULL, &ev, err, sizeof(err)), SK_OK);
    cr_expect_neq(sk_client_send_event(cl, "x", NULL, 0, "not-a-uuid", &ev, err, sizeof(err)),
                  SK_OK);
    sk_client_close(cl);

    cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs WHERE event_id = $1::uuid", 1, p_eid), 2,
                 "the same event id never starts a workflow twice");
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs", 0, NULL), 6);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.event_queue", 0, NULL), 0);
}

/* True when `conn` receives a notification on its channel within ms. */
static int notified_within(PGconn *conn, int ms)
{
    int64_t deadline = now_ms() + ms;
    PGnotify *n;
    int got = 0;

    for (;;) {
        struct pollfd pfd = {.fd = PQsocket(conn), .events = POLLIN};
        int64_t left = deadline - now_ms();

        cr_assert(PQconsumeInput(conn), "%s", PQerrorMessage(conn));
        while ((n = PQnotifies(conn)) != NULL) {
            got = 1;
            PQfreemem(n);
        }
        if (got || left <= 0)
            return got;
        poll(&pfd, 1, (int)left);
    }
}

Test(sqlapi, rollback_enqueues_nothing_and_commit_notifies)
{
    PGconn *listener = connect_db();
    char chan[96], sql[256];
    char *qchan;
    PGresult *res;

    register_workflow("w-a", "{user.signup}");
    snprintf(chan, sizeof(chan), "%s.work", schema);
    qchan = PQescapeIdentifier(listener, chan, strlen(chan));
    cr_assert_not_null(qchan);
    snprintf(sql, sizeof(sql), "LISTEN %s", qchan);
    PQfreemem(qchan);
    res = PQexec(listener, sql);
    cr_assert_eq(PQresultStatus(res), PGRES_COMMAND_OK, "%s", PQerrorMessage(listener));
    PQclear(res);

    exec_cmd("BEGIN");
    PQclear(exec_ok("SELECT {S}.start_run('w-a', '{\"x\":1}')", 0, NULL));
    PQclear(exec_ok("SELECT * FROM {S}.send_event('user.signup', '{\"name\":\"Bo\"}')", 0, NULL));
    PQclear(exec_ok("SELECT {S}.send_signal('approval-x', '{}')", 0, NULL));
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs", 0, NULL), 2, "visible inside");
    exec_cmd("ROLLBACK");
    cr_expect_eq(notified_within(listener, 300), 0, "a rolled back send notified");
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs", 0, NULL), 0);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.exec_queue", 0, NULL), 0);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.event_queue", 0, NULL), 0);

    exec_cmd("BEGIN");
    PQclear(exec_ok("SELECT {S}.start_run('w-a', '{\"x\":1}')", 0, NULL));
    cr_expect_eq(notified_within(listener, 200), 0, "notified before the commit");
    exec_cmd("COMMIT");
    cr_expect(notified_within(listener, 5000), "no notification at commit");
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.exec_queue", 0, NULL), 1);
    PQfinish(listener);
}

/* ---- against a real master ------------------------------------------------------- */

static void start_master(void)
{
    const char *build = env_or_fail("STEPKIT_BUILD"), *url = env_or_fail("POSTGRES_TEST_URL");
    const char *logdir = getenv("STEPKIT_TEST_LOGDIR");
    char bin[512], lib[512];
    int64_t deadline;
    pid_t pid;

    snprintf(bin, sizeof(bin), "%s/bin/stepkit-master", build);
    snprintf(lib, sizeof(lib), "%s/examples/examples.so", build);
    snprintf(master_log, sizeof(master_log), "%s/sqlapi-master-%s.log",
             logdir && *logdir ? logdir : "/tmp", schema);
    fflush(NULL);
    pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(master_log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        setpgid(0, 0);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(bin, bin, "--database-url", url, "--schema", schema, "--workers", "2", "--workflows",
              lib, "--poll-interval", "20", "--http", "off", (char *)NULL);
        _exit(127);
    }
    setpgid(pid, pid); /* also here: no window where a kill(-pid) misses */
    master_pid = pid;
    deadline = now_ms() + 20000;
    while (count_of("SELECT count(*) FROM {S}.workflows WHERE workflow_id = 'say-hi'", 0, NULL) ==
           0) {
        int status;
        cr_assert_eq(waitpid(pid, &status, WNOHANG), 0, "stepkit-master exited (log: %s)",
                     master_log);
        cr_assert(now_ms() < deadline, "stepkit-master did not register say-hi (log: %s)",
                  master_log);
        sleep_ms(20);
    }
}

/* The master log holds no error line (read after stop_master). */
static void expect_clean_master_log(void)
{
    FILE *f = fopen(master_log, "r");
    char line[2048];

    cr_assert_not_null(f, "%s: %s", master_log, strerror(errno));
    while (fgets(line, sizeof(line), f) != NULL)
        cr_expect(strstr(line, "level=error") == NULL, "%s: %s", master_log, line);
    fclose(f);
}

/* Wait for the run to end; its output as JSON (malloc'd), or the error. */
static char *wait_output(const char *run_id, const char **status_out)
{
    static char status[16];
    char err[512];
    sk_client_t *cl = sk_client_connect(env_or_fail("POSTGRES_TEST_URL"), schema, err, sizeof(err));
    sk_run_result_t r;
    char *json;
    int rc;

    cr_assert_not_null(cl, "%s", err);
    rc = sk_client_wait(cl, run_id, 20000, &r, err, sizeof(err));
    cr_assert_eq(rc, SK_OK, "run %s did not end: %s (log: %s)", run_id,
                 rc == SK_AGAIN ? "timed out" : err, master_log);
    snprintf(status, sizeof(status), "%s", r.status);
    *status_out = status;
    if (r.output != NULL)
        json = sk_msgpack_bytes_to_json(r.output, r.output_len, err, sizeof(err));
    else
        json = sk_msgpack_bytes_to_json(r.error, r.error_len, err, sizeof(err));
    cr_assert_not_null(json, "%s", err);
    sk_run_result_clear(&r);
    sk_client_close(cl);
    return json;
}

static void expect_output(const char *run_id, const char *want)
{
    const char *status;
    char *out = wait_output(run_id, &status);

    cr_expect_str_eq(status, "completed", "run %s: %s", run_id, out);
    cr_expect_str_eq(out, want, "run %s", run_id);
    free(out);
}

/* Digits replaced by '#': the shape of an output with a random number in it. */
static void shape(char *s)
{
    char *o = s;

    for (const char *p = s; *p != '\0'; p++) {
        if (*p >= '0' && *p <= '9') {
            if (o == s || o[-1] != '#')
                *o++ = '#';
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

/* Run `stepkit --database-url URL --schema S args...`; its stdout (malloc'd)
 * and exit code. */
static char *run_cli(int *code, const char *const *args)
{
    const char *build = env_or_fail("STEPKIT_BUILD"), *url = env_or_fail("POSTGRES_TEST_URL");
    const char *argv[16];
    char bin[512], *out = NULL;
    size_t len = 0, cap = 0;
    int fds[2], n = 0, status;
    pid_t pid;

    snprintf(bin, sizeof(bin), "%s/bin/stepkit", build);
    argv[n++] = bin;
    argv[n++] = "--database-url";
    argv[n++] = url;
    argv[n++] = "--schema";
    argv[n++] = schema;
    for (int i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    cr_assert_eq(pipe(fds), 0);
    fflush(NULL);
    pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    for (;;) {
        ssize_t r;
        if (cap - len < 256) {
            cap = cap ? cap * 2 : 1024;
            out = realloc(out, cap);
            cr_assert_not_null(out);
        }
        r = read(fds[0], out + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    close(fds[0]);
    out[len] = '\0';
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    *code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return out;
}

/* Split text into lines in place; returns how many (at most max). */
static int lines_of(char *text, char **lines, int max)
{
    int n = 0;

    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l != NULL && n < max;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    return n;
}

static int is_uuid(const char *s)
{
    if (strlen(s) != 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    }
    return 1;
}

/* Wait until the approval run's decision op is suspended on its signal. */
static void wait_until_waiting(const char *run_id)
{
    const char *p[1] = {run_id};
    int64_t deadline = now_ms() + 20000;

    while (count_of("SELECT count(*) FROM {S}.waiting_signals w JOIN {S}.ops o"
                    " ON o.run_id = w.run_id AND o.op_key = w.op_key AND o.status = 'waiting'"
                    " WHERE w.run_id = $1::uuid",
                    1, p) == 0) {
        cr_assert(now_ms() < deadline, "run %s never waited on its signal (log: %s)", run_id,
                  master_log);
        sleep_ms(20);
    }
}

static char *start_approval(const char *id)
{
    char input[128];
    const char *p[1] = {input};
    char *run;

    snprintf(input, sizeof(input), "{\"id\":\"%s\",\"timeout_ms\":10000}", id);
    run = scalar("SELECT {S}.start_run('approval', $1::jsonb)", 1, p);
    cr_assert_not_null(run);
    wait_until_waiting(run);
    return run;
}

Test(sqlapi, master_rolled_back_calls_change_nothing)
{
    char *waiter, *got;
    const char *p[1];

    start_master();
    waiter = start_approval("x");
    p[0] = waiter;

    exec_cmd("BEGIN");
    PQclear(exec_ok("SELECT {S}.start_run('say-hi', '{\"name\":\"Ada\"}')", 0, NULL));
    PQclear(exec_ok("SELECT * FROM {S}.send_event('user.signup', '{\"name\":\"Bo\"}')", 0, NULL));
    got = scalar("SELECT {S}.send_signal('approval-x', '{\"approved\":true,\"by\":\"sql\"}')", 0,
                 NULL);
    cr_expect(got != NULL && strcmp(got, waiter) == 0, "inside the transaction the waiter gets it");
    free(got);
    exec_cmd("ROLLBACK");

    /* Workers poll every 20 ms: give them ample time to do something wrong. */
    sleep_ms(500);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs WHERE run_id <> $1::uuid", 1, p), 0,
                 "a rolled back start or event left a run");
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.event_queue", 0, NULL), 0);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.exec_queue WHERE run_id <> $1::uuid", 1, p), 0);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs WHERE run_id = $1::uuid"
                          " AND status = 'pending'",
                          1, p),
                 1, "the rolled back signal reached the waiter");
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.waiting_signals WHERE run_id = $1::uuid", 1, p),
                 1);
    free(waiter);
    stop_master();
    expect_clean_master_log();
}

Test(sqlapi, master_runs_what_a_committed_transaction_started)
{
    PGresult *res;
    char *say_hi, *event_id, *welcome, *json, *out, *cli_out;
    const char *status, *cli_args[] = {"invoke",    "say-hi", "--data", "{\"name\":\"Ada\"}",
                                       "--timeout", "20000",  NULL};
    char err[512];
    int code;
    sk_client_t *cl;
    json_t *run, *input;

    start_master();
    exec_cmd("BEGIN");
    say_hi = scalar("SELECT {S}.start_run('say-hi', '{\"name\":\"Ada\"}')", 0, NULL);
    res = exec_ok("SELECT event_id::text, run_id::text"
                  " FROM {S}.send_event('user.signup', '{\"name\":\"Bo\"}')",
                  0, NULL);
    cr_assert_eq(PQntuples(res), 1, "only welcome listens to user.signup");
    event_id = strdup(PQgetvalue(res, 0, 0));
    welcome = strdup(PQgetvalue(res, 0, 1));
    PQclear(res);
    exec_cmd("COMMIT");

    /* The same output shape as `stepkit invoke` gives. */
    out = wait_output(say_hi, &status);
    cr_expect_str_eq(status, "completed", "%s", out);
    cli_out = run_cli(&code, cli_args);
    cr_expect_eq(code, 0, "stepkit invoke: %s", cli_out);
    cli_out[strcspn(cli_out, "\n")] = '\0';
    cr_expect(strncmp(out, "\"Hello Ada! Your random number is ", 33) == 0, "%s", out);
    shape(out);
    shape(cli_out);
    cr_expect_str_eq(out, cli_out);
    free(out);
    free(cli_out);

    expect_output(welcome, "\"Welcome, Bo!\"");
    cl = sk_client_connect(env_or_fail("POSTGRES_TEST_URL"), schema, err, sizeof(err));
    cr_assert_not_null(cl, "%s", err);
    json = sk_client_run_json(cl, welcome, err, sizeof(err));
    cr_assert_not_null(json, "%s", err);
    run = json_loads(json, 0, NULL);
    cr_assert_not_null(run, "%s", json);
    input = json_object_get(run, "input");
    cr_expect_str_eq(json_string_value(json_object_get(run, "workflow")), "welcome");
    cr_expect_str_eq(json_string_value(json_object_get(input, "type")), "event");
    cr_expect_str_eq(json_string_value(json_object_get(input, "name")), "user.signup");
    cr_expect_str_eq(json_string_value(json_object_get(input, "id")), event_id);
    json_decref(run);
    free(json);
    sk_client_close(cl);
    free(say_hi);
    free(event_id);
    free(welcome);
    stop_master();
    expect_clean_master_log();
}

Test(sqlapi, master_signal_sent_from_sql_resumes_the_waiter)
{
    char *waiter, *got;

    start_master();
    waiter = start_approval("x");
    exec_cmd("BEGIN");
    got = scalar("SELECT {S}.send_signal('approval-x', '{\"approved\":true,\"by\":\"sql\"}')", 0,
                 NULL);
    exec_cmd("COMMIT");
    cr_assert_not_null(got, "send_signal found no waiter");
    cr_expect_str_eq(got, waiter, "send_signal returns the receiving run");
    expect_output(waiter, "{\"status\":\"approved\",\"by\":\"sql\"}");
    /* Nobody waits any more: the next signal is dropped. */
    cr_expect_null(scalar("SELECT {S}.send_signal('approval-x', '{}')", 0, NULL));
    free(got);
    free(waiter);
    stop_master();
    expect_clean_master_log();
}

Test(sqlapi, master_cli_send_starts_listeners_once_per_id)
{
    const char *send1[] = {"send", "user.signup", "--data", "{\"name\":\"Cy\"}", NULL};
    char *out, *lines[8], *again_out;
    const char *p[1];
    char eid[SK_UUID_LEN];
    int code, n;

    start_master();
    out = run_cli(&code, send1);
    cr_assert_eq(code, 0, "stepkit send: %s", out);
    n = lines_of(out, lines, 8);
    cr_assert_eq(n, 2, "want the event id and one run id (welcome), got %d lines", n);
    cr_expect(is_uuid(lines[0]) && is_uuid(lines[1]), "%s / %s", lines[0], lines[1]);
    expect_output(lines[1], "\"Welcome, Cy!\"");
    p[0] = lines[0];
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs WHERE event_id = $1::uuid"
                          " AND workflow_id = 'welcome' AND trigger_type = 'event'",
                          1, p),
                 1);

    /* Sending the same id again starts nothing: the event id alone. */
    snprintf(eid, sizeof(eid), "%s", lines[0]);
    {
        const char *again[] = {"send", "user.signup", "--data", "{\"name\":\"Cy\"}",
                               "--id", eid,           NULL};
        again_out = run_cli(&code, again);
        cr_expect_eq(code, 0);
        n = lines_of(again_out, lines, 8);
        cr_expect_eq(n, 1, "a repeated event id started a run");
        cr_expect_str_eq(lines[0], eid);
        free(again_out);
    }
    p[0] = eid;
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs WHERE event_id = $1::uuid", 1, p), 1);

    /* A fresh id of the caller's choosing works the first time. */
    {
        static const char mine[] = "0f8fad5b-d9cb-469f-a165-70867728950e";
        const char *with_id[] = {"send", "user.signup", "--id", mine, NULL};
        char *o = run_cli(&code, with_id);
        cr_expect_eq(code, 0);
        n = lines_of(o, lines, 8);
        cr_assert_eq(n, 2, "%d lines", n);
        cr_expect_str_eq(lines[0], mine);
        expect_output(lines[1], "\"Welcome, friend!\"");
        free(o);
    }
    free(out);
    stop_master();
    expect_clean_master_log();
}

/* The ```sql block that follows `marker` in docs/sql-api.md (malloc'd). */
static char *docs_block(const char *marker)
{
    const char *paths[2] = {"docs/sql-api.md", NULL};
    char alt[600], *text = NULL, *start, *end, *block;
    FILE *f = NULL;
    long size;

    snprintf(alt, sizeof(alt), "%s/../docs/sql-api.md", env_or_fail("STEPKIT_BUILD"));
    paths[1] = alt;
    for (int i = 0; i < 2 && f == NULL; i++)
        f = fopen(paths[i], "r");
    cr_assert_not_null(f, "docs/sql-api.md not found (cwd or $STEPKIT_BUILD/..)");
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    rewind(f);
    text = malloc((size_t)size + 1);
    cr_assert_not_null(text);
    cr_assert_eq(fread(text, 1, (size_t)size, f), (size_t)size);
    text[size] = '\0';
    fclose(f);
    start = strstr(text, marker);
    cr_assert_not_null(start, "docs/sql-api.md lacks %s", marker);
    start = strstr(start, "```sql\n");
    cr_assert_not_null(start);
    start += 7;
    end = strstr(start, "```");
    cr_assert_not_null(end);
    block = strndup(start, (size_t)(end - start));
    free(text);
    return block;
}

/* Every "stepkit." in text becomes "{S}." (malloc'd). */
static char *to_test_schema(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1), *o = out;

    cr_assert_not_null(out);
    for (const char *p = text; *p != '\0';) {
        if (strncmp(p, "stepkit.", 8) == 0) {
            memcpy(o, "{S}.", 4);
            o += 4;
            p += 8;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

Test(sqlapi, master_docs_trigger_example_starts_a_run_per_row)
{
    char *block, *setup_sql, *insert_sql, *qapp, sql[256];
    PGresult *res;
    char *run_id;

    start_master();
    /* The application's table lives in its own schema, first on the path. */
    qapp = PQescapeIdentifier(db, app_schema, strlen(app_schema));
    cr_assert_not_null(qapp);
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s; SET search_path = %s", qapp, qapp);
    PQfreemem(qapp);
    exec_script(sql);

    block = docs_block("<!-- example: trigger setup -->");
    setup_sql = to_test_schema(block);
    free(block);
    block = docs_block("<!-- example: trigger use -->");
    insert_sql = to_test_schema(block);
    free(block);
    exec_script(setup_sql);
    res = exec_ok(insert_sql, 0, NULL);
    PQclear(res);
    run_id = scalar("SELECT run_id::text FROM {S}.runs WHERE workflow_id = 'welcome'", 0, NULL);
    cr_assert_not_null(run_id, "the insert started no welcome run");
    expect_output(run_id, "\"Welcome, Ada!\"");

    /* A rolled back insert starts nothing. */
    exec_cmd("BEGIN");
    PQclear(exec_ok(insert_sql, 0, NULL));
    exec_cmd("ROLLBACK");
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.runs", 0, NULL), 1);
    free(run_id);
    free(setup_sql);
    free(insert_sql);
    stop_master();
    expect_clean_master_log();
}

/* Notices of a session, kept: auto_explain's plans, at level notice. */
static char plans[32768];

static void keep_notice(void *arg, const char *message)
{
    size_t used = strlen(plans);

    (void)arg;
    snprintf(plans + used, sizeof(plans) - used, "%s", message);
}

/* batch_fence extends leases through the primary key, and the claim reads
 * ready items in index order, even when the statistics say the queue is
 * empty while its ready index still holds a large DELETE's dead entries (a
 * VACUUM ANALYZE while a snapshot kept them): what made a burst after W4's
 * backlog drain at a few runs a second (sql/016, worker/sk_wconn.c). */
Test(sqlapi, fence_and_claim_find_items_by_key_whatever_the_statistics)
{
    PGconn *hold;
    PGresult *r;
    const char *update;
    char items[256];
    const char *params[1] = {items};

    exec_script("ALTER TABLE {S}.exec_queue SET (autovacuum_enabled = off);"
                "INSERT INTO {S}.exec_queue (run_id, workflow_id, visible_at)"
                " SELECT gen_random_uuid(), 'gone', now() + (i % 2) * interval '1 day'"
                "                                   - interval '1 minute'"
                "   FROM generate_series(1, 100000) i;"
                "ANALYZE {S}.exec_queue");
    /* The backlog goes while another session's snapshot keeps its rows, so
     * the VACUUM after it removes nothing and says the queue is empty. */
    hold = connect_db();
    PQclear(PQexec(hold, "BEGIN ISOLATION LEVEL REPEATABLE READ"));
    PQclear(PQexec(hold, "SELECT 1"));
    exec_cmd("DELETE FROM {S}.exec_queue");
    exec_cmd("VACUUM ANALYZE {S}.exec_queue");
    PQclear(PQexec(hold, "COMMIT"));
    PQfinish(hold);
    cr_expect_eq(
        count_of("SELECT reltuples::int8 FROM pg_class WHERE oid = '{S}.exec_queue'::regclass", 0,
                 NULL),
        0, "the statistics say the queue is empty");
    exec_cmd("INSERT INTO {S}.exec_queue (run_id, workflow_id, visible_at, epoch, leased)"
             " SELECT gen_random_uuid(), 'w-f', now() + interval '1 second', 1, true"
             "   FROM generate_series(1, 4)");
    r = exec_ok("SELECT string_agg(item_id::text, ',' ORDER BY item_id) FROM {S}.exec_queue"
                " WHERE workflow_id = 'w-f'",
                0, NULL);
    snprintf(items, sizeof(items), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    /* Each statement's plan, inside the function too, as a notice. */
    plans[0] = '\0';
    PQsetNoticeProcessor(db, keep_notice, NULL);
    exec_script("LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0;"
                "SET auto_explain.log_nested_statements = on;"
                "SET auto_explain.log_level = notice; SET client_min_messages = notice");
    cr_expect_eq(count_of("SELECT {S}.batch_fence(string_to_array($1, ',')::int8[],"
                          " '{1,1,1,1}', 30000)",
                          1, params),
                 4, "the four leases (1 s left of 30) are extended");
    exec_script("SET auto_explain.log_min_duration = -1; SET client_min_messages = warning");
    PQsetNoticeProcessor(db, NULL, NULL);
    update = strstr(plans, "Update on exec_queue");
    cr_assert_not_null(update, "no plan of batch_fence's UPDATE among the notices:\n%s", plans);
    cr_expect_null(strstr(update, "exec_queue_ready"),
                   "batch_fence's UPDATE reads exec_queue_ready (the whole index):\n%s", update);
    cr_expect_not_null(strstr(update, "exec_queue_pkey"), "%s", update);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.exec_queue WHERE workflow_id = 'w-f'"
                          " AND visible_at > now() + interval '29 seconds'",
                          0, NULL),
                 4);
    /* A lease with more than half left is not rewritten. */
    cr_expect_eq(count_of("SELECT {S}.batch_fence(string_to_array($1, ',')::int8[],"
                          " '{1,1,1,1}', 30000)",
                          1, params),
                 0);

    /* The claim, with the planner settings of a worker's session
     * (SK_PG_KEYED_SETTINGS), still reads the ready items in index order and
     * stops at the first: no bitmap of all of them, then a sort. */
    exec_cmd("INSERT INTO {S}.exec_queue (run_id, workflow_id, visible_at)"
             " SELECT gen_random_uuid(), 'w-c', now() - interval '1 second'"
             "   FROM generate_series(1, 300)");
    plans[0] = '\0';
    PQsetNoticeProcessor(db, keep_notice, NULL);
    PQclear(exec_ok("SELECT " SK_PG_KEYED_SETTINGS, 0, NULL));
    exec_script("SET auto_explain.log_min_duration = 0; SET client_min_messages = notice");
    PQclear(exec_ok("SELECT * FROM {S}.claim(30000, 'test', '{w-c}')", 0, NULL));
    exec_script("SET auto_explain.log_min_duration = -1; SET client_min_messages = warning;"
                "RESET enable_seqscan; RESET enable_bitmapscan; RESET jit");
    PQsetNoticeProcessor(db, NULL, NULL);
    cr_assert_not_null(strstr(plans, "LockRows"), "no plan of the claim's lookup:\n%s", plans);
    cr_expect_null(strstr(plans, "Bitmap Heap Scan on exec_queue"),
                   "the claim read the ready items through a bitmap:\n%s", plans);
    cr_expect_eq(count_of("SELECT count(*) FROM {S}.exec_queue WHERE workflow_id = 'w-c'"
                          " AND leased",
                          0, NULL),
                 1, "one item claimed");
}
