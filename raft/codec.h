/* The wire and WAL encoding of raft's structs: protobuf, as defined by proto/raft.proto,
 * written and read by hand so that encoding needs no allocation and decoding points entry
 * bytes into the input buffer instead of copying them. tests/unit/test_raft_codec.c checks
 * every function against protobuf-c's generated code both ways.
 * Bytes from the network or disk are untrusted: decoders return K_ECORRUPT, never assert. */
#ifndef KETCH_RAFT_CODEC_H
#define KETCH_RAFT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

enum {
    RAFT_CONF_CHANGE_CONTEXT_BYTES_MAX = 1024,
    RAFT_CONF_CHANGE_BYTES_MAX = RAFT_CONF_CHANGE_CONTEXT_BYTES_MAX + 64,
};

/* Each *_encode writes into buf (cap bytes), stores the length in *len and returns 0, or
 * K_ELIMIT if cap is too small. Each *_encoded_bytes returns the exact length. */
size_t raft_entry_encoded_bytes(const struct raft_entry *e);
K_MUST_USE int raft_entry_encode(const struct raft_entry *e, uint8_t *buf, size_t cap, size_t *len);
/* Decodes; e->data points into buf (borrowed from the caller's buffer). */
K_MUST_USE int raft_entry_decode(const uint8_t *buf, size_t len, struct raft_entry *e);

size_t raft_message_encoded_bytes(const struct raft_message *m);
K_MUST_USE int raft_message_encode(const struct raft_message *m, uint8_t *buf, size_t cap,
                                   size_t *len);
/* Decodes into *m, with entries stored in ents (ents_cap of them; K_ELIMIT if more) whose
 * data points into buf. m->entries points at ents. */
K_MUST_USE int raft_message_decode(const uint8_t *buf, size_t len, struct raft_message *m,
                                   struct raft_entry *ents, size_t ents_cap);

K_MUST_USE int raft_hard_state_encode(const struct raft_hard_state *hs, uint8_t *buf, size_t cap,
                                      size_t *len);
K_MUST_USE int raft_hard_state_decode(const uint8_t *buf, size_t len, struct raft_hard_state *hs);

/* SnapshotMetadata. */
K_MUST_USE int raft_snapshot_meta_encode(const struct raft_snapshot_meta *s, uint8_t *buf,
                                         size_t cap, size_t *len);
K_MUST_USE int raft_snapshot_meta_decode(const uint8_t *buf, size_t len,
                                         struct raft_snapshot_meta *s);

/* ConfChange; decoding points cc->context into buf. K_ELIMIT if the context is longer than
 * RAFT_CONF_CHANGE_CONTEXT_BYTES_MAX. */
K_MUST_USE int raft_conf_change_encode(const struct raft_conf_change *cc, uint8_t *buf, size_t cap,
                                       size_t *len);
K_MUST_USE int raft_conf_change_decode(const uint8_t *buf, size_t len, struct raft_conf_change *cc);

#endif
