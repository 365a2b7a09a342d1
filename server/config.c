/* Flag and environment parsing for ketchd, following Go's flag package as etcd uses it;
 * see server/config.h. The flag table is the one list of what ketchd accepts. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/goparse.h"

enum flag_kind {
    FLAG_STRING, /* char * field */
    FLAG_UINT32, /* uint32_t field */
    FLAG_UINT64, /* uint64_t field */
    FLAG_BOOL,   /* bool field */
    FLAG_URLS,   /* struct srv_url_list field */
    FLAG_CLUSTER_STATE,
    FLAG_LOG_LEVEL,
    FLAG_IGNORED, /* etcd has it for a feature ketchd has no use for (v3, grpc, Go runtime) */
    FLAG_IGNORED_BOOL,
    FLAG_UNSUPPORTED, /* accepted only at its default; any other value is refused */
    FLAG_UNSUPPORTED_BOOL,
    FLAG_VERSION,
    FLAG_DEBUG,
};

struct flag_def {
    const char *name;
    enum flag_kind kind;
    size_t offset;            /* into struct srv_config, for kinds that store a value */
    const char *default_text; /* NULL: no default (string stays NULL) */
};

#define F(name, kind, field, def)                                                                  \
    {                                                                                              \
        name, kind, offsetof(struct srv_config, field), def                                        \
    }
#define X(name, kind, def)                                                                         \
    {                                                                                              \
        name, kind, 0, def                                                                         \
    }

