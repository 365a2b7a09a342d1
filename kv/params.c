/* etcd's v2 request validation (kv/params.h), check by check in parseKeyRequest's order. */
#include "kv/params.h"

#include <string.h>

#include "base/err.h"
#include "base/goparse.h"

bool kv_params_bool(const char *s, size_t len, bool *out)
{
    return k_go_parse_bool(s, len, out);
}

bool kv_params_uint(const char *s, size_t len, uint64_t *out)
{
    return k_go_parse_uint10(s, len, out);
}

/* The first pair named name, or NULL (Go's r.Form[name][0]). */
static const struct kv_param *find(const struct kv_param *p, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < n; i++) {
        if (p[i].name_len == len && memcmp(p[i].name, name, len) == 0) return &p[i];
    }
    return NULL;
}

/* getBool: absent is false; present must parse. */
static bool get_bool(const struct kv_param *p, size_t n, const char *name, bool *out)
{
    const struct kv_param *x = find(p, n, name);
    *out = false;
    return x == NULL || kv_params_bool(x->value, x->value_len, out);
}

static bool get_uint(const struct kv_param *p, size_t n, const char *name, uint64_t *out)
{
    const struct kv_param *x = find(p, n, name);
    *out = 0;
    return x == NULL || kv_params_uint(x->value, x->value_len, out);
}

static int invalid(struct kv_error *err, enum kv_ecode code, const char *cause)
{
    return kv_error_set(err, code, 0, "%s", cause);
}

/* Steps 2 to 7: indexes, booleans, wait on GET only, prevValue, noValueOnSuccess. */
static int check_flags(enum kv_http_method method, const struct kv_param *p, size_t n,
                       struct kv_parsed *out, struct kv_error *err)
{
    if (!get_uint(p, n, "prevIndex", &out->req.prev_index))
        return invalid(err, KV_ECODE_INDEX_NAN, "invalid value for \"prevIndex\"");
    if (!get_uint(p, n, "waitIndex", &out->wait_index))
        return invalid(err, KV_ECODE_INDEX_NAN, "invalid value for \"waitIndex\"");
    bool dir = false;
    if (!get_bool(p, n, "recursive", &out->recursive))
        return invalid(err, KV_ECODE_INVALID_FIELD, "invalid value for \"recursive\"");
    if (!get_bool(p, n, "sorted", &out->sorted))
        return invalid(err, KV_ECODE_INVALID_FIELD, "invalid value for \"sorted\"");
    if (!get_bool(p, n, "wait", &out->wait))
        return invalid(err, KV_ECODE_INVALID_FIELD, "invalid value for \"wait\"");
    if (!get_bool(p, n, "dir", &dir))
        return invalid(err, KV_ECODE_INVALID_FIELD, "invalid value for \"dir\"");
    if (!get_bool(p, n, "quorum", &out->quorum))
        return invalid(err, KV_ECODE_INVALID_FIELD, "invalid value for \"quorum\"");
    if (!get_bool(p, n, "stream", &out->stream))
        return invalid(err, KV_ECODE_INVALID_FIELD, "invalid value for \"stream\"");
    out->req.dir = dir;
    if (out->wait && method != KV_HTTP_GET)
        return invalid(err, KV_ECODE_INVALID_FIELD, "\"wait\" can only be used with GET requests");
    const struct kv_param *pv = find(p, n, "prevValue");
    if (pv != NULL && pv->value_len == 0)
        return invalid(err, KV_ECODE_PREV_VALUE_REQUIRED, "\"prevValue\" cannot be empty");
    if (pv != NULL) {
        out->req.prev_value.data = (uint8_t *)pv->value;
        out->req.prev_value.len = pv->value_len;
    }
    if (!get_bool(p, n, "noValueOnSuccess", &out->no_value_on_success))
        return invalid(err, KV_ECODE_INVALID_FIELD, "invalid value for \"noValueOnSuccess\"");
    return 0;
}

/* Steps 8 to 12: ttl, prevExist, refresh and its requirements. */
static int check_ttl(const struct kv_param *p, size_t n, struct kv_parsed *out,
                     struct kv_error *err)
{
    const struct kv_param *ttl = find(p, n, "ttl");
    if (ttl != NULL && ttl->value_len > 0) {
        if (!kv_params_uint(ttl->value, ttl->value_len, &out->req.ttl_s))
            return invalid(err, KV_ECODE_TTL_NAN, "invalid value for \"ttl\"");
        out->req.has_ttl = true;
    }
    const struct kv_param *pe = find(p, n, "prevExist");
    if (pe != NULL) {
        bool b;
        if (!kv_params_bool(pe->value, pe->value_len, &b))
            return invalid(err, KV_ECODE_INVALID_FIELD, "invalid value for prevExist");
        out->req.prev_exist = b ? KVPB__KV_PREV_EXIST__KV_PREV_EXIST_TRUE
                                : KVPB__KV_PREV_EXIST__KV_PREV_EXIST_FALSE;
    }
    const struct kv_param *rf = find(p, n, "refresh");
    if (rf != NULL) {
        bool b;
        if (!kv_params_bool(rf->value, rf->value_len, &b))
            return invalid(err, KV_ECODE_INVALID_FIELD, "invalid value for refresh");
        out->req.refresh = b;
        if (b && out->req.value.len > 0)
            return invalid(err, KV_ECODE_REFRESH_VALUE, "A value was provided on a refresh");
        if (b && !out->req.has_ttl)
            return invalid(err, KV_ECODE_REFRESH_TTL_REQUIRED, "No TTL value set");
    }
    return 0;
}

int kv_params_parse(enum kv_http_method method, const char *path, size_t path_len,
                    const struct kv_param *params, size_t n, int64_t now_ns, struct kv_parsed *out,
                    struct kv_error *err)
{
    memset(out, 0, sizeof(*out));
    kvpb__kv_request__init(&out->req);
    out->req.path.data = (uint8_t *)path;
    out->req.path.len = path_len;
    out->req.time_ns = now_ns;
    const struct kv_param *v = find(params, n, "value");
    if (v != NULL) {
        out->req.value.data = (uint8_t *)v->value;
        out->req.value.len = v->value_len;
    }
    int rc = check_flags(method, params, n, out, err);
    if (rc == 0) rc = check_ttl(params, n, out, err);
    if (rc < 0) return rc;
    out->req.recursive = out->recursive;
    out->req.sorted = out->sorted;
    switch (method) {
    case KV_HTTP_PUT:
        out->req.method = KVPB__KV_METHOD__KV_METHOD_PUT;
        break;
    case KV_HTTP_POST:
        out->req.method = KVPB__KV_METHOD__KV_METHOD_POST;
        break;
    case KV_HTTP_DELETE:
        out->req.method = KVPB__KV_METHOD__KV_METHOD_DELETE;
        break;
    case KV_HTTP_GET:
        if (out->quorum && !out->wait) out->req.method = KVPB__KV_METHOD__KV_METHOD_GET;
        break;
    case KV_HTTP_HEAD:
        out->quorum = false; /* HEAD never goes through raft (spec §4.11) */
        break;
    }
    return 0;
}
