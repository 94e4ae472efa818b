/* src/core/log.h: the operator log, on stderr, one line per message:
 *   2026-11-22T05:09:00.123Z info  [ctl] ready: 3 apps, 6 listeners
 * Diagnostics only; the event log for users is a separate stream (analytics/evlog). */
#ifndef CORE_LOG_H
#define CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN, LOG_INFO, LOG_DEBUG };

void log_set_level(enum log_level level);
/* Parses "error", "warn", "info", "debug". Returns 0 or -EINVAL. */
int log_parse_level(const char *s, enum log_level *out);
/* Names this thread in every line it logs ("ctl", "w0"); at most 15 characters. */
void log_set_thread_name(const char *name);
bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

/* Copies at most <cap> - 1 bytes of <s> into <buf> (cap > 0) for quoting in a
 * message, with control characters replaced by '?', so that every message stays on
 * one line. Returns <buf>. */
const char *log_printable(const char *s, char *buf, size_t cap);

/* A token bucket for messages a remote peer can trigger: at most <burst> messages,
 * refilled at one per <interval_ms>. Owned by one thread. */
struct log_ratelimit {
    uint64_t last_ms;
    uint32_t tokens;
    uint32_t suppressed; /* messages dropped since the last one let through */
};

/* Returns true when a message may be logged now (<now_ms> from the caller's loop). */
bool log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_ms, uint32_t burst,
                         uint32_t interval_ms);

#endif
