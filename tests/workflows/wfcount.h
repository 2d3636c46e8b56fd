/*
 * Counting for the test workflows: "<run_id> <key>\n" lines appended to the
 * file named by STEPKIT_TEST_COUNTS, one write(2) on an O_APPEND fd each,
 * so lines from many worker processes never interleave.  The integration
 * tests read the file back (itest_count).
 */
#ifndef WFCOUNT_H
#define WFCOUNT_H

#include <stepkit.h>

/* Append one line; aborts on failure (a lost line would make a test pass
 * or fail for the wrong reason). */
void wf_count(sk_ctx_t *ctx, const char *key);
/* How many lines "<run_id> <key>" the file has so far. */
int wf_counted(sk_ctx_t *ctx, const char *key);

#endif
