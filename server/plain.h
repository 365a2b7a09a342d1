/* Go's http.Error, the plain-text answer etcd gives for unknown routes ("404 page not found")
 * and wrong methods ("Method Not Allowed", with an Allow header), spec §1.4. Not here: the
 * HTTP layer's own answers to unparsable requests (response.c) and v2 JSON errors (kv). */
#ifndef KETCH_SERVER_PLAIN_H
#define KETCH_SERVER_PLAIN_H

#include "server/http_server.h"

enum { SRV_PLAIN_HEADERS_MAX = 16 }; /* extra headers beyond these are dropped */

/* Finishes req with status, the extra headers (borrowed; e.g. CORS, Allow), Content-Type
 * "text/plain; charset=utf-8", X-Content-Type-Options "nosniff", and text + "\n" as body
 * (a HEAD gets its length). */
void srv_respond_plain_error(struct srv_request *req, int status, const char *text,
                             const struct srv_header *extra, size_t extra_count);

#endif
