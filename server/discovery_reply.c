/* Parsing and meaning of the discovery server's replies; see server/discovery_reply.h. */
#include "discovery_reply.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

/* JSON numbers are doubles in cJSON: indexes above 2^53 would lose precision. No etcd store
 * gets there, so larger values are refused rather than rounded. */
static const double INDEX_MAX = 9007199254740992.0;

static cJSON *parse_json(const char *body, size_t len)
{
    return len ? cJSON_ParseWithLength(body, len) : NULL;
}

static bool index_of(const cJSON *obj, const char *field, uint64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > INDEX_MAX) return false;
    *out = (uint64_t)v->valuedouble;
    return (double)*out == v->valuedouble;
}

static const char *last_segment(const char *key)
{
    const char *slash = strrchr(key, '/');
    return slash ? slash + 1 : key;
}

/* Fills n from a v2 node object; *has_value says whether it carried a string value. */
static int node_from_json(const cJSON *j, struct srv_discovery_node *n, bool *has_value)
{
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(j, "key");
    if (!cJSON_IsString(key)) return K_EPROTO;
    uint64_t created = 0;
    uint64_t modified = 0;
    if (!index_of(j, "createdIndex", &created) || !index_of(j, "modifiedIndex", &modified)) {
        return K_EPROTO;
    }
    const cJSON *value = cJSON_GetObjectItemCaseSensitive(j, "value");
    *has_value = cJSON_IsString(value);
    n->key = k_xstrdup(key->valuestring);
    n->name = k_xstrdup(last_segment(key->valuestring));
    n->value = k_xstrdup(*has_value ? value->valuestring : "");
    n->created_index = created;
    n->modified_index = modified;
    return 0;
}

static void node_free(struct srv_discovery_node *n)
{
    free(n->key);
    free(n->name);
    free(n->value);
    n->key = n->name = n->value = NULL;
}

static int node_cmp(const void *a, const void *b)
{
    const struct srv_discovery_node *x = a;
    const struct srv_discovery_node *y = b;
    if (x->created_index != y->created_index) return x->created_index < y->created_index ? -1 : 1;
    return strcmp(x->name, y->name);
}

int srv_discovery_registry_parse(const char *body, size_t len, struct srv_discovery_registry *reg,
                                 char *err, size_t err_len)
{
    memset(reg, 0, sizeof(*reg));
    cJSON *root = parse_json(body, len);
    if (!root) return k_errf(err, err_len, K_EPROTO, "the registry listing is not JSON");
    int rc = 0;
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(root, "node");
    if (!cJSON_IsObject(node)) {
        rc = k_errf(err, err_len, K_EPROTO, "the registry listing has no node");
        goto out;
    }
    const cJSON *children = cJSON_GetObjectItemCaseSensitive(node, "nodes");
    int n = cJSON_IsArray(children) ? cJSON_GetArraySize(children) : 0;
    if (n > SRV_DISCOVERY_NODES_MAX) {
        rc = k_errf(err, err_len, K_EPROTO, "the registry holds %d keys, more than %d", n,
                    SRV_DISCOVERY_NODES_MAX);
        goto out;
    }
    reg->nodes = k_xcalloc(n > 0 ? (size_t)n : 1, sizeof(*reg->nodes));
    const cJSON *child;
    cJSON_ArrayForEach(child, children)
    {
        struct srv_discovery_node *dst = &reg->nodes[reg->count];
        bool has_value;
        if (node_from_json(child, dst, &has_value) < 0) {
            rc = k_errf(err, err_len, K_EPROTO, "the registry listing has a malformed node");
            goto out;
        }
        /* etcd skips the _config dir by its base name (discovery.go, checkCluster). */
        if (strcmp(dst->name, "_config") == 0) {
            node_free(dst);
            continue;
        }
        reg->count++;
    }
    qsort(reg->nodes, reg->count, sizeof(*reg->nodes), node_cmp);
out:
    cJSON_Delete(root);
    return rc;
}

