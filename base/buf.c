/* Growable buffer; see base/buf.h. */
#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

void k_buf_init(struct k_buf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void k_buf_free(struct k_buf *b)
{
    free(b->data);
    k_buf_init(b);
}

void k_buf_reset(struct k_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

void k_buf_reserve(struct k_buf *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->data = k_xrealloc(b->data, cap);
    b->cap = cap;
}

void k_buf_append(struct k_buf *b, const void *data, size_t len)
{
    k_buf_reserve(b, len);
    if (len) memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void k_buf_puts(struct k_buf *b, const char *s)
{
    k_buf_append(b, s, strlen(s));
}

void k_buf_putc(struct k_buf *b, char c)
{
    k_buf_append(b, &c, 1);
}

void k_buf_printf(struct k_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    k_assert(n >= 0);
    if ((size_t)n < sizeof(small)) {
        k_buf_append(b, small, (size_t)n);
        return;
    }
    k_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void k_buf_put_u64(struct k_buf *b, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    k_buf_reserve(b, n);
    for (size_t i = 0; i < n; i++)
        b->data[b->len + i] = tmp[n - 1 - i];
    b->len += n;
    b->data[b->len] = '\0';
}
