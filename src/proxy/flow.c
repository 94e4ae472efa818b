/* src/proxy/flow.c: UDP flows (DESIGN.md section 4; issue #4).
 *
 * A flow is one client address and port talking to one edge address and port of
 * an app. Each flow has its own socket connect()ed to the origin, so the kernel
 * matches replies to flows for us, and an ICMP port unreachable comes back as
 * ECONNREFUSED on exactly that flow. The kernel's SO_REUSEPORT hash keeps a
 * client's datagrams on one worker, so the flow table is per worker and lock-free.
 *
 *   client --dgram--> edge socket (recvmmsg, IP_PKTINFO) --lookup/create flow-->
 *       [SPP header | PROXY v2 on the first] + payload --sendmmsg--> origin socket
 *   origin socket (recvmmsg) --[SPP: validate, strip]--> sendmmsg from the edge
 *       address the client used (IP_PKTINFO source on wildcard listeners)
 *
 * Both ways, a run of equal-sized datagrams of one flow that arrived in one batch
 * (clients and origins send in bursts) is one GSO message (UDP_SEGMENT) within the
 * sendmmsg: the kernel cuts it into the datagrams, for less than the cost of a
 * message each. Where the kernel refuses (a datagram over the route's MTU, which
 * it would fragment; no checksum offload on the route), the datagrams go one
 * message each, as they would without GSO.
 *
 * The other way round, edge sockets and the origin sockets of flows without SPP have
 * UDP_GRO on: a run of one sender's datagrams of one size that reaches prism as one
 * buffer (a GSO send over loopback, datagrams a NIC's GRO merged: QUIC and WireGuard
 * peers send that way) is read with one receive instead of one per datagram, with
 * its segment size beside it. Towards the origin such a buffer is cut back into its
 * datagrams (each may need a header); towards the client it leaves as the one GSO
 * message it came as, or datagram by datagram where the route refuses that. SPP
 * replies are checked one by one, so their sockets leave the cutting to the kernel.
 *
 * Memory: one receive batch of BATCH x 64 KiB per worker, allocated once, and one
 * struct flow per flow; nothing is allocated per datagram. A flow ends after
 * udp_idle_ms without a datagram in either direction (timer re-armed lazily),
 * when the origin refuses (ICMP), when its listener goes away, or at shutdown.
 * The number of flows per worker is capped (udp.max_flows_per_worker): past the
 * cap new clients are refused and counted while existing flows keep working.
 *
 * PROXY v2 on UDP: Spectrum prepends the header to the first datagram of a flow
 * only (spec/spectrum-docs.md); the 2026 PROXY spec asks receivers to parse one per
 * datagram. We follow Spectrum, since that is what origins built for it expect. */
#include "proxy/flow.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/bug.h"
#include "core/clock.h"
#include "net/addr.h"
#include "net/sock.h"
#include "proxy/pp.h"
#include "proxy/spp.h"

#define FLOW_BATCH 32
#define FLOW_DGRAM_MAX 65536
#define FLOW_HASH_BUCKETS 16384 /* power of two */
#define FLOW_HDR_MAX PP_MAX_LEN /* SPP (38) or PROXY v2 header */
#define FLOW_OUT_MAX 64         /* replies queued for one sendmmsg */
#define FLOW_GSO_SEGS 64        /* datagrams in one GSO send: the kernel takes 64 at least */
#define FLOW_GSO_BYTES 65000    /* bytes in one GSO send: under the 65,507 of one datagram */
#define FLOW_FWD_MAX 256        /* datagrams laid out for one sendmmsg towards an origin */

struct udp_listener {
    struct wlistener *wl;
    struct list_node flows; /* struct flow */
};

struct flow {
    struct loop_io io;       /* connected socket towards the origin; owned */
    struct loop_timer timer; /* idle timeout */
    struct worker *w;
    struct udp_listener *ul;
    struct wsnap *ws; /* counted in ws->live; keeps app alive */
    const struct app *app;
    struct sockaddr_storage client;
    struct sockaddr_storage edge; /* address and port the client sent to */
    struct sockaddr_storage origin;
    uint64_t created_ns;
    uint64_t last_active_ms;
    uint64_t client_bytes, origin_bytes;
    uint32_t hash;
    bool has_sent_pp; /* the PROXY v2 header went out with the first datagram */
    bool is_gso_off;  /* the kernel refused a GSO send towards this origin */
    bool is_closed;
    struct flow *hnext;    /* hash chain */
    struct list_node link; /* in ul->flows */
    struct loop_defer defer;
};

