/* ketchd's flags: every spelling etcd accepts, ETCD_* variables under the command line,
 * etcd's defaults, and one clear line for each inconsistent configuration (spec §14). */
#include <check.h>
#include <stdarg.h>
#include <string.h>

#include "base/err.h"
#include "server/config.h"
#include "server/member_id.h"

Suite *test_server_config_suite(void);

static struct srv_config cfg;
static char err[SRV_CONFIG_ERR_BYTES];
static enum srv_config_action action;

static int parse_env(char *const *envp, int argc, ...)
{
    char *argv[32];
    va_list ap;
    va_start(ap, argc);
    argv[0] = "ketchd";
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    srv_config_deinit(&cfg);
    return srv_config_parse(&cfg, argc, argv, envp, &action, err, sizeof(err));
}

#define parse(...) parse_env(NULL, __VA_ARGS__)

static void teardown(void)
{
    srv_config_deinit(&cfg);
}

START_TEST(test_no_flags_gives_etcd_defaults)
{
    ck_assert_int_eq(parse(1), 0);
    ck_assert_int_eq(action, SRV_CONFIG_RUN);
    ck_assert_str_eq(cfg.name, "default");
    ck_assert_str_eq(cfg.data_dir, "default.etcd");
    ck_assert_str_eq(cfg.listen_client_urls.urls[0].text, "http://localhost:2379");
    ck_assert_uint_eq(cfg.listen_client_urls.urls[0].port, 2379);
    ck_assert_str_eq(cfg.listen_peer_urls.urls[0].host, "localhost");
    ck_assert_uint_eq(cfg.heartbeat_interval_ms, 100);
    ck_assert_uint_eq(cfg.election_timeout_ms, 1000);
    ck_assert_uint_eq(cfg.snapshot_count, 100000);
    ck_assert_uint_eq(cfg.max_request_bytes, 1572864);
    ck_assert_str_eq(cfg.initial_cluster_token, "etcd-cluster");
    ck_assert_int_eq(cfg.initial_cluster_state, SRV_CLUSTER_STATE_NEW);
    ck_assert_uint_eq(cfg.initial_member_count, 1);
    ck_assert_str_eq(cfg.initial_members[0].name, "default");
    ck_assert_str_eq(cfg.initial_members[0].peer_urls.urls[0].text, "http://localhost:2380");
}
END_TEST

START_TEST(test_every_go_flag_spelling_is_accepted)
{
    ck_assert_int_eq(parse(3, "--name", "a"), 0);
    ck_assert_str_eq(cfg.name, "a");
    ck_assert_int_eq(parse(2, "--name=b"), 0);
    ck_assert_str_eq(cfg.name, "b");
    ck_assert_int_eq(parse(3, "-name", "c"), 0);
    ck_assert_str_eq(cfg.name, "c");
    ck_assert_int_eq(parse(2, "-name=d"), 0);
    ck_assert_str_eq(cfg.name, "d");
    ck_assert_str_eq(cfg.data_dir, "d.etcd");
}
END_TEST

START_TEST(test_bool_flags_take_no_separate_value)
{
    ck_assert_int_eq(parse(2, "--strict-reconfig-check=false"), 0);
    ck_assert(!cfg.strict_reconfig_check);
    ck_assert_int_eq(parse(2, "--client-cert-auth"), K_ECONFIG); /* needs a CA file */
    ck_assert_int_eq(parse(3, "--enable-v2", "true"), K_ECONFIG);
    ck_assert_str_eq(err, "'true' is not a valid flag (see ketchd --help)");
    ck_assert_int_eq(parse(2, "--enable-v2=yes"), K_ECONFIG);
    ck_assert_str_eq(err, "invalid value \"yes\" for flag -enable-v2");
}
END_TEST

START_TEST(test_unknown_flag_is_refused_with_one_line)
{
    ck_assert_int_eq(parse(2, "--bogus"), K_ECONFIG);
    ck_assert_str_eq(err, "flag provided but not defined: -bogus (see ketchd --help)");
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_int_eq(parse(2, "--name"), K_ECONFIG);
    ck_assert_str_eq(err, "flag needs an argument: -name (see ketchd --help)");
    ck_assert_int_eq(parse(2, "---x"), K_ECONFIG);
    ck_assert_int_eq(parse(3, "--heartbeat-interval", "abc"), K_ECONFIG);
    ck_assert_str_eq(err, "invalid value \"abc\" for flag -heartbeat-interval");
    ck_assert_int_eq(parse(3, "--snapshot-count", "-5"), K_ECONFIG);
}
END_TEST

