/* Query/form decoding by Go's url.ParseQuery and Request.ParseForm rules, path decoding and
 * cleaning by Go's net/url and ServeMux, and Content-Type parsing by mime.ParseMediaType.
 * Expected values were checked against real etcd 3.4.23 where marked (spec/etcd-v2-api.md
 * §1.5, §4.1, §4.2). */
#include <check.h>
#include <string.h>

#include "base/err.h"
#include "server/form.h"
#include "server/json_out.h"
#include "server/media_type.h"
#include "server/path.h"
#include "server/url.h"

Suite *test_http_form_suite(void);

static struct srv_arena arena;

static void setup(void)
{
    srv_arena_init(&arena, 1 << 20);
}

static void teardown(void)
{
    srv_arena_deinit(&arena);
}

static int parse(const char *s, struct srv_form *f, char *err)
{
    memset(f, 0, sizeof(*f));
    return srv_form_parse(&arena, f, s, strlen(s), err);
}

static const char *get(const struct srv_form *f, const char *name)
{
    const struct srv_form_field *x = srv_form_get(f, name);
    return x == NULL ? NULL : x->value.ptr;
}

START_TEST(test_query_plus_is_space_and_escapes_decode)
{
    struct srv_form f;
    char err[SRV_FORM_ERROR_BYTES];
    ck_assert_int_eq(parse("value=a+b%2Bc&x%20y=%e9", &f, err), 0);
    ck_assert_uint_eq(f.count, 2);
    ck_assert_str_eq(get(&f, "value"), "a b+c"); /* observed: stored `a b+c` */
    ck_assert_str_eq(get(&f, "x y"), "\xe9");
}
END_TEST

START_TEST(test_first_value_of_a_repeated_name_wins)
{
    struct srv_form f;
    char err[SRV_FORM_ERROR_BYTES];
    ck_assert_int_eq(parse("recursive=t&recursive=banana", &f, err), 0);
    ck_assert_uint_eq(f.count, 2);
    ck_assert_str_eq(get(&f, "recursive"), "t");
}
END_TEST

START_TEST(test_empty_value_differs_from_absent_and_bare_name_is_empty)
{
    struct srv_form f;
    char err[SRV_FORM_ERROR_BYTES];
    ck_assert_int_eq(parse("ttl=&dir&=v&&", &f, err), 0);
    ck_assert_uint_eq(f.count, 3);
    ck_assert_str_eq(get(&f, "ttl"), "");
    ck_assert_str_eq(get(&f, "dir"), "");
    ck_assert_str_eq(get(&f, ""), "v");
    ck_assert_ptr_null(get(&f, "value"));
}
END_TEST

START_TEST(test_bad_escape_reports_go_text_and_keeps_other_fields)
{
    struct srv_form f;
    char err[SRV_FORM_ERROR_BYTES];
    ck_assert_int_eq(parse("a=1&b=%zz&c=%4&d=2", &f, err), K_EPROTO);
    ck_assert_str_eq(err, "invalid URL escape \"%zz\""); /* observed cause of 210 */
    ck_assert_uint_eq(f.count, 2);
    ck_assert_str_eq(get(&f, "d"), "2");
    ck_assert_int_eq(parse("value=%", &f, err), K_EPROTO);
    ck_assert_str_eq(err, "invalid URL escape \"%\""); /* observed */
    ck_assert_int_eq(parse("v=%4", &f, err), K_EPROTO);
    ck_assert_str_eq(err, "invalid URL escape \"%4\"");
    ck_assert_int_eq(parse("v=%\xff\x01", &f, err), K_EPROTO);
    ck_assert_str_eq(err, "invalid URL escape \"%\\xff\\x01\"");
    ck_assert_int_eq(parse("v=%\xc3\xa9", &f, err), K_EPROTO);
    ck_assert_str_eq(err, "invalid URL escape \"%\xc3\xa9\"");
    ck_assert_int_eq(parse("v=%\"\n", &f, err), K_EPROTO);
    ck_assert_str_eq(err, "invalid URL escape \"%\\\"\\n\"");
}
END_TEST

