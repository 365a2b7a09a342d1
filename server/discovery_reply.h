/* What the discovery server's answers mean (spec §13): the registry listing, the size key,
 * the registration, watch events and etcd v2 error bodies, parsed from JSON (cJSON) and
 * turned into decisions (is the cluster full, what is the initial cluster) or into etcd's
 * error meanings. Pure: no I/O, so every rule here is unit-tested without a network. The
 * requests and their order are in server/discovery.c. */
#ifndef KETCH_SERVER_DISCOVERY_REPLY_H
#define KETCH_SERVER_DISCOVERY_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "server/member_url.h"
#include "server/members.h"

enum {
    /* The largest cluster a token can bootstrap: ketchd's bound on members. Checked before
     * registering, so a size ketchd cannot form never takes a place in the registry. */
    SRV_DISCOVERY_SIZE_MAX = SRV_MEMBERS_MAX,
    /* Registrations read from one listing; a token dir holding more is a misuse. */
    SRV_DISCOVERY_NODES_MAX = 4096,
};

/* One registration: a child of the token dir other than _config. */
struct srv_discovery_node {
    char *key;              /* the node's key, e.g. "/_etcd/registry/tok/45c3e41896673c46" */
    char *name;             /* the key's last segment, the member id in hex (owned) */
    char *value;            /* "name=peerURL[,name=peerURL2]" (owned; "" for a dir) */
    uint64_t created_index; /* orders the registrations (first come, first in) */
    uint64_t modified_index;
};

/* The registrations known so far, ordered by createdIndex (ties by name). */
struct srv_discovery_registry {
    struct srv_discovery_node *nodes; /* owned; count entries */
    size_t count;
};

/* A watch event on the token dir or on one key under it. */
struct srv_discovery_event {
    char action[32];                /* "create", "set", "delete", "expire", ... */
    struct srv_discovery_node node; /* the event's node (owned; free with ..._event_deinit) */
    bool node_has_value;            /* the node carries a value (not a dir, not a deletion) */
};

/* An etcd v2 error body: {"errorCode":100,"message":"Key not found","cause":"/x","index":5} */
struct srv_discovery_v2_error {
    int code;          /* errorCode, e.g. 100 (key not found), 105 (node exists) */
    char message[128]; /* etcd's message text */
    char cause[512];   /* the path or detail etcd names, may be "" */
    uint64_t index;    /* X-Etcd-Index at the error */
};

/* Parses the body of GET <token dir> (step 2 of spec §13) into reg: the children other than
 * _config, sorted by createdIndex. Returns 0, or K_EPROTO with err saying what was wrong
 * (not JSON, no node, too many children). reg is zeroed first; free with ..._free in either
 * case. */
K_MUST_USE int srv_discovery_registry_parse(const char *body, size_t len,
                                            struct srv_discovery_registry *reg, char *err,
                                            size_t err_len);

/* Frees what reg owns and zeroes it; reg may be zeroed. */
void srv_discovery_registry_free(struct srv_discovery_registry *reg);

/* Adds a copy of n at its createdIndex place unless a registration of that name is known.
 * Returns true if it was added. */
bool srv_discovery_registry_add(struct srv_discovery_registry *reg,
                                const struct srv_discovery_node *n);

/* etcd's "cluster is full": size registrations are listed and self_name (this member's id
 * in hex) is not among the first size of them. */
bool srv_discovery_registry_full(const struct srv_discovery_registry *reg, uint64_t size,
                                 const char *self_name);

/* Joins the values of the first size registrations with ',' into *out (caller frees), the
 * initial cluster. reg must hold at least size registrations. Returns 0, or K_ECONFIG with
 * etcd's meaning in err: "discovery: found duplicate name" when the values name fewer than
 * size members, "discovery: invalid URL" when a value is not name=peerURL. */
K_MUST_USE int srv_discovery_registry_join(const struct srv_discovery_registry *reg, uint64_t size,
                                           char **out, char *err, size_t err_len);

/* The value this member registers: its own --initial-cluster entry, the "name=URL" pairs
 * sorted as strings and joined with ',' (etcd's URLsMap.String()). Caller frees. */
char *srv_discovery_self_value(const char *name, const struct srv_url_list *peer_urls);

/* Parses the size key's value as etcd does (decimal, no sign: strconv.ParseUint(v, 10, 0))
 * into *size. Returns 0, or K_ECONFIG with "discovery: size key is bad" and why in err (not
 * a number, 0, more than SRV_DISCOVERY_SIZE_MAX). */
K_MUST_USE int srv_discovery_size_parse(const char *value, uint64_t *size, char *err,
                                        size_t err_len);

/* Parses a v2 event body ({"action":...,"node":{...}}). Returns 0 or K_EPROTO (err set);
 * ev is zeroed first and must be released with srv_discovery_event_deinit() in either case. */
K_MUST_USE int srv_discovery_event_parse(const char *body, size_t len,
                                         struct srv_discovery_event *ev, char *err, size_t err_len);

void srv_discovery_event_deinit(struct srv_discovery_event *ev);

/* Returns true and fills e if body is an etcd v2 error body. */
bool srv_discovery_v2_error_parse(const char *body, size_t len, struct srv_discovery_v2_error *e);

/* Writes e as etcd's client prints it: "100: Key not found (/_etcd/registry/tok) [5]". */
void srv_discovery_v2_error_format(const struct srv_discovery_v2_error *e, char *out,
                                   size_t out_len);

/* What a reply to one discovery request means. */
enum srv_discovery_verdict {
    SRV_DISCOVERY_OK = 0,    /* the expected success */
    SRV_DISCOVERY_RETRY = 1, /* the server is unavailable (5xx): back off and retry */
    SRV_DISCOVERY_FAIL = 2,  /* a final error; err says which, in etcd's words */
};

/* The size key's reply (step 1): 200 with a number gives *size; 404 errorCode 100 is
 * "size key not found" naming the first missing path; other errors are final. size_key is
 * the path asked for, for the message. */
enum srv_discovery_verdict srv_discovery_size_reply(long status, const char *body, size_t len,
                                                    const char *size_key, uint64_t *size, char *err,
                                                    size_t err_len);

/* The registration's reply (step 3): 201 gives the node's createdIndex; errorCode 105 is
 * "discovery: found duplicate id". self_key is the path written, for the message. */
enum srv_discovery_verdict srv_discovery_create_reply(long status, const char *body, size_t len,
                                                      const char *self_key, uint64_t *created_index,
                                                      char *err, size_t err_len);

/* Any other request's reply that is not the expected success: RETRY for 5xx, FAIL with a
 * message naming what was asked (what, e.g. "listing the registry") otherwise. */
enum srv_discovery_verdict srv_discovery_other_reply(long status, const char *body, size_t len,
                                                     const char *what, char *err, size_t err_len);

#endif
