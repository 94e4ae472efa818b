/* src/net/sockpool.c: origin sockets that outlive their connection (see sockpool.h). */
#include "net/sockpool.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/addr.h"
#include "net/sock.h"

void sock_pool_init(struct sock_pool *pool, struct loop *loop, size_t max_idle, uint32_t events)
{
    memset(pool, 0, sizeof(*pool));
    pool->loop = loop;
    pool->max_idle = max_idle;
    pool->events = events;
    pool->is_keeping_ports = sock_tw_reuse() >= 1;
    slab_pool_init(&pool->objs, sizeof(struct pooled_sock));
}

static void sock_close(struct sock_pool *pool, struct pooled_sock *s)
{
    loop_io_close(pool->loop, &s->io);
    slab_free(&pool->objs, s);
}

/* Closes every idle socket of family <fam> in the list <is_bound> selects. */
static void close_idle(struct sock_pool *pool, int fam, int is_bound)
{
    while (pool->idle[fam][is_bound]) {
        struct pooled_sock *s = pool->idle[fam][is_bound];
        pool->idle[fam][is_bound] = s->next;
        pool->n_idle[fam]--;
        sock_close(pool, s);
    }
}

void sock_pool_fini(struct sock_pool *pool)
{
    for (int f = 0; f < 2; f++) {
        close_idle(pool, f, 0);
        close_idle(pool, f, 1);
    }
    slab_pool_fini(&pool->objs);
}

/* Gives <s> a new socket of its family, with TCP_NODELAY, registered in the loop with
 * <cb>, after closing the one it had if <has_old>. Returns 0 or -errno; on failure
 * before the old socket was closed, <s> keeps it. */