/* Replies on their way to clients. Every flow's reply leaves through its edge
 * socket, so the replies of all flows that woke in one loop iteration are sent
 * with one sendmmsg per edge socket at the end of the iteration (or when the
 * queue is full): one syscall per batch instead of one per flow. Origin sockets
 * are read with recvmmsg straight into the free slots. A run of one flow's
 * replies of equal size goes out as one GSO message (see the top of the file). */
struct udp_out {
    unsigned len;
    uint32_t tag;                      /* of the flow being read now */
    int fds[FLOW_OUT_MAX];             /* the edge socket each reply leaves from */
    uint32_t tags[FLOW_OUT_MAX];       /* replies in a row with one tag are one flow's */
    uint8_t *bufs[FLOW_OUT_MAX];       /* FLOW_DGRAM_MAX each; swapped when compacting */
    struct mmsghdr msgs[FLOW_OUT_MAX]; /* one per reply */
    struct iovec iovs[FLOW_OUT_MAX];
    struct sockaddr_storage names[FLOW_OUT_MAX];
    /* IP_PKTINFO or IPV6_PKTINFO, then UDP_SEGMENT when the reply starts a run */
    uint8_t ctrl[FLOW_OUT_MAX][CMSG_SPACE(sizeof(struct in6_pktinfo)) +
                               CMSG_SPACE(sizeof(uint16_t))] __attribute__((aligned(8)));
    uint16_t segs[FLOW_OUT_MAX]; /* a coalesced reply's segment size (UDP_GRO); 0: one */
    uint8_t rctrl[FLOW_OUT_MAX][CMSG_SPACE(sizeof(int))] __attribute__((aligned(8)));
    struct mmsghdr send[FLOW_OUT_MAX]; /* the messages: single replies and runs */
    unsigned send_n[FLOW_OUT_MAX];     /* replies in each message */
    struct loop_defer flush;
    uint8_t *mem; /* FLOW_OUT_MAX x FLOW_DGRAM_MAX */
};

/* One datagram of a client's run, cut out of a receive buffer. */
struct flow_dgram {
    uint8_t *p;
    size_t len;
};

struct udp_state {
    struct slab_pool flow_pool; /* struct flow */
    struct flow *buckets[FLOW_HASH_BUCKETS];
    size_t n_flows;
    uint8_t *bufs; /* FLOW_BATCH x FLOW_DGRAM_MAX */
    struct mmsghdr msgs[FLOW_BATCH];
    struct iovec iovs[FLOW_BATCH];
    struct sockaddr_storage names[FLOW_BATCH];
    uint8_t ctrl[FLOW_BATCH][96];       /* IP_PKTINFO or IPV6_PKTINFO, and UDP_GRO */
    struct flow_dgram dg[FLOW_FWD_MAX]; /* a run of one client's datagrams */
    struct mmsghdr fwd[FLOW_FWD_MAX];   /* the run, as messages to its origin */
    unsigned fwd_n[FLOW_FWD_MAX];       /* datagrams in each message; more than one: GSO */
    struct iovec fwd_iovs[FLOW_FWD_MAX * 2];
    union {
        uint8_t buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } fwd_ctrl[FLOW_FWD_MAX];
    struct udp_out out;
    struct worker *w;
    bool has_gso; /* the kernel segments UDP sends (UDP_SEGMENT) */
};

static void flow_close(struct flow *f, uint16_t status);

static struct udp_state *state(const struct worker *w)
{
    return w->udp_state;
}

int flow_worker_init(struct worker *w)
{
    struct udp_state *st = calloc(1, sizeof(*st));

    if (!st)
        return -ENOMEM;
    /* Untouched pages cost nothing: RSS grows only with the datagrams received. */
    st->bufs = malloc((size_t)FLOW_BATCH * FLOW_DGRAM_MAX);
    st->out.mem = malloc((size_t)FLOW_OUT_MAX * FLOW_DGRAM_MAX);
    if (!st->bufs || !st->out.mem) {
        free(st->bufs);
        free(st->out.mem);
        free(st);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < FLOW_OUT_MAX; i++)
        st->out.bufs[i] = st->out.mem + (size_t)i * FLOW_DGRAM_MAX;
    st->w = w;
    st->has_gso = sock_has_udp_gso();
    slab_pool_init(&st->flow_pool, sizeof(struct flow));
    w->udp_state = st;
    return 0;
}

void flow_worker_fini(struct worker *w)
{
    struct udp_state *st = state(w);

    if (!st)
        return;
    slab_pool_fini(&st->flow_pool);
    free(st->out.mem);
    free(st->bufs);
    free(st);
    w->udp_state = NULL;
}

/* --- the flow table --- */

