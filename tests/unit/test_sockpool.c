/* tests/unit/test_sockpool.c: src/net/sockpool.c, origin sockets kept for reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/bug.h"
#include "core/loop.h"
#include "net/addr.h"
#include "net/sockpool.h"

#define EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

static int n_calls;
static void *last_owner;

static void on_io(struct loop *loop, struct loop_io *io, uint32_t events)
{
    (void)loop;
    (void)events;
    n_calls++;
    last_owner = container_of(io, struct pooled_sock, io)->owner;
}

/* A blocking listener on 127.0.0.1, port chosen by the kernel. */
static int listener(struct sockaddr_in *addr)
{
    socklen_t len = sizeof(*addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)addr, sizeof(*addr)), 0);
    assert_int_equal(listen(fd, 8), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)addr, &len), 0);
    return fd;
}

static struct sockaddr_storage dst_of(const struct sockaddr_in *addr)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    memcpy(&ss, addr, sizeof(*addr));
    return ss;
}

/* Connects <s> (non-blocking) as a tunnel does and returns the accepted peer,
 * blocking. */
static int connect_accept(struct sock_pool *pool, struct pooled_sock *s, int lfd,
                          const struct sockaddr_in *addr)
{
    struct sockaddr_storage dst = dst_of(addr);
    struct pollfd pfd;
    int peer;

    assert_int_equal(sock_pool_connect(pool, s, &dst), 0);
    pfd = (struct pollfd){.fd = s->io.fd, .events = POLLOUT};
    peer = accept(lfd, NULL, NULL);
    assert_true(peer >= 0);
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    return peer;
}

