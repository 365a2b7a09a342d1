/* Allocation helpers (STYLE.md §2). The k_x* family aborts naming file, line and size when
 * memory cannot be had: use it for small, bounded allocations. Sizes that come from outside
 * (a snapshot chunk, a large value) are checked against their limit and then allocated with
 * k_trymalloc, which returns NULL so only that request fails. */
#ifndef KETCH_BASE_ALLOC_H
#define KETCH_BASE_ALLOC_H

#include <stddef.h>

#include "assert.h"

void *k_xmalloc_at(size_t size, const char *file, int line);
void *k_xcalloc_at(size_t n, size_t size, const char *file, int line);
void *k_xrealloc_at(void *p, size_t size, const char *file, int line);
char *k_xstrdup_at(const char *s, const char *file, int line);
char *k_xstrndup_at(const char *s, size_t n, const char *file, int line);

/* Each returns memory the caller frees with free(); never returns NULL. */
#define k_xmalloc(size)     k_xmalloc_at((size), __FILE__, __LINE__)
#define k_xcalloc(n, size)  k_xcalloc_at((n), (size), __FILE__, __LINE__)
#define k_xrealloc(p, size) k_xrealloc_at((p), (size), __FILE__, __LINE__)
#define k_xstrdup(s)        k_xstrdup_at((s), __FILE__, __LINE__)
#define k_xstrndup(s, n)    k_xstrndup_at((s), (n), __FILE__, __LINE__)

/* Returns NULL when memory cannot be had; the caller frees with free(). */
K_MUST_USE void *k_trymalloc(size_t size);

#endif
