/* Closed-loop request workloads; see workload.h. A run moves through phases: PRELOAD
 * (get/mixed/cas: write every key once so reads find them), WARMUP, MEASURE, DRAIN (stop
 * issuing, let answers in flight arrive, count none of them) and DONE. A request is
 * measured when it was sent during MEASURE and answered before MEASURE ended. */
#include "workload.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "http_conn.h"

enum phase { PHASE_PRELOAD, PHASE_WARMUP, PHASE_MEASURE, PHASE_DRAIN, PHASE_DONE };

/* What a request was, packed into its tag: bit 0 measured, bits 1..3 kind, key above. */
enum req_kind { REQ_PRELOAD, REQ_PUT, REQ_GET, REQ_CAS_GET, REQ_CAS_PUT };

static const uint64_t RECONNECT_DELAY_MS = 50;
static const uint64_t WATCHDOG_PERIOD_MS = 50;
static const uint64_t DRAIN_MAX_NS = 2000000000ull; /* answers in flight get this long */
/* Preload, or a --requests run, with no answer at all for this many request timeouts (a
 * server that refuses every connection) ends instead of retrying forever. */
static const uint64_t STALL_TIMEOUTS = 3;

struct runner;

struct client {
    struct bench_conn conn;
    struct runner *r;
    size_t endpoint;
    struct k_prng prng;
    struct k_buf req;      /* request being formatted, reused */
    uv_timer_t retry;      /* reconnect delay */
    int close_reason;      /* set before we close the connection ourselves */
    uint64_t cas_start_ns; /* cas: when the GET of the current op was sent */
};

struct runner {
    uv_loop_t *loop;
    const struct bench_config *cfg;
    struct bench_result *res;
    struct client *clients;
    size_t nclients;
    uv_timer_t phase_timer;
    uv_timer_t watchdog;
    enum phase phase;
    uint64_t phase_start_ns;
    uint64_t progress_ns;  /* last answer, or phase change */
    uv_timer_t rate_timer; /* --rate: moves rate_due along the schedule */
    uint64_t rate_t0_ns;   /* --rate: when the schedule began (warm-up start) */
    uint64_t rate_due;     /* --rate: requests due so far */
    uint64_t rate_sent;    /* --rate: requests sent so far; the next is due at t0 + sent/rate */
    uint64_t measure_start_ns;
    uint64_t measure_end_ns;
    uint64_t preload_keys; /* keys written before warm-up: [0, preload_keys) */
    uint64_t preload_next; /* next key to preload */
    uint64_t preload_done; /* preload writes answered */
    uint64_t issued;       /* measured requests (ops) sent, count mode */
    uint64_t done;         /* measured requests (ops) finished, count mode */
    uint64_t bytes_sent0;  /* connection counters when MEASURE began */
    uint64_t bytes_recv0;
    struct bench_keygen keygen;
    char *value; /* value_bytes of [a-z0-9], NUL-terminated */
};

static void runner_enter(struct runner *r, enum phase p);
static void client_fill(struct client *cl);

static uint64_t tag_make(enum req_kind kind, uint64_t key, bool measured)
{
    return (key << 4) | ((uint64_t)kind << 1) | (measured ? 1u : 0u);
}

static enum req_kind tag_kind(uint64_t tag)
{
    return (enum req_kind)((tag >> 1) & 7u);
}

static uint64_t tag_key(uint64_t tag)
{
    return tag >> 4;
}

static bool tag_measured(uint64_t tag)
{
    return tag & 1u;
}

static bool runner_may_issue(const struct runner *r)
{
    switch (r->phase) {
    case PHASE_PRELOAD:
        return r->preload_next < r->preload_keys;
    case PHASE_WARMUP:
        return !r->cfg->rate || r->rate_sent < r->rate_due;
    case PHASE_MEASURE:
        if (r->cfg->requests && r->issued >= r->cfg->requests) return false;
        return !r->cfg->rate || r->rate_sent < r->rate_due;
    case PHASE_DRAIN:
    case PHASE_DONE:
        return false;
    }
    return false;
}

