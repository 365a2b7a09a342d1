/* Protobuf encoding of raft's structs by hand (proto/raft.proto is the schema; field
 * numbers below are its). Encoding writes into the caller's buffer; decoding borrows byte
 * fields from the input. Proto3 rules: zero scalars are omitted, repeated uint64 is packed
 * (readers accept both forms), unknown fields are skipped. */
#include "raft/codec.h"

#include <string.h>

#include "base/err.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* ---- writer ---- */

struct wr {
    uint8_t *buf;
    size_t cap;
    size_t len;
    bool overflow;
};

static size_t varint_bytes(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static void put_byte(struct wr *w, uint8_t b)
{
    if (w->len < w->cap) {
        w->buf[w->len] = b;
    } else {
        w->overflow = true;
    }
    w->len++;
}

static void put_varint(struct wr *w, uint64_t v)
{
    while (v >= 0x80) {
        put_byte(w, (uint8_t)(v | 0x80));
        v >>= 7;
    }
    put_byte(w, (uint8_t)v);
}

static void put_tag(struct wr *w, uint32_t field, uint32_t wt)
{
    put_varint(w, ((uint64_t)field << 3) | wt);
}

static void put_u64(struct wr *w, uint32_t field, uint64_t v)
{
    if (v == 0) return;
    put_tag(w, field, WT_VARINT);
    put_varint(w, v);
}

static void put_bytes(struct wr *w, uint32_t field, const uint8_t *p, size_t n)
{
    if (n == 0) return;
    put_tag(w, field, WT_LEN);
    put_varint(w, n);
    if (w->len + n <= w->cap) {
        memcpy(w->buf + w->len, p, n);
    } else {
        w->overflow = true;
    }
    w->len += n;
}

static size_t u64_field_bytes(uint32_t field, uint64_t v)
{
    return v ? varint_bytes((uint64_t)field << 3) + varint_bytes(v) : 0;
}

static size_t len_field_bytes(uint32_t field, size_t n)
{
    return varint_bytes((uint64_t)field << 3) + varint_bytes(n) + n;
}

static size_t packed_bytes(const uint64_t *v, size_t n)
{
    size_t b = 0;
    for (size_t i = 0; i < n; i++)
        b += varint_bytes(v[i]);
    return b;
}

static void put_packed(struct wr *w, uint32_t field, const uint64_t *v, size_t n)
{
    if (n == 0) return;
    put_tag(w, field, WT_LEN);
    put_varint(w, packed_bytes(v, n));
    for (size_t i = 0; i < n; i++)
        put_varint(w, v[i]);
}

static size_t entry_body_bytes(const struct raft_entry *e)
{
    return u64_field_bytes(1, e->term) + u64_field_bytes(2, e->index) +
           u64_field_bytes(3, (uint64_t)e->type) +
           (e->data_len ? len_field_bytes(4, e->data_len) : 0);
}

static void put_entry_body(struct wr *w, const struct raft_entry *e)
{
    put_u64(w, 1, e->term);
    put_u64(w, 2, e->index);
    put_u64(w, 3, (uint64_t)e->type);
    put_bytes(w, 4, e->data, e->data_len);
}

static size_t conf_state_bytes(const struct raft_conf_state *cs)
{
    size_t b = 0;
    if (cs->voters_n) b += len_field_bytes(1, packed_bytes(cs->voters, cs->voters_n));
    if (cs->learners_n) b += len_field_bytes(2, packed_bytes(cs->learners, cs->learners_n));
    return b;
}

static size_t meta_body_bytes(const struct raft_snapshot_meta *s)
{
    return len_field_bytes(1, conf_state_bytes(&s->conf)) + u64_field_bytes(2, s->index) +
           u64_field_bytes(3, s->term);
}

static void put_meta_body(struct wr *w, const struct raft_snapshot_meta *s)
{
    put_tag(w, 1, WT_LEN);
    put_varint(w, conf_state_bytes(&s->conf));
    put_packed(w, 1, s->conf.voters, s->conf.voters_n);
    put_packed(w, 2, s->conf.learners, s->conf.learners_n);
    put_u64(w, 2, s->index);
    put_u64(w, 3, s->term);
}

static int finish(const struct wr *w, size_t *len)
{
    if (w->overflow) return K_ELIMIT;
    *len = w->len;
    return 0;
}

size_t raft_entry_encoded_bytes(const struct raft_entry *e)
{
    return entry_body_bytes(e);
}

int raft_entry_encode(const struct raft_entry *e, uint8_t *buf, size_t cap, size_t *len)
{
    struct wr w = { .buf = buf, .cap = cap };
    put_entry_body(&w, e);
    return finish(&w, len);
}

size_t raft_message_encoded_bytes(const struct raft_message *m)
{
    size_t b = u64_field_bytes(1, (uint64_t)m->type) + u64_field_bytes(2, m->to) +
               u64_field_bytes(3, m->from) + u64_field_bytes(4, m->term) +
               u64_field_bytes(5, m->log_term) + u64_field_bytes(6, m->index) +
               u64_field_bytes(8, m->commit) + u64_field_bytes(10, m->reject ? 1 : 0) +
               u64_field_bytes(11, m->reject_hint);
    for (size_t i = 0; i < m->entries_n; i++)
        b += len_field_bytes(7, entry_body_bytes(&m->entries[i]));
    if (m->type == RAFT_MSG_SNAP) {
        b += len_field_bytes(9, len_field_bytes(2, meta_body_bytes(&m->snapshot)));
    }
    if (m->context_len) b += len_field_bytes(12, m->context_len);
    return b;
}

int raft_message_encode(const struct raft_message *m, uint8_t *buf, size_t cap, size_t *len)
{
    struct wr w = { .buf = buf, .cap = cap };
    put_u64(&w, 1, (uint64_t)m->type);
    put_u64(&w, 2, m->to);
    put_u64(&w, 3, m->from);
    put_u64(&w, 4, m->term);
    put_u64(&w, 5, m->log_term);
    put_u64(&w, 6, m->index);
    for (size_t i = 0; i < m->entries_n; i++) {
        put_tag(&w, 7, WT_LEN);
        put_varint(&w, entry_body_bytes(&m->entries[i]));
        put_entry_body(&w, &m->entries[i]);
    }
    put_u64(&w, 8, m->commit);
    if (m->type == RAFT_MSG_SNAP) {
        /* Snapshot{metadata = 2}; its data field stays empty: data goes out of band. */
        size_t meta = meta_body_bytes(&m->snapshot);
        put_tag(&w, 9, WT_LEN);
        put_varint(&w, len_field_bytes(2, meta));
        put_tag(&w, 2, WT_LEN);
        put_varint(&w, meta);
        put_meta_body(&w, &m->snapshot);
    }
    put_u64(&w, 10, m->reject ? 1 : 0);
    put_u64(&w, 11, m->reject_hint);
    put_bytes(&w, 12, m->context, m->context_len);
    return finish(&w, len);
}

int raft_hard_state_encode(const struct raft_hard_state *hs, uint8_t *buf, size_t cap, size_t *len)
{
    struct wr w = { .buf = buf, .cap = cap };
    put_u64(&w, 1, hs->term);
    put_u64(&w, 2, hs->vote);
    put_u64(&w, 3, hs->commit);
    return finish(&w, len);
}

int raft_snapshot_meta_encode(const struct raft_snapshot_meta *s, uint8_t *buf, size_t cap,
                              size_t *len)
{
    struct wr w = { .buf = buf, .cap = cap };
    put_meta_body(&w, s);
    return finish(&w, len);
}

int raft_conf_change_encode(const struct raft_conf_change *cc, uint8_t *buf, size_t cap,
                            size_t *len)
{
    if (cc->context_len > RAFT_CONF_CHANGE_CONTEXT_BYTES_MAX) return K_ELIMIT;
    struct wr w = { .buf = buf, .cap = cap };
    put_u64(&w, 1, (uint64_t)cc->type);
    put_u64(&w, 2, cc->node_id);
    put_bytes(&w, 3, cc->context, cc->context_len);
    put_u64(&w, 4, cc->id);
    return finish(&w, len);
}

/* ---- reader ---- */

struct rd {
    const uint8_t *p;
    const uint8_t *end;
};

K_MUST_USE static int get_varint(struct rd *r, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return K_ECORRUPT;
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1) return K_ECORRUPT;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return K_ECORRUPT;
}

