/* Watch fan-out; see watch.h. Each write's value starts with "w<seq>", so a watcher knows
 * which write an event carries even before the writer has its answer, and the delivery
 * latency is measured from the moment that write was sent. */
#include "watch.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "http_conn.h"

static const uint64_t RECONNECT_DELAY_MS = 50;
static const uint64_t SETUP_TIMEOUT_MS = 10000;
static const size_t SUBTREE_KEYS = 16;   /* recursive watch: writes cycle over these children */
static const size_t VALUE_BYTES_MIN = 9; /* "w" + 8 digits */
static const size_t LINE_BYTES_MAX = 1 << 20;

struct wrun;

struct watcher {
    struct bench_conn conn;
    struct wrun *w;
    size_t endpoint;
    uint64_t next_index; /* waitIndex of the next watch request */
    uint64_t seen;       /* events of this run received */
    bool registered;     /* headers of its first watch arrived */
    bool gave_up;        /* an error answer (e.g. 401 history cleared): no re-arm */
    struct k_buf line;   /* stream: bytes of an event not yet ended by '\n' */
    struct k_buf req;
    uv_timer_t retry;
};

struct writer {
    struct bench_conn conn;
    struct wrun *w;
    size_t endpoint;
    struct k_buf req;
    uv_timer_t retry;
};

struct wrun {
    uv_loop_t *loop;
    const struct bench_config *cfg;
    struct bench_result *res;
    struct watcher *watchers;
    struct writer *writers;
    size_t nwriters;
    uv_timer_t deadline;
    char watch_path[BENCH_PREFIX_BYTES_MAX + 32]; /* "/v2/keys/<prefix>/watch" */
    char *value;       /* value_bytes, rewritten with each write's sequence number */
    uint64_t *sent_ns; /* per write: uv_hrtime() when sent, 0 before */
    uint64_t next_write;
    uint64_t writes_done; /* writes answered, or lost with their connection */
    size_t ready;         /* watchers registered */
    size_t complete;      /* watchers that saw every write */
    uint64_t open_ns;
    uint64_t first_write_ns;
    bool writing;
    bool finished;
};

static void wrun_finish(struct wrun *w);
static void wrun_maybe_finish(struct wrun *w);
static void writer_fill(struct writer *wr);

static void watcher_send(struct watcher *wt)
{
    struct wrun *w = wt->w;
    k_buf_reset(&wt->req);
    k_buf_printf(
            &wt->req, "GET %s?wait=true&waitIndex=%" PRIu64 "%s%s HTTP/1.1\r\nHost: %s\r\n\r\n",
            w->watch_path, wt->next_index, w->cfg->watch_recursive ? "&recursive=true" : "",
            w->cfg->watch_stream ? "&stream=true" : "", w->cfg->endpoints[wt->endpoint].host_port);
    /* A failure closes the connection; failed_cb reconnects and re-sends. */
    if (bench_conn_send(&wt->conn, wt->req.data, wt->req.len, 0) < 0) return;
}

/* Takes one event delivered to wt (JSON text, NUL-terminated). */
static void watcher_event(struct watcher *wt, const char *json)
{
    struct wrun *w = wt->w;
    uint64_t now = uv_hrtime();
    /* node comes before prevNode, and "value" before "modifiedIndex" (spec §4.3), so the
     * first occurrences belong to the node. */
    const char *mi = strstr(json, "\"modifiedIndex\":");
    if (!mi) return;
    uint64_t index = strtoull(mi + 16, NULL, 10);
    if (index < wt->next_index) return; /* seen already */
    wt->next_index = index + 1;         /* re-arm past it even if it is not ours */
    const char *val = strstr(json, "\"value\":\"w");
    if (!val || val > mi) return;
    uint64_t seq = strtoull(val + 10, NULL, 10);
    if (seq >= w->cfg->writes) return;
    wt->seen++;
    w->res->watch.events_seen++;
    if (w->sent_ns[seq]) bench_hist_record(&w->res->watch.delivery, now - w->sent_ns[seq]);
    if (wt->seen == w->cfg->writes && ++w->complete == w->cfg->watchers) {
        w->res->watch.all_seen_ms = (double)(now - w->first_write_ns) / 1e6;
        wrun_maybe_finish(w);
    }
}

