/* src/proxy/tunnel.c: a TCP connection through prism (DESIGN.md section 4).
 *
 *   accept -> CONNECTING --(origin connect ok)--> RELAY --(both halves closed)--> CLOSED
 *                 |  ^                               |
 *                 |  '-- refused / timed out, next   '-- error on either side --> CLOSED
 *                 '----- no origin left -----------------------------------------> CLOSED
 *
 * Both sockets are registered once, edge-triggered, for reading and writing; the
 * tunnel keeps its own "can read / can write" flags, so it never calls epoll_ctl
 * after set-up. Each direction is a pump: bytes go from the source socket into a
 * pipe and from the pipe into the destination socket with splice(2), so payload is
 * never copied through user space. A pump borrows a pipe from the worker's pool
 * only while bytes are in flight; an idle connection holds two sockets and this
 * struct, nothing else. When the destination cannot take more, the pipe stays full
 * and the pump stops reading the source: memory per connection is bounded by one
 * pipe per direction.
 *
 * A splice into the pipe asks for more than the pipe can hold (TUNNEL_SPLICE_ASK), so
 * the kernel's own bound applies: the pipe's free slots (16 in all) times the page
 * size. A slot holds one skb fragment or part of one, on loopback up to 32 KiB. Asking
 * for the pipe's byte size minus the bytes in it shrank each read by a whole fragment's
 * bytes where the fragment took one slot, so a pipe holding large fragments was
 * refilled in small reads that cut the next fragment into pieces, and reads stopped at
 * 64 KiB with slots still free. The receiver then read the forwarded bytes as if they
 * had left its cache: in cpu-clock profiles of iperf3 through prism on loopback, its
 * copy to user space cost 1.0 to 5.4 times the sender's copy from user space (2 or more
 * in 14 of 19 profiles), against 1.07 to 1.17 when the pipe decides (through HAProxy
 * 0.98 to 1.07). The pump reads into the pipe only when the pipe is empty or a splice
 * out of it has just made room: a read right after a read finds the socket empty or the
 * pipe full.
 *
 * Bulk streams. A read that fills an empty pipe to its last slot right after the
 * destination took everything the pipe held says the pipe, not either peer, is what
 * limits the stream: the pump grows that pipe to four times its slots (pipe_pool_grow;
 * at most 64 grown pipes per worker, and a grown pipe goes back to the pool grown), so
 * the stream moves in a quarter of the splices. A destination whose buffer is full
 * never takes the whole pipe, so a stalled reader does not grow one. A direction that
 * reads 64 KiB within one loop millisecond (0.5 Gbit/s) streams until a millisecond in
 * which it reads less; after a run of a tunnel with a streaming direction the worker's
 * next wait busy polls only briefly (loop_busy_poll_brief), so the kernel queues
 * more bytes for each wakeup instead of the worker spinning its whole window for the
 * next segment. Interactive exchanges keep the adaptive busy poll: they never read
 * at that rate.
 *
 * Not done: TCP_NOTSENT_LOWAT on prism's sockets, which bounds the bytes a socket holds
 * unsent, so back-pressure reaches the pipe before megabytes queue up in the kernel.
 * Everything below was measured while prism's origin sockets were paced by BBR, the
 * machine's default, before loopback origins got reno (net/sockpool.h), which moved
 * 8 streams further than any of it. On loopback, without the option, 8 iperf3 streams
 * mostly had 17.6 to 29.7 MB not yet acknowledged in prism's origin sockets (summed
 * Send-Q of `ss`, 16 runs by hand, 2026-12-07), bytes the receiver read long after they
 * were written. With 128 KiB, under 0.1 MB in 6 runs. Bench A/B (prism-b, 7 rounds,
 * 2026-12-07): 8 streams moved 1.37 times as much (better in 7 of 7 rounds), but 1
 * stream 0.94 times, at 0.69 times the Gbit/s per busy core, since the worker is woken
 * for each refill; with 512 KiB 1.23, 0.94 and 0.74 times; with 1 MiB 1.10, 0.98 and
 * 0.85 times. No size kept every 1-stream figure, so none is set. Setting it only on
 * the destination of a streaming direction while the worker had two or more streaming
 * directions in the same or the previous millisecond kept the 1-stream figures (prism-b,
 * 7 rounds each, 2026-12-07, with 128 KiB, 256 KiB and 1 MiB: 1.04, 1.00 and 1.01 times
 * the throughput, 1.05, 0.98 and 0.99 times the Gbit/s per busy core), but
 * 8 streams then moved 1.26, 1.29 and 1.08 times as much at 0.83, 0.69 and 0.95 times
 * the Gbit/s per busy core: then, the throughput asked of 8 streams, bought with the
 * CPU per byte asked of them. Left out; we read the gain as the co-located receiver
 * reading warmer bytes, which a remote origin would not see (an inference).
 *
 * The PROXY header is written into the client->origin pipe before any client byte,
 * so it reaches the origin first, in one segment, through the same path.
 *
 * Half-close: when a source reaches EOF and its pipe is empty, the destination gets
 * shutdown(SHUT_WR); the tunnel ends with status 200 once both directions are done.
 * The last direction to finish skips the shutdown: the tunnel closes at once, and
 * close() sends the FIN itself (its receive queue is empty, having read EOF).
 * Any socket error ends it at once with the status of the side and errno where it
 * was observed (tunnel_status_*); a reset is passed on as a reset.
 *
 * Dead-peer detection on the origin socket (keepalive, TCP_USER_TIMEOUT: five
 * setsockopt calls) waits until the connection has lived KEEPALIVE_DEFER_MS, on the
 * tunnel's timer: most connections are over by then and never pay for it, and a
 * longer one is watched from a moment later than its start. The client socket
 * inherits the same options from the listener at accept, at no cost.
 *
 * Origin sockets come from the worker's pool (net/sockpool.c). A tunnel that ends
 * with 200 after it shut down its origin side and read the origin's FIN leaves that
 * socket in state CLOSE with nothing queued; the pool disconnects it and hands it,
 * still registered with epoll, to the next tunnel, which saves the socket(), the
 * TCP_NODELAY setsockopt and the epoll_ctl of every short connection. Any other end
 * (a reset, an error, the origin closing first, a shutdown that close() would have
 * sent) closes the socket as before. A reused socket that already carries this
 * app's keepalive settings does not get them again. A socket for a loopback origin
 * also keeps its local port, so its next connect skips the kernel's search of the
 * ephemeral range (sock_pool_connect).
 *
 * Short exchanges skip the pipe: while a direction is not in bulk mode and its pipe
 * is empty, bytes are read with recv() into the worker's scratch buffer and sent on
 * at once, two syscalls per message instead of three splices. A short read means
 * the socket is drained (edge-triggered epoll reports the next arrival), so no
 * read is spent on EAGAIN. A read that fills the buffer switches the direction to
 * splice until the source runs dry; a streaming direction stays in splice after that,
 * since its next bytes are bulk too. Going back to a copy each time the worker caught
 * up with the sender copied 0.8 to 2.7 MiB of a 64 MiB stream in the integration test
 * (16 KiB when it stays in splice), and in a 3 s iperf3 run through the bench harness
 * it made 16,600 recv() and as many send() calls for 6.6 GB (17 when it stays). What
 * send() does not take goes into the pipe, so the back-pressure rule above is unchanged.
 *
 * Fairness: a direction stops after TUNNEL_RUN_BYTES in one run and resumes from a
 * loop task in the next iteration, after the events that came in meanwhile, so a
 * stream that both sides keep up with cannot hold the worker while other
 * connections wait (HAProxy bounds its work per wakeup the same way). The readiness
 * flags are kept, so nothing waits for an edge that already came.
 *
 * Left out on purpose: TLS (buffers instead of splice; a later issue) and retries
 * of an origin after bytes were relayed. And delaying the ACK of a client's first
 * bytes so that it rides on the reply (TCP_QUICKACK 0 on the listener, inherited at
 * accept; HAProxy's tcp-smart-accept): one segment fewer per connection, and in the
 * bench 1.01 and 1.02 times the connections/s (2026-12-08, prism-b, 11 rounds each,
 * better in 8 of 11), but a client with Nagle's algorithm on that writes its first
 * request in two parts would wait up to 40 ms for the delayed ACK before sending the
 * second, and a proxy of bytes cannot tell when a request is complete. */
