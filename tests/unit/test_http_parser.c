/* Request parsing (server/http.h): fields of a good request, the same result however the
 * bytes are split, pipelined requests one at a time, chunked bodies, and every bound and
 * malformed input answered with the status Go/etcd uses (spec/etcd-v2-api.md §1.6, observed
 * on etcd 3.4.23 where marked). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "server/http.h"

Suite *test_http_parser_suite(void);

static struct srv_http_limits limits;
static struct srv_http_parser parser;

static void setup(void)
{
    srv_http_limits_default(&limits);
    srv_http_parser_init(&parser, &limits);
}

static void teardown(void)
{
    srv_http_parser_deinit(&parser);
}

/* Feeds all of s in pieces of at most step bytes; collects up to max requests. Returns the
 * number of requests, or the negative error of the feed that failed. */
static int feed_all(struct srv_http_parser *p, const char *s, size_t len, size_t step,
                    struct srv_http_request **out, int max)
{
    int n = 0;
    size_t off = 0;
    while (off < len) {
        size_t piece = len - off < step ? len - off : step;
        size_t done = 0;
        while (done < piece) {
            size_t used = 0;
            int rc = srv_http_parser_feed(p, s + off + done, piece - done, &used);
            done += used;
            if (rc < 0) return rc;
            if (rc == SRV_HTTP_READY) {
                struct srv_http_request *r = srv_http_parser_take(p);
                ck_assert_int_lt(n, max);
                out[n++] = r;
            } else {
                ck_assert_uint_eq(done, piece);
            }
        }
        off += piece;
    }
    return n;
}

static struct srv_http_request *parse_one(const char *s)
{
    struct srv_http_request *r[1];
    int n = feed_all(&parser, s, strlen(s), strlen(s), r, 1);
    ck_assert_int_eq(n, 1);
    return r[0];
}

static int parse_error(const char *s, size_t len)
{
    struct srv_http_request *r[4];
    int n = feed_all(&parser, s, len, len, r, 4);
    for (int i = 0; i < n; i++)
        srv_http_request_free(r[i]);
    if (n >= 0) return 0;
    ck_assert_int_eq(n, K_EPROTO);
    return srv_http_parser_error(&parser)->status;
}

static const char good[] = "PUT /v2/keys/a%2Fb+c?value=x&ttl=5 HTTP/1.1\r\n"
                           "Host: 127.0.0.1\r\n"
                           "Content-Type:  application/x-www-form-urlencoded \r\n"
                           "X-Multi: one\r\n"
                           "x-multi: two\r\n"
                           "Content-Length: 9\r\n"
                           "\r\n"
                           "value=bar";

static void check_good(const struct srv_http_request *r)
{
    ck_assert_str_eq(r->method, "PUT");
    ck_assert_int_eq(r->method_id, HTTP_PUT);
    ck_assert_uint_eq(r->version_minor, 1);
    ck_assert_str_eq(r->target.ptr, "/v2/keys/a%2Fb+c?value=x&ttl=5");
    ck_assert_str_eq(r->path.ptr, "/v2/keys/a/b+c");
    ck_assert_uint_eq(r->query.len, 13);
    ck_assert_mem_eq(r->query.ptr, "value=x&ttl=5", 13);
    ck_assert_str_eq(r->host, "127.0.0.1");
    ck_assert_str_eq(r->content_type, "application/x-www-form-urlencoded");
    ck_assert_str_eq(srv_http_request_header(r, "X-MULTI"), "one");
    ck_assert_uint_eq(r->header_count, 5);
    ck_assert(r->keep_alive);
    ck_assert(r->has_content_length);
    ck_assert_uint_eq(r->body_len, 9);
    ck_assert_mem_eq(r->body, "value=bar", 9);
    ck_assert(!r->body_too_large);
}

START_TEST(test_good_request_is_parsed_into_fields)
{
    struct srv_http_request *r = parse_one(good);
    check_good(r);
    srv_http_request_free(r);
}
END_TEST

