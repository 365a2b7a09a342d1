/* raft-sim: runs the seeded Raft simulation. `raft-sim --seed S` replays one run exactly;
 * `raft-sim --seeds A..B --steps N [--mix NAME] [--nodes K]` runs a campaign and prints a
 * summary; `--regressions` runs the seeds of every bug found so far. Exit status 1 if any
 * seed failed. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* Every seed that once failed, with the bug it found (see the commit that fixed it). */
static const struct {
    uint64_t seed;
    int mix;
    int nodes;
    uint32_t steps;
} regressions[] = {
    /* A lost MsgApp left a full in-flight window (inflight_max 1) that nothing freed: the
     * leader sent only heartbeats forever. Heartbeat answers now free a slot. */
    { 4, SIM_MIX_PARTITION, 5, 1500 },
};

static void usage(void)
{
    fprintf(stderr, "usage: raft-sim [--seed S | --seeds A..B] [--steps N] [--mix "
                    "calm|lossy|partition|crash|churn|all|seed] [--nodes 1|3|5|7] [--regressions] "
                    "[-v]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    uint64_t lo = 1;
    uint64_t hi = 1;
    struct sim_params p = { .mix = SIM_MIX_FROM_SEED, .steps = 2000, .out = stdout };
    bool run_regressions = false;
    bool have_seeds = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--seed") == 0 && v) {
            lo = hi = strtoull(v, NULL, 10);
            have_seeds = true;
            i++;
        } else if (strcmp(a, "--seeds") == 0 && v) {
            if (sscanf(v, "%" SCNu64 "..%" SCNu64, &lo, &hi) != 2 || hi < lo) usage();
            have_seeds = true;
            i++;
        } else if (strcmp(a, "--steps") == 0 && v) {
            p.steps = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--mix") == 0 && v) {
            p.mix = sim_mix_parse(v);
            if (p.mix == -2) usage();
            i++;
        } else if (strcmp(a, "--nodes") == 0 && v) {
            p.nodes = atoi(v);
            if (p.nodes != 1 && p.nodes != 3 && p.nodes != 5 && p.nodes != 7) usage();
            i++;
        } else if (strcmp(a, "--regressions") == 0) {
            run_regressions = true;
        } else if (strcmp(a, "-v") == 0) {
            p.verbose = true;
        } else {
            usage();
        }
    }
    uint64_t runs = 0;
    uint64_t failures = 0;
    uint64_t per_mix[SIM_MIX_COUNT] = { 0 };
    uint64_t per_size[8] = { 0 };
    struct sim_stats total = { 0 };
    size_t n_reg = run_regressions ? sizeof(regressions) / sizeof(regressions[0]) : 0;
    bool seeds = have_seeds || !run_regressions;
    for (size_t i = 0; i < n_reg + (seeds ? 1 : 0); i++) {
        uint64_t a = lo;
        uint64_t b = hi;
        struct sim_params r = p;
        if (i < n_reg) {
            a = b = regressions[i].seed;
            r.mix = regressions[i].mix;
            r.nodes = regressions[i].nodes;
            r.steps = regressions[i].steps;
        }
        for (uint64_t seed = a;; seed++) {
            r.seed = seed;
            struct sim_stats st;
            runs++;
            if (!sim_run(&r, &st)) failures++;
            per_mix[st.mix]++;
            per_size[st.nodes]++;
            total.ticks += st.ticks;
            total.messages += st.messages;
            total.elections += st.elections;
            total.applied += st.applied;
            total.writes_acked += st.writes_acked;
            total.reads_checked += st.reads_checked;
            total.snapshots_installed += st.snapshots_installed;
            total.conf_changes += st.conf_changes;
            total.crashes += st.crashes;
            total.partitions += st.partitions;
            total.transfers += st.transfers;
            if (seed == b) break; /* b may be UINT64_MAX */
        }
    }
    printf("raft-sim: %" PRIu64 " runs, %" PRIu64 " failed; ticks %" PRIu64 " messages %" PRIu64
           " elections %" PRIu64 " applied %" PRIu64 " writes %" PRIu64 " reads %" PRIu64
           " snapshots %" PRIu64 " confchanges %" PRIu64 " crashes %" PRIu64 " partitions %" PRIu64
           " transfers %" PRIu64 "\n",
           runs, failures, total.ticks, total.messages, total.elections, total.applied,
           total.writes_acked, total.reads_checked, total.snapshots_installed, total.conf_changes,
           total.crashes, total.partitions, total.transfers);
    printf("raft-sim: runs per mix:");
    for (int m = 0; m < SIM_MIX_COUNT; m++)
        printf(" %s %" PRIu64, sim_mix_name(m), per_mix[m]);
    printf("; per size: 1 %" PRIu64 " 3 %" PRIu64 " 5 %" PRIu64 " 7 %" PRIu64 "\n", per_size[1],
           per_size[3], per_size[5], per_size[7]);
    return failures == 0 ? 0 : 1;
}