#include "proxy/tunnel.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/bug.h"
#include "core/clock.h"
#include "net/addr.h"
#include "net/sock.h"
#include "net/sockpool.h"
#include "proxy/pp.h"

/* Bytes one direction reads per wakeup before giving way to the worker's other
 * connections (see the top of the file): four grown pipes. At 256 KiB a bulk run ended
 * after one read into a grown pipe and paid a wait and a task for each; 1 MiB measured
 * 21.8 and 21.1 Gbit/s per busy core on 1 stream against 20.9 and 19.2 (bench harness,
 * 5 rounds, 2 runs alternated). At 10 Gbit/s a run is under a millisecond. */
#define TUNNEL_RUN_BYTES (1024 * 1024)

/* A direction that reads this much within one loop millisecond (0.5 Gbit/s) streams:
 * its tunnel's runs make the worker's next wait busy poll only briefly (see the top of
 * the file). */
#define TUNNEL_STREAM_BYTES_PER_MS (64 * 1024)

/* pump_copy parks what send() did not take of one scratch buffer in an empty pipe with
 * one write(), which the pipe must take whole. */
_Static_assert(WORKER_SCRATCH_BYTES <= PIPE_POOL_PIPE_BYTES,
               "an empty pipe takes a scratch buffer");

/* What one splice into a pipe asks for: more than a pipe can hold, so that the pipe's
 * free slots decide how much comes (see the top of the file), as HAProxy asks for 1 GiB. */
