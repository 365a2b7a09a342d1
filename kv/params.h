/* From HTTP parameters to a KvRequest, with etcd's validation (spec/etcd-v2-api.md §4.2;
 * etcd's v2http parseKeyRequest): the checks run in etcd's order and the first failure is the
 * answer, with etcd's code and exact cause and index 0 (HTTP 400, X-Etcd-Index: 0). Pure: the
 * server parses the URL and form body, percent-decodes, and hands the pairs over; it keeps
 * error 210 (unparsable query or body) and 110 (auth) to itself. */
#ifndef KETCH_KV_PARAMS_H
#define KETCH_KV_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "kv/error.h"
#include "proto/kv.pb-c.h"

enum kv_http_method {
    KV_HTTP_GET = 1,
    KV_HTTP_HEAD = 2,
    KV_HTTP_PUT = 3,
    KV_HTTP_POST = 4,
    KV_HTTP_DELETE = 5,
};

/* One decoded name=value pair. */
struct kv_param {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* A parsed keys request. req's bytes point into the path and params given (borrowed: keep
 * them alive while req is used or packed). */
struct kv_parsed {
    Kvpb__KvRequest req;      /* method PUT/POST/DELETE for writes, GET for a quorum read,
                               * NONE for a plain GET/HEAD (served by kv_get) or a watch */
    bool wait;                /* a watch (GET only) */
    bool stream;              /* with wait: stream every event */
    uint64_t wait_index;      /* with wait: 0 = from now */
    bool quorum;              /* GET through raft (HEAD never goes through raft) */
    bool recursive;           /* GET, watch, DELETE */
    bool sorted;              /* GET */
    bool no_value_on_success; /* answer writes with just the action (kv_json_event) */
};

/* Parses params[0..n): for PUT and POST, the form-body pairs first, then the query pairs (the
 * first occurrence of a name counts, so the body wins as in Go's r.Form); for other methods the
 * query pairs only. path is the decoded key path after /v2/keys. now_ns is the member's clock,
 * stamped into req.time_ns. Returns 0 with *out filled, or K_EV2 with *err (201, 202, 203,
 * 209, 211 or 212; index 0). */
K_MUST_USE int kv_params_parse(enum kv_http_method method, const char *path, size_t path_len,
                               const struct kv_param *params, size_t n, int64_t now_ns,
                               struct kv_parsed *out, struct kv_error *err);

/* Go's strconv.ParseBool: 1 t T TRUE true True 0 f F FALSE false False. Returns false on
 * anything else (including ""). */
bool kv_params_bool(const char *s, size_t len, bool *out);

/* Go's strconv.ParseUint(s, 10, 64): decimal digits only, leading zeros allowed, no sign, no
 * overflow. */
bool kv_params_uint(const char *s, size_t len, uint64_t *out);

#endif
