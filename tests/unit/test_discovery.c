/* Discovery without a network (spec §13): reading the registry listing (order by
 * createdIndex, _config skipped, first N), the value a member registers, when the cluster is
 * full, what each error reply means, the discovery member id (spec §2), and that SIGTERM
 * cuts the client's waits short. The wire sequence itself is checked against real servers
 * by tests/integration/test_ketchd_discovery.py. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "server/config.h"
#include "server/discovery.h"
#include "server/discovery_http.h"
#include "server/discovery_reply.h"
#include "server/member_id.h"

Suite *test_discovery_suite(void);

static char err[1024];

/* The registry a 3-member bootstrap left on real etcd (spec §13), listed in key order, plus
 * the _config dir every token has. */
static const char SPEC_LISTING[] =
        "{\"action\":\"get\",\"node\":{\"key\":\"/_etcd/registry/tok1\",\"dir\":true,"
        "\"nodes\":[{\"key\":\"/_etcd/registry/tok1/1c3f7bb00cbd97fc\",\"value\":"
        "\"d3=http://127.0.0.1:23805\",\"modifiedIndex\":13,\"createdIndex\":13},"
        "{\"key\":\"/_etcd/registry/tok1/45c3e41896673c46\",\"value\":"
        "\"d1=http://127.0.0.1:23803\",\"modifiedIndex\":11,\"createdIndex\":11},"
        "{\"key\":\"/_etcd/registry/tok1/_config\",\"dir\":true,\"modifiedIndex\":10,"
        "\"createdIndex\":10},"
        "{\"key\":\"/_etcd/registry/tok1/8cc36861607362f0\",\"value\":"
        "\"d2=http://127.0.0.1:23804\",\"modifiedIndex\":12,\"createdIndex\":12}],"
        "\"modifiedIndex\":10,\"createdIndex\":10}}";

static void parse_listing(const char *json, struct srv_discovery_registry *reg)
{
    ck_assert_int_eq(srv_discovery_registry_parse(json, strlen(json), reg, err, sizeof(err)), 0);
}

START_TEST(test_listing_is_ordered_by_created_index_without_config)
{
    struct srv_discovery_registry reg;
    parse_listing(SPEC_LISTING, &reg);
    ck_assert_uint_eq(reg.count, 3);
    ck_assert_str_eq(reg.nodes[0].name, "45c3e41896673c46");
    ck_assert_str_eq(reg.nodes[0].key, "/_etcd/registry/tok1/45c3e41896673c46");
    ck_assert_str_eq(reg.nodes[0].value, "d1=http://127.0.0.1:23803");
    ck_assert_uint_eq(reg.nodes[0].created_index, 11);
    ck_assert_str_eq(reg.nodes[1].name, "8cc36861607362f0");
    ck_assert_str_eq(reg.nodes[2].name, "1c3f7bb00cbd97fc");
    ck_assert_uint_eq(reg.nodes[2].modified_index, 13);
    srv_discovery_registry_free(&reg);
    ck_assert_ptr_null(reg.nodes);
}
END_TEST

START_TEST(test_listing_of_a_token_with_only_config_is_empty)
{
    struct srv_discovery_registry reg;
    parse_listing("{\"action\":\"get\",\"node\":{\"key\":\"/t\",\"dir\":true,\"nodes\":[{\"key\":"
                  "\"/t/_config\",\"dir\":true,\"modifiedIndex\":4,\"createdIndex\":4}],"
                  "\"modifiedIndex\":4,\"createdIndex\":4}}",
                  &reg);
    ck_assert_uint_eq(reg.count, 0);
    srv_discovery_registry_free(&reg);
    parse_listing("{\"action\":\"get\",\"node\":{\"key\":\"/t\",\"dir\":true,"
                  "\"modifiedIndex\":4,\"createdIndex\":4}}",
                  &reg);
    ck_assert_uint_eq(reg.count, 0);
    srv_discovery_registry_free(&reg);
}
END_TEST