START_TEST(test_semicolon_is_an_error_and_the_field_is_skipped)
{
    struct srv_form f;
    char err[SRV_FORM_ERROR_BYTES];
    ck_assert_int_eq(parse("a=1;b=2&c=3", &f, err), K_EPROTO);
    ck_assert_str_eq(err, "invalid semicolon separator in query"); /* observed */
    ck_assert_uint_eq(f.count, 1);
    ck_assert_str_eq(get(&f, "c"), "3");
}
END_TEST

START_TEST(test_first_error_wins_over_later_ones)
{
    struct srv_form f;
    char err[SRV_FORM_ERROR_BYTES];
    ck_assert_int_eq(parse("a=%zz&b;=1&c=%q", &f, err), K_EPROTO);
    ck_assert_str_eq(err, "invalid URL escape \"%zz\"");
}
END_TEST

START_TEST(test_too_many_fields_is_a_limit)
{
    struct srv_form f;
    char err[SRV_FORM_ERROR_BYTES];
    static char big[SRV_FORM_FIELDS_MAX * 2 + 8];
    size_t n = 0;
    for (int i = 0; i <= SRV_FORM_FIELDS_MAX; i++) {
        big[n++] = 'a';
        big[n++] = '&';
    }
    big[n] = '\0';
    ck_assert_int_eq(parse(big, &f, err), K_ELIMIT);
    big[2 * SRV_FORM_FIELDS_MAX] = '\0';
    ck_assert_int_eq(parse(big, &f, err), 0);
    ck_assert_uint_eq(f.count, SRV_FORM_FIELDS_MAX);
}
END_TEST

static struct srv_form_source source(const char *method, const char *query, const char *ct,
                                     const char *body)
{
    return (struct srv_form_source){ .method = method,
                                     .query = { query, strlen(query) },
                                     .content_type = ct,
                                     .body = { body, body ? strlen(body) : 0 } };
}

START_TEST(test_body_value_wins_over_query_for_put_and_post)
{
    struct srv_form f = { 0 };
    char err[SRV_FORM_ERROR_BYTES];
    struct srv_form_source s =
            source("PUT", "value=q&ttl=5", "APPLICATION/x-www-form-urlencoded ; charset=utf-8",
                   "value=b&value=c");
    ck_assert_int_eq(srv_form_parse_request(&arena, &s, &f, err), 0);
    ck_assert_str_eq(get(&f, "value"), "b"); /* observed on etcd */
    ck_assert_str_eq(get(&f, "ttl"), "5");
    s.method = "POST";
    memset(&f, 0, sizeof(f));
    ck_assert_int_eq(srv_form_parse_request(&arena, &s, &f, err), 0);
    ck_assert_str_eq(get(&f, "value"), "b");
}
END_TEST

START_TEST(test_body_is_ignored_for_get_delete_and_other_media_types)
{
    struct srv_form f = { 0 };
    char err[SRV_FORM_ERROR_BYTES];
    struct srv_form_source s =
            source("DELETE", "", "application/x-www-form-urlencoded", "prevValue=nope");
    ck_assert_int_eq(srv_form_parse_request(&arena, &s, &f, err), 0);
    ck_assert_ptr_null(get(&f, "prevValue")); /* spec quirk 7 */
    s = source("PUT", "value=q", "text/plain", "value=b");
    ck_assert_int_eq(srv_form_parse_request(&arena, &s, &f, err), 0);
    ck_assert_str_eq(get(&f, "value"), "q"); /* observed */
    s = source("PUT", "", NULL, "value=b");
    memset(&f, 0, sizeof(f));
    ck_assert_int_eq(srv_form_parse_request(&arena, &s, &f, err), 0);
    ck_assert_uint_eq(f.count, 0);
}
END_TEST

