/* etcd's ID formulas on OpenSSL's SHA-1; see server/member_id.h. */
#include "member_id.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

static uint64_t be64_load(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* SHA-1 through EVP (the SHA1_* calls are deprecated in OpenSSL 3). Failures here mean
 * the crypto library is broken, not bad input: assert. */
static EVP_MD_CTX *sha1_begin(void)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    k_assert(ctx != NULL);
    k_assert(EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1);
    return ctx;
}

static void sha1_add(EVP_MD_CTX *ctx, const void *data, size_t len)
{
    k_assert(EVP_DigestUpdate(ctx, data, len) == 1);
}

static uint64_t sha1_end_first8(EVP_MD_CTX *ctx)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    k_assert(EVP_DigestFinal_ex(ctx, digest, &len) == 1);
    k_assert(len == 20);
    EVP_MD_CTX_free(ctx);
    return be64_load(digest);
}

static int url_text_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

uint64_t srv_member_id_compute(const struct srv_url_list *peer_urls, const char *salt)
{
    const char *sorted[SRV_URL_LIST_MAX];
    for (size_t i = 0; i < peer_urls->count; i++)
        sorted[i] = peer_urls->urls[i].text;
    qsort(sorted, peer_urls->count, sizeof(sorted[0]), url_text_cmp);
    EVP_MD_CTX *ctx = sha1_begin();
    for (size_t i = 0; i < peer_urls->count; i++)
        sha1_add(ctx, sorted[i], strlen(sorted[i]));
    sha1_add(ctx, salt, strlen(salt));
    return sha1_end_first8(ctx);
}

static int id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t srv_cluster_id_compute(const uint64_t *member_ids, size_t count)
{
    uint64_t *sorted = k_xcalloc(count, sizeof(*sorted));
    memcpy(sorted, member_ids, count * sizeof(*sorted));
    qsort(sorted, count, sizeof(*sorted), id_cmp);
    EVP_MD_CTX *ctx = sha1_begin();
    for (size_t i = 0; i < count; i++) {
        unsigned char be[8];
        for (int b = 0; b < 8; b++)
            be[b] = (unsigned char)(sorted[i] >> (56 - 8 * b));
        sha1_add(ctx, be, sizeof(be));
    }
    free(sorted);
    return sha1_end_first8(ctx);
}

void srv_id_format(uint64_t id, char out[17])
{
    snprintf(out, 17, "%llx", (unsigned long long)id);
}

int srv_id_parse(const char *text, uint64_t *out)
{
    size_t len = strlen(text);
    if (len == 0 || len > 16) return K_ECONFIG;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        unsigned d;
        if (c >= '0' && c <= '9') {
            d = (unsigned)(c - '0');
        } else if (c >= 'a' && c <= 'f') {
            d = (unsigned)(c - 'a' + 10);
        } else if (c >= 'A' && c <= 'F') {
            d = (unsigned)(c - 'A' + 10);
        } else {
            return K_ECONFIG;
        }
        v = (v << 4) | d;
    }
    *out = v;
    return 0;
}
