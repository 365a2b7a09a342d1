/* Path cleaning as Go's http.ServeMux does before any etcd handler runs: a request whose
 * decoded path is not clean ("//", "/./", "/../", a trailing "/." or "/..") is answered
 * with a 301 to the cleaned path (spec/etcd-v2-api.md §1.5). A single trailing slash is
 * clean. Not here: percent-decoding (url.c), key normalisation inside the store (kv/). */
#ifndef KETCH_SERVER_PATH_H
#define KETCH_SERVER_PATH_H

#include <stddef.h>

#include "base/assert.h"
#include "server/arena.h"

/* Computes Go's cleanPath(path): a leading '/' added, path.Clean applied (runs of '/'
 * collapse, "." dropped, ".." removes the previous element and stops at the root), and a
 * trailing '/' kept when the input had one (unless the result is "/"). The input is the
 * decoded path and may contain NUL bytes. On success *out is a NUL-terminated string in
 * arena of *out_len bytes and 0 is returned; K_ELIMIT when the arena budget is spent. */
K_MUST_USE int srv_path_clean(struct srv_arena *arena, const char *path, size_t len, char **out,
                              size_t *out_len);

#endif
