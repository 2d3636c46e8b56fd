/*
 * The dashboard's pure rules (master/sk_ui_rules.c): who may POST, how
 * payloads are cut, the queue history ring.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "../../master/sk_ui.h"

#define TOK "0123456789abcdef-token"

static sk_ui_post_in_t page_post(void)
{
    sk_ui_post_in_t in = {
        .host = "127.0.0.1:9464",
        .origin = "http://127.0.0.1:9464",
        .sec_fetch_site = "same-origin",
        .content_type = "application/json",
        .authorization = "Bearer " TOK,
    };
    return in;
}

static unsigned check(const sk_ui_post_in_t *in, const char *token)
{
    char reason[200];

    return sk_ui_post_check(in, token, reason, sizeof(reason));
}

Test(ui_rules, the_page_post_is_allowed)
{
    sk_ui_post_in_t in = page_post();

    cr_assert_eq(check(&in, TOK), 0);
    /* curl and scripts send neither Origin nor Sec-Fetch-Site. */
    in.origin = NULL;
    in.sec_fetch_site = NULL;
    cr_assert_eq(check(&in, TOK), 0);
    in.content_type = "application/json; charset=utf-8";
    cr_assert_eq(check(&in, TOK), 0);
    in.origin = "https://127.0.0.1:9464"; /* behind a TLS proxy */
    cr_assert_eq(check(&in, TOK), 0);
}

Test(ui_rules, read_only_without_a_token)
{
    sk_ui_post_in_t in = page_post();
    char reason[200];

    cr_assert_eq(sk_ui_post_check(&in, "", reason, sizeof(reason)), 403);
    cr_assert(strstr(reason, "read-only") != NULL, "%s", reason);
}

Test(ui_rules, cross_site_requests_are_refused)
{
    sk_ui_post_in_t in = page_post();

    in.sec_fetch_site = "cross-site";
    cr_assert_eq(check(&in, TOK), 403);
    in.sec_fetch_site = "same-site";
    cr_assert_eq(check(&in, TOK), 403);
    in = page_post();
    in.origin = "http://evil.example";
    cr_assert_eq(check(&in, TOK), 403);
    in.origin = "null";
    cr_assert_eq(check(&in, TOK), 403);
    in.origin = "http://127.0.0.1:9465";
    cr_assert_eq(check(&in, TOK), 403);
    in = page_post();
    in.host = NULL;
    cr_assert_eq(check(&in, TOK), 400);
}

Test(ui_rules, only_json_bodies)
{
    sk_ui_post_in_t in = page_post();

    in.content_type = "application/x-www-form-urlencoded";
    cr_assert_eq(check(&in, TOK), 415);
    in.content_type = "text/plain";
    cr_assert_eq(check(&in, TOK), 415);
    in.content_type = NULL;
    cr_assert_eq(check(&in, TOK), 415);
}

Test(ui_rules, the_exact_token_is_required)
{
    sk_ui_post_in_t in = page_post();

    in.authorization = NULL;
    cr_assert_eq(check(&in, TOK), 401);
    in.authorization = "Bearer 0123456789abcdef-toke";
    cr_assert_eq(check(&in, TOK), 401);
    in.authorization = "Bearer " TOK "n";
    cr_assert_eq(check(&in, TOK), 401);
    in.authorization = "Basic " TOK;
    cr_assert_eq(check(&in, TOK), 401);
    in.authorization = "bearer " TOK; /* the scheme is case-insensitive */
    cr_assert_eq(check(&in, TOK), 0);
}

static json_t *run_with_output(size_t n)
{
    char *s = malloc(n + 1);
    json_t *run = json_object(), *input = json_object(), *steps = json_array();

    memset(s, 'y', n);
    s[n] = '\0';
    json_object_set_new(input, "data", json_string("small"));
    json_object_set_new(run, "input", input);
    json_object_set_new(run, "output", json_string(s));
    json_object_set_new(run, "error", json_null());
    for (int i = 0; i < 10; i++) {
        json_t *st = json_object();
        json_object_set_new(st, "step_id", json_integer(i));
        json_object_set_new(st, "output", json_string(i == 3 ? s : "ok"));
        json_array_append_new(steps, st);
    }
    json_object_set_new(run, "steps", steps);
    free(s);
    return run;
}

Test(ui_rules, large_payloads_become_a_marker)
{
    json_t *run = run_with_output(5000), *mark;

    sk_ui_limit_run(run, 4096, 100);
    mark = json_object_get(json_object_get(run, "output"), "_truncated");
    cr_assert_not_null(mark);
    cr_assert_eq(json_integer_value(json_object_get(mark, "bytes")), 5002); /* with the quotes */
    cr_assert_eq(strlen(json_string_value(json_object_get(mark, "preview"))), 1000);
    cr_assert_not_null(json_object_get(
        json_object_get(json_array_get(json_object_get(run, "steps"), 3), "output"), "_truncated"));
    cr_assert_str_eq(json_string_value(json_object_get(
                         json_array_get(json_object_get(run, "steps"), 2), "output")),
                     "ok");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(run, "input"), "data")),
                     "small");
    cr_assert(json_is_null(json_object_get(run, "error")));
    cr_assert_null(json_object_get(run, "steps_omitted"));
    json_decref(run);
}

Test(ui_rules, small_payloads_stay_and_steps_are_capped)
{
    json_t *run = run_with_output(100);

    sk_ui_limit_run(run, 4096, 4);
    cr_assert(json_is_string(json_object_get(run, "output")));
    cr_assert_eq(json_array_size(json_object_get(run, "steps")), 4);
    cr_assert_eq(json_integer_value(json_object_get(run, "steps_omitted")), 6);
    json_decref(run);
}