START_TEST(test_listing_that_is_not_a_registry_is_refused)
{
    struct srv_discovery_registry reg;
    const char *bad[] = {
        "<html>404 page not found</html>",
        "{\"action\":\"get\"}",
        "{\"action\":\"get\",\"node\":{\"key\":\"/t\",\"dir\":true,\"nodes\":[{\"key\":\"/t/a\","
        "\"value\":\"x\"}]}}", /* no indexes */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        ck_assert_int_eq(
                srv_discovery_registry_parse(bad[i], strlen(bad[i]), &reg, err, sizeof(err)),
                K_EPROTO);
        ck_assert_str_ne(err, "");
        srv_discovery_registry_free(&reg);
    }
}
END_TEST

START_TEST(test_registrations_added_from_watch_events_keep_created_order)
{
    struct srv_discovery_registry reg;
    parse_listing(SPEC_LISTING, &reg);
    struct srv_discovery_node n = { .key = "/_etcd/registry/tok1/0a",
                                    .name = "0a",
                                    .value = "d0=http://127.0.0.1:23802",
                                    .created_index = 9,
                                    .modified_index = 9 };
    ck_assert(srv_discovery_registry_add(&reg, &n));
    ck_assert(!srv_discovery_registry_add(&reg, &n)); /* known already */
    ck_assert_uint_eq(reg.count, 4);
    ck_assert_str_eq(reg.nodes[0].name, "0a");
    ck_assert_str_eq(reg.nodes[3].name, "1c3f7bb00cbd97fc");
    srv_discovery_registry_free(&reg);
}
END_TEST

START_TEST(test_cluster_is_full_only_when_self_is_not_among_the_first_n)
{
    struct srv_discovery_registry reg;
    parse_listing(SPEC_LISTING, &reg);
    /* A newcomer (not registered) finds 3 of 3: full. */
    ck_assert(srv_discovery_registry_full(&reg, 3, "ffff"));
    /* 3 registered of 4: room. */
    ck_assert(!srv_discovery_registry_full(&reg, 4, "ffff"));
    /* Registered among the first 3: not full, whatever the position. */
    ck_assert(!srv_discovery_registry_full(&reg, 3, "45c3e41896673c46"));
    ck_assert(!srv_discovery_registry_full(&reg, 3, "1c3f7bb00cbd97fc"));
    /* Registered third of a size-2 cluster: others were first. */
    ck_assert(srv_discovery_registry_full(&reg, 2, "1c3f7bb00cbd97fc"));
    ck_assert(!srv_discovery_registry_full(&reg, 2, "8cc36861607362f0"));
    srv_discovery_registry_free(&reg);
}
END_TEST

START_TEST(test_initial_cluster_joins_the_first_n_values_in_created_order)
{
    struct srv_discovery_registry reg;
    parse_listing(SPEC_LISTING, &reg);
    char *cluster = NULL;
    ck_assert_int_eq(srv_discovery_registry_join(&reg, 3, &cluster, err, sizeof(err)), 0);
    ck_assert_str_eq(cluster, "d1=http://127.0.0.1:23803,d2=http://127.0.0.1:23804,"
                              "d3=http://127.0.0.1:23805");
    free(cluster);
    ck_assert_int_eq(srv_discovery_registry_join(&reg, 2, &cluster, err, sizeof(err)), 0);
    ck_assert_str_eq(cluster, "d1=http://127.0.0.1:23803,d2=http://127.0.0.1:23804");
    free(cluster);
    srv_discovery_registry_free(&reg);
}
END_TEST

START_TEST(test_a_member_with_two_peer_urls_counts_once)
{
    struct srv_discovery_registry reg;
    parse_listing("{\"action\":\"get\",\"node\":{\"key\":\"/t\",\"dir\":true,\"nodes\":["
                  "{\"key\":\"/t/a\",\"value\":\"m1=http://10.0.0.1:2380,m1=http://10.0.1.1:2380\","
                  "\"modifiedIndex\":5,\"createdIndex\":5},"
                  "{\"key\":\"/t/b\",\"value\":\"m2=http://10.0.0.2:2380\","
                  "\"modifiedIndex\":6,\"createdIndex\":6}],"
                  "\"modifiedIndex\":4,\"createdIndex\":4}}",
                  &reg);
    char *cluster = NULL;
    ck_assert_int_eq(srv_discovery_registry_join(&reg, 2, &cluster, err, sizeof(err)), 0);
    ck_assert_str_eq(cluster, "m1=http://10.0.0.1:2380,m1=http://10.0.1.1:2380,"
                              "m2=http://10.0.0.2:2380");
    free(cluster);
    srv_discovery_registry_free(&reg);
}
END_TEST