START_TEST(test_request_split_at_every_byte_boundary_parses_the_same)
{
    size_t len = strlen(good);
    for (size_t cut = 1; cut < len; cut++) {
        struct srv_http_parser p;
        srv_http_parser_init(&p, &limits);
        struct srv_http_request *r[1];
        /* two pieces: [0, cut) and [cut, len) */
        int n = feed_all(&p, good, cut, cut, r, 1);
        ck_assert_int_eq(n, 0);
        n = feed_all(&p, good + cut, len - cut, len, r, 1);
        ck_assert_int_eq(n, 1);
        check_good(r[0]);
        srv_http_request_free(r[0]);
        srv_http_parser_deinit(&p);
    }
    for (size_t step = 1; step < 8; step++) {
        struct srv_http_parser p;
        srv_http_parser_init(&p, &limits);
        struct srv_http_request *r[1];
        ck_assert_int_eq(feed_all(&p, good, len, step, r, 1), 1);
        check_good(r[0]);
        srv_http_request_free(r[0]);
        srv_http_parser_deinit(&p);
    }
}
END_TEST

START_TEST(test_pipelined_requests_come_out_one_at_a_time_in_order)
{
    const char s[] = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                     "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
                     "DELETE /c?x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
    size_t used = 0;
    ck_assert_int_eq(srv_http_parser_feed(&parser, s, sizeof(s) - 1, &used), SRV_HTTP_READY);
    ck_assert_uint_lt(used, sizeof(s) - 1);
    struct srv_http_request *a = srv_http_parser_take(&parser);
    ck_assert_str_eq(a->path.ptr, "/a");
    struct srv_http_request *r[2];
    ck_assert_int_eq(feed_all(&parser, s + used, sizeof(s) - 1 - used, 1000, r, 2), 2);
    ck_assert_str_eq(r[0]->method, "POST");
    ck_assert_mem_eq(r[0]->body, "xyz", 3);
    ck_assert_str_eq(r[1]->path.ptr, "/c");
    ck_assert(!r[1]->keep_alive);
    srv_http_request_free(a);
    srv_http_request_free(r[0]);
    srv_http_request_free(r[1]);
}
END_TEST

