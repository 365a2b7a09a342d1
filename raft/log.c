/* The log as the core sees it (etcd log.go + log_unstable.go): what the storage holds,
 * shadowed by entries and a snapshot not yet handed to the storage. The unstable part is
 * written to storage by the driver between raft_ready() and raft_advance(). */
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/err.h"
#include "raft/raft_int.h"

int raft__log_init(struct raft__log *l, const struct raft_storage *s, uint64_t *allocations)
{
    memset(l, 0, sizeof(*l));
    l->storage = s;
    l->allocations = allocations;
    raft__arena_init(&l->arena, allocations);
    uint64_t first = s->first_index(s->data);
    uint64_t last = s->last_index(s->data);
    if (first == 0 || last + 1 < first) return K_ECONFIG;
    l->u_offset = last + 1;
    /* Everything up to the snapshot is committed and applied by definition. */
    l->committed = first - 1;
    l->applied = first - 1;
    return 0;
}

void raft__log_deinit(struct raft__log *l)
{
    free(l->u_ents);
    raft__arena_deinit(&l->arena);
    memset(l, 0, sizeof(*l));
}

uint64_t raft__log_first_index(const struct raft__log *l)
{
    if (l->u_snap_present) return l->u_snap.index + 1;
    return l->storage->first_index(l->storage->data);
}

uint64_t raft__log_last_index(const struct raft__log *l)
{
    if (l->u_n > 0) return l->u_offset + l->u_n - 1;
    if (l->u_snap_present) return l->u_snap.index;
    return l->storage->last_index(l->storage->data);
}

int raft__log_term(const struct raft__log *l, uint64_t i, uint64_t *term)
{
    uint64_t dummy = raft__log_first_index(l) - 1;
    if (i < dummy) return K_ECOMPACTED;
    if (i > raft__log_last_index(l)) return K_EUNAVAILABLE;
    if (l->u_snap_present && i == l->u_snap.index) {
        *term = l->u_snap.term;
        return 0;
    }
    if (i >= l->u_offset) {
        k_assert(i - l->u_offset < l->u_n);
        *term = l->u_ents[i - l->u_offset].term;
        return 0;
    }
    int rc = l->storage->term(l->storage->data, i, term);
    k_assert(rc == 0 || rc == K_ECOMPACTED || rc == K_EUNAVAILABLE);
    return rc;
}

uint64_t raft__log_term_or_zero(const struct raft__log *l, uint64_t i)
{
    uint64_t t = 0;
    if (raft__log_term(l, i, &t) != 0) return 0;
    return t;
}

uint64_t raft__log_last_term(const struct raft__log *l)
{
    uint64_t t = 0;
    int rc = raft__log_term(l, raft__log_last_index(l), &t);
    k_assert(rc == 0);
    return t;
}

bool raft__log_match_term(const struct raft__log *l, uint64_t i, uint64_t term)
{
    uint64_t t = 0;
    if (raft__log_term(l, i, &t) != 0) return false;
    return t == term;
}

/* Raft §5.4.1: a later last term wins; equal terms compare length. */
bool raft__log_is_up_to_date(const struct raft__log *l, uint64_t last_index, uint64_t term)
{
    uint64_t my_term = raft__log_last_term(l);
    return term > my_term || (term == my_term && last_index >= raft__log_last_index(l));
}

int raft__log_span(const struct raft__log *l, uint64_t lo, uint64_t hi,
                   const struct raft_entry **out, size_t *out_n)
{
    k_assert(lo < hi);
    if (lo < raft__log_first_index(l)) return K_ECOMPACTED;
    if (hi > raft__log_last_index(l) + 1) return K_EUNAVAILABLE;
    if (lo >= l->u_offset) {
        *out = &l->u_ents[lo - l->u_offset];
        *out_n = hi - lo;
        return 0;
    }
    /* From the storage, never across into the unstable part (they are apart in memory). */
    if (hi > l->u_offset) hi = l->u_offset;
    int rc = l->storage->entries(l->storage->data, lo, hi, out, out_n);
    k_assert(rc == 0 || rc == K_ECOMPACTED || rc == K_EUNAVAILABLE);
    if (rc == 0) {
        k_assert(*out_n >= 1 && *out_n <= hi - lo);
        k_assert((*out)[0].index == lo);
    }
    return rc;
}

static void reserve(struct raft__log *l, size_t n)
{
    if (l->u_n + n <= l->u_cap) return;
    size_t cap = l->u_cap ? l->u_cap * 2 : 256;
    while (cap < l->u_n + n)
        cap *= 2;
    l->u_ents = realloc(l->u_ents, cap * sizeof(*l->u_ents));
    k_assert(l->u_ents != NULL);
    (*l->allocations)++;
    l->u_cap = cap;
}