static uint32_t hash_key(const struct udp_listener *ul, const struct sockaddr_storage *client,
                         const struct sockaddr_storage *edge)
{
    uint8_t c[16], e[16];
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)ul;

    addr_to_v6bytes(client, c);
    addr_to_v6bytes(edge, e);
    for (int i = 0; i < 16; i++) {
        h = (h ^ c[i]) * 1099511628211ull;
        h = (h ^ e[i]) * 1099511628211ull;
    }
    h = (h ^ addr_port(client)) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

static struct flow *flow_find(struct udp_state *st, const struct udp_listener *ul, uint32_t hash,
                              const struct sockaddr_storage *client,
                              const struct sockaddr_storage *edge)
{
    for (struct flow *f = st->buckets[hash & (FLOW_HASH_BUCKETS - 1)]; f; f = f->hnext) {
        if (f->hash == hash && f->ul == ul && addr_equal(&f->client, client) &&
            addr_ip_equal(&f->edge, edge))
            return f;
    }
    return NULL;
}

static void flow_unhash(struct udp_state *st, struct flow *f)
{
    struct flow **pp = &st->buckets[f->hash & (FLOW_HASH_BUCKETS - 1)];

    while (*pp && *pp != f)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = f->hnext;
    f->hnext = NULL;
}

/* --- events --- */

static void emit(struct flow *f, enum event_kind kind, uint16_t status)
{
    struct worker_event ev = {
        .app = f->app,
        .client = &f->client,
        .origin = &f->origin,
        .connect_ns = f->created_ns,
        .client_bytes = f->client_bytes,
        .origin_bytes = f->origin_bytes,
        .proto = EVENT_UDP,
    };

    worker_emit(f->w, &ev, kind, status);
}

/* --- GSO: a run of equal-sized datagrams in one message --- */

/* Whether a datagram of <len> bytes may join a GSO message (UDP_SEGMENT) that
 * holds <n> datagrams and <total> bytes and began with one of <seg> bytes. The
 * kernel cuts the message into <seg>-byte datagrams, so every one but the last
 * must be that long; the caller ends the message after a shorter one. An empty
 * datagram never joins: it would vanish into its neighbours. */
static bool gso_may_join(size_t seg, unsigned n, size_t total, size_t len)
{
    return len > 0 && len <= seg && n < FLOW_GSO_SEGS && total + len <= FLOW_GSO_BYTES;
}

/* Whether the kernel refused a GSO message as a whole, where single datagrams
 * could go: EINVAL when a segment is over the route's MTU (a single datagram
 * would be fragmented), EIO when the route has no checksum offload, EMSGSIZE. */
static bool is_gso_refused(int err)
{
    return err == EINVAL || err == EIO || err == EMSGSIZE;
}

/* The datagrams in a received message of <len> bytes with segment size <seg> (0: not
 * coalesced, one datagram). */
static unsigned msg_dgrams(size_t len, size_t seg)
{
    return seg && len > seg ? (unsigned)((len + seg - 1) / seg) : 1;
}

/* The segment size of received message <mm> if the kernel coalesced a run into it
 * (UDP_GRO), else 0. */
static uint16_t gro_seg(struct mmsghdr *mm)
{
    uint16_t seg = sock_udp_gro_size(&mm->msg_hdr);

    return seg < mm->msg_len ? seg : 0;
}

/* --- origin -> client --- */

/* Lays out the queued replies [i, end), which all leave from one edge socket, as
 * the messages of q->send: one flow's replies in a row, of equal size, make one
 * GSO message, and a reply the kernel coalesced leaves as the GSO message it came
 * as. Without GSO a coalesced reply cannot be one message, so the layout stops
 * before it (out_flush sends it datagram by datagram). Returns the number of
 * messages. */
static unsigned out_layout(struct udp_out *q, bool has_gso, unsigned i, unsigned end)
{
    unsigned n_msgs = 0;

    while (i < end) {
        struct msghdr *m = &q->send[n_msgs].msg_hdr;
        size_t seg = q->iovs[i].iov_len, total = seg;
        unsigned n = 1;

        if (q->segs[i] && !has_gso)
            break;
        *m = q->msgs[i].msg_hdr; /* its iovec is q->iovs[i], followed by the next */
        if (q->segs[i]) {
            BUG_ON(!sock_add_udp_segment(m, q->ctrl[i], sizeof(q->ctrl[i]), q->segs[i]));
            q->send_n[n_msgs++] = 1;
            i++;
            continue;
        }
        while (has_gso && i + n < end && q->tags[i + n] == q->tags[i] && !q->segs[i + n] &&
               gso_may_join(seg, n, total, q->iovs[i + n].iov_len)) {
            size_t len = q->iovs[i + n].iov_len;
            total += len;
            n++;
            if (len < seg)
                break;
        }
        if (n > 1) {
            m->msg_iovlen = n;
            BUG_ON(!sock_add_udp_segment(m, q->ctrl[i], sizeof(q->ctrl[i]), (uint16_t)seg));
        }
        q->send_n[n_msgs++] = n;
        i += n;
    }
    return n_msgs;
}

