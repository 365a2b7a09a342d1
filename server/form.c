/* Go's url.ParseQuery and Request.ParseForm (net/url/url.go, net/http/request.go), written
 * fresh. Fields land in one arena array sized by a first counting pass, so a form costs
 * its decoded bytes plus one srv_form_field per field. */
#include "form.h"

#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "server/media_type.h"

static void form_keep_first_error(char *err, bool *have, const char *msg)
{
    if (*have) return;
    *have = true;
    snprintf(err, SRV_FORM_ERROR_BYTES, "%s", msg);
}

/* Counts the non-empty '&'-separated fields of s, an upper bound of what parse appends. */
static size_t form_count_fields(const char *s, size_t len)
{
    size_t n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '&') {
            n += i > start;
            start = i + 1;
        }
    }
    return n;
}

static int form_grow(struct srv_arena *arena, struct srv_form *form, size_t extra, char *err)
{
    if (extra == 0) return 0;
    if (form->count + extra > SRV_FORM_FIELDS_MAX) {
        snprintf(err, SRV_FORM_ERROR_BYTES, "http: too many form fields (more than %d)",
                 SRV_FORM_FIELDS_MAX);
        return K_ELIMIT;
    }
    struct srv_form_field *f = srv_arena_alloc(arena, (form->count + extra) * sizeof(*f));
    if (f == NULL) {
        snprintf(err, SRV_FORM_ERROR_BYTES, "http: form larger than the request memory budget");
        return K_ELIMIT;
    }
    if (form->count > 0) memcpy(f, form->fields, form->count * sizeof(*f));
    form->fields = f;
    return 0;
}

int srv_form_parse(struct srv_arena *arena, struct srv_form *form, const char *s, size_t len,
                   char *err)
{
    int rc = form_grow(arena, form, form_count_fields(s, len), err);
    if (rc < 0) return rc;
    bool have_err = false;
    size_t start = 0;
    while (start < len) {
        const char *amp = memchr(s + start, '&', len - start);
        size_t end = amp == NULL ? len : (size_t)(amp - s);
        const char *field = s + start;
        size_t flen = end - start;
        start = end + 1;
        if (memchr(field, ';', flen) != NULL) {
            form_keep_first_error(err, &have_err, "invalid semicolon separator in query");
            continue;
        }
        if (flen == 0) continue;
        const char *eq = memchr(field, '=', flen);
        size_t nlen = eq == NULL ? flen : (size_t)(eq - field);
        const char *value = eq == NULL ? field + flen : eq + 1;
        size_t vlen = eq == NULL ? 0 : flen - nlen - 1;
        char msg[SRV_URL_ERROR_BYTES];
        struct srv_form_field f;
        char *name_out;
        char *value_out;
        rc = srv_url_unescape(arena, field, nlen, SRV_UNESCAPE_QUERY, &name_out, &f.name.len, msg);
        if (rc == 0) {
            f.name.ptr = name_out;
            rc = srv_url_unescape(arena, value, vlen, SRV_UNESCAPE_QUERY, &value_out, &f.value.len,
                                  msg);
            f.value.ptr = value_out;
        }
        if (rc == K_EPROTO) {
            form_keep_first_error(err, &have_err, msg);
            continue;
        }
        if (rc < 0) {
            snprintf(err, SRV_FORM_ERROR_BYTES, "http: form larger than the request memory budget");
            return rc;
        }
        k_assert(form->count < SRV_FORM_FIELDS_MAX);
        form->fields[form->count++] = f;
    }
    return have_err ? K_EPROTO : 0;
}

const struct srv_form_field *srv_form_get(const struct srv_form *form, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < form->count; i++) {
        const struct srv_form_field *f = &form->fields[i];
        if (f->name.len == n && memcmp(f->name.ptr, name, n) == 0) return f;
    }
    return NULL;
}

/* Go's parsePostForm. Returns 0, K_EPROTO (err set) or K_ELIMIT. */
static int form_parse_body(struct srv_arena *arena, const struct srv_form_source *src,
                           struct srv_form *form, char *err)
{
    const char *ct = src->content_type;
    if (ct == NULL || ct[0] == '\0') ct = "application/octet-stream";
    struct srv_str type = { NULL, 0 };
    char mt_err[SRV_FORM_ERROR_BYTES];
    int mt_rc = srv_media_type_parse(ct, strlen(ct), &type, mt_err);
    if (type.ptr == NULL || !srv_media_type_is(type, "application/x-www-form-urlencoded")) {
        if (mt_rc < 0) snprintf(err, SRV_FORM_ERROR_BYTES, "%s", mt_err);
        return mt_rc;
    }
    if (src->body_too_large || src->body.len > SRV_FORM_BODY_BYTES_MAX) {
        snprintf(err, SRV_FORM_ERROR_BYTES, "http: POST too large");
        return K_EPROTO; /* Go returns here, without the body's fields */
    }
    int rc = srv_form_parse(arena, form, src->body.ptr, src->body.len, err);
    if (mt_rc < 0) {
        /* The media type error came first and wins, but fields parsed are kept (Go). */
        snprintf(err, SRV_FORM_ERROR_BYTES, "%s", mt_err);
        return rc == K_ELIMIT ? rc : mt_rc;
    }
    return rc;
}

int srv_form_parse_request(struct srv_arena *arena, const struct srv_form_source *src,
                           struct srv_form *form, char *err)
{
    int rc = 0;
    const char *m = src->method;
    if (strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0) {
        rc = form_parse_body(arena, src, form, err);
        if (rc == K_ELIMIT) return rc;
    }
    char qerr[SRV_FORM_ERROR_BYTES];
    int qrc = srv_form_parse(arena, form, src->query.ptr, src->query.len, qerr);
    if (qrc == K_ELIMIT) {
        snprintf(err, SRV_FORM_ERROR_BYTES, "%s", qerr);
        return qrc;
    }
    if (rc == 0 && qrc < 0) {
        snprintf(err, SRV_FORM_ERROR_BYTES, "%s", qerr);
        rc = qrc;
    }
    return rc;
}
