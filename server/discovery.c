/* The discovery protocol's request sequence and retries (spec §13); see server/discovery.h.
 * Modelled on what etcd 3.4 does (etcdserver/api/v2discovery/discovery.go) as observed on
 * the wire: the same URLs, query parameters and order, the same errors and backoff. Where
 * etcd gives up on a transient failure (a timed-out registration, a compacted watch index)
 * this retries instead, saying so in the log. */
#include "discovery.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"
#include "server/discovery_http.h"
#include "server/discovery_reply.h"
#include "server/member_id.h"

/* etcd's v2 keys queries put their parameters in this order (Go's url.Values.Encode sorts). */
static const char GET_QUERY[] = "quorum=false&recursive=false&sorted=false";

struct discovery {
    const struct srv_discovery_config *dc;
    struct srv_dhttp *http;
    struct srv_dhttp_response resp;
    char *base;          /* scheme://host:port of the discovery server */
    char *token;         /* the token dir's path, cleaned: "/v2/keys/_etcd/registry/tok" */
    char self_name[17];  /* this member's id in hex: its key under the token */
    unsigned retries;    /* backoffs so far, as etcd counts them (never reset) */
    bool create_retried; /* a registration failed in transit and is being sent again */
};

static char *format_alloc(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *format_alloc(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    k_assert(n >= 0);
    char *out = k_xmalloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(out, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return out;
}

/* Go's path.Clean as far as a token path needs it: no repeated or trailing slashes (libcurl
 * has resolved "." and ".." already). */
static char *clean_path(const char *path)
{
    char *out = k_xmalloc(strlen(path) + 2);
    size_t n = 0;
    out[n++] = '/';
    for (const char *p = path; *p; p++) {
        if (*p == '/' && out[n - 1] == '/') continue;
        out[n++] = *p;
    }
    while (n > 1 && out[n - 1] == '/')
        n--;
    out[n] = '\0';
    return out;
}

/* Splits the token URL into the server's base URL and the token path. A query or fragment
 * is dropped (etcd's client replaces the query of every request, and sends no fragment). */
static int split_url(struct discovery *d, const char *url, char *err, size_t err_len)
{
    CURLU *u = curl_url();
    k_assert(u != NULL);
    char *scheme = NULL;
    char *path = NULL;
    char *query = NULL;
    char *base = NULL;
    int rc = 0;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        rc = k_errf(err, err_len, K_ECONFIG,
                    "discovery: invalid URL: --discovery %s is not an http:// or https:// URL "
                    "such as http://etcd:2379/v2/keys/_etcd/registry/<token>",
                    url);
        goto out;
    }
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK && query && query[0]) {
        k_log_info("discovery", "the query of --discovery (?%s) is not sent, as etcd sends none",
                   query);
    }
    d->token = clean_path(path ? path : "/");
    if (strcmp(d->token, "/") == 0) {
        rc = k_errf(err, err_len, K_ECONFIG,
                    "discovery: invalid URL: --discovery %s has no token path (use "
                    "http://etcd:2379/v2/keys/_etcd/registry/<token>)",
                    url);
        goto out;
    }
    curl_url_set(u, CURLUPART_PATH, "/", 0);
    curl_url_set(u, CURLUPART_QUERY, NULL, 0);
    curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0);
    if (curl_url_get(u, CURLUPART_URL, &base, 0) != CURLUE_OK) {
        rc = k_errf(err, err_len, K_ECONFIG, "discovery: invalid URL: --discovery %s", url);
        goto out;
    }
    size_t n = strlen(base);
    if (n > 0 && base[n - 1] == '/') base[n - 1] = '\0';
    d->base = k_xstrdup(base);
out:
    curl_free(scheme);
    curl_free(path);
    curl_free(query);
    curl_free(base);
    curl_url_cleanup(u);
    return rc;
}

/* Logs why and waits etcd's backoff: 2^retries seconds, at most 2^8. */
static int backoff(struct discovery *d, const char *step, const char *why)
{
    d->retries++;
    unsigned exp =
            d->retries < SRV_DISCOVERY_BACKOFF_EXP_MAX ? d->retries : SRV_DISCOVERY_BACKOFF_EXP_MAX;
    uint32_t seconds = 1u << exp;
    k_log_warn("discovery", "%s failed: %s; retrying in %" PRIu32 " s (retry %u)", step, why,
               seconds, d->retries);
    return srv_dhttp_sleep(d->http, seconds * 1000u);
}