START_TEST(test_two_registrations_with_one_name_are_a_duplicate_name)
{
    struct srv_discovery_registry reg;
    parse_listing("{\"action\":\"get\",\"node\":{\"key\":\"/t\",\"dir\":true,\"nodes\":["
                  "{\"key\":\"/t/a\",\"value\":\"m1=http://10.0.0.1:2380\","
                  "\"modifiedIndex\":5,\"createdIndex\":5},"
                  "{\"key\":\"/t/b\",\"value\":\"m1=http://10.0.0.2:2380\","
                  "\"modifiedIndex\":6,\"createdIndex\":6}],"
                  "\"modifiedIndex\":4,\"createdIndex\":4}}",
                  &reg);
    char *cluster = (char *)"untouched";
    ck_assert_int_eq(srv_discovery_registry_join(&reg, 2, &cluster, err, sizeof(err)), K_ECONFIG);
    ck_assert_ptr_null(cluster);
    ck_assert_msg(strstr(err, "discovery: found duplicate name") == err, "%s", err);
    srv_discovery_registry_free(&reg);
}
END_TEST

START_TEST(test_a_value_that_is_not_name_equals_url_is_an_invalid_url)
{
    const char *values[] = { "no-equals-sign", "=http://10.0.0.1:2380", "m1=notaurl",
                             "m1=http://10.0.0.1:2380,", "m1=ftp://10.0.0.1:2380" };
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        struct srv_discovery_node n = { .key = "/t/a",
                                        .name = "a",
                                        .value = (char *)values[i],
                                        .created_index = 5,
                                        .modified_index = 5 };
        struct srv_discovery_registry reg = { 0 };
        ck_assert(srv_discovery_registry_add(&reg, &n));
        char *cluster = NULL;
        ck_assert_int_eq(srv_discovery_registry_join(&reg, 1, &cluster, err, sizeof(err)),
                         K_ECONFIG);
        ck_assert_msg(strstr(err, "discovery: invalid URL") == err, "%s: %s", values[i], err);
        srv_discovery_registry_free(&reg);
    }
}
END_TEST

START_TEST(test_registered_value_is_the_members_initial_cluster_entry)
{
    struct srv_url_list urls;
    char why[256];
    ck_assert_int_eq(srv_url_list_parse("http://127.0.0.1:23803", &urls, why, sizeof(why)), 0);
    char *v = srv_discovery_self_value("d1", &urls);
    ck_assert_str_eq(v, "d1=http://127.0.0.1:23803");
    free(v);
    /* Several URLs: etcd's URLsMap.String() sorts the name=URL pairs. */
    ck_assert_int_eq(srv_url_list_parse("http://10.0.1.1:2380,http://10.0.0.1:2380", &urls, why,
                                        sizeof(why)),
                     0);
    v = srv_discovery_self_value("m", &urls);
    ck_assert_str_eq(v, "m=http://10.0.0.1:2380,m=http://10.0.1.1:2380");
    free(v);
}
END_TEST

START_TEST(test_size_is_a_decimal_from_1_to_the_member_bound)
{
    uint64_t size = 0;
    ck_assert_int_eq(srv_discovery_size_parse("3", &size, err, sizeof(err)), 0);
    ck_assert_uint_eq(size, 3);
    char max[32];
    char over[32];
    snprintf(max, sizeof(max), "%d", SRV_DISCOVERY_SIZE_MAX);
    snprintf(over, sizeof(over), "%d", SRV_DISCOVERY_SIZE_MAX + 1);
    ck_assert_int_eq(srv_discovery_size_parse(max, &size, err, sizeof(err)), 0);
    ck_assert_uint_eq(size, SRV_DISCOVERY_SIZE_MAX);
    const char *bad[] = {
        "", "x", "-1", "+3", " 3", "3 ", "0x3", "3.0", "0", over, "18446744073709551616"
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size = 77;
        ck_assert_int_eq(srv_discovery_size_parse(bad[i], &size, err, sizeof(err)), K_ECONFIG);
        ck_assert_msg(strstr(err, "discovery: size key is bad") == err, "\"%s\": %s", bad[i], err);
        ck_assert_uint_eq(size, 77);
    }
}
END_TEST

