/* Query strings and application/x-www-form-urlencoded bodies decoded into an ordered list of
 * (name, value) fields, exactly by Go's url.ParseQuery rules (etcd reads its parameters
 * through Go's Request.ParseForm; spec/etcd-v2-api.md §4.2):
 *   - fields are separated by '&' only; a field containing ';' is an error ("invalid
 *     semicolon separator in query") and is skipped; empty fields are skipped;
 *   - name and value split at the first '='; no '=' means an empty value;
 *   - both are percent-decoded with '+' as space; a bad escape is an error naming it
 *     (`invalid URL escape "%zz"`) and that field is skipped; parsing goes on and the FIRST
 *     error is the one reported, as Go does;
 *   - lookup returns the first value of a name (Go's FormValue); absent and empty differ.
 * srv_form_parse_request() is Go's ParseForm: which methods read the body, Content-Type
 * matching, the 10 MiB limit and which error wins. Not here: what the fields mean (kv/). */
#ifndef KETCH_SERVER_FORM_H
#define KETCH_SERVER_FORM_H

#include <stdbool.h>
#include <stddef.h>

#include "base/assert.h"
#include "server/arena.h"
#include "server/url.h"

/* Fields per form; more is an error ("http: too many form fields"), bounding the memory a
 * body of '&'-separated names can make us spend. Go has no such limit. */
enum { SRV_FORM_FIELDS_MAX = 4096 };

/* Go's maxFormSize: a urlencoded body longer than this is "http: POST too large". */
#define SRV_FORM_BODY_BYTES_MAX ((size_t)10 << 20)

/* Room for any error text of this module (Go's messages; mime errors included). */
enum { SRV_FORM_ERROR_BYTES = 96 };

struct srv_form_field {
    struct srv_str name;  /* decoded, NUL-terminated in the arena */
    struct srv_str value; /* decoded, NUL-terminated in the arena */
};

/* An ordered list of fields; all memory belongs to the arena it was parsed into. */
struct srv_form {
    struct srv_form_field *fields;
    size_t count;
};

/* Parses s[0..len) (a raw query string without '?', or a form body) and appends its fields to
 * form (initialise with {0}). Returns 0; K_EPROTO with err (SRV_FORM_ERROR_BYTES) set to Go's
 * first error when some field was bad (the good fields are still appended, as Go keeps them);
 * K_ELIMIT when the arena budget is spent or SRV_FORM_FIELDS_MAX is passed (err says which). */
K_MUST_USE int srv_form_parse(struct srv_arena *arena, struct srv_form *form, const char *s,
                              size_t len, char *err);

/* Returns the first field named name (NUL-terminated), or NULL if absent. Borrowed from form. */
const struct srv_form_field *srv_form_get(const struct srv_form *form, const char *name);

/* What Go's ParseForm needs to know about a request. All borrowed. */
struct srv_form_source {
    const char *method;       /* "PUT", "GET", ... (upper case, as sent) */
    struct srv_str query;     /* raw query string */
    const char *content_type; /* first Content-Type header value, or NULL */
    struct srv_str body;      /* the body as received */
    bool body_too_large;      /* the body passed the server's limit and was not kept */
};

/* Go's Request.ParseForm: for POST, PUT and PATCH a body whose media type is
 * application/x-www-form-urlencoded is parsed first (over SRV_FORM_BODY_BYTES_MAX, or when
 * body_too_large: "http: POST too large"); a Content-Type that does not parse is an error
 * (e.g. "mime: invalid media parameter"); then the query is appended, so body values come
 * first and win srv_form_get. Other media types and other methods leave the body alone.
 * Returns 0 or K_EPROTO with err set to the first error (the body's before the query's);
 * fields parsed before or besides an error are kept, as in Go. K_ELIMIT as srv_form_parse. */
K_MUST_USE int srv_form_parse_request(struct srv_arena *arena, const struct srv_form_source *src,
                                      struct srv_form *form, char *err);

#endif
