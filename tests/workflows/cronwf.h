/* The cron test workflow, registered by testwf.c's entry point. */
#ifndef CRONWF_H
#define CRONWF_H

#include <stepkit.h>

int testwf_cron_register(sk_registry_t *reg);

#endif
