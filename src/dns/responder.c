/* src/dns/responder.c: answers A and AAAA for app names (DESIGN.md section 3).
 *
 * The idea: the control thread hands us a table of names and addresses after every
 * successful apply, and we answer from it, never reaching into the data plane:
 *
 *   app name                 -> NOERROR, AA, its addresses of the asked family
 *                               (none: NODATA, also for ANY and every other type)
 *   an ancestor of an app    -> NOERROR, AA, no records (an empty non-terminal)
 *   else, zone_cb says INSIDE-> NXDOMAIN, AA;  APEX -> NODATA, AA (SOA for a SOA query)
 *   else                     -> REFUSED (not our zone; we are no resolver)
 *   class other than IN      -> REFUSED
 *
 * The table is a sorted array searched with bsearch(); names and addresses live in
 * two blocks allocated at once, so a rebuild is three allocations.
 *
 * Transport (RFC 1035 4.2, RFC 7766), both on the control loop, non-blocking:
 *   UDP: up to UDP_BUDGET datagrams per readiness, one reply each, dropped when
 *        the socket buffer is full. On a wildcard address the reply leaves from the
 *        address the query reached (IP_PKTINFO / IPV6_RECVPKTINFO).
 *   TCP: 2-byte length framing, pipelined queries answered in order. Each
 *        connection has a fixed input buffer (one query of at most
 *        RESPONDER_TCP_QUERY_MAX bytes) and output buffer (TCP_OUT_CAP); when the
 *        output cannot take another reply we stop reading until the client reads.
 *        A connection is closed after RESPONDER_TCP_IDLE_MS without a byte from
 *        the client, on an oversized length, on EOF once its replies are sent, or on
 *        any error. RESPONDER_TCP_MAX_CONNS at most; then accepting pauses.
 *
 * A connection is freed at once by conn_close(): it is only ever called from that
 * connection's own callbacks, which return right after, and loop_io_del() drops
 * events already fetched for it.
 *
 * Negative answers (NXDOMAIN, NODATA) carry the zone's SOA in the authority section
 * (RFC 2308), so resolvers cache them for RESPONDER_TTL_S; a SOA query for a zone's
 * name gets it as the answer. The serial is the time of the last change of names.
 *
 * Left out on purpose: zone transfers, NOTIFY, UPDATE (NOTIMP), NS records,
 * response rate limiting (replies are no larger than 512 bytes
 * to a client without EDNS, so amplification stays small), DNSSEC. */
#include "dns/responder.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "core/bug.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "dns/dnsmsg.h"
#include "net/addr.h"
#include "net/sock.h"

#define UDP_BUDGET 64        /* datagrams per readiness event; the rest wait a turn */
#define UDP_IN_MAX 4096      /* larger datagrams are cut by the kernel and dropped */
#define ACCEPT_BUDGET 32     /* connections per readiness event */
#define ACCEPT_RETRY_MS 1000 /* after EMFILE and friends */
#define TCP_OUT_CAP (4 * (2 + DNSMSG_REPLY_MAX))
#define TCP_BACKLOG 64

struct entry {
    const char *name;               /* points into table.names */
    bool is_ent;                    /* only an ancestor of app names: no records */
    struct sockaddr_storage *addrs; /* points into table.addrs */
    size_t n_addrs;
};

struct table {
    struct entry *entries; /* owned; sorted by name */
    size_t n;
    char *names;                    /* owned: the app names, folded; entries point in */
    struct sockaddr_storage *addrs; /* owned */
};

struct tcp_conn {
    struct responder *r;
    struct loop_io io;
    struct loop_timer idle;
    struct list_node link; /* in r->conns */
    int fd;                /* owned */
    bool is_eof;           /* the client has shut down its side */
    uint32_t events;       /* what io is registered for */
    size_t in_len, out_off, out_len;
    uint8_t in[2 + RESPONDER_TCP_QUERY_MAX];
    uint8_t out[TCP_OUT_CAP];
};

