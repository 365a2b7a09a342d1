/* Member URL parsing with etcd's rules and error texts (spec §7.2). */
#include "member_url.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"

static int url_fail(char *err, size_t err_len, const char *what, const char *text)
{
    snprintf(err, err_len, "%s: %s", what, text);
    return K_ECONFIG;
}

int srv_url_parse(const char *text, struct srv_url *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof(*out));
    size_t len = strlen(text);
    if (len == 0 || len >= sizeof(out->text)) return url_fail(err, err_len, "bad URL", text);
    memcpy(out->text, text, len + 1);
    const char *sep = strstr(text, "://");
    static const char *const schemes[] = { "http", "https", "unix", "unixs" };
    size_t scheme_len = sep ? (size_t)(sep - text) : 0;
    bool known = false;
    for (size_t i = 0; sep && i < K_ARRAY_LEN(schemes); i++) {
        known |= strlen(schemes[i]) == scheme_len && strncmp(text, schemes[i], scheme_len) == 0;
    }
    if (!known) {
        return url_fail(err, err_len, "URL scheme must be http, https, unix, or unixs", text);
    }
    memcpy(out->scheme, text, scheme_len);
    out->tls = out->scheme[scheme_len - 1] == 's';
    const char *hostport = sep + 3;
    const char *slash = strchr(hostport, '/');
    if (slash && slash[1] != '\0')
        return url_fail(err, err_len, "URL must not contain a path", text);
    size_t hp_len = slash ? (size_t)(slash - hostport) : strlen(hostport);
    const char *colon;
    const char *host = hostport;
    size_t host_len;
    if (hp_len > 0 && hostport[0] == '[') {
        const char *close = memchr(hostport, ']', hp_len);
        if (!close || close + 1 >= hostport + hp_len || close[1] != ':') {
            return url_fail(err, err_len, "URL address does not have the form \"host:port\"", text);
        }
        host = hostport + 1;
        host_len = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = NULL;
        for (const char *p = hostport; p < hostport + hp_len; p++) {
            if (*p == ':') colon = p;
        }
        if (!colon) {
            return url_fail(err, err_len, "URL address does not have the form \"host:port\"", text);
        }
        host_len = (size_t)(colon - hostport);
    }
    const char *port_start = colon + 1;
    size_t port_len = (size_t)(hostport + hp_len - port_start);
    char port_text[8];
    if (port_len == 0 || port_len >= sizeof(port_text) || host_len >= sizeof(out->host)) {
        return url_fail(err, err_len, "URL address does not have the form \"host:port\"", text);
    }
    memcpy(port_text, port_start, port_len);
    port_text[port_len] = '\0';
    char *end;
    unsigned long port = strtoul(port_text, &end, 10);
    if (*end != '\0' || port_text[0] < '0' || port_text[0] > '9' || port > 65535) {
        return url_fail(err, err_len, "URL has an invalid port", text);
    }
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (uint16_t)port;
    return 0;
}

int srv_url_list_parse(const char *text, struct srv_url_list *out, char *err, size_t err_len)
{
    memset(out, 0, sizeof(*out));
    const char *p = text;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        char item[SRV_URL_TEXT_BYTES_MAX];
        if (n >= sizeof(item)) return url_fail(err, err_len, "URL too long", text);
        memcpy(item, p, n);
        item[n] = '\0';
        if (out->count == SRV_URL_LIST_MAX) return url_fail(err, err_len, "too many URLs", text);
        int rc = srv_url_parse(item, &out->urls[out->count], err, err_len);
        if (rc < 0) return rc;
        out->count++;
        if (!comma) break;
        p = comma + 1;
    }
    return 0;
}

bool srv_url_list_equal_unordered(const struct srv_url_list *a, const struct srv_url_list *b)
{
    if (a->count != b->count) return false;
    for (size_t i = 0; i < a->count; i++) {
        bool found = false;
        for (size_t j = 0; j < b->count && !found; j++) {
            found = strcmp(a->urls[i].text, b->urls[j].text) == 0;
        }
        if (!found) return false;
    }
    return true;
}
