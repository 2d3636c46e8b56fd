#include <criterion/criterion.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sk_json.h"
#include "stepkit.h"

/* JSON text -> msgpack -> checked -> JSON text, with every step asserted. */
static char *roundtrip_n(const char *json, size_t len)
{
    msgpack_sbuffer sb;
    char err[256] = "";
    char *out;

    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sk_json_to_msgpack(json, len, &sb, err, sizeof(err)), SK_OK, "%s: %s", json, err);
    cr_assert_eq(sk_msgpack_check(sb.data, sb.size, err, sizeof(err)), SK_OK, "%s: %s", json, err);
    out = sk_msgpack_bytes_to_json(sb.data, sb.size, err, sizeof(err));
    cr_assert_not_null(out, "%s: %s", json, err);
    msgpack_sbuffer_destroy(&sb);
    return out;
}

static void expect_roundtrip(const char *json, const char *want)
{
    char *out = roundtrip_n(json, strlen(json));

    cr_expect_str_eq(out, want, "%s became %s, want %s", json, out, want);
    free(out);
}

static void expect_same(const char *json)
{
    expect_roundtrip(json, json);
}

/* Pack JSON and unpack it with msgpack-c; caller destroys both. */
static void unpack_json(const char *json, msgpack_sbuffer *sb, msgpack_unpacked *up)
{
    char err[256] = "";
    size_t off = 0;

    msgpack_sbuffer_init(sb);
    cr_assert_eq(sk_json_to_msgpack(json, strlen(json), sb, err, sizeof(err)), SK_OK, "%s", err);
    msgpack_unpacked_init(up);
    cr_assert_eq(msgpack_unpack_next(up, sb->data, sb->size, &off), MSGPACK_UNPACK_SUCCESS);
    cr_assert_eq(off, sb->size);
}

static int check(const unsigned char *b, size_t n, char *err, size_t errlen)
{
    return sk_msgpack_check((const char *)b, n, err, errlen);
}

static void expect_check_error(const unsigned char *b, size_t n, const char *what)
{
    char err[256] = "";

    cr_expect_eq(check(b, n, err, sizeof(err)), SK_ERROR, "accepted: %s", what);
    cr_expect(strstr(err, what) != NULL, "error \"%s\" does not mention \"%s\"", err, what);
}

static void expect_to_json_error(const unsigned char *b, size_t n, const char *what)
{
    char err[256] = "";
    char *out = sk_msgpack_bytes_to_json((const char *)b, n, err, sizeof(err));

    cr_expect_null(out, "rendered %s", out ? out : "");
    free(out);
    cr_expect(strstr(err, what) != NULL, "error \"%s\" does not mention \"%s\"", err, what);
}

/* n arrays, each the only element of the one outside it: [[[...]]] */
static char *nested_json(int n)
{
    char *s = malloc(2 * (size_t)n + 1);

    cr_assert_not_null(s);
    memset(s, '[', (size_t)n);
    memset(s + n, ']', (size_t)n);
    s[2 * n] = '\0';
    return s;
}

static unsigned char *nested_msgpack(int n)
{
    unsigned char *b = malloc((size_t)n);

    cr_assert_not_null(b);
    memset(b, 0x91, (size_t)n - 1);
    b[n - 1] = 0x90;
    return b;
}