struct responder {
    responder_zone_fn zone_cb;
    void *zone_ctx;
    struct table table;
    uint32_t serial;    /* the SOA serial: the time of the last table change, rising */
    struct loop *loop;  /* borrowed; NULL until responder_listen() */
    int udp_fd, tcp_fd; /* owned; -1 when not open */
    bool is_wildcard;   /* bound to 0.0.0.0 or ::: replies carry a source address */
    struct loop_io udp_io, tcp_io;
    struct loop_timer accept_timer; /* resumes accepting after EMFILE */
    bool is_accept_paused;
    struct list_node conns;
    size_t n_conns;
    struct log_ratelimit log_rl;
};

/* --- the name table --- */

struct item {
    const char *name; /* into the lower-cased copy of the input */
    size_t src;       /* input index, or SIZE_MAX for an ancestor */
};

static int cmp_item(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    int c = strcmp(x->name, y->name);

    if (c != 0)
        return c;
    return (x->src > y->src) - (x->src < y->src);
}

static int cmp_entry_key(const void *key, const void *e)
{
    return strcmp(key, ((const struct entry *)e)->name);
}

static void table_fini(struct table *t)
{
    free(t->entries);
    free(t->names);
    free(t->addrs);
    memset(t, 0, sizeof(*t));
}

static void entry_add_addr(struct entry *e, const struct sockaddr_storage *a)
{
    struct sockaddr_storage copy;

    if ((a->ss_family != AF_INET && a->ss_family != AF_INET6) || addr_is_any(a) ||
        e->n_addrs == DNSMSG_MAX_ADDRS)
        return;
    copy = *a;
    addr_unmap(&copy);
    for (size_t i = 0; i < e->n_addrs; i++) {
        if (addr_ip_equal(&e->addrs[i], &copy))
            return;
    }
    e->addrs[e->n_addrs++] = copy;
}

/* Copies <names> lower-cased, without a trailing dot, into one block. */
static char *fold_names(const struct responder_name *names, size_t n)
{
    size_t len = 0, off = 0;
    char *blob;

    for (size_t i = 0; i < n; i++)
        len += strlen(names[i].name) + 1;
    blob = malloc(len ? len : 1);
    if (!blob)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(names[i].name);

        for (size_t j = 0; j < k; j++) {
            char ch = names[i].name[j];
            blob[off + j] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
        }
        if (k > 0 && blob[off + k - 1] == '.')
            k--;
        blob[off + k] = '\0';
        off += strlen(names[i].name) + 1;
    }
    return blob;
}

/* Builds <t> from <names>: one item per name and per ancestor, sorted, then merged
 * into entries. */
static int table_build(struct table *t, const struct responder_name *names, size_t n)
{
    size_t n_items = 0, n_addrs = 0, k = 0, addr_off = 0;
    struct item *items = NULL;
    char *folded;
    int rc = -ENOMEM;

    memset(t, 0, sizeof(*t));
    folded = fold_names(names, n);
    if (!folded)
        return -ENOMEM;
    for (size_t i = 0, off = 0; i < n; off += strlen(names[i].name) + 1, i++) {
        for (const char *s = folded + off; *s; s++)
            n_items += *s == '.';
        n_items++;
        n_addrs += names[i].n_addrs < DNSMSG_MAX_ADDRS ? names[i].n_addrs : DNSMSG_MAX_ADDRS;
    }
    items = calloc(n_items ? n_items : 1, sizeof(*items));
    t->entries = calloc(n_items ? n_items : 1, sizeof(*t->entries));
    t->addrs = calloc(n_addrs ? n_addrs : 1, sizeof(*t->addrs));
    if (!items || !t->entries || !t->addrs)
        goto out;
    for (size_t i = 0, off = 0; i < n; off += strlen(names[i].name) + 1, i++) {
        items[k++] = (struct item){folded + off, i};
        for (const char *s = folded + off; *s; s++) {
            if (*s == '.' && s[1] != '\0')
                items[k++] = (struct item){s + 1, SIZE_MAX};
        }
    }
    qsort(items, k, sizeof(*items), cmp_item);
    for (size_t i = 0; i < k;) {
        struct entry *e = &t->entries[t->n++];

        /* An ancestor's name is a suffix of an app name, so every name can point into
         * the folded copy. An entry holds at most the sum over its inputs of
         * min(n_addrs, DNSMSG_MAX_ADDRS), so t->addrs is big enough. */
        e->name = items[i].name;
        e->is_ent = true;
        e->addrs = t->addrs + addr_off;
        for (; i < k && strcmp(items[i].name, e->name) == 0; i++) {
            const struct responder_name *in;

            if (items[i].src == SIZE_MAX) /* an ancestor: no input of its own */
                continue;
            in = &names[items[i].src];
            e->is_ent = false;
            for (size_t j = 0; j < in->n_addrs; j++)
                entry_add_addr(e, &in->addrs[j]);
        }
        addr_off += e->n_addrs;
    }
    t->names = folded;
    folded = NULL;
    rc = 0;
out:
    free(items);
    free(folded);
    if (rc != 0)
        table_fini(t);
    return rc;
}