#define TUNNEL_SPLICE_ASK ((size_t)1 << 30)

/* Connection age at which the origin socket gets its keepalive options (see the top
 * of the file); never more than an eighth of the user timeout, so that a peer that
 * dies is still found within about timeouts.user_timeout_ms. */
#define KEEPALIVE_DEFER_MS 1000

enum tunnel_state {
    TUNNEL_CONNECTING = 0,
    TUNNEL_RELAY,
    TUNNEL_CLOSED,
};

struct side {
    int fd;        /* the client's is owned, the origin's borrowed from t->osock; -1: closed */
    bool can_read; /* edge-triggered readiness not yet consumed */
    bool can_write;
    bool is_eof;             /* we read its FIN */
    bool is_rdhup;           /* epoll saw its FIN or an error: read until EOF, not a short read */
    bool is_shut;            /* we sent it our FIN, or left it to close() */
    bool is_fin_by_shutdown; /* shutdown() sent our FIN: the socket may close cleanly */
};

struct pump {
    struct pipe_pair *pipe; /* borrowed from the pool while pending > 0 */
    size_t pending;         /* bytes in the pipe */
    uint64_t bytes;         /* read from the source (PROXY header not counted) */
    bool is_bulk;           /* a read filled the scratch buffer: splice until drained */
    bool is_streaming;      /* read TUNNEL_STREAM_BYTES_PER_MS lately (pump_count) */
    uint32_t ms_bytes;      /* read in loop millisecond <ms> */
    uint64_t ms;
};