static void watcher_headers(struct bench_conn *c, int status, uint64_t etcd_index)
{
    struct watcher *wt = c->data;
    struct wrun *w = wt->w;
    if (status != 200 || wt->registered) return;
    wt->registered = true;
    if (++w->ready == w->cfg->watchers) {
        uint64_t now = uv_hrtime();
        w->res->watch.ready_ms = (double)(now - w->open_ns) / 1e6;
        w->writing = true;
        w->first_write_ns = now;
        for (size_t i = 0; i < w->nwriters; i++)
            writer_fill(&w->writers[i]);
    }
}

static void watcher_body(struct bench_conn *c, const char *data, size_t len)
{
    struct watcher *wt = c->data;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\n') continue;
        k_buf_append(&wt->line, data, i);
        if (wt->line.len) watcher_event(wt, wt->line.data);
        k_buf_reset(&wt->line);
        data += i + 1;
        len -= i + 1;
        i = (size_t)-1;
    }
    if (wt->line.len + len <= LINE_BYTES_MAX) k_buf_append(&wt->line, data, len);
}

static void watcher_response(struct bench_conn *c, const struct bench_response *r)
{
    struct watcher *wt = c->data;
    struct wrun *w = wt->w;
    if (w->finished) return;
    if (r->status != 200) {
        bench_errors_add_status(&w->res->errors, r->status);
        wt->gave_up = true;
        return;
    }
    if (r->body_len) watcher_event(wt, r->body);
    /* An empty 200 is a watch the server ended (spec §5.7): ask again. */
    if (!w->finished && wt->seen < w->cfg->writes) watcher_send(wt);
}

static void watcher_connected(struct bench_conn *c)
{
    struct watcher *wt = c->data;
    k_buf_reset(&wt->line);
    watcher_send(wt);
}

static void watcher_retry(uv_timer_t *t)
{
    struct watcher *wt = t->data;
    if (!wt->w->finished) bench_conn_open(&wt->conn, &wt->w->cfg->endpoints[wt->endpoint].addr);
}

static void watcher_failed(struct bench_conn *c, int err, size_t inflight)
{
    struct watcher *wt = c->data;
    struct wrun *w = wt->w;
    if (w->finished || err == 0) return;
    bench_errors_add_transport(&w->res->errors, err, 1);
    if (!wt->gave_up)
        k_assert(uv_timer_start(&wt->retry, watcher_retry, RECONNECT_DELAY_MS, 0) == 0);
}

static const struct bench_conn_cbs watcher_poll_cbs = {
    .connect_cb = watcher_connected,
    .headers_cb = watcher_headers,
    .response_cb = watcher_response,
    .failed_cb = watcher_failed,
};

static const struct bench_conn_cbs watcher_stream_cbs = {
    .connect_cb = watcher_connected,
    .headers_cb = watcher_headers,
    .body_cb = watcher_body,
    .response_cb = watcher_response,
    .failed_cb = watcher_failed,
};

static void writer_path(const struct wrun *w, uint64_t seq, char *out, size_t size)
{
    if (w->cfg->watch_recursive) {
        snprintf(out, size, "%s/k%zu", w->watch_path, (size_t)(seq % SUBTREE_KEYS));
    } else {
        snprintf(out, size, "%s", w->watch_path);
    }
}

static void writer_fill(struct writer *wr)
{
    struct wrun *w = wr->w;
    if (!w->writing || w->finished || wr->conn.state != BENCH_CONN_OPEN) return;
    if (bench_conn_inflight(&wr->conn) > 0 || w->next_write >= w->cfg->writes) return;
    uint64_t seq = w->next_write++;
    char path[sizeof(w->watch_path) + 32];
    writer_path(w, seq, path, sizeof(path));
    char head[32];
    snprintf(head, sizeof(head), "w%08" PRIu64, seq);
    memcpy(w->value, head, VALUE_BYTES_MIN);
    size_t vlen = w->cfg->value_bytes;
    k_buf_reset(&wr->req);
    k_buf_printf(
            &wr->req,
            "PUT %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            "Content-Length: %zu\r\n\r\nvalue=",
            path, w->cfg->endpoints[wr->endpoint].host_port, vlen + 6);
    k_buf_append(&wr->req, w->value, vlen);
    w->sent_ns[seq] = uv_hrtime();
    if (bench_conn_send(&wr->conn, wr->req.data, wr->req.len, seq) < 0) return;
}