int responder_set_names(struct responder *r, const struct responder_name *names, size_t n)
{
    struct table t;
    int rc = table_build(&t, names, n);
    uint32_t now;

    if (rc != 0)
        return rc;
    table_fini(&r->table);
    r->table = t;
    now = (uint32_t)time(NULL);
    r->serial = now > r->serial ? now : r->serial + 1;
    return 0;
}

/* --- answering --- */

/* The labels of <name> (RFC 4343 escapes: a dot after an odd run of backslashes is
 * inside a label). */
static unsigned count_labels(const char *name)
{
    unsigned n = 1, bs = 0;

    for (const char *s = name; *s; s++) {
        if (*s == '.' && bs % 2 == 0)
            n++;
        bs = *s == '\\' ? bs + 1 : 0;
    }
    return n;
}

/* True when <e> has an address of the family <qtype> asks for. */
static bool has_answer(const struct entry *e, uint16_t qtype)
{
    int family = qtype == DNSMSG_TYPE_A ? AF_INET : qtype == DNSMSG_TYPE_AAAA ? AF_INET6 : 0;

    for (size_t i = 0; family && i < e->n_addrs; i++) {
        if (e->addrs[i].ss_family == family)
            return true;
    }
    return false;
}

static void resolve(struct responder *r, const struct dnsmsg_query *q, struct dnsmsg_reply *out)
{
    const struct entry *e;
    enum responder_zone zone;
    const char *apex = NULL;

    if (q->qclass != DNSMSG_CLASS_IN) {
        out->rcode = DNSMSG_REFUSED;
        return;
    }
    e = r->table.n ? bsearch(q->qname, r->table.entries, r->table.n, sizeof(*e), cmp_entry_key)
                   : NULL;
    if (e && !e->is_ent) {
        out->is_authoritative = true;
        out->addrs = e->addrs;
        out->n_addrs = e->n_addrs;
        if (has_answer(e, q->qtype) || !r->zone_cb)
            return;
        /* NODATA for an app name: the SOA of its zone goes with it */
        zone = r->zone_cb(r->zone_ctx, q->qname, &apex);
    } else {
        zone = r->zone_cb ? r->zone_cb(r->zone_ctx, q->qname, &apex) : RESPONDER_OUTSIDE;
        if (zone == RESPONDER_OUTSIDE) {
            out->rcode = DNSMSG_REFUSED;
            return;
        }
        out->is_authoritative = true;
        out->rcode = (e || zone == RESPONDER_APEX) ? DNSMSG_NOERROR : DNSMSG_NXDOMAIN;
    }
    if (zone != RESPONDER_OUTSIDE && apex) {
        out->soa_labels = count_labels(apex);
        out->soa_serial = r->serial;
    }
}

