#include "sk_prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sk_duration.h"
#include "sk_log.h"
#include "stepkit.h"

int64_t sk_prune_retention_ms(const sk_config_t *cfg)
{
    int64_t ms;

    if (strcmp(cfg->retention, "off") == 0 || sk_duration_parse(cfg->retention, &ms) != SK_OK)
        return -1;
    return ms;
}

double sk_prune_next_s(int64_t retention_ms, int deleted)
{
    double s = (double)retention_ms / 2000.0;

    if (deleted >= SK_PRUNE_BATCH)
        return 0.05;
    if (s > 10.0)
        s = 10.0;
    if (s < 0.5)
        s = 0.5;
    return s * (0.8 + 0.4 * (double)random() / (double)RAND_MAX);
}

int sk_prune_once(sk_wconn_t *conn, int64_t retention_ms, int *deleted)
{
    char ms[24], batch[16], err[512];
    sk_cmd_t cmd;
    PGresult *res[1] = {NULL};
    int rc;

    *deleted = 0;
    snprintf(ms, sizeof(ms), "%lld", (long long)retention_ms);
    snprintf(batch, sizeof(batch), "%d", SK_PRUNE_BATCH);
    memset(&cmd, 0, sizeof(cmd));
    cmd.stmt = "sk_prune";
    cmd.nparams = 2;
    cmd.values[0] = ms;
    cmd.values[1] = batch;
    rc = sk_wconn_run(conn, &cmd, 1, res, err, sizeof(err));
    if (rc == SK_OK && res[0] != NULL && PQntuples(res[0]) == 1)
        *deleted = atoi(PQgetvalue(res[0], 0, 0));
    else if (rc == SK_OK)
        rc = SK_ERROR;
    if (rc != SK_OK)
        sk_log_warn("event=prune_failed error=\"%s\"", err);
    else if (*deleted > 0)
        sk_log_info("event=runs_pruned deleted=%d retention_ms=%lld", *deleted,
                    (long long)retention_ms);
    PQclear(res[0]);
    return rc;
}
