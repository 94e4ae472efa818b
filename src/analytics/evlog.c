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
#include <stdbool.h>
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

/* A line being built in a caller's buffer. Every append checks the room left and
 * keeps one byte for the terminating NUL; once something does not fit, the line is
 * marked full and the rest of the appends do nothing. */
struct line {
    char *buf;
    size_t len, pos;
    bool is_full;
};

static void put_mem(struct line *l, const char *s, size_t n)
{
    if (l->is_full || l->len - l->pos <= n) {
        l->is_full = true;
        return;
    }
    memcpy(l->buf + l->pos, s, n);
    l->pos += n;
}

#define PUT_LIT(l, s) put_mem((l), (s), sizeof(s) - 1)

static void put_u64(struct line *l, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof(tmp);

    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    put_mem(l, tmp + i, sizeof(tmp) - i);
}

/* Appends a JSON string (with quotes). */
static void put_str(struct line *l, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char esc[6] = {'\\', 'u', '0', '0'};

    PUT_LIT(l, "\"");
    for (const char *run = s;; s++) {
        unsigned char c = (unsigned char)*s;
        if (c != '\0' && c != '"' && c != '\\' && c >= 0x20)
            continue;
        put_mem(l, run, (size_t)(s - run));
        if (c == '\0')
            break;
        if (c == '"' || c == '\\') {
            esc[1] = (char)c;
            put_mem(l, esc, 2);
            esc[1] = 'u';
        } else {
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            put_mem(l, esc, 6);
        }
        run = s + 1;
    }
    PUT_LIT(l, "\"");
}

/* Appends an address as JSON text. IPv4 is formatted here: glibc's inet_ntop does it
 * with sprintf, which was about 1% of prism's CPU at 8,000 connections/s (two
 * addresses in each of two records per connection, in cpu-clock profiles). */
static void put_ip(struct line *l, const struct event_addr *a)
{
    char text[INET6_ADDRSTRLEN] = "";
    size_t n = 0;

    if (a->family == 4) {
        for (int i = 0; i < 4; i++) {
            unsigned v = a->ip[i];
            if (i > 0)
                text[n++] = '.';
            if (v >= 100)
                text[n++] = (char)('0' + v / 100);
            if (v >= 10)
                text[n++] = (char)('0' + v / 10 % 10);
            text[n++] = (char)('0' + v % 10);
        }
    } else if (a->family == 6 && inet_ntop(AF_INET6, a->ip, text, sizeof(text))) {
        n = strlen(text);
    }
    PUT_LIT(l, "\"");
    put_mem(l, text, n);
    PUT_LIT(l, "\"");
}

/* Appends "YYYY-MM-DDTHH:MM:SS.mmmZ" with quotes. The three timestamps of a record,
 * and the records of a batch, mostly fall in the same second: its text is kept
 * per thread, so gmtime and strftime run about once a second. */
static void put_time(struct line *l, uint64_t ns)
{
    static _Thread_local struct {
        time_t sec;
        size_t n;
        char text[32];
    } last = {.sec = -1};
    time_t sec = (time_t)(ns / 1000000000u);
    unsigned ms = (unsigned)((ns / 1000000u) % 1000u);
    char frac[6] = {
        '.', (char)('0' + ms / 100), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10), 'Z', '"'};

    if (sec != last.sec) {
        struct tm tm;
        gmtime_r(&sec, &tm);
        last.n = strftime(last.text, sizeof(last.text), "\"%Y-%m-%dT%H:%M:%S", &tm);
        last.sec = sec;
    }
    put_mem(l, last.text, last.n);
    put_mem(l, frac, sizeof(frac));
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
    struct line l = {.buf = buf, .len = len};
    char app[sizeof(rec->app_id)];
    const char *proto = rec->proto == EVENT_UDP ? "\"udp\"" : "\"tcp\"";
    const char *s;

    memcpy(app, rec->app_id, sizeof(app));
    app[sizeof(app) - 1] = '\0';
    PUT_LIT(&l, "{\"Application\":");
    put_str(&l, app);
    PUT_LIT(&l, ",\"ClientIP\":");
    put_ip(&l, &rec->client);
    PUT_LIT(&l, ",\"ClientPort\":");
    put_u64(&l, rec->client.port);
    PUT_LIT(&l, ",\"ClientProto\":");
    put_mem(&l, proto, 5);
    PUT_LIT(&l, ",\"ClientBytes\":");
    put_u64(&l, rec->client_bytes);
    PUT_LIT(&l, ",\"OriginIP\":");
    put_ip(&l, &rec->origin);
    PUT_LIT(&l, ",\"OriginPort\":");
    put_u64(&l, rec->origin.port);
    PUT_LIT(&l, ",\"OriginProto\":");
    put_mem(&l, proto, 5);
    PUT_LIT(&l, ",\"OriginBytes\":");
    put_u64(&l, rec->origin_bytes);
    PUT_LIT(&l, ",\"ColoCode\":");
    put_str(&l, colo);
    PUT_LIT(&l, ",\"ConnectTimestamp\":");
    put_time(&l, rec->connect_ns);
    PUT_LIT(&l, ",\"DisconnectTimestamp\":");
    if (rec->disconnect_ns)
        put_time(&l, rec->disconnect_ns);
    else
        PUT_LIT(&l, "null");
    PUT_LIT(&l, ",\"Event\":\"");
    s = kind_name(rec->kind);
    put_mem(&l, s, strlen(s));
    PUT_LIT(&l, "\",\"ProxyProtocol\":\"");
    s = pp_name(rec->pp);
    put_mem(&l, s, strlen(s));
    PUT_LIT(&l, "\",\"Status\":");
    put_u64(&l, rec->status);
    PUT_LIT(&l, ",\"Timestamp\":");
    put_time(&l, rec->ts_ns);
    PUT_LIT(&l, "}\n");
    if (l.is_full)
        return 0;
    buf[l.pos] = '\0';
    return l.pos;
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