/* One request; returns 0 with d->resp filled, -EAGAIN (why in err), K_ESTOPPED, or fatal. */
static int request(struct discovery *d, const char *method, const char *url, const char *form,
                   uint32_t timeout_ms, char *err, size_t err_len)
{
    k_log_debug("discovery", "%s %s", method, url);
    char why[512];
    why[0] = '\0';
    int rc = srv_dhttp_request(d->http, method, url, form, timeout_ms, &d->resp, why, sizeof(why));
    if (rc == K_ELIMIT) return k_errf(err, err_len, rc, "discovery: %s", why);
    if (rc == K_ECONFIG) return k_errf(err, err_len, rc, "discovery: invalid URL: %s", why);
    if (rc < 0) snprintf(err, err_len, "%s", why);
    return rc;
}

/* Steps 1 and 2 (and 5): the size, then the registrations, and the listing's X-Etcd-Index. */
static int check_cluster(struct discovery *d, struct srv_discovery_registry *reg, uint64_t *size,
                         uint64_t *index, char *err, size_t err_len)
{
    char *size_key = format_alloc("%s%s/_config/size", d->base, d->token);
    char *url = format_alloc("%s?%s", size_key, GET_QUERY);
    int rc = request(d, "GET", url, NULL, SRV_DHTTP_REQUEST_TIMEOUT_MS, err, err_len);
    free(url);
    if (rc == 0) {
        const struct srv_dhttp_response *r = &d->resp;
        enum srv_discovery_verdict v = srv_discovery_size_reply(
                r->status, r->body.data, r->body.len, size_key, size, err, err_len);
        if (v == SRV_DISCOVERY_RETRY) {
            rc = k_errf(err, err_len, -EAGAIN, "%s answered HTTP %ld", size_key, r->status);
        } else if (v == SRV_DISCOVERY_FAIL) {
            rc = K_ECONFIG;
        }
    }
    free(size_key);
    if (rc < 0) return rc;
    url = format_alloc("%s%s?%s", d->base, d->token, GET_QUERY);
    rc = request(d, "GET", url, NULL, SRV_DHTTP_REQUEST_TIMEOUT_MS, err, err_len);
    if (rc == 0) {
        const struct srv_dhttp_response *r = &d->resp;
        srv_discovery_registry_free(reg);
        if (r->status == 200) {
            char why[256];
            rc = srv_discovery_registry_parse(r->body.data, r->body.len, reg, why, sizeof(why));
            if (rc < 0) {
                rc = k_errf(err, err_len, rc, "discovery: bad discovery endpoint: %s: %s", url,
                            why);
            } else if (!r->has_etcd_index) {
                rc = k_errf(err, err_len, K_EPROTO,
                            "discovery: bad discovery endpoint: %s sent no X-Etcd-Index", url);
            }
            *index = r->has_etcd_index ? r->etcd_index : 0;
        } else if (srv_discovery_other_reply(r->status, r->body.data, r->body.len,
                                             "listing the registry", err,
                                             err_len) == SRV_DISCOVERY_RETRY) {
            rc = k_errf(err, err_len, -EAGAIN, "%s answered HTTP %ld", url, r->status);
        } else {
            rc = K_ECONFIG;
        }
    }
    free(url);
    return rc;
}

/* A registration answered 105 after an earlier attempt failed in transit: it is ours if the
 * key holds exactly our value (the earlier write went through). */
