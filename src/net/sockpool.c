/* src/net/sockpool.c: origin sockets that outlive their connection (see sockpool.h). */
#include "net/sockpool.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/sock.h"

void sock_pool_init(struct sock_pool *pool, struct loop *loop, size_t max_idle, uint32_t events)
{
    memset(pool, 0, sizeof(*pool));
    pool->loop = loop;
    pool->max_idle = max_idle;
    pool->events = events;
    slab_pool_init(&pool->objs, sizeof(struct pooled_sock));
}

static void sock_close(struct sock_pool *pool, struct pooled_sock *s)
{
    loop_io_close(pool->loop, &s->io);
    slab_free(&pool->objs, s);
}

void sock_pool_fini(struct sock_pool *pool)
{
    for (int f = 0; f < 2; f++) {
        while (pool->idle[f]) {
            struct pooled_sock *s = pool->idle[f];
            pool->idle[f] = s->next;
            sock_close(pool, s);
        }
        pool->n_idle[f] = 0;
    }
    slab_pool_fini(&pool->objs);
}

struct pooled_sock *sock_pool_get(struct sock_pool *pool, int family, loop_io_fn cb, void *owner,
                                  bool *is_reused)
{
    struct pooled_sock *s;
    int fam, fd, err;

    if (family != AF_INET && family != AF_INET6) {
        errno = EAFNOSUPPORT;
        return NULL;
    }
    fam = family == AF_INET6;
    s = pool->idle[fam];
    if (s) {
        pool->idle[fam] = s->next;
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
    fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        err = errno;
        slab_free(&pool->objs, s);
        errno = err;
        return NULL;
    }
    (void)sock_set_nodelay(fd);
    err = loop_io_add(pool->loop, &s->io, fd, pool->events, cb);
    if (err < 0) {
        close(fd);
        slab_free(&pool->objs, s);
        errno = -err;
        return NULL;
    }
    s->fam = (uint8_t)fam;
    s->owner = owner;
    pool->n_opened++;
    *is_reused = false;
    return s;
}

/* Whether <fd> may serve another connection: the kernel has it in CLOSE (our FIN
 * acknowledged and theirs received: the 4-tuple lives on in TIME_WAIT) and no error
 * is pending, which a disconnect would not clear and the next connect would report
 * as its own. Reading SO_ERROR clears it, but a socket with one is closed anyway. */
static bool is_closed_cleanly(int fd)
{
    uint8_t state = 0; /* tcpi_state, the first byte of struct tcp_info */
    socklen_t len = sizeof(state);

    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &state, &len) == -1 || len < 1 || state != TCP_CLOSE)
        return false;
    return sock_error(fd) == 0;
}

void sock_pool_put(struct sock_pool *pool, struct pooled_sock *s, bool is_clean)
{
    struct sockaddr sa = {.sa_family = AF_UNSPEC};
    int fam = s->fam;

    s->owner = NULL;
    if (!is_clean || pool->n_idle[fam] >= pool->max_idle || !is_closed_cleanly(s->io.fd) ||
        connect(s->io.fd, &sa, sizeof(sa)) == -1) {
        sock_close(pool, s);
        return;
    }
    /* The socket stays registered: only what this batch already fetched for it
     * belongs to the old owner (see sockpool.h). */
    loop_io_forget_fetched(pool->loop, &s->io);
    s->next = pool->idle[fam];
    pool->idle[fam] = s;
    pool->n_idle[fam]++;
}