static const struct flag_def flags[] = {
    F("name", FLAG_STRING, name, "default"),
    F("data-dir", FLAG_STRING, data_dir, NULL),
    F("wal-dir", FLAG_STRING, wal_dir, NULL),
    F("snapshot-count", FLAG_UINT64, snapshot_count, "100000"),
    F("heartbeat-interval", FLAG_UINT32, heartbeat_interval_ms, "100"),
    F("election-timeout", FLAG_UINT32, election_timeout_ms, "1000"),
    F("listen-peer-urls", FLAG_URLS, listen_peer_urls, "http://localhost:2380"),
    F("listen-client-urls", FLAG_URLS, listen_client_urls, "http://localhost:2379"),
    F("max-snapshots", FLAG_UINT32, max_snapshots, "5"),
    F("max-wals", FLAG_UINT32, max_wals, "5"),
    F("max-request-bytes", FLAG_UINT64, max_request_bytes, "1572864"),
    F("quota-backend-bytes", FLAG_UINT64, quota_backend_bytes, "0"),
    F("initial-advertise-peer-urls", FLAG_URLS, initial_advertise_peer_urls,
      "http://localhost:2380"),
    F("initial-cluster", FLAG_STRING, initial_cluster, NULL),
    F("initial-cluster-state", FLAG_CLUSTER_STATE, initial_cluster_state, "new"),
    F("initial-cluster-token", FLAG_STRING, initial_cluster_token, "etcd-cluster"),
    F("advertise-client-urls", FLAG_URLS, advertise_client_urls, "http://localhost:2379"),
    F("discovery", FLAG_STRING, discovery, NULL),
    F("discovery-fallback", FLAG_STRING, discovery_fallback, "proxy"),
    F("discovery-proxy", FLAG_STRING, discovery_proxy, NULL),
    F("strict-reconfig-check", FLAG_BOOL, strict_reconfig_check, "true"),
    F("pre-vote", FLAG_BOOL, pre_vote, "true"),
    F("cert-file", FLAG_STRING, client_tls.cert_file, NULL),
    F("key-file", FLAG_STRING, client_tls.key_file, NULL),
    F("client-cert-auth", FLAG_BOOL, client_tls.client_cert_auth, "false"),
    F("trusted-ca-file", FLAG_STRING, client_tls.trusted_ca_file, NULL),
    F("peer-cert-file", FLAG_STRING, peer_tls.cert_file, NULL),
    F("peer-key-file", FLAG_STRING, peer_tls.key_file, NULL),
    F("peer-client-cert-auth", FLAG_BOOL, peer_tls.client_cert_auth, "false"),
    F("peer-trusted-ca-file", FLAG_STRING, peer_tls.trusted_ca_file, NULL),
    F("cors", FLAG_STRING, cors, "*"),
    F("log-level", FLAG_LOG_LEVEL, log_level, "info"),
    F("force-new-cluster", FLAG_BOOL, force_new_cluster, "false"),
    X("version", FLAG_VERSION, NULL),
    X("debug", FLAG_DEBUG, NULL),
    /* Features ketchd does not have: the default is accepted, anything else refused. */
    X("discovery-srv", FLAG_UNSUPPORTED, ""),
    X("discovery-srv-name", FLAG_UNSUPPORTED, ""),
    X("client-crl-file", FLAG_UNSUPPORTED, ""),
    X("peer-crl-file", FLAG_UNSUPPORTED, ""),
    X("client-cert-allowed-hostname", FLAG_UNSUPPORTED, ""),
    X("peer-cert-allowed-cn", FLAG_UNSUPPORTED, ""),
    X("peer-cert-allowed-hostname", FLAG_UNSUPPORTED, ""),
    X("cipher-suites", FLAG_UNSUPPORTED, ""),
    X("listen-metrics-urls", FLAG_UNSUPPORTED, ""),
    X("proxy", FLAG_UNSUPPORTED, "off"),
    X("auto-tls", FLAG_UNSUPPORTED_BOOL, "false"),
    X("peer-auto-tls", FLAG_UNSUPPORTED_BOOL, "false"),
    X("enable-pprof", FLAG_UNSUPPORTED_BOOL, "false"),
    /* etcd v3, gRPC, Go runtime and logger plumbing: meaningless for ketchd, accepted. */
    X("enable-v2", FLAG_IGNORED_BOOL, NULL),
    X("experimental-enable-v2v3", FLAG_IGNORED, NULL),
    X("initial-election-tick-advance", FLAG_IGNORED_BOOL, NULL),
    X("backend-batch-interval", FLAG_IGNORED, NULL),
    X("backend-batch-limit", FLAG_IGNORED, NULL),
    X("max-txn-ops", FLAG_IGNORED, NULL),
    X("max-concurrent-streams", FLAG_IGNORED, NULL),
    X("grpc-keepalive-min-time", FLAG_IGNORED, NULL),
    X("grpc-keepalive-interval", FLAG_IGNORED, NULL),
    X("grpc-keepalive-timeout", FLAG_IGNORED, NULL),
    X("auto-compaction-retention", FLAG_IGNORED, NULL),
    X("auto-compaction-mode", FLAG_IGNORED, NULL),
    X("host-whitelist", FLAG_IGNORED, NULL),
    X("auth-token", FLAG_IGNORED, NULL),
    X("bcrypt-cost", FLAG_IGNORED, NULL),
    X("auth-token-ttl", FLAG_IGNORED, NULL),
    X("metrics", FLAG_IGNORED, NULL),
    X("logger", FLAG_IGNORED, NULL),
    X("log-outputs", FLAG_IGNORED, NULL),
    X("log-package-levels", FLAG_IGNORED, NULL),
    X("proxy-failure-wait", FLAG_IGNORED, NULL),
    X("proxy-refresh-interval", FLAG_IGNORED, NULL),
    X("proxy-dial-timeout", FLAG_IGNORED, NULL),
    X("proxy-write-timeout", FLAG_IGNORED, NULL),
    X("proxy-read-timeout", FLAG_IGNORED, NULL),
    X("experimental-initial-corrupt-check", FLAG_IGNORED_BOOL, NULL),
    X("experimental-corrupt-check-time", FLAG_IGNORED, NULL),
    X("experimental-backend-bbolt-freelist-type", FLAG_IGNORED, NULL),
    X("experimental-enable-lease-checkpoint", FLAG_IGNORED_BOOL, NULL),
    X("experimental-compaction-batch-limit", FLAG_IGNORED, NULL),
    X("experimental-peer-skip-client-san-verification", FLAG_IGNORED_BOOL, NULL),
    X("experimental-watch-progress-notify-interval", FLAG_IGNORED, NULL),
    X("experimental-warning-apply-duration", FLAG_IGNORED, NULL),
};

