/*
 * sk_logjson and sk_log's JSON mode: every line is one JSON object with the
 * header fields and the event's pairs, typed, whatever the values hold.
 */
#include <criterion/criterion.h>

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sk_log.h"
#include "sk_logjson.h"

static char line[4096];

/* Format `body` as a worker of slot 3 and parse the result back. */
static json_t *as_json(const char *body, int slot)
{
    json_error_t jerr;
    json_t *obj;
    int n;

    n = sk_logjson_format(line, sizeof(line), "2026-12-02T01:02:03.456Z", "info", "worker", 42,
                          slot, body);
    cr_assert_gt(n, 0, "body: %s", body);
    cr_assert_eq((size_t)n, strlen(line));
    cr_assert_eq(line[n - 1], '\n', "one line, newline-terminated");
    cr_assert_null(memchr(line, '\n', (size_t)n - 1), "no newline inside: %s", line);
    obj = json_loads(line, 0, &jerr);
    cr_assert_not_null(obj, "not JSON (%s): %s", jerr.text, line);
    return obj;
}

static const char *str(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_string(v), "%s is not a string in %s", key, line);
    return json_string_value(v);
}

static long long num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert(json_is_integer(v), "%s is not an integer in %s", key, line);
    return json_integer_value(v);
}

Test(logjson, header_fields_and_typed_pairs)
{
    json_t *o = as_json("event=step_done run=0193a1b2-0000-7000-8000-000000000001 "
                        "workflow=orders step=charge attempt=2 duration_ms=17",
                        3);

    cr_assert_str_eq(str(o, "ts"), "2026-12-02T01:02:03.456Z");
    cr_assert_str_eq(str(o, "level"), "info");
    cr_assert_str_eq(str(o, "role"), "worker");
    cr_assert_eq(num(o, "pid"), 42);
    cr_assert_eq(num(o, "worker"), 3);
    cr_assert_str_eq(str(o, "event"), "step_done");
    cr_assert_str_eq(str(o, "run_id"), "0193a1b2-0000-7000-8000-000000000001");
    cr_assert_null(json_object_get(o, "run"), "run is renamed run_id");
    cr_assert_str_eq(str(o, "workflow"), "orders");
    cr_assert_str_eq(str(o, "step"), "charge");
    cr_assert_eq(num(o, "attempt"), 2);
    cr_assert_eq(num(o, "duration_ms"), 17);
    cr_assert_null(json_object_get(o, "msg"));
    /* the header comes first, in this order */
    cr_assert_eq(strncmp(line, "{\"ts\":", 6), 0, "%s", line);
    json_decref(o);
}

Test(logjson, no_worker_field_outside_workers)
{
    json_t *o = as_json("event=state from=starting to=run", -1);

    cr_assert_null(json_object_get(o, "worker"));
    cr_assert_str_eq(str(o, "from"), "starting");
    json_decref(o);
}

Test(logjson, quoted_values_keep_spaces_quotes_and_equals)
{
    json_t *o = as_json("event=step_failed error=\"duplicate key value violates \"orders_pkey\" "
                        "detail: a=b\" attempt=1 url=\"postgresql://u:***@db/app\"",
                        0);

    cr_assert_str_eq(str(o, "error"), "duplicate key value violates \"orders_pkey\" detail: a=b");
    cr_assert_eq(num(o, "attempt"), 1);
    cr_assert_str_eq(str(o, "url"), "postgresql://u:***@db/app");
    json_decref(o);
}

Test(logjson, header_keys_in_the_body_do_not_overwrite_the_header)
{
    json_t *o = as_json("event=worker_start slot=2 pid=777 level=high", -1);

    cr_assert_eq(num(o, "pid"), 42);
    cr_assert_eq(num(o, "arg_pid"), 777);
    cr_assert_str_eq(str(o, "level"), "info");
    cr_assert_str_eq(str(o, "arg_level"), "high");
    cr_assert_eq(num(o, "slot"), 2);
    json_decref(o);
}