bool responder_name_in_zone(const char *name, const char *zone, bool *is_apex)
{
    size_t n = strlen(name), z = strlen(zone), bs = 0;

    if (n == z && memcmp(name, zone, n) == 0) {
        *is_apex = true;
        return true;
    }
    if (n <= z + 1 || name[n - z - 1] != '.' || memcmp(name + n - z, zone, z) != 0)
        return false;
    while (bs < n - z - 1 && name[n - z - 2 - bs] == '\\')
        bs++;
    return bs % 2 == 0;
}

size_t responder_answer(struct responder *r, const uint8_t *query, size_t len, bool is_tcp,
                        uint8_t *out, size_t cap)
{
    struct dnsmsg_query q;
    struct dnsmsg_reply reply = {.ttl_s = RESPONDER_TTL_S};
    enum dnsmsg_status st = dnsmsg_parse_query(query, len, &q);

    if (st == DNSMSG_DROP)
        return 0;
    if (st == DNSMSG_REJECT)
        reply.rcode = q.rcode;
    else
        resolve(r, &q, &reply);
    return dnsmsg_encode_reply(&q, &reply, is_tcp ? DNSMSG_TCP_MAX : dnsmsg_udp_limit(&q), out,
                               cap);
}

/* --- UDP --- */

/* Rewrites the packet-info control message of a query into the one that makes the
 * reply leave from the address the query reached. Returns false if there is none. */
static bool reply_source(struct msghdr *msg)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo *pi = (struct in_pktinfo *)(void *)CMSG_DATA(c);

            pi->ipi_spec_dst = pi->ipi_addr;
            pi->ipi_ifindex = 0;
            msg->msg_controllen = c->cmsg_len;
            msg->msg_control = c;
            return true;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            msg->msg_controllen = c->cmsg_len;
            msg->msg_control = c;
            return true;
        }
    }
    return false;
}

static void on_udp(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct responder *r = container_of(io, struct responder, udp_io);
    uint8_t in[UDP_IN_MAX], out[DNSMSG_REPLY_MAX];
    union {
        struct cmsghdr align;
        uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
    } control;

    (void)loop;
    (void)events;
    for (int i = 0; i < UDP_BUDGET; i++) {
        struct sockaddr_storage peer;
        struct iovec iov = {.iov_base = in, .iov_len = sizeof(in)};
        struct msghdr msg = {.msg_name = &peer,
                             .msg_namelen = sizeof(peer),
                             .msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf)};
        ssize_t n = recvmsg(r->udp_fd, &msg, MSG_DONTWAIT);
        size_t len;

        if (n == -1) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN, or an ICMP error of an earlier reply: nothing to do */
        }
        if (msg.msg_flags & MSG_TRUNC)
            continue;
        len = responder_answer(r, in, (size_t)n, false, out, sizeof(out));
        if (len == 0)
            continue;
        iov.iov_base = out;
        iov.iov_len = len;
        if (!r->is_wildcard || !reply_source(&msg)) {
            msg.msg_control = NULL;
            msg.msg_controllen = 0;
        }
        msg.msg_flags = 0;
        /* A full socket buffer drops the reply; the client retries, as with loss. */
        (void)sendmsg(r->udp_fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
}

/* --- TCP --- */

static void conn_close(struct tcp_conn *c)
{
    struct responder *r = c->r;

    loop_io_del(r->loop, &c->io);
    loop_timer_stop(r->loop, &c->idle);
    list_del(&c->link);
    close(c->fd);
    free(c);
    r->n_conns--;
    if (r->is_accept_paused && !loop_timer_is_armed(&r->accept_timer) &&
        loop_io_mod(r->loop, &r->tcp_io, EPOLLIN) == 0)
        r->is_accept_paused = false;
}

/* Answers every complete query in c->in while c->out has room for a reply. Returns
 * 1 if it consumed anything, 0 if not, -1 on a length the protocol allows but we
 * do not. */
