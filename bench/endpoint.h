/* Where ketch-bench sends its load: client URLs ("http://127.0.0.1:2379") parsed into
 * socket addresses, a blocking one-shot HTTP request for set-up steps (finding the leader,
 * reading an index), and leader discovery through GET /v2/members/leader (etcd 3.4 has no
 * /v2/leader; spec/etcd-v2-api.md §7.4). Not used on the measured path. */
#ifndef KETCH_BENCH_ENDPOINT_H
#define KETCH_BENCH_ENDPOINT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/assert.h"
#include "base/buf.h"

enum {
    BENCH_ENDPOINTS_MAX = 16,
    BENCH_URL_BYTES_MAX = 256,
};

struct bench_endpoint {
    char url[BENCH_URL_BYTES_MAX];       /* as given, without a trailing slash */
    char host_port[BENCH_URL_BYTES_MAX]; /* for the Host header */
    struct sockaddr_in addr;
};

/* Parses "http://HOST:PORT[/]" (HOST an IPv4 address or a name that resolves to one).
 * Returns 0, or K_ECONFIG with a message on stderr naming the URL. */
K_MUST_USE int bench_endpoint_parse(const char *url, struct bench_endpoint *out);

/* Parses a comma-separated list into eps[0..*n). Returns 0 or K_ECONFIG (empty list, more
 * than BENCH_ENDPOINTS_MAX, or a bad URL). */
K_MUST_USE int bench_endpoints_parse(const char *list, struct bench_endpoint *eps, size_t *n);

/* Sends one request with a form body (body may be NULL) and runs loop until the response
 * arrives or timeout_ms passes. loop must have nothing else to run. On success returns 0,
 * sets *status and appends the body to out (which the caller owns). Returns a negative
 * libuv error, UV_ETIMEDOUT, or K_EPROTO. */
K_MUST_USE int bench_fetch(uv_loop_t *loop, const struct bench_endpoint *ep, const char *method,
                           const char *path, const char *body, uint64_t timeout_ms, int *status,
                           uint64_t *etcd_index, struct k_buf *out);

/* Asks each endpoint in turn for the leader (GET /v2/members/leader) and parses its first
 * client URL into *leader; failing that, asks each for /v2/stats/self and takes the one
 * whose state is StateLeader. Returns 0, or K_ENOTFOUND when no endpoint named a leader
 * within timeout_ms per request. */
K_MUST_USE int bench_find_leader(uv_loop_t *loop, const struct bench_endpoint *eps, size_t n,
                                 uint64_t timeout_ms, struct bench_endpoint *leader);

#endif