static void client_format_put(struct client *cl, uint64_t key, uint64_t prev_index)
{
    const struct bench_config *cfg = cl->r->cfg;
    const struct bench_endpoint *ep = &cfg->endpoints[cl->endpoint];
    size_t body_len = 6 + cfg->value_bytes;
    char prev[40] = "";
    if (prev_index)
        body_len += (size_t)snprintf(prev, sizeof(prev), "&prevIndex=%" PRIu64, prev_index);
    k_buf_reset(&cl->req);
    k_buf_printf(&cl->req,
                 "PUT /v2/keys/%s/k%010" PRIu64 " HTTP/1.1\r\nHost: %s\r\n"
                 "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %zu\r\n\r\n",
                 cfg->prefix, key, ep->host_port, body_len);
    k_buf_puts(&cl->req, "value=");
    k_buf_append(&cl->req, cl->r->value, cfg->value_bytes);
    k_buf_puts(&cl->req, prev);
}

static void client_format_get(struct client *cl, uint64_t key, bool quorum)
{
    const struct bench_config *cfg = cl->r->cfg;
    k_buf_reset(&cl->req);
    k_buf_printf(&cl->req, "GET /v2/keys/%s/k%010" PRIu64 "%s HTTP/1.1\r\nHost: %s\r\n\r\n",
                 cfg->prefix, key, quorum ? "?quorum=true" : "",
                 cfg->endpoints[cl->endpoint].host_port);
}

/* Sends cl->req; a failure closes the connection and failed_cb does the accounting. With
 * --rate, a load request's latency starts when it was due, not when a connection was free
 * (otherwise a slow server would hide its queue: coordinated omission). */
static bool client_send(struct client *cl, uint64_t tag)
{
    struct runner *r = cl->r;
    uint64_t start_ns = uv_hrtime();
    if (r->cfg->rate && tag_kind(tag) != REQ_PRELOAD) {
        start_ns = r->rate_t0_ns + (uint64_t)((double)r->rate_sent * 1e9 / (double)r->cfg->rate);
        r->rate_sent++;
    }
    return bench_conn_send_at(&cl->conn, cl->req.data, cl->req.len, tag, start_ns) == 0;
}

static bool client_issue(struct client *cl)
{
    struct runner *r = cl->r;
    const struct bench_config *cfg = r->cfg;
    if (r->phase == PHASE_PRELOAD) {
        uint64_t key = r->preload_next++;
        client_format_put(cl, key, 0);
        return client_send(cl, tag_make(REQ_PRELOAD, key, false));
    }
    bool measured = r->phase == PHASE_MEASURE;
    if (measured) r->issued++;
    switch (cfg->workload) {
    case BENCH_WORKLOAD_PUT: {
        uint64_t key = bench_keygen_next(&r->keygen, &cl->prng);
        client_format_put(cl, key, 0);
        return client_send(cl, tag_make(REQ_PUT, key, measured));
    }
    case BENCH_WORKLOAD_GET: {
        uint64_t key = bench_keygen_next(&r->keygen, &cl->prng);
        client_format_get(cl, key, cfg->quorum);
        return client_send(cl, tag_make(REQ_GET, key, measured));
    }
    case BENCH_WORKLOAD_MIXED: {
        uint64_t key = bench_keygen_next(&r->keygen, &cl->prng);
        if (k_prng_chance(&cl->prng, cfg->read_per_million)) {
            client_format_get(cl, key, cfg->quorum);
            return client_send(cl, tag_make(REQ_GET, key, measured));
        }
        client_format_put(cl, key, 0);
        return client_send(cl, tag_make(REQ_PUT, key, measured));
    }
    case BENCH_WORKLOAD_CAS: {
        uint64_t key = k_prng_below(&cl->prng, cfg->cas_keys);
        client_format_get(cl, key, false);
        cl->cas_start_ns = uv_hrtime();
        return client_send(cl, tag_make(REQ_CAS_GET, key, measured));
    }
    case BENCH_WORKLOAD_WATCH:
        break;
    }
    k_assert(!"request workload");
    return false;
}

static void client_fill(struct client *cl)
{
    size_t depth = cl->r->cfg->workload == BENCH_WORKLOAD_CAS ? 1 : cl->r->cfg->pipeline;
    while (cl->conn.state == BENCH_CONN_OPEN && bench_conn_inflight(&cl->conn) < depth &&
           runner_may_issue(cl->r)) {
        if (!client_issue(cl)) return;
    }
}

/* Returns the node's modifiedIndex from a GET body, or 0. The node object comes first
 * and holds no nested object, so the first "modifiedIndex" is the node's (spec §4.3). */
