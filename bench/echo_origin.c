/* bench/echo_origin.c: the origin server for the benchmarks: a single-threaded epoll echo
 * server for TCP and UDP on 127.0.0.1.
 *
 * TCP: every byte read is written back on the same connection. Each connection has one
 * fixed buffer; while it holds unsent bytes we stop reading that connection and wait for
 * EPOLLOUT, so a slow reader cannot make us buffer without bound. On EOF we flush and close.
 * UDP: datagrams are read in batches with recvmmsg() and sent back to their sources with
 * sendmmsg().
 *
 * It prints "ready" on stdout once it listens, and stops on SIGTERM, SIGINT, or after
 * -T seconds (a bound so that a forgotten origin never outlives a benchmark for long).
 * Left out on purpose: IPv6, TLS, any statistics (the load tools measure). */
#include "bench.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <unistd.h>

#define USAGE "echo_origin [-a 127.0.0.1] [-t tcp_port] [-u udp_port] [-T max_seconds]"
#define CONN_BUF_BYTES 16384
#define UDP_BATCH 64
#define UDP_MAX_DGRAM 2048
#define ACCEPT_BATCH 256

struct conn {
    int fd;
    bool is_eof;  /* the peer sent FIN: close once <buf> is flushed */
    uint32_t len; /* bytes in <buf> not yet written back */
    uint32_t off; /* first unwritten byte */
    char *buf;    /* owned; CONN_BUF_BYTES, allocated at the first read */
};

/* The two listening sockets; their epoll_event.data.ptr points at these variables, which
 * tells them apart from connections. */
static int tcp_lfd = -1, udp_fd = -1;
static volatile sig_atomic_t is_stopping;

static void on_signal(int sig)
{
    (void)sig;
    is_stopping = 1;
}

static int open_socket(int type, const struct sockaddr_in *addr)
{
    int fd, one = 1;

    fd = socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        die_errno("socket");
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
        die_errno("SO_REUSEADDR");
    if (type == SOCK_DGRAM) {
        int rcvbuf = 4 << 20;

        /* Capped by net.core.rmem_max; the same for every target, so it does not matter
         * that it may be smaller than asked. */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &rcvbuf, sizeof(rcvbuf));
    }
    if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) == -1)
        die_errno("bind");
    if (type == SOCK_STREAM && listen(fd, 4096) == -1)
        die_errno("listen");
    return fd;
}

static void conn_close(struct conn *c)
{
    close(c->fd); /* also removes it from the epoll set */
    free(c->buf);
    free(c);
}

static void set_interest(int ep, struct conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == -1)
        die_errno("epoll_ctl mod");
}

/* Writes what is pending. Returns false when the connection was closed. */
static bool conn_flush(int ep, struct conn *c)
{
    while (c->len > 0) {
        ssize_t n = send(c->fd, c->buf + c->off, c->len, MSG_NOSIGNAL);

        if (n == -1) {
            if (errno == EAGAIN) {
                set_interest(ep, c, EPOLLOUT);
                return true;
            }
            if (errno == EINTR)
                continue;
            conn_close(c);
            return false;
        }
        c->off += (uint32_t)n;
        c->len -= (uint32_t)n;
    }
    c->off = 0;
    if (c->is_eof) {
        conn_close(c);
        return false;
    }
    return true;
}

/* Reads and echoes until the socket is drained or its echo is blocked. */
static void on_conn_event(int ep, struct conn *c, uint32_t events)
{
    bool was_blocked = c->len > 0;

    if (events & EPOLLOUT) {
        if (!conn_flush(ep, c))
            return;
        if (c->len > 0)
            return;
        if (was_blocked)
            set_interest(ep, c, EPOLLIN | EPOLLRDHUP);
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)))
        return;
    if (!c->buf) {
        c->buf = malloc(CONN_BUF_BYTES);
        if (!c->buf)
            die_errno("malloc");
    }
    /* Bounded: each pass either fills the buffer and returns, or drains the socket. */
    for (int pass = 0; pass < 64; pass++) {
        ssize_t n = recv(c->fd, c->buf, CONN_BUF_BYTES, 0);

        if (n == 0) {
            c->is_eof = true;
            conn_flush(ep, c);
            return;
        }
        if (n == -1) {
            if (errno == EAGAIN)
                return;
            if (errno == EINTR)
                continue;
            conn_close(c);
            return;
        }
        c->off = 0;
        c->len = (uint32_t)n;
        if (!conn_flush(ep, c) || c->len > 0)
            return;
    }
}

