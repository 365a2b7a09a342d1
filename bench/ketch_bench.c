/* ketch-bench: the load generator behind every performance figure of ketch (issue 8).
 * Speaks etcd's v2 HTTP API to any compatible endpoint list; one libuv loop, no thread or
 * process per request. This file is the command line; the workloads are workload.c and
 * watch.c, the output report.c. Usage: ketch-bench --help, and bench/README.md. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/version.h"
#include "config.h"
#include "report.h"
#include "result.h"
#include "watch.h"
#include "workload.h"

enum {
    EXIT_OK = 0,
    EXIT_USAGE = 1,  /* bad command line, unreachable leader, failed set-up */
    EXIT_FAILED = 2, /* the run finished but nothing succeeded (or a watch missed events) */
};

static const char USAGE[] =
        "Usage: ketch-bench WORKLOAD [options]\n"
        "\n"
        "Load generator for etcd v2-compatible servers (ketchd, etcd --enable-v2=true).\n"
        "\n"
        "Workloads:\n"
        "  put      PUT value=<value-size bytes> to keys of the key space\n"
        "  get      GET keys of the key space (written once first, see --no-preload)\n"
        "  mixed    GET with probability --read-ratio, else PUT\n"
        "  cas      GET a hot key, then PUT ?prevIndex=<its modifiedIndex>; 412 = contention\n"
        "  watch    --watchers watch one key (or a subtree), then --writes writes by\n"
        "           --connections writers; time until every watcher saw every write\n"
        "\n"
        "Options:\n"
        "  --endpoints URLS     comma-separated client URLs (default http://127.0.0.1:2379)\n"
        "  --target T           'all' spreads connections over the endpoints (default);\n"
        "                       'leader' sends everything to the leader's client URL\n"
        "  --connections N      connections (watch: writers); default 16 (watch: 1)\n"
        "  --pipeline K         requests in flight per connection (default 1, max 64)\n"
        "  --rate R             open loop: R requests/s over all connections, sent when due\n"
        "                       (latency counts from then); default closed loop\n"
        "  --duration D         measured time (default 10s); watch: deadline (default 60s)\n"
        "  --requests N         measure N requests instead of a duration\n"
        "  --warmup D           load before measuring, excluded from figures (default 2s)\n"
        "  --timeout D          a request unanswered this long fails its connection (10s)\n"
        "  --value-size BYTES   value size (default 256)\n"
        "  --keys N             key space size (default 1000)\n"
        "  --key-dist DIST      uniform (default), sequential or zipf\n"
        "  --quorum             GETs with quorum=true (linearizable)\n"
        "  --read-ratio R       mixed: share of GETs, 0..1 (default 0.9)\n"
        "  --cas-keys N         cas: number of contended keys (default 4)\n"
        "  --no-preload         get/mixed/cas: do not write the key space first\n"
        "  --prefix P           keys live under /v2/keys/P/ (default bench)\n"
        "  --seed N             seed of key choices and values (default 1)\n"
        "  --watchers N         watch: watcher connections (default 100)\n"
        "  --writes M           watch: writes (default 100)\n"
        "  --recursive          watch: watch the subtree P/watch, write to its children\n"
        "  --stream             watch: one stream=true response per watcher, not long polls\n"
        "  --json FILE          also write the report as JSON to FILE ('-' for stdout)\n"
        "  --quiet              no table on stdout\n"
        "  --version, --help\n"
        "\n"
        "Durations: 500ms, 2s, 1m, or plain seconds. Exit status: 0 when some requests\n"
        "succeeded (watch: every watcher saw every write), 2 when none did, 1 on bad usage.\n";

struct cli {
    struct bench_config cfg;
    const char *endpoints;
    const char *json_path;
    bool quiet;
    bool connections_set;
    bool duration_set;
};

static int parse_u64(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0' || s[0] == '-') return K_ECONFIG;
    *out = v;
    return 0;
}

static int parse_duration_ns(const char *s, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0) return K_ECONFIG;
    double scale = 1e9;
    if (strcmp(end, "ms") == 0)
        scale = 1e6;
    else if (strcmp(end, "s") == 0 || *end == '\0')
        scale = 1e9;
    else if (strcmp(end, "m") == 0)
        scale = 60e9;
    else if (strcmp(end, "us") == 0)
        scale = 1e3;
    else
        return K_ECONFIG;
    *out = (uint64_t)(v * scale);
    return 0;
}