static void writer_response(struct bench_conn *c, const struct bench_response *r)
{
    struct writer *wr = c->data;
    struct wrun *w = wr->w;
    w->res->requests++;
    if (r->status >= 200 && r->status < 300) {
        uint64_t ns = uv_hrtime() - r->start_ns;
        w->res->ok++;
        bench_hist_record(&w->res->latency, ns);
        bench_hist_record(&w->res->ops[BENCH_OP_WRITE], ns);
    } else {
        bench_errors_add_status(&w->res->errors, r->status);
    }
    w->writes_done++;
    writer_fill(wr);
    wrun_maybe_finish(w);
}

static void writer_connected(struct bench_conn *c)
{
    writer_fill(c->data);
}

static void writer_retry(uv_timer_t *t)
{
    struct writer *wr = t->data;
    if (!wr->w->finished) bench_conn_open(&wr->conn, &wr->w->cfg->endpoints[wr->endpoint].addr);
}

static void writer_failed(struct bench_conn *c, int err, size_t inflight)
{
    struct writer *wr = c->data;
    struct wrun *w = wr->w;
    if (w->finished || err == 0) return;
    bench_errors_add_transport(&w->res->errors, err, inflight ? inflight : 1);
    w->res->requests += inflight;
    w->writes_done += inflight; /* answered by nobody: done, for wrun_maybe_finish() */
    k_assert(uv_timer_start(&wr->retry, writer_retry, RECONNECT_DELAY_MS, 0) == 0);
}

static const struct bench_conn_cbs writer_cbs = {
    .connect_cb = writer_connected,
    .response_cb = writer_response,
    .failed_cb = writer_failed,
};

static void wrun_finish(struct wrun *w)
{
    if (w->finished) return;
    w->finished = true;
    uint64_t now = uv_hrtime();
    if (w->first_write_ns) w->res->measured_s = (double)(now - w->first_write_ns) / 1e9;
    for (size_t i = 0; i < w->cfg->watchers; i++) {
        w->res->bytes_sent += w->watchers[i].conn.bytes_sent;
        w->res->bytes_recv += w->watchers[i].conn.bytes_recv;
    }
    for (size_t i = 0; i < w->nwriters; i++) {
        w->res->bytes_sent += w->writers[i].conn.bytes_sent;
        w->res->bytes_recv += w->writers[i].conn.bytes_recv;
    }
    uv_close((uv_handle_t *)&w->deadline, NULL);
    for (size_t i = 0; i < w->cfg->watchers; i++) {
        uv_close((uv_handle_t *)&w->watchers[i].retry, NULL);
        bench_conn_close(&w->watchers[i].conn);
    }
    for (size_t i = 0; i < w->nwriters; i++) {
        uv_close((uv_handle_t *)&w->writers[i].retry, NULL);
        bench_conn_close(&w->writers[i].conn);
    }
}

/* Ends the run once every watcher has seen every write and every write has its answer
 * (watchers can see a write before the writer hears back). */
static void wrun_maybe_finish(struct wrun *w)
{
    if (w->complete == w->cfg->watchers && w->writes_done == w->next_write) wrun_finish(w);
}

static void on_deadline(uv_timer_t *t)
{
    struct wrun *w = t->data;
    fprintf(stderr,
            "ketch-bench: watch deadline: %zu of %zu watchers registered, %" PRIu64 " of %" PRIu64
            " events seen\n",
            w->ready, w->cfg->watchers, w->res->watch.events_seen, w->res->watch.events_expected);
    wrun_finish(w);
}

/* Writes the watched key once and returns the index to watch from (X-Etcd-Index + 1). */
static int wrun_setup(struct wrun *w, uint64_t *first_index)
{
    char path[sizeof(w->watch_path) + 32];
    if (w->cfg->watch_recursive) {
        snprintf(path, sizeof(path), "%s/setup", w->watch_path);
    } else {
        snprintf(path, sizeof(path), "%s", w->watch_path);
    }
    struct k_buf body;
    k_buf_init(&body);
    int status = 0;
    uint64_t index = 0;
    int rc = bench_fetch(w->loop, &w->cfg->endpoints[0], "PUT", path, "value=setup",
                         SETUP_TIMEOUT_MS, &status, &index, &body);
    /* X-Etcd-Index of a write is its event's index (spec §4.4); a server that leaves the
     * header out still names the index in the body, as node.modifiedIndex. */
    const char *mi = body.data ? strstr(body.data, "\"modifiedIndex\":") : NULL;
    if (index == 0 && mi) index = strtoull(mi + 16, NULL, 10);
    k_buf_free(&body);
    if (rc == 0 && (status < 200 || status >= 300 || index == 0)) rc = K_EPROTO;
    if (rc < 0) {
        fprintf(stderr, "ketch-bench: watch set-up write to %s%s failed: %s (status %d)\n",
                w->cfg->endpoints[0].url, path, k_strerror(rc), status);
        return rc;
    }
    *first_index = index + 1;
    return 0;
}