struct tunnel {
    struct side client, origin;
    struct loop_io client_io;
    struct pooled_sock *osock; /* the origin socket, from w->origin_socks; NULL: none */
    struct pump up;            /* client -> origin */
    struct pump down;          /* origin -> client */
    struct worker *w;
    struct wsnap *ws;        /* counted in ws->live; keeps app alive */
    const struct app *app;   /* from ws->snap */
    struct loop_timer timer; /* connect timeout, then keepalive due, then idle timeout */
    struct loop_defer defer; /* frees the struct after the iteration */
    struct loop_task resume; /* gave way with bytes still to move */
    uint64_t accepted_ns;    /* realtime, for ConnectTimestamp */
    uint64_t last_active_ms; /* loop time of the last byte moved */
    struct sockaddr_storage client_addr;
    struct sockaddr_storage edge_addr; /* what the client connected to */
    struct sockaddr_storage origin_addr;
    uint16_t edge_port;
    uint8_t origin_idx;    /* next origin_direct entry to try */
    bool is_keepalive_due; /* the origin socket still waits for its keepalive options */
    enum tunnel_state state;
    struct list_node link; /* in w->tunnels */
};

static void tunnel_run(struct tunnel *t);
static void tunnel_close(struct tunnel *t, uint16_t status);
static void connect_next(struct tunnel *t, uint16_t last_status);

uint16_t tunnel_status_client(int err)
{
    switch (err) {
    case ECONNRESET:
        return 499;
    case EPIPE:
        return 498;
    case ETIMEDOUT:
        return 497;
    case EHOSTUNREACH:
        return 496;
    case ECONNREFUSED:
        return 495;
    default:
        return 999;
    }
}

uint16_t tunnel_status_origin(int err)
{
    switch (err) {
    case ECONNRESET:
        return 444;
    case ETIMEDOUT:
        return 445;
    case EHOSTUNREACH:
        return 446;
    case ECONNREFUSED:
        return 447;
    case EPIPE:
        return 448;
    default:
        return 520;
    }
}

uint16_t tunnel_status_connect(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return 521;
    case ETIMEDOUT:
        return 522;
    case ENETUNREACH:
    case EHOSTUNREACH:
        return 523;
    default:
        return 524;
    }
}

static void emit(struct tunnel *t, enum event_kind kind, uint16_t status)
{
    struct worker_event ev = {
        .app = t->app,
        .client = &t->client_addr,
        .origin = &t->origin_addr,
        .connect_ns = t->accepted_ns,
        .client_bytes = t->up.bytes,
        .origin_bytes = t->down.bytes,
        .proto = EVENT_TCP,
    };

    worker_emit(t->w, &ev, kind, status);
}

/* --- relaying --- */

static void pump_release(struct tunnel *t, struct pump *p)
{
    if (p->pipe) {
        pipe_pool_put(&t->w->pipes, p->pipe, p->pending == 0);
        p->pipe = NULL;
        p->pending = 0;
    }
}

/* Counts <n> bytes read from the pump's source, and whether it streams: it does while
 * it reads TUNNEL_STREAM_BYTES_PER_MS in one loop millisecond, until a millisecond
 * after one in which it read less (see the top of the file). */
static void pump_count(struct tunnel *t, struct pump *p, size_t n)
{
    uint64_t now = loop_now_ms(t->w->loop);

    p->bytes += (uint64_t)n;
    if (now != p->ms) {
        /* A full millisecond set is_streaming; only the one just before still counts. */
        p->is_streaming = now == p->ms + 1 && p->ms_bytes >= TUNNEL_STREAM_BYTES_PER_MS;
        p->ms = now;
        p->ms_bytes = 0;
    }
    if (p->ms_bytes < TUNNEL_STREAM_BYTES_PER_MS)
        p->ms_bytes += (uint32_t)n; /* saturates: one read is at most a pipe */
    if (p->ms_bytes >= TUNNEL_STREAM_BYTES_PER_MS)
        p->is_streaming = true;
}

/* One short-exchange step: recv() into the scratch buffer, send() it on, and
 * park what the destination did not take in the pipe. Only called with an empty
 * pipe and a writable destination. Returns 0, or the status to close with. */
