/* libFuzzer target: bytes -> the query/form, percent, path and media-type decoders
 * (server/form.h, url.h, path.h, media_type.h). Properties checked besides "no crash":
 *   - path escaping round-trips through path unescaping;
 *   - path cleaning is idempotent and always rooted;
 *   - decoded fields never exceed the input and lookups find the first of a name. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/assert.h"
#include "base/err.h"
#include "server/form.h"
#include "server/media_type.h"
#include "server/path.h"
#include "server/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_form(struct srv_arena *a, const char *s, size_t len)
{
    struct srv_form form = { 0 };
    char err[SRV_FORM_ERROR_BYTES];
    int rc = srv_form_parse(a, &form, s, len, err);
    k_assert(rc == 0 || rc == K_EPROTO || rc == K_ELIMIT);
    if (rc != 0) k_assert(memchr(err, '\0', sizeof(err)) != NULL);
    size_t total = 0;
    for (size_t i = 0; i < form.count; i++) {
        const struct srv_form_field *f = &form.fields[i];
        k_assert(f->name.ptr[f->name.len] == '\0');
        total += f->name.len + f->value.len;
        if (memchr(f->name.ptr, '\0', f->name.len) == NULL) {
            const struct srv_form_field *g = srv_form_get(&form, f->name.ptr);
            k_assert(g != NULL && g <= f);
        }
    }
    k_assert(total <= len);
}

static void check_path(struct srv_arena *a, const char *s, size_t len)
{
    char *dec;
    size_t dec_len;
    char msg[SRV_URL_ERROR_BYTES];
    if (srv_url_unescape(a, s, len, SRV_UNESCAPE_PATH, &dec, &dec_len, msg) != 0) return;
    k_assert(dec_len <= len);
    char *esc = srv_url_escape_path(a, dec, dec_len);
    if (esc == NULL) return;
    char *back;
    size_t back_len;
    if (srv_url_unescape(a, esc, strlen(esc), SRV_UNESCAPE_PATH, &back, &back_len, msg) == 0) {
        k_assert(back_len == dec_len);
        k_assert(memcmp(back, dec, dec_len) == 0);
    }
    char *c1;
    size_t l1;
    char *c2;
    size_t l2;
    if (srv_path_clean(a, dec, dec_len, &c1, &l1) != 0) return;
    k_assert(l1 >= 1 && c1[0] == '/');
    if (srv_path_clean(a, c1, l1, &c2, &l2) != 0) return;
    k_assert(l1 == l2 && memcmp(c1, c2, l1) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct srv_arena a;
    srv_arena_init(&a, 1 << 20);
    check_form(&a, s, size);
    check_path(&a, s, size);
    struct srv_str type;
    char err[64];
    if (srv_media_type_parse(s, size, &type, err) == 0) {
        k_assert(type.len > 0 && type.ptr >= s && type.ptr + type.len <= s + size);
    }
    struct srv_url_target t;
    if (srv_url_split_target(s, size, &t) == 0) {
        k_assert(t.path_raw.ptr >= s && t.path_raw.ptr + t.path_raw.len <= s + size);
    }
    srv_arena_deinit(&a);
    return 0;
}
