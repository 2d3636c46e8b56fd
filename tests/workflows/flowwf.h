/*
 * The flow-control test workflows (flowwf.c), part of
 * $(BUILD)/tests/testwf.so, registered from its entry point.
 *
 *   flow-call   concurrency 2 per input "customer".  Input {"customer": s,
 *               "ms": int, "fail": bool}: step "a" sleeps ms, the run sleeps
 *               20 ms (suspended: it keeps its slot), step "b" sleeps ms and
 *               fails for good when "fail".  Each body counts
 *               "iv:<customer>:<start us>:<end us>" (wall clock).
 *   flow-rated  rate 5 starts per 1000 ms per "customer", no concurrency
 *               limit: one step counting "iv:..." as above.
 *   flow-plain  no flow control: one step counting "iv:..." (priorities are
 *               given at start).
 */
#ifndef FLOWWF_H
#define FLOWWF_H

#include <stepkit.h>

int flowwf_register(sk_registry_t *reg);

#endif
