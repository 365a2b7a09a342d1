/* Go's net/url rules (url.go: unescape, shouldEscape, ParseRequestURI), written fresh in C so
 * decoded keys, form values and error causes match etcd's byte for byte. */
#include "url.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"

static int url_unhex(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Go's unicode.IsPrint for a code point below U+0800 (the only ones a 3-byte escape can
 * hold): ASCII graphic and space; above U+009F everything assigned in Unicode 13 except the
 * space separators and format characters. */
static bool url_is_print(uint32_t r)
{
    static const uint32_t unprintable[][2] = {
        { 0x00a0, 0x00a0 }, { 0x00ad, 0x00ad }, { 0x0378, 0x0379 }, { 0x0380, 0x0383 },
        { 0x038b, 0x038b }, { 0x038d, 0x038d }, { 0x03a2, 0x03a2 }, { 0x0530, 0x0530 },
        { 0x0557, 0x0558 }, { 0x058b, 0x058c }, { 0x0590, 0x0590 }, { 0x05c8, 0x05cf },
        { 0x05eb, 0x05ee }, { 0x05f5, 0x0605 }, { 0x061c, 0x061c }, { 0x06dd, 0x06dd },
        { 0x070e, 0x070f }, { 0x074b, 0x074c }, { 0x07b2, 0x07bf }, { 0x07fb, 0x07fc },
    };
    if (r < 0x20 || r == 0x7f) return false;
    if (r < 0x7f) return true;
    if (r < 0xa0) return false;
    for (size_t i = 0; i < K_ARRAY_LEN(unprintable); i++) {
        if (r >= unprintable[i][0] && r <= unprintable[i][1]) return false;
    }
    return true;
}

/* Appends Go's strconv.Quote of s[0..len) (len <= 3) to out, which has room. */
static size_t url_quote(const unsigned char *s, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < len;) {
        unsigned char c = s[i];
        uint32_t r = c;
        size_t width = 1;
        bool valid = c < 0x80;
        if (c >= 0xc2 && c <= 0xdf && i + 1 < len && (s[i + 1] & 0xc0) == 0x80) {
            r = ((uint32_t)(c & 0x1f) << 6) | (s[i + 1] & 0x3f);
            width = 2;
            valid = true;
        }
        if (!valid) {
            o += (size_t)sprintf(out + o, "\\x%c%c", hex[c >> 4], hex[c & 15]);
        } else if (r == '"' || r == '\\') {
            out[o++] = '\\';
            out[o++] = (char)r;
        } else if (url_is_print(r)) {
            memcpy(out + o, s + i, width);
            o += width;
        } else if (r == '\a' || r == '\b' || r == '\f' || r == '\n' || r == '\r' || r == '\t' ||
                   r == '\v') {
            static const char names[] = "abtnvfr"; /* '\a' is 7 ... '\r' is 13 */
            out[o++] = '\\';
            out[o++] = names[r - '\a'];
        } else if (r < ' ' || r == 0x7f) {
            o += (size_t)sprintf(out + o, "\\x%c%c", hex[r >> 4], hex[r & 15]);
        } else {
            o += (size_t)sprintf(out + o, "\\u%04x", (unsigned)r);
        }
        i += width;
    }
    out[o++] = '"';
    out[o] = '\0';
    return o;
}

void srv_url_escape_error(const char *bad, size_t bad_len, char *err)
{
    static const char prefix[] = "invalid URL escape ";
    k_assert(bad_len <= 3);
    memcpy(err, prefix, sizeof(prefix) - 1);
    size_t n = url_quote((const unsigned char *)bad, bad_len, err + sizeof(prefix) - 1);
    k_assert(sizeof(prefix) - 1 + n < SRV_URL_ERROR_BYTES);
}

int srv_url_unescape(struct srv_arena *arena, const char *in, size_t len,
                     enum srv_unescape_mode mode, char **out, size_t *out_len, char *err)
{
    size_t escapes = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] != '%') continue;
        if (i + 2 >= len || url_unhex((unsigned char)in[i + 1]) < 0 ||
            url_unhex((unsigned char)in[i + 2]) < 0) {
            if (err != NULL) srv_url_escape_error(in + i, len - i > 3 ? 3 : len - i, err);
            return K_EPROTO;
        }
        escapes++;
        i += 2;
    }
    size_t n = len - 2 * escapes;
    char *dst = srv_arena_alloc(arena, n + 1);
    if (dst == NULL) return K_ELIMIT;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            c = (char)(url_unhex((unsigned char)in[i + 1]) << 4 |
                       url_unhex((unsigned char)in[i + 2]));
            i += 2;
        } else if (c == '+' && mode == SRV_UNESCAPE_QUERY) {
            c = ' ';
        }
        dst[o++] = c;
    }
    k_assert(o == n);
    dst[o] = '\0';
    *out = dst;
    *out_len = n;
    return 0;
}

static bool url_path_keeps(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
    return c != '\0' && strchr("-_.~$&+,/:;=@", c) != NULL;
}

char *srv_url_escape_path(struct srv_arena *arena, const char *in, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += url_path_keeps((unsigned char)in[i]) ? 1 : 3;
    char *out = srv_arena_alloc(arena, n + 1);
    if (out == NULL) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (url_path_keeps(c)) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

/* Go's getScheme: returns the scheme length (before ':'), 0 if there is none. */
static size_t url_scheme_len(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) continue;
        if ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.') {
            if (i == 0) return 0;
            continue;
        }
        return c == ':' ? i : 0;
    }
    return 0;
}

int srv_url_split_target(const char *target, size_t len, struct srv_url_target *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0) return K_EPROTO;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)target[i];
        if (c < 0x20 || c == 0x7f) return K_EPROTO;
    }
    if (len == 1 && target[0] == '*') {
        out->path_raw = (struct srv_str){ target, 1 };
        return 0;
    }
    const char *rest = target;
    size_t rest_len = len;
    size_t scheme = url_scheme_len(target, len);
    if (scheme > 0) {
        rest += scheme + 1;
        rest_len -= scheme + 1;
    }
    const char *q = memchr(rest, '?', rest_len);
    if (q != NULL) {
        out->has_query = true;
        out->query = (struct srv_str){ q + 1, rest_len - (size_t)(q - rest) - 1 };
        rest_len = (size_t)(q - rest);
    }
    if (scheme > 0) {
        /* Absolute form: "//authority" then the path (possibly empty). */
        if (rest_len < 2 || rest[0] != '/' || rest[1] != '/') return K_EPROTO;
        const char *slash = memchr(rest + 2, '/', rest_len - 2);
        size_t skip = slash == NULL ? rest_len : (size_t)(slash - rest);
        rest += skip;
        rest_len -= skip;
    } else if (rest_len == 0 || rest[0] != '/') {
        return K_EPROTO; /* Go: "invalid URI for request" */
    }
    out->path_raw = (struct srv_str){ rest, rest_len };
    return 0;
}