/* One field: its number and wire type, and for WT_LEN the bytes (sub points at them). */
struct field {
    uint32_t num;
    uint32_t wt;
    uint64_t v;
    struct rd sub;
};

K_MUST_USE static int get_field(struct rd *r, struct field *f)
{
    uint64_t tag = 0;
    int rc = get_varint(r, &tag);
    if (rc < 0) return rc;
    f->num = (uint32_t)(tag >> 3);
    f->wt = (uint32_t)(tag & 7);
    if (f->num == 0 || (tag >> 3) > 0x1fffffff) return K_ECORRUPT;
    switch (f->wt) {
    case WT_VARINT:
        return get_varint(r, &f->v);
    case WT_I64:
        if (r->end - r->p < 8) return K_ECORRUPT;
        r->p += 8;
        return 0;
    case WT_I32:
        if (r->end - r->p < 4) return K_ECORRUPT;
        r->p += 4;
        return 0;
    case WT_LEN: {
        uint64_t n = 0;
        rc = get_varint(r, &n);
        if (rc < 0) return rc;
        if (n > (uint64_t)(r->end - r->p)) return K_ECORRUPT;
        f->sub.p = r->p;
        f->sub.end = r->p + n;
        r->p += n;
        return 0;
    }
    default:
        return K_ECORRUPT;
    }
}

