/* src/analytics/evlog.c: JSON lines for the event log.
 *
 * The schema is fixed, so lines are formatted by hand into one buffer instead of
 * building a jansson tree per record (about ten times cheaper; see
 * ../shared/notes/libraries.md section 2). Strings that can carry outside bytes
 * (app ids from the API) go through a JSON escaper; addresses and numbers are
 * formatted by us and need none.
 *
 * Timestamps are RFC 3339 in UTC with milliseconds, the Logpush "rfc3339ms"
 * format; DisconnectTimestamp is null on connect records. */
#include "analytics/evlog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

#define EVLOG_BUF_BYTES (256 * 1024)
#define EVLOG_LINE_MAX 1024

struct evlog {
    int fd;
    char colo[16];
    char *buf; /* EVLOG_BUF_BYTES */
    size_t used;
    uint64_t written, lost;
    uint64_t last_error_log_ms;
    evlog_record_fn observer;
    void *observer_arg;
};

struct evlog *evlog_open(const char *path, char *err, size_t errlen)
{
    struct evlog *ev = calloc(1, sizeof(*ev));

    if (!ev || !(ev->buf = malloc(EVLOG_BUF_BYTES))) {
        snprintf(err, errlen, "out of memory");
        free(ev);
        return NULL;
    }
    ev->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (ev->fd == -1) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        free(ev->buf);
        free(ev);
        return NULL;
    }
    snprintf(ev->colo, sizeof(ev->colo), "LAB");
    return ev;
}

void evlog_close(struct evlog *ev)
{
    if (!ev)
        return;
    close(ev->fd);
    free(ev->buf);
    free(ev);
}

void evlog_set_colo(struct evlog *ev, const char *colo)
{
    snprintf(ev->colo, sizeof(ev->colo), "%s", colo);
}

void evlog_set_observer(struct evlog *ev, evlog_record_fn fn, void *arg)
{
    ev->observer = fn;
    ev->observer_arg = arg;
}

/* Appends a JSON string (with quotes). Returns the new position or 0 on overflow. */
static size_t put_str(char *buf, size_t pos, size_t len, const char *s)
{
    static const char hex[] = "0123456789abcdef";

    if (pos + 1 >= len)
        return 0;
    buf[pos++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (pos + 7 >= len)
            return 0;
        if (c == '"' || c == '\\') {
            buf[pos++] = '\\';
            buf[pos++] = (char)c;
        } else if (c < 0x20) {
            memcpy(buf + pos, "\\u00", 4);
            buf[pos + 4] = hex[c >> 4];
            buf[pos + 5] = hex[c & 15];
            pos += 6;
        } else {
            buf[pos++] = (char)c;
        }
    }
    buf[pos++] = '"';
    return pos;
}

static void format_ip(const struct event_addr *a, char *out, size_t len)
{
    if (a->family == 4)
        inet_ntop(AF_INET, a->ip, out, (socklen_t)len);
    else if (a->family == 6)
        inet_ntop(AF_INET6, a->ip, out, (socklen_t)len);
    else
        snprintf(out, len, "%s", "");
}

static void format_time(uint64_t ns, char *out, size_t len)
{
    time_t sec = (time_t)(ns / 1000000000u);
    struct tm tm;
    size_t n;

    gmtime_r(&sec, &tm);
    n = strftime(out, len, "\"%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%03uZ\"", (unsigned)((ns / 1000000u) % 1000u));
}

static const char *kind_name(uint8_t kind)
{
    static const char *const names[] = {"connect", "disconnect", "originError", "clientFiltered"};

    return kind < 4 ? names[kind] : "unknown";
}

static const char *pp_name(uint8_t pp)
{
    static const char *const names[] = {"off", "v1", "v2", "simple"};

    return pp < 4 ? names[pp] : "off";
}

