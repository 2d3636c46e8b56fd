/*
 * sk_uuid - time-ordered ids (UUIDv7 layout, RFC 9562), the same layout as
 * uuid7() in sql/006_perf.sql: 48 bits of Unix milliseconds, version 7, 12
 * bits of sub-millisecond fraction, the variant, 62 random bits.  Ids made
 * one after another in a thread are strictly increasing (a tie or a clock
 * step back advances the fraction of the last id instead), so rows keyed by
 * them are appended at the right edge of their indexes.
 */
#ifndef SK_UUID_H
#define SK_UUID_H

#include <stdint.h>

/* 16 bytes of a new id at Unix time `unix_ns` (nanoseconds). */
void sk_uuid7_at(uint8_t out[16], int64_t unix_ns);

/* A new id now, as 36 lowercase characters and a NUL. */
void sk_uuid7(char out[37]);

/* The milliseconds an id's first 48 bits carry. */
int64_t sk_uuid7_ms(const uint8_t id[16]);

#endif