static int conn_process(struct tcp_conn *c)
{
    size_t used = 0;
    int progressed = 0;

    while (c->in_len - used >= 2) {
        const uint8_t *msg = c->in + used;
        size_t qlen = (size_t)msg[0] << 8 | msg[1], len;

        if (qlen > RESPONDER_TCP_QUERY_MAX)
            return -1;
        if (c->in_len - used < 2 + qlen)
            break;
        if (TCP_OUT_CAP - c->out_len < 2 + DNSMSG_REPLY_MAX)
            break;
        len =
            responder_answer(c->r, msg + 2, qlen, true, c->out + c->out_len + 2, DNSMSG_REPLY_MAX);
        if (len > 0) {
            c->out[c->out_len] = (uint8_t)(len >> 8);
            c->out[c->out_len + 1] = (uint8_t)len;
            c->out_len += 2 + len;
        }
        used += 2 + qlen;
        progressed = 1;
    }
    if (used > 0) {
        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
    }
    return progressed;
}

/* Sends what c->out holds. Returns 0 (sent, or the socket is full) or -1 (error). */
static int conn_flush(struct tcp_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n =
            send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n == -1) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

/* Reads what fits into c->in. Returns 0 or -1 (error). */
static int conn_read(struct tcp_conn *c)
{
    while (!c->is_eof && c->in_len < sizeof(c->in)) {
        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);

        if (n == -1) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? 0 : -1;
        }
        if (n == 0) {
            c->is_eof = true;
            break;
        }
        c->in_len += (size_t)n;
        loop_timer_arm(c->r->loop, &c->idle, RESPONDER_TCP_IDLE_MS);
    }
    return 0;
}

/* Reads, answers and writes as far as possible, then registers for what is next.
 * Returns -1 when the connection is done (the caller closes it). */
static int conn_pump(struct tcp_conn *c)
{
    uint32_t want = 0;
    int p;

    if (conn_read(c) != 0)
        return -1;
    do {
        p = conn_process(c);
        if (p < 0 || conn_flush(c) != 0)
            return -1;
    } while (p > 0);
    if (c->out_len > c->out_off)
        want |= EPOLLOUT;
    else if (c->is_eof)
        return -1; /* every reply sent; a partial query left behind goes unanswered */
    if (!c->is_eof && TCP_OUT_CAP - c->out_len >= 2 + DNSMSG_REPLY_MAX)
        want |= EPOLLIN;
    if (want != c->events) {
        if (loop_io_mod(c->r->loop, &c->io, want) != 0)
            return -1;
        c->events = want;
    }
    return 0;
}

static void on_conn(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct tcp_conn *c = container_of(io, struct tcp_conn, io);

    (void)loop;
    if ((events & EPOLLERR) || conn_pump(c) != 0)
        conn_close(c);
}

static void on_conn_idle(struct loop *loop, struct loop_timer *t)
{
    (void)loop;
    conn_close(container_of(t, struct tcp_conn, idle));
}

static void pause_accept(struct responder *r, bool is_retry_later)
{
    if (loop_io_mod(r->loop, &r->tcp_io, 0) == 0)
        r->is_accept_paused = true;
    if (is_retry_later)
        loop_timer_arm(r->loop, &r->accept_timer, ACCEPT_RETRY_MS);
}

static void on_accept_timer(struct loop *loop, struct loop_timer *t)
{
    struct responder *r = container_of(t, struct responder, accept_timer);

    if (r->n_conns < RESPONDER_TCP_MAX_CONNS && loop_io_mod(loop, &r->tcp_io, EPOLLIN) == 0)
        r->is_accept_paused = false;
}

