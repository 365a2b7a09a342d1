/* A growable byte buffer for building output (HTTP responses, JSON, metrics text).
 * The bytes are owned by the buffer until k_buf_free(); k_buf_reset() keeps the memory
 * for reuse. Appends abort on allocation failure (base/alloc.h). */
#ifndef KETCH_BASE_BUF_H
#define KETCH_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct k_buf {
    char *data; /* NUL-terminated when len < cap; NULL before the first append */
    size_t len;
    size_t cap;
};

void k_buf_init(struct k_buf *b);
void k_buf_free(struct k_buf *b);  /* frees the memory; b can be used again after init */
void k_buf_reset(struct k_buf *b); /* len = 0, memory kept */
void k_buf_reserve(struct k_buf *b, size_t extra); /* room for extra more bytes */
void k_buf_append(struct k_buf *b, const void *data, size_t len);
void k_buf_puts(struct k_buf *b, const char *s);
void k_buf_putc(struct k_buf *b, char c);
void k_buf_printf(struct k_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void k_buf_put_u64(struct k_buf *b, uint64_t v); /* decimal, fast path for indexes */

#endif