static uint16_t pump_copy(struct tunnel *t, struct pump *p, struct side *src, struct side *dst,
                          bool src_is_client)
{
    uint8_t *buf = t->w->scratch;
    ssize_t n, m;

    n = recv(src->fd, buf, WORKER_SCRATCH_BYTES, 0);
    if (n == 0) {
        src->is_eof = true;
        return 0;
    }
    if (n < 0) {
        if (errno == EAGAIN)
            src->can_read = false;
        else if (errno != EINTR)
            return src_is_client ? tunnel_status_client(errno) : tunnel_status_origin(errno);
        return 0;
    }
    pump_count(t, p, (size_t)n);
    t->w->stats.tcp_bytes_copied += (uint64_t)n;
    if (n == WORKER_SCRATCH_BYTES)
        p->is_bulk = true;
    else if (!src->is_rdhup)
        src->can_read = false;
    m = send(dst->fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (m < 0) {
        if (errno == EAGAIN)
            dst->can_write = false;
        else if (errno != EINTR)
            return src_is_client ? tunnel_status_origin(errno) : tunnel_status_client(errno);
        m = 0;
    }
    if (m < n) {
        size_t rest = (size_t)(n - m);
        if (!p->pipe)
            p->pipe = pipe_pool_get(&t->w->pipes);
        if (!p->pipe)
            return 500;
        /* An empty pipe takes the rest of one scratch buffer whole (asserted above). */
        if (write(p->pipe->wr, buf + m, rest) != (ssize_t)rest)
            return 500;
        p->pending = rest;
        dst->can_write = false;
    }
    return 0;
}

/* Moves bytes <src> -> <dst> until neither can make progress, or until
 * TUNNEL_RUN_BYTES were read, when it sets *is_yield and the rest waits for the
 * next loop iteration. Returns 0, or the status to close the tunnel with. */
static uint16_t pump_run(struct tunnel *t, struct pump *p, struct side *src, struct side *dst,
                         bool src_is_client, bool *is_yield)
{
    uint64_t start = p->bytes;
    bool is_drained = false; /* a splice out emptied the pipe in this run */

    for (;;) {
        bool progress = false;
        bool has_room = p->pending == 0; /* the pipe may take more: see the top of the file */
        ssize_t n;

        if (p->pending > 0 && dst->can_write) {
            n = splice(p->pipe->rd, NULL, dst->fd, NULL, p->pending,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                p->pending -= (size_t)n;
                progress = true;
                has_room = true;
                is_drained = p->pending == 0;
            } else if (n == -1 && errno == EAGAIN) {
                dst->can_write = false;
            } else if (n == -1 && errno != EINTR) {
                return src_is_client ? tunnel_status_origin(errno) : tunnel_status_client(errno);
            }
        }
        if (p->pending == 0 && src->is_eof && !dst->is_shut) {
            /* Unless the other direction is done too: then the tunnel closes next
             * and close() sends the FIN (see the top of the file). */
            if (!(dst->is_eof && src->is_shut)) {
                /* An error here shows up on the next read. */
                dst->is_fin_by_shutdown = shutdown(dst->fd, SHUT_WR) == 0;
            }
            dst->is_shut = true;
        }
        if (!src->is_eof && src->can_read && p->pending == 0 && !p->is_bulk && dst->can_write) {
            uint16_t status = pump_copy(t, p, src, dst, src_is_client);
            if (status)
                return status;
            progress = true;
        } else if (!src->is_eof && src->can_read && has_room) {
            if (!p->pipe) {
                p->pipe = pipe_pool_get(&t->w->pipes);
                if (!p->pipe)
                    return 500; /* out of fds or memory: ours, not the peers' */
            }
            n = splice(src->fd, NULL, p->pipe->wr, NULL, TUNNEL_SPLICE_ASK,
                       SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                /* An empty pipe filled to its last slot, right after the destination
                 * took all it held: the pipe is what limits this stream. */
                if (is_drained && p->pending == 0 && (size_t)n >= p->pipe->bytes)
                    (void)pipe_pool_grow(&t->w->pipes, p->pipe);
                is_drained = false;
                p->pending += (size_t)n;
                pump_count(t, p, (size_t)n);
                progress = true;
            } else if (n == 0) {
                src->is_eof = true;
                progress = true;
            } else if (errno == EAGAIN) {
                /* With bytes in the pipe, EAGAIN may mean the pipe's slots are
                 * full rather than the socket empty: keep the readiness and read
                 * again once the pipe has drained. */
                if (p->pending == 0) {
                    src->can_read = false;
                    /* A streaming direction's next read is a bulk one too. */
                    if (!p->is_streaming)
                        p->is_bulk = false;
                }
            } else if (errno != EINTR) {
                return src_is_client ? tunnel_status_client(errno) : tunnel_status_origin(errno);
            }
        }
        if (!progress)
            break;
        t->last_active_ms = loop_now_ms(t->w->loop);
        if (p->bytes - start >= TUNNEL_RUN_BYTES) {
            *is_yield = true;
            break;
        }
    }
    if (p->pending == 0 && p->pipe)
        pump_release(t, p);
    return 0;
}

static void tunnel_run(struct tunnel *t)
{
    bool is_yield = false;
    uint16_t status;

    if (t->state != TUNNEL_RELAY)
        return;
    status = pump_run(t, &t->up, &t->client, &t->origin, true, &is_yield);
    if (status == 0)
        status = pump_run(t, &t->down, &t->origin, &t->client, false, &is_yield);
    if (status) {
        tunnel_close(t, status);
        return;
    }
    if (t->up.is_streaming || t->down.is_streaming)
        loop_busy_poll_brief(t->w->loop); /* see the top of the file */
    if (t->client.is_shut && t->origin.is_shut)
        tunnel_close(t, 200);
    else if (is_yield)
        loop_task_queue(t->w->loop, &t->resume);
}

static void on_resume(struct loop *loop, struct loop_task *task)
{
    (void)loop;
    tunnel_run(container_of(task, struct tunnel, resume));
}

/* Gives the origin socket back to the worker's pool, which keeps it for the next
 * connection only if <is_clean> and the kernel agrees (net/sockpool.h). */
static void origin_release(struct tunnel *t, bool is_clean)
{
    if (!t->osock)
        return;
    sock_pool_put(&t->w->origin_socks, t->osock, is_clean);
    t->osock = NULL;
    t->origin.fd = -1;
    t->origin.can_read = t->origin.can_write = false;
}

/* --- timers --- */

static void on_timer(struct loop *loop, struct loop_timer *timer)
{
    struct tunnel *t = container_of(timer, struct tunnel, timer);
    const struct snap_params *p = &t->ws->snap->params;

    if (t->state == TUNNEL_CONNECTING) {
        origin_release(t, false);
        connect_next(t, 522);
        return;
    }
    if (t->state == TUNNEL_RELAY && t->is_keepalive_due) {
        struct sock_tcp_opts opts = {.user_timeout_ms = p->user_timeout_ms};
        if (sock_set_keepalive(t->origin.fd, &opts) == 0)
            t->osock->keepalive_ms = p->user_timeout_ms; /* kept if the socket is reused */
        t->is_keepalive_due = false;
    }
    if (t->state == TUNNEL_RELAY && p->idle_ms > 0) {
        uint64_t deadline = t->last_active_ms + p->idle_ms;
        if (deadline > loop_now_ms(loop)) {
            loop_timer_arm_at(loop, timer, deadline); /* moved since armed: lazy re-arm */
            return;
        }
        /* The idle timeout is ours to enforce, a normal end of the connection. */
        tunnel_close(t, 200);
    }
}

/* --- connecting --- */

static void on_client_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct tunnel *t = container_of(io, struct tunnel, client_io);

    (void)loop;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        t->client.can_read = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        t->client.is_rdhup = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        t->client.can_write = true;
    if (t->state == TUNNEL_CONNECTING) {
        /* We do not read the client before the origin answers, but a reset
         * must not leave the attempt running. */
        if (events & EPOLLERR) {
            int err = sock_error(t->client.fd);
            tunnel_close(t, tunnel_status_client(err ? err : ECONNRESET));
        }
        return;
    }
    tunnel_run(t);
}