/* Datagrams in queued reply <i>. */
static unsigned out_dgrams(const struct udp_out *q, unsigned i)
{
    return msg_dgrams(q->iovs[i].iov_len, q->segs[i]);
}

/* Sends coalesced reply <i> one datagram per send, for a route that refused it as
 * one GSO message (a segment over its MTU): each goes as it would have without GRO. */
static void out_send_split(struct udp_state *st, unsigned i)
{
    struct udp_out *q = &st->out;
    struct msghdr m = q->msgs[i].msg_hdr; /* the addressing; the segment size is not in it */
    uint8_t *p = q->iovs[i].iov_base;
    size_t len = q->iovs[i].iov_len, seg = q->segs[i];

    for (size_t off = 0; off < len; off += seg) {
        struct iovec iov = {.iov_base = p + off, .iov_len = len - off < seg ? len - off : seg};

        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        if (sendmsg(q->fds[i], &m, MSG_DONTWAIT) >= 0)
            st->w->stats.udp_dgrams_out++;
        else
            st->w->stats.udp_dropped++; /* buffer full, or this client unreachable */
    }
}

/* Sends every queued reply: one sendmmsg per run of replies leaving from the
 * same edge socket, when all goes well. */
static void out_flush(struct udp_state *st)
{
    struct udp_out *q = &st->out;
    struct worker *w = st->w;
    unsigned i = 0;

    while (i < q->len) {
        unsigned end = i + 1;
        bool has_gso = st->has_gso;

        while (end < q->len && q->fds[end] == q->fds[i])
            end++;
        while (i < end) {
            unsigned n_msgs;
            int k;

            if (q->segs[i] && !has_gso) {
                out_send_split(st, i++);
                continue;
            }
            n_msgs = out_layout(q, has_gso, i, end);
            k = sendmmsg(q->fds[i], q->send, n_msgs, MSG_DONTWAIT);
            if (k > 0) {
                for (int e = 0; e < k; e++)
                    for (unsigned r = 0; r < q->send_n[e]; r++)
                        w->stats.udp_dgrams_out += out_dgrams(q, i++);
                continue;
            }
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                /* Send buffer full: UDP may drop, and does. */
                while (i < end)
                    w->stats.udp_dropped += out_dgrams(q, i++);
                break;
            }
            if (has_gso && (q->send_n[0] > 1 || q->segs[i]) && is_gso_refused(errno)) {
                /* The rest of this run goes one datagram per message. */
                has_gso = false;
                continue;
            }
            /* This one client is unreachable (or similar): drop it, go on. */
            for (unsigned r = 0; r < q->send_n[0]; r++)
                w->stats.udp_dropped += out_dgrams(q, i++);
        }
    }
    q->len = 0;
}

static void on_out_flush(struct loop *loop, struct loop_defer *d)
{
    (void)loop;
    out_flush(container_of(d, struct udp_state, out.flush));
}

/* Fills in the addressing of queued reply <i> for <f>'s client: to the client,
 * from the edge address the client used (IP_PKTINFO on wildcard listeners). */
static void out_address(struct udp_out *q, unsigned i, const struct flow *f)
{
    struct wlistener *wl = f->ul->wl;
    struct msghdr *m = &q->msgs[i].msg_hdr;

    q->fds[i] = wl->l->fds[f->w->index];
    q->names[i] = f->client;
    m->msg_name = &q->names[i];
    m->msg_namelen = addr_len(&f->client);
    m->msg_control = NULL;
    m->msg_controllen = 0;
    if (addr_is_any(&wl->l->addr)) {
        struct cmsghdr *cm;
        m->msg_control = q->ctrl[i];
        if (f->edge.ss_family == AF_INET) {
            struct in_pktinfo pi = {0};
            m->msg_controllen = CMSG_SPACE(sizeof(pi));
            cm = CMSG_FIRSTHDR(m);
            cm->cmsg_level = IPPROTO_IP;
            cm->cmsg_type = IP_PKTINFO;
            cm->cmsg_len = CMSG_LEN(sizeof(pi));
            pi.ipi_spec_dst = ((const struct sockaddr_in *)&f->edge)->sin_addr;
            memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
        } else {
            struct in6_pktinfo pi = {0};
            m->msg_controllen = CMSG_SPACE(sizeof(pi));
            cm = CMSG_FIRSTHDR(m);
            cm->cmsg_level = IPPROTO_IPV6;
            cm->cmsg_type = IPV6_PKTINFO;
            cm->cmsg_len = CMSG_LEN(sizeof(pi));
            pi.ipi6_addr = ((const struct sockaddr_in6 *)&f->edge)->sin6_addr;
            memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
        }
    }
}

