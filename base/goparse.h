/* Go's strconv parsing rules, which etcd's flags and request parameters follow, so ketch
 * accepts and refuses exactly what etcd does. */
#ifndef KETCH_BASE_GOPARSE_H
#define KETCH_BASE_GOPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* strconv.ParseBool on s[0..len): 1 t T TRUE true True, 0 f F FALSE false False; nothing
 * else (not the empty string). Returns true and sets *out, or false. */
bool k_go_parse_bool(const char *s, size_t len, bool *out);

/* strconv.ParseUint(s, 10, 64) on s[0..len): decimal digits only, no sign, no overflow.
 * Returns true and sets *out, or false. */
bool k_go_parse_uint10(const char *s, size_t len, uint64_t *out);

#endif