#undef F
#undef X

enum { FLAG_COUNT = sizeof(flags) / sizeof(flags[0]) };

/* Where each flag's text came from; a command-line value replaces an environment one. */
struct raw_values {
    const char *text[FLAG_COUNT];
    bool from_env[FLAG_COUNT];
};

static bool kind_is_bool(enum flag_kind kind)
{
    return kind == FLAG_BOOL || kind == FLAG_IGNORED_BOOL || kind == FLAG_UNSUPPORTED_BOOL ||
           kind == FLAG_VERSION || kind == FLAG_DEBUG;
}

static int flag_find(const char *name, size_t len)
{
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        if (strlen(flags[i].name) == len && strncmp(flags[i].name, name, len) == 0) return (int)i;
    }
    return -1;
}

/* strconv.ParseBool's accepted spellings. */
static int parse_bool(const char *text, bool *out)
{
    return k_go_parse_bool(text, strlen(text), out) ? 0 : K_ECONFIG;
}

/* Go's ParseUint(text, 0, 64): decimal, 0x hex, 0 octal; no sign, no spaces. */
static int parse_uint(const char *text, uint64_t max, uint64_t *out)
{
    if (text[0] < '0' || text[0] > '9') return K_ECONFIG;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 0);
    if (errno != 0 || *end != '\0' || v > max) return K_ECONFIG;
    *out = v;
    return 0;
}

