/* src/net/sock.h: socket creation and options. */
#ifndef NET_SOCK_H
#define NET_SOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct sock_tcp_opts {
    uint32_t user_timeout_ms; /* TCP_USER_TIMEOUT; also sizes the keepalive probes; 0 = off */
};

/* Opens a non-blocking listening socket on <addr> (TCP when <is_udp> is false),
 * with SO_REUSEPORT so that each worker can hold its own, IPV6_V6ONLY on IPv6, and
 * for TCP the options of <opts> set on the listener so accepted sockets inherit
 * them (Linux copies TCP_NODELAY, keepalive and TCP_USER_TIMEOUT at accept).
 * For UDP, IP_PKTINFO / IPV6_RECVPKTINFO are enabled so replies can leave from the
 * address a datagram arrived on. With <is_freebind>, IP_FREEBIND lets it bind an
 * address that is routed to this node but not assigned to an interface (edge pool
 * addresses, e.g. an IPv6 prefix routed "local" to lo); Linux honours IP_FREEBIND
 * on IPv6 sockets too. Returns the fd or a negative errno. */
int sock_listen(const struct sockaddr_storage *addr, bool is_udp, bool is_freebind, int backlog,
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
