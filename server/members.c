/* The member registry from the store's internal records; see server/members.h. */
#include "members.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/log.h"
#include "kv/json.h"
#include "server/member_id.h"

#define MEMBERS_PREFIX "/0/members/"
#define REMOVED_PREFIX "/0/removed_members/"

void srv_member_path(uint64_t id, const char *leaf, char *out, size_t len)
{
    char hex[17];
    srv_id_format(id, hex);
    snprintf(out, len, MEMBERS_PREFIX "%s/%s", hex, leaf);
}

void srv_member_removed_path(uint64_t id, char *out, size_t len)
{
    char hex[17];
    srv_id_format(id, hex);
    snprintf(out, len, REMOVED_PREFIX "%s", hex);
}

static struct srv_member *member_get(struct srv_members *m, uint64_t id)
{
    size_t i = 0;
    while (i < m->count && m->members[i].id < id)
        i++;
    if (i < m->count && m->members[i].id == id) return &m->members[i];
    if (m->count == SRV_MEMBERS_MAX) return NULL;
    memmove(&m->members[i + 1], &m->members[i], (m->count - i) * sizeof(m->members[0]));
    memset(&m->members[i], 0, sizeof(m->members[i]));
    m->members[i].id = id;
    m->count++;
    return &m->members[i];
}

/* Fills list from a JSON array of URL strings; false if it is not one. */
static bool url_array(const cJSON *arr, struct srv_url_list *list)
{
    list->count = 0;
    if (!cJSON_IsArray(arr)) return false;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsString(it) || list->count == SRV_URL_LIST_MAX) return false;
        char err[256];
        if (srv_url_parse(it->valuestring, &list->urls[list->count], err, sizeof(err)) < 0)
            return false;
        list->count++;
    }
    return true;
}

/* Parses an id of hex digits ending at '/' or the end; returns the bytes used, 0 if none. */
static size_t id_prefix(const char *p, size_t len, uint64_t *id)
{
    char hex[17];
    size_t n = 0;
    while (n < len && p[n] != '/' && n < 16) {
        hex[n] = p[n];
        n++;
    }
    if (n == 0 || (n < len && p[n] != '/')) return 0;
    hex[n] = '\0';
    return srv_id_parse(hex, id) == 0 && *id != 0 ? n : 0;
}

static int load_record(void *data, const char *path, size_t plen, const char *value, size_t vlen)
{
    struct srv_members *m = data;
    size_t mp = strlen(MEMBERS_PREFIX);
    size_t rp = strlen(REMOVED_PREFIX);
    uint64_t id;
    if (plen > rp && memcmp(path, REMOVED_PREFIX, rp) == 0) {
        if (id_prefix(path + rp, plen - rp, &id) == plen - rp &&
            m->removed_count < SRV_MEMBERS_REMOVED_MAX) {
            m->removed[m->removed_count++] = id;
        }
        return 0;
    }
    if (plen <= mp || memcmp(path, MEMBERS_PREFIX, mp) != 0) return 0;
    size_t n = id_prefix(path + mp, plen - mp, &id);
    if (n == 0 || mp + n >= plen) return 0;
    const char *leaf = path + mp + n + 1;
    size_t leaf_len = plen - mp - n - 1;
    cJSON *j = cJSON_ParseWithLength(value, vlen);
    bool ok = j != NULL;
    struct srv_member *mem = ok ? member_get(m, id) : NULL;
    if (mem && leaf_len == 14 && memcmp(leaf, "raftAttributes", 14) == 0) {
        ok = url_array(cJSON_GetObjectItemCaseSensitive(j, "peerURLs"), &mem->peer_urls);
    } else if (mem && leaf_len == 10 && memcmp(leaf, "attributes", 10) == 0) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
        ok = cJSON_IsString(name) &&
             url_array(cJSON_GetObjectItemCaseSensitive(j, "clientURLs"), &mem->client_urls);
        if (ok) snprintf(mem->name, sizeof(mem->name), "%s", name->valuestring);
    }
    if (!ok)
        k_log_warn("members", "skipping a member record that does not parse: %.*s", (int)plen,
                   path);
    cJSON_Delete(j);
    return 0;
}

