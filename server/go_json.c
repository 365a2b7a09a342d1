/* Go's encoding/json scanner messages; see server/go_json.h. */
#include "go_json.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

enum { DEPTH_MAX = 10000 };

struct scan {
    const unsigned char *s;
    size_t len;
    size_t pos;
    char *msg;
    size_t cap;
    bool failed;
};

/* Go's quoteChar: 'x', '\'' for a quote, strconv.Quote's escapes otherwise. */
static void quote_char(unsigned char c, char out[16])
{
    if (c == '\'') {
        snprintf(out, 16, "'\\''");
    } else if (c == '"') {
        snprintf(out, 16, "'\"'");
    } else if (c == '\n') {
        snprintf(out, 16, "'\\n'");
    } else if (c == '\r') {
        snprintf(out, 16, "'\\r'");
    } else if (c == '\t') {
        snprintf(out, 16, "'\\t'");
    } else if (c == '\\') {
        snprintf(out, 16, "'\\\\'");
    } else if (c < 0x20 || c == 0x7f) {
        snprintf(out, 16, "'\\x%02x'", c);
    } else if (c >= 0x80) {
        snprintf(out, 16, "'\\ufffd'"); /* a byte of UTF-8 alone reads as U+FFFD */
    } else {
        snprintf(out, 16, "'%c'", c);
    }
}

static bool fail_at(struct scan *sc, const char *context)
{
    if (sc->failed) return false;
    sc->failed = true;
    if (sc->pos >= sc->len) {
        snprintf(sc->msg, sc->cap, "unexpected EOF");
    } else {
        char q[16];
        quote_char(sc->s[sc->pos], q);
        snprintf(sc->msg, sc->cap, "invalid character %s %s", q, context);
    }
    return false;
}

static void skip_space(struct scan *sc)
{
    while (sc->pos < sc->len && (sc->s[sc->pos] == ' ' || sc->s[sc->pos] == '\t' ||
                                 sc->s[sc->pos] == '\n' || sc->s[sc->pos] == '\r'))
        sc->pos++;
}

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool string_lit(struct scan *sc)
{
    sc->pos++; /* the opening quote */
    while (sc->pos < sc->len) {
        unsigned char c = sc->s[sc->pos];
        if (c == '"') {
            sc->pos++;
            return true;
        }
        if (c < 0x20) return fail_at(sc, "in string literal");
        if (c == '\\') {
            sc->pos++;
            if (sc->pos >= sc->len) return fail_at(sc, "");
            c = sc->s[sc->pos];
            if (c == 'u') {
                for (int i = 0; i < 4; i++) {
                    sc->pos++;
                    if (sc->pos >= sc->len) return fail_at(sc, "");
                    if (!is_hex(sc->s[sc->pos]))
                        return fail_at(sc, "in \\u hexadecimal character escape");
                }
            } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
                return fail_at(sc, "in string escape code");
            }
        }
        sc->pos++;
    }
    return fail_at(sc, "");
}

static bool digits(struct scan *sc)
{
    while (sc->pos < sc->len && sc->s[sc->pos] >= '0' && sc->s[sc->pos] <= '9')
        sc->pos++;
    return true;
}

/* A number ends at the first byte that cannot continue it; Go then judges that byte in the
 * enclosing context, so only bytes inside the number are checked here. */
