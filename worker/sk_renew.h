/*
 * sk_renew - keeps a running body's lease alive.
 *
 * A step body is user code: while it runs the worker's loop and its
 * connection sit idle, so nothing would extend the item's lease, and a body
 * longer than the lease would be taken over and run twice.  A thread of the
 * worker renews it instead, on a small connection of its own (libpq
 * connections are not shared between threads): opened the first time a body
 * outlives a third of the lease, kept for the next ones.  It renews every
 * lease/3 while the body runs and stops at the step deadline (then the
 * master kills the worker: StepTimeoutError).  The renewal only moves a
 * lease the worker still holds (same epoch, still leased), so a renewal that
 * arrives after the item was handed back or taken over changes nothing.
 *
 * Called from the worker's main thread only.
 */
#ifndef SK_RENEW_H
#define SK_RENEW_H

#include <stdint.h>

#include "sk_config.h"

typedef struct sk_renew sk_renew_t;

sk_renew_t *sk_renew_new(const sk_config_t *cfg);
/* Stops the thread (if started) and closes its connection. */
void sk_renew_free(sk_renew_t *r);
/* A body starts on item/epoch; keep its lease until sk_renew_end or
 * deadline_ms (CLOCK_MONOTONIC ms).  Starts the thread the first time. */
void sk_renew_begin(sk_renew_t *r, int64_t item, int32_t epoch, int64_t deadline_ms);
/* sk_heartbeat: a new deadline, and renew now. */
void sk_renew_touch(sk_renew_t *r, int64_t deadline_ms);
/* The body returned. */
void sk_renew_end(sk_renew_t *r);
/* Renewals done so far (tests, logs). */
uint64_t sk_renew_count(sk_renew_t *r);

#endif