START_TEST(test_version_and_help_are_actions)
{
    ck_assert_int_eq(parse(2, "--version"), 0);
    ck_assert_int_eq(action, SRV_CONFIG_SHOW_VERSION);
    ck_assert_int_eq(parse(2, "-h"), 0);
    ck_assert_int_eq(action, SRV_CONFIG_SHOW_HELP);
    ck_assert_int_eq(parse(2, "--help"), 0);
    ck_assert_int_eq(action, SRV_CONFIG_SHOW_HELP);
}
END_TEST

START_TEST(test_environment_is_read_and_command_line_wins)
{
    char *envp[] = { "ETCD_NAME=envname", "ETCD_SNAPSHOT_COUNT=42", "ETCD_DATA_DIR=/tmp/x",
                     "OTHER=1", NULL };
    ck_assert_int_eq(parse_env(envp, 1), 0);
    ck_assert_str_eq(cfg.name, "envname");
    ck_assert_uint_eq(cfg.snapshot_count, 42);
    ck_assert_str_eq(cfg.data_dir, "/tmp/x");
    ck_assert_int_eq(parse_env(envp, 3, "--name", "cli"), 0);
    ck_assert_str_eq(cfg.name, "cli");
    ck_assert_uint_eq(cfg.snapshot_count, 42);
    char *bad[] = { "ETCD_HEARTBEAT_INTERVAL=x", NULL };
    ck_assert_int_eq(parse_env(bad, 1), K_ECONFIG);
    ck_assert_str_eq(err, "invalid value \"x\" for environment variable ETCD_HEARTBEAT_INTERVAL");
}
END_TEST

START_TEST(test_name_missing_from_initial_cluster_is_refused)
{
    ck_assert_int_eq(parse(5, "--name", "n4", "--initial-cluster",
                           "n1=http://127.0.0.1:2380,n2=http://127.0.0.1:2381"),
                     K_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "couldn't find local name \"n4\""));
}
END_TEST

START_TEST(test_initial_cluster_must_match_advertised_peer_urls)
{
    ck_assert_int_eq(parse(5, "--name", "n1", "--initial-cluster", "n1=http://127.0.0.1:2390"),
                     K_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "--initial-advertise-peer-urls"));
    ck_assert_int_eq(parse(7, "--name", "n1", "--initial-cluster",
                           "n1=http://127.0.0.1:2390,n2=http://127.0.0.1:2391",
                           "--initial-advertise-peer-urls", "http://127.0.0.1:2390"),
                     0);
    ck_assert_uint_eq(cfg.initial_member_count, 2);
    ck_assert_str_eq(cfg.initial_members[1].name, "n2");
}
END_TEST

START_TEST(test_initial_cluster_repeated_name_collects_urls_and_shared_url_is_refused)
{
    ck_assert_int_eq(parse(7, "--name", "a", "--initial-cluster", "a=http://h:1,a=http://h:2",
                           "--initial-advertise-peer-urls", "http://h:2,http://h:1"),
                     0);
    ck_assert_uint_eq(cfg.initial_members[0].peer_urls.count, 2);
    ck_assert_int_eq(parse(7, "--name", "a", "--initial-cluster", "a=http://h:1,b=http://h:1",
                           "--initial-advertise-peer-urls", "http://h:1"),
                     K_ECONFIG);
    ck_assert_int_eq(parse(3, "--initial-cluster", "novalue"), K_ECONFIG);
}
END_TEST

START_TEST(test_election_timeout_must_be_five_heartbeats)
{
    ck_assert_int_eq(parse(3, "--heartbeat-interval", "300"), K_ECONFIG);
    ck_assert_str_eq(err, "--election-timeout[1000ms] should be at least as 5 times as "
                          "--heartbeat-interval[300ms]");
    ck_assert_int_eq(parse(5, "--heartbeat-interval", "10", "--election-timeout", "50"), 0);
}
END_TEST

