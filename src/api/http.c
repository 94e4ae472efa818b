/* src/api/http.c: libmicrohttpd glue (../shared/notes/libraries.md section 1).
 *
 * The daemon runs in "external epoll" mode: MHD_USE_EPOLL without an internal
 * polling thread. MHD keeps its own epoll set for the listening socket and its
 * connections; that set's fd goes into our control loop, so when any of them is
 * ready the loop calls MHD_run(), which does the accepts, reads, handler calls
 * and writes without blocking. MHD also has deadlines (idle connections, and a
 * zero timeout when it already knows a socket is ready, since it uses epoll in
 * edge-triggered mode internally), so after every MHD_run() the loop timer is
 * re-armed from MHD_get_timeout().
 *
 * A request reaches us in at least two calls of on_request(): the first with the
 * headers, then one per chunk of body, then a last one with no data. The body is
 * collected in a buffer capped at HTTP_MAX_BODY:
 *   - a Content-Length over the cap is answered 413 on the first call, before a
 *     single body byte is read (MHD then closes the connection instead of
 *     reading the body, and sends no "100 Continue");
 *   - a chunked body that grows past the cap is not buffered any further; the
 *     rest is skipped as it arrives and the answer is 413 (MHD 0.9.75 cannot queue
 *     a response in the middle of an upload), or the connection is cut once
 *     another HTTP_MAX_BODY has been skipped.
 *
 * The socket is bound here (SO_REUSEADDR, never SO_REUSEPORT, so a second prism
 * on the same API address fails loudly) and given to MHD. */
#include "api/http.h"

#include <errno.h>
#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "api/envelope.h"
#include "core/bug.h"
#include "core/log.h"
#include "core/loop.h"
#include "net/addr.h"
#include "net/sock.h"

struct http_server {
    struct loop *loop;
    struct MHD_Daemon *mhd;
    struct loop_io io; /* MHD's epoll fd */
    struct loop_timer timer;
    http_handler_fn fn;
    void *ctx;
};

/* One request's state, from its first on_request() call to its completion. */
struct http_rs {
    char *body; /* owned; grows up to HTTP_MAX_BODY (+1 for the NUL) */
    size_t len, cap;
    size_t skipped; /* bytes dropped after the body went over the cap */
    bool is_too_big;
    struct http_req req;
};

const char *http_query_get(const struct http_req *req, const char *key, int *count)
{
    const char *v = NULL;
    int n = 0;

    for (size_t i = 0; i < req->n_query; i++) {
        if (strcmp(req->query[i].key, key) == 0) {
            v = req->query[i].value;
            n++;
        }
    }
    if (count)
        *count = n;
    return v;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    struct MHD_Response *r;
    enum MHD_Result ret;

    json_decref(body);
    if (!text)
        return MHD_NO; /* out of memory: MHD closes the connection */
    r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_too_big(struct MHD_Connection *conn)
{
    return send_json(conn, 413,
                     envelope_error(ENVELOPE_ERR_TOO_LARGE, "request body is larger than %d bytes",
                                    HTTP_MAX_BODY));
}

static enum MHD_Result on_query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct http_req *req = cls;

    (void)kind;
    if (req->n_query == HTTP_MAX_QUERY) {
        req->has_too_many_query = true;
        return MHD_NO;
    }
    req->query[req->n_query].key = key ? key : "";
    req->query[req->n_query].value = value ? value : "";
    req->n_query++;
    return MHD_YES;
}

/* Whether the declared Content-Length is over the cap (or not a number). */
static bool declared_too_big(struct MHD_Connection *conn)
{
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end;
    unsigned long long n;

    if (!cl)
        return false;
    errno = 0;
    n = strtoull(cl, &end, 10);
    return errno != 0 || end == cl || n > HTTP_MAX_BODY;
}