Test(logjson, free_text_goes_to_msg)
{
    json_t *o = as_json("hello world event=x", -1);

    cr_assert_str_eq(str(o, "msg"), "hello world");
    cr_assert_str_eq(str(o, "event"), "x");
    json_decref(o);
}

Test(logjson, numbers_that_are_not_plain_integers_stay_strings)
{
    json_t *o = as_json("a=007 b=-5 c=1.5 d=99999999999999999999999 e= f=-", -1);

    cr_assert_str_eq(str(o, "a"), "007");
    cr_assert_eq(num(o, "b"), -5);
    cr_assert_str_eq(str(o, "c"), "1.5");
    cr_assert_str_eq(str(o, "d"), "99999999999999999999999");
    cr_assert_str_eq(str(o, "e"), "");
    cr_assert_str_eq(str(o, "f"), "-");
    json_decref(o);
}

Test(logjson, invalid_utf8_and_control_bytes_are_escaped)
{
    json_t *o = as_json("event=bad payload=\"\xff\xfe tab\there\" x=\"unterminated", -1);

    cr_assert_str_eq(str(o, "payload"), "?? tab\there");
    cr_assert_str_eq(str(o, "x"), "unterminated");
    json_decref(o);
}

Test(logjson, too_small_a_buffer_is_refused)
{
    char small[16];

    cr_assert_eq(sk_logjson_format(small, sizeof(small), "t", "info", "master", 1, -1,
                                   "event=a_rather_long_event_name"),
                 -1);
}

/* sk_log_write itself in JSON mode: stderr redirected to a pipe, one JSON line read back. */
Test(logjson, sk_log_writes_json_lines)
{
    int fds[2], saved;
    ssize_t n;
    json_error_t jerr;
    json_t *o;

    cr_assert_eq(pipe(fds), 0);
    saved = dup(STDERR_FILENO);
    cr_assert_eq(dup2(fds[1], STDERR_FILENO), STDERR_FILENO);
    sk_log_format = SK_LOG_JSON;
    sk_log_set_role("worker", 5);
    sk_log_info("event=claimed run=%s workflow=%s item=%d note=\"two\nlines\"", "r-1", "wf", 9);
    sk_log_format = SK_LOG_LOGFMT;
    dup2(saved, STDERR_FILENO);
    close(fds[1]);
    n = read(fds[0], line, sizeof(line) - 1);
    cr_assert_gt(n, 0);
    line[n] = '\0';
    cr_assert_eq(line[n - 1], '\n');
    cr_assert_null(memchr(line, '\n', (size_t)n - 1), "one line: %s", line);
    o = json_loads(line, 0, &jerr);
    cr_assert_not_null(o, "%s: %s", jerr.text, line);
    cr_assert_str_eq(str(o, "level"), "info");
    cr_assert_str_eq(str(o, "role"), "worker");
    cr_assert_eq(num(o, "pid"), getpid());
    cr_assert_eq(num(o, "worker"), 5);
    cr_assert_str_eq(str(o, "event"), "claimed");
    cr_assert_str_eq(str(o, "run_id"), "r-1");
    cr_assert_eq(num(o, "item"), 9);
    cr_assert_str_eq(str(o, "note"), "two lines");
    /* ts: ISO 8601 UTC with milliseconds */
    cr_assert_eq(strlen(str(o, "ts")), 24, "%s", str(o, "ts"));
    cr_assert_eq(str(o, "ts")[23], 'Z');
    json_decref(o);
    close(fds[0]);
}

Test(logjson, parse_format)
{
    cr_assert_eq(sk_log_parse_format("logfmt"), SK_LOG_LOGFMT);
    cr_assert_eq(sk_log_parse_format("json"), SK_LOG_JSON);
    cr_assert_eq(sk_log_parse_format("JSON"), -1);
}
