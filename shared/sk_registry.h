/*
 * sk_registry - the workflows a master loaded from its libraries
 * (dlopen + stepkit_workflows_v2).  Built by the master before fork and
 * inherited, read-only, by every worker.
 */
#ifndef SK_REGISTRY_H
#define SK_REGISTRY_H

#include <stddef.h>

#include <libpq-fe.h>

#include "stepkit.h"

/* Internal view of a registered workflow (a copy of sk_workflow_t with the
 * defaults applied). */
typedef struct {
    const char *id;
    sk_handler_fn handler;
    int max_attempts;
    sk_validate_fn validate;
    sk_retry_t retry;
    const char *const *events;
    const char *const *schedules;
    int step_timeout_ms; /* 0: the master's --step-timeout */
    sk_concurrency_t concurrency;
    sk_rate_t rate;
    int priority;
    sk_rate_t step_rate;
} sk_wf_t;

sk_registry_t *sk_registry_new(void);
void sk_registry_free(sk_registry_t *reg);
/* dlopen `path` and call its entry point. SK_ERROR with a message in err. */
int sk_registry_load(sk_registry_t *reg, const char *path, char *err, size_t errlen);
const sk_wf_t *sk_registry_find(const sk_registry_t *reg, const char *id);
size_t sk_registry_count(const sk_registry_t *reg);
const sk_wf_t *sk_registry_at(const sk_registry_t *reg, size_t i);
/* The message sk_register() left for the last failed registration. */
const char *sk_registry_error(const sk_registry_t *reg);

/* Upsert every workflow (id, max_attempts, triggers) into the schema's
 * workflows table on a blocking connection whose search_path is set; a
 * workflow that declares flow control has it set too (set_flow_control,
 * sql/010_flow.sql; set_step_rate, sql/013_flow_steps.sql); one that
 * declares none keeps what SQL set. */
int sk_registry_publish(const sk_registry_t *reg, PGconn *conn, char *err, size_t errlen);

#endif
