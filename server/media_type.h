/* Content-Type parsing as Go's mime.ParseMediaType does it, because etcd reports its errors
 * verbatim ("mime: invalid media parameter" is a 210 Invalid POST form, spec §4.2) and
 * matches the media type case-insensitively with any parameters. Not here: what a server
 * does with a type (form.c). */
#ifndef KETCH_SERVER_MEDIA_TYPE_H
#define KETCH_SERVER_MEDIA_TYPE_H

#include <stdbool.h>
#include <stddef.h>

#include "base/assert.h"
#include "server/url.h"

/* Parses a Content-Type value v[0..len). On success returns 0 and sets *type to the media
 * type ("type/subtype" or a lone token) inside v, surrounding white space trimmed, case
 * as sent (compare with srv_media_type_is). On failure returns K_EPROTO with err (at least
 * 64 bytes) set to Go's message: "mime: no media type", "mime: expected slash after first
 * token", "mime: expected token after slash", "mime: unexpected content after media
 * subtype", "mime: duplicate parameter name", or "mime: invalid media parameter"; for the
 * last one *type is still set, as Go still returns the media type with that error. */
K_MUST_USE int srv_media_type_parse(const char *v, size_t len, struct srv_str *type, char *err);

/* True if type equals want (lower case, NUL-terminated) ignoring ASCII case. */
bool srv_media_type_is(struct srv_str type, const char *want);

#endif
