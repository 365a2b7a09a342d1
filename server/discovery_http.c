/* libcurl requests and sleeps that SIGTERM and SIGINT interrupt; see server/discovery_http.h.
 * A request runs on a curl multi handle whose poll also watches the read end of a self-pipe;
 * the signal handler writes one byte there and nothing ever reads it back, so every later
 * wait of the same client returns at once too. */
#include "discovery_http.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/err.h"
#include "base/version.h"

/* Reached from the signal handler, which has no other way to find the client: hence
 * process-wide, and hence one client at a time. */
static int stop_pipe_wr = -1;
static volatile sig_atomic_t stop_signum;

struct srv_dhttp {
    CURLM *multi; /* keeps the connection cache, so requests reuse one connection */
    CURL *easy;
    char *proxy; /* "" for none */
    int pipe_rd;
    int pipe_wr;
    struct sigaction old_term;
    struct sigaction old_int;
    /* Per request: */
    struct srv_dhttp_response *resp;
    bool body_too_big;
    char curl_err[CURL_ERROR_SIZE];
};

static void on_stop_signal(int signum)
{
    int saved = errno;
    stop_signum = signum;
    ssize_t n = write(stop_pipe_wr, "s", 1);
    (void)n; /* a full pipe already holds a wake-up */
    errno = saved;
}

static int take_signals(struct srv_dhttp *h)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, &h->old_term) < 0) return -errno;
    if (sigaction(SIGINT, &sa, &h->old_int) < 0) {
        int rc = -errno;
        sigaction(SIGTERM, &h->old_term, NULL);
        return rc;
    }
    return 0;
}

/* Releases what srv_dhttp_open took, the signal handlers aside. */
static void dhttp_free(struct srv_dhttp *h)
{
    stop_pipe_wr = -1;
    curl_easy_cleanup(h->easy);
    curl_multi_cleanup(h->multi);
    close(h->pipe_rd);
    close(h->pipe_wr);
    free(h->proxy);
    free(h);
    curl_global_cleanup();
}

int srv_dhttp_open(struct srv_dhttp **out, const char *proxy, char *err, size_t err_len)
{
    k_assert(stop_pipe_wr == -1); /* one client at a time */
    *out = NULL;
    CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cc != CURLE_OK) {
        snprintf(err, err_len, "discovery: cannot initialise libcurl: %s", curl_easy_strerror(cc));
        return K_ECONFIG;
    }
    struct srv_dhttp *h = k_xcalloc(1, sizeof(*h));
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
        int rc = -errno;
        snprintf(err, err_len, "discovery: pipe: %s", strerror(-rc));
        free(h);
        curl_global_cleanup();
        return rc;
    }
    h->pipe_rd = fds[0];
    h->pipe_wr = fds[1];
    h->multi = curl_multi_init();
    h->easy = curl_easy_init();
    k_assert(h->multi != NULL && h->easy != NULL);
    h->proxy = k_xstrdup(proxy ? proxy : "");
    stop_signum = 0;
    stop_pipe_wr = h->pipe_wr;
    int rc = take_signals(h);
    if (rc < 0) {
        snprintf(err, err_len, "discovery: sigaction: %s", strerror(-rc));
        dhttp_free(h);
        return rc;
    }
    *out = h;
    return 0;
}

void srv_dhttp_close(struct srv_dhttp *h)
{
    if (!h) return;
    sigaction(SIGTERM, &h->old_term, NULL);
    sigaction(SIGINT, &h->old_int, NULL);
    dhttp_free(h);
}

int srv_dhttp_stop_signal(const struct srv_dhttp *h)
{
    (void)h;
    return stop_signum;
}

static bool stop_requested(const struct srv_dhttp *h)
{
    struct pollfd p = { .fd = h->pipe_rd, .events = POLLIN };
    return stop_signum != 0 || poll(&p, 1, 0) > 0;
}

int srv_dhttp_sleep(struct srv_dhttp *h, uint32_t ms)
{
    uint64_t end_ns = k_mono_ns() + (uint64_t)ms * 1000000u;
    for (;;) {
        if (stop_requested(h)) return K_ESTOPPED;
        uint64_t now = k_mono_ns();
        if (now >= end_ns) return 0;
        uint64_t left_ms = (end_ns - now + 999999u) / 1000000u;
        struct pollfd p = { .fd = h->pipe_rd, .events = POLLIN };
        int n = poll(&p, 1, (int)left_ms);
        if (n < 0 && errno != EINTR) return -errno;
    }
}

