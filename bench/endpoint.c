/* Endpoint parsing and set-up requests; see endpoint.h. */
#include "endpoint.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "http_conn.h"

int bench_endpoint_parse(const char *url, struct bench_endpoint *out)
{
    static const char scheme[] = "http://";
    memset(out, 0, sizeof(*out));
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        len--;
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0 || len >= sizeof(out->url)) {
        fprintf(stderr, "ketch-bench: bad endpoint %s (want http://HOST:PORT)\n", url);
        return K_ECONFIG;
    }
    memcpy(out->url, url, len);
    const char *hp = out->url + sizeof(scheme) - 1;
    snprintf(out->host_port, sizeof(out->host_port), "%s", hp);
    char *colon = strrchr(out->host_port, ':');
    if (!colon || strchr(hp, '/') || colon[1] == '\0') {
        fprintf(stderr, "ketch-bench: bad endpoint %s (want http://HOST:PORT)\n", url);
        return K_ECONFIG;
    }
    char host[BENCH_URL_BYTES_MAX];
    snprintf(host, sizeof(host), "%.*s", (int)(colon - out->host_port), out->host_port);
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535) {
        fprintf(stderr, "ketch-bench: bad port in endpoint %s\n", url);
        return K_ECONFIG;
    }
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        fprintf(stderr, "ketch-bench: cannot resolve %s: %s\n", host, gai_strerror(rc));
        return K_ECONFIG;
    }
    memcpy(&out->addr, res->ai_addr, sizeof(out->addr));
    out->addr.sin_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return 0;
}

int bench_endpoints_parse(const char *list, struct bench_endpoint *eps, size_t *n)
{
    *n = 0;
    char *copy = k_xstrdup(list);
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == BENCH_ENDPOINTS_MAX) {
            fprintf(stderr, "ketch-bench: more than %d endpoints\n", BENCH_ENDPOINTS_MAX);
            rc = K_ECONFIG;
            break;
        }
        rc = bench_endpoint_parse(tok, &eps[*n]);
        if (rc < 0) break;
        (*n)++;
    }
    free(copy);
    if (rc == 0 && *n == 0) {
        fprintf(stderr, "ketch-bench: no endpoints given\n");
        rc = K_ECONFIG;
    }
    return rc;
}

/* State of one bench_fetch(), reached through conn.data and timer.data. */
struct fetch {
    struct bench_conn conn;
    uv_timer_t timer;
    struct k_buf request;
    struct k_buf *out;
    int status;
    uint64_t etcd_index;
    int rc;      /* 1 while running */
    int handles; /* open handles: timer + connection */
};

static void fetch_connected(struct bench_conn *c)
{
    struct fetch *f = c->data;
    int rc = bench_conn_send(c, f->request.data, f->request.len, 0);
    if (rc < 0) f->rc = rc; /* failed_cb follows and closes the rest */
}

static void fetch_response(struct bench_conn *c, const struct bench_response *r)
{
    struct fetch *f = c->data;
    f->status = r->status;
    f->etcd_index = r->etcd_index;
    k_buf_append(f->out, r->body, r->body_len);
    f->rc = 0;
    bench_conn_close(c);
}

static void fetch_timer_closed(uv_handle_t *h)
{
    struct fetch *f = h->data;
    f->handles--;
}

static void fetch_failed(struct bench_conn *c, int err, size_t inflight)
{
    struct fetch *f = c->data;
    if (f->rc == 1) f->rc = err < 0 ? err : K_EPROTO;
    f->handles--;
    uv_timer_stop(&f->timer);
    if (!uv_is_closing((uv_handle_t *)&f->timer))
        uv_close((uv_handle_t *)&f->timer, fetch_timer_closed);
}

static void fetch_timeout(uv_timer_t *t)
{
    struct fetch *f = t->data;
    if (f->rc == 1) f->rc = UV_ETIMEDOUT;
    bench_conn_close(&f->conn);
}

static const struct bench_conn_cbs fetch_cbs = {
    .connect_cb = fetch_connected,
    .response_cb = fetch_response,
    .failed_cb = fetch_failed,
};

