/* The cluster's member registry as the store holds it: etcd's internal records, written
 * through raft so every member agrees on them (kv/store.h kv_store_internal_scan):
 *   /0/members/<id hex>/raftAttributes   {"peerURLs":[...]}        (a member is added)
 *   /0/members/<id hex>/attributes       {"name":..,"clientURLs":[..]} (it published itself)
 *   /0/removed_members/<id hex>          "removed"
 * and the JSON of etcd's member objects built from them (spec §7). */
#ifndef KETCH_SERVER_MEMBERS_H
#define KETCH_SERVER_MEMBERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "base/buf.h"
#include "kv/store.h"
#include "server/member_url.h"

enum { SRV_MEMBERS_MAX = 16, SRV_MEMBERS_REMOVED_MAX = 256, SRV_MEMBER_NAME_BYTES_MAX = 256 };

struct srv_member {
    uint64_t id;
    char name[SRV_MEMBER_NAME_BYTES_MAX]; /* "" until the member published its attributes */
    struct srv_url_list peer_urls;
    struct srv_url_list client_urls;
};

struct srv_members {
    struct srv_member members[SRV_MEMBERS_MAX]; /* ascending by id, as etcd lists them */
    size_t count;
    uint64_t removed[SRV_MEMBERS_REMOVED_MAX];
    size_t removed_count;
};

/* Reads the registry from the store. Records that do not parse are skipped (logged).
 * Returns 0 or the store's error. */
K_MUST_USE int srv_members_load(struct kv_store *s, struct srv_members *out);

const struct srv_member *srv_members_find(const struct srv_members *m, uint64_t id);
bool srv_members_was_removed(const struct srv_members *m, uint64_t id);
/* The member one of whose peer URLs is url (text compared as given), or NULL. */
const struct srv_member *srv_members_find_peer_url(const struct srv_members *m, const char *url);

/* etcd's member object: {"id":..,"name":..,"peerURLs":[..],"clientURLs":[..]}. */
void srv_member_json(const struct srv_member *m, struct k_buf *out);
/* {"members":[...]} without a trailing newline. */
void srv_members_json(const struct srv_members *m, struct k_buf *out);
/* Parses what srv_members_json wrote (the answer to a joining member). K_EPROTO if not. */
K_MUST_USE int srv_members_parse_json(const char *json, size_t len, struct srv_members *out);

/* The record values. */
void srv_member_raft_attributes_json(const struct srv_url_list *peer_urls, struct k_buf *out);
void srv_member_attributes_json(const char *name, const struct srv_url_list *client_urls,
                                struct k_buf *out);

/* The record paths, e.g. "/0/members/2e1259d415f2a040/raftAttributes" (out: >= 64 bytes). */
void srv_member_path(uint64_t id, const char *leaf, char *out, size_t len);
void srv_member_removed_path(uint64_t id, char *out, size_t len);

#endif