static enum srv_discovery_verdict size_reply(long status, const char *body, uint64_t *size)
{
    err[0] = '\0';
    return srv_discovery_size_reply(status, body, strlen(body),
                                    "http://e:2379/v2/keys/_etcd/registry/tok2/_config/size", size,
                                    err, sizeof(err));
}

START_TEST(test_size_reply_meanings)
{
    uint64_t size = 0;
    ck_assert_int_eq(size_reply(200,
                                "{\"action\":\"get\",\"node\":{\"key\":\"/_etcd/registry/tok2/"
                                "_config/size\",\"value\":\"3\",\"modifiedIndex\":4,"
                                "\"createdIndex\":4}}",
                                &size),
                     SRV_DISCOVERY_OK);
    ck_assert_uint_eq(size, 3);
    /* etcd names the first missing path in the 100 error's cause (spec §13). */
    ck_assert_int_eq(size_reply(404,
                                "{\"errorCode\":100,\"message\":\"Key not found\",\"cause\":"
                                "\"/_etcd/registry/tok2\",\"index\":5}",
                                &size),
                     SRV_DISCOVERY_FAIL);
    ck_assert_msg(strstr(err, "discovery: size key not found") == err, "%s", err);
    ck_assert_msg(strstr(err, "100: Key not found (/_etcd/registry/tok2) [5]"), "%s", err);
    ck_assert_int_eq(size_reply(200,
                                "{\"action\":\"get\",\"node\":{\"key\":\"/t/_config/size\","
                                "\"value\":\"three\",\"modifiedIndex\":4,\"createdIndex\":4}}",
                                &size),
                     SRV_DISCOVERY_FAIL);
    ck_assert_msg(strstr(err, "discovery: size key is bad") == err, "%s", err);
    ck_assert_int_eq(size_reply(200,
                                "{\"action\":\"get\",\"node\":{\"key\":\"/t/_config/size\","
                                "\"dir\":true,\"modifiedIndex\":4,\"createdIndex\":4}}",
                                &size),
                     SRV_DISCOVERY_FAIL);
    ck_assert_msg(strstr(err, "discovery: size key is bad") == err, "%s", err);
    /* Not an etcd keys endpoint at all. */
    ck_assert_int_eq(size_reply(200, "<html>hello</html>", &size), SRV_DISCOVERY_FAIL);
    ck_assert_msg(strstr(err, "discovery: bad discovery endpoint") == err, "%s", err);
    ck_assert_int_eq(size_reply(404, "404 page not found\n", &size), SRV_DISCOVERY_FAIL);
    ck_assert_msg(strstr(err, "HTTP 404"), "%s", err);
    /* A server error is the server being unavailable: retry, as etcd's client does. */
    ck_assert_int_eq(size_reply(503, "", &size), SRV_DISCOVERY_RETRY);
    ck_assert_int_eq(size_reply(500, "{\"errorCode\":300}", &size), SRV_DISCOVERY_RETRY);
}
END_TEST

START_TEST(test_create_reply_meanings)
{
    uint64_t created = 0;
    const char *key = "http://e:2379/v2/keys/_etcd/registry/tok1/45c3e41896673c46";
    const char *ok = "{\"action\":\"create\",\"node\":{\"key\":\"/_etcd/registry/tok1/"
                     "45c3e41896673c46\",\"value\":\"d1=http://127.0.0.1:23803\","
                     "\"modifiedIndex\":11,\"createdIndex\":11}}";
    ck_assert_int_eq(
            srv_discovery_create_reply(201, ok, strlen(ok), key, &created, err, sizeof(err)),
            SRV_DISCOVERY_OK);
    ck_assert_uint_eq(created, 11);
    const char *dup = "{\"errorCode\":105,\"message\":\"Key already exists\",\"cause\":"
                      "\"/_etcd/registry/tok1/45c3e41896673c46\",\"index\":13}";
    ck_assert_int_eq(
            srv_discovery_create_reply(412, dup, strlen(dup), key, &created, err, sizeof(err)),
            SRV_DISCOVERY_FAIL);
    ck_assert_msg(strstr(err, "discovery: found duplicate id") == err, "%s", err);
    ck_assert_msg(strstr(err, "45c3e41896673c46"), "%s", err);
    const char *not_dir = "{\"errorCode\":104,\"message\":\"Not a directory\",\"cause\":"
                          "\"/_etcd/registry/tok1\",\"index\":13}";
    ck_assert_int_eq(srv_discovery_create_reply(403, not_dir, strlen(not_dir), key, &created, err,
                                                sizeof(err)),
                     SRV_DISCOVERY_FAIL);
    ck_assert_msg(strstr(err, "104: Not a directory (/_etcd/registry/tok1) [13]"), "%s", err);
    ck_assert_int_eq(srv_discovery_create_reply(502, "", 0, key, &created, err, sizeof(err)),
                     SRV_DISCOVERY_RETRY);
}
END_TEST

