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
#include <netinet/udp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
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
    *lfd = sock_listen(&a, SOCK_LISTEN_SHARED, 16, &o);
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
    fd = sock_listen(&a, SOCK_LISTEN_UDP | SOCK_LISTEN_SHARED | SOCK_LISTEN_PKTINFO, 0, NULL);
    assert_true(fd >= 0);
    assert_int_equal(getint(fd, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    assert_int_equal(getint(fd, SOL_SOCKET, SO_REUSEPORT), 1);
    close(fd);
}

/* Only a shared socket lets a second one bind its port: the API and the DNS responder
 * open theirs unshared, so that a second server on the same port fails to start. */
static void test_unshared_listener_refuses_a_second_bind(void **state)
{
    const unsigned kinds[] = {0, SOCK_LISTEN_UDP};
    struct sockaddr_storage a;
    socklen_t len = sizeof(a);

    (void)state;
    for (int i = 0; i < 2; i++) {
        int fd, fd2;

        assert_int_equal(addr_parse_ip("127.0.0.1", &a), 0);
        fd = sock_listen(&a, kinds[i], 16, NULL);
        assert_true(fd >= 0);
        assert_int_equal(getint(fd, SOL_SOCKET, SO_REUSEPORT), 0);
        assert_int_equal(getint(fd, SOL_SOCKET, SO_REUSEADDR), kinds[i] ? 0 : 1);
        assert_int_equal(getint(fd, IPPROTO_IP, IP_PKTINFO), 0);
        len = sizeof(a);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        assert_int_equal(sock_listen(&a, kinds[i], 16, NULL), -EADDRINUSE);
        assert_int_equal(sock_listen(&a, kinds[i] | SOCK_LISTEN_SHARED, 16, NULL), -EADDRINUSE);
        close(fd);

        addr_set_port(&a, 0);
        fd = sock_listen(&a, kinds[i] | SOCK_LISTEN_SHARED | SOCK_LISTEN_PKTINFO, 16, NULL);
        assert_true(fd >= 0);
        assert_int_equal(getint(fd, IPPROTO_IP, IP_PKTINFO), kinds[i] ? 1 : 0);
        len = sizeof(a);
        assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
        fd2 = sock_listen(&a, kinds[i] | SOCK_LISTEN_SHARED, 16, NULL);
        assert_true(fd2 >= 0);
        close(fd2);
        close(fd);
    }
}

static void test_listen_on_foreign_address_fails_cleanly(void **state)
{
    struct sockaddr_storage a;

    (void)state;
    assert_int_equal(addr_parse_ip("192.0.2.1", &a), 0); /* TEST-NET-1: not ours */
    addr_set_port(&a, 7);
    assert_int_equal(sock_listen(&a, SOCK_LISTEN_SHARED, 16, NULL), -EADDRNOTAVAIL);
}

/* The UDP_SEGMENT message goes after the ones already there, and only if it fits. */
static void test_udp_segment_is_appended_after_pktinfo(void **state)
{
    union {
        uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } u;
    struct in6_pktinfo pi = {.ipi6_ifindex = 7};
    struct msghdr m = {.msg_control = u.buf, .msg_controllen = CMSG_SPACE(sizeof(pi))};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    uint16_t seg = 0;

    (void)state;
    cm->cmsg_level = IPPROTO_IPV6;
    cm->cmsg_type = IPV6_PKTINFO;
    cm->cmsg_len = CMSG_LEN(sizeof(pi));
    memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
    assert_true(sock_add_udp_segment(&m, NULL, sizeof(u.buf), 1234));
    assert_int_equal(m.msg_controllen, sizeof(u.buf));
    cm = CMSG_FIRSTHDR(&m);
    assert_int_equal(cm->cmsg_type, IPV6_PKTINFO);
    cm = CMSG_NXTHDR(&m, cm);
    assert_non_null(cm);
    assert_int_equal(cm->cmsg_level, IPPROTO_UDP);
    assert_int_equal(cm->cmsg_type, UDP_SEGMENT);
    assert_int_equal(cm->cmsg_len, CMSG_LEN(sizeof(seg)));
    memcpy(&seg, CMSG_DATA(cm), sizeof(seg));
    assert_int_equal(seg, 1234);
    assert_null(CMSG_NXTHDR(&m, cm));
    /* full: no change */
    assert_false(sock_add_udp_segment(&m, NULL, sizeof(u.buf), 99));
    assert_int_equal(m.msg_controllen, sizeof(u.buf));
    /* no control buffer yet: <buf> becomes it */
    memset(&m, 0, sizeof(m));
    assert_true(sock_add_udp_segment(&m, u.buf, sizeof(u.buf), 5));
    assert_ptr_equal(m.msg_control, u.buf);
    assert_int_equal(m.msg_controllen, CMSG_SPACE(sizeof(seg)));
}

/* One GSO send of 10 + 10 + 4 bytes arrives as three datagrams. */
static void test_gso_send_arrives_as_separate_datagrams(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    union {
        uint8_t buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } u;
    char data[] = "0123456789abcdefghijWXYZ", got[64];
    struct iovec iov[2] = {{data, 15}, {data + 15, 9}};
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
    int rfd = socket(AF_INET, SOCK_DGRAM, 0), sfd = socket(AF_INET, SOCK_DGRAM, 0);

    (void)state;
    assert_true(sock_has_udp_gso()); /* Linux 4.18 and later; Debian 12 has 6.1 */
    assert_true(rfd >= 0 && sfd >= 0);
    assert_int_equal(bind(rfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(rfd, (struct sockaddr *)&a, &len), 0);
    assert_int_equal(connect(sfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_true(sock_add_udp_segment(&m, u.buf, sizeof(u.buf), 10));
    assert_int_equal(sendmsg(sfd, &m, 0), 24);
    assert_int_equal(recv(rfd, got, sizeof(got), 0), 10);
    assert_memory_equal(got, "0123456789", 10);
    assert_int_equal(recv(rfd, got, sizeof(got), 0), 10);
    assert_memory_equal(got, "abcdefghij", 10);
    assert_int_equal(recv(rfd, got, sizeof(got), 0), 4);
    assert_memory_equal(got, "WXYZ", 4);
    close(rfd);
    close(sfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted_socket_inherits_tcp_options),
        cmocka_unit_test(test_v6_listener_is_v6only_and_reuseport),
        cmocka_unit_test(test_unshared_listener_refuses_a_second_bind),
        cmocka_unit_test(test_listen_on_foreign_address_fails_cleanly),
        cmocka_unit_test(test_udp_segment_is_appended_after_pktinfo),
        cmocka_unit_test(test_gso_send_arrives_as_separate_datagrams),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
