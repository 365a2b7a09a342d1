/* The member registry read from a real store's internal /0 records, as the log writes them
 * (KV_METHOD_INTERNAL): only members with raftAttributes are members, listed by id; removed
 * ids come from /0/removed_members; the JSON is etcd's member objects, key for key, and
 * parses back to the same registry while anything else is refused. */
#include <check.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "kv_test_util.h"
#include "server/members.h"

Suite *test_server_members_suite(void);

static void internal(struct kvt *t, const char *path, const char *value)
{
    char params[600];
    snprintf(params, sizeof(params), "value=%s", value);
    kvt_req(t, "INTERNAL", path, params);
}

static void raft_attributes(struct kvt *t, const char *id, const char *peer_urls_json)
{
    char path[96];
    char value[512];
    snprintf(path, sizeof(path), "/0/members/%s/raftAttributes", id);
    snprintf(value, sizeof(value), "{\"peerURLs\":%s}", peer_urls_json);
    internal(t, path, value);
}

static void attributes(struct kvt *t, const char *id, const char *name, const char *client_urls)
{
    char path[96];
    char value[512];
    snprintf(path, sizeof(path), "/0/members/%s/attributes", id);
    snprintf(value, sizeof(value), "{\"name\":\"%s\",\"clientURLs\":%s}", name, client_urls);
    internal(t, path, value);
}

static void removed(struct kvt *t, const char *id)
{
    char path[96];
    snprintf(path, sizeof(path), "/0/removed_members/%s", id);
    internal(t, path, "removed");
}

/* The registry most tests use: ids whose hex text sorts differently from their value
 * (1000 < 3 < abc < fff as text), written out of order. */
static void write_registry(struct kvt *t)
{
    raft_attributes(t, "fff", "[\"http://10.0.0.3:2380\"]");
    raft_attributes(t, "1000", "[\"http://10.0.0.4:2380\",\"http://10.0.0.44:2380\"]");
    raft_attributes(t, "3", "[\"http://10.0.0.1:2380\"]");
    attributes(t, "3", "n1", "[\"http://10.0.0.1:2379\"]");
    attributes(t, "fff", "n3", "[\"http://10.0.0.3:2379\",\"http://10.0.0.3:4001\"]");
    /* 1000 has not published itself yet. */
    /* abc published attributes but has no raftAttributes: not a member. */
    attributes(t, "abc", "ghost", "[\"http://10.0.0.9:2379\"]");
    removed(t, "77");
    removed(t, "5");
    internal(t, "/0/version", "3.4.0"); /* not a member record at all */
}

static const char REGISTRY_JSON[] =
        "{\"members\":["
        "{\"id\":\"3\",\"name\":\"n1\",\"peerURLs\":[\"http://10.0.0.1:2380\"],"
        "\"clientURLs\":[\"http://10.0.0.1:2379\"]},"
        "{\"id\":\"fff\",\"name\":\"n3\",\"peerURLs\":[\"http://10.0.0.3:2380\"],"
        "\"clientURLs\":[\"http://10.0.0.3:2379\",\"http://10.0.0.3:4001\"]},"
        "{\"id\":\"1000\",\"name\":\"\",\"peerURLs\":[\"http://10.0.0.4:2380\","
        "\"http://10.0.0.44:2380\"],\"clientURLs\":[]}"
        "]}";

static char *json_of(const struct srv_members *m)
{
    struct k_buf b = { 0 };
    srv_members_json(m, &b);
    k_buf_append(&b, "", 1); /* NUL */
    return b.data;
}

START_TEST(test_members_load_lists_members_by_id)
{
    struct kvt t;
    kvt_open(&t);
    write_registry(&t);
    struct srv_members m;
    ck_assert_int_eq(srv_members_load(t.s, &m), 0);
    ck_assert_uint_eq(m.count, 3);
    ck_assert_uint_eq(m.members[0].id, 0x3);
    ck_assert_uint_eq(m.members[1].id, 0xfff);
    ck_assert_uint_eq(m.members[2].id, 0x1000);
    ck_assert_str_eq(m.members[0].name, "n1");
    ck_assert_uint_eq(m.members[0].peer_urls.count, 1);
    ck_assert_str_eq(m.members[0].peer_urls.urls[0].text, "http://10.0.0.1:2380");
    ck_assert_str_eq(m.members[0].peer_urls.urls[0].host, "10.0.0.1");
    ck_assert_uint_eq(m.members[0].peer_urls.urls[0].port, 2380);
    ck_assert_uint_eq(m.members[1].client_urls.count, 2);
    ck_assert_str_eq(m.members[1].client_urls.urls[1].text, "http://10.0.0.3:4001");
    /* Not published: no name, no client URLs. */
    ck_assert_str_eq(m.members[2].name, "");
    ck_assert_uint_eq(m.members[2].client_urls.count, 0);
    ck_assert_uint_eq(m.members[2].peer_urls.count, 2);
    /* Attributes alone do not make a member. */
    ck_assert_ptr_null(srv_members_find(&m, 0xabc));
    ck_assert_ptr_eq(srv_members_find(&m, 0xfff), &m.members[1]);
    ck_assert_uint_eq(m.removed_count, 2);
    ck_assert(srv_members_was_removed(&m, 0x5));
    ck_assert(srv_members_was_removed(&m, 0x77));
    ck_assert(!srv_members_was_removed(&m, 0x3));
    ck_assert(!srv_members_was_removed(&m, 0xabc));
    kvt_close(&t);
}
END_TEST