START_TEST(test_other_reply_retries_5xx_and_names_the_step)
{
    ck_assert_int_eq(
            srv_discovery_other_reply(503, "", 0, "watching the registry", err, sizeof(err)),
            SRV_DISCOVERY_RETRY);
    const char *e = "{\"errorCode\":401,\"message\":\"The event in requested index is outdated "
                    "and cleared\",\"cause\":\"the requested history has been cleared [8/3]\","
                    "\"index\":1007}";
    ck_assert_int_eq(
            srv_discovery_other_reply(400, e, strlen(e), "watching the registry", err, sizeof(err)),
            SRV_DISCOVERY_FAIL);
    ck_assert_str_eq(err, "discovery: watching the registry: 401: The event in requested index "
                          "is outdated and cleared (the requested history has been cleared "
                          "[8/3]) [1007]");
}
END_TEST

START_TEST(test_watch_events_say_whether_they_carry_a_registration)
{
    struct srv_discovery_event ev;
    const char *create = "{\"action\":\"create\",\"node\":{\"key\":\"/_etcd/registry/tok1/"
                         "8cc36861607362f0\",\"value\":\"d2=http://127.0.0.1:23804\","
                         "\"modifiedIndex\":12,\"createdIndex\":12}}";
    ck_assert_int_eq(srv_discovery_event_parse(create, strlen(create), &ev, err, sizeof(err)), 0);
    ck_assert_str_eq(ev.action, "create");
    ck_assert(ev.node_has_value);
    ck_assert_str_eq(ev.node.name, "8cc36861607362f0");
    ck_assert_uint_eq(ev.node.modified_index, 12);
    srv_discovery_event_deinit(&ev);
    const char *del = "{\"action\":\"delete\",\"node\":{\"key\":\"/_etcd/registry/tok1/x\","
                      "\"modifiedIndex\":14,\"createdIndex\":12},\"prevNode\":{\"key\":"
                      "\"/_etcd/registry/tok1/x\",\"value\":\"v\",\"modifiedIndex\":12,"
                      "\"createdIndex\":12}}";
    ck_assert_int_eq(srv_discovery_event_parse(del, strlen(del), &ev, err, sizeof(err)), 0);
    ck_assert(!ev.node_has_value);
    srv_discovery_event_deinit(&ev);
    ck_assert_int_eq(srv_discovery_event_parse("{}", 2, &ev, err, sizeof(err)), K_EPROTO);
    srv_discovery_event_deinit(&ev);
}
END_TEST

START_TEST(test_discovery_member_id_uses_the_full_discovery_url)
{
    /* spec §2, observed on real etcd. */
    struct srv_url_list urls;
    char why[256];
    ck_assert_int_eq(srv_url_list_parse("http://127.0.0.1:23803", &urls, why, sizeof(why)), 0);
    uint64_t id =
            srv_member_id_compute(&urls, "http://127.0.0.1:23790/v2/keys/_etcd/registry/tok1");
    char hex[17];
    srv_id_format(id, hex);
    ck_assert_str_eq(hex, "45c3e41896673c46");
}
END_TEST

static int parse_config(struct srv_config *cfg, const char *name, const char *peer)
{
    char name_flag[64];
    char peer_flag[128];
    snprintf(name_flag, sizeof(name_flag), "--name=%s", name);
    snprintf(peer_flag, sizeof(peer_flag), "--initial-advertise-peer-urls=%s", peer);
    char *argv[] = { "ketchd", name_flag, peer_flag,
                     "--discovery=http://127.0.0.1:1/v2/keys/_etcd/registry/t", NULL };
    enum srv_config_action action;
    return srv_config_parse(cfg, 4, argv, NULL, &action, err, sizeof(err));
}

