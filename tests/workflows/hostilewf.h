/*
 * The hostile-input test workflows (hostilewf.c), in testwf.so: names of
 * any length for every kind of step, a step whose write the test makes the
 * database refuse, and a tour of every step kind for the least-privilege
 * test.  testwf.c's entry point calls hostilewf_register().
 */
#ifndef HOSTILEWF_H
#define HOSTILEWF_H

#include <stepkit.h>

int hostilewf_register(sk_registry_t *reg);

#endif
