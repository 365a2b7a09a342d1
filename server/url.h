/* URL encoding as Go's net/url does it, byte for byte, because etcd's answers depend on it:
 * percent-decoding of the request path and of query/form components (with the same bad-escape
 * error text), Go's path escaping (for Location headers), and splitting a request-target into
 * path and query the way url.ParseRequestURI does. Not here: form fields (form.c), path
 * cleaning (path.c). */
#ifndef KETCH_SERVER_URL_H
#define KETCH_SERVER_URL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/assert.h"
#include "server/arena.h"

/* A byte string that is not NUL-terminated unless said so; may contain NUL bytes. */
struct srv_str {
    const char *ptr;
    size_t len;
};

enum srv_unescape_mode {
    SRV_UNESCAPE_PATH,  /* url.PathUnescape: '+' stays '+' */
    SRV_UNESCAPE_QUERY, /* url.QueryUnescape: '+' becomes ' ' */
};

/* Room for Go's message `invalid URL escape "%zz"`, its quoted escape at most 3 input bytes
 * each written as \xHH or \u00HH. */
enum { SRV_URL_ERROR_BYTES = 64 };

/* Percent-decodes in[0..len) as Go's unescape does in mode: every '%' must be followed by two
 * hex digits, else nothing is decoded and the error names the first bad escape. On success
 * *out is a NUL-terminated copy in arena (NULs from %00 included, *out_len excludes the
 * terminator) and 0 is returned. Errors: K_EPROTO with err (if not NULL, at least
 * SRV_URL_ERROR_BYTES) set to Go's text, e.g. `invalid URL escape "%zz"`; K_ELIMIT when the
 * arena budget is spent. */
K_MUST_USE int srv_url_unescape(struct srv_arena *arena, const char *in, size_t len,
                                enum srv_unescape_mode mode, char **out, size_t *out_len,
                                char *err);

/* Writes Go's `invalid URL escape ` + strconv.Quote(bad) into err (SRV_URL_ERROR_BYTES). */
void srv_url_escape_error(const char *bad, size_t bad_len, char *err);

/* Escapes in[0..len) for a URL path as Go's url.URL.EscapedPath does without a RawPath:
 * letters, digits, "-_.~" and "$&+,/:;=@" stay, everything else becomes %XX (upper case).
 * Returns a NUL-terminated string in arena, or NULL when the budget is spent. */
K_MUST_USE char *srv_url_escape_path(struct srv_arena *arena, const char *in, size_t len);

/* A request-target split as Go's url.ParseRequestURI splits it. Pointers are into the
 * target given to srv_url_split_target (borrowed). */
struct srv_url_target {
    struct srv_str path_raw; /* still escaped; "*" for the asterisk form */
    struct srv_str query;    /* after the first '?', without it; empty if none */
    bool has_query;          /* a '?' was present (even with nothing after it) */
};

/* Splits an origin-form ("/a/b?x=1"), absolute-form ("http://host/a?x") or asterisk-form
 * ("*") request-target. '#' is not special in a request (Go keeps it in the path). Returns 0,
 * or K_EPROTO when Go rejects it: control bytes (< 0x20, 0x7f), a target that is neither of
 * the forms, or an empty one. */
K_MUST_USE int srv_url_split_target(const char *target, size_t len, struct srv_url_target *out);

#endif
