/* Request validation (spec/etcd-v2-api.md §4.2): each check of the table with its code and
 * exact cause, in etcd's order, the boolean and integer syntaxes, body-before-query
 * precedence, and the KvRequest that results. */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "kv/json.h"
#include "kv/params.h"

Suite *test_kv_params_suite(void);

/* Parses "a=1&b=2" (no decoding) into pairs pointing into buf. */
static size_t pairs(char *buf, struct kv_param *out, size_t cap)
{
    size_t n = 0;
    for (char *save = NULL, *t = strtok_r(buf, "&", &save); t != NULL && n < cap;
         t = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(t, '=');
        ck_assert_ptr_nonnull(eq);
        *eq = '\0';
        out[n++] = (struct kv_param){ t, strlen(t), eq + 1, strlen(eq + 1) };
    }
    return n;
}

/* Returns "" on success, else the error JSON. */
static const char *parse(enum kv_http_method m, const char *query, struct kv_parsed *out)
{
    static char buf[1024];
    static char result[1024];
    snprintf(buf, sizeof(buf), "%s", query);
    struct kv_param p[32];
    size_t n = pairs(buf, p, 32);
    struct kv_error err;
    int rc = kv_params_parse(m, "/k", 2, p, n, 42, out, &err);
    result[0] = '\0';
    if (rc == K_EV2) {
        struct k_buf b = { 0 };
        kv_json_error(&err, &b);
        snprintf(result, sizeof(result), "%s", b.data);
        k_buf_free(&b);
    } else {
        ck_assert_int_eq(rc, 0);
    }
    return result;
}

#define ERR(code, msg, cause)                                                                      \
    "{\"errorCode\":" #code ",\"message\":\"" msg "\",\"cause\":\"" cause "\",\"index\":0}\n"

START_TEST(test_each_check_answers_with_etcds_code_and_cause)
{
    struct kv_parsed p;
    ck_assert_str_eq(parse(KV_HTTP_PUT, "prevIndex=x", &p),
                     ERR(203, "The given index in POST form is not a number",
                         "invalid value for \\\"prevIndex\\\""));
    ck_assert_str_eq(parse(KV_HTTP_GET, "waitIndex=-1", &p),
                     ERR(203, "The given index in POST form is not a number",
                         "invalid value for \\\"waitIndex\\\""));
    ck_assert_str_eq(parse(KV_HTTP_GET, "recursive=", &p),
                     ERR(209, "Invalid field", "invalid value for \\\"recursive\\\""));
    ck_assert_str_eq(parse(KV_HTTP_GET, "sorted=yes", &p),
                     ERR(209, "Invalid field", "invalid value for \\\"sorted\\\""));
    ck_assert_str_eq(parse(KV_HTTP_PUT, "dir=on", &p),
                     ERR(209, "Invalid field", "invalid value for \\\"dir\\\""));
    ck_assert_str_eq(parse(KV_HTTP_GET, "stream=tRue", &p),
                     ERR(209, "Invalid field", "invalid value for \\\"stream\\\""));
    ck_assert_str_eq(parse(KV_HTTP_PUT, "wait=true", &p),
                     ERR(209, "Invalid field", "\\\"wait\\\" can only be used with GET requests"));
    ck_assert_str_eq(parse(KV_HTTP_HEAD, "wait=true", &p),
                     ERR(209, "Invalid field", "\\\"wait\\\" can only be used with GET requests"));
    ck_assert_str_eq(
            parse(KV_HTTP_PUT, "prevValue=", &p),
            ERR(201, "PrevValue is Required in POST form", "\\\"prevValue\\\" cannot be empty"));
    ck_assert_str_eq(parse(KV_HTTP_PUT, "noValueOnSuccess=2", &p),
                     ERR(209, "Invalid field", "invalid value for \\\"noValueOnSuccess\\\""));
    ck_assert_str_eq(parse(KV_HTTP_PUT, "ttl=1.5", &p),
                     ERR(202, "The given TTL in POST form is not a number",
                         "invalid value for \\\"ttl\\\""));
    ck_assert_str_eq(parse(KV_HTTP_PUT, "prevExist=", &p),
                     ERR(209, "Invalid field", "invalid value for prevExist"));
    ck_assert_str_eq(parse(KV_HTTP_PUT, "refresh=maybe", &p),
                     ERR(209, "Invalid field", "invalid value for refresh"));
    ck_assert_str_eq(parse(KV_HTTP_PUT, "refresh=true&value=v&ttl=5", &p),
                     ERR(211, "Value provided on refresh", "A value was provided on a refresh"));
    ck_assert_str_eq(parse(KV_HTTP_PUT, "refresh=true&ttl=", &p),
                     ERR(212, "A TTL must be provided on refresh", "No TTL value set"));
}
END_TEST

START_TEST(test_checks_run_in_etcds_order)
{
    struct kv_parsed p;
    ck_assert_str_eq(parse(KV_HTTP_PUT, "ttl=x&recursive=x&waitIndex=x&prevIndex=x", &p),
                     ERR(203, "The given index in POST form is not a number",
                         "invalid value for \\\"prevIndex\\\""));
    ck_assert_str_eq(parse(KV_HTTP_PUT, "stream=x&quorum=x&dir=x&wait=x&sorted=x", &p),
                     ERR(209, "Invalid field", "invalid value for \\\"sorted\\\""));
    ck_assert_str_eq(parse(KV_HTTP_PUT, "prevValue=&wait=true", &p),
                     ERR(209, "Invalid field", "\\\"wait\\\" can only be used with GET requests"));
    ck_assert_str_eq(parse(KV_HTTP_PUT, "refresh=x&prevExist=x&ttl=x&noValueOnSuccess=x", &p),
                     ERR(209, "Invalid field", "invalid value for \\\"noValueOnSuccess\\\""));
}
END_TEST