START_TEST(test_bad_content_type_is_a_form_error)
{
    struct srv_form f = { 0 };
    char err[SRV_FORM_ERROR_BYTES];
    struct srv_form_source s =
            source("PUT", "value=q", "application/x-www-form-urlencoded; charset", "value=b");
    ck_assert_int_eq(srv_form_parse_request(&arena, &s, &f, err), K_EPROTO);
    ck_assert_str_eq(err, "mime: invalid media parameter"); /* observed */
    s = source("PUT", "value=q", "garbage/", "value=b");
    ck_assert_int_eq(srv_form_parse_request(&arena, &s, &f, err), K_EPROTO);
    ck_assert_str_eq(err, "mime: expected token after slash"); /* observed */
    s = source("GET", "value=q", "garbage/", "value=b");
    ck_assert_int_eq(srv_form_parse_request(&arena, &s, &f, err), 0);
}
END_TEST

START_TEST(test_body_error_wins_over_query_error)
{
    struct srv_form f = { 0 };
    char err[SRV_FORM_ERROR_BYTES];
    struct srv_form_source s =
            source("PUT", "value=q%zz", "application/x-www-form-urlencoded", "value=%");
    ck_assert_int_eq(srv_form_parse_request(&arena, &s, &f, err), K_EPROTO);
    ck_assert_str_eq(err, "invalid URL escape \"%\""); /* observed */
}
END_TEST

START_TEST(test_oversize_form_body_is_post_too_large)
{
    struct srv_form f = { 0 };
    char err[SRV_FORM_ERROR_BYTES];
    struct srv_form_source s = source("POST", "", "application/x-www-form-urlencoded", "");
    s.body_too_large = true;
    ck_assert_int_eq(srv_form_parse_request(&arena, &s, &f, err), K_EPROTO);
    ck_assert_str_eq(err, "http: POST too large"); /* observed */
    s.content_type = "application/json";
    ck_assert_int_eq(srv_form_parse_request(&arena, &s, &f, err), 0);
}
END_TEST

static const char *mt(const char *v, char *err)
{
    static char out[128];
    struct srv_str t = { NULL, 0 };
    if (srv_media_type_parse(v, strlen(v), &t, err) < 0) return NULL;
    memcpy(out, t.ptr, t.len);
    out[t.len] = '\0';
    return out;
}

START_TEST(test_media_type_follows_go_parse_media_type)
{
    char err[64];
    ck_assert_str_eq(mt("text/plain", err), "text/plain");
    ck_assert_str_eq(mt("  Text/Plain ; charset=\"utf-8\" ;", err), "Text/Plain");
    ck_assert_str_eq(mt("a/b; x=1; y=\"q\\\"\"", err), "a/b");
    ck_assert_str_eq(mt("token", err), "token");
    ck_assert_ptr_null(mt("", err));
    ck_assert_str_eq(err, "mime: no media type");
    ck_assert_ptr_null(mt("a b", err));
    ck_assert_str_eq(err, "mime: expected slash after first token");
    ck_assert_ptr_null(mt("a/b c", err));
    ck_assert_str_eq(err, "mime: unexpected content after media subtype");
    ck_assert_ptr_null(mt("a/b; x=1; X=2", err));
    ck_assert_str_eq(err, "mime: duplicate parameter name");
    ck_assert_ptr_null(mt("a/b; x=", err));
    ck_assert_str_eq(err, "mime: invalid media parameter");
    ck_assert_ptr_null(mt("a/b; x=\"open", err));
    ck_assert_str_eq(err, "mime: invalid media parameter");
    ck_assert_str_eq(mt("a/b\xc2\xa0", err), "a/b"); /* U+00A0 is white space to Go */
}
END_TEST

static const char *unesc(const char *s, enum srv_unescape_mode mode, char *err)
{
    char *out;
    size_t len;
    if (srv_url_unescape(&arena, s, strlen(s), mode, &out, &len, err) < 0) return NULL;
    return out;
}

START_TEST(test_path_decoding_keeps_plus_and_decodes_slash)
{
    char err[SRV_URL_ERROR_BYTES];
    ck_assert_str_eq(unesc("/v2/keys/f+o%20o", SRV_UNESCAPE_PATH, err), "/v2/keys/f+o o");
    ck_assert_str_eq(unesc("/a%2Fb", SRV_UNESCAPE_PATH, err), "/a/b");
    ck_assert_ptr_null(unesc("/v2/keys/%zz", SRV_UNESCAPE_PATH, err));
    char *out;
    size_t len;
    ck_assert_int_eq(srv_url_unescape(&arena, "/a%00b", 6, SRV_UNESCAPE_PATH, &out, &len, err), 0);
    ck_assert_uint_eq(len, 4);
    ck_assert_mem_eq(out, "/a\0b", 4);
}
END_TEST