static void env_name_of(const char *flag, char *out, size_t out_len)
{
    size_t n = (size_t)snprintf(out, out_len, "ETCD_");
    for (const char *p = flag; *p && n + 1 < out_len; p++) {
        char c = *p;
        out[n++] = c == '-' ? '_' : (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    out[n] = '\0';
}

static void read_environment(char *const *envp, struct raw_values *raw)
{
    if (!envp) return;
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        char env_name[96];
        env_name_of(flags[i].name, env_name, sizeof(env_name));
        size_t len = strlen(env_name);
        for (char *const *e = envp; *e; e++) {
            if (strncmp(*e, env_name, len) == 0 && (*e)[len] == '=') {
                raw->text[i] = *e + len + 1;
                raw->from_env[i] = true;
            }
        }
    }
}

/* Go's flag.Parse loop: stops at the first non-flag argument or after "--". */
static int read_arguments(int argc, char *const *argv, struct raw_values *raw,
                          enum srv_config_action *action, char *err, size_t err_len)
{
    int i = 1;
    while (i < argc) {
        const char *arg = argv[i];
        if (strlen(arg) < 2 || arg[0] != '-') break;
        const char *name = arg + 1;
        if (name[0] == '-') {
            name++;
            if (name[0] == '\0') {
                i++;
                break;
            }
        }
        if (name[0] == '-' || name[0] == '=') {
            return k_errf(err, err_len, K_ECONFIG, "bad flag syntax: %s (see ketchd --help)", arg);
        }
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        int idx = flag_find(name, name_len);
        if (idx < 0) {
            if ((name_len == 4 && strncmp(name, "help", 4) == 0) ||
                (name_len == 1 && name[0] == 'h')) {
                *action = SRV_CONFIG_SHOW_HELP;
                return 0;
            }
            return k_errf(err, err_len, K_ECONFIG,
                          "flag provided but not defined: -%.*s (see ketchd --help)", (int)name_len,
                          name);
        }
        const char *value;
        if (eq) {
            value = eq + 1;
        } else if (kind_is_bool(flags[idx].kind)) {
            value = "true";
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            return k_errf(err, err_len, K_ECONFIG,
                          "flag needs an argument: -%s (see ketchd --help)", flags[idx].name);
        }
        raw->text[idx] = value;
        raw->from_env[idx] = false;
        i++;
    }
    if (i < argc) {
        return k_errf(err, err_len, K_ECONFIG, "'%s' is not a valid flag (see ketchd --help)",
                      argv[i]);
    }
    return 0;
}

static int bad_value(char *err, size_t err_len, const struct flag_def *f, const char *text,
                     bool from_env)
{
    if (from_env) {
        char env_name[96];
        env_name_of(f->name, env_name, sizeof(env_name));
        return k_errf(err, err_len, K_ECONFIG, "invalid value \"%s\" for environment variable %s",
                      text, env_name);
    }
    return k_errf(err, err_len, K_ECONFIG, "invalid value \"%s\" for flag -%s", text, f->name);
}

static int apply_flag(struct srv_config *cfg, size_t i, const char *text, bool from_env,
                      enum srv_config_action *action, char *err, size_t err_len)
{
    const struct flag_def *f = &flags[i];
    void *field = (char *)cfg + f->offset;
    bool b = false;
    uint64_t u = 0;
    switch (f->kind) {
    case FLAG_STRING:
        *(char **)field = k_xstrdup(text);
        return 0;
    case FLAG_UINT32:
        if (parse_uint(text, UINT32_MAX, &u) < 0) return bad_value(err, err_len, f, text, from_env);
        *(uint32_t *)field = (uint32_t)u;
        return 0;
    case FLAG_UINT64:
        if (parse_uint(text, UINT64_MAX, &u) < 0) return bad_value(err, err_len, f, text, from_env);
        *(uint64_t *)field = u;
        return 0;
    case FLAG_BOOL:
        if (parse_bool(text, &b) < 0) return bad_value(err, err_len, f, text, from_env);
        *(bool *)field = b;
        return 0;
    case FLAG_URLS: {
        char why[256];
        if (srv_url_list_parse(text, field, why, sizeof(why)) < 0) {
            return k_errf(err, err_len, K_ECONFIG, "invalid value \"%s\" for flag -%s: %s", text,
                          f->name, why);
        }
        return 0;
    }
    case FLAG_CLUSTER_STATE:
        if (strcmp(text, "new") == 0) {
            *(enum srv_cluster_state *)field = SRV_CLUSTER_STATE_NEW;
        } else if (strcmp(text, "existing") == 0) {
            *(enum srv_cluster_state *)field = SRV_CLUSTER_STATE_EXISTING;
        } else {
            return k_errf(err, err_len, K_ECONFIG,
                          "invalid value \"%s\" for flag -%s: use \"new\" or \"existing\"", text,
                          f->name);
        }
        return 0;
    case FLAG_LOG_LEVEL:
        if (k_log_level_parse(text, field) < 0) {
            return k_errf(err, err_len, K_ECONFIG,
                          "invalid value \"%s\" for flag -%s: use debug, info, warn or error", text,
                          f->name);
        }
        return 0;
    case FLAG_IGNORED:
        return 0;
    case FLAG_IGNORED_BOOL:
        if (parse_bool(text, &b) < 0) return bad_value(err, err_len, f, text, from_env);
        return 0;
    case FLAG_UNSUPPORTED:
        if (strcmp(text, f->default_text) == 0) return 0;
        return k_errf(err, err_len, K_ECONFIG, "--%s is not supported by ketchd; remove it",
                      f->name);
    case FLAG_UNSUPPORTED_BOOL:
        if (parse_bool(text, &b) < 0) return bad_value(err, err_len, f, text, from_env);
        if (!b) return 0;
        return k_errf(err, err_len, K_ECONFIG, "--%s is not supported by ketchd; remove it",
                      f->name);
    case FLAG_VERSION:
        if (parse_bool(text, &b) < 0) return bad_value(err, err_len, f, text, from_env);
        if (b && !from_env) *action = SRV_CONFIG_SHOW_VERSION;
        return 0;
    case FLAG_DEBUG:
        if (parse_bool(text, &b) < 0) return bad_value(err, err_len, f, text, from_env);
        if (b) cfg->log_level = K_LOG_DEBUG;
        return 0;
    }
    k_assert(!"unknown flag kind");
    return K_ECONFIG;
}

/* "n1=http://a:2380,n1=http://b:2380,n2=..." into members; a repeated name adds URLs. */
static int parse_initial_cluster(struct srv_config *cfg, const char *text, char *err,
                                 size_t err_len)
{
    cfg->initial_member_count = 0;
    const char *p = text;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq || eq == p) {
            return k_errf(err, err_len, K_ECONFIG,
                          "--initial-cluster entry \"%.*s\" must have the form name=peerURL",
                          (int)n, p);
        }
        size_t name_len = (size_t)(eq - p);
        char url_text[SRV_URL_TEXT_BYTES_MAX];
        size_t url_len = n - name_len - 1;
        if (name_len >= sizeof(cfg->initial_members[0].name) || url_len >= sizeof(url_text)) {
            return k_errf(err, err_len, K_ECONFIG, "--initial-cluster entry \"%.*s\" is too long",
                          (int)n, p);
        }
        memcpy(url_text, eq + 1, url_len);
        url_text[url_len] = '\0';
        struct srv_initial_member *m = NULL;
        for (size_t i = 0; i < cfg->initial_member_count; i++) {
            struct srv_initial_member *c = &cfg->initial_members[i];
            if (strlen(c->name) == name_len && strncmp(c->name, p, name_len) == 0) m = c;
        }
        if (!m) {
            if (cfg->initial_member_count == SRV_CONFIG_MEMBERS_MAX) {
                return k_errf(err, err_len, K_ECONFIG, "--initial-cluster has more than %d members",
                              SRV_CONFIG_MEMBERS_MAX);
            }
            m = &cfg->initial_members[cfg->initial_member_count++];
            memset(m, 0, sizeof(*m));
            memcpy(m->name, p, name_len);
        }
        if (m->peer_urls.count == SRV_URL_LIST_MAX) {
            return k_errf(err, err_len, K_ECONFIG, "--initial-cluster gives %s too many URLs",
                          m->name);
        }
        char why[256];
        if (srv_url_parse(url_text, &m->peer_urls.urls[m->peer_urls.count], why, sizeof(why)) < 0) {
            return k_errf(err, err_len, K_ECONFIG, "--initial-cluster: %s", why);
        }
        m->peer_urls.count++;
        if (!comma) break;
        p = comma + 1;
    }
    if (cfg->initial_member_count == 0)
        return k_errf(err, err_len, K_ECONFIG, "--initial-cluster is empty");
    /* One peer URL may belong to one member only. */
    for (size_t a = 0; a < cfg->initial_member_count; a++) {
        for (size_t b = a + 1; b < cfg->initial_member_count; b++) {
            const struct srv_url_list *la = &cfg->initial_members[a].peer_urls;
            const struct srv_url_list *lb = &cfg->initial_members[b].peer_urls;
            for (size_t i = 0; i < la->count; i++) {
                for (size_t j = 0; j < lb->count; j++) {
                    if (strcmp(la->urls[i].text, lb->urls[j].text) == 0) {
                        return k_errf(err, err_len, K_ECONFIG,
                                      "--initial-cluster gives peer URL %s to both %s and %s",
                                      la->urls[i].text, cfg->initial_members[a].name,
                                      cfg->initial_members[b].name);
                    }
                }
            }
        }
    }
    return 0;
}