static uint64_t body_modified_index(const char *body)
{
    const char *p = strstr(body, "\"modifiedIndex\":");
    return p ? strtoull(p + 16, NULL, 10) : 0;
}

/* A measured op finished: count it unless the measured window has closed. */
static bool runner_count(struct runner *r, uint64_t tag)
{
    if (!tag_measured(tag) || r->phase != PHASE_MEASURE) return false;
    r->res->requests++;
    r->done++;
    return true;
}

static void runner_check_count_done(struct runner *r)
{
    if (r->cfg->requests && r->phase == PHASE_MEASURE && r->done >= r->cfg->requests) {
        runner_enter(r, PHASE_DRAIN);
    }
}

static void record_ok(struct runner *r, enum bench_op op, uint64_t ns)
{
    r->res->ok++;
    bench_hist_record(&r->res->latency, ns);
    bench_hist_record(&r->res->ops[op], ns);
}

static void on_response(struct bench_conn *c, const struct bench_response *rsp)
{
    struct client *cl = c->data;
    struct runner *r = cl->r;
    uint64_t now = uv_hrtime();
    bool ok = rsp->status >= 200 && rsp->status < 300;
    r->progress_ns = now;
    switch (tag_kind(rsp->tag)) {
    case REQ_PRELOAD:
        if (!ok) r->res->preload_failed++;
        if (++r->preload_done == r->preload_keys) runner_enter(r, PHASE_WARMUP);
        break;
    case REQ_PUT:
    case REQ_GET:
        if (!runner_count(r, rsp->tag)) break;
        if (ok) {
            record_ok(r, tag_kind(rsp->tag) == REQ_GET ? BENCH_OP_READ : BENCH_OP_WRITE,
                      now - rsp->start_ns);
        } else {
            bench_errors_add_status(&r->res->errors, rsp->status);
        }
        break;
    case REQ_CAS_GET: {
        uint64_t index = ok ? body_modified_index(rsp->body) : 0;
        if (index == 0) {
            if (runner_count(r, rsp->tag)) bench_errors_add_status(&r->res->errors, rsp->status);
            break;
        }
        client_format_put(cl, tag_key(rsp->tag), index);
        uint64_t tag = tag_make(REQ_CAS_PUT, tag_key(rsp->tag), tag_measured(rsp->tag));
        /* The op goes on with its PUT; a failed send is accounted in failed_cb. */
        if (!client_send(cl, tag)) return;
        return;
    }
    case REQ_CAS_PUT:
        if (!runner_count(r, rsp->tag)) break;
        if (ok) {
            record_ok(r, BENCH_OP_CAS, now - cl->cas_start_ns);
        } else if (rsp->status == 412) {
            r->res->contention++;
        } else {
            bench_errors_add_status(&r->res->errors, rsp->status);
        }
        break;
    }
    runner_check_count_done(r);
    client_fill(cl);
}

static void on_connected(struct bench_conn *c)
{
    client_fill(c->data);
}

static void on_retry(uv_timer_t *t)
{
    struct client *cl = t->data;
    if (cl->r->phase >= PHASE_DRAIN) return;
    bench_conn_open(&cl->conn, &cl->r->cfg->endpoints[cl->endpoint].addr);
}

static void on_failed(struct bench_conn *c, int err, size_t inflight)
{
    struct client *cl = c->data;
    struct runner *r = cl->r;
    if (err == 0) err = cl->close_reason;
    cl->close_reason = 0;
    if (r->phase == PHASE_MEASURE && err != 0) {
        /* Requests lost with the connection; a connect that failed counts once. */
        bench_errors_add_transport(&r->res->errors, err, inflight ? inflight : 1);
        r->res->requests += inflight;
        r->done += inflight;
        runner_check_count_done(r);
    } else if (r->phase == PHASE_PRELOAD && inflight) {
        r->res->preload_failed += inflight;
        r->preload_done += inflight;
        if (r->preload_done >= r->preload_keys) runner_enter(r, PHASE_WARMUP);
    }
    if (r->phase < PHASE_DRAIN) {
        k_assert(uv_timer_start(&cl->retry, on_retry, RECONNECT_DELAY_MS, 0) == 0);
    }
}

static const struct bench_conn_cbs client_cbs = {
    .connect_cb = on_connected,
    .response_cb = on_response,
    .failed_cb = on_failed,
};

