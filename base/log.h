/* Log lines for people: "2026-11-22T20:13:31.123Z INFO  server: listening on ..." to stderr.
 * Quiet by default (info and above); --log-level debug shows more. Not for raft/ or kv apply,
 * which are pure and report through return values. */
#ifndef KETCH_BASE_LOG_H
#define KETCH_BASE_LOG_H

enum k_log_level {
    K_LOG_DEBUG = 0,
    K_LOG_INFO = 1,
    K_LOG_WARN = 2,
    K_LOG_ERROR = 3,
};

/* Sets the lowest level that is printed (process-wide; set once at start-up). */
void k_log_set_level(enum k_log_level level);

/* Parses "debug", "info", "warn" (or "warning"), "error"; returns 0 or K_ECONFIG. */
int k_log_level_parse(const char *name, enum k_log_level *out);

/* Sets a prefix printed before every line (e.g. the member name); copied, may be NULL. */
void k_log_set_prefix(const char *prefix);

/* Prints one line at level from component (e.g. "wal") if level is enabled. */
void k_log(enum k_log_level level, const char *component, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

#define k_log_debug(comp, ...) k_log(K_LOG_DEBUG, (comp), __VA_ARGS__)
#define k_log_info(comp, ...)  k_log(K_LOG_INFO, (comp), __VA_ARGS__)
#define k_log_warn(comp, ...)  k_log(K_LOG_WARN, (comp), __VA_ARGS__)
#define k_log_error(comp, ...) k_log(K_LOG_ERROR, (comp), __VA_ARGS__)

#endif
