/* The seeded Raft simulator: N real cores on a simulated network, disks and clock, driven by
 * one seed (TigerBeetle's VOPR is the model). A fault phase injects the seed's fault mix while
 * checking safety after every step; a liveness phase then heals everything and requires a
 * leader and commits within bounded ticks. A failure prints the seed, the replay command and
 * the last events. */
#ifndef KETCH_TESTS_SIM_SIM_H
#define KETCH_TESTS_SIM_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum sim_mix {
    SIM_MIX_CALM = 0,      /* short delays only */
    SIM_MIX_LOSSY = 1,     /* loss, duplication, long random delays (reordering) */
    SIM_MIX_PARTITION = 2, /* symmetric and asymmetric partitions, some loss */
    SIM_MIX_CRASH = 3,     /* crashes losing unsynced state, restarts, slow nodes */
    SIM_MIX_CHURN = 4,     /* membership changes and transfers under crashes and partitions */
    SIM_MIX_ALL = 5,       /* everything at once */
    SIM_MIX_COUNT = 6,
    SIM_MIX_FROM_SEED = -1,
};

struct sim_params {
    uint64_t seed;
    int mix;        /* enum sim_mix, or SIM_MIX_FROM_SEED */
    int nodes;      /* 3, 5 or 7; 0 picks from the seed */
    uint32_t steps; /* ticks of the fault phase */
    bool verbose;   /* print every event as it happens */
    FILE *out;      /* where failures and summaries go */
};

struct sim_stats {
    int mix;   /* the mix the run used */
    int nodes; /* initial voters */
    uint64_t ticks;
    uint64_t messages;
    uint64_t elections; /* leaders elected */
    uint64_t applied;   /* entries applied, summed over nodes */
    uint64_t writes_acked;
    uint64_t reads_checked;
    uint64_t snapshots_installed;
    uint64_t conf_changes;
    uint64_t crashes;
    uint64_t partitions;
    uint64_t transfers;
};

const char *sim_mix_name(int mix);
/* Returns the mix for name, or -2 if unknown. */
int sim_mix_parse(const char *name);

/* Runs one seed. Returns true if every check held; on false, the failure and trace went to
 * p->out. Aborts from inside the core (k_assert) print the trace through a SIGABRT handler. */
bool sim_run(const struct sim_params *p, struct sim_stats *stats);

#endif