START_TEST(test_chunked_body_is_decoded_and_trailers_dropped)
{
    /* observed: etcd stored value "abc" from this chunked form body */
    struct srv_http_request *r = parse_one(
            "PUT /v2/keys/ch HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            "Transfer-Encoding: chunked\r\n\r\n5\r\nvalue\r\n4\r\n=abc\r\n0\r\nX-T: 1\r\n\r\n");
    ck_assert(r->chunked);
    ck_assert_uint_eq(r->body_len, 9);
    ck_assert_mem_eq(r->body, "value=abc", 9);
    ck_assert_uint_eq(r->header_count, 3);
    srv_http_request_free(r);
}
END_TEST

START_TEST(test_http10_keeps_alive_only_when_asked)
{
    struct srv_http_request *r = parse_one("GET /v2/keys/foo HTTP/1.0\r\n\r\n");
    ck_assert_uint_eq(r->version_minor, 0);
    ck_assert(!r->keep_alive);
    ck_assert_ptr_null(r->host); /* no Host needed in 1.0 (observed) */
    srv_http_request_free(r);
    srv_http_parser_deinit(&parser);
    srv_http_parser_init(&parser, &limits);
    r = parse_one("GET /v2/keys/foo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    ck_assert(r->keep_alive);
    srv_http_request_free(r);
}
END_TEST

START_TEST(test_absolute_form_target_gives_its_path)
{
    struct srv_http_request *r =
            parse_one("GET http://h/v2/keys/foo?x HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_str_eq(r->path.ptr, "/v2/keys/foo");
    ck_assert_mem_eq(r->query.ptr, "x", 1);
    srv_http_request_free(r);
}
END_TEST

START_TEST(test_missing_host_in_http11_is_400_like_go)
{
    ck_assert_int_eq(parse_error("GET /v2/keys/foo HTTP/1.1\r\n\r\n", 29), 400);
    ck_assert_str_eq(srv_http_parser_error(&parser)->reason,
                     "Bad Request: missing required Host header"); /* observed */
}
END_TEST

START_TEST(test_malformed_requests_are_400)
{
    static const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET /v2/keys/%zz HTTP/1.1\r\nHost: x\r\n\r\n",                        /* observed */
        "GET foo HTTP/1.1\r\nHost: x\r\n\r\n",                                 /* observed */
        "GET /v2/keys/foo HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", /* observed */
        "PUT /v2/keys/e HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nContent-Length: 8\r\n\r\n",
        "GET /v2/keys/foo HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",       /* observed */
        "GET /v2/keys/foo HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n", /* observed */
        "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTransfer-Encoding: chunked\r\n\r\n",
        "PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct srv_http_parser p;
        srv_http_parser_init(&p, &limits);
        struct srv_http_request *r[1];
        int n = feed_all(&p, bad[i], strlen(bad[i]), 4096, r, 1);
        ck_assert_msg(n == K_EPROTO, "case %zu gave %d", i, n);
        ck_assert_int_eq(srv_http_parser_error(&p)->status, 400);
        /* nothing more is parsed after an error */
        size_t used;
        ck_assert_int_eq(srv_http_parser_feed(&p, "GET / HTTP/1.1\r\n\r\n", 18, &used), K_EPROTO);
        srv_http_parser_deinit(&p);
    }
}
END_TEST

START_TEST(test_unsupported_transfer_encoding_is_501)
{
    const char *s = "GET /v2/keys/foo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n";
    ck_assert_int_eq(parse_error(s, strlen(s)), 501); /* observed */
}
END_TEST

START_TEST(test_other_expectation_is_417_and_100_continue_is_noted)
{
    const char *s = "GET /v2/keys/foo HTTP/1.1\r\nHost: x\r\nExpect: foo\r\n\r\n";
    ck_assert_int_eq(parse_error(s, strlen(s)), 417); /* observed */
    srv_http_parser_deinit(&parser);
    srv_http_parser_init(&parser, &limits);
    struct srv_http_request *r = parse_one(
            "PUT /k HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nv");
    ck_assert(r->expect_continue);
    srv_http_request_free(r);
}
END_TEST

START_TEST(test_http2_version_is_505)
{
    const char *s = "GET /v2/keys/foo HTTP/2.0\r\nHost: x\r\n\r\n";
    ck_assert_int_eq(parse_error(s, strlen(s)), 505);
}
END_TEST

static char *repeat(const char *prefix, char c, size_t n, const char *suffix)
{
    size_t pl = strlen(prefix);
    size_t sl = strlen(suffix);
    char *s = malloc(pl + n + sl + 1);
    memcpy(s, prefix, pl);
    memset(s + pl, c, n);
    memcpy(s + pl + n, suffix, sl + 1);
    return s;
}

START_TEST(test_request_line_of_4096_bytes_is_accepted_and_longer_targets_are_414)
{
    /* observed: etcd takes "GET /v2/keys/<4072 chars> HTTP/1.1\r\n" (4096 bytes) */
    char *s = repeat("GET /v2/keys/", 'a', 4072, " HTTP/1.1\r\nHost: x\r\n\r\n");
    struct srv_http_request *r = parse_one(s);
    ck_assert_uint_eq(r->path.len, 9 + 4072);
    srv_http_request_free(r);
    free(s);
    s = repeat("GET /", 'a', SRV_HTTP_URL_BYTES_MAX, " HTTP/1.1\r\nHost: x\r\n\r\n");
    ck_assert_int_eq(parse_error(s, strlen(s)), 414);
    free(s);
}
END_TEST

START_TEST(test_head_just_under_the_limit_fits_the_request_arena)
{
    limits.arena_bytes = 1024; /* far less than the head: the head pays for itself */
    char *s = repeat("GET / HTTP/1.1\r\nHost: x\r\nX-A: ", 'b', SRV_HTTP_HEAD_BYTES_MAX - 100,
                     "\r\n\r\n");
    struct srv_http_request *r = parse_one(s);
    ck_assert_uint_eq(strlen(srv_http_request_header(r, "x-a")), SRV_HTTP_HEAD_BYTES_MAX - 100);
    ck_assert_ptr_nonnull(srv_arena_alloc(&r->arena, 512)); /* the handler's scratch is there */
    srv_http_request_free(r);
    free(s);
}
END_TEST

START_TEST(test_head_over_limit_and_too_many_headers_are_431)
{
    char *s =
            repeat("GET / HTTP/1.1\r\nHost: x\r\nX-A: ", 'b', SRV_HTTP_HEAD_BYTES_MAX, "\r\n\r\n");
    ck_assert_int_eq(parse_error(s, strlen(s)), 431); /* observed for 1.1 MB on etcd */
    free(s);
    srv_http_parser_deinit(&parser);
    srv_http_parser_init(&parser, &limits);
    char buf[8192];
    size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < SRV_HTTP_HEADERS_MAX; i++)
        n += (size_t)sprintf(buf + n, "X-%d: v\r\n", i);
    n += (size_t)sprintf(buf + n, "\r\n");
    ck_assert_int_eq(parse_error(buf, n), 431);
}
END_TEST

/* Go reads a too-long body's rest (under 256 KiB) and keeps the connection; the request
 * comes flagged once its body has been read and dropped. */
START_TEST(test_declared_body_a_little_over_limit_is_drained_and_the_connection_goes_on)
{
    limits.body_bytes_max = 100;
    char s[512];
    int n = snprintf(s, sizeof(s),
                     "PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: 150\r\n\r\n"
                     "%0150d"
                     "GET /next HTTP/1.1\r\nHost: x\r\n\r\n",
                     0);
    for (size_t step = 1; step <= (size_t)n; step += 37) {
        srv_http_parser_deinit(&parser);
        srv_http_parser_init(&parser, &limits);
        struct srv_http_request *r[2];
        ck_assert_int_eq(feed_all(&parser, s, (size_t)n, step, r, 2), 2);
        ck_assert(r[0]->body_too_large);
        ck_assert(r[0]->keep_alive);
        ck_assert_uint_eq(r[0]->body_len, 0);
        ck_assert_str_eq(r[1]->path.ptr, "/next");
        srv_http_request_free(r[0]);
        srv_http_request_free(r[1]);
    }
}
END_TEST

START_TEST(test_declared_body_far_over_limit_is_delivered_at_once_flagged)
{
    limits.body_bytes_max = 100;
    char s[256];
    snprintf(s, sizeof(s), "PUT /k HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nvalue=",
             100 + 1 + SRV_HTTP_DRAIN_BYTES_MAX);
    size_t used = 0;
    ck_assert_int_eq(srv_http_parser_feed(&parser, s, strlen(s), &used), SRV_HTTP_READY);
    struct srv_http_request *r = srv_http_parser_take(&parser);
    ck_assert(r->body_too_large);
    ck_assert(!r->keep_alive);
    ck_assert_uint_eq(r->body_len, 0);
    srv_http_request_free(r);
    ck_assert_int_eq(srv_http_parser_feed(&parser, "xx", 2, &used), K_ESTOPPED);
}
END_TEST

START_TEST(test_chunked_body_a_little_over_limit_is_drained)
{
    limits.body_bytes_max = 10;
    const char *s = "PUT /k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n"
                    "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
    struct srv_http_request *r[2];
    ck_assert_int_eq(feed_all(&parser, s, strlen(s), 3, r, 2), 2);
    ck_assert(r[0]->body_too_large);
    ck_assert(r[0]->keep_alive);
    ck_assert_ptr_null(r[0]->body);
    ck_assert_str_eq(r[1]->path.ptr, "/next");
    srv_http_request_free(r[0]);
    srv_http_request_free(r[1]);
}
END_TEST

START_TEST(test_chunked_body_far_over_limit_is_delivered_flagged_and_stops)
{
    limits.body_bytes_max = 10;
    size_t big = 10 + SRV_HTTP_DRAIN_BYTES_MAX + 2; /* one byte more than Go drains */
    char head[160];
    int hn = snprintf(head, sizeof(head),
                      "PUT /k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%zx\r\n",
                      big);
    char *s = malloc((size_t)hn + big + 16);
    memcpy(s, head, (size_t)hn);
    memset(s + hn, 'a', big);
    memcpy(s + hn + big, "\r\n0\r\n\r\n", 7);
    size_t len = (size_t)hn + big + 7;
    size_t used = 0;
    ck_assert_int_eq(srv_http_parser_feed(&parser, s, len, &used), SRV_HTTP_READY);
    struct srv_http_request *t = srv_http_parser_take(&parser);
    ck_assert(t->body_too_large);
    ck_assert(!t->keep_alive);
    ck_assert_ptr_null(t->body);
    srv_http_request_free(t);
    free(s);
}
END_TEST

START_TEST(test_partial_request_reports_progress_state)
{
    size_t used = 0;
    ck_assert(!srv_http_parser_in_message(&parser));
    ck_assert_int_eq(srv_http_parser_feed(&parser, "GET / HT", 8, &used), SRV_HTTP_NEED_MORE);
    ck_assert(srv_http_parser_in_message(&parser));
    ck_assert(!srv_http_parser_in_body(&parser));
    const char *rest = "TP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nab";
    ck_assert_int_eq(srv_http_parser_feed(&parser, rest, strlen(rest), &used), SRV_HTTP_NEED_MORE);
    ck_assert(srv_http_parser_in_body(&parser));
    ck_assert_ptr_nonnull(srv_http_parser_pending_head(&parser));
    ck_assert_int_eq(srv_http_parser_feed(&parser, "cd", 2, &used), SRV_HTTP_READY);
    ck_assert(!srv_http_parser_in_message(&parser));
    srv_http_request_free(srv_http_parser_take(&parser));
}
END_TEST

START_TEST(test_unknown_method_is_kept_like_go_so_the_router_can_answer_405)
{
    /* observed: etcd answers "get /v2/keys/foo" with 405, as Go takes any token as a method */
    const char s[] = "get /v2/keys/foo HTTP/1.1\r\nHost: x\r\n\r\n"
                     "\r\nFOO-BAR /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab"
                     "PATCH /y HTTP/1.1\r\nHost: x\r\n\r\n";
    for (size_t step = 1; step <= sizeof(s); step += 3) {
        struct srv_http_parser p;
        srv_http_parser_init(&p, &limits);
        struct srv_http_request *r[3];
        ck_assert_int_eq(feed_all(&p, s, sizeof(s) - 1, step, r, 3), 3);
        ck_assert_str_eq(r[0]->method, "get");
        ck_assert_int_eq(r[0]->method_id, SRV_HTTP_METHOD_OTHER);
        ck_assert_str_eq(r[0]->path.ptr, "/v2/keys/foo");
        ck_assert_str_eq(r[1]->method, "FOO-BAR");
        ck_assert_mem_eq(r[1]->body, "ab", 2);
        ck_assert_str_eq(r[2]->method, "PATCH");
        ck_assert_int_eq(r[2]->method_id, HTTP_PATCH);
        for (int i = 0; i < 3; i++)
            srv_http_request_free(r[i]);
        srv_http_parser_deinit(&p);
    }
}
END_TEST

Suite *test_http_parser_suite(void)
{
    Suite *s = suite_create("http_parser");
    TCase *tc = tcase_create("parser");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_good_request_is_parsed_into_fields);
    tcase_add_test(tc, test_request_split_at_every_byte_boundary_parses_the_same);
    tcase_add_test(tc, test_pipelined_requests_come_out_one_at_a_time_in_order);
    tcase_add_test(tc, test_chunked_body_is_decoded_and_trailers_dropped);
    tcase_add_test(tc, test_http10_keeps_alive_only_when_asked);
    tcase_add_test(tc, test_absolute_form_target_gives_its_path);
    tcase_add_test(tc, test_missing_host_in_http11_is_400_like_go);
    tcase_add_test(tc, test_malformed_requests_are_400);
    tcase_add_test(tc, test_unsupported_transfer_encoding_is_501);
    tcase_add_test(tc, test_other_expectation_is_417_and_100_continue_is_noted);
    tcase_add_test(tc, test_http2_version_is_505);
    tcase_add_test(tc, test_request_line_of_4096_bytes_is_accepted_and_longer_targets_are_414);
    tcase_add_test(tc, test_head_over_limit_and_too_many_headers_are_431);
    tcase_add_test(tc, test_head_just_under_the_limit_fits_the_request_arena);
    tcase_add_test(tc,
                   test_declared_body_a_little_over_limit_is_drained_and_the_connection_goes_on);
    tcase_add_test(tc, test_declared_body_far_over_limit_is_delivered_at_once_flagged);
    tcase_add_test(tc, test_chunked_body_a_little_over_limit_is_drained);
    tcase_add_test(tc, test_chunked_body_far_over_limit_is_delivered_flagged_and_stops);
    tcase_add_test(tc, test_partial_request_reports_progress_state);
    tcase_add_test(tc, test_unknown_method_is_kept_like_go_so_the_router_can_answer_405);
    suite_add_tcase(s, tc);
    return s;
}