static void on_phase_timer(uv_timer_t *t)
{
    struct runner *r = t->data;
    if (r->phase == PHASE_WARMUP) {
        runner_enter(r, PHASE_MEASURE);
    } else if (r->phase == PHASE_MEASURE) {
        runner_enter(r, PHASE_DRAIN);
    }
}

static void conn_bytes(const struct runner *r, uint64_t *sent, uint64_t *recv)
{
    *sent = *recv = 0;
    for (size_t i = 0; i < r->nclients; i++) {
        *sent += r->clients[i].conn.bytes_sent;
        *recv += r->clients[i].conn.bytes_recv;
    }
}

static void runner_shutdown(struct runner *r)
{
    uv_close((uv_handle_t *)&r->rate_timer, NULL);
    uv_close((uv_handle_t *)&r->phase_timer, NULL);
    uv_close((uv_handle_t *)&r->watchdog, NULL);
    for (size_t i = 0; i < r->nclients; i++) {
        uv_close((uv_handle_t *)&r->clients[i].retry, NULL);
        bench_conn_close(&r->clients[i].conn);
    }
}

/* --rate: due requests are counted every millisecond; connections free to send take them. */
static void on_rate_timer(uv_timer_t *t)
{
    struct runner *r = t->data;
    uint64_t now = uv_hrtime();
    r->rate_due = (uint64_t)((double)(now - r->rate_t0_ns) * (double)r->cfg->rate / 1e9) + 1;
    for (size_t i = 0; i < r->nclients; i++)
        client_fill(&r->clients[i]);
}

static void runner_start_schedule(struct runner *r, uint64_t now)
{
    if (!r->cfg->rate || r->rate_t0_ns) return;
    r->rate_t0_ns = now;
    r->rate_due = 1;
    k_assert(uv_timer_start(&r->rate_timer, on_rate_timer, 1, 1) == 0);
}

static void runner_enter(struct runner *r, enum phase p)
{
    uint64_t now = uv_hrtime();
    r->phase = p;
    r->phase_start_ns = now;
    r->progress_ns = now;
    uv_timer_stop(&r->phase_timer);
    switch (p) {
    case PHASE_PRELOAD:
        break;
    case PHASE_WARMUP:
        runner_start_schedule(r, now);
        if (r->res->preload_failed) {
            fprintf(stderr, "ketch-bench: %" PRIu64 " of %" PRIu64 " preload writes failed\n",
                    r->res->preload_failed, r->preload_keys);
        }
        if (r->cfg->warmup_ns == 0) {
            runner_enter(r, PHASE_MEASURE);
            return;
        }
        k_assert(uv_timer_start(&r->phase_timer, on_phase_timer, r->cfg->warmup_ns / 1000000, 0) ==
                 0);
        break;
    case PHASE_MEASURE:
        r->measure_start_ns = now;
        conn_bytes(r, &r->bytes_sent0, &r->bytes_recv0);
        if (r->cfg->requests == 0) {
            k_assert(uv_timer_start(&r->phase_timer, on_phase_timer, r->cfg->duration_ns / 1000000,
                                    0) == 0);
        }
        break;
    case PHASE_DRAIN: {
        r->measure_end_ns = now;
        uv_timer_stop(&r->rate_timer);
        if (r->cfg->rate) r->res->rate_unsent = r->rate_due - r->rate_sent;
        uint64_t s, v;
        conn_bytes(r, &s, &v);
        r->res->bytes_sent = s - r->bytes_sent0;
        r->res->bytes_recv = v - r->bytes_recv0;
        break;
    }
    case PHASE_DONE:
        runner_shutdown(r);
        return;
    }
    /* A phase change may allow more requests (preload -> warm-up): top every client up. */
    for (size_t i = 0; i < r->nclients; i++)
        client_fill(&r->clients[i]);
}

