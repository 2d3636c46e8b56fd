/*
 * The supervision test workflows (supwf.c): bodies that hang, crash their
 * worker, exit it, or outlive the lease, counted like testwf.c's.  Part of
 * $(BUILD)/tests/testwf.so, registered from its entry point.
 */
#ifndef SUPWF_H
#define SUPWF_H

#include <stepkit.h>

/* Register every supervision workflow: SK_OK or SK_ERROR. */
int supwf_register(sk_registry_t *reg);

#endif