static void on_origin_readable(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct flow *f = container_of(io, struct flow, io);
    struct udp_state *st = state(f->w);
    struct udp_out *q = &st->out;

    (void)events;
    q->tag++;
    /* Level-triggered: a flow that still has datagrams after a few batches is
     * called again next iteration, after the others had their turn. */
    for (int round = 0; round < 4 && !f->is_closed; round++) {
        unsigned base, room;
        int n;

        if (q->len == FLOW_OUT_MAX)
            out_flush(st);
        base = q->len;
        room = FLOW_OUT_MAX - base;
        for (unsigned i = base; i < FLOW_OUT_MAX; i++) {
            q->iovs[i].iov_base = q->bufs[i];
            q->iovs[i].iov_len = FLOW_DGRAM_MAX;
            memset(&q->msgs[i].msg_hdr, 0, sizeof(q->msgs[i].msg_hdr));
            q->msgs[i].msg_hdr.msg_iov = &q->iovs[i];
            q->msgs[i].msg_hdr.msg_iovlen = 1;
            q->msgs[i].msg_hdr.msg_control = q->rctrl[i];
            q->msgs[i].msg_hdr.msg_controllen = sizeof(q->rctrl[i]);
        }
        n = recvmmsg(io->fd, q->msgs + base, room, MSG_DONTWAIT, NULL);
        if (n == -1) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            /* ICMP port unreachable (or another ICMP error) from the origin. */
            flow_close(f, errno == ECONNREFUSED ? (f->origin_bytes ? 447 : 521) : 520);
            return;
        }
        for (unsigned i = base; i < base + (unsigned)n; i++) {
            uint8_t *p = q->bufs[i];
            size_t len = q->msgs[i].msg_len;
            /* Only sockets without SPP coalesce (flow_new): an SPP reply is one datagram. */
            uint16_t seg = gro_seg(&q->msgs[i]);

            if (seg)
                f->w->stats.udp_gro_dgrams += msg_dgrams(len, seg);
            f->origin_bytes += len;
            if (f->app->pp == APP_PP_SIMPLE) {
                if (spp_check_reply(p, len, &f->client) != SPP_OK) {
                    f->w->stats.udp_spp_dropped++;
                    continue;
                }
                p += SPP_HEADER_LEN;
                len -= SPP_HEADER_LEN;
            }
            /* Compact the deliverable replies to the front; the buffers swap
             * places so that every slot keeps one buffer of its own. */
            if (q->len != i) {
                uint8_t *tmp = q->bufs[q->len];
                q->bufs[q->len] = q->bufs[i];
                q->bufs[i] = tmp;
            }
            q->iovs[q->len].iov_base = p;
            q->iovs[q->len].iov_len = len;
            q->msgs[q->len].msg_hdr.msg_iov = &q->iovs[q->len];
            q->msgs[q->len].msg_hdr.msg_iovlen = 1;
            q->tags[q->len] = q->tag;
            q->segs[q->len] = seg;
            out_address(q, q->len, f);
            q->len++;
        }
        if (q->len > 0)
            loop_defer(loop, &q->flush, on_out_flush);
        f->last_active_ms = loop_now_ms(loop);
        if ((unsigned)n < room)
            return;
    }
}

/* --- client -> origin --- */

static void on_idle_timer(struct loop *loop, struct loop_timer *t)
{
    struct flow *f = container_of(t, struct flow, timer);
    uint64_t deadline = f->last_active_ms + f->ws->snap->params.udp_idle_ms;

    if (deadline > loop_now_ms(loop)) {
        loop_timer_arm_at(loop, t, deadline);
        return;
    }
    flow_close(f, 200);
}