static void url_list_text(const struct srv_url_list *l, char *out, size_t out_len)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < l->count && n < out_len; i++) {
        n += (size_t)snprintf(out + n, out_len - n, "%s%s", i ? "," : "", l->urls[i].text);
    }
}

static int check_tls(const struct srv_url_list *urls, const struct srv_tls_files *tls,
                     const char *flag, const char *prefix, char *err, size_t err_len)
{
    for (size_t i = 0; i < urls->count; i++) {
        if (urls->urls[i].tls && (!tls->cert_file || !tls->key_file)) {
            return k_errf(err, err_len, K_ECONFIG, "%s has %s: give --%scert-file and --%skey-file",
                          flag, urls->urls[i].text, prefix, prefix);
        }
    }
    if ((tls->cert_file == NULL) != (tls->key_file == NULL)) {
        return k_errf(err, err_len, K_ECONFIG,
                      "--%scert-file and --%skey-file must be given together", prefix, prefix);
    }
    if (tls->client_cert_auth && !tls->trusted_ca_file) {
        return k_errf(err, err_len, K_ECONFIG, "--%sclient-cert-auth needs --%strusted-ca-file",
                      prefix, prefix);
    }
    return 0;
}

/* Parses cfg->initial_cluster and checks this member's entry against its flags. */
static int check_initial_cluster(struct srv_config *cfg, char *err, size_t err_len)
{
    int rc = parse_initial_cluster(cfg, cfg->initial_cluster, err, err_len);
    if (rc < 0) return rc;
    const struct srv_initial_member *self = srv_config_initial_member(cfg, cfg->name);
    if (!self) {
        return k_errf(err, err_len, K_ECONFIG,
                      "couldn't find local name \"%s\" in the initial cluster configuration: add "
                      "%s=<peer URL> to --initial-cluster or fix --name",
                      cfg->name, cfg->name);
    }
    if (!srv_url_list_equal_unordered(&self->peer_urls, &cfg->initial_advertise_peer_urls)) {
        char a[1024];
        char b[1024];
        url_list_text(&self->peer_urls, a, sizeof(a));
        url_list_text(&cfg->initial_advertise_peer_urls, b, sizeof(b));
        return k_errf(err, err_len, K_ECONFIG,
                      "--initial-cluster has %s=%s but --initial-advertise-peer-urls is %s: make "
                      "them match",
                      cfg->name, a, b);
    }
    return 0;
}

