/*
 * sk_http_ready - the /readyz decision, apart from the server so the unit
 * tests can check every state (see sk_http.h).
 */
#include <stdio.h>

#include "sk_http.h"

#define DB_FRESH_MS 15000 /* a refresh runs every 5 s: three missed ones is a problem */

int sk_http_ready(const sk_http_ready_in_t *in, char *reason, size_t len)
{
    switch ((sk_master_state_t)in->master_state) {
    case SK_MASTER_INIT:
    case SK_MASTER_MIGRATING:
    case SK_MASTER_STARTING:
        snprintf(reason, len, "starting: the master is not running its workers yet");
        return 0;
    case SK_MASTER_DRAINING:
    case SK_MASTER_STOPPING:
    case SK_MASTER_EXIT:
        snprintf(reason, len, "draining: the master is stopping its workers");
        return 0;
    case SK_MASTER_RUN:
        break;
    }
    if (in->db_age_ms < 0 && in->db_error[0] == '\0') {
        snprintf(reason, len, "starting: the database has not been read yet");
        return 0;
    }
    if (!in->db_ok || in->db_age_ms < 0 || in->db_age_ms > DB_FRESH_MS) {
        snprintf(reason, len, "database unreachable: %s",
                 in->db_error[0] ? in->db_error : "no answer for over 15 s");
        return 0;
    }
    if (in->schema_missing > 0) {
        snprintf(reason, len, "schema at version %d, this binary needs %d: run stepkit migrate",
                 in->schema_have, in->schema_known);
        return 0;
    }
    if (in->schema_breaking > 0) {
        snprintf(reason, len,
                 "schema at version %d, this binary needs %d: this binary is older than the "
                 "schema (migration %d refuses it)",
                 in->schema_have, in->schema_known, in->schema_breaking);
        return 0;
    }
    if (in->workers_connected < 1) {
        snprintf(reason, len, "no worker connected (0 of %d)", in->workers_configured);
        return 0;
    }
    snprintf(reason, len, "ready: %d of %d workers connected", in->workers_connected,
             in->workers_configured);
    return 1;
}
