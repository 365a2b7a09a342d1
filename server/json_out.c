/* Go's encodeState.string (encoding/json/encode.go, Go 1.19) with HTML escaping on, written
 * fresh: one pass to size, one to write, sharing the same per-byte decision. */
#include "json_out.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s (2..4), or 0 if s[0] does not start one (Go's
 * utf8.DecodeRuneInString: no overlongs, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq_len(const unsigned char *s, size_t len, uint32_t *rune)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t r;
    uint32_t min;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        r = c & 0x1f;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        r = c & 0x0f;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        r = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        r = (r << 6) | (s[i] & 0x3f);
    }
    if (r < min || r > 0x10ffff || (r >= 0xd800 && r <= 0xdfff)) return 0;
    *rune = r;
    return n;
}

/* Emits s quoted into out (when out is not NULL); returns the length either way. */
static size_t json_emit(const char *str, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t o = 0;
#define PUT(ch)                                                                                    \
    do {                                                                                           \
        if (out != NULL) out[o] = (char)(ch);                                                      \
        o++;                                                                                       \
    } while (0)
#define PUT_U(v)                                                                                   \
    do {                                                                                           \
        PUT('\\');                                                                                 \
        PUT('u');                                                                                  \
        PUT(hex[((v) >> 12) & 15]);                                                                \
        PUT(hex[((v) >> 8) & 15]);                                                                 \
        PUT(hex[((v) >> 4) & 15]);                                                                 \
        PUT(hex[(v)&15]);                                                                          \
    } while (0)
    PUT('"');
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        if (c < 0x80) {
            if (c == '"' || c == '\\') {
                PUT('\\');
                PUT(c);
            } else if (c == '\n') {
                PUT('\\');
                PUT('n');
            } else if (c == '\r') {
                PUT('\\');
                PUT('r');
            } else if (c == '\t') {
                PUT('\\');
                PUT('t');
            } else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
                PUT_U(c);
            } else {
                PUT(c);
            }
            i++;
            continue;
        }
        uint32_t r = 0;
        size_t n = utf8_seq_len(s + i, len - i, &r);
        if (n == 0) {
            PUT_U(0xfffd);
            i++;
        } else if (r == 0x2028 || r == 0x2029) {
            PUT_U(r);
            i += n;
        } else {
            for (size_t k = 0; k < n; k++)
                PUT(s[i + k]);
            i += n;
        }
    }
    PUT('"');
#undef PUT_U
#undef PUT
    return o;
}

size_t srv_json_quoted_len(const char *s, size_t len)
{
    return json_emit(s, len, NULL);
}

size_t srv_json_quote(const char *s, size_t len, char *out)
{
    return json_emit(s, len, out);
}

char *srv_json_quote_arena(struct srv_arena *arena, const char *s, size_t len)
{
    size_t n = srv_json_quoted_len(s, len);
    char *out = srv_arena_alloc(arena, n + 1);
    if (out == NULL) return NULL;
    size_t w = srv_json_quote(s, len, out);
    k_assert(w == n);
    out[n] = '\0';
    return out;
}
