/*
 * Group test workflows (groupwf.c): the member a group's worker keeps for
 * itself fails, or kills its worker, and is retried.  Part of
 * $(BUILD)/tests/testwf.so, registered from its entry point.
 */
#ifndef GROUPWF_H
#define GROUPWF_H

#include <stepkit.h>

/* Register every group retry workflow: SK_OK or SK_ERROR. */
int groupwf_register(sk_registry_t *reg);

#endif
