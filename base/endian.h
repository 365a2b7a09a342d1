/* Little-endian loads and stores for on-disk and on-wire formats (WAL records, snapshot
 * headers, peer frames): byte by byte, so they are correct on any host and need no
 * alignment. */
#ifndef KETCH_BASE_ENDIAN_H
#define KETCH_BASE_ENDIAN_H

#include <stdint.h>

static inline void k_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline void k_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t k_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t k_get_le64(const uint8_t *p)
{
    return (uint64_t)k_get_le32(p) | (uint64_t)k_get_le32(p + 4) << 32;
}

#endif