int bench_fetch(uv_loop_t *loop, const struct bench_endpoint *ep, const char *method,
                const char *path, const char *body, uint64_t timeout_ms, int *status,
                uint64_t *etcd_index, struct k_buf *out)
{
    struct fetch *f = k_xcalloc(1, sizeof(*f));
    bench_conn_init(&f->conn, loop, &fetch_cbs);
    f->conn.data = f;
    f->out = out;
    f->rc = 1;
    k_buf_init(&f->request);
    k_buf_printf(&f->request, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, ep->host_port);
    if (body) {
        k_buf_printf(
                &f->request,
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n%s",
                strlen(body), body);
    } else {
        k_buf_puts(&f->request, "\r\n");
    }
    k_assert(uv_timer_init(loop, &f->timer) == 0);
    f->timer.data = f;
    k_assert(uv_timer_start(&f->timer, fetch_timeout, timeout_ms, 0) == 0);
    f->handles = 2;
    bench_conn_open(&f->conn, &ep->addr);
    while (f->handles > 0)
        uv_run(loop, UV_RUN_ONCE);
    int rc = f->rc;
    *status = f->status;
    if (etcd_index) *etcd_index = f->etcd_index;
    k_buf_free(&f->request);
    bench_conn_deinit(&f->conn);
    free(f);
    return rc;
}

/* Parses {"clientURLs":["http://..."]} (the leader's member object) into ep. */
static int leader_from_json(const char *json, struct bench_endpoint *ep)
{
    cJSON *root = cJSON_Parse(json);
    if (!root) return K_EPROTO;
    int rc = K_EPROTO;
    cJSON *urls = cJSON_GetObjectItemCaseSensitive(root, "clientURLs");
    cJSON *first = cJSON_IsArray(urls) ? cJSON_GetArrayItem(urls, 0) : NULL;
    if (cJSON_IsString(first)) rc = bench_endpoint_parse(first->valuestring, ep);
    cJSON_Delete(root);
    return rc;
}

/* Returns true when a /v2/stats/self body says "state":"StateLeader" (spec §9.1). */
static bool stats_say_leader(const char *json)
{
    cJSON *root = cJSON_Parse(json);
    if (!root) return false;
    cJSON *state = cJSON_GetObjectItemCaseSensitive(root, "state");
    bool leader = cJSON_IsString(state) && strcmp(state->valuestring, "StateLeader") == 0;
    cJSON_Delete(root);
    return leader;
}

/* One GET for leader discovery; returns the body (caller frees with k_buf_free) or rc. */
static int fetch_json(uv_loop_t *loop, const struct bench_endpoint *ep, const char *path,
                      uint64_t timeout_ms, struct k_buf *body)
{
    int status = 0;
    int rc = bench_fetch(loop, ep, "GET", path, NULL, timeout_ms, &status, NULL, body);
    if (rc == 0 && (status != 200 || !body->data)) rc = K_ENOTFOUND;
    return rc;
}

int bench_find_leader(uv_loop_t *loop, const struct bench_endpoint *eps, size_t n,
                      uint64_t timeout_ms, struct bench_endpoint *leader)
{
    /* etcd 3.4 names the leader at /v2/members/leader; a server without that route is asked
     * for /v2/stats/self on every endpoint instead, and the one in StateLeader wins. */
    for (size_t i = 0; i < n; i++) {
        struct k_buf body;
        k_buf_init(&body);
        int rc = fetch_json(loop, &eps[i], "/v2/members/leader", timeout_ms, &body);
        if (rc == 0) rc = leader_from_json(body.data, leader);
        k_buf_free(&body);
        if (rc == 0) return 0;
    }
    for (size_t i = 0; i < n; i++) {
        struct k_buf body;
        k_buf_init(&body);
        int rc = fetch_json(loop, &eps[i], "/v2/stats/self", timeout_ms, &body);
        bool found = rc == 0 && stats_say_leader(body.data);
        k_buf_free(&body);
        if (found) {
            *leader = eps[i];
            return 0;
        }
    }
    return K_ENOTFOUND;
}
