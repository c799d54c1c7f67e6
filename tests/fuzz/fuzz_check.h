/* fuzz_check: the invariant check of the fuzz targets. A failed check is
 * a finding: it names the file and line and aborts, which libFuzzer
 * reports as a crash with the input that caused it. */
#ifndef FUZZ_CHECK_H
#define FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

/* Where findings go: a target that silences stderr (the daemons' logs)
 * points this at the real one first. */
static FILE *fuzz_err;

static inline void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(fuzz_err ? fuzz_err : stderr, "%s:%d: check failed: %s\n", file,
            line, what);
    abort();
}

#define S_CHECK(cond)                                                          \
    do {                                                                       \
        if (!(cond))                                                           \
            fuzz_fail(__FILE__, __LINE__, #cond);                              \
    } while (0)

#endif