Test(ui_rules, a_preview_never_splits_a_character)
{
    /* 999 ASCII bytes then "é" (2 bytes): a cut at 1000 would split it. */
    char s[1200];
    json_t *run = json_object(), *mark;
    const char *p;

    memset(s, 'a', 998); /* with the opening quote: 999 bytes */
    strcpy(s + 998, "\xc3\xa9 and more text after it to pass the limit");
    json_object_set_new(run, "output", json_string(s));
    sk_ui_limit_run(run, 100, 10);
    mark = json_object_get(json_object_get(run, "output"), "_truncated");
    p = json_string_value(json_object_get(mark, "preview"));
    cr_assert_not_null(p, "the preview is valid UTF-8");
    cr_assert_eq(strlen(p), 999);
    json_decref(run);
}

static const char *known(size_t i)
{
    static const char *const names[] = {"idle-wf", NULL};
    return names[i];
}

Test(ui_rules, history_keeps_the_last_points_in_order)
{
    static sk_ui_hist_t h;
    sk_ui_point_t p = {"busy", 0, 0};
    json_t *j, *t, *series;
    int64_t t0 = 1700000000000LL;

    memset(&h, 0, sizeof(h));
    for (int i = 0; i < SK_UI_HIST_POINTS + 5; i++) {
        p.ready = i;
        p.oldest_s = i / 2.0;
        sk_ui_hist_add(&h, t0 + (int64_t)i * 5000, &p, 1, known);
    }
    j = sk_ui_hist_json(&h);
    t = json_object_get(j, "t");
    series = json_object_get(j, "series");
    cr_assert_eq(json_array_size(t), SK_UI_HIST_POINTS);
    cr_assert_eq(json_array_size(series), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(series, 0), "workflow")),
                     "idle-wf");
    /* Oldest first: the 5 first points were overwritten. */
    cr_assert_eq(
        json_integer_value(json_array_get(json_object_get(json_array_get(series, 1), "ready"), 0)),
        5);
    cr_assert_eq(json_integer_value(json_array_get(
                     json_object_get(json_array_get(series, 1), "ready"), SK_UI_HIST_POINTS - 1)),
                 SK_UI_HIST_POINTS + 4);
    cr_assert_eq(
        json_integer_value(json_array_get(json_object_get(json_array_get(series, 0), "ready"), 10)),
        0);
    cr_assert_float_eq(json_real_value(json_array_get(t, 0)), (double)(t0 + 25000) / 1000.0, 1e-3);
    json_decref(j);
}

Test(ui_rules, history_shows_only_the_last_hour_and_bounded_workflows)
{
    static sk_ui_hist_t h;
    sk_ui_point_t pts[SK_UI_HIST_WF + 5];
    char names[SK_UI_HIST_WF + 5][16];
    json_t *j;
    int64_t t0 = 1700000000000LL;

    memset(&h, 0, sizeof(h));
    for (int i = 0; i < SK_UI_HIST_WF + 5; i++) {
        snprintf(names[i], sizeof(names[i]), "wf-%d", i);
        pts[i] = (sk_ui_point_t){names[i], i, 1.0};
    }
    sk_ui_hist_add(&h, t0, pts, SK_UI_HIST_WF + 5, NULL);
    sk_ui_hist_add(&h, t0 + 2 * 3600000LL, pts, 1, NULL); /* two hours later */
    j = sk_ui_hist_json(&h);
    cr_assert_eq(json_array_size(json_object_get(j, "t")), 1, "the older point is out of the hour");
    cr_assert_eq(json_array_size(json_object_get(j, "series")), SK_UI_HIST_WF);
    json_decref(j);
}

static unsigned host(const char *h, const char *allowed)
{
    char reason[200];

    return sk_ui_host_check(h, allowed, reason, sizeof(reason));
}

Test(ui_rules, ip_literals_and_localhost_are_always_answered)
{
    cr_assert_eq(host("127.0.0.1:9464", ""), 0);
    cr_assert_eq(host("10.1.2.3", ""), 0);
    cr_assert_eq(host("[::1]:9464", ""), 0);
    cr_assert_eq(host("[fe80::1]", ""), 0);
    cr_assert_eq(host("localhost:9464", ""), 0);
    cr_assert_eq(host("LOCALHOST.", ""), 0);
}

Test(ui_rules, other_names_only_when_allowed)
{
    char reason[200];

    /* DNS rebinding: a name the attacker controls resolves to us. */
    cr_assert_eq(sk_ui_host_check("evil.example:9464", "", reason, sizeof(reason)), 403);
    cr_assert(strstr(reason, "evil.example") != NULL && strstr(reason, "--ui-allowed-hosts"),
              "%s", reason);
    cr_assert_eq(host("stepkit.internal:80", "a.example,stepkit.internal"), 0);
    cr_assert_eq(host("STEPKIT.internal.", "stepkit.internal"), 0);
    cr_assert_eq(host("a.example", "a.example,stepkit.internal"), 0);
    /* Whole names only: no prefix, suffix or substring matches. */
    cr_assert_eq(host("stepkit.internal.evil.example", "stepkit.internal"), 403);
    cr_assert_eq(host("a.exampl", "a.example"), 403);
    cr_assert_eq(host("xa.example", "a.example"), 403);
    cr_assert_eq(host("anything.example", "*"), 0);
}

Test(ui_rules, a_missing_or_malformed_host_is_refused)
{
    cr_assert_eq(host(NULL, "*"), 400);
    cr_assert_eq(host("", "*"), 400);
    cr_assert_eq(host("[::1", ""), 403);
    cr_assert_eq(host("[]:80", ""), 403);
}
