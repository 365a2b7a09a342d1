/* Key paths: cleaning as etcd's store does (path.Clean(path.Join("/", p))), limits, and the
 * nodes-DB key encoding described in kv/kv_int.h (SHA-256 through libcrypto for long paths). */
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/assert.h"
#include "base/err.h"
#include "kv/kv_int.h"

/* Cleans raw into out (capacity at least raw_len + 2: cleaning never lengthens a path by more
 * than the leading '/' and the NUL). */
static void path_clean_into(const char *raw, size_t raw_len, char *out, size_t *out_len,
                            uint32_t *out_depth)
{
    size_t len = 0;
    uint32_t depth = 0;
    size_t i = 0;
    while (i < raw_len) {
        while (i < raw_len && raw[i] == '/')
            i++;
        size_t start = i;
        while (i < raw_len && raw[i] != '/')
            i++;
        size_t clen = i - start;
        if (clen == 0 || (clen == 1 && raw[start] == '.')) continue;
        if (clen == 2 && raw[start] == '.' && raw[start + 1] == '.') {
            /* ".." removes the previous component; at the root it stays at the root. */
            if (depth > 0) {
                len = kv__path_base_off(out, len) - 1;
                depth--;
            }
            continue;
        }
        out[len++] = '/';
        memcpy(out + len, raw + start, clen);
        len += clen;
        depth++;
    }
    if (len == 0) out[len++] = '/';
    out[len] = '\0';
    *out_len = len;
    *out_depth = depth;
    k_assert(out[0] == '/');
    k_assert((depth == 0) == (len == 1));
}

char *kv__path_clean_alloc(const char *raw, size_t raw_len, size_t *len, uint32_t *depth)
{
    char *out = k_xmalloc(raw_len + 2);
    path_clean_into(raw, raw_len, out, len, depth);
    return out;
}

int kv__path_clean(const struct kv_limits *limits, const char *raw, size_t raw_len,
                   struct kv__path *out, struct kv_error *err)
{
    k_assert(limits->key_bytes_max <= KV_KEY_BYTES_MAX_LIMIT);
    size_t len;
    uint32_t depth;
    char *clean = kv__path_clean_alloc(raw, raw_len, &len, &depth);
    int rc = 0;
    if (len > limits->key_bytes_max) {
        rc = kv_error_set(err, KV_ECODE_INVALID_FIELD, 0, "key is longer than %zu bytes",
                          limits->key_bytes_max);
    } else if (depth > limits->depth_max) {
        rc = kv_error_set(err, KV_ECODE_INVALID_FIELD, 0, "key has more than %u components",
                          limits->depth_max);
    } else {
        memcpy(out->buf, clean, len + 1);
        out->len = len;
        out->depth = depth;
    }
    free(clean);
    return rc;
}

size_t kv__path_prefix_len(const char *p, size_t len, uint32_t n)
{
    if (n == 0) return 0;
    uint32_t seen = 0;
    for (size_t i = 1; i < len; i++) {
        if (p[i] == '/' && ++seen == n) return i;
    }
    return len;
}

size_t kv__path_base_off(const char *p, size_t len)
{
    size_t i = len;
    while (i > 0 && p[i - 1] != '/')
        i--;
    return i;
}

bool kv__path_is_hidden(const char *p, size_t len)
{
    size_t off = kv__path_base_off(p, len);
    return off < len && p[off] == '_';
}

size_t kv__node_key(uint8_t *out, const char *p, size_t len, uint32_t depth)
{
    k_assert(len <= KV_KEY_BYTES_MAX_LIMIT);
    k_assert(depth > 0 && depth <= 0xffff);
    out[0] = (uint8_t)(depth >> 8);
    out[1] = (uint8_t)depth;
    if (len <= KV__PLAIN_PATH_MAX) {
        memcpy(out + 2, p, len);
        return len + 2;
    }
    memcpy(out + 2, p, KV__LONG_PREFIX);
    unsigned int dlen = 0;
    /* A failure here means libcrypto cannot hash at all: nothing sensible remains to do. */
    int ok = EVP_Digest(p, len, out + 2 + KV__LONG_PREFIX, &dlen, EVP_sha256(), NULL);
    k_assert(ok == 1 && dlen == KV__PATH_DIGEST_BYTES);
    return KV__LONG_KEY_BYTES;
}
