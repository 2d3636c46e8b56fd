/* The client's connection, shared by the client's modules (sk_client.c,
 * sk_client_runs.c); not installed. */
#ifndef SK_CLIENT_INT_H
#define SK_CLIENT_INT_H

#include <jansson.h>
#include <libpq-fe.h>

#include "stepkit_client.h"

struct sk_client {
    PGconn *pg;
    char schema[64];
    char done_channel[80];
    int listening;
};

/* Add what run management knows about a run to `root` (sk_client_run_json):
 * parent_run_id, children, idempotency_key, cancel_reason, retries. */
int sk_client_run_extra(sk_client_t *c, const char *run_id, json_t *root, char *err, size_t errlen);

#endif
