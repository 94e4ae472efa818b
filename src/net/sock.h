/* src/net/sock.h: socket creation and options. */
#ifndef NET_SOCK_H
#define NET_SOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct sock_tcp_opts {
    uint32_t user_timeout_ms; /* TCP_USER_TIMEOUT; also sizes the keepalive probes; 0 = off */
};

/* What sock_listen() opens (flags, or-ed). */
enum sock_listen_flag {
    SOCK_LISTEN_UDP = 1 << 0, /* a UDP socket; a TCP listener without it */
    /* SO_REUSEPORT, so that each worker can hold its own. Without it a second socket on
     * the same address and port fails to bind, loudly (the API, the DNS responder). */
    SOCK_LISTEN_SHARED = 1 << 1,
    /* IP_PKTINFO / IPV6_RECVPKTINFO (UDP), so that replies can leave from the address a
     * datagram arrived on: needed on a wildcard address or a shared port. */
    SOCK_LISTEN_PKTINFO = 1 << 2,
    /* IP_FREEBIND: the address may be routed to this node without being assigned to an
     * interface (edge pool addresses, e.g. an IPv6 prefix routed "local" to lo); Linux
     * honours it on IPv6 sockets too. */
    SOCK_LISTEN_FREEBIND = 1 << 3,
};

/* Opens a non-blocking socket bound to <addr> as <flags> (enum sock_listen_flag) say,
 * with IPV6_V6ONLY on IPv6 and SO_REUSEADDR on a TCP listener (so that a restart is
 * not refused over TIME_WAIT) and on a shared UDP socket. A TCP listener listens with
 * <backlog>, and the options of <opts> (may be NULL) are set on it so that accepted
 * sockets inherit them (Linux copies TCP_NODELAY, keepalive and TCP_USER_TIMEOUT at
 * accept). Returns the fd or a negative errno. */
int sock_listen(const struct sockaddr_storage *addr, unsigned flags, int backlog,
                const struct sock_tcp_opts *opts);

/* Sets TCP_NODELAY, SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT and TCP_USER_TIMEOUT. */
int sock_set_tcp_opts(int fd, const struct sock_tcp_opts *opts);

/* The two halves of sock_set_tcp_opts(): TCP_NODELAY alone, and the dead-peer
 * detection (keepalive and TCP_USER_TIMEOUT; nothing when user_timeout_ms is 0). */
int sock_set_nodelay(int fd);
int sock_set_keepalive(int fd, const struct sock_tcp_opts *opts);

/* Sets the receive buffer of <fd> to <bytes> as SO_RCVBUF does (Linux doubles it for
 * its bookkeeping). SO_RCVBUFFORCE is tried first, so that with CAP_NET_ADMIN the
 * size is not capped by net.core.rmem_max; without it the kernel caps it quietly.
 * Returns the size the kernel reports afterwards (doubled), or a negative errno. */
int sock_set_rcvbuf(int fd, uint32_t bytes);

/* Whether the kernel can segment UDP sends (UDP_SEGMENT, Linux 4.18): one send of
 * several equal-sized datagrams, cut into datagrams by the kernel (GSO). A kernel
 * without it would send the lot as one datagram, so callers must ask first. */
bool sock_has_udp_gso(void);

/* Turns UDP_GRO on for <fd> (Linux 5.0): the kernel may then hand one receive a run of
 * datagrams from one sender, all of one size but the last, as one buffer, with that
 * size in a UDP_GRO control message (sock_udp_gro_size). It does so for a GSO send
 * that arrives whole (over loopback) and for datagrams a NIC's GRO merged; without it
 * the kernel cuts them apart first, one buffer each. A reader must then cut the
 * buffer itself. Returns 0 or a negative errno (old kernel: nothing changes). */
int sock_set_udp_gro(int fd);

/* The segment size of a received message (UDP_GRO control message), or 0 when the
 * message is one datagram. */
uint16_t sock_udp_gro_size(struct msghdr *m);

/* Appends a UDP_SEGMENT control message of <seg> bytes to <m>, whose control
 * buffer (msg_control, or <buf> when <m> has none) holds <cap> bytes. Returns
 * false if there is no room. */
bool sock_add_udp_segment(struct msghdr *m, void *buf, size_t cap, uint16_t seg);

/* Returns the pending error of <fd> (SO_ERROR) as a positive errno, or 0. */
int sock_error(int fd);

/* The kernel's net.ipv4.tcp_tw_reuse (0: never reuse a TIME_WAIT port on connect,
 * 1: always, 2: for loopback only, the default); -1 if unreadable. */
int sock_tw_reuse(void);

/* Makes the next close() of <fd> send a RST (SO_LINGER {1, 0}). */
void sock_set_reset_on_close(int fd);

#endif
