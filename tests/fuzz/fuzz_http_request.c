/* libFuzzer target: bytes -> the request parser (server/http.h), including pipelined requests
 * and reads split anywhere. The first byte picks the split pattern; the rest is the stream.
 * Properties checked besides "no crash, no sanitizer report, no leak":
 *   - feeding the stream whole or in small pieces gives the same requests and outcome
 *     (success, error or stop; not always the same error status, see below);
 *   - every request satisfies the parser's bounds;
 *   - form, path and media-type decoding of each request stay within its arena. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "base/err.h"
#include "server/form.h"
#include "server/http.h"
#include "server/path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { REQUESTS_MAX = 64 };

struct outcome {
    int count;
    int final_rc;     /* last feed result: NEED_MORE, K_EPROTO or K_ESTOPPED */
    int error_status; /* when K_EPROTO */
    uint64_t digest[REQUESTS_MAX];
};

static uint64_t digest_bytes(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h * 31 + n;
}

static uint64_t digest_request(const struct srv_http_request *r)
{
    uint64_t h = 14695981039346656037ull;
    h = digest_bytes(h, r->method, strlen(r->method));
    h = digest_bytes(h, r->target.ptr, r->target.len);
    h = digest_bytes(h, r->path.ptr, r->path.len);
    for (size_t i = 0; i < r->header_count; i++) {
        h = digest_bytes(h, r->headers[i].name.ptr, r->headers[i].name.len);
        h = digest_bytes(h, r->headers[i].value.ptr, r->headers[i].value.len);
    }
    if (r->body != NULL) h = digest_bytes(h, r->body, r->body_len);
    return h * 7 + (uint64_t)r->keep_alive * 2 + r->body_too_large;
}

/* What a handler would do with a request: decode its form and clean its path. */
static void exercise(struct srv_http_request *r, const struct srv_http_limits *lim)
{
    k_assert(r->target.len <= lim->url_bytes_max);
    k_assert(r->header_count <= lim->headers_max);
    k_assert(r->body_len <= lim->body_bytes_max);
    k_assert(!r->body_too_large || r->body == NULL);
    k_assert(r->path.ptr[r->path.len] == '\0');
    struct srv_form_source src = {
        .method = r->method,
        .query = r->query,
        .content_type = r->content_type,
        .body = { r->body, r->body_len },
        .body_too_large = r->body_too_large,
    };
    struct srv_form form = { 0 };
    char err[SRV_FORM_ERROR_BYTES];
    int rc = srv_form_parse_request(&r->arena, &src, &form, err);
    k_assert(rc == 0 || rc == K_EPROTO || rc == K_ELIMIT);
    k_assert(form.count <= SRV_FORM_FIELDS_MAX);
    char *clean;
    size_t clean_len;
    if (srv_path_clean(&r->arena, r->path.ptr, r->path.len, &clean, &clean_len) == 0) {
        k_assert(clean[0] == '/');
        k_assert(clean_len <= r->path.len + 2);
    }
}

static void run(const char *s, size_t len, size_t step, const struct srv_http_limits *lim,
                struct outcome *out)
{
    struct srv_http_parser p;
    srv_http_parser_init(&p, lim);
    memset(out, 0, sizeof(*out));
    size_t off = 0;
    int rc = SRV_HTTP_NEED_MORE;
    while (off < len && rc >= 0) {
        size_t piece = len - off < step ? len - off : step;
        size_t done = 0;
        while (done < piece) {
            size_t used = 0;
            rc = srv_http_parser_feed(&p, s + off + done, piece - done, &used);
            k_assert(used <= piece - done);
            done += used;
            if (rc < 0) break;
            if (rc == SRV_HTTP_READY) {
                struct srv_http_request *r = srv_http_parser_take(&p);
                k_assert(r != NULL);
                if (out->count < REQUESTS_MAX) out->digest[out->count] = digest_request(r);
                out->count++;
                bool last = r->body_too_large || r->upgrade;
                exercise(r, lim);
                srv_http_request_free(r);
                rc = SRV_HTTP_NEED_MORE;
                if (last) {
                    rc = K_ESTOPPED; /* as conn.c does: nothing after it is parsed */
                    break;
                }
            } else {
                k_assert(done == piece);
            }
        }
        off += piece;
    }
    out->final_rc = rc;
    if (rc == K_EPROTO) out->error_status = srv_http_parser_error(&p)->status;
    srv_http_parser_deinit(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    struct srv_http_limits lim;
    srv_http_limits_default(&lim);
    /* Small limits so the fuzzer reaches every bound with short inputs. */
    lim.url_bytes_max = 64 + (data[0] & 0x3f);
    lim.head_bytes_max = 256;
    lim.headers_max = 8;
    lim.body_bytes_max = 128;
    lim.arena_bytes = 4096;
    size_t step = 1 + (data[0] >> 6) * 3; /* 1, 4, 7 or 10 bytes per read */
    const char *s = (const char *)data + 1;
    size_t len = size - 1;
    struct outcome whole;
    struct outcome split;
    run(s, len, len == 0 ? 1 : len, &lim, &whole);
    run(s, len, step, &lim, &split);
    k_assert(whole.count == split.count);
    k_assert(whole.final_rc == split.final_rc);
    /* The error status may differ: a request with two faults (a bad URL byte in a URL that is
     * also too long) reports whichever http-parser's callback timing shows first. */
    k_assert((whole.error_status == 0) == (split.error_status == 0));
    for (int i = 0; i < whole.count && i < REQUESTS_MAX; i++)
        k_assert(whole.digest[i] == split.digest[i]);
    return 0;
}
