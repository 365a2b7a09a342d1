/* The error texts of Go's encoding/json Decoder for JSON that does not parse, which etcd
 * returns verbatim in 400 answers to /v2/members (spec §7.2): "EOF" for an empty body,
 * "unexpected EOF" for one cut short, "invalid character 'b' looking for beginning of object
 * key string" and the like at the first bad byte. Like Decoder.Decode, only the first JSON
 * value is read: what follows it is not looked at. */
#ifndef KETCH_SERVER_GO_JSON_H
#define KETCH_SERVER_GO_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Returns true and writes Go's message to msg if s[0..len) does not start with one complete
 * JSON value; false if it does. */
bool srv_go_json_syntax_error(const char *s, size_t len, char *msg, size_t cap);

#endif
