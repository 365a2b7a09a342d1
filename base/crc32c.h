/* CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected), the checksum of WAL records and
 * snapshot files. Uses the SSE4.2 crc32 instruction where the CPU has it, else a
 * slicing-by-8 table. Same value either way (RFC 3720 §B.4 test vectors in
 * tests/unit/test_crc32c.c). */
#ifndef KETCH_BASE_CRC32C_H
#define KETCH_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 for a fresh checksum) over len bytes at data; returns the new value.
 * k_crc32c(k_crc32c(0, a, n), b, m) equals the CRC of a followed by b. */
uint32_t k_crc32c(uint32_t crc, const void *data, size_t len);

/* The portable table version, exposed so tests can check both paths agree. */
uint32_t k_crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