static int parse_workload(const char *s, enum bench_workload *out)
{
    for (int w = BENCH_WORKLOAD_PUT; w <= BENCH_WORKLOAD_WATCH; w++) {
        if (strcmp(s, bench_workload_name(w)) == 0) {
            *out = w;
            return 0;
        }
    }
    return K_ECONFIG;
}

enum opt {
    OPT_ENDPOINTS = 256,
    OPT_TARGET,
    OPT_CONNECTIONS,
    OPT_PIPELINE,
    OPT_DURATION,
    OPT_REQUESTS,
    OPT_WARMUP,
    OPT_TIMEOUT,
    OPT_VALUE_SIZE,
    OPT_KEYS,
    OPT_KEY_DIST,
    OPT_QUORUM,
    OPT_READ_RATIO,
    OPT_CAS_KEYS,
    OPT_NO_PRELOAD,
    OPT_PREFIX,
    OPT_SEED,
    OPT_WATCHERS,
    OPT_WRITES,
    OPT_RECURSIVE,
    OPT_STREAM,
    OPT_JSON,
    OPT_QUIET,
    OPT_VERSION,
    OPT_HELP,
    OPT_RATE,
};

static const struct option OPTIONS[] = {
    { "endpoints", required_argument, NULL, OPT_ENDPOINTS },
    { "target", required_argument, NULL, OPT_TARGET },
    { "connections", required_argument, NULL, OPT_CONNECTIONS },
    { "pipeline", required_argument, NULL, OPT_PIPELINE },
    { "rate", required_argument, NULL, OPT_RATE },
    { "duration", required_argument, NULL, OPT_DURATION },
    { "requests", required_argument, NULL, OPT_REQUESTS },
    { "warmup", required_argument, NULL, OPT_WARMUP },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "value-size", required_argument, NULL, OPT_VALUE_SIZE },
    { "keys", required_argument, NULL, OPT_KEYS },
    { "key-dist", required_argument, NULL, OPT_KEY_DIST },
    { "quorum", no_argument, NULL, OPT_QUORUM },
    { "read-ratio", required_argument, NULL, OPT_READ_RATIO },
    { "cas-keys", required_argument, NULL, OPT_CAS_KEYS },
    { "no-preload", no_argument, NULL, OPT_NO_PRELOAD },
    { "prefix", required_argument, NULL, OPT_PREFIX },
    { "seed", required_argument, NULL, OPT_SEED },
    { "watchers", required_argument, NULL, OPT_WATCHERS },
    { "writes", required_argument, NULL, OPT_WRITES },
    { "recursive", no_argument, NULL, OPT_RECURSIVE },
    { "stream", no_argument, NULL, OPT_STREAM },
    { "json", required_argument, NULL, OPT_JSON },
    { "quiet", no_argument, NULL, OPT_QUIET },
    { "version", no_argument, NULL, OPT_VERSION },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

static void cli_defaults(struct cli *c)
{
    memset(c, 0, sizeof(*c));
    c->endpoints = "http://127.0.0.1:2379";
    c->cfg.connections = 16;
    c->cfg.pipeline = 1;
    c->cfg.warmup_ns = 2000000000ull;
    c->cfg.duration_ns = 10000000000ull;
    c->cfg.timeout_ns = 10000000000ull;
    c->cfg.value_bytes = 256;
    c->cfg.keys = 1000;
    c->cfg.key_dist = BENCH_KEYS_UNIFORM;
    c->cfg.read_per_million = 900000;
    c->cfg.cas_keys = 4;
    c->cfg.preload = true;
    snprintf(c->cfg.prefix, sizeof(c->cfg.prefix), "bench");
    c->cfg.seed = 1;
    c->cfg.watchers = 100;
    c->cfg.writes = 100;
}