int srv_members_load(struct kv_store *s, struct srv_members *out)
{
    memset(out, 0, sizeof(*out));
    int rc = kv_store_internal_scan(s, "/0/", load_record, out);
    if (rc < 0) return rc;
    /* attributes may come before raftAttributes was seen (or without it, for a record of a
     * member being removed): only members with peer URLs are members. */
    size_t w = 0;
    for (size_t i = 0; i < out->count; i++) {
        if (out->members[i].peer_urls.count > 0) out->members[w++] = out->members[i];
    }
    out->count = w;
    return 0;
}

const struct srv_member *srv_members_find(const struct srv_members *m, uint64_t id)
{
    for (size_t i = 0; i < m->count; i++) {
        if (m->members[i].id == id) return &m->members[i];
    }
    return NULL;
}

bool srv_members_was_removed(const struct srv_members *m, uint64_t id)
{
    for (size_t i = 0; i < m->removed_count; i++) {
        if (m->removed[i] == id) return true;
    }
    return false;
}

const struct srv_member *srv_members_find_peer_url(const struct srv_members *m, const char *url)
{
    for (size_t i = 0; i < m->count; i++) {
        const struct srv_url_list *l = &m->members[i].peer_urls;
        for (size_t j = 0; j < l->count; j++) {
            if (strcmp(l->urls[j].text, url) == 0) return &m->members[i];
        }
    }
    return NULL;
}

static void urls_json(const struct srv_url_list *l, struct k_buf *out)
{
    k_buf_puts(out, "[");
    for (size_t i = 0; i < l->count; i++) {
        if (i) k_buf_puts(out, ",");
        kv_json_string(out, l->urls[i].text, strlen(l->urls[i].text));
    }
    k_buf_puts(out, "]");
}

void srv_member_json(const struct srv_member *m, struct k_buf *out)
{
    char hex[17];
    srv_id_format(m->id, hex);
    k_buf_puts(out, "{\"id\":\"");
    k_buf_puts(out, hex);
    k_buf_puts(out, "\",\"name\":");
    kv_json_string(out, m->name, strlen(m->name));
    k_buf_puts(out, ",\"peerURLs\":");
    urls_json(&m->peer_urls, out);
    k_buf_puts(out, ",\"clientURLs\":");
    urls_json(&m->client_urls, out);
    k_buf_puts(out, "}");
}

void srv_members_json(const struct srv_members *m, struct k_buf *out)
{
    k_buf_puts(out, "{\"members\":[");
    for (size_t i = 0; i < m->count; i++) {
        if (i) k_buf_puts(out, ",");
        srv_member_json(&m->members[i], out);
    }
    k_buf_puts(out, "]}");
}

int srv_members_parse_json(const char *json, size_t len, struct srv_members *out)
{
    memset(out, 0, sizeof(*out));
    cJSON *j = cJSON_ParseWithLength(json, len);
    const cJSON *arr = j ? cJSON_GetObjectItemCaseSensitive(j, "members") : NULL;
    int rc = cJSON_IsArray(arr) ? 0 : K_EPROTO;
    const cJSON *it;
    if (rc == 0) {
        cJSON_ArrayForEach(it, arr)
        {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
            uint64_t v;
            struct srv_member *m = NULL;
            /* Id 0 is nobody, one member listed twice is no registry, and a member has a
             * peer URL (srv_members_load keeps only those). */
            if (cJSON_IsString(id) && cJSON_IsString(name) &&
                srv_id_parse(id->valuestring, &v) == 0 && v != 0 && !srv_members_find(out, v))
                m = member_get(out, v);
            if (!m || !url_array(cJSON_GetObjectItemCaseSensitive(it, "peerURLs"), &m->peer_urls) ||
                m->peer_urls.count == 0 ||
                !url_array(cJSON_GetObjectItemCaseSensitive(it, "clientURLs"), &m->client_urls)) {
                rc = K_EPROTO;
                break;
            }
            snprintf(m->name, sizeof(m->name), "%s", name->valuestring);
        }
    }
    cJSON_Delete(j);
    return rc;
}

void srv_member_raft_attributes_json(const struct srv_url_list *peer_urls, struct k_buf *out)
{
    k_buf_puts(out, "{\"peerURLs\":");
    urls_json(peer_urls, out);
    k_buf_puts(out, "}");
}

void srv_member_attributes_json(const char *name, const struct srv_url_list *client_urls,
                                struct k_buf *out)
{
    k_buf_puts(out, "{\"name\":");
    kv_json_string(out, name, strlen(name));
    k_buf_puts(out, ",\"clientURLs\":");
    urls_json(client_urls, out);
    k_buf_puts(out, "}");
}