static struct flow *flow_new(struct worker *w, struct udp_listener *ul, uint32_t hash,
                             const struct sockaddr_storage *client,
                             const struct sockaddr_storage *edge)
{
    struct udp_state *st = state(w);
    const struct binding *b = ul->wl->b;
    const struct app *app = b->sa->app;
    const struct snap_params *p = &w->cur->snap->params;
    struct flow *f;
    int fd;

    if (st->n_flows >= p->udp_max_flows) {
        w->stats.udp_flows_refused++;
        return NULL;
    }
    if (app->n_origins == 0)
        return NULL;
    f = slab_alloc(&st->flow_pool);
    if (!f) {
        w->stats.udp_flows_refused++;
        return NULL;
    }
    f->w = w;
    f->ul = ul;
    f->app = app;
    f->client = *client;
    f->edge = *edge;
    f->hash = hash;
    f->origin = app->origins[0].addr;
    addr_set_port(&f->origin, app_origin_port(app, &app->origins[0], b->edge_port));
    f->created_ns = clock_real_ns();
    f->last_active_ms = loop_now_ms(w->loop);
    fd = socket(f->origin.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1 || connect(fd, (struct sockaddr *)&f->origin, addr_len(&f->origin)) == -1 ||
        loop_io_add(w->loop, &f->io, fd, EPOLLIN, on_origin_readable) < 0) {
        /* Out of fds, or no route: refuse this client for now, counted. */
        if (fd >= 0)
            close(fd);
        slab_free(&st->flow_pool, f);
        w->stats.udp_flows_refused++;
        return NULL;
    }
    /* Coalesced replies leave as GSO messages, so only where prism can send those; SPP
     * replies are checked one datagram at a time (see the top of the file). */
    if (st->has_gso && app->pp != APP_PP_SIMPLE)
        (void)sock_set_udp_gro(fd);
    f->ws = worker_wsnap_get(w);
    loop_timer_init(&f->timer, on_idle_timer);
    loop_timer_arm(w->loop, &f->timer, p->udp_idle_ms);
    f->hnext = st->buckets[hash & (FLOW_HASH_BUCKETS - 1)];
    st->buckets[hash & (FLOW_HASH_BUCKETS - 1)] = f;
    list_add_tail(&ul->flows, &f->link);
    st->n_flows++;
    w->stats.udp_flows_active++;
    w->stats.udp_flows_created++;
    emit(f, EVENT_CONNECT, 0);
    return f;
}

/* Lays out datagrams [first, first + k) of st->dg, all from <f>'s client, as the
 * messages of st->fwd to its origin. Each datagram gets a header
 * of <hlen> bytes from <hdr> in an iovec of its own (never copied): the SPP header
 * on every one, the PROXY v2 header on the first only. A run of equal-sized
 * datagrams makes one GSO message (UDP_SEGMENT): the kernel builds the datagrams
 * from it, which costs less than a message each. Returns the number of messages. */
static unsigned fwd_layout(const struct flow *f, struct udp_state *st, unsigned first, unsigned k,
                           uint8_t *hdr, size_t hlen)
{
    bool has_gso = st->has_gso && !f->is_gso_off;
    bool is_hdr_each = f->app->pp == APP_PP_SIMPLE;
    unsigned n_msgs = 0, n_iov = 0;

    for (unsigned j = 0; j < k; n_msgs++) {
        struct msghdr *m = &st->fwd[n_msgs].msg_hdr;
        size_t seg = 0, total = 0;
        unsigned n = 0;

        memset(m, 0, sizeof(*m));
        m->msg_iov = &st->fwd_iovs[n_iov];
        do {
            size_t h = hlen > 0 && (is_hdr_each || j == 0) ? hlen : 0;
            size_t len = h + st->dg[first + j].len;

            if (n > 0 && !(has_gso && gso_may_join(seg, n, total, len)))
                break;
            if (h > 0) {
                st->fwd_iovs[n_iov].iov_base = hdr;
                st->fwd_iovs[n_iov++].iov_len = h;
            }
            st->fwd_iovs[n_iov].iov_base = st->dg[first + j].p;
            st->fwd_iovs[n_iov++].iov_len = st->dg[first + j].len;
            if (n == 0)
                seg = len;
            total += len;
            n++;
            j++;
            if (len < seg)
                break;
        } while (j < k);
        m->msg_iovlen = (size_t)(&st->fwd_iovs[n_iov] - m->msg_iov);
        if (n > 1)
            BUG_ON(!sock_add_udp_segment(m, st->fwd_ctrl[n_msgs].buf,
                                         sizeof(st->fwd_ctrl[n_msgs].buf), (uint16_t)seg));
        st->fwd_n[n_msgs] = n;
    }
    return n_msgs;
}

/* Sends datagrams [first, first + k) of st->dg, all from <f>'s client, to its
 * origin, with one sendmmsg when all goes well. */
