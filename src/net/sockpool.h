/* src/net/sockpool.h: a per-worker pool of TCP sockets for origin connections.
 *
 * A connection to an origin that ended cleanly (both FINs exchanged, our receive
 * side read to EOF) leaves a socket in state CLOSE whose 4-tuple already lives on in
 * a TIME_WAIT entry of its own. connect(AF_UNSPEC) turns that socket back into a new,
 * unbound one, and the next connection to an origin of the same family connects it
 * again (from a new ephemeral port, or for a loopback origin the same one: below),
 * instead of paying for socket(), TCP_NODELAY, EPOLL_CTL_ADD and the close() that
 * tears the file, the dentry and the epoll item down. HAProxy and nginx do not do
 * this; it measured 64 to 73 us of CPU per connect, exchange and close with a new
 * socket each time against 50 to 52 reusing one (loopback, a client and an echo
 * origin on two cores).
 *
 * Each socket stays registered in the worker's loop for its whole life, edge-
 * triggered, with the events given at sock_pool_init; so the loop_io lives here,
 * not in the connection, and its <owner> says who gets the events (none while
 * idle: they are dropped). An event fetched before a socket went back to the pool
 * is forgotten as it goes back (loop_io_forget_fetched), and epoll computes what it
 * reports when it delivers, from the socket as it is then: a wakeup queued by the
 * old connection reports nothing, or what the new one's socket really is.
 *
 * Loopback origins keep their port. A connect() without a bound port searches the
 * ephemeral range for one whose 4-tuple is free; with the range full of this
 * worker's own TIME_WAIT entries (every connection it shut down first leaves one for
 * 60 s) the search walks many ports, reading the clock for each TIME_WAIT it may not
 * reuse yet (tcp_twsk_unique): in cpu-clock profiles of the connection benchmark
 * (connect, 64 bytes each way, close; origin on loopback) that search was 22% of the
 * worker's CPU. So before a socket's first connect to a loopback origin the pool sets
 * SO_REUSEADDR (its TIME_WAIT entry must allow the bind back) and binds port 0,
 * which with SO_REUSEADDR finds a port no other socket holds; the bucket of that port
 * allows reuse, so other sockets' connect() passes it over. When the socket comes
 * back clean it binds that port again, explicitly, so the port stays with it through
 * every later disconnect; its next connect to the same origin takes over its own
 * TIME_WAIT entry, as the kernel allows for an explicitly bound port when the entry
 * carries timestamps, without any search. A standalone loop of connect, 64 bytes,
 * close measured 51 us of CPU per connection with the search and 30 us with the port
 * kept. Only loopback origins, and only while net.ipv4.tcp_tw_reuse lets the kernel
 * reuse a loopback TIME_WAIT port itself (1, or 2, the default): nothing is lost in
 * flight there, so the origin has always seen our last ACK and is done with the old
 * connection. A bound socket serves loopback origins only; one whose connect finds
 * the 4-tuple taken (EADDRNOTAVAIL: another socket connected from that port to that
 * origin) is swapped for a new socket on the spot, and one whose connection went
 * without timestamps does not keep its port; the pool then stops keeping ports (on
 * loopback that means the kernel's timestamps are off) until it is restarted.
 *
 * Kept ports are bound on the wildcard address. Binding the loopback address itself
 * (127.0.0.1, ::1) spares the kernel two updates of its table of bound addresses per
 * connection, one as connect() sets the source address and one as connect(AF_UNSPEC)
 * clears it: 1.9% of the worker's samples in a cpu-clock profile of the connection
 * benchmark (2026-12-07), gone with the bind. The bench did not see it (prism-b, 9
 * rounds each): 1.00 times the connections per busy core (better in 5 of 9 rounds) and
 * 1.00 times the connections/s (6 of 9), and with busy_poll_us 0 on both 1.00 and 0.99
 * times (4 and 3 of 9). The load side bounds the rate; with the spin the worker spins
 * away what it saves (core/loop.c), and without it a 2% saving is within the spread of
 * its connections per busy core between rounds (25,785 to 29,987 in that run). Left
 * out.
 *
 * Loopback origins are not paced. When the namespace's default congestion control is
 * BBR (net.ipv4.tcp_congestion_control), every socket paces what it sends to its model
 * of the path's bandwidth, with kernel timers; a loopback origin has no path to model,
 * and nothing is ever lost on the way, so a socket connecting to one is switched to
 * reno (built in, and allowed to every user), and back to the default should it later
 * serve a remote origin. In the bench harness (1 worker, iperf3 through prism to an
 * origin on loopback, 7 rounds, 2026-12-07, bbr the machine's default), origin sockets
 * with reno moved 1.84 times the bytes on 1 stream and 1.66 times on 8 (better in 7 of
 * 7 rounds each), at 1.85 and 1.32 times the Gbit/s per busy core, and made 1.04 times
 * the connections/s (5 of 7); cubic instead of reno gave about the same (1.89 and 1.70
 * times). The iperf3 client in that test, and the proxies beside prism, still pace.
 * Client sockets keep the default: reno on those accepted from a loopback client (one
 * setsockopt each) gave 1.01 times the connections/s (better in 2 of 7 rounds).
 * Any other default is left alone: it does not pace unless asked to (fq qdisc).
 *
 * Sockets closed with a reset, after an error or a failed connect, or while a FIN is
 * not yet acknowledged (FIN_WAIT, CLOSING, LAST_ACK) are closed, never pooled:
 * disconnecting those would send a reset or drop the FIN. Owned by one thread. */