static void on_accept(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct responder *r = container_of(io, struct responder, tcp_io);

    (void)events;
    for (int i = 0; i < ACCEPT_BUDGET; i++) {
        struct tcp_conn *c;
        int fd;

        if (r->n_conns >= RESPONDER_TCP_MAX_CONNS) {
            pause_accept(r, false);
            return;
        }
        fd = accept4(r->tcp_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                if (log_ratelimit_allow(&r->log_rl, loop_now_ms(loop), 5, 10000))
                    log_warn("dns: accept: %s; pausing for %d ms", strerror(errno),
                             ACCEPT_RETRY_MS);
                pause_accept(r, true);
            }
            return;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            pause_accept(r, true);
            return;
        }
        c->r = r;
        c->fd = fd;
        c->events = EPOLLIN;
        loop_timer_init(&c->idle, on_conn_idle);
        if (loop_io_add(loop, &c->io, fd, EPOLLIN, on_conn) != 0) {
            close(fd);
            free(c);
            continue;
        }
        list_add_tail(&r->conns, &c->link);
        r->n_conns++;
        loop_timer_arm(loop, &c->idle, RESPONDER_TCP_IDLE_MS);
    }
}

/* --- life cycle --- */

struct responder *responder_new(responder_zone_fn zone_cb, void *ctx)
{
    struct responder *r = calloc(1, sizeof(*r));

    if (!r)
        return NULL;
    r->zone_cb = zone_cb;
    r->zone_ctx = ctx;
    r->udp_fd = r->tcp_fd = -1;
    r->serial = (uint32_t)time(NULL);
    loop_timer_init(&r->accept_timer, on_accept_timer);
    list_init(&r->conns);
    return r;
}

int responder_listen(struct responder *r, struct loop *loop, const struct sockaddr_storage *addr,
                     char *err, size_t errlen)
{
    char text[ADDR_STRLEN];
    int rc;

    BUG_ON(r->loop != NULL);
    if (addr_format(addr, text, sizeof(text)) < 0)
        snprintf(text, sizeof(text), "?");
    r->is_wildcard = addr_is_any(addr);
    /* Never SO_REUSEPORT, so that a second responder on the same port fails loudly;
     * IP_PKTINFO on a wildcard address, so that a reply leaves from the address asked. */
    rc = sock_listen(addr, SOCK_LISTEN_UDP | (r->is_wildcard ? SOCK_LISTEN_PKTINFO : 0), 0, NULL);
    if (rc < 0) {
        snprintf(err, errlen, "dns.listen %s (udp): %s", text, strerror(-rc));
        return rc;
    }
    r->udp_fd = rc;
    rc = sock_listen(addr, 0, TCP_BACKLOG, NULL);
    if (rc < 0) {
        snprintf(err, errlen, "dns.listen %s (tcp): %s", text, strerror(-rc));
        goto fail;
    }
    r->tcp_fd = rc;
    rc = loop_io_add(loop, &r->udp_io, r->udp_fd, EPOLLIN, on_udp);
    if (rc == 0) {
        rc = loop_io_add(loop, &r->tcp_io, r->tcp_fd, EPOLLIN, on_accept);
        if (rc < 0)
            loop_io_del(loop, &r->udp_io);
    }
    if (rc < 0) {
        snprintf(err, errlen, "dns.listen %s: %s", text, strerror(-rc));
        goto fail;
    }
    r->loop = loop;
    return 0;

fail:
    if (r->tcp_fd >= 0)
        close(r->tcp_fd);
    close(r->udp_fd);
    r->udp_fd = r->tcp_fd = -1;
    return rc;
}

void responder_free(struct responder *r)
{
    struct list_node *pos, *tmp;

    if (!r)
        return;
    if (r->loop) {
        list_for_each_safe(pos, tmp, &r->conns)
        {
            conn_close(container_of(pos, struct tcp_conn, link));
        }
        loop_timer_stop(r->loop, &r->accept_timer);
        loop_io_del(r->loop, &r->udp_io);
        loop_io_del(r->loop, &r->tcp_io);
        close(r->udp_fd);
        close(r->tcp_fd);
    }
    table_fini(&r->table);
    free(r);
}
