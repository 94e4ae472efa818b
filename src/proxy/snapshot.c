/* src/proxy/snapshot.c: building snapshots and sharing listeners between them.
 *
 * Building is the control thread's job and may block (bind, listen); releasing may
 * happen on any thread, which is why references are atomic. Workers never touch the
 * references on the per-connection path: a worker counts its live connections per
 * snapshot itself (proxy/worker.c) and drops one reference when that count and
 * its own use both end. */
#include "proxy/snapshot.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/bug.h"
#include "core/log.h"
#include "net/addr.h"
#include "net/sock.h"

#define LISTEN_BACKLOG 4096

struct snap_app *snap_app_new(struct app *app)
{
    struct snap_app *sa = malloc(sizeof(*sa));

    if (!sa) {
        app_free(app);
        return NULL;
    }
    atomic_init(&sa->refs, 1);
    sa->app = app;
    sa->n_edge = 0;
    return sa;
}

void snap_app_ref(struct snap_app *sa)
{
    atomic_fetch_add_explicit(&sa->refs, 1, memory_order_relaxed);
}

void snap_app_unref(struct snap_app *sa)
{
    if (!sa || atomic_fetch_sub_explicit(&sa->refs, 1, memory_order_acq_rel) != 1)
        return;
    app_free(sa->app);
    free(sa);
}

static void listener_unref(struct listener *l)
{
    if (!l || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (int i = 0; i < l->n_fds; i++)
        if (l->fds[i] >= 0)
            close(l->fds[i]);
    free(l);
}

/* Gives every socket of UDP listener <l> a receive buffer of <bytes>: a worker that
 * is busy elsewhere for a moment must not cost datagrams (the kernel's default of
 * about 200 KiB held 250 to 650 small ones in our tests). Warns once per build if
 * the kernel caps it (no CAP_NET_ADMIN and a lower net.core.rmem_max). */
static void listener_set_rcvbuf(struct listener *l, uint32_t bytes, bool *is_warned)
{
    for (int i = 0; i < l->n_fds; i++) {
        int got = sock_set_rcvbuf(l->fds[i], bytes);
        if (*is_warned || (got >= 0 && (uint64_t)got >= 2ull * bytes)) /* doubled, uncapped */
            continue;
        *is_warned = true;
        if (got < 0)
            log_warn("udp.rcvbuf_bytes %u: %s", bytes, strerror(-got));
        else
            log_warn("udp.rcvbuf_bytes %u: the kernel gave %d (net.core.rmem_max caps it "
                     "without CAP_NET_ADMIN)",
                     bytes, got / 2);
    }
}

static struct listener *listener_open(enum app_proto proto, const struct sockaddr_storage *addr,
                                      bool is_freebind, int n_workers, const struct snap_params *p,
                                      int *err)
{
    struct sock_tcp_opts opts = {.user_timeout_ms = p->user_timeout_ms};
    unsigned flags = SOCK_LISTEN_SHARED | (is_freebind ? SOCK_LISTEN_FREEBIND : 0) |
                     (proto == APP_UDP ? SOCK_LISTEN_UDP | SOCK_LISTEN_PKTINFO : 0);
    struct listener *l = calloc(1, sizeof(*l));

    if (!l) {
        *err = -ENOMEM;
        return NULL;
    }
    atomic_init(&l->refs, 1);
    l->proto = proto;
    l->addr = *addr;
    l->n_fds = n_workers;
    for (int i = 0; i < n_workers; i++)
        l->fds[i] = -1;
    for (int i = 0; i < n_workers; i++) {
        l->fds[i] = sock_listen(addr, flags, LISTEN_BACKLOG, &opts);
        if (l->fds[i] < 0) {
            *err = l->fds[i];
            l->fds[i] = -1;
            listener_unref(l);
            return NULL;
        }
    }
    return l;
}

static struct listener *find_listener(const struct snapshot *prev, enum app_proto proto,
                                      const struct sockaddr_storage *addr)
{
    if (!prev)
        return NULL;
    /* Linear: reloads are rare and a snapshot has at most a few thousand bindings.
     * TODO(#3): index by key when the API makes single-app updates frequent. */
    for (size_t i = 0; i < prev->n_bindings; i++) {
        struct listener *l = prev->bindings[i].l;
        if (l->proto == proto && addr_ip_equal(&l->addr, addr) &&
            addr_port(&l->addr) == addr_port(addr))
            return l;
    }
    return NULL;
}

struct bind_key {
    uint32_t proto_port; /* proto << 16 | port: the sort key */
    const struct sockaddr_storage *addr;
    const struct app *app;
};

static int cmp_key(const void *a, const void *b)
{
    const struct bind_key *x = a, *y = b;

    return x->proto_port < y->proto_port ? -1 : x->proto_port > y->proto_port;
}

static bool addrs_overlap(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return a->ss_family == b->ss_family &&
           (addr_ip_equal(a, b) || addr_is_any(a) || addr_is_any(b));
}

/* Two apps on one transport, address and port would both bind (SO_REUSEPORT lets
 * one user do that) and split the traffic between them: refuse. Sorting by
 * transport and port keeps this O(n log n) for apps with large port ranges. */
static int check_overlaps(struct snap_app *const *apps, size_t n_apps, size_t n_keys, char *err,
                          size_t errlen)
{
    struct bind_key *keys = calloc(n_keys ? n_keys : 1, sizeof(*keys));
    size_t k = 0;
    int rc = 0;

    if (!keys) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n_apps; i++) {
        const struct app *a = apps[i]->app;
        for (size_t j = 0; j < apps[i]->n_edge; j++)
            for (uint32_t port = a->port_lo; port <= a->port_hi; port++)
                keys[k++] =
                    (struct bind_key){(uint32_t)a->proto << 16 | port, &apps[i]->edge[j], a};
    }
    qsort(keys, k, sizeof(*keys), cmp_key);
    for (size_t i = 0; i < k && rc == 0; i++) {
        for (size_t j = i + 1; j < k && keys[j].proto_port == keys[i].proto_port; j++) {
            if (addrs_overlap(keys[i].addr, keys[j].addr)) {
                char text[ADDR_STRLEN];
                addr_format_ip(keys[j].addr, text, sizeof(text));
                snprintf(err, errlen, "app '%s': %s port %u on %s is already used by app '%s'",
                         keys[j].app->id, app_proto_name(keys[j].app->proto),
                         keys[j].proto_port & 0xffff, text, keys[i].app->id);
                rc = -EEXIST;
                break;
            }
        }
    }
    free(keys);
    return rc;
}

