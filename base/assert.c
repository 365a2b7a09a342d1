/* The one place an assertion failure ends up; see base/assert.h. */
#include "assert.h"

#include <stdio.h>
#include <stdlib.h>

void k_assert_fail(const char *cond, const char *file, int line, const char *func)
{
    fprintf(stderr, "assertion failed: %s at %s:%d (%s)\n", cond, file, line, func);
    fflush(stderr);
    abort();
}
