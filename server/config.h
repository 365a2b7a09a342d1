/* ketchd's configuration: etcd's flags, with etcd's names and defaults where the meaning is
 * the same (spec §14), in every spelling Go's flag package accepts (--f v, --f=v, -f v,
 * -f=v; bool flags as --f or --f=false), and from ETCD_* environment variables, which a
 * command-line flag overrides. So an etcd v2 unit file or script works with the binary
 * name changed. Flags etcd has whose feature ketchd lacks are accepted at their default
 * value and refused with a clear message otherwise. */
#ifndef KETCH_SERVER_CONFIG_H
#define KETCH_SERVER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/log.h"
#include "server/member_url.h"

enum { SRV_CONFIG_MEMBERS_MAX = 64, SRV_CONFIG_ERR_BYTES = 512 };

enum srv_cluster_state {
    SRV_CLUSTER_STATE_NEW = 0,
    SRV_CLUSTER_STATE_EXISTING = 1,
};

/* What main() should do after parsing. */
enum srv_config_action {
    SRV_CONFIG_RUN = 0,
    SRV_CONFIG_SHOW_VERSION = 1,
    SRV_CONFIG_SHOW_HELP = 2,
};

struct srv_initial_member {
    char name[128];
    struct srv_url_list peer_urls;
};

struct srv_tls_files {
    char *cert_file;       /* PEM certificate presented by this member, or NULL */
    char *key_file;        /* its private key, or NULL */
    char *trusted_ca_file; /* CA bundle used to verify the other side, or NULL */
    bool client_cert_auth; /* require and verify the other side's certificate */
};

struct srv_config {
    char *name;     /* --name, default "default" */
    char *data_dir; /* --data-dir, default "<name>.etcd" */
    char *wal_dir;  /* --wal-dir, NULL = <data-dir>/ketch/wal */
    struct srv_url_list listen_client_urls;
    struct srv_url_list advertise_client_urls;
    struct srv_url_list listen_peer_urls;
    struct srv_url_list initial_advertise_peer_urls;
    size_t initial_member_count; /* --initial-cluster, parsed */
    struct srv_initial_member initial_members[SRV_CONFIG_MEMBERS_MAX];
    char *initial_cluster; /* the raw --initial-cluster text */
    enum srv_cluster_state initial_cluster_state;
    char *initial_cluster_token;
    uint32_t heartbeat_interval_ms;
    uint32_t election_timeout_ms;
    uint64_t snapshot_count;
    uint64_t max_request_bytes;
    uint64_t quota_backend_bytes; /* the store's size limit (LMDB map size); 0 = kv's default */
    uint32_t max_snapshots;
    uint32_t max_wals;
    bool strict_reconfig_check;
    bool pre_vote;
    char *discovery;          /* token URL or NULL */
    char *discovery_fallback; /* "proxy" or "exit" */
    char *discovery_proxy;
    struct srv_tls_files client_tls;
    struct srv_tls_files peer_tls;
    char *cors;
    enum k_log_level log_level;
    bool force_new_cluster;
};

/* Fills cfg from argv (argv[0] is the program) and envp (NULL-terminated "K=V" strings;
 * only ETCD_* are read). Returns 0 and sets *action, or K_ECONFIG with one line in err
 * saying what to fix. cfg must be released with srv_config_deinit() in either case. */
K_MUST_USE int srv_config_parse(struct srv_config *cfg, int argc, char *const *argv,
                                char *const *envp, enum srv_config_action *action, char *err,
                                size_t err_len);

/* Replaces the initial cluster with text ("name=peerURL,...", as --initial-cluster takes it)
 * and checks it as srv_config_parse checks --initial-cluster: this member's --name must be in
 * it with exactly its --initial-advertise-peer-urls. For discovery, which learns the initial
 * cluster at start-up. Returns 0, or K_ECONFIG with err set and cfg unchanged. */
K_MUST_USE int srv_config_set_initial_cluster(struct srv_config *cfg, const char *text, char *err,
                                              size_t err_len);

/* Frees what srv_config_parse allocated; cfg may be zeroed or partly filled. */
void srv_config_deinit(struct srv_config *cfg);

/* Returns the --initial-cluster entry for name, or NULL. */
const struct srv_initial_member *srv_config_initial_member(const struct srv_config *cfg,
                                                           const char *name);

/* The usage text printed by --help. */
const char *srv_config_usage(void);

#endif
