/*
 * Shared bits of the libFuzzer targets in tests/fuzz/.
 *
 * A target checks properties, not just "does not crash": a broken property
 * prints what was expected and aborts, which libFuzzer reports as a crash and
 * saves as an artifact like any sanitizer finding.
 */
#ifndef SK_FUZZ_H
#define SK_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz: %s:%d: property failed: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* An error message must be set, terminated inside its buffer and one line. */
#define FUZZ_CHECK_ERR(err, errlen)                                                                \
    do {                                                                                           \
        FUZZ_CHECK((err)[0] != '\0', "empty error message");                                       \
        FUZZ_CHECK(memchr((err), '\0', (errlen)) != NULL, "error message not terminated");         \
    } while (0)

#endif
