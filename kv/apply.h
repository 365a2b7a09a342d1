/* Applying committed raft entries to the v2 store: the deterministic state machine of issue 5.
 * Each entry carries an encoded KvRequest (proto/kv.proto); kv_apply_batch applies many in one
 * LMDB write transaction, writes the applied raft index in that same transaction, and returns
 * for every entry the response etcd would give, plus every event in index order for the watch
 * hub. Nothing here reads a clock: time comes from each request's time_ns (TTLs) and from SYNC
 * requests (expiry), which the leader stamps with its clock.
 *
 * How the server uses it (kv/ knows nothing of threads): on a worker thread call
 * kv_apply_batch(); hand the whole batch to the loop thread; there call
 * kv_watch_hub_publish(hub, batch.events, batch.event_count), answer each waiting client from
 * batch.results[i] with kv_json_event()/kv_json_error(), then kv_batch_free(). Results carry
 * the raft index and KvRequest.id to find the waiting client; the HTTP status is
 * kv_event_http_status() or kv_ecode_http_status(), X-Etcd-Index is result.etcd_index.
 *
 * Start-up: open the store, replay the WAL from kv_store_indexes()'s applied index + 1 (entries
 * at or below it are skipped anyway), then create the hub with the store's etcd index; or
 * create the hub first and publish the replayed batches too. The hub needs every event after
 * its starting index, in order. */
#ifndef KETCH_KV_APPLY_H
#define KETCH_KV_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include "base/assert.h"
#include "kv/error.h"
#include "kv/event.h"
#include "kv/store.h"

struct Kvpb__KvRequest;

/* One committed entry. data NULL (or len 0) is an entry that carries no request (an empty
 * leader entry, a configuration change): it only advances the applied index. */
struct kv_entry {
    uint64_t raft_index; /* increasing within a batch; at or below the applied index: skipped */
    const uint8_t *data; /* encoded KvRequest; borrowed for the call */
    size_t len;
};

/* The answer to one entry. */
struct kv_result {
    uint64_t raft_index;
    uint64_t request_id;    /* KvRequest.id, to find the waiting client; 0 if none */
    int rc;                 /* 0: event holds the answer; K_EV2: err holds it; K_ECORRUPT:
                             * the entry's bytes are not a KvRequest (applied as a no-op) */
    struct kv_error err;    /* when rc == K_EV2 */
    struct kv_event *event; /* when rc == 0 and the request answers with an event (every method
                             * but NONE and SYNC); a reference owned by the batch */
    uint64_t etcd_index;    /* X-Etcd-Index: the event's index, the error's index, or for a
                             * get the current index */
    enum kv_action action;  /* the operation the request dispatched to, also when it failed
                             * (for /v2/stats/store counters); KV_ACTION_EXPIRE for SYNC */
};

/* Everything one kv_apply_batch produced. Owned by the caller until kv_batch_free(). */
struct kv_batch {
    struct kv_result *results; /* one per entry, in entry order */
    size_t result_count;
    struct kv_event **events; /* every event that moved the etcd index (writes, refreshes,
                               * expiries), in index order; references owned by the batch */
    size_t event_count;
    uint64_t applied_index; /* the store's applied raft index after the batch */
    uint64_t etcd_index;    /* the store's etcd index after the batch */
};

/* Applies entries[0..n) in one write transaction and fills *out (which the caller frees with
 * kv_batch_free, also on failure). Entries at or below the applied index are skipped (a WAL
 * replay after a crash), and get no result. A v2 error (rc K_EV2 in a result) changes nothing
 * but the applied index. Returns 0; or, if the transaction could not commit (-ENOSPC,
 * K_ELIMIT when the LMDB map is full, -EIO), an error after which nothing of the batch was
 * applied and the store must not be written again (the server stops: sticky, STYLE.md §3). */
K_MUST_USE int kv_apply_batch(struct kv_store *s, const struct kv_entry *entries, size_t n,
                              struct kv_batch *out);

/* The same for requests already decoded (tests, the benchmark, a server that keeps the
 * decoded request): reqs[i] is applied at raft_indexes[i]. A NULL request is a no-op entry. */
K_MUST_USE int kv_apply_requests(struct kv_store *s, const struct Kvpb__KvRequest *const *reqs,
                                 const uint64_t *raft_indexes, size_t n, struct kv_batch *out);

/* Frees the results and drops the batch's event references (the hub keeps its own). */
void kv_batch_free(struct kv_batch *b);

/* The operation a request dispatches to (spec §4.6, §4.10): set, create, update or
 * compareAndSwap for PUT, create for POST, delete or compareAndDelete for DELETE, get for GET,
 * expire for SYNC, none otherwise. */
enum kv_action kv_request_action(const struct Kvpb__KvRequest *req);

/* Checks a request against the store's limits before it is proposed, so a request that cannot
 * apply never costs a raft round. Apply runs the same checks. Returns 0 or K_EV2: 209 for a
 * value beyond the limit, or for a set or create of a key longer or deeper than the limits
 * (other operations on such keys are proposed: they answer 100 as for any missing key); 202
 * for a TTL whose expiration overflows. */
K_MUST_USE int kv_request_check(const struct kv_limits *limits, const struct Kvpb__KvRequest *req,
                                struct kv_error *err);

#endif
