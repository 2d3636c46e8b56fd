/*
 * sk_sched - a worker's cron scheduler (docs/cron.md).
 *
 * Built in each worker from the registry's schedules, each parsed once.
 * It keeps the next tick of every (workflow, schedule) in memory; the
 * worker's loop wakes it at the earliest one (an ev_periodic, so wall-clock
 * steps are followed) and sk_sched_run() fires every due tick in one round
 * trip: SELECT fire_cron(...) per tick, whose primary key on (workflow,
 * schedule, tick) makes the first caller in the whole cluster start the run
 * and every other one a no-op.  No leader: every worker of every master does
 * this.
 *
 * Missed ticks (every worker of every master down or busy across them) are
 * coalesced: one run, for the most recent missed tick.  The first time a
 * worker process connects it resumes each schedule after the newest tick
 * recorded in cron_ticks (catch-up after a full outage); a schedule never
 * fired before starts from now (no backfill).
 *
 * The bookkeeping functions below (sk_sched_tick.c) are pure, for the unit
 * tests; sk_sched.c holds the database side.
 */
#ifndef SK_SCHED_H
#define SK_SCHED_H

#include <stddef.h>
#include <stdint.h>

#include "sk_cron.h"
#include "sk_registry.h"

typedef struct sk_sched sk_sched_t;
typedef struct sk_wconn sk_wconn_t;

/* ---- pure bookkeeping (sk_sched_tick.c) ---------------------------------------------- */

/* The most recent tick of `c` in (after_ms, now_ms], or -1 when there is
 * none.  A bisection: a few dozen sk_cron_next calls however long the gap. */
int64_t sk_sched_latest(const sk_cron_t *c, int64_t after_ms, int64_t now_ms);

/*
 * One schedule at `now_ms`.  *next_ms is its first tick not handled yet
 * (-1: none known; it is searched again from now_ms and nothing fires).
 * When *next_ms <= now_ms, the schedule is due: *fire_ms gets the most
 * recent due tick (earlier due ticks are coalesced into it), *next_ms moves
 * to the first tick after now_ms, and 1 is returned.  Otherwise *fire_ms is
 * -1 and 0 is returned.
 */
int sk_sched_step(const sk_cron_t *c, int64_t *next_ms, int64_t now_ms, int64_t *fire_ms);

/* Where a schedule resumes when a scheduler starts: the first tick after
 * `last_ms`, its newest fired tick, or from now when it never fired
 * (last_ms < 0): no backfill. */
int64_t sk_sched_resume(const sk_cron_t *c, int64_t last_ms, int64_t now_ms);

/* Unix ms as ISO 8601 UTC with milliseconds, "2026-01-02T03:04:05.000Z". */
const char *sk_sched_iso(int64_t ms, char *buf, size_t len);

/* ---- the scheduler (sk_sched.c) ----------------------------------------------------- */

/* Parse every schedule of `reg` (sorted by workflow then expression, so
 * every worker fires a batch in the same order: no deadlocks).  NULL with a
 * message in err when out of memory. */
sk_sched_t *sk_sched_new(const sk_registry_t *reg, char *err, size_t errlen);
void sk_sched_free(sk_sched_t *s);
/* Schedules it fires; 0: nothing to do, no timer needed. */
int sk_sched_count(const sk_sched_t *s);

/*
 * Fire whatever is due at `now_ms` (Unix ms) on `conn`, reading the newest
 * fired ticks first on the first call that reaches the database.  *fired:
 * runs this call started (ticks other workers had fired count for nothing).
 * SK_ERROR when the batch failed: nothing advanced, call again later (a
 * broken connection reconnects by itself).
 */
int sk_sched_run(sk_sched_t *s, sk_wconn_t *conn, int64_t now_ms, int *fired);

/* The earliest next tick (Unix ms); -1 when no schedule has one (not
 * loaded yet, or no tick within 5 years). */
int64_t sk_sched_next(const sk_sched_t *s);

#endif