static const char *clean(const char *p)
{
    char *out;
    size_t len;
    ck_assert_int_eq(srv_path_clean(&arena, p, strlen(p), &out, &len), 0);
    ck_assert_uint_eq(strlen(out), len);
    return out;
}

START_TEST(test_path_cleaning_matches_go_serve_mux)
{
    ck_assert_str_eq(clean("/v2/keys//hid//visible"), "/v2/keys/hid/visible"); /* observed */
    ck_assert_str_eq(clean("/v2/keys//a/../b"), "/v2/keys/b");                 /* observed */
    ck_assert_str_eq(clean("/v2/keys/a//b?/"), "/v2/keys/a/b?/");
    ck_assert_str_eq(clean("/v2/keys/"), "/v2/keys/");
    ck_assert_str_eq(clean("/v2/keys"), "/v2/keys");
    ck_assert_str_eq(clean(""), "/");
    ck_assert_str_eq(clean("a/b"), "/a/b");
    ck_assert_str_eq(clean("/.."), "/");
    ck_assert_str_eq(clean("/../a/./b/."), "/a/b");
    ck_assert_str_eq(clean("/a/b/../"), "/a/");
    ck_assert_str_eq(clean("/a/.."), "/");
    ck_assert_str_eq(clean("/a/../"), "/");
    ck_assert_str_eq(clean("/..a/b.."), "/..a/b..");
}
END_TEST

START_TEST(test_location_escaping_matches_go)
{
    /* observed: GET /v2/keys/a%2F%2Fb%3F%20(x)*!/ -> Location /v2/keys/a/b%3F%20%28x%29%2A%21/ */
    const char *p = "/v2/keys/a/b? (x)*!/";
    ck_assert_str_eq(srv_url_escape_path(&arena, p, strlen(p)), "/v2/keys/a/b%3F%20%28x%29%2A%21/");
    ck_assert_str_eq(srv_url_escape_path(&arena, "/$&+,:;=@-_.~\xc3\xa9", 15),
                     "/$&+,:;=@-_.~%C3%A9");
}
END_TEST

static int split(const char *t, struct srv_url_target *out)
{
    return srv_url_split_target(t, strlen(t), out);
}

START_TEST(test_request_target_split_like_parse_request_uri)
{
    struct srv_url_target t;
    ck_assert_int_eq(split("/v2/keys/foo#frag?x=1&y", &t), 0);
    ck_assert_int_eq((int)t.path_raw.len, 17); /* '#' stays in the path (observed) */
    ck_assert_mem_eq(t.query.ptr, "x=1&y", 5);
    ck_assert(t.has_query);
    ck_assert_int_eq(split("http://h:1/v2/keys/foo?x", &t), 0);
    ck_assert_mem_eq(t.path_raw.ptr, "/v2/keys/foo", t.path_raw.len);
    ck_assert_int_eq(split("/p?", &t), 0);
    ck_assert(t.has_query);
    ck_assert_uint_eq(t.query.len, 0);
    ck_assert_int_eq(split("*", &t), 0);
    ck_assert_int_eq(split("foo", &t), K_EPROTO); /* observed 400 */
    ck_assert_int_eq(split("/a\x01", &t), K_EPROTO);
    ck_assert_int_eq(split("", &t), K_EPROTO);
}
END_TEST

START_TEST(test_arena_budget_is_a_clean_error)
{
    struct srv_arena a;
    srv_arena_init(&a, 10000);
    int got = 0;
    for (int i = 0; i < 100; i++) {
        void *p = srv_arena_alloc(&a, 100);
        if (p == NULL) break;
        memset(p, 0xab, 100);
        got++;
    }
    ck_assert_int_gt(got, 50);
    ck_assert_int_lt(got, 100);
    ck_assert_ptr_null(srv_arena_alloc(&a, 5000));
    srv_arena_budget_add(&a, 100000);
    void *big = srv_arena_alloc(&a, 50000);
    ck_assert_ptr_nonnull(big);
    memset(big, 1, 50000);
    ck_assert_ptr_nonnull(srv_arena_alloc(&a, 0));
    srv_arena_deinit(&a);
}
END_TEST