/* Repeated uint64 in either packed (WT_LEN) or unpacked (WT_VARINT) form. */
K_MUST_USE static int get_ids(const struct field *f, uint64_t *ids, size_t *n)
{
    if (f->wt == WT_VARINT) {
        if (*n >= RAFT_NODES_MAX) return K_ECORRUPT;
        ids[(*n)++] = f->v;
        return 0;
    }
    if (f->wt != WT_LEN) return K_ECORRUPT;
    struct rd s = f->sub;
    while (s.p < s.end) {
        if (*n >= RAFT_NODES_MAX) return K_ECORRUPT;
        int rc = get_varint(&s, &ids[*n]);
        if (rc < 0) return rc;
        (*n)++;
    }
    return 0;
}

K_MUST_USE static int need(const struct field *f, uint32_t wt)
{
    return f->wt == wt ? 0 : K_ECORRUPT;
}

K_MUST_USE static int decode_conf_state(struct rd r, struct raft_conf_state *cs)
{
    memset(cs, 0, sizeof(*cs));
    while (r.p < r.end) {
        struct field f;
        int rc = get_field(&r, &f);
        if (rc < 0) return rc;
        if (f.num == 1) rc = get_ids(&f, cs->voters, &cs->voters_n);
        if (f.num == 2) rc = get_ids(&f, cs->learners, &cs->learners_n);
        if (f.num == 3) rc = K_ECORRUPT; /* joint configurations are not ours */
        if (rc < 0) return rc;
    }
    return 0;
}

K_MUST_USE static int decode_meta(struct rd r, struct raft_snapshot_meta *s)
{
    memset(s, 0, sizeof(*s));
    while (r.p < r.end) {
        struct field f;
        int rc = get_field(&r, &f);
        if (rc < 0) return rc;
        switch (f.num) {
        case 1:
            rc = need(&f, WT_LEN);
            if (rc == 0) rc = decode_conf_state(f.sub, &s->conf);
            break;
        case 2:
            rc = need(&f, WT_VARINT);
            s->index = f.v;
            break;
        case 3:
            rc = need(&f, WT_VARINT);
            s->term = f.v;
            break;
        default:
            break;
        }
        if (rc < 0) return rc;
    }
    return 0;
}

K_MUST_USE static int decode_entry(struct rd r, struct raft_entry *e)
{
    memset(e, 0, sizeof(*e));
    while (r.p < r.end) {
        struct field f;
        int rc = get_field(&r, &f);
        if (rc < 0) return rc;
        switch (f.num) {
        case 1:
            rc = need(&f, WT_VARINT);
            e->term = f.v;
            break;
        case 2:
            rc = need(&f, WT_VARINT);
            e->index = f.v;
            break;
        case 3:
            rc = need(&f, WT_VARINT);
            if (rc == 0 && f.v > RAFT_ENTRY_CONF_CHANGE) rc = K_ECORRUPT;
            e->type = (enum raft_entry_type)f.v;
            break;
        case 4:
            rc = need(&f, WT_LEN);
            e->data = f.sub.p;
            e->data_len = (size_t)(f.sub.end - f.sub.p);
            break;
        default:
            break;
        }
        if (rc < 0) return rc;
    }
    if (e->data_len == 0) e->data = NULL;
    return 0;
}

int raft_entry_decode(const uint8_t *buf, size_t len, struct raft_entry *e)
{
    struct rd r = { buf, buf + len };
    return decode_entry(r, e);
}