START_TEST(test_booleans_and_integers_follow_go_syntax)
{
    static const char *const yes[] = { "1", "t", "T", "TRUE", "true", "True" };
    static const char *const no[] = { "0", "f", "F", "FALSE", "false", "False" };
    static const char *const bad[] = { "", "tRue", "yes", "on", "2", " true" };
    bool b;
    for (size_t i = 0; i < 6; i++) {
        ck_assert(kv_params_bool(yes[i], strlen(yes[i]), &b) && b);
        ck_assert(kv_params_bool(no[i], strlen(no[i]), &b) && !b);
        ck_assert(!kv_params_bool(bad[i], strlen(bad[i]), &b));
    }
    uint64_t v;
    ck_assert(kv_params_uint("007", 3, &v) && v == 7);
    ck_assert(kv_params_uint("18446744073709551615", 20, &v) && v == UINT64_MAX);
    ck_assert(!kv_params_uint("18446744073709551616", 20, &v));
    ck_assert(!kv_params_uint("", 0, &v));
    ck_assert(!kv_params_uint("+5", 2, &v));
    ck_assert(!kv_params_uint("1_0", 3, &v));
}
END_TEST

START_TEST(test_the_first_value_counts_so_the_body_wins)
{
    struct kv_parsed p;
    /* Body pairs come first; then the query's. recursive=t&recursive=banana is true. */
    ck_assert_str_eq(parse(KV_HTTP_PUT, "value=body&recursive=t&value=query&recursive=banana", &p),
                     "");
    ck_assert_uint_eq(p.req.value.len, 4);
    ck_assert(memcmp(p.req.value.data, "body", 4) == 0);
    ck_assert(p.recursive);
    ck_assert_int_eq(p.req.method, KVPB__KV_METHOD__KV_METHOD_PUT);
}
END_TEST

START_TEST(test_parsed_requests_carry_every_parameter)
{
    struct kv_parsed p;
    ck_assert_str_eq(parse(KV_HTTP_PUT,
                           "value=v&ttl=007&prevExist=false&prevValue=pv&prevIndex=3&dir=T&"
                           "noValueOnSuccess=1&unknown=x",
                           &p),
                     "");
    ck_assert(p.req.has_ttl);
    ck_assert_uint_eq(p.req.ttl_s, 7);
    ck_assert_int_eq(p.req.prev_exist, KVPB__KV_PREV_EXIST__KV_PREV_EXIST_FALSE);
    ck_assert_uint_eq(p.req.prev_index, 3);
    ck_assert_uint_eq(p.req.prev_value.len, 2);
    ck_assert(p.req.dir);
    ck_assert(p.no_value_on_success);
    ck_assert_int_eq(p.req.time_ns, 42);
    ck_assert_str_eq(parse(KV_HTTP_PUT, "value=v&ttl=", &p), "");
    ck_assert(!p.req.has_ttl); /* an empty ttl is no TTL */
    ck_assert_str_eq(parse(KV_HTTP_PUT, "refresh=true&ttl=5&value=", &p), "");
    ck_assert(p.req.refresh);
    ck_assert_str_eq(parse(KV_HTTP_GET, "quorum=true&recursive=true&sorted=true", &p), "");
    ck_assert_int_eq(p.req.method, KVPB__KV_METHOD__KV_METHOD_GET);
    ck_assert(p.req.recursive && p.req.sorted);
    ck_assert_str_eq(parse(KV_HTTP_HEAD, "quorum=true", &p), "");
    ck_assert_int_eq(p.req.method, KVPB__KV_METHOD__KV_METHOD_NONE);
    ck_assert(!p.quorum);
    ck_assert_str_eq(parse(KV_HTTP_GET, "wait=true&waitIndex=0012&stream=1", &p), "");
    ck_assert_int_eq(p.req.method, KVPB__KV_METHOD__KV_METHOD_NONE);
    ck_assert(p.wait && p.stream);
    ck_assert_uint_eq(p.wait_index, 12);
    ck_assert_str_eq(parse(KV_HTTP_DELETE, "prevIndex=4&dir=true&recursive=true", &p), "");
    ck_assert_int_eq(p.req.method, KVPB__KV_METHOD__KV_METHOD_DELETE);
    ck_assert(p.req.recursive);
    ck_assert_str_eq(parse(KV_HTTP_POST, "prevExist=true&value=job", &p), "");
    ck_assert_int_eq(p.req.method, KVPB__KV_METHOD__KV_METHOD_POST);
}
END_TEST

Suite *test_kv_params_suite(void)
{
    Suite *s = suite_create("kv_params");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_each_check_answers_with_etcds_code_and_cause);
    tcase_add_test(tc, test_checks_run_in_etcds_order);
    tcase_add_test(tc, test_booleans_and_integers_follow_go_syntax);
    tcase_add_test(tc, test_the_first_value_counts_so_the_body_wins);
    tcase_add_test(tc, test_parsed_requests_carry_every_parameter);
    suite_add_tcase(s, tc);
    return s;
}