static void flow_send(struct flow *f, struct udp_state *st, unsigned first, unsigned k)
{
    uint8_t hdr[FLOW_HDR_MAX];
    size_t hlen = 0;

    if (f->app->pp == APP_PP_SIMPLE) {
        spp_encode(&f->client, &f->edge, hdr);
        hlen = SPP_HEADER_LEN;
    } else if (f->app->pp == APP_PP_V2 && !f->has_sent_pp) {
        int n = pp_encode(2, true, &f->client, &f->edge, hdr, sizeof(hdr));
        BUG_ON(n <= 0);
        hlen = (size_t)n;
    }
    while (k > 0) {
        size_t h = f->app->pp == APP_PP_V2 && f->has_sent_pp ? 0 : hlen;
        unsigned n_msgs = fwd_layout(f, st, first, k, hdr, h), d = 0;
        int r = sendmmsg(f->io.fd, st->fwd, n_msgs, MSG_DONTWAIT);

        if (r > 0) {
            for (unsigned e = 0; e < (unsigned)r; e++)
                d += st->fwd_n[e];
            for (unsigned j = first; j < first + d; j++)
                f->client_bytes += st->dg[j].len;
            if (h > 0 && f->app->pp == APP_PP_V2)
                f->has_sent_pp = true;
            f->w->stats.udp_dgrams_in += d;
            first += d;
            k -= d;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == ECONNREFUSED) {
            /* ICMP port unreachable for an earlier datagram: the flow ends; what
             * is left of the run is dropped with it. */
            f->w->stats.udp_dropped += k;
            flow_close(f, f->origin_bytes ? 447 : 521);
            return;
        }
        if (errno == EAGAIN || errno == ENOBUFS) {
            f->w->stats.udp_dropped += k; /* a full buffer: UDP may drop */
            return;
        }
        d = st->fwd_n[0];
        if (d > 1 && is_gso_refused(errno)) {
            f->is_gso_off = true; /* one datagram per message from now on */
            continue;
        }
        /* EMSGSIZE (payload + header over 65,507), or the route refused: these
         * are dropped, never truncated; the rest go on. A PROXY v2 header that
         * was not sent goes with the next one. */
        f->w->stats.udp_dropped += d;
        first += d;
        k -= d;
    }
}

/* Sends the datagrams of messages [i, i + k) of the receive batch, all from <f>'s
 * client, to its origin: a message the kernel coalesced is cut back into its
 * datagrams (see the top of the file), and they go in runs of at most FLOW_FWD_MAX.
 * What is left when the flow ends on the way is dropped, counted. */
static void flow_forward(struct flow *f, struct udp_state *st, unsigned i, unsigned k)
{
    unsigned n = 0;

    for (unsigned m = i; m < i + k; m++) {
        uint8_t *p = st->iovs[m].iov_base;
        size_t len = st->msgs[m].msg_len, seg = gro_seg(&st->msgs[m]), off = 0;

        if (seg)
            f->w->stats.udp_gro_dgrams += msg_dgrams(len, seg);
        else
            seg = len;
        do { /* an empty datagram is one datagram too */
            size_t l = len - off < seg ? len - off : seg;

            if (f->is_closed) {
                f->w->stats.udp_dropped++;
            } else {
                st->dg[n].p = p + off;
                st->dg[n].len = l;
                if (++n == FLOW_FWD_MAX) {
                    flow_send(f, st, 0, n);
                    n = 0;
                }
            }
            off += l;
        } while (off < len);
    }
    if (n > 0 && !f->is_closed)
        flow_send(f, st, 0, n);
}

static void edge_of(const struct wlistener *wl, struct msghdr *m, struct sockaddr_storage *edge)
{
    *edge = wl->l->addr;
    if (!addr_is_any(edge))
        return;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            ((struct sockaddr_in *)edge)->sin_addr = pi.ipi_addr;
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            ((struct sockaddr_in6 *)edge)->sin6_addr = pi.ipi6_addr;
        }
    }
}

/* Whether the datagram of <m> was sent to <edge> (which has the listener's port). */
static bool same_edge(const struct wlistener *wl, struct msghdr *m,
                      const struct sockaddr_storage *edge)
{
    struct sockaddr_storage e;

    if (!addr_is_any(&wl->l->addr))
        return true;
    edge_of(wl, m, &e);
    addr_set_port(&e, wl->b->edge_port);
    return addr_equal(&e, edge);
}