void srv_discovery_registry_free(struct srv_discovery_registry *reg)
{
    for (size_t i = 0; i < reg->count; i++)
        node_free(&reg->nodes[i]);
    free(reg->nodes);
    memset(reg, 0, sizeof(*reg));
}

bool srv_discovery_registry_add(struct srv_discovery_registry *reg,
                                const struct srv_discovery_node *n)
{
    for (size_t i = 0; i < reg->count; i++) {
        if (strcmp(reg->nodes[i].name, n->name) == 0) return false;
    }
    reg->nodes = k_xrealloc(reg->nodes, (reg->count + 1) * sizeof(*reg->nodes));
    struct srv_discovery_node *dst = &reg->nodes[reg->count++];
    dst->key = k_xstrdup(n->key);
    dst->name = k_xstrdup(n->name);
    dst->value = k_xstrdup(n->value);
    dst->created_index = n->created_index;
    dst->modified_index = n->modified_index;
    qsort(reg->nodes, reg->count, sizeof(*reg->nodes), node_cmp);
    return true;
}

bool srv_discovery_registry_full(const struct srv_discovery_registry *reg, uint64_t size,
                                 const char *self_name)
{
    k_assert(size > 0);
    for (size_t i = 0; i < reg->count && i < size; i++) {
        if (strcmp(reg->nodes[i].name, self_name) == 0) return false;
    }
    return reg->count >= size;
}

/* Counts the distinct names of the "name=URL" pairs in value, adding new ones to names.
 * Returns K_ECONFIG if a pair is not name=URL. */
static int collect_names(const char *value, char **names, size_t *names_n, size_t names_cap)
{
    const char *p = value;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        if (!eq || eq == p) return K_ECONFIG;
        char url_text[SRV_URL_TEXT_BYTES_MAX];
        size_t url_len = n - (size_t)(eq - p) - 1;
        if (url_len >= sizeof(url_text)) return K_ECONFIG;
        memcpy(url_text, eq + 1, url_len);
        url_text[url_len] = '\0';
        struct srv_url url;
        char why[256];
        if (srv_url_parse(url_text, &url, why, sizeof(why)) < 0) return K_ECONFIG;
        char *name = k_xstrndup(p, (size_t)(eq - p));
        bool known = false;
        for (size_t i = 0; i < *names_n && !known; i++)
            known = strcmp(names[i], name) == 0;
        if (known || *names_n == names_cap) {
            free(name);
        } else {
            names[(*names_n)++] = name;
        }
        if (!comma) return 0;
        p = comma + 1;
    }
}

