/* src/core/log.c: operator log lines on stderr.
 *
 * Each line is formatted into a stack buffer and written with one write(2), so
 * lines from several threads never interleave (stderr is unbuffered and a write of
 * less than PIPE_BUF bytes to a pipe is atomic). */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level g_level = LOG_INFO; /* set once at start-up, before threads */
static __thread char t_name[16] = "main";

static const char *const level_names[] = {"error", "warn ", "info ", "debug"};

void log_set_level(enum log_level level)
{
    g_level = level;
}

int log_parse_level(const char *s, enum log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};

    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -EINVAL;
}

void log_set_thread_name(const char *name)
{
    snprintf(t_name, sizeof(t_name), "%s", name);
}

bool log_enabled(enum log_level level)
{
    return level <= g_level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    size_t n;
    int k;
    va_list ap;

    if (level > g_level)
        return;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s [%s] ", ts.tv_nsec / 1000000,
                 level_names[level], t_name);
    if (k > 0)
        n += (size_t)k;
    va_start(ap, fmt);
    k = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    va_end(ap);
    if (k > 0)
        n += (size_t)k < sizeof(line) - n - 1 ? (size_t)k : sizeof(line) - n - 2;
    line[n++] = '\n';
    /* Nothing useful can be done if stderr is gone. */
    if (write(STDERR_FILENO, line, n) < 0)
        return;
}

const char *log_printable(const char *s, char *buf, size_t cap)
{
    size_t i;

    for (i = 0; s[i] && i + 1 < cap; i++)
        buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

bool log_ratelimit_allow(struct log_ratelimit *rl, uint64_t now_ms, uint32_t burst,
                         uint32_t interval_ms)
{
    if (rl->last_ms == 0) {
        rl->last_ms = now_ms;
        rl->tokens = burst;
    }
    if (interval_ms && now_ms > rl->last_ms) {
        uint64_t refill = (now_ms - rl->last_ms) / interval_ms;
        if (refill > 0) {
            rl->tokens = (uint32_t)(rl->tokens + refill > burst ? burst : rl->tokens + refill);
            rl->last_ms += refill * interval_ms;
        }
    }
    if (rl->tokens == 0) {
        rl->suppressed++;
        return false;
    }
    rl->tokens--;
    return true;
}