START_TEST(test_discovered_cluster_is_checked_like_initial_cluster)
{
    struct srv_config *cfg = calloc(1, sizeof(*cfg));
    ck_assert_int_eq(parse_config(cfg, "d2", "http://127.0.0.1:23804"), 0);
    ck_assert_uint_eq(cfg->initial_member_count, 0);
    ck_assert_ptr_null(cfg->initial_cluster);
    /* This member is missing: refused, nothing changed. */
    ck_assert_int_eq(
            srv_config_set_initial_cluster(cfg, "d1=http://127.0.0.1:23803", err, sizeof(err)),
            K_ECONFIG);
    ck_assert_uint_eq(cfg->initial_member_count, 0);
    ck_assert_ptr_null(cfg->initial_cluster);
    ck_assert_int_eq(
            srv_config_set_initial_cluster(
                    cfg, "d1=http://127.0.0.1:23803,d2=http://127.0.0.1:23804", err, sizeof(err)),
            0);
    ck_assert_uint_eq(cfg->initial_member_count, 2);
    ck_assert_str_eq(cfg->initial_members[1].name, "d2");
    ck_assert_str_eq(cfg->initial_cluster, "d1=http://127.0.0.1:23803,d2=http://127.0.0.1:23804");
    srv_config_deinit(cfg);
    free(cfg);
}
END_TEST

START_TEST(test_discovery_cannot_join_an_existing_cluster)
{
    struct srv_config *cfg = calloc(1, sizeof(*cfg));
    char *argv[] = { "ketchd", "--initial-cluster-state=existing",
                     "--discovery=http://127.0.0.1:1/v2/keys/_etcd/registry/t", NULL };
    enum srv_config_action action;
    ck_assert_int_eq(srv_config_parse(cfg, 3, argv, NULL, &action, err, sizeof(err)), K_ECONFIG);
    ck_assert_msg(strstr(err, "--discovery bootstraps a new cluster") == err, "%s", err);
    srv_config_deinit(cfg);
    free(cfg);
}
END_TEST

START_TEST(test_bad_discovery_urls_are_refused_before_any_request)
{
    char *cluster = NULL;
    struct srv_discovery_config dc = { .self_value = "m=http://127.0.0.1:2380", .member_id = 1 };
    dc.url = "ftp://127.0.0.1:1/v2/keys/t";
    ck_assert_int_eq(srv_discovery_join(&dc, &cluster, err, sizeof(err)), K_ECONFIG);
    ck_assert_msg(strstr(err, "discovery: invalid URL") == err, "%s", err);
    dc.url = "http://127.0.0.1:1/";
    ck_assert_int_eq(srv_discovery_join(&dc, &cluster, err, sizeof(err)), K_ECONFIG);
    ck_assert_msg(strstr(err, "has no token path"), "%s", err);
    dc.url = "not a url";
    ck_assert_int_eq(srv_discovery_join(&dc, &cluster, err, sizeof(err)), K_ECONFIG);
    ck_assert_ptr_null(cluster);
}
END_TEST

static volatile sig_atomic_t old_handler_ran;

static void old_handler(int signum)
{
    (void)signum;
    old_handler_ran = 1;
}