static void on_edge_readable(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct wlistener *wl = container_of(io, struct wlistener, io);
    struct worker *w = wl->w;
    struct udp_listener *ul = wl->udp;
    struct udp_state *st = state(w);

    (void)events;
    for (int round = 0; round < 4; round++) {
        int n;

        for (unsigned i = 0; i < FLOW_BATCH; i++) {
            struct msghdr *m = &st->msgs[i].msg_hdr;
            st->iovs[i].iov_base = st->bufs + (size_t)i * FLOW_DGRAM_MAX;
            st->iovs[i].iov_len = FLOW_DGRAM_MAX;
            memset(m, 0, sizeof(*m));
            m->msg_name = &st->names[i];
            m->msg_namelen = sizeof(st->names[i]);
            m->msg_iov = &st->iovs[i];
            m->msg_iovlen = 1;
            m->msg_control = st->ctrl[i];
            m->msg_controllen = sizeof(st->ctrl[i]);
        }
        n = recvmmsg(io->fd, st->msgs, FLOW_BATCH, MSG_DONTWAIT, NULL);
        if (n == -1)
            return; /* EAGAIN, or an error queued on an unconnected socket */
        for (int i = 0; i < n;) {
            struct sockaddr_storage edge, *client = &st->names[i];
            struct flow *f;
            uint32_t hash;
            int k = 1;

            edge_of(wl, &st->msgs[i].msg_hdr, &edge);
            addr_set_port(&edge, wl->b->edge_port);
            hash = hash_key(ul, client, &edge);
            f = flow_find(st, ul, hash, client, &edge);
            if (!f)
                f = flow_new(w, ul, hash, client, &edge);
            if (!f) {
                w->stats.udp_dropped += msg_dgrams(st->msgs[i].msg_len, gro_seg(&st->msgs[i]));
                i++;
                continue;
            }
            /* Clients send in bursts: the datagrams that follow from the same
             * client to the same edge address go out in the same sendmmsg. */
            while (i + k < n && addr_equal(&st->names[i + k], client) &&
                   same_edge(wl, &st->msgs[i + k].msg_hdr, &edge))
                k++;
            f->last_active_ms = loop_now_ms(loop);
            flow_forward(f, st, (unsigned)i, (unsigned)k);
            i += k;
        }
        if (n < FLOW_BATCH)
            return;
    }
}

/* --- life and death --- */

static void flow_free(struct loop *loop, struct loop_defer *d)
{
    struct flow *f = container_of(d, struct flow, defer);

    (void)loop;
    slab_free(&state(f->w)->flow_pool, f);
}

static void flow_close(struct flow *f, uint16_t status)
{
    struct worker *w = f->w;
    struct udp_state *st = state(w);

    if (f->is_closed)
        return;
    f->is_closed = true;
    loop_timer_stop(w->loop, &f->timer);
    loop_io_close(w->loop, &f->io);
    flow_unhash(st, f);
    list_del(&f->link);
    st->n_flows--;
    w->stats.udp_flows_active--;
    emit(f, (status >= 521 && status <= 533) ? EVENT_ORIGIN_ERROR : EVENT_DISCONNECT, status);
    worker_wsnap_put(w, f->ws);
    f->ws = NULL;
    loop_defer(w->loop, &f->defer, flow_free);
    if (w->is_draining)
        worker_check_drained(w);
}

int flow_listener_start(struct worker *w, struct wlistener *wl)
{
    struct udp_listener *ul = wl->udp;
    int err;

    if (!ul) {
        ul = calloc(1, sizeof(*ul));
        if (!ul)
            return -ENOMEM;
        ul->wl = wl;
        list_init(&ul->flows);
        wl->udp = ul;
    }
    /* Clients' runs come coalesced (see the top of the file); an old kernel says no. */
    (void)sock_set_udp_gro(wl->l->fds[w->index]);
    err = loop_io_add(w->loop, &wl->io, wl->l->fds[w->index], EPOLLIN, on_edge_readable);
    return err;
}

void flow_listener_stop(struct worker *w, struct wlistener *wl)
{
    struct udp_listener *ul = wl->udp;
    struct list_node *pos, *tmp;

    loop_io_del(w->loop, &wl->io);
    out_flush(state(w)); /* queued replies may name this listener's socket */
    if (!ul)
        return;
    /* The listener is going away (its app was removed, or we are stopping): its
     * flows cannot send replies any more. */
    list_for_each_safe(pos, tmp, &ul->flows)
    {
        flow_close(container_of(pos, struct flow, link), 200);
    }
    if (!w->is_draining) {
        wl->udp = NULL;
        free(ul);
    }
}

void flow_snapshot_applied(struct worker *w)
{
    (void)w; /* timeouts are read from each flow's own snapshot */
}

bool flow_worker_is_idle(const struct worker *w)
{
    return state(w)->n_flows == 0;
}

void flow_close_all(struct worker *w)
{
    struct list_node *pos, *tmp, *lp, *ltmp;

    list_for_each_safe(lp, ltmp, &w->listeners)
    {
        struct wlistener *wl = container_of(lp, struct wlistener, link);
        struct udp_listener *ul = wl->udp;
        if (!ul)
            continue;
        list_for_each_safe(pos, tmp, &ul->flows)
        {
            flow_close(container_of(pos, struct flow, link), 200);
        }
    }
}
