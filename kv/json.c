/* Serialization of events and errors to the exact bytes etcd 3.4 (Go 1.19 encoding/json)
 * writes; see kv/json.h for the rules. */
#include "kv/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"

static void buf_str(struct k_buf *b, const char *s)
{
    k_buf_append(b, s, strlen(s));
}

static void buf_u64(struct k_buf *b, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    k_buf_append(b, num, (size_t)n);
}

static void buf_i64(struct k_buf *b, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%lld", (long long)v);
    k_buf_append(b, num, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (Go's utf8.DecodeRune rules: no overlong forms, no
 * surrogates, nothing above U+10FFFF), or 0 if the byte at s starts no valid sequence. */
static size_t utf8_valid_len(const unsigned char *s, size_t n, uint32_t *rune)
{
    unsigned char b0 = s[0];
    size_t need;
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        need = 2;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        need = 3;
        if (b0 == 0xe0) lo = 0xa0;
        if (b0 == 0xed) hi = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        need = 4;
        if (b0 == 0xf0) lo = 0x90;
        if (b0 == 0xf4) hi = 0x8f;
    } else {
        return 0;
    }
    if (n < need) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (size_t i = 2; i < need; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf) return 0;
    }
    uint32_t r = b0 & (0x7f >> need);
    for (size_t i = 1; i < need; i++)
        r = (r << 6) | (s[i] & 0x3f);
    *rune = r;
    return need;
}

void kv_json_string(struct k_buf *out, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    k_buf_append(out, "\"", 1);
    size_t start = 0; /* first byte not yet written */
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&') {
                i++;
                continue;
            }
            k_buf_append(out, s + start, i - start);
            char esc[6];
            if (c == '"' || c == '\\') {
                esc[0] = '\\';
                esc[1] = (char)c;
                k_buf_append(out, esc, 2);
            } else if (c == '\n' || c == '\r' || c == '\t') {
                esc[0] = '\\';
                esc[1] = c == '\n' ? 'n' : (c == '\r' ? 'r' : 't');
                k_buf_append(out, esc, 2);
            } else {
                memcpy(esc, "\\u00", 4);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 0xf];
                k_buf_append(out, esc, 6);
            }
            i++;
            start = i;
            continue;
        }
        uint32_t rune = 0;
        size_t n = utf8_valid_len(s + i, len - i, &rune);
        if (n == 0) {
            k_buf_append(out, s + start, i - start);
            k_buf_append(out, "\\ufffd", 6);
            i++;
            start = i;
            continue;
        }
        if (rune == 0x2028 || rune == 0x2029) {
            k_buf_append(out, s + start, i - start);
            k_buf_append(out, rune == 0x2028 ? "\\u2028" : "\\u2029", 6);
            i += n;
            start = i;
            continue;
        }
        i += n;
    }
    k_buf_append(out, s + start, len - start);
    k_buf_append(out, "\"", 1);
}

/* Days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil inverse). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    uint64_t doe = (uint64_t)(z - era * 146097);
    uint64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    uint64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    uint64_t mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yy + (*m <= 2);
}

void kv_json_time(struct k_buf *out, int64_t unix_ns)
{
    int64_t secs = unix_ns / 1000000000;
    int64_t frac = unix_ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        secs -= 1;
    }
    int64_t days = secs / 86400;
    int64_t sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t y;
    unsigned m;
    unsigned d;
    civil_from_days(days, &y, &m, &d);
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "%04lld-%02u-%02uT%02u:%02u:%02u", (long long)y, m, d,
                     (unsigned)(sod / 3600), (unsigned)(sod / 60 % 60), (unsigned)(sod % 60));
    k_buf_append(out, buf, (size_t)n);
    if (frac != 0) {
        char f[16];
        snprintf(f, sizeof(f), ".%09lld", (long long)frac);
        size_t flen = 10;
        while (f[flen - 1] == '0')
            flen--;
        k_buf_append(out, f, flen);
    }
    k_buf_append(out, "Z", 1);
}

static void json_node(struct k_buf *b, const struct kv_node *n)
{
    bool first = true;
#define SEP()                                                                                      \
    do {                                                                                           \
        if (!first) k_buf_append(b, ",", 1);                                                       \
        first = false;                                                                             \
    } while (0)
    k_buf_append(b, "{", 1);
    if (n->key != NULL && n->key_len > 0) {
        SEP();
        buf_str(b, "\"key\":");
        kv_json_string(b, n->key, n->key_len);
    }
    if (n->value != NULL) {
        SEP();
        buf_str(b, "\"value\":");
        kv_json_string(b, n->value, n->value_len);
    }
    if (n->dir) {
        SEP();
        buf_str(b, "\"dir\":true");
    }
    if (n->has_expiration) {
        SEP();
        buf_str(b, "\"expiration\":\"");
        kv_json_time(b, n->expiration_ns);
        k_buf_append(b, "\"", 1);
        if (n->ttl_s != 0) {
            buf_str(b, ",\"ttl\":");
            buf_i64(b, n->ttl_s);
        }
    }
    if (n->node_count > 0) {
        SEP();
        buf_str(b, "\"nodes\":[");
        for (size_t i = 0; i < n->node_count; i++) {
            if (i > 0) k_buf_append(b, ",", 1);
            json_node(b, &n->nodes[i]);
        }
        k_buf_append(b, "]", 1);
    }
    if (n->modified_index != 0) {
        SEP();
        buf_str(b, "\"modifiedIndex\":");
        buf_u64(b, n->modified_index);
    }
    if (n->created_index != 0) {
        SEP();
        buf_str(b, "\"createdIndex\":");
        buf_u64(b, n->created_index);
    }
#undef SEP
    k_buf_append(b, "}", 1);
}

void kv_json_event(const struct kv_event *ev, bool no_value_on_success, struct k_buf *out)
{
    buf_str(out, "{\"action\":");
    const char *name = kv_action_name(ev->action);
    kv_json_string(out, name, strlen(name));
    bool bare = no_value_on_success &&
                (ev->action == KV_ACTION_SET || ev->action == KV_ACTION_CREATE ||
                 ev->action == KV_ACTION_UPDATE || ev->action == KV_ACTION_COMPARE_AND_SWAP);
    if (!bare && ev->has_node) {
        buf_str(out, ",\"node\":");
        json_node(out, &ev->node);
    }
    if (!bare && ev->has_prev_node) {
        buf_str(out, ",\"prevNode\":");
        json_node(out, &ev->prev_node);
    }
    buf_str(out, "}\n");
}

void kv_json_error(const struct kv_error *err, struct k_buf *out)
{
    buf_str(out, "{\"errorCode\":");
    buf_u64(out, (uint64_t)err->ecode);
    buf_str(out, ",\"message\":");
    const char *msg = kv_ecode_message(err->ecode);
    kv_json_string(out, msg, strlen(msg));
    if (err->cause_len > 0) {
        buf_str(out, ",\"cause\":");
        kv_json_string(out, kv_error_cause(err), err->cause_len);
    }
    buf_str(out, ",\"index\":");
    buf_u64(out, err->index);
    buf_str(out, "}\n");
}