START_TEST(test_arena_smaller_than_a_chunk_still_serves_what_fits)
{
    struct srv_arena a;
    srv_arena_init(&a, 1024);
    void *p = srv_arena_alloc(&a, 100);
    ck_assert_ptr_nonnull(p);
    memset(p, 1, 100);
    ck_assert_ptr_nonnull(srv_arena_alloc(&a, 500));
    ck_assert_ptr_null(srv_arena_alloc(&a, 1024));
    srv_arena_deinit(&a);
}
END_TEST

static const char *json(const char *s, size_t len)
{
    char *out = srv_json_quote_arena(&arena, s, len);
    ck_assert_ptr_nonnull(out);
    return out;
}

START_TEST(test_json_strings_are_escaped_as_go_encoding_json_does)
{
    /* spec §4.3 (observed): HTML characters, U+2028/9, short escapes, \u00XX, \ufffd */
    ck_assert_str_eq(json("a<b>&\"\\", 7), "\"a\\u003cb\\u003e\\u0026\\\"\\\\\"");
    ck_assert_str_eq(json("\n\r\t\x01\b\f\x7f", 7), "\"\\n\\r\\t\\u0001\\u0008\\u000c\x7f\"");
    ck_assert_str_eq(json("uni\xc3\xa9", 5), "\"uni\xc3\xa9\"");
    ck_assert_str_eq(json("\xe2\x80\xa8\xe2\x80\xa9", 6), "\"\\u2028\\u2029\"");
    ck_assert_str_eq(json("\xff\xc3", 2), "\"\\ufffd\\ufffd\"");
    ck_assert_str_eq(json("\xed\xa0\x80", 3), "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
    ck_assert_str_eq(json("\xf0\x9f\x98\x80", 4), "\"\xf0\x9f\x98\x80\"");
    ck_assert_str_eq(json("/foo\0bar", 8), "\"/foo\\u0000bar\""); /* observed cause */
    ck_assert_str_eq(json("", 0), "\"\"");
}
END_TEST

Suite *test_http_form_suite(void)
{
    Suite *s = suite_create("http_form");
    TCase *tc = tcase_create("form");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_query_plus_is_space_and_escapes_decode);
    tcase_add_test(tc, test_first_value_of_a_repeated_name_wins);
    tcase_add_test(tc, test_empty_value_differs_from_absent_and_bare_name_is_empty);
    tcase_add_test(tc, test_bad_escape_reports_go_text_and_keeps_other_fields);
    tcase_add_test(tc, test_semicolon_is_an_error_and_the_field_is_skipped);
    tcase_add_test(tc, test_first_error_wins_over_later_ones);
    tcase_add_test(tc, test_too_many_fields_is_a_limit);
    tcase_add_test(tc, test_body_value_wins_over_query_for_put_and_post);
    tcase_add_test(tc, test_body_is_ignored_for_get_delete_and_other_media_types);
    tcase_add_test(tc, test_bad_content_type_is_a_form_error);
    tcase_add_test(tc, test_body_error_wins_over_query_error);
    tcase_add_test(tc, test_oversize_form_body_is_post_too_large);
    tcase_add_test(tc, test_media_type_follows_go_parse_media_type);
    tcase_add_test(tc, test_path_decoding_keeps_plus_and_decodes_slash);
    tcase_add_test(tc, test_path_cleaning_matches_go_serve_mux);
    tcase_add_test(tc, test_location_escaping_matches_go);
    tcase_add_test(tc, test_request_target_split_like_parse_request_uri);
    tcase_add_test(tc, test_arena_budget_is_a_clean_error);
    tcase_add_test(tc, test_arena_smaller_than_a_chunk_still_serves_what_fits);
    tcase_add_test(tc, test_json_strings_are_escaped_as_go_encoding_json_does);
    suite_add_tcase(s, tc);
    return s;
}