/* Applies one option; returns 0, or K_ECONFIG for a bad value (named on stderr). */
static int cli_apply(struct cli *c, int opt, const char *arg)
{
    struct bench_config *cfg = &c->cfg;
    uint64_t v = 0;
    int rc = 0;
    switch (opt) {
    case OPT_ENDPOINTS:
        c->endpoints = arg;
        break;
    case OPT_TARGET:
        if (strcmp(arg, "leader") == 0)
            cfg->target_leader = true;
        else if (strcmp(arg, "all") != 0)
            rc = K_ECONFIG;
        break;
    case OPT_CONNECTIONS:
        rc = parse_u64(arg, &v);
        if (rc == 0 && (v == 0 || v > BENCH_CONNECTIONS_MAX)) rc = K_ECONFIG;
        cfg->connections = (size_t)v;
        c->connections_set = true;
        break;
    case OPT_PIPELINE:
        rc = parse_u64(arg, &v);
        if (rc == 0 && (v == 0 || v > 64)) rc = K_ECONFIG;
        cfg->pipeline = (size_t)v;
        break;
    case OPT_RATE:
        rc = parse_u64(arg, &cfg->rate);
        if (rc == 0 && (cfg->rate == 0 || cfg->rate > 10000000)) rc = K_ECONFIG;
        break;
    case OPT_DURATION:
        rc = parse_duration_ns(arg, &cfg->duration_ns);
        c->duration_set = true;
        break;
    case OPT_REQUESTS:
        rc = parse_u64(arg, &cfg->requests);
        break;
    case OPT_WARMUP:
        rc = parse_duration_ns(arg, &cfg->warmup_ns);
        break;
    case OPT_TIMEOUT:
        rc = parse_duration_ns(arg, &cfg->timeout_ns);
        break;
    case OPT_VALUE_SIZE:
        rc = parse_u64(arg, &v);
        if (rc == 0 && v > BENCH_VALUE_BYTES_MAX) rc = K_ECONFIG;
        cfg->value_bytes = (size_t)v;
        break;
    case OPT_KEYS:
        rc = parse_u64(arg, &cfg->keys);
        if (rc == 0 && cfg->keys == 0) rc = K_ECONFIG;
        break;
    case OPT_KEY_DIST:
        rc = bench_key_dist_parse(arg, &cfg->key_dist);
        break;
    case OPT_QUORUM:
        cfg->quorum = true;
        break;
    case OPT_READ_RATIO: {
        char *end = NULL;
        double r = strtod(arg, &end);
        if (end == arg || *end || r < 0 || r > 1) rc = K_ECONFIG;
        cfg->read_per_million = (uint32_t)(r * 1e6 + 0.5);
        break;
    }
    case OPT_CAS_KEYS:
        rc = parse_u64(arg, &cfg->cas_keys);
        if (rc == 0 && cfg->cas_keys == 0) rc = K_ECONFIG;
        break;
    case OPT_NO_PRELOAD:
        cfg->preload = false;
        break;
    case OPT_PREFIX:
        if (strlen(arg) >= sizeof(cfg->prefix) || strpbrk(arg, " ?#%&"))
            rc = K_ECONFIG;
        else
            snprintf(cfg->prefix, sizeof(cfg->prefix), "%s", arg);
        break;
    case OPT_SEED:
        rc = parse_u64(arg, &cfg->seed);
        break;
    case OPT_WATCHERS:
        rc = parse_u64(arg, &v);
        if (rc == 0 && (v == 0 || v > BENCH_CONNECTIONS_MAX)) rc = K_ECONFIG;
        cfg->watchers = (size_t)v;
        break;
    case OPT_WRITES:
        rc = parse_u64(arg, &cfg->writes);
        if (rc == 0 && (cfg->writes == 0 || cfg->writes > 100000000)) rc = K_ECONFIG;
        break;
    case OPT_RECURSIVE:
        cfg->watch_recursive = true;
        break;
    case OPT_STREAM:
        cfg->watch_stream = true;
        break;
    case OPT_JSON:
        c->json_path = arg;
        break;
    case OPT_QUIET:
        c->quiet = true;
        break;
    default:
        rc = K_ECONFIG;
        break;
    }
    return rc;
}

static const char *option_name(int opt)
{
    for (const struct option *o = OPTIONS; o->name; o++) {
        if (o->val == opt) return o->name;
    }
    return "?";
}