static void on_accept(int ep, int lfd)
{
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        int one = 1;
        struct epoll_event ev;
        struct conn *c;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
                return;
            if (errno == EMFILE || errno == ENFILE) {
                fprintf(stderr, "echo_origin: accept: %s\n", strerror(errno));
                return;
            }
            die_errno("accept4");
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (!c)
            die_errno("calloc");
        c->fd = fd;
        ev.events = EPOLLIN | EPOLLRDHUP;
        ev.data.ptr = c;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
            die_errno("epoll_ctl add");
    }
}

static void on_udp(int fd)
{
    static char bufs[UDP_BATCH][UDP_MAX_DGRAM];
    static struct sockaddr_in from[UDP_BATCH];
    static struct iovec iov[UDP_BATCH];
    static struct mmsghdr msgs[UDP_BATCH];

    for (int pass = 0; pass < 16; pass++) {
        int n, sent = 0;

        for (int i = 0; i < UDP_BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = UDP_MAX_DGRAM;
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = &from[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
        }
        n = recvmmsg(fd, msgs, UDP_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        for (int i = 0; i < n; i++)
            iov[i].iov_len = msgs[i].msg_len;
        /* A full send buffer drops the rest of the batch: that is loss at the origin,
         * and it is the same for every target. */
        while (sent < n) {
            int m = sendmmsg(fd, msgs + sent, (unsigned)(n - sent), MSG_DONTWAIT);

            if (m <= 0)
                break;
            sent += m;
        }
        if (n < UDP_BATCH)
            return;
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in addr;
    const char *host = "127.0.0.1";
    long tcp_port = 0, udp_port = 0, max_s = 3600;
    struct epoll_event ev, events[256];
    struct sigaction sa;
    uint64_t deadline;
    char spec[96];
    int opt, ep;

    while ((opt = getopt(argc, argv, "a:t:u:T:")) != -1) {
        switch (opt) {
        case 'a':
            host = optarg;
            break;
        case 't':
            tcp_port = parse_long(optarg, 65535, USAGE);
            break;
        case 'u':
            udp_port = parse_long(optarg, 65535, USAGE);
            break;
        case 'T':
            max_s = parse_long(optarg, 86400, USAGE);
            break;
        default:
            die_usage("unknown option", USAGE);
        }
    }
    if (!tcp_port && !udp_port)
        die_usage("need -t or -u", USAGE);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1)
        die_errno("epoll_create1");
    if (tcp_port) {
        snprintf(spec, sizeof(spec), "%s:%ld", host, tcp_port);
        if (parse_hostport(spec, &addr) != 0)
            die_usage("bad address", USAGE);
        tcp_lfd = open_socket(SOCK_STREAM, &addr);
        ev.events = EPOLLIN;
        ev.data.ptr = &tcp_lfd;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, tcp_lfd, &ev) == -1)
            die_errno("epoll_ctl");
    }
    if (udp_port) {
        snprintf(spec, sizeof(spec), "%s:%ld", host, udp_port);
        if (parse_hostport(spec, &addr) != 0)
            die_usage("bad address", USAGE);
        udp_fd = open_socket(SOCK_DGRAM, &addr);
        ev.events = EPOLLIN;
        ev.data.ptr = &udp_fd;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, udp_fd, &ev) == -1)
            die_errno("epoll_ctl");
    }
    printf("ready\n");
    fflush(stdout);

    deadline = now_ns() + (uint64_t)max_s * 1000000000u;
    while (!is_stopping && now_ns() < deadline) {
        int n = epoll_wait(ep, events, 256, 500);

        if (n == -1) {
            if (errno == EINTR)
                continue;
            die_errno("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;

            if (p == &udp_fd)
                on_udp(udp_fd);
            else if (p == &tcp_lfd)
                on_accept(ep, tcp_lfd);
            else
                on_conn_event(ep, p, events[i].events);
        }
    }
    return 0;
}