START_TEST(test_urls_are_checked_with_etcd_messages)
{
    ck_assert_int_eq(parse(3, "--listen-client-urls", "notaurl"), K_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "URL scheme must be http, https, unix, or unixs: notaurl"));
    ck_assert_int_eq(parse(3, "--listen-client-urls", "http://127.0.0.1"), K_ECONFIG);
    ck_assert_int_eq(parse(3, "--listen-client-urls", "http://127.0.0.1:1/x"), K_ECONFIG);
    ck_assert_int_eq(parse(3, "--listen-client-urls", "http://[::1]:2379,http://127.0.0.1:2379"),
                     0);
    ck_assert_str_eq(cfg.listen_client_urls.urls[0].host, "::1");
    ck_assert_int_eq(parse(3, "--listen-client-urls", "https://127.0.0.1:2379"), K_ECONFIG);
    ck_assert_ptr_nonnull(strstr(err, "--cert-file"));
}
END_TEST

START_TEST(test_unsupported_features_are_refused_unless_default)
{
    ck_assert_int_eq(parse(3, "--discovery-srv", "example.com"), K_ECONFIG);
    ck_assert_str_eq(err, "--discovery-srv is not supported by ketchd; remove it");
    ck_assert_int_eq(parse(3, "--proxy", "off"), 0);
    ck_assert_int_eq(parse(3, "--proxy", "on"), K_ECONFIG);
    ck_assert_int_eq(parse(2, "--auto-tls=false"), 0);
    ck_assert_int_eq(parse(3, "--quota-backend-bytes", "1000"), 0);
    ck_assert_uint_eq(cfg.quota_backend_bytes, 1000);
    ck_assert_int_eq(parse(3, "--initial-cluster-state", "maybe"), K_ECONFIG);
}
END_TEST

START_TEST(test_ids_match_etcd_observed_values)
{
    struct srv_url_list urls;
    ck_assert_int_eq(srv_url_list_parse("http://127.0.0.1:23800", &urls, err, sizeof(err)), 0);
    uint64_t id = srv_member_id_compute(&urls, "etcd-cluster");
    ck_assert_uint_eq(id, 0x2e1259d415f2a040ull);
    ck_assert_uint_eq(srv_cluster_id_compute(&id, 1), 0x48276a8f75b6a87ull);
    uint64_t three[] = { 0xde8ddafc330f64eeull, 0x185a7809e446a2caull, 0xd0687781355279a7ull };
    ck_assert_uint_eq(srv_cluster_id_compute(three, 3), 0xc7547941921519d6ull);
    ck_assert_int_eq(srv_url_list_parse("http://127.0.0.1:23803", &urls, err, sizeof(err)), 0);
    ck_assert_uint_eq(
            srv_member_id_compute(&urls, "http://127.0.0.1:23790/v2/keys/_etcd/registry/tok1"),
            0x45c3e41896673c46ull);
    char hex[17];
    srv_id_format(0x48276a8f75b6a87ull, hex);
    ck_assert_str_eq(hex, "48276a8f75b6a87");
    uint64_t back;
    ck_assert_int_eq(srv_id_parse(hex, &back), 0);
    ck_assert_uint_eq(back, 0x48276a8f75b6a87ull);
    ck_assert_int_eq(srv_id_parse("zzz", &back), K_ECONFIG);
    ck_assert_int_eq(srv_id_parse("12345678901234567", &back), K_ECONFIG);
}
END_TEST

Suite *test_server_config_suite(void)
{
    Suite *s = suite_create("server_config");
    TCase *tc = tcase_create("flags");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_no_flags_gives_etcd_defaults);
    tcase_add_test(tc, test_every_go_flag_spelling_is_accepted);
    tcase_add_test(tc, test_bool_flags_take_no_separate_value);
    tcase_add_test(tc, test_unknown_flag_is_refused_with_one_line);
    tcase_add_test(tc, test_version_and_help_are_actions);
    tcase_add_test(tc, test_environment_is_read_and_command_line_wins);
    tcase_add_test(tc, test_name_missing_from_initial_cluster_is_refused);
    tcase_add_test(tc, test_initial_cluster_must_match_advertised_peer_urls);
    tcase_add_test(tc, test_initial_cluster_repeated_name_collects_urls_and_shared_url_is_refused);
    tcase_add_test(tc, test_election_timeout_must_be_five_heartbeats);
    tcase_add_test(tc, test_urls_are_checked_with_etcd_messages);
    tcase_add_test(tc, test_unsupported_features_are_refused_unless_default);
    tcase_add_test(tc, test_ids_match_etcd_observed_values);
    suite_add_tcase(s, tc);
    return s;
}