static int validate(struct srv_config *cfg, char *err, size_t err_len)
{
    if (cfg->name[0] == '\0') return k_errf(err, err_len, K_ECONFIG, "--name must not be empty");
    if (cfg->heartbeat_interval_ms == 0) {
        return k_errf(err, err_len, K_ECONFIG, "--heartbeat-interval must be at least 1 (ms)");
    }
    if ((uint64_t)cfg->election_timeout_ms < 5ull * cfg->heartbeat_interval_ms) {
        return k_errf(err, err_len, K_ECONFIG,
                      "--election-timeout[%ums] should be at least as 5 times as "
                      "--heartbeat-interval[%ums]",
                      cfg->election_timeout_ms, cfg->heartbeat_interval_ms);
    }
    if (cfg->election_timeout_ms > 50000) {
        return k_errf(err, err_len, K_ECONFIG,
                      "--election-timeout[%ums] is too long, and should be set less than 50000ms",
                      cfg->election_timeout_ms);
    }
    if (cfg->snapshot_count == 0)
        return k_errf(err, err_len, K_ECONFIG, "--snapshot-count must be at least 1");
    if (strcmp(cfg->discovery_fallback, "proxy") != 0 &&
        strcmp(cfg->discovery_fallback, "exit") != 0) {
        return k_errf(err, err_len, K_ECONFIG,
                      "invalid value \"%s\" for flag -discovery-fallback: use "
                      "\"proxy\" or \"exit\"",
                      cfg->discovery_fallback);
    }
    int rc = check_tls(&cfg->listen_client_urls, &cfg->client_tls, "--listen-client-urls", "", err,
                       err_len);
    if (rc < 0) return rc;
    rc = check_tls(&cfg->listen_peer_urls, &cfg->peer_tls, "--listen-peer-urls", "peer-", err,
                   err_len);
    if (rc < 0) return rc;
    if (cfg->discovery) {
        if (cfg->initial_cluster) {
            return k_errf(err, err_len, K_ECONFIG,
                          "--discovery and --initial-cluster cannot both be set");
        }
        if (cfg->initial_cluster_state == SRV_CLUSTER_STATE_EXISTING) {
            /* etcd would look for a running cluster at this member's own URLs and fail. */
            return k_errf(err, err_len, K_ECONFIG,
                          "--discovery bootstraps a new cluster: it cannot be combined with "
                          "--initial-cluster-state existing (to join a running cluster, give "
                          "--initial-cluster instead)");
        }
        return 0;
    }
    if (!cfg->initial_cluster) {
        /* etcd's default: this member alone, at its advertised peer URLs. */
        char urls[SRV_URL_LIST_MAX * SRV_URL_TEXT_BYTES_MAX];
        size_t n = 0;
        for (size_t i = 0; i < cfg->initial_advertise_peer_urls.count; i++) {
            n += (size_t)snprintf(urls + n, sizeof(urls) - n, "%s%s=%s", i ? "," : "", cfg->name,
                                  cfg->initial_advertise_peer_urls.urls[i].text);
        }
        cfg->initial_cluster = k_xstrdup(urls);
    }
    return check_initial_cluster(cfg, err, err_len);
}

