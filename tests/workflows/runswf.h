/*
 * The run-management test workflows (runswf.c): cancel, retry and starts,
 * counted like testwf.c's; registered from testwf.c's entry point.
 */
#ifndef RUNSWF_H
#define RUNSWF_H

#include <stepkit.h>

int runswf_register(sk_registry_t *reg);

#endif
