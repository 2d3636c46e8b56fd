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
 *   flow-steps  step rate FLOWWF_STEP_LIMIT executions per
 *               FLOWWF_STEP_PERIOD_MS per "customer".  Input {"customer": s,
 *               "ms": int, "flaky": bool, "fail": bool}: steps s1, s2 (fails
 *               its first execution when "flaky", retried at once), s3
 *               (fails for good when "fail").  Each execution counts
 *               "st:<customer>:<start us>" as it starts.
 *   flow-steps-group  the same step rate; a group of five run steps
 *               g0..g4 (each counts "st:..." as flow-steps' s1), output the
 *               array of their results.
 *   flow-hold   concurrency 1 per "customer": step "a" counting "iv:...",
 *               then a sleep of input "hold" ms (the slot stays held).
 */
#ifndef FLOWWF_H
#define FLOWWF_H

#include <stepkit.h>

#define FLOWWF_STEP_LIMIT     4
#define FLOWWF_STEP_PERIOD_MS 500

int flowwf_register(sk_registry_t *reg);

#endif