START_TEST(test_sigterm_ends_a_sleep_and_the_old_handler_comes_back)
{
    signal(SIGTERM, old_handler);
    struct srv_dhttp *h = NULL;
    ck_assert_int_eq(srv_dhttp_open(&h, NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(srv_dhttp_sleep(h, 1), 0);
    ck_assert_int_eq(srv_dhttp_stop_signal(h), 0);
    raise(SIGTERM);
    uint64_t t0 = k_mono_ns();
    ck_assert_int_eq(srv_dhttp_sleep(h, 60000), K_ESTOPPED);
    ck_assert_uint_lt(k_mono_ns() - t0, 1000000000ull);
    ck_assert_int_eq(srv_dhttp_stop_signal(h), SIGTERM);
    ck_assert_int_eq(old_handler_ran, 0);
    /* Once stopped, stays stopped: a request does not even start. */
    struct srv_dhttp_response resp = { 0 };
    ck_assert_int_eq(srv_dhttp_request(h, "GET", "http://127.0.0.1:1/x", NULL, 1000, &resp, err,
                                       sizeof(err)),
                     K_ESTOPPED);
    srv_dhttp_close(h);
    raise(SIGTERM);
    ck_assert_int_eq(old_handler_ran, 1);
    k_buf_free(&resp.body);
}
END_TEST

/* A port nothing listens on: bound to learn a free one, then closed. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

START_TEST(test_unreachable_server_is_a_transient_failure)
{
    struct srv_dhttp *h = NULL;
    ck_assert_int_eq(srv_dhttp_open(&h, NULL, err, sizeof(err)), 0);
    struct srv_dhttp_response resp = { 0 };
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v2/keys/t", closed_port());
    ck_assert_int_eq(srv_dhttp_request(h, "GET", url, NULL, 2000, &resp, err, sizeof(err)),
                     -EAGAIN);
    ck_assert_msg(strstr(err, url) != NULL, "%s", err);
    srv_dhttp_close(h);
    k_buf_free(&resp.body);
}
END_TEST

static void *send_sigterm_later(void *arg)
{
    (void)arg;
    usleep(300 * 1000);
    kill(getpid(), SIGTERM);
    return NULL;
}

START_TEST(test_sigterm_stops_discovery_waiting_for_an_unreachable_server)
{
    char url[96];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v2/keys/_etcd/registry/t", closed_port());
    struct srv_discovery_config dc = { .url = url,
                                       .self_value = "m=http://127.0.0.1:2380",
                                       .member_id = 1 };
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, send_sigterm_later, NULL), 0);
    uint64_t t0 = k_mono_ns();
    char *cluster = NULL;
    /* The first attempt fails at once and backs off for 2 s; SIGTERM comes after 0.3 s. */
    ck_assert_int_eq(srv_discovery_join(&dc, &cluster, err, sizeof(err)), K_ESTOPPED);
    uint64_t took_ns = k_mono_ns() - t0;
    pthread_join(t, NULL);
    ck_assert_ptr_null(cluster);
    ck_assert_str_eq(err, "discovery: stopped by SIGTERM before the cluster formed");
    ck_assert_uint_lt(took_ns, 1500000000ull);
}
END_TEST

Suite *test_discovery_suite(void)
{
    Suite *s = suite_create("discovery");
    TCase *tc = tcase_create("replies");
    tcase_add_test(tc, test_listing_is_ordered_by_created_index_without_config);
    tcase_add_test(tc, test_listing_of_a_token_with_only_config_is_empty);
    tcase_add_test(tc, test_listing_that_is_not_a_registry_is_refused);
    tcase_add_test(tc, test_registrations_added_from_watch_events_keep_created_order);
    tcase_add_test(tc, test_cluster_is_full_only_when_self_is_not_among_the_first_n);
    tcase_add_test(tc, test_initial_cluster_joins_the_first_n_values_in_created_order);
    tcase_add_test(tc, test_a_member_with_two_peer_urls_counts_once);
    tcase_add_test(tc, test_two_registrations_with_one_name_are_a_duplicate_name);
    tcase_add_test(tc, test_a_value_that_is_not_name_equals_url_is_an_invalid_url);
    tcase_add_test(tc, test_registered_value_is_the_members_initial_cluster_entry);
    tcase_add_test(tc, test_size_is_a_decimal_from_1_to_the_member_bound);
    tcase_add_test(tc, test_size_reply_meanings);
    tcase_add_test(tc, test_create_reply_meanings);
    tcase_add_test(tc, test_other_reply_retries_5xx_and_names_the_step);
    tcase_add_test(tc, test_watch_events_say_whether_they_carry_a_registration);
    tcase_add_test(tc, test_discovery_member_id_uses_the_full_discovery_url);
    tcase_add_test(tc, test_discovered_cluster_is_checked_like_initial_cluster);
    tcase_add_test(tc, test_discovery_cannot_join_an_existing_cluster);
    suite_add_tcase(s, tc);
    TCase *io = tcase_create("client");
    tcase_set_timeout(io, 30);
    tcase_add_test(io, test_bad_discovery_urls_are_refused_before_any_request);
    tcase_add_test(io, test_sigterm_ends_a_sleep_and_the_old_handler_comes_back);
    tcase_add_test(io, test_unreachable_server_is_a_transient_failure);
    tcase_add_test(io, test_sigterm_stops_discovery_waiting_for_an_unreachable_server);
    suite_add_tcase(s, io);
    return s;
}