K_MUST_USE static int decode_message_field(const struct field *f, struct raft_message *m,
                                           struct raft_entry *ents, size_t ents_cap)
{
    int rc = 0;
    if (f->num == 7 || f->num == 9 || f->num == 12) {
        rc = need(f, WT_LEN);
    } else if (f->num <= 12) {
        rc = need(f, WT_VARINT);
    }
    if (rc < 0) return rc;
    switch (f->num) {
    case 1:
        if (f->v >= RAFT_MSG_TYPE_COUNT) return K_ECORRUPT;
        m->type = (enum raft_msg_type)f->v;
        break;
    case 2:
        m->to = f->v;
        break;
    case 3:
        m->from = f->v;
        break;
    case 4:
        m->term = f->v;
        break;
    case 5:
        m->log_term = f->v;
        break;
    case 6:
        m->index = f->v;
        break;
    case 7:
        if (m->entries_n >= ents_cap) return K_ELIMIT;
        rc = decode_entry(f->sub, &ents[m->entries_n]);
        m->entries_n++;
        break;
    case 8:
        m->commit = f->v;
        break;
    case 9: {
        struct rd s = f->sub;
        while (rc == 0 && s.p < s.end) {
            struct field g;
            rc = get_field(&s, &g);
            if (rc == 0 && g.num == 2) {
                rc = need(&g, WT_LEN);
                if (rc == 0) rc = decode_meta(g.sub, &m->snapshot);
            }
        }
        break;
    }
    case 10:
        m->reject = f->v != 0;
        break;
    case 11:
        m->reject_hint = f->v;
        break;
    case 12: {
        size_t n = (size_t)(f->sub.end - f->sub.p);
        if (n > RAFT_CONTEXT_BYTES_MAX) return K_ECORRUPT;
        memcpy(m->context, f->sub.p, n);
        m->context_len = n;
        break;
    }
    default:
        break;
    }
    return rc;
}

int raft_message_decode(const uint8_t *buf, size_t len, struct raft_message *m,
                        struct raft_entry *ents, size_t ents_cap)
{
    memset(m, 0, sizeof(*m));
    m->entries = ents;
    struct rd r = { buf, buf + len };
    while (r.p < r.end) {
        struct field f;
        int rc = get_field(&r, &f);
        if (rc == 0) rc = decode_message_field(&f, m, ents, ents_cap);
        if (rc < 0) return rc;
    }
    if (m->entries_n == 0) m->entries = NULL;
    return 0;
}

int raft_hard_state_decode(const uint8_t *buf, size_t len, struct raft_hard_state *hs)
{
    memset(hs, 0, sizeof(*hs));
    struct rd r = { buf, buf + len };
    while (r.p < r.end) {
        struct field f;
        int rc = get_field(&r, &f);
        if (rc < 0) return rc;
        if (f.num >= 1 && f.num <= 3 && f.wt != WT_VARINT) return K_ECORRUPT;
        if (f.num == 1) hs->term = f.v;
        if (f.num == 2) hs->vote = f.v;
        if (f.num == 3) hs->commit = f.v;
    }
    return 0;
}

int raft_snapshot_meta_decode(const uint8_t *buf, size_t len, struct raft_snapshot_meta *s)
{
    struct rd r = { buf, buf + len };
    return decode_meta(r, s);
}

int raft_conf_change_decode(const uint8_t *buf, size_t len, struct raft_conf_change *cc)
{
    memset(cc, 0, sizeof(*cc));
    struct rd r = { buf, buf + len };
    while (r.p < r.end) {
        struct field f;
        int rc = get_field(&r, &f);
        if (rc < 0) return rc;
        switch (f.num) {
        case 1:
            if (f.wt != WT_VARINT || f.v > RAFT_CONF_ADD_LEARNER_NODE) return K_ECORRUPT;
            cc->type = (enum raft_conf_change_type)f.v;
            break;
        case 2:
            if (f.wt != WT_VARINT) return K_ECORRUPT;
            cc->node_id = f.v;
            break;
        case 3:
            if (f.wt != WT_LEN) return K_ECORRUPT;
            cc->context = f.sub.p;
            cc->context_len = (size_t)(f.sub.end - f.sub.p);
            if (cc->context_len > RAFT_CONF_CHANGE_CONTEXT_BYTES_MAX) return K_ELIMIT;
            break;
        case 4:
            if (f.wt != WT_VARINT) return K_ECORRUPT;
            cc->id = f.v;
            break;
        default:
            break;
        }
    }
    if (cc->context_len == 0) cc->context = NULL;
    return 0;
}