static void snapshot_free(struct snapshot *s)
{
    for (size_t i = 0; i < s->n_bindings; i++) {
        listener_unref(s->bindings[i].l);
        snap_app_unref(s->bindings[i].sa);
    }
    for (size_t i = 0; i < s->n_apps; i++)
        snap_app_unref(s->apps[i]);
    free(s->bindings);
    free(s->apps);
    free(s);
}

static size_t count_bindings(struct snap_app *const *apps, size_t n_apps)
{
    size_t total = 0;

    for (size_t i = 0; i < n_apps; i++) {
        const struct app *a = apps[i]->app;
        total += apps[i]->n_edge * ((size_t)a->port_hi - a->port_lo + 1);
    }
    return total;
}

struct snapshot *snapshot_build(const struct snapshot *prev, struct snap_app *const *apps,
                                size_t n_apps, const struct snap_params *params, int n_workers,
                                char *err, size_t errlen)
{
    static _Atomic uint64_t next_gen = 1;
    struct snapshot *s = calloc(1, sizeof(*s));
    size_t cap;
    bool is_warned = false;
    int e0;

    if (!s)
        goto nomem;
    atomic_init(&s->refs, 1);
    s->gen = atomic_fetch_add(&next_gen, 1);
    s->params = *params;
    cap = count_bindings(apps, n_apps);
    e0 = check_overlaps(apps, n_apps, cap, err, errlen);
    if (e0 < 0) {
        free(s);
        errno = -e0;
        return NULL;
    }
    s->apps = calloc(n_apps ? n_apps : 1, sizeof(*s->apps));
    s->bindings = calloc(cap ? cap : 1, sizeof(*s->bindings));
    if (!s->apps || !s->bindings)
        goto nomem;
    for (size_t i = 0; i < n_apps; i++) {
        snap_app_ref(apps[i]);
        s->apps[s->n_apps++] = apps[i];
    }
    for (size_t i = 0; i < n_apps; i++) {
        const struct app *a = apps[i]->app;
        for (size_t j = 0; j < apps[i]->n_edge; j++) {
            for (uint32_t port = a->port_lo; port <= a->port_hi; port++) {
                struct binding *b = &s->bindings[s->n_bindings];
                struct sockaddr_storage addr = apps[i]->edge[j];
                struct listener *l;
                int e = 0;

                addr_set_port(&addr, (uint16_t)port);
                l = find_listener(prev, a->proto, &addr);
                if (l) {
                    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
                    if (l->proto == APP_UDP &&
                        prev->params.udp_rcvbuf_bytes != params->udp_rcvbuf_bytes)
                        listener_set_rcvbuf(l, params->udp_rcvbuf_bytes, &is_warned);
                } else {
                    l = listener_open(a->proto, &addr, apps[i]->is_freebind, n_workers, params, &e);
                    if (!l) {
                        char text[ADDR_STRLEN];
                        addr_format(&addr, text, sizeof(text));
                        snprintf(err, errlen, "app '%s': cannot listen on %s/%s: %s", a->id,
                                 app_proto_name(a->proto), text, strerror(-e));
                        snapshot_free(s);
                        errno = -e;
                        return NULL;
                    }
                    if (l->proto == APP_UDP)
                        listener_set_rcvbuf(l, params->udp_rcvbuf_bytes, &is_warned);
                }
                b->l = l;
                b->sa = apps[i];
                snap_app_ref(apps[i]);
                b->edge_port = (uint16_t)port;
                s->n_bindings++;
            }
        }
    }
    return s;

nomem:
    snprintf(err, errlen, "out of memory building the configuration");
    if (s)
        snapshot_free(s);
    errno = ENOMEM;
    return NULL;
}

void snapshot_ref(struct snapshot *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void snapshot_unref(struct snapshot *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    snapshot_free(s);
}