int srv_config_parse(struct srv_config *cfg, int argc, char *const *argv, char *const *envp,
                     enum srv_config_action *action, char *err, size_t err_len)
{
    memset(cfg, 0, sizeof(*cfg));
    *action = SRV_CONFIG_RUN;
    err[0] = '\0';
    struct raw_values raw;
    memset(&raw, 0, sizeof(raw));
    read_environment(envp, &raw);
    int rc = read_arguments(argc, argv, &raw, action, err, err_len);
    if (rc < 0 || *action == SRV_CONFIG_SHOW_HELP) return rc;
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        const char *text = raw.text[i] ? raw.text[i] : flags[i].default_text;
        if (!text) continue;
        rc = apply_flag(cfg, i, text, raw.from_env[i] && raw.text[i], action, err, err_len);
        if (rc < 0) return rc;
    }
    if (*action == SRV_CONFIG_SHOW_VERSION) return 0;
    if (!cfg->data_dir) {
        size_t len = strlen(cfg->name) + sizeof(".etcd");
        cfg->data_dir = k_xmalloc(len);
        snprintf(cfg->data_dir, len, "%s.etcd", cfg->name);
    }
    return validate(cfg, err, err_len);
}

int srv_config_set_initial_cluster(struct srv_config *cfg, const char *text, char *err,
                                   size_t err_len)
{
    /* Checked on a copy (on the heap: the member table is large), so a failure leaves cfg
     * as it was. */
    struct srv_config *trial = k_xmalloc(sizeof(*trial));
    memcpy(trial, cfg, sizeof(*trial));
    trial->initial_cluster = (char *)text;
    int rc = check_initial_cluster(trial, err, err_len);
    if (rc == 0) {
        memcpy(cfg->initial_members, trial->initial_members, sizeof(cfg->initial_members));
        cfg->initial_member_count = trial->initial_member_count;
        free(cfg->initial_cluster);
        cfg->initial_cluster = k_xstrdup(text);
    }
    free(trial);
    return rc;
}

void srv_config_deinit(struct srv_config *cfg)
{
    for (size_t i = 0; i < FLAG_COUNT; i++) {
        if (flags[i].kind == FLAG_STRING) {
            char **field = (char **)((char *)cfg + flags[i].offset);
            free(*field);
            *field = NULL;
        }
    }
}

