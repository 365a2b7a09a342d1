/* Timestamped, levelled log lines on stderr; see base/log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "err.h"

static enum k_log_level log_level = K_LOG_INFO;
static char log_prefix[64];

void k_log_set_level(enum k_log_level level)
{
    log_level = level;
}

int k_log_level_parse(const char *name, enum k_log_level *out)
{
    static const struct {
        const char *name;
        enum k_log_level level;
    } names[] = {
        { "debug", K_LOG_DEBUG },  { "info", K_LOG_INFO },   { "warn", K_LOG_WARN },
        { "warning", K_LOG_WARN }, { "error", K_LOG_ERROR },
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return K_ECONFIG;
}

void k_log_set_prefix(const char *prefix)
{
    snprintf(log_prefix, sizeof(log_prefix), "%s", prefix ? prefix : "");
}

void k_log(enum k_log_level level, const char *component, const char *fmt, ...)
{
    if (level < log_level) return;
    static const char *const level_names[] = { "DEBUG", "INFO ", "WARN ", "ERROR" };
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[1024];
    int n = snprintf(
            line, sizeof(line), "%s%s%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", log_prefix,
            log_prefix[0] ? " " : "", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
            tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_names[level], component);
    if (n < 0 || (size_t)n >= sizeof(line)) n = 0;
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2) len = sizeof(line) - 2;
    line[len++] = '\n';
    fwrite(line, 1, len, stderr);
}
