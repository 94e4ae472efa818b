/* tests/unit/test_sock.c: src/net/sock.c. The data plane relies on accepted sockets
 * inheriting the listener's TCP options (no setsockopt per accept); this pins it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/addr.h"
#include "net/sock.h"

static int getint(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);

    assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

static void accept_pair(const char *ip, int *lfd, int *cfd, int *sfd)
{
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);
    struct sock_tcp_opts o = {.user_timeout_ms = 4000};
    struct pollfd p;

    assert_int_equal(addr_parse_ip(ip, &a), 0);
    *lfd = sock_listen(&a, false, false, 16, &o);
    assert_true(*lfd >= 0);
    assert_int_equal(getsockname(*lfd, (struct sockaddr *)&a, &len), 0);
    *cfd = socket(a.ss_family, SOCK_STREAM, 0);
    assert_int_equal(connect(*cfd, (struct sockaddr *)&a, addr_len(&a)), 0);
    p.fd = *lfd;
    p.events = POLLIN;
    assert_int_equal(poll(&p, 1, 2000), 1);
    *sfd = accept(*lfd, NULL, NULL);
    assert_true(*sfd >= 0);
}

static void test_accepted_socket_inherits_tcp_options(void **state)
{
    const char *ips[] = {"127.0.0.1", "::1"};

    (void)state;
    for (int i = 0; i < 2; i++) {
        int l, c, s;
        accept_pair(ips[i], &l, &c, &s);
        assert_int_equal(getint(s, IPPROTO_TCP, TCP_NODELAY), 1);
        assert_int_equal(getint(s, SOL_SOCKET, SO_KEEPALIVE), 1);
        assert_int_equal(getint(s, IPPROTO_TCP, TCP_KEEPIDLE), 2);
        assert_int_equal(getint(s, IPPROTO_TCP, TCP_USER_TIMEOUT), 4000);
        close(s);
        close(c);
        close(l);
    }
}

static void test_v6_listener_is_v6only_and_reuseport(void **state)
{
    struct sockaddr_storage a;
    int fd;

    (void)state;
    assert_int_equal(addr_parse_ip("::1", &a), 0);
    fd = sock_listen(&a, true, false, 0, NULL);
    assert_true(fd >= 0);
    assert_int_equal(getint(fd, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    assert_int_equal(getint(fd, SOL_SOCKET, SO_REUSEPORT), 1);
    close(fd);
}

static void test_listen_on_foreign_address_fails_cleanly(void **state)
{
    struct sockaddr_storage a;

    (void)state;
    assert_int_equal(addr_parse_ip("192.0.2.1", &a), 0); /* TEST-NET-1: not ours */
    addr_set_port(&a, 7);
    assert_int_equal(sock_listen(&a, false, false, 16, NULL), -EADDRNOTAVAIL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_socket_inherits_tcp_options),
        cmocka_unit_test(test_v6_listener_is_v6only_and_reuseport),
        cmocka_unit_test(test_listen_on_foreign_address_fails_cleanly),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