START_TEST(test_members_load_an_empty_store)
{
    struct kvt t;
    kvt_open(&t);
    struct srv_members m;
    memset(&m, 0xff, sizeof(m)); /* load fills every field */
    ck_assert_int_eq(srv_members_load(t.s, &m), 0);
    ck_assert_uint_eq(m.count, 0);
    ck_assert_uint_eq(m.removed_count, 0);
    char *json = json_of(&m);
    ck_assert_str_eq(json, "{\"members\":[]}");
    free(json);
    kvt_close(&t);
}
END_TEST

START_TEST(test_members_load_follows_a_removal)
{
    struct kvt t;
    kvt_open(&t);
    write_registry(&t);
    /* What the log writes for a removal (node.c conf_change_entry): the member's records go,
     * a removed_members record comes. */
    kvt_req(&t, "INTERNAL", "/0/members/fff", "recursive=true");
    removed(&t, "fff");
    struct srv_members m;
    ck_assert_int_eq(srv_members_load(t.s, &m), 0);
    ck_assert_uint_eq(m.count, 2);
    ck_assert_uint_eq(m.members[0].id, 0x3);
    ck_assert_uint_eq(m.members[1].id, 0x1000);
    ck_assert(srv_members_was_removed(&m, 0xfff));
    ck_assert_ptr_null(srv_members_find(&m, 0xfff));
    kvt_close(&t);
}
END_TEST

START_TEST(test_members_load_skips_records_that_do_not_parse)
{
    struct kvt t;
    kvt_open(&t);
    raft_attributes(&t, "3", "[\"http://10.0.0.1:2380\"]");
    internal(&t, "/0/members/4/raftAttributes", "{\"peerURLs\":");      /* not JSON */
    raft_attributes(&t, "5", "[\"notaurl\"]");                          /* not a URL */
    raft_attributes(&t, "6", "\"http://10.0.0.6:2380\"");               /* not a list */
    internal(&t, "/0/members/xyz/raftAttributes", "{\"peerURLs\":[]}"); /* not an id */
    internal(&t, "/0/members/0/raftAttributes",
             "{\"peerURLs\":[\"http://10.0.0.7:2380\"]}"); /* id 0 is nobody */
    removed(&t, "zz");
    struct srv_members m;
    ck_assert_int_eq(srv_members_load(t.s, &m), 0);
    ck_assert_uint_eq(m.count, 1);
    ck_assert_uint_eq(m.members[0].id, 0x3);
    ck_assert_uint_eq(m.removed_count, 0);
    kvt_close(&t);
}
END_TEST

START_TEST(test_members_json_is_etcds_text)
{
    struct kvt t;
    kvt_open(&t);
    write_registry(&t);
    struct srv_members m;
    ck_assert_int_eq(srv_members_load(t.s, &m), 0);
    char *json = json_of(&m);
    ck_assert_str_eq(json, REGISTRY_JSON);
    free(json);
    /* One member object, and a name that needs escaping. */
    struct srv_member one = m.members[0];
    snprintf(one.name, sizeof(one.name), "a\"b\\c");
    struct k_buf b = { 0 };
    srv_member_json(&one, &b);
    k_buf_append(&b, "", 1);
    ck_assert_str_eq(b.data,
                     "{\"id\":\"3\",\"name\":\"a\\\"b\\\\c\",\"peerURLs\":"
                     "[\"http://10.0.0.1:2380\"],\"clientURLs\":[\"http://10.0.0.1:2379\"]}");
    k_buf_free(&b);
    kvt_close(&t);
}
END_TEST