static int append_body(struct http_rs *rs, const char *data, size_t len)
{
    if (rs->is_too_big || rs->len + len > HTTP_MAX_BODY) {
        rs->is_too_big = true;
        rs->skipped += len;
        free(rs->body);
        rs->body = NULL;
        rs->len = rs->cap = 0;
        return rs->skipped > HTTP_MAX_BODY ? -EMSGSIZE : 0;
    }
    if (rs->len + len + 1 > rs->cap) {
        size_t cap = rs->cap ? rs->cap : 4096;
        char *p;

        while (cap < rs->len + len + 1)
            cap *= 2;
        if (cap > HTTP_MAX_BODY + 1)
            cap = HTTP_MAX_BODY + 1;
        p = realloc(rs->body, cap);
        if (!p)
            return -ENOMEM;
        rs->body = p;
        rs->cap = cap;
    }
    memcpy(rs->body + rs->len, data, len);
    rs->len += len;
    rs->body[rs->len] = '\0';
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct http_rs *rs = *con_cls;
    struct http_resp resp = {0};

    (void)version;
    if (!rs) {
        rs = calloc(1, sizeof(*rs));
        if (!rs)
            return MHD_NO;
        *con_cls = rs;
        if (declared_too_big(conn)) {
            rs->is_too_big = true;
            return send_too_big(conn);
        }
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        int rc = append_body(rs, upload_data, *upload_data_size);

        *upload_data_size = 0;
        return rc < 0 ? MHD_NO : MHD_YES;
    }
    if (rs->is_too_big)
        return send_too_big(conn);

    rs->req.method = method;
    rs->req.path = url;
    rs->req.authorization =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, on_query_arg, &rs->req);
    rs->req.body = rs->body ? rs->body : "";
    rs->req.body_len = rs->len;
    srv->fn(srv->ctx, &rs->req, &resp);
    if (resp.text) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(strlen(resp.text), resp.text, MHD_RESPMEM_MUST_FREE);
        enum MHD_Result ret = MHD_NO;

        json_decref(resp.body);
        if (!r) {
            free(resp.text);
            return MHD_NO;
        }
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, resp.content_type);
        ret = MHD_queue_response(conn, resp.status, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (!resp.body) {
        resp.status = 500;
        resp.body = envelope_error(ENVELOPE_ERR_INTERNAL, "internal error");
    }
    return send_json(conn, resp.status, resp.body);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_rs *rs = *con_cls;

    (void)cls;
    (void)conn;
    (void)toe;
    if (rs) {
        free(rs->body);
        free(rs);
        *con_cls = NULL;
    }
}

/* MHD's own diagnostics: never request contents, so safe to log (rate-limited
 * by MHD's nature: one line per failed connection at most). <fmt> is MHD's format
 * for <ap>; the attribute says so, so that clang's -Wformat-nonliteral accepts it. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[256];

    (void)cls;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    buf[strcspn(buf, "\n")] = '\0';
    log_debug("api http: %s", buf);
}

static void schedule(struct http_server *srv)
{
    MHD_UNSIGNED_LONG_LONG ms;

    if (MHD_get_timeout(srv->mhd, &ms) == MHD_YES)
        loop_timer_arm(srv->loop, &srv->timer, ms > 60000 ? 60000 : (uint64_t)ms);
    else
        loop_timer_stop(srv->loop, &srv->timer);
}

static void run(struct http_server *srv)
{
    MHD_run(srv->mhd);
    schedule(srv);
}

static void on_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    run(container_of(io, struct http_server, io));
}

static void on_timer(struct loop *loop, struct loop_timer *t)
{
    (void)loop;
    run(container_of(t, struct http_server, timer));
}

struct http_server *http_start(struct loop *loop, const struct sockaddr_storage *addr,
                               http_handler_fn fn, void *ctx, char *err, size_t errlen)
{
    struct http_server *srv = calloc(1, sizeof(*srv));
    const union MHD_DaemonInfo *info;
    char where[ADDR_STRLEN];
    int fd, rc;

    addr_format(addr, where, sizeof(where));
    if (!srv) {
        snprintf(err, errlen, "api: out of memory");
        return NULL;
    }
    srv->loop = loop;
    srv->fn = fn;
    srv->ctx = ctx;
    loop_timer_init(&srv->timer, on_timer);
    fd = sock_listen(addr, 0, 128, NULL);
    if (fd < 0) {
        snprintf(err, errlen, "api.listen %s: %s", where, strerror(-fd));
        free(srv);
        return NULL;
    }
    srv->mhd = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG | (addr->ss_family == AF_INET6 ? MHD_USE_IPv6 : 0), 0,
        NULL, NULL, on_request, srv, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)HTTP_TIMEOUT_S, MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNS,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, srv, MHD_OPTION_END);
    if (!srv->mhd) {
        snprintf(err, errlen, "api.listen %s: libmicrohttpd would not start", where);
        close(fd);
        free(srv);
        return NULL;
    }
    info = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    rc = info ? loop_io_add(loop, &srv->io, info->epoll_fd, EPOLLIN, on_io) : -EINVAL;
    if (rc < 0) {
        snprintf(err, errlen, "api: cannot watch libmicrohttpd's epoll fd: %s", strerror(-rc));
        MHD_stop_daemon(srv->mhd);
        close(fd);
        free(srv);
        return NULL;
    }
    schedule(srv);
    return srv;
}

void http_stop(struct http_server *srv)
{
    if (!srv)
        return;
    loop_io_del(srv->loop, &srv->io);
    loop_timer_stop(srv->loop, &srv->timer);
    MHD_stop_daemon(srv->mhd); /* closes the listening socket it was given too */
    free(srv);
}
