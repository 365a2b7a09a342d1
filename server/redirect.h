/* Go's ServeMux answer to a request whose decoded path is not clean (spec §1.5): 301 to the
 * cleaned path, query kept, with http.Redirect's body for GET. etcd sends it before any of
 * its handlers run, so a router calls srv_redirect_location first. Not here: cleaning itself
 * (path.c) and routing (ketchd). */
#ifndef KETCH_SERVER_REDIRECT_H
#define KETCH_SERVER_REDIRECT_H

#include "server/http_server.h"

/* If req's decoded path is not clean, sets *location to Go's Location value (the cleaned
 * path escaped as Go escapes paths, then "?" and the raw query if there is one), allocated
 * in req's arena, and returns 1. Returns 0 when the path is clean (nothing to do), or
 * K_ELIMIT when req's arena budget is spent. */
K_MUST_USE int srv_redirect_location(struct srv_request *req, const char **location);

/* Finishes req with Go's 301: extra headers (borrowed, e.g. the CORS ones), Content-Type
 * text/html for GET and HEAD,
 * Location (non-ASCII bytes hex-escaped), and for GET the body
 * `<a href="<location, HTML-escaped>">Moved Permanently</a>.\n\n`. */
void srv_respond_moved(struct srv_request *req, const char *location,
                       const struct srv_header *extra, size_t extra_count);

#endif