/* The port <fd> is bound to, or with <is_peer> its peer's, host order. */
static uint16_t port_of(int fd, bool is_peer)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);

    assert_int_equal((is_peer ? getpeername : getsockname)(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* Reads one byte's worth of EOF from non-blocking <fd>, waiting for it. */
static void wait_eof(int fd)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    char c;

    assert_int_equal(poll(&pfd, 1, 2000), 1);
    assert_int_equal(recv(fd, &c, 1, 0), 0);
}

/* Our FIN by shutdown(), then theirs: the exchange a tunnel ends with when the client
 * closes first. */
static void close_both_ways(struct pooled_sock *s, int peer)
{
    char c;

    assert_int_equal(shutdown(s->io.fd, SHUT_WR), 0);
    assert_int_equal(recv(peer, &c, 1, 0), 0); /* blocking: our FIN came */
    close(peer);
    wait_eof(s->io.fd);
}

/* A socket that ended with both FINs exchanged comes back for the next connection,
 * with the same loop registration: the new owner's events arrive, and bytes go
 * through. Events for an idle socket reach no owner. */
static void test_clean_close_is_reused(void **state)
{
    struct loop *loop = loop_new();
    struct sock_pool pool;
    struct sockaddr_in addr;
    struct pooled_sock *s, *t;
    int lfd = listener(&addr), peer, owner1, owner2;
    struct sockaddr_storage dst = dst_of(&addr);
    bool is_reused;
    char buf[8];

    (void)state;
    assert_non_null(loop);
    sock_pool_init(&pool, loop, 2, EVENTS);
    s = sock_pool_get(&pool, &dst, on_io, &owner1, &is_reused);
    assert_non_null(s);
    assert_false(is_reused);
    assert_int_equal(pool.n_opened, 1);
    peer = connect_accept(&pool, s, lfd, &addr);
    n_calls = 0;
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_true(n_calls >= 1);
    assert_ptr_equal(last_owner, &owner1);
    close_both_ways(s, peer);
    sock_pool_put(&pool, s, true);
    assert_int_equal(pool.n_idle[0], 1);
    n_calls = 0;
    last_owner = &owner1;
    assert_int_equal(loop_run_once(loop, 0), 0); /* what the disconnect reported */
    if (n_calls > 0)
        assert_null(last_owner);

    t = sock_pool_get(&pool, &dst, on_io, &owner2, &is_reused);
    assert_ptr_equal(t, s);
    assert_true(is_reused);
    assert_int_equal(pool.n_reused, 1);
    assert_int_equal(pool.n_opened, 1);
    assert_int_equal(pool.n_idle[0], 0);
    peer = connect_accept(&pool, t, lfd, &addr);
    n_calls = 0;
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_true(n_calls >= 1);
    assert_ptr_equal(last_owner, &owner2);
    assert_int_equal(send(t->io.fd, "ping", 4, 0), 4);
    assert_int_equal(recv(peer, buf, sizeof(buf), 0), 4);
    assert_memory_equal(buf, "ping", 4);
    close_both_ways(t, peer);
    sock_pool_put(&pool, t, true);
    assert_int_equal(pool.n_idle[0], 1);
    sock_pool_fini(&pool);
    assert_int_equal(pool.n_idle[0], 0);
    close(lfd);
    loop_free(loop);
}

/* A socket still connected, one returned as not clean, one whose peer answered our
 * FIN with a reset, and one beyond max_idle are all closed, never kept. */
static void test_unclean_sockets_are_closed(void **state)
{
    struct loop *loop = loop_new();
    struct sock_pool pool;
    struct sockaddr_in addr;
    struct pooled_sock *s, *a, *b;
    struct linger lin = {.l_onoff = 1, .l_linger = 0};
    int lfd = listener(&addr), peer, pa, pb;
    struct sockaddr_storage dst = dst_of(&addr);
    bool is_reused;
    char c;

    (void)state;
    sock_pool_init(&pool, loop, 1, EVENTS);

    s = sock_pool_get(&pool, &dst, on_io, &pool, &is_reused);
    peer = connect_accept(&pool, s, lfd, &addr);
    sock_pool_put(&pool, s, true); /* established: the caller's word is not enough */
    assert_int_equal(pool.n_idle[0], 0);
    assert_int_equal(recv(peer, &c, 1, 0), 0); /* it was closed: its FIN came */
    close(peer);

    s = sock_pool_get(&pool, &dst, on_io, &pool, &is_reused);
    assert_false(is_reused);
    peer = connect_accept(&pool, s, lfd, &addr);
    close_both_ways(s, peer);
    sock_pool_put(&pool, s, false);
    assert_int_equal(pool.n_idle[0], 0);

    s = sock_pool_get(&pool, &dst, on_io, &pool, &is_reused);
    peer = connect_accept(&pool, s, lfd, &addr);
    assert_int_equal(shutdown(s->io.fd, SHUT_WR), 0);
    assert_int_equal(recv(peer, &c, 1, 0), 0);
    assert_int_equal(setsockopt(peer, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
    close(peer); /* a reset: state CLOSE, with ECONNRESET pending */
    {
        struct pollfd pfd = {.fd = s->io.fd, .events = POLLIN};
        assert_int_equal(poll(&pfd, 1, 2000), 1);
    }
    sock_pool_put(&pool, s, true);
    assert_int_equal(pool.n_idle[0], 0);

    a = sock_pool_get(&pool, &dst, on_io, &pool, &is_reused);
    b = sock_pool_get(&pool, &dst, on_io, &pool, &is_reused);
    assert_ptr_not_equal(a, b);
    pa = connect_accept(&pool, a, lfd, &addr);
    pb = connect_accept(&pool, b, lfd, &addr);
    close_both_ways(a, pa);
    close_both_ways(b, pb);
    sock_pool_put(&pool, a, true);
    sock_pool_put(&pool, b, true);
    assert_int_equal(pool.n_idle[0], 1); /* max_idle */
    assert_int_equal(pool.n_reused, 0);
    assert_int_equal(pool.n_opened, 5);

    dst.ss_family = AF_UNIX;
    assert_null(sock_pool_get(&pool, &dst, on_io, &pool, &is_reused));
    assert_int_equal(errno, EAFNOSUPPORT);
    sock_pool_fini(&pool);
    close(lfd);
    loop_free(loop);
}

/* One connect, exchange and clean close through <s>; returns the client port the
 * origin saw. */
static uint16_t one_connection(struct sock_pool *pool, struct pooled_sock *s, int lfd,
                               const struct sockaddr_in *addr)
{
    int peer = connect_accept(pool, s, lfd, addr);
    uint16_t port = port_of(peer, true);
    char buf[4];

    assert_int_equal(port_of(s->io.fd, false), port);
    assert_int_equal(send(s->io.fd, "ping", 4, 0), 4);
    assert_int_equal(recv(peer, buf, sizeof(buf), 0), 4);
    close_both_ways(s, peer);
    return port;
}

/* Sets <pool> up to keep ports and returns its one socket, idle and bound to the port
 * of the connection it served, which goes to *<first>. */
static struct pooled_sock *bound_socket(struct sock_pool *pool, struct loop *loop,
                                        const struct sockaddr_storage *dst, int lfd,
                                        const struct sockaddr_in *addr, uint16_t *first)
{
    struct pooled_sock *s;
    bool is_reused;

    sock_pool_init(pool, loop, 2, EVENTS);
    pool->is_keeping_ports = true;
    s = sock_pool_get(pool, dst, on_io, pool, &is_reused);
    assert_non_null(s);
    *first = one_connection(pool, s, lfd, addr);
    assert_int_equal(s->port, *first);
    sock_pool_put(pool, s, true);
    assert_true(s->is_bound);
    return s;
}

/* A socket that served a loopback origin keeps its port: the next connections to
 * the origin come from the same port, taking over the TIME_WAIT entry the last one
 * left, with no new socket. With the policy off, each connect gets a new port (the
 * kernel will not reuse a TIME_WAIT port of loopback younger than a second). */
static void test_loopback_origin_keeps_port(void **state)
{
    struct loop *loop = loop_new();
    struct sock_pool pool;
    struct sockaddr_in addr;
    int lfd = listener(&addr), i;
    struct sockaddr_storage dst = dst_of(&addr);
    struct pooled_sock *s, *t;
    uint16_t first, port;
    bool is_reused;

    (void)state;
    s = bound_socket(&pool, loop, &dst, lfd, &addr, &first);
    assert_int_equal(port_of(s->io.fd, false), first); /* bound while idle */
    for (i = 0; i < 5; i++) {
        t = sock_pool_get(&pool, &dst, on_io, &pool, &is_reused);
        assert_ptr_equal(t, s);
        assert_true(is_reused);
        port = one_connection(&pool, t, lfd, &addr);
        assert_int_equal(port, first);
        sock_pool_put(&pool, t, true);
        assert_int_equal(pool.n_idle[0], 1);
    }
    assert_int_equal(pool.n_opened, 1);
    assert_int_equal(pool.n_ports_taken, 0);
    sock_pool_fini(&pool);

    sock_pool_init(&pool, loop, 2, EVENTS);
    pool.is_keeping_ports = false;
    s = sock_pool_get(&pool, &dst, on_io, &pool, &is_reused);
    first = one_connection(&pool, s, lfd, &addr);
    assert_int_equal(s->port, 0);
    sock_pool_put(&pool, s, true);
    assert_false(s->is_bound);
    t = sock_pool_get(&pool, &dst, on_io, &pool, &is_reused);
    assert_ptr_equal(t, s);
    port = one_connection(&pool, t, lfd, &addr);
    assert_int_not_equal(port, first);
    sock_pool_put(&pool, t, true);
    sock_pool_fini(&pool);
    close(lfd);
    loop_free(loop);
}

/* A kept port whose 4-tuple another socket has taken meanwhile (EADDRNOTAVAIL) is
 * given up: the connection goes out on a new socket from a new port. A bound socket
 * never serves an origin that is not on loopback (nothing connects there: the
 * socket is only lent). */
static void test_taken_port_is_swapped(void **state)
{
    struct loop *loop = loop_new();
    struct sock_pool pool;
    struct sockaddr_in addr, from;
    int lfd = listener(&addr), other, peer, one = 1, old_fd;
    struct sockaddr_storage dst = dst_of(&addr), remote;
    struct pooled_sock *s, *t, *r;
    uint16_t first, port;
    bool is_reused;

    (void)state;
    s = bound_socket(&pool, loop, &dst, lfd, &addr, &first);

    assert_int_equal(addr_parse_hostport("192.0.2.1:9", &remote), 0);
    r = sock_pool_get(&pool, &remote, on_io, &pool, &is_reused);
    assert_false(is_reused); /* the bound one stays for loopback */
    assert_ptr_not_equal(r, s);
    assert_int_equal(pool.n_idle[0], 1);
    sock_pool_put(&pool, r, false);

    other = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(setsockopt(other, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
    from = addr;
    from.sin_port = htons(first);
    assert_int_equal(bind(other, (struct sockaddr *)&from, sizeof(from)), 0);
    assert_int_equal(connect(other, (struct sockaddr *)&addr, sizeof(addr)), 0);
    peer = accept(lfd, NULL, NULL);
    assert_int_equal(port_of(peer, true), first);

    t = sock_pool_get(&pool, &dst, on_io, &pool, &is_reused);
    assert_ptr_equal(t, s);
    old_fd = t->io.fd;
    port = one_connection(&pool, t, lfd, &addr);
    assert_int_not_equal(port, first);
    assert_int_equal(pool.n_ports_taken, 1);
    assert_int_equal(pool.n_opened, 3);
    assert_int_equal(fcntl(old_fd, F_GETFD), -1); /* the old socket is closed */
    sock_pool_put(&pool, t, true);
    assert_int_equal(t->port, port); /* the new socket keeps its own port */
    assert_true(t->is_bound);
    close(other);
    close(peer);
    sock_pool_fini(&pool);
    close(lfd);
    loop_free(loop);
}

static struct loop_io fetched_a, fetched_b;
static int n_a, n_b;

static void on_a(struct loop *loop, struct loop_io *io, uint32_t events)
{
    char c;

    (void)events;
    assert_int_equal(read(io->fd, &c, 1), 1);
    if (++n_a == 1)
        loop_io_forget_fetched(loop, &fetched_b);
}

static void on_b(struct loop *loop, struct loop_io *io, uint32_t events)
{
    char c;

    (void)loop;
    (void)events;
    assert_int_equal(read(io->fd, &c, 1), 1);
    n_b++;
}

/* loop_io_forget_fetched drops what this batch fetched for a handle but leaves it
 * registered: its readiness is reported again in the next batch. */
static void test_forget_fetched_keeps_registration(void **state)
{
    struct loop *loop = loop_new();
    int pa[2], pb[2];

    (void)state;
    assert_int_equal(pipe(pa), 0);
    assert_int_equal(pipe(pb), 0);
    assert_int_equal(write(pa[1], "a", 1), 1);
    assert_int_equal(write(pb[1], "b", 1), 1);
    /* Both ready when added: epoll reports them in the order they were added. */
    assert_int_equal(loop_io_add(loop, &fetched_a, pa[0], EPOLLIN, on_a), 0);
    assert_int_equal(loop_io_add(loop, &fetched_b, pb[0], EPOLLIN, on_b), 0);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(n_a, 1);
    assert_int_equal(n_b, 0); /* fetched in the batch, forgotten by a */
    assert_true(fetched_b.is_added);
    assert_int_equal(loop_run_once(loop, 0), 0); /* level-triggered: b again */
    assert_int_equal(n_a, 1);
    assert_int_equal(n_b, 1);
    loop_io_del(loop, &fetched_a);
    loop_io_del(loop, &fetched_b);
    close(pa[0]);
    close(pa[1]);
    close(pb[0]);
    close(pb[1]);
    loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_close_is_reused),
        cmocka_unit_test(test_unclean_sockets_are_closed),
        cmocka_unit_test(test_loopback_origin_keeps_port),
        cmocka_unit_test(test_taken_port_is_swapped),
        cmocka_unit_test(test_forget_fetched_keeps_registration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