/* One of every msgpack format, inside one array16 (for the check's tests). */
static const unsigned char every_format[] = {
    0xdc, 0x00, 0x28,                                        /* array16 of 40 */
    0x05,                                                    /* positive fixint */
    0xe0,                                                    /* negative fixint */
    0x81, 0xa1, 'k',  0x01,                                  /* fixmap */
    0x92, 0x01, 0x02,                                        /* fixarray */
    0xa2, 'h',  'i',                                         /* fixstr */
    0xc0, 0xc2, 0xc3,                                        /* nil false true */
    0xc4, 0x01, 0xff,                                        /* bin8 */
    0xc5, 0x00, 0x01, 0xff,                                  /* bin16 */
    0xc6, 0x00, 0x00, 0x00, 0x01, 0xff,                      /* bin32 */
    0xc7, 0x01, 0x05, 0xff,                                  /* ext8 */
    0xc8, 0x00, 0x01, 0x05, 0xff,                            /* ext16 */
    0xc9, 0x00, 0x00, 0x00, 0x01, 0x05, 0xff,                /* ext32 */
    0xca, 0x3f, 0xc0, 0x00, 0x00,                            /* float32 1.5 */
    0xcb, 0x3f, 0xf8, 0,    0,    0,    0,    0,    0,       /* float64 1.5 */
    0xcc, 0xff,                                              /* uint8 */
    0xcd, 0xff, 0xff,                                        /* uint16 */
    0xce, 0xff, 0xff, 0xff, 0xff,                            /* uint32 */
    0xcf, 0,    0,    0,    0,    0xff, 0xff, 0xff, 0xff,    /* uint64 */
    0xd0, 0x80,                                              /* int8 */
    0xd1, 0x80, 0x00,                                        /* int16 */
    0xd2, 0x80, 0,    0,    0,                               /* int32 */
    0xd3, 0x80, 0,    0,    0,    0,    0,    0,    0,       /* int64 */
    0xd4, 0x05, 0xff,                                        /* fixext1 */
    0xd5, 0x05, 0xff, 0xff,                                  /* fixext2 */
    0xd6, 0x05, 1,    2,    3,    4,                         /* fixext4 */
    0xd7, 0x05, 1,    2,    3,    4,    5,    6,    7,    8, /* fixext8 */
    0xd8, 0x05, 1,    2,    3,    4,    5,    6,    7,    8,
    9,    10,   11,   12,   13,   14,   15,   16, /* fixext16 */
    0xd9, 0x01, 'x',                              /* str8 */
    0xda, 0x00, 0x01, 'x',                        /* str16 */
    0xdb, 0x00, 0x00, 0x00, 0x01, 'x',            /* str32 */
    0xdc, 0x00, 0x01, 0xc0,                       /* array16 */
    0xdd, 0x00, 0x00, 0x00, 0x01, 0xc0,           /* array32 */
    0xde, 0x00, 0x01, 0xc0, 0xc0,                 /* map16 */
    0xdf, 0x00, 0x00, 0x00, 0x01, 0xc0, 0xc0,     /* map32 */
    0x90, 0x80, 0xa0,                             /* empty fixarray, fixmap, fixstr */
    0xc4, 0x00,                                   /* empty bin8 */
};

/* ---- JSON -> msgpack -> JSON ------------------------------------------------ */

Test(json, round_trips_scalars)
{
    expect_same("null");
    expect_same("true");
    expect_same("false");
    expect_same("0");
    expect_same("42");
    expect_same("-1");
    expect_same("-129");
    expect_same("1.5");
    expect_same("-0.25");
    expect_same("1.0");
    expect_same("-0.0");
    expect_roundtrip("1e3", "1000.0");
    expect_roundtrip(" \n\t7 ", "7");
}

Test(json, round_trips_big_and_negative_integers)
{
    expect_same("9223372036854775807");
    expect_same("-9223372036854775808");
    expect_same("4294967296");
    expect_same("-4294967297");
    expect_same("[255,256,65535,65536,-32,-33,-128,-32768,-32769,-2147483648,-2147483649]");
}

Test(json, round_trips_strings)
{
    expect_same("\"\"");
    expect_same("\"hello\"");
    expect_same("\"quote \\\" backslash \\\\ newline \\n tab \\t\"");
    /* Raw UTF-8 stays as it is; escapes come back as UTF-8. */
    expect_same("\"h\xc3\xa9llo \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\"");
    expect_roundtrip("\"\\u00e9\\u65e5\\ud83d\\ude00\"",
                     "\"\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\"");
    expect_roundtrip("\"\\u0001\\/\"", "\"\\u0001/\"");
}

Test(json, round_trips_strings_holding_nul)
{
    static const char in[] = "\"a\\u0000b\"";
    char *out = roundtrip_n(in, sizeof(in) - 1);

    cr_expect_str_eq(out, in);
    free(out);
}

