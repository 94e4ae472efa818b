/* src/net/sock.c: socket options in one place, so the data plane reads as logic. */
#include "net/sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <string.h>
#include <unistd.h>

#include "net/addr.h"

static int set_int(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value)) == -1 ? -errno : 0;
}

int sock_set_nodelay(int fd)
{
    return set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
}

int sock_set_keepalive(int fd, const struct sock_tcp_opts *opts)
{
    int err = 0;

    if (opts->user_timeout_ms > 0) {
        /* Probe an idle peer after half the budget, three times, so a dead peer is
         * found within about user_timeout_ms whether or not data is in flight
         * (Cloudflare, "When TCP sockets refuse to die"). */
        int idle_s = (int)(opts->user_timeout_ms / 2000);
        int intvl_s = (int)(opts->user_timeout_ms / 6000);
        if (idle_s < 1)
            idle_s = 1;
        if (intvl_s < 1)
            intvl_s = 1;
        err = set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
        if (err == 0)
            err = set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, idle_s);
        if (err == 0)
            err = set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, intvl_s);
        if (err == 0)
            err = set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, 3);
        if (err == 0)
            err = set_int(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, (int)opts->user_timeout_ms);
    }
    return err;
}

int sock_set_tcp_opts(int fd, const struct sock_tcp_opts *opts)
{
    int err = sock_set_nodelay(fd);

    return err == 0 ? sock_set_keepalive(fd, opts) : err;
}

int sock_listen(const struct sockaddr_storage *addr, unsigned flags, int backlog,
                const struct sock_tcp_opts *opts)
{
    bool is_udp = flags & SOCK_LISTEN_UDP, is_shared = flags & SOCK_LISTEN_SHARED;
    int type = (is_udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
    int fd, err;

    fd = socket(addr->ss_family, type, 0);
    if (fd == -1)
        return -errno;
    /* On UDP, SO_REUSEADDR alone would let a second socket bind the same port. */
    if ((!is_udp || is_shared) && (err = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1)) < 0)
        goto fail;
    if (is_shared && (err = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1)) < 0)
        goto fail;
    if (addr->ss_family == AF_INET6 && (err = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1)) < 0)
        goto fail;
    if ((flags & SOCK_LISTEN_FREEBIND) && (err = set_int(fd, IPPROTO_IP, IP_FREEBIND, 1)) < 0)
        goto fail;
    if (is_udp && (flags & SOCK_LISTEN_PKTINFO)) {
        if (addr->ss_family == AF_INET6)
            err = set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
        else
            err = set_int(fd, IPPROTO_IP, IP_PKTINFO, 1);
        if (err < 0)
            goto fail;
    } else if (!is_udp && opts && (err = sock_set_tcp_opts(fd, opts)) < 0) {
        goto fail;
    }
    if (bind(fd, (const struct sockaddr *)addr, addr_len(addr)) == -1) {
        err = -errno;
        goto fail;
    }
    if (!is_udp && listen(fd, backlog) == -1) {
        err = -errno;
        goto fail;
    }
    return fd;

fail:
    close(fd);
    return err;
}

int sock_set_rcvbuf(int fd, uint32_t bytes)
{
    int got = 0;
    socklen_t len = sizeof(got);

    if (set_int(fd, SOL_SOCKET, SO_RCVBUFFORCE, (int)bytes) < 0 &&
        set_int(fd, SOL_SOCKET, SO_RCVBUF, (int)bytes) < 0)
        return -errno;
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) == -1)
        return -errno;
    return got;
}

bool sock_has_udp_gso(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int seg = 0;
    socklen_t len = sizeof(seg);
    bool ok;

    if (fd == -1)
        return false;
    ok = getsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &seg, &len) == 0;
    close(fd);
    return ok;
}

int sock_set_udp_gro(int fd)
{
    return set_int(fd, IPPROTO_UDP, UDP_GRO, 1);
}

uint16_t sock_udp_gro_size(struct msghdr *m)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
        if (cm->cmsg_level == IPPROTO_UDP && cm->cmsg_type == UDP_GRO &&
            cm->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int seg;
            memcpy(&seg, CMSG_DATA(cm), sizeof(seg));
            return seg > 0 && seg <= UINT16_MAX ? (uint16_t)seg : 0;
        }
    }
    return 0;
}

bool sock_add_udp_segment(struct msghdr *m, void *buf, size_t cap, uint16_t seg)
{
    struct cmsghdr *cm;

    if (!m->msg_control) {
        m->msg_control = buf;
        m->msg_controllen = 0;
    }
    if (m->msg_controllen + CMSG_SPACE(sizeof(seg)) > cap)
        return false;
    /* The messages before it were laid out with CMSG_SPACE, so this is aligned. */
    cm = (struct cmsghdr *)((char *)m->msg_control + m->msg_controllen);
    cm->cmsg_level = IPPROTO_UDP;
    cm->cmsg_type = UDP_SEGMENT;
    cm->cmsg_len = CMSG_LEN(sizeof(seg));
    memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    m->msg_controllen += CMSG_SPACE(sizeof(seg));
    return true;
}

int sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        return errno;
    return err;
}

int sock_tw_reuse(void)
{
    char buf[8];
    int fd = open("/proc/sys/net/ipv4/tcp_tw_reuse", O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd == -1)
        return -1;
    n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 1 || buf[0] < '0' || buf[0] > '9')
        return -1;
    return buf[0] - '0';
}

void sock_set_reset_on_close(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};

    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}