static int sock_open(struct sock_pool *pool, struct pooled_sock *s, loop_io_fn cb, bool has_old)
{
    int fd = socket(s->fam ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err;

    if (fd == -1)
        return -errno;
    (void)sock_set_nodelay(fd);
    if (has_old)
        loop_io_close(pool->loop, &s->io);
    err = loop_io_add(pool->loop, &s->io, fd, pool->events, cb);
    if (err < 0) {
        close(fd);
        s->io.fd = -1; /* what closes <s> closes nothing more */
        return err;
    }
    s->keepalive_ms = 0;
    s->is_cc_local = false;
    s->port = 0;
    s->is_reuseaddr = false;
    s->is_bound = false;
    pool->n_opened++;
    return 0;
}

struct pooled_sock *sock_pool_get(struct sock_pool *pool, const struct sockaddr_storage *dst,
                                  loop_io_fn cb, void *owner, bool *is_reused)
{
    struct pooled_sock *s, **list;
    int fam, err;

    if (dst->ss_family != AF_INET && dst->ss_family != AF_INET6) {
        errno = EAFNOSUPPORT;
        return NULL;
    }
    fam = dst->ss_family == AF_INET6;
    list = &pool->idle[fam][0];
    if (pool->is_keeping_ports && addr_is_loopback(dst) && pool->idle[fam][1])
        list = &pool->idle[fam][1];
    s = *list;
    if (s) {
        *list = s->next;
        pool->n_idle[fam]--;
        pool->n_reused++;
        s->next = NULL;
        s->io.cb = cb; /* the loop calls io->cb as it dispatches */
        s->owner = owner;
        *is_reused = true;
        return s;
    }
    s = slab_alloc(&pool->objs);
    if (!s) {
        errno = ENOMEM;
        return NULL;
    }
    s->fam = (uint8_t)fam;
    err = sock_open(pool, s, cb, false);
    if (err < 0) {
        slab_free(&pool->objs, s);
        errno = -err;
        return NULL;
    }
    s->next = NULL;
    s->owner = owner;
    *is_reused = false;
    return s;
}

/* Binds the socket of <s> to <port> of the wildcard address; 0: a port the kernel
 * finds that no other socket holds (with SO_REUSEADDR set, bind(0) passes over every
 * port with an owner). */
static bool bind_port(struct pooled_sock *s, uint16_t port)
{
    struct sockaddr_storage any = {.ss_family = (sa_family_t)(s->fam ? AF_INET6 : AF_INET)};

    addr_set_port(&any, port);
    return bind(s->io.fd, (struct sockaddr *)&any, addr_len(&any)) == 0;
}

/* Before the first connect of <s> to a loopback origin: SO_REUSEADDR, so that the
 * TIME_WAIT entry the connection leaves lets us bind its port again, and a port no
 * other socket holds, remembered in s->port. Its bucket then allows reuse, so other
 * sockets' connect() passes it over, and only another explicit bind can share it. The
 * bind that makes the port stick (an explicit port) waits until the socket comes
 * back: bind(0) leaves the port to go with the connection. */
static void take_port(struct pooled_sock *s)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof(local);
    int one = 1;

    if (!s->is_reuseaddr) {
        if (setsockopt(s->io.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
            return;
        s->is_reuseaddr = true;
    }
    /* No free port: the connect below searches as usual, and nothing is kept. */
    if (bind_port(s, 0) && getsockname(s->io.fd, (struct sockaddr *)&local, &len) == 0)
        s->port = addr_port(&local);
}

/* Gives <s> the congestion control its origin calls for (see sockpool.h): reno for a
 * loopback origin when the namespace's default is BBR, the default otherwise. The
 * default is read once, from the first socket to connect, which nothing changed yet. */
static void set_congestion_control(struct sock_pool *pool, struct pooled_sock *s, bool is_local)
{
    const char *name;

    if (!pool->is_cc_known) {
        socklen_t len = sizeof(pool->cc_default) - 1;

        pool->is_cc_known = true;
        if (getsockopt(s->io.fd, IPPROTO_TCP, TCP_CONGESTION, pool->cc_default, &len) == 0 &&
            strncmp(pool->cc_default, "bbr", 3) == 0)
            pool->cc_local = "reno";
    }
    if (!pool->cc_local || s->is_cc_local == is_local)
        return;
    name = is_local ? pool->cc_local : pool->cc_default;
    if (setsockopt(s->io.fd, IPPROTO_TCP, TCP_CONGESTION, name, (socklen_t)strlen(name)) == 0)
        s->is_cc_local = is_local;
    else if (is_local)
        pool->cc_local = NULL; /* not allowed here: stop asking */
}

int sock_pool_connect(struct sock_pool *pool, struct pooled_sock *s,
                      const struct sockaddr_storage *dst)
{
    bool is_local = addr_is_loopback(dst);
    bool is_kept = pool->is_keeping_ports && is_local;
    socklen_t len = addr_len(dst);
    int err;

    if (s->is_bound) {
        if (is_kept) {
            if (connect(s->io.fd, (const struct sockaddr *)dst, len) == 0 || errno == EINPROGRESS)
                return 0;
            if (errno != EADDRNOTAVAIL)
                return -errno;
        }
        /* The 4-tuple is taken, or the origin is not one to keep a port for. */
        err = sock_open(pool, s, s->io.cb, true);
        if (err < 0)
            return err;
        pool->n_ports_taken++;
    }
    set_congestion_control(pool, s, is_local);
    if (is_kept)
        take_port(s);
    if (connect(s->io.fd, (const struct sockaddr *)dst, len) == -1 && errno != EINPROGRESS)
        return -errno;
    return 0;
}

/* Whether <fd> may serve another connection: the kernel has it in CLOSE (our FIN
 * acknowledged and theirs received: the 4-tuple lives on in TIME_WAIT) and no error
 * is pending, which a disconnect would not clear and the next connect would report
 * as its own. Reading SO_ERROR clears it, but a socket with one is closed anyway.
 * *<has_ts>: the connection used TCP timestamps. */
static bool is_closed_cleanly(int fd, bool *has_ts)
{
    uint8_t info[6] = {0}; /* struct tcp_info up to tcpi_options */
    socklen_t len = sizeof(info);

    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, &len) == -1 || len < sizeof(info) ||
        info[0] != TCP_CLOSE)
        return false;
    *has_ts = (info[5] & TCPI_OPT_TIMESTAMPS) != 0;
    return sock_error(fd) == 0;
}

void sock_pool_put(struct sock_pool *pool, struct pooled_sock *s, bool is_clean)
{
    struct sockaddr sa = {.sa_family = AF_UNSPEC};
    int fam = s->fam;
    bool has_ts = false;

    s->owner = NULL;
    if (!is_clean || pool->n_idle[fam] >= pool->max_idle || !is_closed_cleanly(s->io.fd, &has_ts)) {
        sock_close(pool, s);
        return;
    }
    /* A loopback connection runs both ends on this kernel, so one without timestamps
     * says net.ipv4.tcp_timestamps is off: no TIME_WAIT entry can be taken over, and
     * taking a port would cost a bind and a getsockname per connection for nothing. */
    if (s->port && !has_ts && pool->is_keeping_ports) {
        pool->is_keeping_ports = false;
        close_idle(pool, 0, 1); /* the sockets that hold a port */
        close_idle(pool, 1, 1);
    }
    if ((s->is_bound && !has_ts) || connect(s->io.fd, &sa, sizeof(sa)) == -1) {
        sock_close(pool, s);
        return;
    }
    if (s->port && !s->is_bound) {
        s->is_bound = has_ts && bind_port(s, s->port);
        if (!s->is_bound)
            s->port = 0;
    }
    /* The socket stays registered: only what this batch already fetched for it
     * belongs to the old owner (see sockpool.h). */
    loop_io_forget_fetched(pool->loop, &s->io);
    s->next = pool->idle[fam][s->is_bound];
    pool->idle[fam][s->is_bound] = s;
    pool->n_idle[fam]++;
}
