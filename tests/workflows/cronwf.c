/*
 * The cron test workflow, compiled into $(BUILD)/tests/testwf.so next to
 * testwf.c: "cron-every-second", started by the schedule "@every 1s".
 *
 * The schedule is only set when STEPKIT_TEST_CRON is non-empty in the
 * master's environment: every other test loads the same library, and a run
 * every second would land in their counts.  Without it the workflow is
 * registered but starts only when invoked.
 *
 * Counting, as in testwf.c: "<run_id> <key>\n" lines appended to the file
 * named by STEPKIT_TEST_COUNTS with one write(2) each; keys "handler",
 * "record" (the step body) and "after".  The output is what the handler saw
 * of its input: {"tick", "schedule", "type", "name"}.
 *
 * testwf.c's entry point calls testwf_cron_register().
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <stepkit.h>

#include "wfcount.h"

#include "cronwf.h"

/* The registry keeps the pointer: static storage. */
static const char *const every_second[] = {"@every 1s", NULL};

static int pack_or_nil(msgpack_packer *out, const msgpack_object *o)
{
    return o != NULL ? sk_pack_object(out, o) : msgpack_pack_nil(out);
}

static int pack_key(msgpack_packer *out, const char *key)
{
    return sk_pack_str(out, key);
}

/* The step: returns the tick it was started for. */
static int record_tick(sk_ctx_t *ctx, msgpack_packer *out, void *arg)
{
    (void)arg;
    wf_count(ctx, "record");
    return pack_or_nil(out, sk_get(sk_data(ctx), "tick"));
}

static int cron_every_second(sk_ctx_t *ctx, msgpack_packer *out)
{
    const msgpack_object *tick, *input = sk_input(ctx);

    wf_count(ctx, "handler");
    SK_STEP(sk_run(ctx, "record", record_tick, NULL, &tick));
    wf_count(ctx, "after");
    if (msgpack_pack_map(out, 4) || pack_key(out, "tick") || pack_or_nil(out, tick) ||
        pack_key(out, "schedule") || pack_or_nil(out, sk_get(sk_data(ctx), "schedule")) ||
        pack_key(out, "type") || pack_or_nil(out, sk_get(input, "type")) || pack_key(out, "name") ||
        pack_or_nil(out, sk_get(input, "name")))
        return SK_ERROR;
    return SK_OK;
}

int testwf_cron_register(sk_registry_t *reg)
{
    const char *on = getenv("STEPKIT_TEST_CRON");
    const char *const *schedules = NULL;

    if (on != NULL && *on != '\0')
        schedules = every_second;
    return sk_register(reg, &(sk_workflow_t){.id = "cron-every-second",
                                             .handler = cron_every_second,
                                             .retry = SK_RETRY(0, 1, 0),
                                             .schedules = schedules});
}
