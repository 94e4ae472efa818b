/* tests/unit/test_sockpool.c: src/net/sockpool.c, origin sockets kept for reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/bug.h"
#include "core/loop.h"
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

/* Connects <s> (non-blocking) and returns the accepted peer, blocking. */
static int connect_accept(struct pooled_sock *s, int lfd, const struct sockaddr_in *addr)
{
    struct pollfd pfd = {.fd = s->io.fd, .events = POLLOUT};
    int rc = connect(s->io.fd, (const struct sockaddr *)addr, sizeof(*addr));
    int peer;

    assert_true(rc == 0 || errno == EINPROGRESS);
    peer = accept(lfd, NULL, NULL);
    assert_true(peer >= 0);
    assert_int_equal(poll(&pfd, 1, 2000), 1);
    return peer;
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
    bool is_reused;
    char buf[8];

    (void)state;
    assert_non_null(loop);
    sock_pool_init(&pool, loop, 2, EVENTS);
    s = sock_pool_get(&pool, AF_INET, on_io, &owner1, &is_reused);
    assert_non_null(s);
    assert_false(is_reused);
    assert_int_equal(pool.n_opened, 1);
    peer = connect_accept(s, lfd, &addr);
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

    t = sock_pool_get(&pool, AF_INET, on_io, &owner2, &is_reused);
    assert_ptr_equal(t, s);
    assert_true(is_reused);
    assert_int_equal(pool.n_reused, 1);
    assert_int_equal(pool.n_opened, 1);
    assert_int_equal(pool.n_idle[0], 0);
    peer = connect_accept(t, lfd, &addr);
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
    bool is_reused;
    char c;

    (void)state;
    sock_pool_init(&pool, loop, 1, EVENTS);

    s = sock_pool_get(&pool, AF_INET, on_io, &pool, &is_reused);
    peer = connect_accept(s, lfd, &addr);
    sock_pool_put(&pool, s, true); /* established: the caller's word is not enough */
    assert_int_equal(pool.n_idle[0], 0);
    assert_int_equal(recv(peer, &c, 1, 0), 0); /* it was closed: its FIN came */
    close(peer);

    s = sock_pool_get(&pool, AF_INET, on_io, &pool, &is_reused);
    assert_false(is_reused);
    peer = connect_accept(s, lfd, &addr);
    close_both_ways(s, peer);
    sock_pool_put(&pool, s, false);
    assert_int_equal(pool.n_idle[0], 0);

    s = sock_pool_get(&pool, AF_INET, on_io, &pool, &is_reused);
    peer = connect_accept(s, lfd, &addr);
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

    a = sock_pool_get(&pool, AF_INET, on_io, &pool, &is_reused);
    b = sock_pool_get(&pool, AF_INET, on_io, &pool, &is_reused);
    assert_ptr_not_equal(a, b);
    pa = connect_accept(a, lfd, &addr);
    pb = connect_accept(b, lfd, &addr);
    close_both_ways(a, pa);
    close_both_ways(b, pb);
    sock_pool_put(&pool, a, true);
    sock_pool_put(&pool, b, true);
    assert_int_equal(pool.n_idle[0], 1); /* max_idle */
    assert_int_equal(pool.n_reused, 0);
    assert_int_equal(pool.n_opened, 5);

    assert_null(sock_pool_get(&pool, AF_UNIX, on_io, &pool, &is_reused));
    assert_int_equal(errno, EAFNOSUPPORT);
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
        cmocka_unit_test(test_forget_fetched_keeps_registration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
