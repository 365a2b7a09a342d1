/* Replays requests recorded against real etcd 3.4.23 (tests/unit/data/kv_etcd_v2_golden.txt:
 * sets, dirs, creates, updates, CAS/CAD, POST, deletes, hidden keys, escaping of odd bytes,
 * percent-encoded keys, parameter validation, and their errors) the way the server will
 * (kv_params_parse, then the log or kv_get) and compares every status and body byte for byte. Three
 * writes to a hidden key first make kv's indexes line up with etcd's, whose first user write is
 * index 4 (spec §3). A second file holds TTL requests, expiry and watches on it; there the
 * clock-dependent "expiration" values are masked on both sides (their format is tested in
 * test_kv_json), while "ttl" values, which the recording took right after each write, match. */
#include <check.h>

#include "kv/params.h"
#include "kv_test_util.h"

Suite *test_kv_etcd_golden_suite(void);

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes %XX in place (as Go's URL parsing does for paths and query values). */
static size_t pct_decode(char *s)
{
    size_t o = 0;
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (s[i] == '%' && hex_val(s[i + 1]) >= 0 && hex_val(s[i + 2]) >= 0) {
            s[o++] = (char)(hex_val(s[i + 1]) * 16 + hex_val(s[i + 2]));
            i += 2;
        } else {
            s[o++] = s[i];
        }
    }
    s[o] = '\0';
    return o;
}

/* Splits q ("a=1&b=%3C") into decoded pairs pointing into q. */
static size_t query_pairs(char *q, struct kv_param *out, size_t cap)
{
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(q, "&", &save); t != NULL && n < cap;
         t = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(t, '=');
        ck_assert_ptr_nonnull(eq);
        *eq = '\0';
        size_t name_len = pct_decode(t);
        size_t value_len = pct_decode(eq + 1);
        out[n++] = (struct kv_param){ t, name_len, eq + 1, value_len };
    }
    return n;
}

static enum kv_http_method http_method(const char *m)
{
    if (strcmp(m, "GET") == 0) return KV_HTTP_GET;
    if (strcmp(m, "PUT") == 0) return KV_HTTP_PUT;
    if (strcmp(m, "POST") == 0) return KV_HTTP_POST;
    ck_assert_str_eq(m, "DELETE");
    return KV_HTTP_DELETE;
}

static void watch_cb(struct kv_watcher *w, void *data)
{
    (void)w;
    (void)data;
}

/* Replaces the value of every "expiration" with <EXP>: it depends on the clock. */
static void mask_expirations(char *s)
{
    static const char tag[] = "\"expiration\":\"";
    for (char *p = strstr(s, tag); p != NULL; p = strstr(p, tag)) {
        char *v = p + strlen(tag);
        char *end = strchr(v, '"');
        ck_assert_ptr_nonnull(end);
        memmove(v + 5, end, strlen(end) + 1);
        memcpy(v, "<EXP>", 5);
        p = v;
    }
}

/* Answers one recorded request the way the server will: kv_params_parse, then kv_get for a
 * plain GET or the log for anything else. */
