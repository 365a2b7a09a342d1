/* The blocking HTTP client discovery runs on (libcurl), with waits that SIGTERM and SIGINT
 * cut short. Discovery runs at start-up before ketchd's loop turns, so the loop's signal
 * handling cannot stop it: while a client is open it owns SIGTERM and SIGINT (a handler that
 * wakes any request or sleep in progress) and gives them back when closed. One client at a
 * time per process. Not for anything that runs on the loop. */
#ifndef KETCH_SERVER_DISCOVERY_HTTP_H
#define KETCH_SERVER_DISCOVERY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/buf.h"

enum {
    /* A reply body larger than this is refused (a registry of SRV_DISCOVERY_NODES_MAX
     * registrations fits many times over). */
    SRV_DHTTP_BODY_BYTES_MAX = 4 << 20,
    /* etcd's client gives every non-watch request 5 s (client.DefaultRequestTimeout). */
    SRV_DHTTP_REQUEST_TIMEOUT_MS = 5000,
    /* etcd's discovery transport dials for at most 30 s. */
    SRV_DHTTP_CONNECT_TIMEOUT_MS = 30000,
};

struct srv_dhttp;

struct srv_dhttp_response {
    long status;         /* HTTP status */
    struct k_buf body;   /* the body (owned; k_buf_free, or reused by the next request) */
    uint64_t etcd_index; /* X-Etcd-Index, when has_etcd_index */
    bool has_etcd_index;
};

/* Opens a client. proxy is --discovery-proxy (any URL or host:port libcurl takes) or NULL:
 * without it no proxy is used, not even one from http_proxy, as etcd's discovery does.
 * Takes over SIGTERM and SIGINT until srv_dhttp_close(). Returns 0, or K_ECONFIG / a
 * negative errno with err set. */
K_MUST_USE int srv_dhttp_open(struct srv_dhttp **out, const char *proxy, char *err, size_t err_len);

/* Gives SIGTERM and SIGINT back to the handlers they had at open and frees h (NULL: no-op). A
 * signal that arrived meanwhile is not delivered again. */
void srv_dhttp_close(struct srv_dhttp *h);

/* Sends one request and waits for the whole reply. method is "GET" or "PUT"; form_body, if
 * not NULL, is sent as application/x-www-form-urlencoded. timeout_ms bounds the whole
 * request, 0 for none (watches). A PUT goes on a new connection, never re-sent by libcurl
 * behind the caller's back. Returns 0 with resp filled for any HTTP status; -EAGAIN
 * when the server could not be reached or the transfer failed (err says why: retry later);
 * K_ESTOPPED if SIGTERM or SIGINT arrived; K_ELIMIT for a body over SRV_DHTTP_BODY_BYTES_MAX;
 * K_ECONFIG for a URL libcurl refuses. resp->body is reset first. */
K_MUST_USE int srv_dhttp_request(struct srv_dhttp *h, const char *method, const char *url,
                                 const char *form_body, uint32_t timeout_ms,
                                 struct srv_dhttp_response *resp, char *err, size_t err_len);

/* Sleeps for ms; returns 0, or K_ESTOPPED as soon as SIGTERM or SIGINT arrives. */
K_MUST_USE int srv_dhttp_sleep(struct srv_dhttp *h, uint32_t ms);

/* The signal that stopped h (SIGTERM or SIGINT), or 0. */
int srv_dhttp_stop_signal(const struct srv_dhttp *h);

/* Percent-encodes s for a form body or query value (libcurl's escaping). Caller frees. */
char *srv_dhttp_escape(struct srv_dhttp *h, const char *s);

#endif
