/* etcd v2 errors as data (STYLE.md §3): kv fills a struct kv_error and returns K_EV2; the server
 * serializes it with kv_json_error() and answers with kv_ecode_http_status(). Codes, messages
 * and statuses are etcd 3.4's (spec/etcd-v2-api.md §6; etcdserver/api/v2error/error.go), named
 * after etcd's Ecode constants so one grep finds both. */
#ifndef KETCH_KV_ERROR_H
#define KETCH_KV_ERROR_H

#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"

enum kv_ecode {
    KV_ECODE_NONE = 0,
    KV_ECODE_KEY_NOT_FOUND = 100,
    KV_ECODE_TEST_FAILED = 101,
    KV_ECODE_NOT_FILE = 102,
    KV_ECODE_NO_MORE_PEER = 103,
    KV_ECODE_NOT_DIR = 104,
    KV_ECODE_NODE_EXIST = 105,
    KV_ECODE_KEY_IS_PRESERVED = 106,
    KV_ECODE_ROOT_RONLY = 107,
    KV_ECODE_DIR_NOT_EMPTY = 108,
    KV_ECODE_EXISTING_PEER_ADDR = 109,
    KV_ECODE_UNAUTHORIZED = 110,
    KV_ECODE_VALUE_REQUIRED = 200,
    KV_ECODE_PREV_VALUE_REQUIRED = 201,
    KV_ECODE_TTL_NAN = 202,
    KV_ECODE_INDEX_NAN = 203,
    KV_ECODE_VALUE_OR_TTL_REQUIRED = 204,
    KV_ECODE_TIMEOUT_NAN = 205,
    KV_ECODE_NAME_REQUIRED = 206,
    KV_ECODE_INDEX_OR_VALUE_REQUIRED = 207,
    KV_ECODE_INDEX_VALUE_MUTEX = 208,
    KV_ECODE_INVALID_FIELD = 209,
    KV_ECODE_INVALID_FORM = 210,
    KV_ECODE_REFRESH_VALUE = 211,
    KV_ECODE_REFRESH_TTL_REQUIRED = 212,
    KV_ECODE_RAFT_INTERNAL = 300,
    KV_ECODE_LEADER_ELECT = 301,
    KV_ECODE_WATCHER_CLEARED = 400,
    KV_ECODE_EVENT_INDEX_CLEARED = 401,
    KV_ECODE_STANDBY_INTERNAL = 402,
    KV_ECODE_INVALID_ACTIVE_SIZE = 403,
    KV_ECODE_INVALID_REMOVE_DELAY = 404,
    KV_ECODE_CLIENT_INTERNAL = 500,
};

struct kv_error {
    enum kv_ecode ecode; /* etcd errorCode, e.g. KV_ECODE_KEY_NOT_FOUND = 100 */
    uint64_t index;      /* store index at the time, reported as "index"; 0 for request errors */
    char cause[256];     /* key or field at fault, reported as "cause", when it fits */
    char *cause_long;    /* a longer cause (a long key, a CAS on long values): a heap copy
                          * owned by the error, freed by kv_error_release; else NULL */
    size_t cause_len;    /* bytes of the cause: a key may hold a NUL byte (%00 in its URL) */
};

/* Returns etcd's exact message for ecode ("Key not found"); a static string, "" if unknown. */
const char *kv_ecode_message(enum kv_ecode ecode);

/* Returns the HTTP status etcd answers an ecode with (spec §4.12): 404 for 100, 412 for 101
 * and 105, 403 for 102 and 108, 401 for 110, 500 for 300 and 301, 400 for every other. */
int kv_ecode_http_status(enum kv_ecode ecode);

/* Fills *err with a key (or any bytes, NUL included) as its cause, whole, and returns K_EV2.
 * A cause that does not fit err->cause is copied to the heap: call kv_error_release. */
int kv_error_set_path(struct kv_error *err, enum kv_ecode ecode, uint64_t index, const char *path,
                      size_t len) __attribute__((warn_unused_result));

/* Fills *err (cause formatted printf-style, truncated to err->cause) and returns K_EV2. */
K_MUST_USE int kv_error_set(struct kv_error *err, enum kv_ecode ecode, uint64_t index,
                            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The cause's cause_len bytes, NUL-terminated. */
const char *kv_error_cause(const struct kv_error *err);

/* Frees a long cause (the error then has none). Whoever holds an error a kv function filled
 * (a K_EV2 return) releases it once answered; kv_batch_free does so for batch results. */
void kv_error_release(struct kv_error *err);

#endif
