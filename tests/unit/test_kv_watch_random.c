/* Randomized check of the watch hub against a direct reading of etcd's rules: random writes,
 * refreshes and expiries of files (keys "/<a>/<b>" under permanent dirs, '_' names included)
 * and random watchers (key or prefix, recursive or not, one-shot or stream, from now or from a
 * waitIndex in the past, some freed in their callback). After every batch each watcher must
 * hold exactly the events the rules give it, in order. Prints its seed; KETCH_SEED replays. */
#include <check.h>

#include "kv_test_util.h"

Suite *test_kv_watch_random_suite(void);

enum { WATCHERS_MAX = 48, EVENTS_MAX = 6000 };

static const char *const NAMES[] = { "a", "b", "_h" };

struct rw {
    struct kv_watcher *w;
    char key[16];
    bool recursive;
    bool stream;
    bool free_in_cb;
    bool freed;
    uint64_t since;
    uint64_t expect[EVENTS_MAX]; /* indexes it should get, in order (twice for a stream's
                                  * delete/expire of its own key) */
    size_t expect_count;
    uint64_t got[EVENTS_MAX]; /* indexes it got, in order */
    size_t got_count;
    bool done; /* a one-shot that got its event */
};

struct rev {
    uint64_t index;
    char key[16];
    enum kv_action action;
    bool refresh;
};

static struct rev events[EVENTS_MAX];
static size_t event_count;

static bool hidden_below(const char *watch, const char *key)
{
    size_t wl = strcmp(watch, "/") == 0 ? 0 : strlen(watch);
    for (const char *p = key + wl; *p; p++) {
        if (p[0] == '/' && p[1] == '_') return true;
    }
    return false;
}

/* Live rule (etcd watcherHub.notify, files only). Returns how many times w gets e. */
static int live_matches(const struct rw *w, const struct rev *e)
{
    if (e->refresh || e->index < w->since) return 0;
    if (strcmp(w->key, e->key) == 0) {
        bool removal = e->action == KV_ACTION_DELETE || e->action == KV_ACTION_EXPIRE;
        return removal && w->stream ? 2 : 1;
    }
    size_t wl = strlen(w->key);
    bool below =
            strcmp(w->key, "/") == 0 || (strncmp(e->key, w->key, wl) == 0 && e->key[wl] == '/');
    return w->recursive && below && !hidden_below(w->key, e->key) ? 1 : 0;
}

/* History rule (EventHistory.scan): no hidden filter. */
static bool past_matches(const struct rw *w, const struct rev *e)
{
    if (e->refresh) return false;
    if (strcmp(w->key, e->key) == 0) return true;
    size_t wl = strlen(w->key);
    return w->recursive &&
           (strcmp(w->key, "/") == 0 || (strncmp(e->key, w->key, wl) == 0 && e->key[wl] == '/'));
}

static void rw_cb(struct kv_watcher *w, void *data)
{
    struct rw *r = data;
    struct kv_event *ev;
    while ((ev = kv_watcher_take(w)) != NULL) {
        ck_assert_uint_lt(r->got_count, EVENTS_MAX);
        r->got[r->got_count++] = ev->index;
        kv_event_unref(ev);
    }
    ck_assert_int_ne(kv_watcher_state(w), KV_WATCHER_CUT_OFF); /* drained every time */
    if (r->free_in_cb && kv_watcher_state(w) != KV_WATCHER_ACTIVE) {
        kv_watcher_free(w);
        r->freed = true;
    }
}

