/* Go encoding/json's bytes for strings, times and errors (spec/etcd-v2-api.md §4.3, §6). */
#include <check.h>
#include <string.h>

#include "kv/json.h"

Suite *test_kv_json_suite(void);

static void expect_string(const char *in, size_t len, const char *want)
{
    struct k_buf b = { 0 };
    kv_json_string(&b, in, len);
    ck_assert_str_eq(b.data, want);
    k_buf_free(&b);
}

static void expect_time(int64_t ns, const char *want)
{
    struct k_buf b = { 0 };
    kv_json_time(&b, ns);
    ck_assert_str_eq(b.data, want);
    k_buf_free(&b);
}

START_TEST(test_json_escapes_html_characters_and_quotes)
{
    expect_string("<a href=\"x\">&amp;</a>", 21,
                  "\"\\u003ca href=\\\"x\\\"\\u003e\\u0026amp;\\u003c/a\\u003e\"");
    expect_string("back\\slash", 10, "\"back\\\\slash\"");
}
END_TEST

START_TEST(test_json_escapes_control_characters_like_go_1_19)
{
    expect_string("a\nb\rc\td", 7, "\"a\\nb\\rc\\td\"");
    expect_string("\x01\x08\x0c\x1f\x7f", 5, "\"\\u0001\\u0008\\u000c\\u001f\x7f\"");
    expect_string("nul\0x", 5, "\"nul\\u0000x\"");
}
END_TEST

START_TEST(test_json_keeps_valid_utf8_and_replaces_each_invalid_byte)
{
    expect_string("uni\xc3\xa9", 5, "\"uni\xc3\xa9\"");
    expect_string("\xf0\x9f\x98\x80", 4, "\"\xf0\x9f\x98\x80\"");
    expect_string("\xff", 1, "\"\\ufffd\"");
    expect_string("a\xe2\x82z", 4, "\"a\\ufffd\\ufffdz\"");        /* truncated sequence */
    expect_string("\xc0\xaf", 2, "\"\\ufffd\\ufffd\"");            /* overlong */
    expect_string("\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
    expect_string("\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
    expect_string("\xe2\x80\xa8|\xe2\x80\xa9", 7, "\"\\u2028|\\u2029\"");
}
END_TEST

START_TEST(test_json_time_is_rfc3339nano_utc_without_trailing_zeros)
{
    const int64_t s = 1795376340; /* 2026-11-22T19:39:00Z */
    expect_time(s * 1000000000LL + 569731767, "2026-11-22T19:39:00.569731767Z");
    expect_time(s * 1000000000LL + 567245840, "2026-11-22T19:39:00.56724584Z");
    expect_time(s * 1000000000LL + 500000000, "2026-11-22T19:39:00.5Z");
    expect_time(s * 1000000000LL, "2026-11-22T19:39:00Z");
    expect_time(0, "1970-01-01T00:00:00Z");
    expect_time(951782400LL * 1000000000LL + 1, "2000-02-29T00:00:00.000000001Z");
    expect_time(-1, "1969-12-31T23:59:59.999999999Z");
}
END_TEST

START_TEST(test_json_error_omits_an_empty_cause)
{
    struct kv_error e = { .ecode = KV_ECODE_EVENT_INDEX_CLEARED, .index = 1167 };
    strcpy(e.cause, "the requested history has been cleared [168/5]");
    e.cause_len = strlen(e.cause);
    struct k_buf b = { 0 };
    kv_json_error(&e, &b);
    e.cause[0] = '\0';
    e.cause_len = 0;
    e.ecode = KV_ECODE_RAFT_INTERNAL;
    e.index = 0;
    kv_json_error(&e, &b);
    ck_assert_str_eq(b.data,
                     "{\"errorCode\":401,\"message\":\"The event in requested index is "
                     "outdated and cleared\",\"cause\":\"the requested history has been "
                     "cleared [168/5]\",\"index\":1167}\n"
                     "{\"errorCode\":300,\"message\":\"Raft Internal Error\",\"index\":0}\n");
    k_buf_free(&b);
    ck_assert_int_eq(kv_ecode_http_status(KV_ECODE_KEY_NOT_FOUND), 404);
    ck_assert_int_eq(kv_ecode_http_status(KV_ECODE_NOT_DIR), 400);
    ck_assert_int_eq(kv_ecode_http_status(KV_ECODE_NOT_FILE), 403);
    ck_assert_int_eq(kv_ecode_http_status(KV_ECODE_DIR_NOT_EMPTY), 403);
    ck_assert_int_eq(kv_ecode_http_status(KV_ECODE_NODE_EXIST), 412);
    ck_assert_int_eq(kv_ecode_http_status(KV_ECODE_TEST_FAILED), 412);
    ck_assert_int_eq(kv_ecode_http_status(KV_ECODE_ROOT_RONLY), 400);
    ck_assert_int_eq(kv_ecode_http_status(KV_ECODE_UNAUTHORIZED), 401);
    ck_assert_int_eq(kv_ecode_http_status(KV_ECODE_RAFT_INTERNAL), 500);
    ck_assert_int_eq(kv_ecode_http_status(KV_ECODE_EVENT_INDEX_CLEARED), 400);
    ck_assert_str_eq(kv_ecode_message(KV_ECODE_REFRESH_TTL_REQUIRED),
                     "A TTL must be provided on refresh");
}
END_TEST

Suite *test_kv_json_suite(void)
{
    Suite *s = suite_create("kv_json");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_json_escapes_html_characters_and_quotes);
    tcase_add_test(tc, test_json_escapes_control_characters_like_go_1_19);
    tcase_add_test(tc, test_json_keeps_valid_utf8_and_replaces_each_invalid_byte);
    tcase_add_test(tc, test_json_time_is_rfc3339nano_utc_without_trailing_zeros);
    tcase_add_test(tc, test_json_error_omits_an_empty_cause);
    suite_add_tcase(s, tc);
    return s;
}