static void push(struct raft__log *l, const struct raft_entry *e)
{
    struct raft_entry *d = &l->u_ents[l->u_n++];
    *d = *e;
    d->data = raft__arena_copy(&l->arena, e->data, e->data_len);
}

bool raft__log_append(struct raft__log *l, const struct raft_entry *ents, size_t n)
{
    if (n == 0) return false;
    uint64_t after = ents[0].index;
    k_assert(after > l->committed); /* committed entries are never overwritten (§5.4) */
    uint64_t last = raft__log_last_index(l);
    k_assert(after <= last + 1);
    bool truncated = after <= last;
    if (after == l->u_offset + l->u_n) {
        /* The common case: straight after the unstable part. */
    } else if (after <= l->u_offset) {
        /* Replace the unstable part; storage entries >= after are shadowed until the driver
         * overwrites them. The bytes of dropped entries stay in the arena until advance. */
        l->u_offset = after;
        l->u_n = 0;
    } else {
        l->u_n = after - l->u_offset;
    }
    reserve(l, n);
    for (size_t i = 0; i < n; i++) {
        k_assert(ents[i].index == after + i);
        push(l, &ents[i]);
    }
    return truncated;
}

uint64_t raft__log_append_new(struct raft__log *l, uint64_t term, enum raft_entry_type type,
                              const void *data, size_t len)
{
    uint64_t index = raft__log_last_index(l) + 1;
    k_assert(index == l->u_offset + l->u_n);
    reserve(l, 1);
    struct raft_entry e = {
        .term = term, .index = index, .type = type, .data_len = len, .data = data
    };
    push(l, &e);
    return index;
}

/* First entry of ents that is not in the log already (Raft §5.3: an existing entry that
 * conflicts with a new one is deleted with all that follow). 0 if all are present. */
static uint64_t find_conflict(const struct raft__log *l, const struct raft_entry *ents, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!raft__log_match_term(l, ents[i].index, ents[i].term)) return ents[i].index;
    }
    return 0;
}

bool raft__log_maybe_append(struct raft__log *l, uint64_t index, uint64_t log_term, uint64_t commit,
                            const struct raft_entry *ents, size_t n, uint64_t *last_new,
                            bool *truncated)
{
    *truncated = false;
    if (!raft__log_match_term(l, index, log_term)) return false;
    uint64_t lastnew = index + n;
    uint64_t ci = find_conflict(l, ents, n);
    if (ci != 0) {
        k_assert(ci > l->committed);
        uint64_t offset = index + 1;
        *truncated = raft__log_append(l, ents + (ci - offset), n - (size_t)(ci - offset));
    }
    raft__log_commit_to(l, commit < lastnew ? commit : lastnew);
    *last_new = lastnew;
    return true;
}

void raft__log_commit_to(struct raft__log *l, uint64_t commit)
{
    if (commit <= l->committed) return; /* commit never decreases */
    k_assert(commit <= raft__log_last_index(l));
    l->committed = commit;
}

bool raft__log_maybe_commit(struct raft__log *l, uint64_t index, uint64_t term)
{
    if (index > l->committed && raft__log_term_or_zero(l, index) == term) {
        raft__log_commit_to(l, index);
        return true;
    }
    return false;
}

uint64_t raft__log_find_conflict_by_term(const struct raft__log *l, uint64_t index, uint64_t term)
{
    uint64_t last = raft__log_last_index(l);
    if (index > last) return index; /* the hint is beyond our log: nothing to learn */
    for (;;) {
        uint64_t t = 0;
        if (raft__log_term(l, index, &t) != 0) return index; /* compacted: stop here */
        if (t <= term) return index;
        if (index == 0) return 0;
        index--;
    }
}

void raft__log_restore(struct raft__log *l, const struct raft_snapshot_meta *meta)
{
    k_assert(meta->index > l->committed);
    l->u_snap_present = true;
    l->u_snap = *meta;
    l->u_offset = meta->index + 1;
    l->u_n = 0;
    l->committed = meta->index;
}

void raft__log_stable(struct raft__log *l)
{
    /* The snapshot is installed: the application now stands at its index. */
    if (l->u_snap_present) {
        if (l->applied < l->u_snap.index) l->applied = l->u_snap.index;
        l->u_snap_present = false;
    }
    l->u_offset += l->u_n;
    l->u_n = 0;
    raft__arena_reset(&l->arena);
    k_assert(l->u_offset == l->storage->last_index(l->storage->data) + 1);
}

bool raft__log_has_conf_change(const struct raft__log *l, uint64_t lo, uint64_t hi)
{
    while (lo <= hi) {
        const struct raft_entry *e = NULL;
        size_t n = 0;
        if (raft__log_span(l, lo, hi + 1, &e, &n) != 0) return false;
        for (size_t i = 0; i < n; i++) {
            if (e[i].type == RAFT_ENTRY_CONF_CHANGE) return true;
        }
        lo += n;
    }
    return false;
}