static void run_seed(uint64_t seed)
{
    printf("kv_watch_random: seed %llu (replay: KETCH_SEED=%llu)\n", (unsigned long long)seed,
           (unsigned long long)seed);
    struct k_prng g;
    k_prng_init(&g, seed);
    struct kvt t;
    kvt_open(&t);
    for (size_t i = 0; i < K_ARRAY_LEN(NAMES); i++) {
        char p[16];
        snprintf(p, sizeof(p), "/%s", NAMES[i]);
        kvt_req(&t, "PUT", p, "dir=true");
    }
    event_count = 0;
    static struct rw ws[WATCHERS_MAX];
    size_t wn = 0;
    memset(ws, 0, sizeof(ws));
    for (int round = 0; round < 400; round++) {
        /* Maybe add a watcher. */
        if (wn < WATCHERS_MAX && k_prng_chance(&g, 300000)) {
            struct rw *r = &ws[wn++];
            uint64_t depth = k_prng_below(&g, 3);
            if (depth == 0) snprintf(r->key, sizeof(r->key), "/");
            if (depth == 1) snprintf(r->key, sizeof(r->key), "/%s", NAMES[k_prng_below(&g, 3)]);
            if (depth == 2) {
                snprintf(r->key, sizeof(r->key), "/%s/%s", NAMES[k_prng_below(&g, 3)],
                         NAMES[k_prng_below(&g, 3)]);
            }
            r->recursive = k_prng_chance(&g, 500000);
            r->stream = k_prng_chance(&g, 500000);
            r->free_in_cb = k_prng_chance(&g, 300000);
            uint64_t cur = kv_watch_hub_index(t.hub);
            uint64_t wait = k_prng_chance(&g, 400000) && cur > 0 ? 1 + k_prng_below(&g, cur) : 0;
            r->since = wait != 0 ? wait : cur + 1;
            /* A past waitIndex is answered from history with the first match, if any. */
            size_t hit = SIZE_MAX;
            for (size_t i = 0; wait != 0 && i < event_count; i++) {
                if (events[i].index >= wait && past_matches(r, &events[i])) {
                    hit = i;
                    break;
                }
            }
            if (hit != SIZE_MAX) {
                r->expect[r->expect_count++] = events[hit].index;
                r->done = true;
            }
            struct kv_watch_opts o = { .key = r->key,
                                       .key_len = strlen(r->key),
                                       .recursive = r->recursive,
                                       .stream = r->stream,
                                       .wait_index = wait };
            struct kv_error err;
            uint64_t at;
            ck_assert_int_eq(kv_watch_add(t.hub, &o, rw_cb, r, &r->w, &at, &err), 0);
            ck_assert_uint_eq(at, cur);
            rw_cb(r->w, r); /* take a history hit at once */
        }
        /* A write, a refresh or a sweep. */
        char key[16];
        snprintf(key, sizeof(key), "/%s/%s", NAMES[k_prng_below(&g, 3)],
                 NAMES[k_prng_below(&g, 3)]);
        uint64_t kind = k_prng_below(&g, 10);
        const char *out;
        if (kind < 5) {
            out = kvt_req(&t, "PUT", key, k_prng_chance(&g, 300000) ? "value=v&ttl=1" : "value=v");
        } else if (kind < 7) {
            out = kvt_req(&t, "DELETE", key, "");
        } else if (kind < 8) {
            out = kvt_req(&t, "PUT", key, "refresh=true&ttl=1&prevExist=true");
        } else {
            t.now_ns += 1000000000;
            out = kvt_sync(&t);
        }
        (void)out;
        /* Record the events the store produced since the last round, from its history. */
        uint64_t cur = kv_watch_hub_index(t.hub);
        while (event_count < cur) {
            /* Read each new event back from history (a refresh is the one kind it skips). */
            uint64_t want = event_count + 1;
            struct kv_watch_opts o = {
                .key = "/", .key_len = 1, .recursive = true, .wait_index = want
            };
            struct kv_watcher *probe;
            struct kv_error err;
            uint64_t at;
            ck_assert_int_eq(kv_watch_add(t.hub, &o, rw_cb, NULL, &probe, &at, &err), 0);
            struct kv_event *ev = kv_watcher_take(probe);
            struct rev *e = &events[event_count++];
            memset(e, 0, sizeof(*e));
            e->index = want;
            if (ev != NULL && ev->index == want) {
                snprintf(e->key, sizeof(e->key), "%.*s", (int)ev->node.key_len, ev->node.key);
                e->action = ev->action;
            } else {
                /* The scan skipped it: a refresh (the only kind of event it skips). */
                e->refresh = true;
                snprintf(e->key, sizeof(e->key), "%s", key);
            }
            kv_event_unref(ev);
            kv_watcher_free(probe);
            /* Extend every live watcher's expectations by this event. */
            for (size_t i = 0; i < wn; i++) {
                struct rw *r = &ws[i];
                if (r->done) continue;
                int times = live_matches(r, e);
                for (int k = 0; k < times; k++)
                    r->expect[r->expect_count++] = e->index;
                if (times > 0 && !r->stream) r->done = true;
            }
        }
        for (size_t i = 0; i < wn; i++) {
            if (getenv("KV_WR_DEBUG") && ws[i].got_count != ws[i].expect_count) {
                fprintf(stderr, "watcher %s rec=%d stream=%d since=%llu\n got:", ws[i].key,
                        ws[i].recursive, ws[i].stream, (unsigned long long)ws[i].since);
                for (size_t k = 0; k < ws[i].got_count; k++)
                    fprintf(stderr, " %llu", (unsigned long long)ws[i].got[k]);
                fprintf(stderr, "\n want:");
                for (size_t k = 0; k < ws[i].expect_count; k++)
                    fprintf(stderr, " %llu", (unsigned long long)ws[i].expect[k]);
                fprintf(stderr, "\n");
                for (size_t k = 0; k < event_count; k++)
                    fprintf(stderr, "  ev %llu %s %s%s\n", (unsigned long long)events[k].index,
                            events[k].key, kv_action_name(events[k].action),
                            events[k].refresh ? " refresh" : "");
            }
            ck_assert_msg(ws[i].got_count == ws[i].expect_count,
                          "seed %llu round %d watcher %zu on %s: got %zu events, want %zu",
                          (unsigned long long)seed, round, i, ws[i].key, ws[i].got_count,
                          ws[i].expect_count);
            ck_assert(memcmp(ws[i].got, ws[i].expect, ws[i].got_count * sizeof(uint64_t)) == 0);
        }
    }
    size_t delivered = 0;
    for (size_t i = 0; i < wn; i++) {
        delivered += ws[i].got_count;
        if (!ws[i].freed) kv_watcher_free(ws[i].w);
    }
    printf("kv_watch_random: seed %llu: %zu watchers, %zu events, %zu deliveries\n",
           (unsigned long long)seed, wn, event_count, delivered);
    ck_assert_uint_gt(delivered, 0);
    kvt_close(&t);
}

START_TEST(test_watchers_get_exactly_the_events_etcds_rules_give_them)
{
    const char *env = getenv("KETCH_SEED");
    if (env != NULL) {
        run_seed(strtoull(env, NULL, 10));
        return;
    }
    for (uint64_t seed = 1; seed <= 8; seed++)
        run_seed(seed);
}
END_TEST

Suite *test_kv_watch_random_suite(void)
{
    Suite *s = suite_create("kv_watch_random");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_watchers_get_exactly_the_events_etcds_rules_give_them);
    suite_add_tcase(s, tc);
    return s;
}