size_t evlog_format(const struct event_rec *rec, const char *colo, char *buf, size_t len)
{
    char cip[INET6_ADDRSTRLEN], oip[INET6_ADDRSTRLEN], app[sizeof(rec->app_id)];
    char ts[40], cts[40], dts[40];
    const char *proto = rec->proto == EVENT_UDP ? "udp" : "tcp";
    size_t pos = 0;
    int n;

    memcpy(app, rec->app_id, sizeof(app));
    app[sizeof(app) - 1] = '\0';
    format_ip(&rec->client, cip, sizeof(cip));
    format_ip(&rec->origin, oip, sizeof(oip));
    format_time(rec->ts_ns, ts, sizeof(ts));
    format_time(rec->connect_ns, cts, sizeof(cts));
    if (rec->disconnect_ns)
        format_time(rec->disconnect_ns, dts, sizeof(dts));
    else
        snprintf(dts, sizeof(dts), "null");

    n = snprintf(buf, len, "{\"Application\":");
    if (n < 0 || (size_t)n >= len)
        return 0;
    pos = put_str(buf, (size_t)n, len, app);
    if (!pos)
        return 0;
    n = snprintf(buf + pos, len - pos,
                 ",\"ClientIP\":\"%s\",\"ClientPort\":%u,\"ClientProto\":\"%s\","
                 "\"ClientBytes\":%" PRIu64 ",\"OriginIP\":\"%s\",\"OriginPort\":%u,"
                 "\"OriginProto\":\"%s\",\"OriginBytes\":%" PRIu64 ",\"ColoCode\":",
                 cip, rec->client.port, proto, rec->client_bytes, oip, rec->origin.port, proto,
                 rec->origin_bytes);
    if (n < 0 || (size_t)n >= len - pos)
        return 0;
    pos = put_str(buf, pos + (size_t)n, len, colo);
    if (!pos)
        return 0;
    n = snprintf(buf + pos, len - pos,
                 ",\"ConnectTimestamp\":%s,\"DisconnectTimestamp\":%s,\"Event\":\"%s\","
                 "\"ProxyProtocol\":\"%s\",\"Status\":%u,\"Timestamp\":%s}\n",
                 cts, dts, kind_name(rec->kind), pp_name(rec->pp), rec->status, ts);
    if (n < 0 || (size_t)n >= len - pos)
        return 0;
    return pos + (size_t)n;
}

static void flush(struct evlog *ev, size_t n_records)
{
    size_t off = 0;

    while (off < ev->used) {
        ssize_t n = write(ev->fd, ev->buf + off, ev->used - off);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        /* Disk full or I/O error: the records are lost, traffic is not. */
        ev->lost += n_records;
        ev->written -= n_records;
        if (clock_mono_ms() - ev->last_error_log_ms > 60000 || ev->last_error_log_ms == 0) {
            ev->last_error_log_ms = clock_mono_ms();
            log_error("event log write failed: %s (%" PRIu64 " records lost so far)",
                      strerror(errno), ev->lost);
        }
        break;
    }
    ev->used = 0;
}

size_t evlog_drain(struct evlog *ev, struct event_ring *const *rings, size_t n_rings)
{
    size_t total = 0;

    for (size_t i = 0; i < n_rings; i++) {
        const struct event_rec *rec;
        size_t batch = 0;

        while ((rec = event_ring_peek(rings[i])) != NULL) {
            size_t n;
            if (EVLOG_BUF_BYTES - ev->used < EVLOG_LINE_MAX) {
                flush(ev, batch);
                batch = 0;
            }
            n = evlog_format(rec, ev->colo, ev->buf + ev->used, EVLOG_BUF_BYTES - ev->used);
            if (n > 0) {
                ev->used += n;
                ev->written++;
                batch++;
                total++;
            } else {
                ev->lost++;
            }
            if (ev->observer)
                ev->observer(ev->observer_arg, rec);
            event_ring_pop(rings[i]);
        }
        if (ev->used)
            flush(ev, batch);
    }
    return total;
}

uint64_t evlog_records_written(const struct evlog *ev)
{
    return ev->written;
}

uint64_t evlog_records_lost(const struct evlog *ev)
{
    return ev->lost;
}
