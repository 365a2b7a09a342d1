/* Go's http.Error (net/http/server.go), written fresh. */
#include "plain.h"

#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"

void srv_respond_plain_error(struct srv_request *req, int status, const char *text,
                             const struct srv_header *extra, size_t extra_count)
{
    struct srv_header headers[SRV_PLAIN_HEADERS_MAX + 2];
    size_t n = 0;
    for (size_t i = 0; i < extra_count && n < SRV_PLAIN_HEADERS_MAX; i++)
        headers[n++] = extra[i];
    headers[n++] = (struct srv_header){ "Content-Type", "text/plain; charset=utf-8" };
    headers[n++] = (struct srv_header){ "X-Content-Type-Options", "nosniff" };
    size_t len = strlen(text);
    char *body = k_xmalloc(len + 1); /* text is a short message of ours */
    memcpy(body, text, len);
    body[len] = '\n';
    srv_respond_take(req, status, headers, n, body, len + 1);
}