char *srv_dhttp_escape(struct srv_dhttp *h, const char *s)
{
    char *e = curl_easy_escape(h->easy, s, (int)strlen(s));
    k_assert(e != NULL);
    char *out = k_xstrdup(e);
    curl_free(e);
    return out;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct srv_dhttp *h = userdata;
    size_t n = size * nmemb;
    if (h->resp->body.len + n > SRV_DHTTP_BODY_BYTES_MAX) {
        h->body_too_big = true;
        return 0; /* libcurl ends the transfer with CURLE_WRITE_ERROR */
    }
    k_buf_append(&h->resp->body, data, n);
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    struct srv_dhttp *h = userdata;
    size_t n = size * nmemb;
    static const char name[] = "X-Etcd-Index:";
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* A new response (after a redirect): forget the previous one's header. */
        h->resp->has_etcd_index = false;
    } else if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
        char text[32];
        size_t len = n - (sizeof(name) - 1);
        if (len >= sizeof(text)) len = sizeof(text) - 1;
        memcpy(text, data + sizeof(name) - 1, len);
        text[len] = '\0';
        char *end;
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        while (*end == ' ' || *end == '\r' || *end == '\n')
            end++;
        if (errno == 0 && end != text && *end == '\0') {
            h->resp->etcd_index = v;
            h->resp->has_etcd_index = true;
        }
    }
    return n;
}

static void set_options(struct srv_dhttp *h, const char *method, const char *url,
                        const char *form_body, uint32_t timeout_ms, struct curl_slist *headers)
{
    CURL *e = h->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_POSTREDIR, (long)CURL_REDIR_POST_ALL);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, h->proxy);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "ketchd/" KETCH_VERSION);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)SRV_DHTTP_CONNECT_TIMEOUT_MS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    /* A watch may wait for hours: keepalive probes notice a server that went away. */
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 30L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->curl_err);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, h);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    if (form_body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, form_body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(form_body));
    }
    if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
        /* libcurl sends a request again, unasked, when the reused connection it went out on
         * closes without a reply; a registration (PUT with prevExist=false) that did reach
         * the server would then come back as 105. On a fresh connection a lost reply is an
         * error the caller sees and handles. */
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
    }
}

/* Runs the transfer until it ends or a stop signal arrives. */
static int perform(struct srv_dhttp *h, CURLcode *result)
{
    CURLMcode mc = curl_multi_add_handle(h->multi, h->easy);
    k_assert(mc == CURLM_OK);
    int rc = 0;
    int running = 1;
    while (running) {
        mc = curl_multi_perform(h->multi, &running);
        if (mc != CURLM_OK) {
            rc = K_EPROTO;
            break;
        }
        if (!running) break;
        struct curl_waitfd extra = { .fd = h->pipe_rd, .events = CURL_WAIT_POLLIN };
        mc = curl_multi_poll(h->multi, &extra, 1, 1000, NULL);
        if (mc != CURLM_OK) {
            rc = K_EPROTO;
            break;
        }
        if (extra.revents || stop_signum) {
            rc = K_ESTOPPED;
            break;
        }
    }
    *result = CURLE_OK;
    int left;
    CURLMsg *m;
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE && m->easy_handle == h->easy) *result = m->data.result;
    }
    curl_multi_remove_handle(h->multi, h->easy);
    return rc;
}

int srv_dhttp_request(struct srv_dhttp *h, const char *method, const char *url,
                      const char *form_body, uint32_t timeout_ms, struct srv_dhttp_response *resp,
                      char *err, size_t err_len)
{
    k_assert(strcmp(method, "GET") == 0 || strcmp(method, "PUT") == 0);
    k_buf_reset(&resp->body);
    resp->status = 0;
    resp->has_etcd_index = false;
    resp->etcd_index = 0;
    if (stop_requested(h)) return K_ESTOPPED;
    h->resp = resp;
    h->body_too_big = false;
    h->curl_err[0] = '\0';
    /* Go's client never sends "Expect: 100-continue"; libcurl might for a large body. */
    struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
    k_assert(headers != NULL);
    set_options(h, method, url, form_body, timeout_ms, headers);
    CURLcode result;
    int rc = perform(h, &result);
    curl_slist_free_all(headers);
    h->resp = NULL;
    if (rc == K_ESTOPPED) return rc;
    if (rc < 0) {
        snprintf(err, err_len, "%s %s: libcurl's multi interface failed", method, url);
        return -EAGAIN;
    }
    if (h->body_too_big) {
        snprintf(err, err_len, "%s %s: reply larger than %d bytes", method, url,
                 SRV_DHTTP_BODY_BYTES_MAX);
        return K_ELIMIT;
    }
    if (result == CURLE_URL_MALFORMAT || result == CURLE_UNSUPPORTED_PROTOCOL) {
        snprintf(err, err_len, "%s: %s", url,
                 h->curl_err[0] ? h->curl_err : curl_easy_strerror(result));
        return K_ECONFIG;
    }
    if (result != CURLE_OK) {
        snprintf(err, err_len, "%s %s: %s", method, url,
                 h->curl_err[0] ? h->curl_err : curl_easy_strerror(result));
        return -EAGAIN;
    }
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &resp->status);
    return 0;
}