const struct srv_initial_member *srv_config_initial_member(const struct srv_config *cfg,
                                                           const char *name)
{
    for (size_t i = 0; i < cfg->initial_member_count; i++) {
        if (strcmp(cfg->initial_members[i].name, name) == 0) return &cfg->initial_members[i];
    }
    return NULL;
}

const char *srv_config_usage(void)
{
    return "Usage:\n"
           "\n"
           "  ketchd [flags]\n"
           "    Start a ketch member (an etcd v2 compatible key-value store).\n"
           "\n"
           "  ketchd --version\n"
           "    Show the version of ketchd.\n"
           "\n"
           "  ketchd -h | --help\n"
           "    Show the help information about ketchd.\n"
           "\n"
           "Flags take the forms --flag value, --flag=value, -flag value and -flag=value; each\n"
           "can also be set by the environment variable ETCD_<FLAG> (--data-dir is\n"
           "ETCD_DATA_DIR). A flag on the command line wins over the variable.\n"
           "\n"
           "Member:\n"
           "  --name 'default'                      human-readable name of this member\n"
           "  --data-dir '${name}.etcd'             path to the data directory\n"
           "  --wal-dir ''                          separate directory for the WAL\n"
           "  --snapshot-count '100000'             applied entries between snapshots\n"
           "  --heartbeat-interval '100'            time (ms) of a heartbeat interval\n"
           "  --election-timeout '1000'             time (ms) for an election to time out\n"
           "  --listen-peer-urls 'http://localhost:2380'\n"
           "                                        URLs to listen on for peer traffic\n"
           "  --listen-client-urls 'http://localhost:2379'\n"
           "                                        URLs to listen on for client traffic\n"
           "  --max-snapshots '5'                   snapshot files to keep\n"
           "  --max-wals '5'                        WAL files to keep\n"
           "  --max-request-bytes '1572864'         largest request body accepted\n"
           "  --quota-backend-bytes '0'             size limit of the store (0: 64 GiB)\n"
           "\n"
           "Clustering:\n"
           "  --initial-advertise-peer-urls 'http://localhost:2380'\n"
           "                                        this member's peer URLs to advertise\n"
           "  --initial-cluster 'default=http://localhost:2380'\n"
           "                                        initial cluster configuration\n"
           "  --initial-cluster-state 'new'         'new' or 'existing' (after member add)\n"
           "  --initial-cluster-token 'etcd-cluster'\n"
           "                                        token mixed into member and cluster IDs\n"
           "  --advertise-client-urls 'http://localhost:2379'\n"
           "                                        this member's client URLs to advertise\n"
           "  --discovery ''                        discovery URL used to bootstrap\n"
           "  --discovery-fallback 'proxy'          'exit' or 'proxy' when discovery is full\n"
           "  --discovery-proxy ''                  HTTP proxy for discovery traffic\n"
           "  --strict-reconfig-check 'true'        reject changes that risk quorum\n"
           "  --pre-vote 'true'                     run PreVote before elections\n"
           "\n"
           "Security:\n"
           "  --cert-file ''                        client server TLS certificate\n"
           "  --key-file ''                         client server TLS key\n"
           "  --client-cert-auth 'false'            require client certificates\n"
           "  --trusted-ca-file ''                  CA for client certificates\n"
           "  --peer-cert-file ''                   peer server TLS certificate\n"
           "  --peer-key-file ''                    peer server TLS key\n"
           "  --peer-client-cert-auth 'false'       require peer client certificates\n"
           "  --peer-trusted-ca-file ''             CA for peer certificates\n"
           "  --cors '*'                            CORS origins\n"
           "\n"
           "Logging:\n"
           "  --log-level 'info'                    debug, info, warn or error\n"
           "  --debug 'false'                       same as --log-level debug\n"
           "\n"
           "etcd flags for features ketchd does not have (v3, gRPC, proxy mode, SRV\n"
           "discovery, auto TLS, CRLs) are accepted at their default values only.\n";
}