static int adopt_own_registration(struct discovery *d, const char *self_key,
                                  uint64_t *created_index, char *err, size_t err_len)
{
    char *url = format_alloc("%s?%s", self_key, GET_QUERY);
    char saved[1024];
    snprintf(saved, sizeof(saved), "%s", err);
    int rc = request(d, "GET", url, NULL, SRV_DHTTP_REQUEST_TIMEOUT_MS, err, err_len);
    free(url);
    if (rc < 0) return rc;
    struct srv_discovery_event ev;
    memset(&ev, 0, sizeof(ev));
    char why[256];
    bool ours = d->resp.status == 200 &&
                srv_discovery_event_parse(d->resp.body.data, d->resp.body.len, &ev, why,
                                          sizeof(why)) == 0 &&
                strcmp(ev.node.value, d->dc->self_value) == 0;
    if (ours) *created_index = ev.node.created_index;
    srv_discovery_event_deinit(&ev);
    if (!ours) return k_errf(err, err_len, K_ECONFIG, "%s", saved);
    k_log_info("discovery", "the registration sent before the failure went through: %s", self_key);
    return 0;
}

/* Steps 3 and 4: registers this member, then watches its own key from its createdIndex,
 * which returns at once once the write is visible on the server asked. */
static int create_self(struct discovery *d, char *err, size_t err_len)
{
    char *self_key = format_alloc("%s%s/%s", d->base, d->token, d->self_name);
    char *url = format_alloc("%s?prevExist=false", self_key);
    char *escaped = srv_dhttp_escape(d->http, d->dc->self_value);
    char *form = format_alloc("value=%s", escaped);
    uint64_t created = 0;
    int rc = request(d, "PUT", url, form, SRV_DHTTP_REQUEST_TIMEOUT_MS, err, err_len);
    if (rc == 0) {
        const struct srv_dhttp_response *r = &d->resp;
        enum srv_discovery_verdict v = srv_discovery_create_reply(
                r->status, r->body.data, r->body.len, self_key, &created, err, err_len);
        if (v == SRV_DISCOVERY_RETRY) {
            rc = k_errf(err, err_len, -EAGAIN, "%s answered HTTP %ld", url, r->status);
        } else if (v == SRV_DISCOVERY_FAIL && r->status == 412 && d->create_retried) {
            rc = adopt_own_registration(d, self_key, &created, err, err_len);
        } else if (v == SRV_DISCOVERY_FAIL) {
            rc = K_ECONFIG;
        }
    }
    free(url);
    free(escaped);
    free(form);
    if (rc == 0) {
        k_log_info("discovery", "registered %s as %s", d->dc->self_value, self_key);
        url = format_alloc("%s?recursive=false&wait=true&waitIndex=%" PRIu64, self_key, created);
        rc = request(d, "GET", url, NULL, 0, err, err_len);
        if (rc == 0 && d->resp.status != 200) {
            const struct srv_dhttp_response *r = &d->resp;
            if (srv_discovery_other_reply(r->status, r->body.data, r->body.len,
                                          "watching the registration", err,
                                          err_len) == SRV_DISCOVERY_RETRY) {
                rc = k_errf(err, err_len, -EAGAIN, "%s answered HTTP %ld", url, r->status);
            } else {
                rc = K_ECONFIG;
            }
        }
        free(url);
    }
    free(self_key);
    return rc;
}

/* Is key (a node key from a watch event) a direct child of the token dir, other than
 * _config? The token is a URL path that ends with the key's parent: "/v2/keys" followed by
 * "/_etcd/registry/tok". */
static bool is_registration_key(const struct discovery *d, const char *key)
{
    const char *slash = strrchr(key, '/');
    if (!slash || slash == key || strcmp(slash + 1, "_config") == 0) return false;
    size_t parent_len = (size_t)(slash - key);
    size_t token_len = strlen(d->token);
    if (parent_len > token_len) return false;
    const char *tail = d->token + token_len - parent_len;
    /* The parent starts with '/', so a match is a whole number of path segments. */
    return key[0] == '/' && memcmp(tail, key, parent_len) == 0;
}

static bool action_adds(const char *action)
{
    return strcmp(action, "delete") != 0 && strcmp(action, "expire") != 0 &&
           strcmp(action, "compareAndDelete") != 0;
}

/* One event of the step-6 watch: learns the registration it carries, if any. etcd takes
 * every event as a registration; this skips deletions, _config and keys deeper down. */
