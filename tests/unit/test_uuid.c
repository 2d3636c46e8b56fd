/*
 * sk_uuid: the UUIDv7 layout (RFC 9562) and the order of ids made one
 * after another.  The SQL twin, uuid7(), is checked in test_perf.c.
 */
#include <criterion/criterion.h>

#include <stdint.h>
#include <string.h>
#include <time.h>

#include <uuid/uuid.h>

#include "sk_uuid.h"

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

Test(uuid, layout_of_a_given_instant)
{
    uint8_t id[16];
    /* 2026-01-02T03:04:05.678901234Z */
    int64_t ns = INT64_C(1767323045678901234);

    sk_uuid7_at(id, ns);
    cr_assert_eq(sk_uuid7_ms(id), INT64_C(1767323045678));
    /* 48-bit big-endian milliseconds */
    cr_assert_eq(id[0], 0x01);
    cr_assert_eq(id[5], (uint8_t)(INT64_C(1767323045678) & 0xff));
    cr_assert_eq(id[6] >> 4, 7, "version nibble %x", id[6] >> 4);
    /* the 12-bit fraction: 0.901234 ms of 4096ths */
    cr_assert_eq(((id[6] & 0x0f) << 8) | id[7], (int)(INT64_C(901234) * 4096 / 1000000));
    cr_assert_eq(id[8] >> 6, 2, "variant bits %x", id[8] >> 6);
}

Test(uuid, text_form_parses_as_version_7)
{
    char s[37];
    uuid_t u;
    int64_t before = now_ms(), after;

    sk_uuid7(s);
    after = now_ms();
    cr_assert_eq(strlen(s), 36);
    cr_assert_eq(uuid_parse(s, u), 0, "%s", s);
    cr_assert_eq(s[14], '7', "%s", s);
    cr_assert(strchr("89ab", s[19]) != NULL, "variant in %s", s);
    cr_assert(sk_uuid7_ms(u) >= before && sk_uuid7_ms(u) <= after + 1, "%s", s);
}

/* Ids made in a row sort in the order they were made, as text and as
 * bytes, even within one millisecond and when the clock steps back. */
Test(uuid, strictly_increasing)
{
    char prev[37], cur[37];
    uint8_t a[16], b[16];

    sk_uuid7(prev);
    for (int i = 0; i < 20000; i++) {
        sk_uuid7(cur);
        cr_assert(strcmp(prev, cur) < 0, "%s then %s", prev, cur);
        memcpy(prev, cur, sizeof(cur));
    }
    /* The same instant twice, then a step back of a second. */
    int64_t ns = (int64_t)now_ms() * 1000000 + 5000000000LL;
    sk_uuid7_at(a, ns);
    sk_uuid7_at(b, ns);
    cr_assert(memcmp(a, b, 16) < 0);
    sk_uuid7_at(a, ns - 1000000000LL);
    cr_assert(memcmp(b, a, 16) < 0);
    cr_assert_eq(sk_uuid7_ms(a), ns / 1000000, "a step back keeps the last millisecond");
}

/* Ids of different milliseconds differ in their first bits: no random
 * part can reorder them. */
Test(uuid, later_millisecond_sorts_after)
{
    uint8_t a[16], b[16];
    int64_t base = INT64_C(1700000000000) * 1000000;

    for (int i = 0; i < 1000; i++) {
        sk_uuid7_at(a, base + (int64_t)i * 1000000 + 999999);
        sk_uuid7_at(b, base + (int64_t)(i + 1) * 1000000);
        cr_assert(memcmp(a, b, 16) < 0, "ms %d", i);
        base += 2000000; /* keep ahead of the thread's last id */
    }
}