static void on_connected(struct tunnel *t)
{
    const struct snap_params *p = &t->ws->snap->params;
    uint32_t wait_ms = p->idle_ms; /* 0: none */

    t->state = TUNNEL_RELAY;
    t->last_active_ms = loop_now_ms(t->w->loop);
    /* A reused socket keeps the options it was given (timeouts are fixed for the
     * process's life, so they are the same ones). */
    t->is_keepalive_due = p->user_timeout_ms > 0 && t->osock->keepalive_ms != p->user_timeout_ms;
    if (t->is_keepalive_due) {
        /* One timer: the keepalive options first, then on_timer() re-arms it for
         * the idle timeout. */
        uint32_t due_ms = p->user_timeout_ms / 8;
        if (due_ms > KEEPALIVE_DEFER_MS)
            due_ms = KEEPALIVE_DEFER_MS;
        else if (due_ms == 0)
            due_ms = 1; /* 0 would mean "no timer": no keepalive, and no idle timeout */
        if (wait_ms == 0 || due_ms < wait_ms)
            wait_ms = due_ms;
    }
    if (wait_ms > 0)
        loop_timer_arm(t->w->loop, &t->timer, wait_ms);
    else
        loop_timer_stop(t->w->loop, &t->timer);
    if (t->app->pp == APP_PP_V1 || t->app->pp == APP_PP_V2) {
        uint8_t hdr[PP_MAX_LEN];
        int n = pp_encode(t->app->pp == APP_PP_V1 ? 1 : 2, false, &t->client_addr, &t->edge_addr,
                          hdr, sizeof(hdr));
        BUG_ON(n <= 0);
        t->up.pipe = pipe_pool_get(&t->w->pipes);
        if (!t->up.pipe) {
            tunnel_close(t, 500);
            return;
        }
        /* An empty pipe takes a header this small whole. */
        if (write(t->up.pipe->wr, hdr, (size_t)n) != n) {
            tunnel_close(t, 500);
            return;
        }
        t->up.pending = (size_t)n;
    }
    tunnel_run(t);
}

