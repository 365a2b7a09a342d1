/* Go's path.Clean and net/http's cleanPath, written fresh: one left-to-right pass that writes
 * the cleaned path into a buffer no longer than the input plus a leading and trailing '/'. */
#include "path.h"

#include <stdbool.h>
#include <string.h>

#include "base/err.h"

int srv_path_clean(struct srv_arena *arena, const char *path, size_t len, char **out,
                   size_t *out_len)
{
    char *buf = srv_arena_alloc(arena, len + 3);
    if (buf == NULL) return K_ELIMIT;
    size_t w = 0;
    buf[w++] = '/'; /* cleanPath roots every path; the input's own leading '/' is a separator */
    size_t r = 0;
    while (r < len) {
        if (path[r] == '/') {
            r++;
            continue;
        }
        size_t end = r;
        while (end < len && path[end] != '/')
            end++;
        size_t seg = end - r;
        if (seg == 1 && path[r] == '.') {
            /* "." element: drop it */
        } else if (seg == 2 && path[r] == '.' && path[r + 1] == '.') {
            /* ".." element: back up to the previous '/', never above the root */
            if (w > 1) {
                w--; /* the '/' after the previous element */
                while (w > 1 && buf[w - 1] != '/')
                    w--;
            }
        } else {
            memcpy(buf + w, path + r, seg);
            w += seg;
            buf[w++] = '/';
        }
        r = end;
    }
    /* Every element was followed by '/'; drop it unless the input ended with one. */
    bool trailing = len > 0 && path[len - 1] == '/';
    if (w > 1 && !trailing) w--;
    k_assert(w >= 1 && w <= len + 2);
    k_assert(buf[0] == '/');
    buf[w] = '\0';
    *out = buf;
    *out_len = w;
    return 0;
}
