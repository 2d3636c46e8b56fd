/*
 * Helpers shared by the step-model suites (test_steps*.c), on top of the
 * itest harness.  Their workflows are in tests/workflows/stepwf.c.
 */
#ifndef TEST_STEPS_H
#define TEST_STEPS_H

#include <criterion/criterion.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "itest.h"

/* Counts of one run (tests/workflows/stepwf.c writes them). */
#define COUNT(run, key) itest_count(itest.counts, (run), (key))

static inline int64_t st_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t st_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void st_nap(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (ms > 0 && nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Sleep until the wall clock reads unix_ms (nothing if it is past). */
static inline void st_sleep_until(int64_t unix_ms)
{
    int64_t left = unix_ms - st_wall_ms();

    if (left > 0)
        st_nap((long)left);
}

/* Two masters with two workers each on this test's schema, both ready. */
static inline void st_two_masters(void)
{
    itest_master_t *m1 = itest_master_start(NULL), *m2 = itest_master_start(NULL);

    itest_master_wait_ready(m1, itest_test_workflows);
    itest_master_wait_ready(m2, itest_test_workflows);
}

/* Wait (max timeout_ms) for the run's end and assert it ended. */
static inline void st_wait(const char *run_id, int timeout_ms, sk_run_result_t *res)
{
    char err[512];
    int rc = sk_client_wait(itest.client, run_id, timeout_ms, res, err, sizeof(err));

    cr_assert_neq(rc, SK_AGAIN, "run %s did not end within %d ms", run_id, timeout_ms);
    cr_assert_eq(rc, SK_OK, "wait for %s: %s", run_id, err);
}

/* The run's output as compact JSON (malloc'd); asserts it completed. */
static inline char *st_output(const sk_run_result_t *res)
{
    cr_assert_str_eq(res->status, "completed", "run %s", res->run_id);
    cr_assert_not_null(res->output, "run %s has no output", res->run_id);
    return itest_json(res->output, res->output_len);
}

static inline void st_expect_output(const sk_run_result_t *res, const char *json)
{
    char *out = st_output(res);

    cr_expect_str_eq(out, json, "output of run %s", res->run_id);
    free(out);
}

/* The run's error, parsed (caller decrefs); asserts it failed. */
static inline json_t *st_error(const sk_run_result_t *res)
{
    char *text;
    json_t *e;

    cr_assert_str_eq(res->status, "failed", "run %s", res->run_id);
    cr_assert_not_null(res->error, "run %s has no error", res->run_id);
    text = itest_json(res->error, res->error_len);
    e = itest_parse(text);
    free(text);
    return e;
}

/* Milliseconds from the run's start (runs.created_at, the client's insert)
 * to its end, on the server's clock. */
static inline long st_run_ms(const char *run_id)
{
    return itest_long("SELECT (extract(epoch FROM ended_at - created_at) * 1000)::int8"
                      "  FROM runs WHERE run_id = $1::uuid",
                      run_id);
}

/* Wait (max timeout_ms) until the run is suspended: an op of `kind` is
 * waiting and no worker holds the run's item any more. */
static inline void st_wait_suspended(const char *run_id, const char *kind, int timeout_ms)
{
    int64_t deadline = st_mono_ms() + timeout_ms;

    for (;;) {
        long n =
            itest_long("SELECT count(*) FROM ops o"
                       " WHERE o.run_id = $1::uuid AND o.kind = $2 AND o.status = 'waiting'"
                       "   AND NOT EXISTS (SELECT 1 FROM exec_queue q WHERE q.run_id = o.run_id"
                       "                      AND q.op_key IS NULL AND q.leased)",
                       run_id, kind);
        if (n > 0)
            return;
        cr_assert_lt(st_mono_ms(), deadline, "run %s not suspended on a %s op after %d ms", run_id,
                     kind, timeout_ms);
        st_nap(5);
    }
}

/* The run that `parent` started (runs.parent_run_id); asserts there is one. */
static inline void st_child_of(const char *parent, char child[SK_UUID_LEN])
{
    char *id = itest_str("SELECT run_id::text FROM runs WHERE parent_run_id = $1::uuid", parent);

    cr_assert_not_null(id, "run %s started no child", parent);
    snprintf(child, SK_UUID_LEN, "%s", id);
    free(id);
}

/* Send `signal` through the client API with JSON data (NULL: nil); the
 * receiver's run id goes to `to` ("" when nobody waited). */
static inline void st_signal(const char *signal, const char *json, char to[SK_UUID_LEN])
{
    msgpack_sbuffer buf;
    char err[512];
    int rc;

    msgpack_sbuffer_init(&buf);
    if (json != NULL)
        itest_pack_json(json, &buf);
    rc = sk_client_signal(itest.client, signal, buf.data, buf.size, to, err, sizeof(err));
    msgpack_sbuffer_destroy(&buf);
    cr_assert_eq(rc, SK_OK, "signal %s: %s", signal, err);
}

/* A signal name private to this test. */
static inline void st_signal_name(const char *what, int i, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s-%s-%d", itest.schema, what, i);
}

/* Ops of the run with this status (NULL: any). */
static inline long st_ops(const char *run_id, const char *status)
{
    if (status == NULL)
        return itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid", run_id);
    return itest_long("SELECT count(*) FROM ops WHERE run_id = $1::uuid AND status = $2", run_id,
                      status);
}

#endif
