/* etcd's JSON bytes for v2 events and errors (spec/etcd-v2-api.md §4.3, §6), as Go's
 * encoding/json writes them: fields in struct order, empty fields omitted, strings escaped
 * with HTML escaping ('<' '>' '&' as \u003c \u003e \u0026), U+2028/U+2029 escaped, each
 * invalid UTF-8 byte as \ufffd, control characters as \n \r \t or \u00XX (Go 1.19 has no \b
 * or \f), and "expiration" in RFC 3339 with up to 9 fraction digits, trailing zeros dropped,
 * always UTC "Z" (time.RFC3339Nano). Bodies end with "\n" as etcd's do. */
#ifndef KETCH_KV_JSON_H
#define KETCH_KV_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "kv/error.h"
#include "kv/event.h"

/* Output goes into base's growable buffer (base/buf.h); the caller frees it with
 * k_buf_free. */

/* Appends the event body (`{"action":...,"node":{...},"prevNode":{...}}` + "\n"). With
 * no_value_on_success, a set, create, update or compareAndSwap is written as just
 * `{"action":"set"}` + "\n" (spec §4.9); other actions are unaffected. */
void kv_json_event(const struct kv_event *ev, bool no_value_on_success, struct k_buf *out);

/* Appends `{"errorCode":100,"message":"Key not found","cause":"/foo","index":7}` + "\n";
 * "cause" is omitted when empty. */
void kv_json_error(const struct kv_error *err, struct k_buf *out);

/* Appends s as a JSON string literal with Go's escaping (quotes included). */
void kv_json_string(struct k_buf *out, const char *s, size_t len);

/* Appends t (Unix ns) as Go's time.RFC3339Nano in UTC, without quotes. */
void kv_json_time(struct k_buf *out, int64_t unix_ns);

#endif