START_TEST(test_members_record_values_and_paths)
{
    struct srv_url_list urls = { 0 };
    char err[256];
    ck_assert_int_eq(srv_url_list_parse("http://a:1,http://b:2", &urls, err, sizeof(err)), 0);
    struct k_buf b = { 0 };
    srv_member_raft_attributes_json(&urls, &b);
    k_buf_append(&b, "", 1);
    ck_assert_str_eq(b.data, "{\"peerURLs\":[\"http://a:1\",\"http://b:2\"]}");
    k_buf_free(&b);
    struct k_buf c = { 0 };
    srv_member_attributes_json("n1", &urls, &c);
    k_buf_append(&c, "", 1);
    ck_assert_str_eq(c.data, "{\"name\":\"n1\",\"clientURLs\":[\"http://a:1\",\"http://b:2\"]}");
    k_buf_free(&c);
    char path[64];
    srv_member_path(0x2e1259d415f2a040, "raftAttributes", path, sizeof(path));
    ck_assert_str_eq(path, "/0/members/2e1259d415f2a040/raftAttributes");
    srv_member_removed_path(0xa, path, sizeof(path));
    ck_assert_str_eq(path, "/0/removed_members/a");
}
END_TEST

static void assert_same_members(const struct srv_members *a, const struct srv_members *b)
{
    ck_assert_uint_eq(a->count, b->count);
    for (size_t i = 0; i < a->count; i++) {
        const struct srv_member *x = &a->members[i];
        const struct srv_member *y = &b->members[i];
        ck_assert_uint_eq(x->id, y->id);
        ck_assert_str_eq(x->name, y->name);
        ck_assert_uint_eq(x->peer_urls.count, y->peer_urls.count);
        for (size_t j = 0; j < x->peer_urls.count; j++)
            ck_assert_str_eq(x->peer_urls.urls[j].text, y->peer_urls.urls[j].text);
        ck_assert_uint_eq(x->client_urls.count, y->client_urls.count);
        for (size_t j = 0; j < x->client_urls.count; j++)
            ck_assert_str_eq(x->client_urls.urls[j].text, y->client_urls.urls[j].text);
    }
}

START_TEST(test_members_parse_json_round_trip)
{
    struct kvt t;
    kvt_open(&t);
    write_registry(&t);
    struct srv_members m;
    ck_assert_int_eq(srv_members_load(t.s, &m), 0);
    char *json = json_of(&m);
    struct srv_members back;
    ck_assert_int_eq(srv_members_parse_json(json, strlen(json), &back), 0);
    assert_same_members(&m, &back);
    ck_assert_uint_eq(back.removed_count, 0); /* the JSON does not carry removals */
    char *again = json_of(&back);
    ck_assert_str_eq(again, json);
    free(again);
    free(json);
    /* Members in another order (and ids in capitals) come back listed by id. */
    const char *shuffled = "{\"members\":[{\"id\":\"FFF\",\"name\":\"n3\",\"peerURLs\":"
                           "[\"http://10.0.0.3:2380\"],\"clientURLs\":[]},"
                           "{\"id\":\"3\",\"name\":\"n1\",\"peerURLs\":[\"http://10.0.0.1:2380\"],"
                           "\"clientURLs\":[]}]}";
    ck_assert_int_eq(srv_members_parse_json(shuffled, strlen(shuffled), &back), 0);
    ck_assert_uint_eq(back.count, 2);
    ck_assert_uint_eq(back.members[0].id, 0x3);
    ck_assert_uint_eq(back.members[1].id, 0xfff);
    /* Only len bytes are read. */
    const char *two = "{\"members\":[]}{\"members\":[x]}";
    ck_assert_int_eq(srv_members_parse_json(two, 14, &back), 0);
    ck_assert_uint_eq(back.count, 0);
    kvt_close(&t);
}
END_TEST

