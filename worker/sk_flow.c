#include "sk_flow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stepkit.h"

int sk_flow_step_take(sk_wconn_t *conn, const char *item_s, const char *epoch_s, int64_t *wait_ms,
                      char *err, size_t errlen)
{
    sk_cmd_t k;
    PGresult *res[1] = {NULL};
    int rc;

    *wait_ms = 0;
    memset(&k, 0, sizeof(k));
    k.stmt = "sk_step_take";
    k.nparams = 2;
    k.values[0] = item_s;
    k.values[1] = epoch_s;
    rc = sk_wconn_run(conn, &k, 1, res, err, errlen);
    if (rc == SK_OK) {
        if (res[0] == NULL || PQntuples(res[0]) != 1 || PQgetisnull(res[0], 0, 0)) {
            snprintf(err, errlen, "flow_step_take returned no value");
            rc = SK_ERROR;
        } else {
            *wait_ms = strtoll(PQgetvalue(res[0], 0, 0), NULL, 10);
        }
    }
    PQclear(res[0]);
    return rc;
}
