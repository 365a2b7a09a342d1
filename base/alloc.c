/* Aborting allocators; see base/alloc.h for when to use which. */
#include "alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

K_NORETURN static void out_of_memory(size_t size, const char *file, int line)
{
    fprintf(stderr, "out of memory: %zu bytes at %s:%d\n", size, file, line);
    fflush(stderr);
    abort();
}

void *k_xmalloc_at(size_t size, const char *file, int line)
{
    void *p = malloc(size ? size : 1);
    if (!p) out_of_memory(size, file, line);
    return p;
}

void *k_xcalloc_at(size_t n, size_t size, const char *file, int line)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) out_of_memory(n * size, file, line);
    return p;
}

void *k_xrealloc_at(void *p, size_t size, const char *file, int line)
{
    void *q = realloc(p, size ? size : 1);
    if (!q) out_of_memory(size, file, line);
    return q;
}

char *k_xstrdup_at(const char *s, const char *file, int line)
{
    return k_xstrndup_at(s, strlen(s), file, line);
}

char *k_xstrndup_at(const char *s, size_t n, const char *file, int line)
{
    size_t len = strnlen(s, n);
    char *p = k_xmalloc_at(len + 1, file, line);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

void *k_trymalloc(size_t size)
{
    return malloc(size ? size : 1);
}
