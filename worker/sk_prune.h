/*
 * sk_prune - the workers' retention pass (--retention): one batch of
 * finished runs deleted by prune_batch() (sql/007_runs.sql), behind the
 * schema's prune lock, so whichever worker gets there first does it and
 * the others skip at once.  No leader, one short transaction per batch.
 */
#ifndef SK_PRUNE_H
#define SK_PRUNE_H

#include <stdint.h>

#include "sk_wconn.h"

#define SK_PRUNE_BATCH 500

/* Retention in ms from the configuration: -1 when off. */
int64_t sk_prune_retention_ms(const sk_config_t *cfg);

/* Seconds until the next pass: soon after a full batch (a backlog), else
 * a fraction of the retention (at most 10 s, at least 0.5 s), jittered so
 * the workers do not all try at once. */
double sk_prune_next_s(int64_t retention_ms, int deleted);

/* One batch on `conn` (idle, no transaction open).  *deleted: runs
 * deleted, -1 when another worker holds the lock. */
int sk_prune_once(sk_wconn_t *conn, int64_t retention_ms, int *deleted);

#endif