static void wrun_free(struct wrun *w)
{
    for (size_t i = 0; w->watchers && i < w->cfg->watchers; i++) {
        bench_conn_deinit(&w->watchers[i].conn);
        k_buf_free(&w->watchers[i].line);
        k_buf_free(&w->watchers[i].req);
    }
    for (size_t i = 0; w->writers && i < w->nwriters; i++) {
        bench_conn_deinit(&w->writers[i].conn);
        k_buf_free(&w->writers[i].req);
    }
    free(w->watchers);
    free(w->writers);
    free(w->sent_ns);
    free(w->value);
    free(w);
}

static void wrun_open(struct wrun *w, uint64_t first_index)
{
    const struct bench_config *cfg = w->cfg;
    w->watchers = k_xcalloc(cfg->watchers, sizeof(*w->watchers));
    for (size_t i = 0; i < cfg->watchers; i++) {
        struct watcher *wt = &w->watchers[i];
        wt->w = w;
        wt->endpoint = i % cfg->endpoint_count;
        wt->next_index = first_index;
        k_buf_init(&wt->line);
        k_buf_init(&wt->req);
        bench_conn_init(&wt->conn, w->loop,
                        cfg->watch_stream ? &watcher_stream_cbs : &watcher_poll_cbs);
        wt->conn.data = wt;
        k_assert(uv_timer_init(w->loop, &wt->retry) == 0);
        wt->retry.data = wt;
    }
    w->writers = k_xcalloc(w->nwriters, sizeof(*w->writers));
    for (size_t i = 0; i < w->nwriters; i++) {
        struct writer *wr = &w->writers[i];
        wr->w = w;
        wr->endpoint = i % cfg->endpoint_count;
        k_buf_init(&wr->req);
        bench_conn_init(&wr->conn, w->loop, &writer_cbs);
        wr->conn.data = wr;
        k_assert(uv_timer_init(w->loop, &wr->retry) == 0);
        wr->retry.data = wr;
    }
    w->open_ns = uv_hrtime();
    for (size_t i = 0; i < cfg->watchers; i++)
        bench_conn_open(&w->watchers[i].conn, &cfg->endpoints[w->watchers[i].endpoint].addr);
    for (size_t i = 0; i < w->nwriters; i++)
        bench_conn_open(&w->writers[i].conn, &cfg->endpoints[w->writers[i].endpoint].addr);
}

int bench_watch_run(uv_loop_t *loop, const struct bench_config *cfg, struct bench_result *out)
{
    if (cfg->watchers == 0 || cfg->writes == 0 || cfg->connections == 0 ||
        cfg->value_bytes < VALUE_BYTES_MIN) {
        return K_ECONFIG;
    }
    bench_result_init(out);
    out->is_watch = true;
    out->watch.watchers = cfg->watchers;
    out->watch.events_expected = (uint64_t)cfg->watchers * cfg->writes;
    struct wrun *w = k_xcalloc(1, sizeof(*w));
    w->loop = loop;
    w->cfg = cfg;
    w->res = out;
    w->nwriters = cfg->connections;
    /* A key and a dir cannot share a name, so the two modes use different paths. */
    snprintf(w->watch_path, sizeof(w->watch_path), "/v2/keys/%s/%s", cfg->prefix,
             cfg->watch_recursive ? "watchdir" : "watch");
    w->value = k_xmalloc(cfg->value_bytes + 1);
    memset(w->value, 'x', cfg->value_bytes);
    w->value[cfg->value_bytes] = '\0';
    w->sent_ns = k_xcalloc(cfg->writes, sizeof(*w->sent_ns));
    uint64_t first_index = 0;
    int rc = wrun_setup(w, &first_index);
    if (rc < 0) {
        wrun_free(w);
        return rc;
    }
    k_assert(uv_timer_init(loop, &w->deadline) == 0);
    w->deadline.data = w;
    k_assert(uv_timer_start(&w->deadline, on_deadline, cfg->duration_ns / 1000000, 0) == 0);
    wrun_open(w, first_index);
    uv_run(loop, UV_RUN_DEFAULT);
    k_assert(w->finished);
    out->watch.writes = w->next_write;
    wrun_free(w);
    return 0;
}