static void take_event(struct discovery *d, const struct srv_discovery_event *ev,
                       struct srv_discovery_registry *reg, uint64_t size)
{
    if (!ev->node_has_value || !action_adds(ev->action)) return;
    if (!is_registration_key(d, ev->node.key)) return;
    if (!srv_discovery_registry_add(reg, &ev->node)) return;
    size_t known = reg->count < size ? reg->count : (size_t)size;
    k_log_info("discovery", "found peer %s (%s) from the discovery server; %zu of %" PRIu64,
               ev->node.name, ev->node.value, known, size);
}

/* Reads the reply to a step-6 watch into reg; returns 0, -EAGAIN, K_ECOMPACTED or fatal. */
static int watch_reply(struct discovery *d, const char *url, struct srv_discovery_registry *reg,
                       uint64_t size, uint64_t *wait_index, char *err, size_t err_len)
{
    const struct srv_dhttp_response *r = &d->resp;
    struct srv_discovery_v2_error e;
    if (r->status != 200) {
        if (srv_discovery_v2_error_parse(r->body.data, r->body.len, &e) && e.code == 401) {
            k_log_warn("discovery",
                       "watch index %" PRIu64 " is gone from the server's event "
                       "history; listing again",
                       *wait_index);
            return K_ECOMPACTED;
        }
        if (srv_discovery_other_reply(r->status, r->body.data, r->body.len, "watching the registry",
                                      err, err_len) == SRV_DISCOVERY_RETRY) {
            return k_errf(err, err_len, -EAGAIN, "%s answered HTTP %ld", url, r->status);
        }
        return K_ECONFIG;
    }
    if (r->body.len == 0) return 0; /* etcd's client watches again after an empty reply */
    struct srv_discovery_event ev;
    char why[256];
    int rc = srv_discovery_event_parse(r->body.data, r->body.len, &ev, why, sizeof(why));
    if (rc == 0) {
        *wait_index = ev.node.modified_index + 1;
        take_event(d, &ev, reg, size);
    } else {
        rc = k_errf(err, err_len, rc, "discovery: bad discovery endpoint: %s: %s", url, why);
    }
    srv_discovery_event_deinit(&ev);
    return rc;
}

/* Step 6: watches the token dir recursively from index + 1, re-watching from each event's
 * modifiedIndex + 1, until size registrations are known. */
static int wait_nodes(struct discovery *d, struct srv_discovery_registry *reg, uint64_t size,
                      uint64_t index, char *err, size_t err_len)
{
    for (size_t i = 0; i < reg->count && i < size; i++) {
        bool self = strcmp(reg->nodes[i].name, d->self_name) == 0;
        k_log_info("discovery", "found %s %s (%s) from the discovery server",
                   self ? "self" : "peer", reg->nodes[i].name, reg->nodes[i].value);
    }
    uint64_t wait_index = index + 1;
    int rc = 0;
    while (rc == 0 && reg->count < size) {
        k_log_info("discovery", "%zu of %" PRIu64 " members registered; waiting for more",
                   reg->count, size);
        char *url = format_alloc("%s%s?recursive=true&wait=true&waitIndex=%" PRIu64, d->base,
                                 d->token, wait_index);
        rc = request(d, "GET", url, NULL, 0, err, err_len);
        if (rc == 0) rc = watch_reply(d, url, reg, size, &wait_index, err, err_len);
        free(url);
    }
    return rc;
}

static int cluster_full(const struct discovery *d, uint64_t size, char *err, size_t err_len)
{
    if (d->dc->fallback_exit) {
        return k_errf(err, err_len, K_ECONFIG,
                      "discovery: cluster is full: the first %" PRIu64 " registrations under %s%s "
                      "are other members",
                      size, d->base, d->token);
    }
    return k_errf(err, err_len, K_ECONFIG,
                  "discovery: cluster is full (%" PRIu64 " members registered under %s%s), and "
                  "--discovery-fallback is \"proxy\" (the default), which ketchd does not "
                  "implement: it cannot run as a proxy. Give --discovery-fallback exit, or "
                  "bootstrap this member with a new token",
                  size, d->base, d->token);
}

/* Steps 1 to 4, again after each transient failure: size, registrations, full check,
 * registration. */