/* Parses argv into c; returns 0, 1 after --help/--version (exit 0), or K_ECONFIG. */
static int cli_parse(struct cli *c, int argc, char **argv)
{
    cli_defaults(c);
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "", OPTIONS, NULL)) != -1) {
        if (opt == OPT_HELP) {
            fputs(USAGE, stdout);
            return 1;
        }
        if (opt == OPT_VERSION) {
            printf("ketch-bench Version: %s\nGit SHA: %s\n", KETCH_VERSION, KETCH_GIT_SHA);
            return 1;
        }
        if (opt == '?') {
            fprintf(stderr, "ketch-bench: unknown option or missing value: %s (see --help)\n",
                    argv[optind - 1]);
            return K_ECONFIG;
        }
        if (cli_apply(c, opt, optarg) < 0) {
            fprintf(stderr, "ketch-bench: bad value for --%s: %s (see --help)\n", option_name(opt),
                    optarg ? optarg : "");
            return K_ECONFIG;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr,
                "ketch-bench: name one workload: put, get, mixed, cas or watch (see --help)\n");
        return K_ECONFIG;
    }
    if (parse_workload(argv[optind], &c->cfg.workload) < 0) {
        fprintf(stderr, "ketch-bench: unknown workload %s (put, get, mixed, cas, watch)\n",
                argv[optind]);
        return K_ECONFIG;
    }
    if (c->cfg.rate &&
        (c->cfg.workload == BENCH_WORKLOAD_CAS || c->cfg.workload == BENCH_WORKLOAD_WATCH)) {
        fprintf(stderr, "ketch-bench: --rate applies to put, get and mixed only\n");
        return K_ECONFIG;
    }
    if (c->cfg.workload == BENCH_WORKLOAD_WATCH) {
        if (!c->connections_set) c->cfg.connections = 1;
        if (!c->duration_set) c->cfg.duration_ns = 60000000000ull;
        if (c->cfg.value_bytes < 9) c->cfg.value_bytes = 9;
    }
    if (c->cfg.duration_ns < 1000000 && c->cfg.requests == 0) {
        fprintf(stderr, "ketch-bench: --duration must be at least 1ms\n");
        return K_ECONFIG;
    }
    return bench_endpoints_parse(c->endpoints, c->cfg.endpoints, &c->cfg.endpoint_count);
}

/* Each connection is a file descriptor; 1,000 watchers need more than the usual 1024. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max) return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(stderr, "ketch-bench: cannot raise the open-file limit: %s\n", strerror(errno));
    }
}

static int target_leader(uv_loop_t *loop, struct bench_config *cfg)
{
    struct bench_endpoint leader;
    if (bench_find_leader(loop, cfg->endpoints, cfg->endpoint_count, 5000, &leader) < 0) {
        fprintf(stderr, "ketch-bench: no endpoint named a leader (GET /v2/members/leader)\n");
        return K_ENOTFOUND;
    }
    cfg->endpoints[0] = leader;
    cfg->endpoint_count = 1;
    return 0;
}

static int write_json(const char *path, const struct bench_config *cfg,
                      const struct bench_result *res)
{
    struct k_buf b;
    k_buf_init(&b);
    bench_report_json(&b, cfg, res);
    FILE *f = strcmp(path, "-") == 0 ? stdout : fopen(path, "w");
    int rc = 0;
    if (!f || fwrite(b.data, 1, b.len, f) != b.len || (f != stdout && fclose(f) != 0)) {
        fprintf(stderr, "ketch-bench: cannot write %s: %s\n", path, strerror(errno));
        rc = -EIO;
    }
    k_buf_free(&b);
    return rc;
}

int main(int argc, char **argv)
{
    struct cli *c = k_xcalloc(1, sizeof(*c));
    struct bench_result *res = k_xmalloc(sizeof(*res)); /* histograms: too big for the stack */
    int rc = cli_parse(c, argc, argv);
    int status = EXIT_USAGE;
    if (rc == 1) status = EXIT_OK;
    if (rc != 0) goto out;
    signal(SIGPIPE, SIG_IGN); /* a peer that hangs up must be an EPIPE, not our death */
    raise_fd_limit();
    uv_loop_t loop;
    k_assert(uv_loop_init(&loop) == 0);
    if (c->cfg.target_leader && target_leader(&loop, &c->cfg) < 0) goto out_loop;
    if (c->cfg.workload == BENCH_WORKLOAD_WATCH)
        rc = bench_watch_run(&loop, &c->cfg, res);
    else
        rc = bench_workload_run(&loop, &c->cfg, res);
    if (rc < 0) {
        fprintf(stderr, "ketch-bench: %s run failed: %s\n", bench_workload_name(c->cfg.workload),
                k_strerror(rc));
        goto out_loop;
    }
    if (!c->quiet) bench_report_table(stdout, &c->cfg, res);
    if (c->json_path && write_json(c->json_path, &c->cfg, res) < 0) goto out_loop;
    bool success = res->ok > 0 && (!res->is_watch || res->watch.all_seen_ms >= 0);
    status = success ? EXIT_OK : EXIT_FAILED;
out_loop:
    if (uv_loop_close(&loop) != 0) fprintf(stderr, "ketch-bench: handles left open at exit\n");
out:
    free(res);
    free(c);
    return status;
}