int srv_discovery_registry_join(const struct srv_discovery_registry *reg, uint64_t size, char **out,
                                char *err, size_t err_len)
{
    k_assert(size > 0 && size <= SRV_DISCOVERY_SIZE_MAX);
    k_assert(reg->count >= size);
    *out = NULL;
    char *names[SRV_DISCOVERY_SIZE_MAX + 1];
    size_t names_n = 0;
    size_t total = 1;
    int rc = 0;
    for (size_t i = 0; i < size; i++) {
        total += strlen(reg->nodes[i].value) + 1;
        if (collect_names(reg->nodes[i].value, names, &names_n, K_ARRAY_LEN(names)) < 0) {
            rc = k_errf(err, err_len, K_ECONFIG,
                        "discovery: invalid URL: registration %s has \"%s\", not name=peerURL",
                        reg->nodes[i].name, reg->nodes[i].value);
            goto out;
        }
    }
    if (names_n != size) {
        rc = k_errf(err, err_len, K_ECONFIG,
                    "discovery: found duplicate name: the first %llu registrations name %zu "
                    "members (every member needs its own --name)",
                    (unsigned long long)size, names_n);
        goto out;
    }
    char *text = k_xmalloc(total);
    size_t used = 0;
    for (size_t i = 0; i < size; i++) {
        size_t n = strlen(reg->nodes[i].value);
        if (i) text[used++] = ',';
        memcpy(text + used, reg->nodes[i].value, n);
        used += n;
    }
    text[used] = '\0';
    *out = text;
out:
    for (size_t i = 0; i < names_n; i++)
        free(names[i]);
    return rc;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

char *srv_discovery_self_value(const char *name, const struct srv_url_list *peer_urls)
{
    k_assert(peer_urls->count > 0 && peer_urls->count <= SRV_URL_LIST_MAX);
    char *pairs[SRV_URL_LIST_MAX];
    size_t total = 1;
    for (size_t i = 0; i < peer_urls->count; i++) {
        size_t n = strlen(name) + 1 + strlen(peer_urls->urls[i].text) + 1;
        pairs[i] = k_xmalloc(n);
        snprintf(pairs[i], n, "%s=%s", name, peer_urls->urls[i].text);
        total += n;
    }
    qsort(pairs, peer_urls->count, sizeof(pairs[0]), str_cmp);
    char *out = k_xmalloc(total);
    size_t used = 0;
    for (size_t i = 0; i < peer_urls->count; i++) {
        used += (size_t)snprintf(out + used, total - used, "%s%s", i ? "," : "", pairs[i]);
        free(pairs[i]);
    }
    return out;
}

int srv_discovery_size_parse(const char *value, uint64_t *size, char *err, size_t err_len)
{
    uint64_t v = 0;
    bool ok = value[0] != '\0';
    for (const char *p = value; ok && *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
            ok = false;
        } else {
            v = v * 10 + (uint64_t)(*p - '0');
        }
    }
    if (!ok) {
        return k_errf(err, err_len, K_ECONFIG,
                      "discovery: size key is bad: \"%.64s\" is not a cluster size", value);
    }
    if (v == 0 || v > SRV_DISCOVERY_SIZE_MAX) {
        return k_errf(err, err_len, K_ECONFIG,
                      "discovery: size key is bad: %llu is not a cluster size ketchd can "
                      "form (1 to %d members)",
                      (unsigned long long)v, SRV_DISCOVERY_SIZE_MAX);
    }
    *size = v;
    return 0;
}

int srv_discovery_event_parse(const char *body, size_t len, struct srv_discovery_event *ev,
                              char *err, size_t err_len)
{
    memset(ev, 0, sizeof(*ev));
    cJSON *root = parse_json(body, len);
    if (!root) return k_errf(err, err_len, K_EPROTO, "the watch answered with something not JSON");
    int rc = 0;
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(root, "action");
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(root, "node");
    if (!cJSON_IsString(action) || !cJSON_IsObject(node) ||
        node_from_json(node, &ev->node, &ev->node_has_value) < 0) {
        rc = k_errf(err, err_len, K_EPROTO, "the watch answered with a malformed event");
        goto out;
    }
    snprintf(ev->action, sizeof(ev->action), "%s", action->valuestring);
out:
    cJSON_Delete(root);
    return rc;
}

void srv_discovery_event_deinit(struct srv_discovery_event *ev)
{
    node_free(&ev->node);
}

bool srv_discovery_v2_error_parse(const char *body, size_t len, struct srv_discovery_v2_error *e)
{
    memset(e, 0, sizeof(*e));
    cJSON *root = parse_json(body, len);
    if (!root) return false;
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "errorCode");
    bool ok = cJSON_IsNumber(code);
    if (ok) {
        e->code = code->valueint;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "message");
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(root, "cause");
        snprintf(e->message, sizeof(e->message), "%s", cJSON_IsString(m) ? m->valuestring : "");
        snprintf(e->cause, sizeof(e->cause), "%s", cJSON_IsString(c) ? c->valuestring : "");
        if (!index_of(root, "index", &e->index)) e->index = 0;
    }
    cJSON_Delete(root);
    return ok;
}

void srv_discovery_v2_error_format(const struct srv_discovery_v2_error *e, char *out,
                                   size_t out_len)
{
    snprintf(out, out_len, "%d: %s (%s) [%llu]", e->code, e->message, e->cause,
             (unsigned long long)e->index);
}

/* Describes a reply that is not what was hoped for: etcd's error text when the body is a v2
 * error, else the status and a hint that this is not an etcd keys endpoint. */
