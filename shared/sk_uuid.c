#include "sk_uuid.h"

#include <string.h>
#include <time.h>

#include <uuid/uuid.h>

/* The last (ms, fraction) of this thread: the next id is above it. */
static _Thread_local int64_t last_ms = -1;
static _Thread_local int last_frac;

void sk_uuid7_at(uint8_t out[16], int64_t unix_ns)
{
    uuid_t rnd;
    int64_t ms = unix_ns / 1000000;
    int frac = (int)((unix_ns % 1000000) * 4096 / 1000000);

    if (ms < last_ms || (ms == last_ms && frac <= last_frac)) {
        ms = last_ms; /* same tick, or the clock stepped back */
        frac = last_frac + 1;
        if (frac == 4096) {
            ms++;
            frac = 0;
        }
    }
    last_ms = ms;
    last_frac = frac;
    uuid_generate_random(rnd); /* version 4: the variant bits are set already */
    for (int i = 0; i < 6; i++)
        out[i] = (uint8_t)(ms >> (40 - 8 * i));
    out[6] = (uint8_t)(0x70 | (frac >> 8));
    out[7] = (uint8_t)(frac & 0xff);
    memcpy(out + 8, rnd + 8, 8);
}

void sk_uuid7(char out[37])
{
    struct timespec ts;
    uuid_t id;

    clock_gettime(CLOCK_REALTIME, &ts);
    sk_uuid7_at(id, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
    uuid_unparse_lower(id, out);
}

int64_t sk_uuid7_ms(const uint8_t id[16])
{
    int64_t ms = 0;

    for (int i = 0; i < 6; i++)
        ms = (ms << 8) | id[i];
    return ms;
}