static const char *answer(struct kvt *t, char *line)
{
    char *save = NULL;
    char *method = strtok_r(line, " ", &save);
    char *path = strtok_r(NULL, " ", &save);
    char *query = strtok_r(NULL, " ", &save);
    size_t path_len = pct_decode(path);
    struct kv_param params[16];
    size_t n = query != NULL ? query_pairs(query, params, 16) : 0;
    struct kv_parsed p;
    struct kv_error perr;
    int rc = kv_params_parse(http_method(method), path, path_len, params, n, t->now_ns, &p, &perr);
    struct kv_result res = { 0 };
    if (rc == K_EV2) {
        res.rc = K_EV2;
        res.err = perr;
        res.etcd_index = 0;
    } else if (p.wait) {
        /* Recorded watches are answered from history at once. */
        struct kv_watch_opts o = { .key = path,
                                   .key_len = path_len,
                                   .recursive = p.recursive,
                                   .stream = p.stream,
                                   .wait_index = p.wait_index };
        struct kv_watcher *w;
        uint64_t at;
        res.rc = kv_watch_add(t->hub, &o, watch_cb, NULL, &w, &at, &res.err);
        ck_assert(res.rc == 0 || res.rc == K_EV2);
        if (res.rc == 0) {
            res.event = kv_watcher_take(w);
            ck_assert_ptr_nonnull(res.event);
            res.etcd_index = res.event->index;
            kv_watcher_free(w);
        } else {
            res.etcd_index = res.err.index;
        }
    } else if (p.req.method == KVPB__KV_METHOD__KV_METHOD_NONE) {
        res.rc = kv_get(t->s, path, path_len, p.recursive, p.sorted, t->now_ns, &res.event,
                        &res.err);
        ck_assert(res.rc == 0 || res.rc == K_EV2);
        res.etcd_index = res.rc == 0 ? res.event->index : res.err.index;
    } else {
        /* Through the wire encoding, as raft carries it. */
        size_t len = kvpb__kv_request__get_packed_size(&p.req);
        uint8_t *buf = k_xmalloc(len + 1);
        kvpb__kv_request__pack(&p.req, buf);
        struct kv_entry e = { .raft_index = ++t->raft_index, .data = buf, .len = len };
        struct kv_batch b;
        ck_assert_int_eq(kv_apply_batch(t->s, &e, 1, &b), 0);
        free(buf);
        kv_watch_hub_publish(t->hub, b.events, b.event_count);
        res = b.results[0];
        res.event = res.event != NULL ? kv_event_ref(res.event) : NULL;
        kv_batch_free(&b);
    }
    char *out = kvt_render(&res);
    kv_event_unref(res.event);
    return kvt_keep(t, out);
}

/* Runs one golden file; returns how many answers it compared. With mask, "expiration" values
 * are masked on both sides. A "> SYNC <seconds>" line advances kv's clock and sweeps. */
static int run_golden(const char *name, bool mask)
{
    char path[512];
    snprintf(path, sizeof(path), "%s", __FILE__);
    char *slash = strrchr(path, '/');
    ck_assert_ptr_nonnull(slash);
    snprintf(slash, sizeof(path) - (size_t)(slash - path), "/data/%s", name);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    struct kvt t;
    kvt_open(&t);
    for (int i = 0; i < 3; i++)
        kvt_req(&t, "PUT", "/_pad", "value=x");
    static char req[8192];
    static char want[65536];
    static char got[65536];
    int checked = 0;
    while (fgets(req, sizeof(req), f) != NULL) {
        if (req[0] == '#') continue;
        ck_assert_msg(req[0] == '>' && req[1] == ' ', "golden: expected a request: %s", req);
        req[strcspn(req, "\n")] = '\0';
        if (strncmp(req, "> SYNC ", 7) == 0) {
            t.now_ns += (int64_t)(strtod(req + 7, NULL) * 1e9);
            kvt_sync(&t);
            continue;
        }
        ck_assert_ptr_nonnull(fgets(want, sizeof(want), f));
        ck_assert(want[0] == '<' && want[1] == ' ');
        char shown[8192];
        snprintf(shown, sizeof(shown), "%s", req + 2);
        snprintf(got, sizeof(got), "%s", answer(&t, req + 2));
        if (mask) {
            mask_expirations(got);
            mask_expirations(want);
        }
        ck_assert_msg(strcmp(got, want + 2) == 0, "%s: request %s\netcd: %skv:   %s", name, shown,
                      want + 2, got);
        checked++;
    }
    fclose(f);
    kvt_close(&t);
    return checked;
}

START_TEST(test_kv_answers_recorded_requests_exactly_as_etcd_did)
{
    ck_assert_int_ge(run_golden("kv_etcd_v2_golden.txt", false), 111);
}
END_TEST

START_TEST(test_kv_answers_recorded_ttl_requests_like_etcd_but_for_the_clock)
{
    ck_assert_int_ge(run_golden("kv_etcd_v2_golden_ttl.txt", true), 27);
}
END_TEST

Suite *test_kv_etcd_golden_suite(void)
{
    Suite *s = suite_create("kv_etcd_golden");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_kv_answers_recorded_requests_exactly_as_etcd_did);
    tcase_add_test(tc, test_kv_answers_recorded_ttl_requests_like_etcd_but_for_the_clock);
    suite_add_tcase(s, tc);
    return s;
}