static void on_origin_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct tunnel *t = container_of(io, struct pooled_sock, io)->owner;

    (void)loop;
    if (!t)
        return; /* idle in the pool: what it reports belongs to no connection */
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        t->origin.can_read = true;
    if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        t->origin.is_rdhup = true;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        t->origin.can_write = true;
    if (t->state == TUNNEL_CONNECTING) {
        int err;
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        /* A failed connect always reports EPOLLERR: without it, writable means
         * connected, and the SO_ERROR read is saved. */
        err = (events & (EPOLLERR | EPOLLHUP)) ? sock_error(t->origin.fd) : 0;
        if (err == 0) {
            on_connected(t);
            return;
        }
        origin_release(t, false);
        connect_next(t, tunnel_status_connect(err));
        return;
    }
    tunnel_run(t);
}

/* Tries the origins from t->origin_idx on; <last_status> is what the previous
 * attempt ended with (0 for the first). Ends the tunnel when none is left. */
static void connect_next(struct tunnel *t, uint16_t last_status)
{
    const struct snap_params *p = &t->ws->snap->params;
    uint16_t status = last_status;

    while (t->origin_idx < t->app->n_origins) {
        const struct app_origin *o = &t->app->origins[t->origin_idx++];
        bool is_reused;
        int err;

        t->origin_addr = o->addr;
        addr_set_port(&t->origin_addr, app_origin_port(t->app, o, t->edge_port));
        /* Registered and with TCP_NODELAY; the keepalive options come later: on_timer(). */
        t->osock = sock_pool_get(&t->w->origin_socks, &t->origin_addr, on_origin_io, t, &is_reused);
        if (!t->osock) {
            status = 524;
            continue;
        }
        err = sock_pool_connect(&t->w->origin_socks, t->osock, &t->origin_addr);
        t->origin.fd = t->osock->io.fd; /* after the connect, which may swap the socket */
        if (err < 0) {
            status = tunnel_status_connect(-err);
            origin_release(t, false);
            continue;
        }
        loop_timer_arm(t->w->loop, &t->timer, p->connect_ms);
        return;
    }
    tunnel_close(t, status ? status : 524);
}

