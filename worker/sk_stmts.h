/*
 * sk_stmts - every statement a worker runs, prepared by name on each new
 * connection.  Values always go in as parameters.
 */
#ifndef SK_STMTS_H
#define SK_STMTS_H

/* The first schema version with claim_batch and batch_fence
 * (sql/014_batch.sql).  A build whose embedded migrations stop before it
 * (the "previous release" of the upgrade test) neither prepares their
 * statements nor batches. */
#define SK_BATCH_SCHEMA_VERSION 14

typedef struct {
    const char *name;
    const char *sql;
} sk_stmt_def_t;

/* The text to prepare for statement i (NULL: none).  A statement that
 * needs a newer schema than the binary knows (the previous release of the
 * upgrade tests is these sources with fewer migrations) has an earlier
 * text, or none. */
const char *sk_stmt_sql(int i);

extern const sk_stmt_def_t sk_stmts[];
extern const int sk_stmts_count;

/* Column numbers of sk_claim's result. */
enum {
    SK_CLAIM_NEXT_MS = 0, /* no item: ms until the earliest is visible, or NULL;
                           * with an item: 0 when another is ready too */
    SK_CLAIM_ITEM,
    SK_CLAIM_EPOCH,
    SK_CLAIM_RUN,
    SK_CLAIM_TARGET,
    SK_CLAIM_WORKFLOW,
    SK_CLAIM_EVENT,
    SK_CLAIM_TTYPE,
    SK_CLAIM_TNAME,
    SK_CLAIM_DATA,
    SK_CLAIM_STATUS,
    SK_CLAIM_ATTEMPT,
    SK_CLAIM_ATTEMPT_OPS,
    SK_CLAIM_CREATED_MS,
    SK_CLAIM_OP_KEY,
    SK_CLAIM_OP_STEP,
    SK_CLAIM_OP_STATUS,
    SK_CLAIM_OP_RESULT,
    SK_CLAIM_OP_ATTEMPTS,
    SK_CLAIM_OP_KIND,
    SK_CLAIM_OP_WAIT,
    SK_CLAIM_WAKE,
    SK_CLAIM_TAKEOVERS, /* claims in a row that found the lease expired */
    SK_CLAIM_STEP_RATE, /* the run's workflow has a step rate (sql/013_flow_steps.sql) */
    SK_CLAIM_NCOLS
};

#endif
