/*
 * The step-model test workflows (stepwf.c): sleep, signals, child runs and
 * parallel groups, counted like testwf.c's.  They live in the same library
 * ($(BUILD)/tests/testwf.so), whose single SK_WORKFLOWS entry point calls
 * stepwf_register().
 */
#ifndef STEPWF_H
#define STEPWF_H

#include <stepkit.h>

/* Register every step-model workflow: SK_OK or SK_ERROR. */
int stepwf_register(sk_registry_t *reg);

#endif
