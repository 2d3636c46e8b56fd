/*
 * sk_flow - the worker's side of step rates (sql/013_flow_steps.sql): a
 * token before each run-step body of a workflow that has one.
 */
#ifndef SK_FLOW_H
#define SK_FLOW_H

#include <stddef.h>
#include <stdint.h>

#include "sk_wconn.h"

/*
 * Take a token for the item's next body (flow_step_take), in a transaction
 * of its own, committed before the body runs.  SK_OK with *wait_ms 0: taken;
 * > 0: none is free, run nothing and hand the item back visible in *wait_ms
 * (the slot the database scheduled for it).  SK_AGAIN: the lease was lost
 * (nothing taken); SK_WCONN_REFUSED or SK_ERROR as sk_wconn_run, err filled.
 */
int sk_flow_step_take(sk_wconn_t *conn, const char *item_s, const char *epoch_s, int64_t *wait_ms,
                      char *err, size_t errlen);

#endif