static int register_self(struct discovery *d, struct srv_discovery_registry *reg, char *err,
                         size_t err_len)
{
    for (;;) {
        uint64_t size = 0;
        uint64_t index = 0;
        int rc = check_cluster(d, reg, &size, &index, err, err_len);
        if (rc == 0 && srv_discovery_registry_full(reg, size, d->self_name)) {
            return cluster_full(d, size, err, err_len);
        }
        if (rc == 0) {
            rc = create_self(d, err, err_len);
            if (rc == -EAGAIN) d->create_retried = true;
        }
        if (rc != -EAGAIN) return rc;
        rc = backoff(d, "registering with the discovery server", err);
        if (rc < 0) return rc;
    }
}

/* Steps 5 and 6, again after each transient failure: the registrations, then the watch
 * until size are known. Sets *size. */
static int collect_members(struct discovery *d, struct srv_discovery_registry *reg, uint64_t *size,
                           char *err, size_t err_len)
{
    for (;;) {
        uint64_t index = 0;
        int rc = check_cluster(d, reg, size, &index, err, err_len);
        if (rc == 0 && srv_discovery_registry_full(reg, *size, d->self_name)) {
            /* Registered, but others were first: etcd's check after createSelf. */
            return cluster_full(d, *size, err, err_len);
        }
        if (rc == 0) rc = wait_nodes(d, reg, *size, index, err, err_len);
        if (rc == K_ECOMPACTED) continue;
        if (rc != -EAGAIN) return rc;
        rc = backoff(d, "waiting for the other members", err);
        if (rc < 0) return rc;
    }
}

int srv_discovery_join(const struct srv_discovery_config *dc, char **initial_cluster, char *err,
                       size_t err_len)
{
    k_assert(dc->url && dc->self_value);
    *initial_cluster = NULL;
    err[0] = '\0';
    struct discovery d;
    memset(&d, 0, sizeof(d));
    d.dc = dc;
    srv_id_format(dc->member_id, d.self_name);
    struct srv_discovery_registry reg;
    memset(&reg, 0, sizeof(reg));
    int rc = srv_dhttp_open(&d.http, dc->proxy, err, err_len);
    if (rc < 0) return rc;
    rc = split_url(&d, dc->url, err, err_len);
    if (rc == 0) {
        k_log_info("discovery", "joining through %s%s as %s (%s)", d.base, d.token, d.self_name,
                   dc->self_value);
        rc = register_self(&d, &reg, err, err_len);
    }
    uint64_t size = 0;
    if (rc == 0) rc = collect_members(&d, &reg, &size, err, err_len);
    if (rc == 0) rc = srv_discovery_registry_join(&reg, size, initial_cluster, err, err_len);
    if (rc == K_ESTOPPED) {
        int sig = srv_dhttp_stop_signal(d.http);
        k_errf(err, err_len, rc, "discovery: stopped by %s before the cluster formed",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    if (rc == 0) {
        k_log_info("discovery", "found all %" PRIu64 " members: %s", size, *initial_cluster);
    }
    srv_discovery_registry_free(&reg);
    k_buf_free(&d.resp.body);
    free(d.base);
    free(d.token);
    srv_dhttp_close(d.http);
    return rc;
}

int srv_discovery_bootstrap(struct srv_config *cfg, char *err, size_t err_len)
{
    k_assert(cfg->discovery != NULL);
    char *value = srv_discovery_self_value(cfg->name, &cfg->initial_advertise_peer_urls);
    struct srv_discovery_config dc = {
        .url = cfg->discovery,
        .proxy = cfg->discovery_proxy,
        .self_value = value,
        /* spec §2: the full discovery URL takes the cluster token's place. */
        .member_id = srv_member_id_compute(&cfg->initial_advertise_peer_urls, cfg->discovery),
        .fallback_exit = strcmp(cfg->discovery_fallback, "exit") == 0,
    };
    char *cluster = NULL;
    int rc = srv_discovery_join(&dc, &cluster, err, err_len);
    free(value);
    if (rc < 0) return rc;
    rc = srv_config_set_initial_cluster(cfg, cluster, err, err_len);
    free(cluster);
    if (rc < 0) return rc;
    free(cfg->initial_cluster_token);
    cfg->initial_cluster_token = k_xstrdup(cfg->discovery);
    return 0;
}