/* --- life and death --- */

static void tunnel_free(struct loop *loop, struct loop_defer *d)
{
    struct tunnel *t = container_of(d, struct tunnel, defer);

    (void)loop;
    slab_free(&t->w->tunnel_pool, t);
}

void tunnel_pool_init(struct slab_pool *pool)
{
    slab_pool_init(pool, sizeof(struct tunnel));
}

static void client_close(struct tunnel *t, bool is_reset)
{
    if (t->client.fd < 0)
        return;
    if (is_reset)
        sock_set_reset_on_close(t->client.fd);
    loop_io_close(t->w->loop, &t->client_io);
    t->client.fd = -1;
}

static void tunnel_close(struct tunnel *t, uint16_t status)
{
    struct worker *w = t->w;
    enum event_kind kind;

    if (t->state == TUNNEL_CLOSED)
        return;
    kind = (status >= 521 && status <= 533) ? EVENT_ORIGIN_ERROR : EVENT_DISCONNECT;
    t->state = TUNNEL_CLOSED;
    loop_timer_stop(w->loop, &t->timer);
    loop_task_cancel(&t->resume);
    /* A reset on one side is passed on as a reset: the peer must not mistake a
     * truncated stream for a complete one. */
    client_close(t, status == 444);
    if (status == 499 && t->osock)
        sock_set_reset_on_close(t->origin.fd);
    /* A connection that ended with both FINs exchanged leaves an origin socket the
     * next connection may reuse (net/sockpool.h). */
    origin_release(t, status == 200 && t->origin.is_fin_by_shutdown && t->origin.is_eof);
    pump_release(t, &t->up);
    pump_release(t, &t->down);
    emit(t, kind, status);
    list_del(&t->link);
    w->stats.active--;
    worker_wsnap_put(w, t->ws);
    t->ws = NULL;
    loop_defer(w->loop, &t->defer, tunnel_free);
    if (w->is_draining)
        worker_check_drained(w);
}

void tunnel_accept(struct worker *w, struct wlistener *wl, int fd,
                   const struct sockaddr_storage *client)
{
    struct tunnel *t = slab_alloc(&w->tunnel_pool);
    socklen_t len = sizeof(t->edge_addr);

    if (!t) {
        close(fd);
        return;
    }
    t->w = w;
    t->ws = worker_wsnap_get(w);
    t->app = wl->b->sa->app;
    t->edge_port = wl->b->edge_port;
    t->client.fd = fd;
    t->origin.fd = -1;
    t->client_addr = *client;
    addr_unmap(&t->client_addr);
    if (addr_is_any(&wl->l->addr)) {
        if (getsockname(fd, (struct sockaddr *)&t->edge_addr, &len) == -1)
            t->edge_addr = wl->l->addr;
    } else {
        t->edge_addr = wl->l->addr;
    }
    t->accepted_ns = clock_real_ns();
    t->state = TUNNEL_CONNECTING;
    loop_timer_init(&t->timer, on_timer);
    loop_task_init(&t->resume, on_resume);
    list_add_tail(&w->tunnels, &t->link);
    w->stats.accepted++;
    w->stats.active++;
    if (t->app->n_origins > 0) {
        t->origin_addr = t->app->origins[0].addr;
        addr_set_port(&t->origin_addr, app_origin_port(t->app, &t->app->origins[0], t->edge_port));
    }
    emit(t, EVENT_CONNECT, 0);
    if (loop_io_add(w->loop, &t->client_io, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                    on_client_io) < 0) {
        t->client_io.is_added = false;
        tunnel_close(t, 500);
        return;
    }
    connect_next(t, 0);
}

void tunnel_close_all(struct worker *w, uint16_t status)
{
    struct list_node *pos, *tmp;

    list_for_each_safe(pos, tmp, &w->tunnels)
    {
        tunnel_close(container_of(pos, struct tunnel, link), status);
    }
}