static bool number(struct scan *sc)
{
    if (sc->s[sc->pos] == '-') {
        sc->pos++;
        if (sc->pos >= sc->len) return fail_at(sc, "");
        if (sc->s[sc->pos] < '0' || sc->s[sc->pos] > '9') return fail_at(sc, "in numeric literal");
    }
    if (sc->s[sc->pos] == '0') {
        sc->pos++;
    } else {
        digits(sc);
    }
    if (sc->pos < sc->len && sc->s[sc->pos] == '.') {
        sc->pos++;
        if (sc->pos >= sc->len) return fail_at(sc, "");
        if (sc->s[sc->pos] < '0' || sc->s[sc->pos] > '9')
            return fail_at(sc, "after decimal point in numeric literal");
        digits(sc);
    }
    if (sc->pos < sc->len && (sc->s[sc->pos] == 'e' || sc->s[sc->pos] == 'E')) {
        sc->pos++;
        if (sc->pos < sc->len && (sc->s[sc->pos] == '+' || sc->s[sc->pos] == '-')) sc->pos++;
        if (sc->pos >= sc->len) return fail_at(sc, "");
        if (sc->s[sc->pos] < '0' || sc->s[sc->pos] > '9')
            return fail_at(sc, "in exponent of numeric literal");
        digits(sc);
    }
    return true;
}

static bool literal(struct scan *sc, const char *word)
{
    size_t n = strlen(word);
    for (size_t i = 0; i < n; i++, sc->pos++) {
        if (sc->pos >= sc->len) return fail_at(sc, "");
        if (sc->s[sc->pos] != (unsigned char)word[i]) {
            char ctx[48];
            snprintf(ctx, sizeof(ctx), "in literal %s (expecting '%c')", word, word[i]);
            return fail_at(sc, ctx);
        }
    }
    return true;
}

static bool value(struct scan *sc, int depth);

static bool object(struct scan *sc, int depth)
{
    sc->pos++;
    skip_space(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == '}') {
        sc->pos++;
        return true;
    }
    for (;;) {
        if (sc->pos >= sc->len || sc->s[sc->pos] != '"')
            return fail_at(sc, "looking for beginning of object key string");
        if (!string_lit(sc)) return false;
        skip_space(sc);
        if (sc->pos >= sc->len || sc->s[sc->pos] != ':') return fail_at(sc, "after object key");
        sc->pos++;
        if (!value(sc, depth + 1)) return false;
        skip_space(sc);
        if (sc->pos < sc->len && sc->s[sc->pos] == '}') {
            sc->pos++;
            return true;
        }
        if (sc->pos >= sc->len || sc->s[sc->pos] != ',')
            return fail_at(sc, "after object key:value pair");
        sc->pos++;
        skip_space(sc);
    }
}

static bool array(struct scan *sc, int depth)
{
    sc->pos++;
    skip_space(sc);
    if (sc->pos < sc->len && sc->s[sc->pos] == ']') {
        sc->pos++;
        return true;
    }
    for (;;) {
        if (!value(sc, depth + 1)) return false;
        skip_space(sc);
        if (sc->pos < sc->len && sc->s[sc->pos] == ']') {
            sc->pos++;
            return true;
        }
        if (sc->pos >= sc->len || sc->s[sc->pos] != ',') return fail_at(sc, "after array element");
        sc->pos++;
    }
}

static bool value(struct scan *sc, int depth)
{
    skip_space(sc);
    if (depth > DEPTH_MAX) {
        snprintf(sc->msg, sc->cap, "exceeded max depth");
        sc->failed = true;
        return false;
    }
    if (sc->pos >= sc->len) return fail_at(sc, "");
    unsigned char c = sc->s[sc->pos];
    switch (c) {
    case '{':
        return object(sc, depth);
    case '[':
        return array(sc, depth);
    case '"':
        return string_lit(sc);
    case 't':
        return literal(sc, "true");
    case 'f':
        return literal(sc, "false");
    case 'n':
        return literal(sc, "null");
    default:
        if (c == '-' || (c >= '0' && c <= '9')) return number(sc);
        return fail_at(sc, "looking for beginning of value");
    }
}

bool srv_go_json_syntax_error(const char *s, size_t len, char *msg, size_t cap)
{
    struct scan sc = { .s = (const unsigned char *)s, .len = len, .msg = msg, .cap = cap };
    skip_space(&sc);
    if (sc.pos >= len) {
        snprintf(msg, cap, "EOF");
        return true;
    }
    return !value(&sc, 0);
}