/* Times out requests unanswered for cfg->timeout_ns, and ends the drain. */
static void on_watchdog(uv_timer_t *t)
{
    struct runner *r = t->data;
    uint64_t now = uv_hrtime();
    size_t busy = 0;
    for (size_t i = 0; i < r->nclients; i++) {
        struct client *cl = &r->clients[i];
        size_t n = bench_conn_inflight(&cl->conn);
        if (n == 0) continue;
        busy++;
        if (now - bench_conn_oldest_start_ns(&cl->conn) > r->cfg->timeout_ns) {
            cl->close_reason = UV_ETIMEDOUT;
            bench_conn_close(&cl->conn);
        }
    }
    if (r->phase == PHASE_DRAIN && (busy == 0 || now - r->phase_start_ns > DRAIN_MAX_NS)) {
        runner_enter(r, PHASE_DONE);
    } else if (r->phase == PHASE_PRELOAD &&
               now - r->progress_ns > STALL_TIMEOUTS * r->cfg->timeout_ns) {
        fprintf(stderr, "ketch-bench: preload got no answer for %" PRIu64 " s, giving up\n",
                (uint64_t)((now - r->progress_ns) / 1000000000ull));
        runner_enter(r, PHASE_DONE);
    } else if (r->phase == PHASE_MEASURE && r->cfg->requests &&
               now - r->progress_ns > STALL_TIMEOUTS * r->cfg->timeout_ns) {
        fprintf(stderr, "ketch-bench: no answer for %" PRIu64 " s, ending the run early\n",
                (uint64_t)((now - r->progress_ns) / 1000000000ull));
        runner_enter(r, PHASE_DRAIN);
    }
}

static void runner_init_value(struct runner *r)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    struct k_prng p;
    k_prng_init(&p, r->cfg->seed ^ 0x76616c7565ull);
    r->value = k_xmalloc(r->cfg->value_bytes + 1);
    for (size_t i = 0; i < r->cfg->value_bytes; i++)
        r->value[i] = alphabet[k_prng_below(&p, sizeof(alphabet) - 1)];
    r->value[r->cfg->value_bytes] = '\0';
}

int bench_workload_run(uv_loop_t *loop, const struct bench_config *cfg, struct bench_result *out)
{
    if (cfg->workload == BENCH_WORKLOAD_WATCH || cfg->connections == 0 || cfg->keys == 0 ||
        cfg->pipeline == 0 || cfg->pipeline > BENCH_CONN_INFLIGHT_MAX ||
        (cfg->workload == BENCH_WORKLOAD_CAS && (cfg->cas_keys == 0 || cfg->rate))) {
        return K_ECONFIG;
    }
    bench_result_init(out);
    struct runner *r = k_xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->cfg = cfg;
    r->res = out;
    runner_init_value(r);
    bench_keygen_init(&r->keygen, cfg->key_dist, cfg->keys);
    k_assert(uv_timer_init(loop, &r->phase_timer) == 0);
    k_assert(uv_timer_init(loop, &r->watchdog) == 0);
    k_assert(uv_timer_init(loop, &r->rate_timer) == 0);
    r->rate_timer.data = r;
    r->phase_timer.data = r->watchdog.data = r;
    r->nclients = cfg->connections;
    r->clients = k_xcalloc(r->nclients, sizeof(*r->clients));
    for (size_t i = 0; i < r->nclients; i++) {
        struct client *cl = &r->clients[i];
        cl->r = r;
        cl->endpoint = i % cfg->endpoint_count;
        k_prng_init(&cl->prng, k_prng_mix(cfg->seed + i));
        k_buf_init(&cl->req);
        bench_conn_init(&cl->conn, loop, &client_cbs);
        cl->conn.data = cl;
        k_assert(uv_timer_init(loop, &cl->retry) == 0);
        cl->retry.data = cl;
    }
    bool preload = cfg->preload && cfg->workload != BENCH_WORKLOAD_PUT;
    r->preload_keys = cfg->workload == BENCH_WORKLOAD_CAS ? cfg->cas_keys : cfg->keys;
    runner_enter(r, preload ? PHASE_PRELOAD : PHASE_WARMUP);
    k_assert(uv_timer_start(&r->watchdog, on_watchdog, WATCHDOG_PERIOD_MS, WATCHDOG_PERIOD_MS) ==
             0);
    for (size_t i = 0; i < r->nclients; i++)
        bench_conn_open(&r->clients[i].conn, &cfg->endpoints[r->clients[i].endpoint].addr);
    uv_run(loop, UV_RUN_DEFAULT);
    k_assert(r->phase == PHASE_DONE);
    if (r->measure_start_ns && r->measure_end_ns > r->measure_start_ns) {
        out->measured_s = (double)(r->measure_end_ns - r->measure_start_ns) / 1e9;
    }
    for (size_t i = 0; i < r->nclients; i++) {
        bench_conn_deinit(&r->clients[i].conn);
        k_buf_free(&r->clients[i].req);
    }
    free(r->clients);
    free(r->value);
    free(r);
    return 0;
}
