/*
 * sk_heritage - what a forked worker inherits from the master, and the
 * worker's entry point.  This is the one interface between master/ and
 * worker/: neither includes the other.
 */
#ifndef SK_HERITAGE_H
#define SK_HERITAGE_H

#include "sk_registry.h"
#include "sk_shm.h"

typedef struct {
    sk_shm_t *shm;            /* shared region, mapped before fork */
    int slot;                 /* this worker's slot in shm */
    int alive_fd;             /* read end of the master's alive pipe: EOF = master died */
    const sk_registry_t *reg; /* workflows loaded by the master before fork */
} sk_heritage_t;

/* Runs the worker until it is told to stop; returns the process exit code
 * (0 clean, 1 crash: restart me, 2 fatal: configuration or schema). */
int sk_worker_main(const sk_heritage_t *h);

#endif
