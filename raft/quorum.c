/* Majority arithmetic over the voters in raft.prs: the commit index a majority has
 * matched (Raft §5.3, §5.4.2) and the outcome of an election (§5.2). Learners (which sit
 * after the voters in prs) never count. */
#include "base/assert.h"
#include "raft/raft_int.h"

size_t raft__quorum(size_t voters_n)
{
    return voters_n / 2 + 1;
}

uint64_t raft__quorum_commit_index(const struct raft__progress *prs, size_t n)
{
    k_assert(n <= RAFT_NODES_MAX);
    if (n == 0) return 0;
    /* Insertion sort, descending: n is at most RAFT_NODES_MAX. */
    uint64_t m[RAFT_NODES_MAX];
    for (size_t i = 0; i < n; i++) {
        uint64_t v = prs[i].match_index;
        size_t j = i;
        while (j > 0 && m[j - 1] < v) {
            m[j] = m[j - 1];
            j--;
        }
        m[j] = v;
    }
    return m[raft__quorum(n) - 1];
}

enum raft__vote_result raft__quorum_vote_result(const struct raft__progress *prs, size_t n)
{
    size_t granted = 0;
    size_t rejected = 0;
    for (size_t i = 0; i < n; i++) {
        if (prs[i].vote > 0) granted++;
        if (prs[i].vote < 0) rejected++;
    }
    size_t q = raft__quorum(n);
    if (granted >= q) return RAFT__VOTE_WON;
    if (n - rejected < q) return RAFT__VOTE_LOST;
    return RAFT__VOTE_PENDING;
}