Test(json, round_trips_nested_containers)
{
    expect_same("[]");
    expect_same("{}");
    expect_same("[[[]]]");
    expect_same("[{},[],\"\",0]");
    expect_same("{\"a\":[1,{\"b\":[]},{}],\"c\":{\"d\":null,\"e\":[true,false,1.5,\"x\"]}}");
    expect_roundtrip("{ \"a\" : [ 1 , 2 ] ,\n \"b\" : { } }", "{\"a\":[1,2],\"b\":{}}");
}

Test(json, round_trips_unicode_keys)
{
    expect_same("{\"\xc3\xa9t\xc3\xa9\":1,\"\xf0\x9f\x98\x80\":2}");
}

Test(json, preserves_key_order)
{
    expect_same("{\"z\":1,\"a\":2,\"m\":3,\"b\":{\"y\":1,\"c\":2,\"x\":3}}");
}

Test(json, keeps_the_last_of_duplicate_keys_in_the_first_place)
{
    /* As JSON.parse and jsonb do. */
    expect_roundtrip("{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":3,\"b\":2}");
}

Test(json, packs_json_types_as_msgpack_types)
{
    msgpack_sbuffer sb;
    msgpack_unpacked up;
    const msgpack_object_map *m;

    unpack_json("{\"i\":7,\"n\":-7,\"r\":1.0,\"s\":\"x\",\"t\":true,\"z\":null,\"a\":[]}", &sb,
                &up);
    cr_assert_eq(up.data.type, MSGPACK_OBJECT_MAP);
    m = &up.data.via.map;
    cr_assert_eq(m->size, 7);
    cr_expect_eq(m->ptr[0].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_expect_eq(m->ptr[0].val.via.u64, 7);
    cr_expect_eq(m->ptr[1].val.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    cr_expect_eq(m->ptr[1].val.via.i64, -7);
    cr_expect_eq(m->ptr[2].val.type, MSGPACK_OBJECT_FLOAT64);
    cr_expect_eq(m->ptr[2].val.via.f64, 1.0);
    cr_expect_eq(m->ptr[3].val.type, MSGPACK_OBJECT_STR);
    cr_expect_eq(m->ptr[4].val.type, MSGPACK_OBJECT_BOOLEAN);
    cr_expect_eq(m->ptr[5].val.type, MSGPACK_OBJECT_NIL);
    cr_expect_eq(m->ptr[6].val.type, MSGPACK_OBJECT_ARRAY);
    for (uint32_t i = 0; i < m->size; i++) {
        cr_expect_eq(m->ptr[i].key.type, MSGPACK_OBJECT_STR);
        cr_expect_eq(m->ptr[i].key.via.str.size, 1);
        cr_expect_eq(m->ptr[i].key.via.str.ptr[0], "inrstza"[i], "key %u out of order", i);
    }
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
}

Test(json, appends_to_the_buffer_and_leaves_it_alone_on_error)
{
    msgpack_sbuffer sb;
    char err[256];

    msgpack_sbuffer_init(&sb);
    cr_assert_eq(sk_json_to_msgpack("1", 1, &sb, err, sizeof(err)), SK_OK);
    cr_assert_eq(sk_json_to_msgpack("[1,2]", 5, &sb, err, sizeof(err)), SK_OK);
    cr_assert_eq(sb.size, 4);
    cr_expect_eq(memcmp(sb.data, "\x01\x92\x01\x02", 4), 0);
    cr_assert_eq(sk_json_to_msgpack("[1,", 3, &sb, err, sizeof(err)), SK_ERROR);
    cr_expect_eq(sb.size, 4);
    msgpack_sbuffer_destroy(&sb);
}

Test(json, reports_line_and_column_of_invalid_json)
{
    static const char *const bad[][2] = {
        {"{\n  \"a\": tru }", "line 2 column 10: invalid token"},
        {"[1,2", "line 1 column 4: "},
        {"1 2", "line 1 column 3: end of file expected"},
        {"", "line 1 column 0: "},
        {"{\"a\" 1}", "line 1 column 6: "},
        {"\"\\ud800\"", "line 1 column 8: invalid Unicode"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msgpack_sbuffer sb;
        char err[256] = "";

        msgpack_sbuffer_init(&sb);
        cr_expect_eq(sk_json_to_msgpack(bad[i][0], strlen(bad[i][0]), &sb, err, sizeof(err)),
                     SK_ERROR, "accepted %s", bad[i][0]);
        cr_expect(strncmp(err, bad[i][1], strlen(bad[i][1])) == 0, "%s: got \"%s\", want \"%s\"",
                  bad[i][0], err, bad[i][1]);
        cr_expect_eq(sb.size, 0);
        msgpack_sbuffer_destroy(&sb);
    }
}

Test(json, rejects_integers_beyond_int64)
{
    msgpack_sbuffer sb;
    char err[256] = "";

    msgpack_sbuffer_init(&sb);
    cr_expect_eq(sk_json_to_msgpack("9223372036854775808", 19, &sb, err, sizeof(err)), SK_ERROR);
    cr_expect(strstr(err, "too big integer") != NULL, "%s", err);
    cr_expect_eq(sk_json_to_msgpack("1e400", 5, &sb, err, sizeof(err)), SK_ERROR);
    msgpack_sbuffer_destroy(&sb);
}

Test(json, rejects_json_nested_deeper_than_the_limit)
{
    msgpack_sbuffer sb;
    char err[256] = "";
    char *deep = nested_json(SK_MSGPACK_DEPTH + 1);
    char *ok = nested_json(SK_MSGPACK_DEPTH);
    char *out;

    msgpack_sbuffer_init(&sb);
    cr_expect_eq(sk_json_to_msgpack(deep, strlen(deep), &sb, err, sizeof(err)), SK_ERROR);
    cr_expect(strstr(err, "nested deeper than 32") != NULL, "%s", err);
    cr_expect_eq(sb.size, 0);
    out = roundtrip_n(ok, strlen(ok));
    cr_expect_str_eq(out, ok);
    free(out);
    free(deep);
    free(ok);
    msgpack_sbuffer_destroy(&sb);
}

Test(json, rejects_text_larger_than_the_payload_limit)
{
    size_t n = SK_PAYLOAD_MAX + 1;
    char *big = malloc(n);
    msgpack_sbuffer sb;
    char err[256] = "";

    cr_assert_not_null(big);
    memset(big, ' ', n);
    big[0] = '0';
    msgpack_sbuffer_init(&sb);
    cr_expect_eq(sk_json_to_msgpack(big, n, &sb, err, sizeof(err)), SK_ERROR);
    cr_expect(strstr(err, "exceeds the limit") != NULL, "%s", err);
    /* The same value one byte shorter is fine. */
    cr_expect_eq(sk_json_to_msgpack(big, n - 1, &sb, err, sizeof(err)), SK_OK, "%s", err);
    free(big);
    msgpack_sbuffer_destroy(&sb);
}

Test(json, rejects_packed_output_larger_than_the_payload_limit)
{
    /* "1e1," is 4 bytes of text and 9 packed: 2M of them fit as text, not packed. */
    size_t count = 2u * 1024u * 1024u;
    size_t n = count * 4 + 1;
    char *text = malloc(n + 1);
    msgpack_sbuffer sb;
    char err[256] = "";

    cr_assert_not_null(text);
    text[0] = '[';
    for (size_t i = 0; i < count; i++)
        memcpy(text + 1 + 4 * i, "1e1,", 4);
    text[n - 1] = ']';
    text[n] = '\0';
    msgpack_sbuffer_init(&sb);
    cr_expect_eq(sk_json_to_msgpack(text, n, &sb, err, sizeof(err)), SK_ERROR);
    cr_expect(strstr(err, "packed value of") != NULL, "%s", err);
    cr_expect_eq(sb.size, 0);
    free(text);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- msgpack -> JSON ------------------------------------------------------------ */

Test(json, renders_msgpack_only_types_when_they_fit)
{
    /* uint64 INT64_MAX, float32 1.5, str16, array16, map32 */
    static const unsigned char b[] = {
        0x95, 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xca,
        0x3f, 0xc0, 0x00, 0x00, 0xda, 0x00, 0x01, 'x',  0xdc, 0x00, 0x01,
        0xc3, 0xdf, 0x00, 0x00, 0x00, 0x01, 0xa1, 'k',  0xd0, 0x05,
    };
    char err[256] = "";
    char *out = sk_msgpack_bytes_to_json((const char *)b, sizeof(b), err, sizeof(err));

    cr_assert_not_null(out, "%s", err);
    cr_expect_str_eq(out, "[9223372036854775807,1.5,\"x\",[true],{\"k\":5}]");
    free(out);
}

Test(json, msgpack_to_json_rejects_bin)
{
    static const unsigned char b[] = {0x91, 0xc4, 0x02, 0x00, 0x01};

    expect_to_json_error(b, sizeof(b), "bin");
}

Test(json, msgpack_to_json_rejects_ext)
{
    static const unsigned char fixext[] = {0xd4, 0x01, 0x00};
    static const unsigned char timestamp[] = {0xd6, 0xff, 0x00, 0x00, 0x00, 0x01};

    expect_to_json_error(fixext, sizeof(fixext), "ext type 1");
    expect_to_json_error(timestamp, sizeof(timestamp), "ext type -1");
}

Test(json, msgpack_to_json_rejects_non_string_keys)
{
    static const unsigned char intkey[] = {0x81, 0x01, 0xc0};
    static const unsigned char nilkey[] = {0x82, 0xa1, 'a', 0xc0, 0xc0, 0xc0};
    static const unsigned char arraykey[] = {0x81, 0x90, 0xc0};

    expect_to_json_error(intkey, sizeof(intkey), "key 0 is of type integer");
    expect_to_json_error(nilkey, sizeof(nilkey), "key 1 is of type nil");
    expect_to_json_error(arraykey, sizeof(arraykey), "key 0 is of type array");
}

Test(json, msgpack_to_json_rejects_uint64_above_int64_max)
{
    static const unsigned char b[] = {0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0};

    expect_to_json_error(b, sizeof(b), "9223372036854775808");
}

Test(json, msgpack_to_json_rejects_non_finite_floats)
{
    static const unsigned char nan64[] = {0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
    static const unsigned char inf32[] = {0xca, 0x7f, 0x80, 0x00, 0x00};

    expect_to_json_error(nan64, sizeof(nan64), "no JSON equivalent");
    expect_to_json_error(inf32, sizeof(inf32), "no JSON equivalent");
}

Test(json, msgpack_to_json_rejects_invalid_utf8)
{
    static const unsigned char value[] = {0xa2, 0xc3, 0x28};
    static const unsigned char key[] = {0x81, 0xa1, 0xff, 0xc0};

    expect_to_json_error(value, sizeof(value), "not valid UTF-8");
    expect_to_json_error(key, sizeof(key), "key 0 is not valid UTF-8");
}

Test(json, msgpack_to_json_rejects_duplicate_keys)
{
    static const unsigned char b[] = {0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02};

    expect_to_json_error(b, sizeof(b), "key 1 is a duplicate");
}

Test(json, msgpack_to_json_keeps_nul_in_keys)
{
    static const unsigned char b[] = {0x81, 0xa3, 'a', 0x00, 'b', 0x01};
    char err[256] = "";
    char *out = sk_msgpack_bytes_to_json((const char *)b, sizeof(b), err, sizeof(err));

    cr_assert_not_null(out, "%s", err);
    cr_expect_str_eq(out, "{\"a\\u0000b\":1}");
    free(out);
}

Test(json, msgpack_to_json_bounds_the_depth_of_built_objects)
{
    /* A hand-built object can even contain itself. */
    msgpack_object loop = {.type = MSGPACK_OBJECT_ARRAY};
    char err[256] = "";

    loop.via.array.size = 1;
    loop.via.array.ptr = &loop;
    cr_expect_null(sk_msgpack_to_json(&loop, err, sizeof(err)));
    cr_expect(strstr(err, "nested deeper than 32") != NULL, "%s", err);
}

Test(json, msgpack_to_json_renders_built_objects)
{
    msgpack_object kv_vals[2] = {
        {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER, .via.i64 = INT64_MIN},
        {.type = MSGPACK_OBJECT_FLOAT32, .via.f64 = 0.5},
    };
    msgpack_object_kv kv[2] = {
        {.key = {.type = MSGPACK_OBJECT_STR, .via.str = {.size = 1, .ptr = "b"}},
         .val = kv_vals[0]},
        {.key = {.type = MSGPACK_OBJECT_STR, .via.str = {.size = 1, .ptr = "a"}},
         .val = kv_vals[1]},
    };
    msgpack_object map = {.type = MSGPACK_OBJECT_MAP, .via.map = {.size = 2, .ptr = kv}};
    char err[256] = "";
    char *out = sk_msgpack_to_json(&map, err, sizeof(err));

    cr_assert_not_null(out, "%s", err);
    cr_expect_str_eq(out, "{\"b\":-9223372036854775808,\"a\":0.5}");
    free(out);
}

/* ---- sk_msgpack_check ------------------------------------------------------------ */

Test(json, check_accepts_every_format)
{
    char err[256] = "";

    cr_expect_eq(check(every_format, sizeof(every_format), err, sizeof(err)), SK_OK, "%s", err);
}

Test(json, check_accepts_scalars_and_empty_containers)
{
    static const unsigned char ones[][1] = {{0x00}, {0x7f}, {0xff}, {0xc0}, {0x90}, {0x80}, {0xa0}};
    char err[256] = "";

    for (size_t i = 0; i < sizeof(ones) / sizeof(ones[0]); i++)
        cr_expect_eq(check(ones[i], 1, err, sizeof(err)), SK_OK, "0x%02x: %s", ones[i][0], err);
}

Test(json, check_rejects_every_truncation)
{
    for (size_t n = 0; n < sizeof(every_format); n++)
        expect_check_error(every_format, n, "msgpack: ");
    expect_check_error((const unsigned char *)"", 0, "truncated");
    expect_check_error((const unsigned char *)"\x92\x01", 2, "claims 2 values, only 1 bytes");
    expect_check_error((const unsigned char *)"\x92\x92\x01\x02", 4, "value expected at byte 4");
    expect_check_error((const unsigned char *)"\xcd\x01", 2, "needs 2 bytes");
    expect_check_error((const unsigned char *)"\xdc\x00", 2, "truncated header");
}

Test(json, check_rejects_trailing_bytes)
{
    expect_check_error((const unsigned char *)"\x01\x02", 2, "1 trailing bytes");
    expect_check_error((const unsigned char *)"\x91\x01\xc0\xc0", 4, "2 trailing bytes");
}

Test(json, check_rejects_the_never_used_byte)
{
    expect_check_error((const unsigned char *)"\xc1", 1, "invalid format byte 0xc1 at byte 0");
    expect_check_error((const unsigned char *)"\x92\x01\xc1", 3,
                       "invalid format byte 0xc1 at byte 2");
}

Test(json, check_rejects_huge_claimed_counts)
{
    static const unsigned char array32[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03};
    static const unsigned char map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02};
    static const unsigned char array16[] = {0xdc, 0x00, 0x04, 0x01, 0x02, 0x03};
    static const unsigned char fixmap[] = {0x82, 0xa1, 'a', 0x01}; /* 2 entries need 4 bytes */

    expect_check_error(array32, sizeof(array32), "array at byte 0 claims 4294967295 values");
    expect_check_error(map32, sizeof(map32), "map at byte 0 claims 8589934590 values");
    expect_check_error(array16, sizeof(array16), "claims 4 values, only 3 bytes remain");
    expect_check_error(fixmap, sizeof(fixmap), "claims 4 values, only 3 bytes remain");
}

Test(json, check_rejects_lengths_beyond_the_end)
{
    static const unsigned char str32[] = {0xdb, 0x00, 0x00, 0x10, 0x00, 'a'};
    static const unsigned char fixstr[] = {0xa5, 'a', 'b'};
    static const unsigned char bin32[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    static const unsigned char ext32[] = {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00};
    static const unsigned char fixext16[] = {0xd8, 0x01, 0x00};

    expect_check_error(str32, sizeof(str32), "needs 4096 bytes, only 1 remain");
    expect_check_error(fixstr, sizeof(fixstr), "needs 5 bytes, only 2 remain");
    expect_check_error(bin32, sizeof(bin32), "needs 4294967295 bytes");
    expect_check_error(ext32, sizeof(ext32), "needs 4294967295 bytes");
    expect_check_error(fixext16, sizeof(fixext16), "needs 17 bytes");
}

Test(json, check_rejects_nesting_33_deep)
{
    unsigned char *b = nested_msgpack(SK_MSGPACK_DEPTH + 1);
    /* The extra level as a map key, and as an empty map. */
    unsigned char key[SK_MSGPACK_DEPTH + 2];

    expect_check_error(b, SK_MSGPACK_DEPTH + 1, "nested deeper than 32 levels at byte 32");
    memset(key, 0x91, SK_MSGPACK_DEPTH - 1);
    key[SK_MSGPACK_DEPTH - 1] = 0x81;
    key[SK_MSGPACK_DEPTH] = 0x80;
    key[SK_MSGPACK_DEPTH + 1] = 0xc0;
    expect_check_error(key, sizeof(key), "nested deeper than 32 levels");
    free(b);
}

Test(json, check_accepts_nesting_32_deep)
{
    unsigned char *b = nested_msgpack(SK_MSGPACK_DEPTH);
    char *want = nested_json(SK_MSGPACK_DEPTH);
    char err[256] = "";
    char *out;

    cr_expect_eq(check(b, SK_MSGPACK_DEPTH, err, sizeof(err)), SK_OK, "%s", err);
    /* msgpack-c's own limit is the same 32 (MSGPACK_EMBED_STACK_SIZE). */
    out = sk_msgpack_bytes_to_json((const char *)b, SK_MSGPACK_DEPTH, err, sizeof(err));
    cr_assert_not_null(out, "%s", err);
    cr_expect_str_eq(out, want);
    free(out);
    free(want);
    free(b);
}

Test(json, check_depth_limit_matches_the_unpacker)
{
    unsigned char *deep = nested_msgpack(SK_MSGPACK_DEPTH + 1);
    msgpack_unpacked up;
    size_t off = 0;

    msgpack_unpacked_init(&up);
    cr_expect_neq(msgpack_unpack_next(&up, (const char *)deep, SK_MSGPACK_DEPTH + 1, &off),
                  MSGPACK_UNPACK_SUCCESS);
    msgpack_unpacked_destroy(&up);
    free(deep);
}

Test(json, check_rejects_payloads_over_the_limit)
{
    /* The size is refused before a byte is read. */
    expect_check_error((const unsigned char *)"\xc0", (size_t)SK_PAYLOAD_MAX + 1,
                       "exceeds the limit");
}

Test(json, check_agrees_with_the_unpacker_on_mutated_input)
{
    /* Whatever the check accepts, msgpack-c must unpack whole. */
    unsigned char b[sizeof(every_format)];
    uint32_t seed = 12345;
    int accepted = 0;

    for (int round = 0; round < 20000; round++) {
        msgpack_unpacked up;
        size_t off = 0, n;

        memcpy(b, every_format, sizeof(b));
        for (int k = 0; k < 1 + round % 3; k++) {
            seed = seed * 1103515245u + 12345u;
            b[(seed >> 8) % sizeof(b)] = (unsigned char)(seed >> 20);
        }
        seed = seed * 1103515245u + 12345u;
        n = sizeof(b) - (seed >> 16) % 8;
        if (sk_msgpack_check((const char *)b, n, NULL, 0) != SK_OK)
            continue;
        accepted++;
        msgpack_unpacked_init(&up);
        cr_assert_eq(msgpack_unpack_next(&up, (const char *)b, n, &off), MSGPACK_UNPACK_SUCCESS,
                     "round %d", round);
        cr_assert_eq(off, n, "round %d", round);
        msgpack_unpacked_destroy(&up);
    }
    cr_expect_gt(accepted, 100);
}