static void describe(long status, const char *body, size_t len, char *out, size_t out_len)
{
    struct srv_discovery_v2_error e;
    if (srv_discovery_v2_error_parse(body, len, &e)) {
        srv_discovery_v2_error_format(&e, out, out_len);
        return;
    }
    snprintf(out, out_len, "HTTP %ld with a body that is not an etcd v2 reply", status);
}

enum srv_discovery_verdict srv_discovery_size_reply(long status, const char *body, size_t len,
                                                    const char *size_key, uint64_t *size, char *err,
                                                    size_t err_len)
{
    if (status >= 500) return SRV_DISCOVERY_RETRY;
    char why[768];
    struct srv_discovery_v2_error e;
    if (status != 200) {
        describe(status, body, len, why, sizeof(why));
        if (srv_discovery_v2_error_parse(body, len, &e) && e.code == 100) {
            k_errf(err, err_len, K_ECONFIG,
                   "discovery: size key not found: %s: %s (set it first: PUT %s with "
                   "value=<cluster size>)",
                   size_key, why, size_key);
        } else {
            k_errf(err, err_len, K_ECONFIG, "discovery: reading the size key %s: %s", size_key,
                   why);
        }
        return SRV_DISCOVERY_FAIL;
    }
    struct srv_discovery_event ev;
    int rc = srv_discovery_event_parse(body, len, &ev, why, sizeof(why));
    if (rc < 0) {
        srv_discovery_event_deinit(&ev);
        k_errf(err, err_len, K_EPROTO, "discovery: bad discovery endpoint: %s: %s", size_key, why);
        return SRV_DISCOVERY_FAIL;
    }
    if (!ev.node_has_value) {
        k_errf(err, err_len, K_ECONFIG, "discovery: size key is bad: %s is a directory", size_key);
        srv_discovery_event_deinit(&ev);
        return SRV_DISCOVERY_FAIL;
    }
    rc = srv_discovery_size_parse(ev.node.value, size, err, err_len);
    srv_discovery_event_deinit(&ev);
    return rc < 0 ? SRV_DISCOVERY_FAIL : SRV_DISCOVERY_OK;
}

enum srv_discovery_verdict srv_discovery_create_reply(long status, const char *body, size_t len,
                                                      const char *self_key, uint64_t *created_index,
                                                      char *err, size_t err_len)
{
    if (status >= 500) return SRV_DISCOVERY_RETRY;
    char why[768];
    struct srv_discovery_v2_error e;
    if (status != 201) {
        if (srv_discovery_v2_error_parse(body, len, &e) && e.code == 105) {
            k_errf(err, err_len, K_ECONFIG,
                   "discovery: found duplicate id: %s is registered already (a member with the "
                   "same peer URLs registered with this token before, such as this one before it "
                   "lost its data dir; a token bootstraps one cluster: use a new one)",
                   self_key);
        } else {
            describe(status, body, len, why, sizeof(why));
            k_errf(err, err_len, K_ECONFIG, "discovery: registering at %s: %s", self_key, why);
        }
        return SRV_DISCOVERY_FAIL;
    }
    struct srv_discovery_event ev;
    int rc = srv_discovery_event_parse(body, len, &ev, why, sizeof(why));
    if (rc == 0) *created_index = ev.node.created_index;
    srv_discovery_event_deinit(&ev);
    if (rc < 0) {
        k_errf(err, err_len, K_EPROTO, "discovery: bad discovery endpoint: %s: %s", self_key, why);
        return SRV_DISCOVERY_FAIL;
    }
    return SRV_DISCOVERY_OK;
}

enum srv_discovery_verdict srv_discovery_other_reply(long status, const char *body, size_t len,
                                                     const char *what, char *err, size_t err_len)
{
    if (status >= 500) return SRV_DISCOVERY_RETRY;
    char why[768];
    describe(status, body, len, why, sizeof(why));
    k_errf(err, err_len, K_ECONFIG, "discovery: %s: %s", what, why);
    return SRV_DISCOVERY_FAIL;
}
