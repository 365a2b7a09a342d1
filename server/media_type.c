/* Go's mime.ParseMediaType (mediatype.go: checkMediaTypeDisposition, consumeToken,
 * consumeValue, consumeMediaParam), written fresh; parameters are checked, not kept. */
#include "media_type.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "base/err.h"

enum { MT_PARAMS_MAX = 32 }; /* distinct parameter names remembered for the duplicate check */

static bool mt_is_tspecial(unsigned char c)
{
    return c != '\0' && strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

static bool mt_is_token_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && !mt_is_tspecial(c);
}

/* Length of the Unicode white space (Go's unicode.IsSpace) at s, 0 if none. */
static size_t mt_space_len(const unsigned char *s, size_t len)
{
    if (len == 0) return 0;
    if (s[0] == ' ' || (s[0] >= '\t' && s[0] <= '\r')) return 1;
    if (len >= 2 && s[0] == 0xc2 && (s[1] == 0x85 || s[1] == 0xa0)) return 2;
    if (len >= 3 && s[0] == 0xe1 && s[1] == 0x9a && s[2] == 0x80) return 3; /* U+1680 */
    if (len >= 3 && s[0] == 0xe2 && s[1] == 0x80 &&
        (s[2] <= 0x8a || s[2] == 0xa8 || s[2] == 0xa9 || s[2] == 0xaf) && s[2] >= 0x80)
        return 3; /* U+2000..200A, U+2028, U+2029, U+202F */
    if (len >= 3 && s[0] == 0xe2 && s[1] == 0x81 && s[2] == 0x9f) return 3; /* U+205F */
    if (len >= 3 && s[0] == 0xe3 && s[1] == 0x80 && s[2] == 0x80) return 3; /* U+3000 */
    return 0;
}

static size_t mt_skip_space(const char *v, size_t i, size_t len)
{
    size_t n;
    while (i < len && (n = mt_space_len((const unsigned char *)v + i, len - i)) > 0)
        i += n;
    return i;
}

/* Go trims trailing Unicode space too; walk forward remembering the last non-space end. */
static size_t mt_trim_end(const char *v, size_t start, size_t end)
{
    size_t last = start;
    size_t i = start;
    while (i < end) {
        size_t n = mt_space_len((const unsigned char *)v + i, end - i);
        if (n == 0) {
            i++;
            last = i;
        } else {
            i += n;
        }
    }
    return last;
}

static size_t mt_token_end(const char *v, size_t i, size_t len)
{
    while (i < len && mt_is_token_char((unsigned char)v[i]))
        i++;
    return i;
}

/* Go's consumeValue: a token or a quoted-string. Returns the index after it, or start when
 * there is no valid value (Go's "rest unchanged"). *empty tells an empty quoted string. */
static size_t mt_value_end(const char *v, size_t start, size_t len, bool *empty)
{
    *empty = true;
    if (start >= len) return start;
    if (v[start] != '"') {
        size_t end = mt_token_end(v, start, len);
        *empty = end == start;
        return end;
    }
    size_t out = 0;
    for (size_t i = start + 1; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c == '"') {
            *empty = out == 0;
            return i + 1;
        }
        if (c == '\\' && i + 1 < len && mt_is_tspecial((unsigned char)v[i + 1])) {
            i++;
        } else if (c == '\r' || c == '\n') {
            return start;
        }
        out++;
    }
    return start; /* no closing quote */
}

static int mt_fail(char *err, const char *msg)
{
    strcpy(err, msg);
    return K_EPROTO;
}

/* Go's checkMediaTypeDisposition on v[start..end). */
static int mt_check_type(const char *v, size_t start, size_t end, char *err)
{
    size_t i = mt_token_end(v, start, end);
    if (i == start) return mt_fail(err, "mime: no media type");
    if (i == end) return 0;
    if (v[i] != '/') return mt_fail(err, "mime: expected slash after first token");
    size_t sub = i + 1;
    i = mt_token_end(v, sub, end);
    if (i == sub) return mt_fail(err, "mime: expected token after slash");
    if (i != end) return mt_fail(err, "mime: unexpected content after media subtype");
    return 0;
}

int srv_media_type_parse(const char *v, size_t len, struct srv_str *type, char *err)
{
    const char *semi = memchr(v, ';', len);
    size_t base_end = semi == NULL ? len : (size_t)(semi - v);
    size_t t_start = mt_skip_space(v, 0, base_end);
    size_t t_end = mt_trim_end(v, t_start, base_end);
    int rc = mt_check_type(v, t_start, t_end, err);
    if (rc < 0) return rc;
    *type = (struct srv_str){ v + t_start, t_end - t_start };

    struct srv_str seen[MT_PARAMS_MAX];
    size_t nseen = 0;
    size_t i = base_end;
    while (i < len) {
        i = mt_skip_space(v, i, len);
        if (i >= len) break;
        /* consumeMediaParam: ';' name '=' value, white space allowed around each. */
        size_t p = i;
        bool ok = false;
        size_t name_start = 0;
        size_t name_end = 0;
        if (v[p] == ';') {
            p = mt_skip_space(v, p + 1, len);
            name_start = p;
            name_end = mt_token_end(v, p, len);
            p = mt_skip_space(v, name_end, len);
            if (name_end > name_start && p < len && v[p] == '=') {
                p = mt_skip_space(v, p + 1, len);
                bool empty;
                size_t value_end = mt_value_end(v, p, len, &empty);
                ok = !(empty && value_end == p);
                p = value_end;
            }
        }
        if (!ok) {
            /* A lone trailing ';' (with white space) is not an error. */
            size_t s = mt_skip_space(v, i, len);
            if (s < len && v[s] == ';' && mt_skip_space(v, s + 1, len) == len) break;
            return mt_fail(err, "mime: invalid media parameter");
        }
        struct srv_str name = { v + name_start, name_end - name_start };
        for (size_t k = 0; k < nseen; k++) {
            if (seen[k].len == name.len && strncasecmp(seen[k].ptr, name.ptr, name.len) == 0) {
                *type = (struct srv_str){ NULL, 0 }; /* Go returns no type with this error */
                return mt_fail(err, "mime: duplicate parameter name");
            }
        }
        if (nseen < MT_PARAMS_MAX) seen[nseen++] = name;
        i = p;
    }
    return 0;
}

bool srv_media_type_is(struct srv_str type, const char *want)
{
    size_t n = strlen(want);
    return type.len == n && strncasecmp(type.ptr, want, n) == 0;
}