#ifndef NET_SOCKPOOL_H
#define NET_SOCKPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/loop.h"
#include "core/slab.h"

struct pooled_sock {
    struct loop_io io;        /* io.fd is the socket; registered for the socket's life */
    void *owner;              /* the connection using it; NULL while idle */
    struct pooled_sock *next; /* in the pool's idle list */
    uint32_t keepalive_ms;    /* user timeout of its keepalive options; 0: never set */
    uint16_t port;            /* local port to keep (host order); 0: none */
    bool is_cc_local;         /* congestion control switched for a loopback origin */
    uint8_t fam;              /* 0: AF_INET, 1: AF_INET6 */
    bool is_reuseaddr;        /* SO_REUSEADDR set */
    bool is_bound;            /* <port> bound: serves loopback origins only */
};

struct sock_pool {
    struct loop *loop;
    struct slab_pool objs;          /* struct pooled_sock */
    struct pooled_sock *idle[2][2]; /* by fam, then by is_bound */
    size_t n_idle[2];               /* by fam, both lists */
    size_t max_idle;                /* per family; beyond it, returned sockets are closed */
    uint32_t events;                /* what every socket is registered for */
    uint64_t n_opened;
    uint64_t n_reused;      /* handed out again after a clean close */
    uint64_t n_ports_taken; /* bound sockets swapped for new ones at connect */
    bool is_keeping_ports;  /* for loopback origins (above); tcp_tw_reuse and timestamps */
    bool is_cc_known;       /* cc_default read from a new socket */
    char cc_default[16];    /* the namespace's congestion control (TCP_CA_NAME_MAX) */
    const char *cc_local;   /* what loopback origins get instead; NULL: the default */
};

void sock_pool_init(struct sock_pool *pool, struct loop *loop, size_t max_idle, uint32_t events);
/* Closes the idle sockets; sockets lent out must be returned first. */
void sock_pool_fini(struct sock_pool *pool);

/* Lends a non-blocking TCP socket for a connection to <dst> (AF_INET, AF_INET6) with
 * TCP_NODELAY, not connected, registered in the loop; its events go to <cb> with
 * &s->io while <owner> holds it. *<is_reused> says whether it served an earlier
 * connection. Returns NULL with errno set (EMFILE, ENOMEM, EAFNOSUPPORT). */
struct pooled_sock *sock_pool_get(struct sock_pool *pool, const struct sockaddr_storage *dst,
                                  loop_io_fn cb, void *owner, bool *is_reused);

/* Starts the non-blocking connect of <s> to <dst>, the address it was lent for; a
 * loopback origin's socket keeps its port (above), and may be swapped for a new one
 * (s->io.fd changes; read it afterwards). Returns 0 (connected or in progress) or
 * -errno. */
int sock_pool_connect(struct sock_pool *pool, struct pooled_sock *s,
                      const struct sockaddr_storage *dst);

/* Takes back <s>, whose callback never runs again for <owner>. With <is_clean> (both
 * FINs exchanged: ours sent with shutdown(), theirs read as EOF; no error seen, no
 * reset asked for), a socket the kernel has in state CLOSE with no pending error is
 * disconnected and kept; any other is closed. */
void sock_pool_put(struct sock_pool *pool, struct pooled_sock *s, bool is_clean);

#endif
