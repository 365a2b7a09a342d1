/* JSON string output exactly as Go's encoding/json writes strings (etcd's bodies; spec
 * §4.3): '<' '>' '&' as \u003c \u003e \u0026, U+2028/U+2029 escaped, '"' and '\' escaped,
 * \n \r \t short, other control bytes as \u00XX, each invalid UTF-8 byte as \ufffd, valid
 * UTF-8 raw. For error bodies of the HTTP layer and anyone else who needs it; the kv event
 * serializer is kv's. */
#ifndef KETCH_SERVER_JSON_OUT_H
#define KETCH_SERVER_JSON_OUT_H

#include <stddef.h>

#include "server/arena.h"

/* Bytes srv_json_escape writes for s[0..len), quotes included. */
size_t srv_json_quoted_len(const char *s, size_t len);

/* Writes s[0..len) as a quoted JSON string into out (srv_json_quoted_len bytes, no NUL);
 * returns the bytes written. */
size_t srv_json_quote(const char *s, size_t len, char *out);

/* The quoted string, NUL-terminated, in arena; NULL when the budget is spent. */
K_MUST_USE char *srv_json_quote_arena(struct srv_arena *arena, const char *s, size_t len);

#endif
