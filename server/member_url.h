/* URLs of members (peer and client), as etcd's flags and /v2/members take them:
 * scheme http, https, unix or unixs; a host:port; no path. */
#ifndef KETCH_SERVER_MEMBER_URL_H
#define KETCH_SERVER_MEMBER_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"

enum { SRV_URL_HOST_BYTES_MAX = 256, SRV_URL_TEXT_BYTES_MAX = 512, SRV_URL_LIST_MAX = 16 };

struct srv_url {
    char text[SRV_URL_TEXT_BYTES_MAX]; /* as given, e.g. "http://127.0.0.1:2379" */
    char scheme[8];                    /* "http", "https", "unix" or "unixs" */
    char host[SRV_URL_HOST_BYTES_MAX]; /* without brackets for IPv6 */
    uint16_t port;
    bool tls; /* https or unixs */
};

struct srv_url_list {
    size_t count;
    struct srv_url urls[SRV_URL_LIST_MAX];
};

/* Parses one URL. On failure returns K_ECONFIG and writes etcd's message to err, e.g.
 * `URL scheme must be http, https, unix, or unixs: notaurl`. */
K_MUST_USE int srv_url_parse(const char *text, struct srv_url *out, char *err, size_t err_len);

/* Parses a comma-separated list (etcd's URL list flags); empty items are an error. */
K_MUST_USE int srv_url_list_parse(const char *text, struct srv_url_list *out, char *err,
                                  size_t err_len);

/* Returns true if both lists hold the same URLs, in any order. */
bool srv_url_list_equal_unordered(const struct srv_url_list *a, const struct srv_url_list *b);

#endif