START_TEST(test_members_parse_json_refuses_bad_input)
{
    static const char *const bad[] = {
        "",
        "not json",
        "{\"members\":[",
        "[]",
        "{}",
        "{\"members\":{}}",
        "{\"members\":[1]}",
        /* id: missing, not a string, not hex, too long, zero */
        "{\"members\":[{\"name\":\"n\",\"peerURLs\":[\"http://a:1\"],\"clientURLs\":[]}]}",
        "{\"members\":[{\"id\":3,\"name\":\"n\",\"peerURLs\":[\"http://a:1\"],\"clientURLs\":[]}]}",
        "{\"members\":[{\"id\":\"xyz\",\"name\":\"n\",\"peerURLs\":[\"http://a:1\"],"
        "\"clientURLs\":[]}]}",
        "{\"members\":[{\"id\":\"11112222333344445\",\"name\":\"n\",\"peerURLs\":"
        "[\"http://a:1\"],\"clientURLs\":[]}]}",
        "{\"members\":[{\"id\":\"0\",\"name\":\"n\",\"peerURLs\":[\"http://a:1\"],"
        "\"clientURLs\":[]}]}",
        /* name missing or not a string */
        "{\"members\":[{\"id\":\"3\",\"peerURLs\":[\"http://a:1\"],\"clientURLs\":[]}]}",
        "{\"members\":[{\"id\":\"3\",\"name\":null,\"peerURLs\":[\"http://a:1\"],"
        "\"clientURLs\":[]}]}",
        /* URLs: missing, not a list, not strings, not URLs, no peer URL at all */
        "{\"members\":[{\"id\":\"3\",\"name\":\"n\",\"clientURLs\":[]}]}",
        "{\"members\":[{\"id\":\"3\",\"name\":\"n\",\"peerURLs\":[\"http://a:1\"]}]}",
        "{\"members\":[{\"id\":\"3\",\"name\":\"n\",\"peerURLs\":\"http://a:1\","
        "\"clientURLs\":[]}]}",
        "{\"members\":[{\"id\":\"3\",\"name\":\"n\",\"peerURLs\":[7],\"clientURLs\":[]}]}",
        "{\"members\":[{\"id\":\"3\",\"name\":\"n\",\"peerURLs\":[\"notaurl\"],"
        "\"clientURLs\":[]}]}",
        "{\"members\":[{\"id\":\"3\",\"name\":\"n\",\"peerURLs\":[\"http://a:1\"],"
        "\"clientURLs\":[\"ftp://a:2\"]}]}",
        "{\"members\":[{\"id\":\"3\",\"name\":\"n\",\"peerURLs\":[],\"clientURLs\":[]}]}",
        /* the same member twice */
        "{\"members\":[{\"id\":\"3\",\"name\":\"n\",\"peerURLs\":[\"http://a:1\"],"
        "\"clientURLs\":[]},{\"id\":\"3\",\"name\":\"m\",\"peerURLs\":[\"http://b:1\"],"
        "\"clientURLs\":[]}]}",
    };
    for (size_t i = 0; i < K_ARRAY_LEN(bad); i++) {
        struct srv_members m;
        ck_assert_msg(srv_members_parse_json(bad[i], strlen(bad[i]), &m) == K_EPROTO,
                      "accepted: %s", bad[i]);
    }
    /* More members than a registry holds. */
    struct k_buf b = { 0 };
    k_buf_puts(&b, "{\"members\":[");
    for (unsigned i = 1; i <= SRV_MEMBERS_MAX + 1; i++) {
        char one[160];
        snprintf(one, sizeof(one),
                 "%s{\"id\":\"%x\",\"name\":\"n\",\"peerURLs\":[\"http://a:%u\"],"
                 "\"clientURLs\":[]}",
                 i > 1 ? "," : "", i, i);
        k_buf_puts(&b, one);
    }
    k_buf_puts(&b, "]}");
    struct srv_members m;
    ck_assert_int_eq(srv_members_parse_json((const char *)b.data, b.len, &m), K_EPROTO);
    k_buf_free(&b);
}
END_TEST

START_TEST(test_members_find_peer_url)
{
    struct kvt t;
    kvt_open(&t);
    write_registry(&t);
    struct srv_members m;
    ck_assert_int_eq(srv_members_load(t.s, &m), 0);
    const struct srv_member *x = srv_members_find_peer_url(&m, "http://10.0.0.44:2380");
    ck_assert_ptr_nonnull(x);
    ck_assert_uint_eq(x->id, 0x1000); /* its second peer URL */
    x = srv_members_find_peer_url(&m, "http://10.0.0.1:2380");
    ck_assert_ptr_nonnull(x);
    ck_assert_uint_eq(x->id, 0x3);
    /* Compared as text, and only peer URLs. */
    ck_assert_ptr_null(srv_members_find_peer_url(&m, "http://10.0.0.1:2380/"));
    ck_assert_ptr_null(srv_members_find_peer_url(&m, "http://10.0.0.1:2379"));
    ck_assert_ptr_null(srv_members_find_peer_url(&m, "http://10.0.0.9:2379"));
    ck_assert_ptr_null(srv_members_find_peer_url(&m, ""));
    kvt_close(&t);
}
END_TEST

Suite *test_server_members_suite(void)
{
    Suite *s = suite_create("server_members");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_members_load_lists_members_by_id);
    tcase_add_test(tc, test_members_load_an_empty_store);
    tcase_add_test(tc, test_members_load_follows_a_removal);
    tcase_add_test(tc, test_members_load_skips_records_that_do_not_parse);
    tcase_add_test(tc, test_members_json_is_etcds_text);
    tcase_add_test(tc, test_members_record_values_and_paths);
    tcase_add_test(tc, test_members_parse_json_round_trip);
    tcase_add_test(tc, test_members_parse_json_refuses_bad_input);
    tcase_add_test(tc, test_members_find_peer_url);
    suite_add_tcase(s, tc);
    return s;
}
