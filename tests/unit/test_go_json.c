/* Go's encoding/json Decoder error texts, which etcd answers /v2/members with (spec §7.2). */
#include <check.h>
#include <string.h>

#include "server/go_json.h"

Suite *test_go_json_suite(void);

static const char *err_of(const char *s)
{
    static char msg[160];
    if (!srv_go_json_syntax_error(s, strlen(s), msg, sizeof(msg))) return NULL;
    return msg;
}

START_TEST(test_valid_values_pass_and_trailing_bytes_are_not_read)
{
    ck_assert_ptr_null(err_of("{}"));
    ck_assert_ptr_null(err_of(" {\"peerURLs\":[\"http://a:1\"],\"x\":[1,-2.5e3,true,null]} "));
    ck_assert_ptr_null(err_of("{} trailing"));
    ck_assert_ptr_null(err_of("123"));
    ck_assert_ptr_null(err_of("\"\\u00e9\\n\""));
}
END_TEST

START_TEST(test_errors_read_as_go_writes_them)
{
    ck_assert_str_eq(err_of(""), "EOF");
    ck_assert_str_eq(err_of("  \n"), "EOF");
    ck_assert_str_eq(err_of("{bad"),
                     "invalid character 'b' looking for beginning of object key string");
    ck_assert_str_eq(err_of("{\"a\" 1}"), "invalid character '1' after object key");
    ck_assert_str_eq(err_of("{\"a\":1 \"b\"}"),
                     "invalid character '\"' after object key:value pair");
    ck_assert_str_eq(err_of("[1 2]"), "invalid character '2' after array element");
    ck_assert_str_eq(err_of("peerURLs=x"), "invalid character 'p' looking for beginning of value");
    ck_assert_str_eq(err_of("{\"a\":tru}"),
                     "invalid character '}' in literal true (expecting 'e')");
    ck_assert_str_eq(err_of("{\"a\":-x}"), "invalid character 'x' in numeric literal");
    ck_assert_str_eq(err_of("\"a\nb\""), "invalid character '\\n' in string literal");
    ck_assert_str_eq(err_of("\"\\q\""), "invalid character 'q' in string escape code");
    ck_assert_str_eq(err_of("{'a':1}"),
                     "invalid character '\\'' looking for beginning of object key string");
    ck_assert_str_eq(err_of("{\"a\":"), "unexpected EOF");
    ck_assert_str_eq(err_of("[1,"), "unexpected EOF");
    ck_assert_str_eq(err_of("\"abc"), "unexpected EOF");
}
END_TEST

Suite *test_go_json_suite(void)
{
    Suite *s = suite_create("go_json");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_valid_values_pass_and_trailing_bytes_are_not_read);
    tcase_add_test(tc, test_errors_read_as_go_writes_them);
    suite_add_tcase(s, tc);
    return s;
}
