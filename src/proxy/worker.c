/* src/proxy/worker.c: a data-plane thread (DESIGN.md section 1).
 *
 * The control thread talks to a worker through two mailboxes and an eventfd: a
 * pointer to the next snapshot and a drain deadline. On a new snapshot the worker
 * diffs its registered listeners against the snapshot's bindings (listeners are
 * shared objects, so "same listener" is pointer equality): new ones are added to
 * epoll, vanished ones removed, kept ones get the new binding and so the new app
 * for new connections. Connections accepted earlier keep the snapshot they were
 * accepted under (struct wsnap), so an update never changes a live connection.
 *
 * Accepting: listeners are level-triggered and we take at most ACCEPT_BATCH per
 * wakeup, so one busy port cannot starve the others. On EMFILE/ENFILE the worker
 * pauses its listeners for a moment instead of spinning (memcached's
 * accept_new_conns()). */
#include "proxy/worker.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/bug.h"
#include "core/clock.h"
#include "net/addr.h"
#include "proxy/flow.h"
#include "proxy/tunnel.h"

#define ACCEPT_BATCH 64
#define EMFILE_PAUSE_MS 100
#define PIPE_POOL_MAX 1024
/* Pipes a worker may grow for bulk streams (pipe_pool_grow): each holds up to four
 * times the pages of a default pipe while its destination stalls. */
#define PIPE_POOL_MAX_GROWN 64
/* Origin sockets a worker keeps for reuse, per address family (net/sockpool.h): a
 * connection the client has closed still holds its origin socket until the origin's
 * FIN, so the bench's 64 in flight kept up to 128 open, and a pool of 64 created a
 * socket for 8% of connections (256: 128 in 97,000). Each is one fd and one
 * unconnected kernel socket. */
#define ORIGIN_SOCKS_IDLE 256

static void on_wake(struct loop *loop, struct loop_io *io, uint32_t events);
static void on_resume(struct loop *loop, struct loop_timer *t);
static void on_drain_deadline(struct loop *loop, struct loop_timer *t);

struct worker *worker_new(int index, int notify_fd)
{
    struct worker *w = calloc(1, sizeof(*w));

    if (!w)
        return NULL;
    w->index = index;
    w->notify_fd = notify_fd;
    w->wake_fd = -1;
    w->ring = calloc(1, sizeof(*w->ring));
    w->scratch = malloc(WORKER_SCRATCH_BYTES);
    w->loop = loop_new();
    if (!w->ring || !w->scratch || !w->loop)
        goto fail;
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->wake_fd == -1)
        goto fail;
    if (loop_io_add(w->loop, &w->wake_io, w->wake_fd, EPOLLIN, on_wake) < 0)
        goto fail;
    atomic_init(&w->mailbox, NULL);
    atomic_init(&w->drain_deadline_ms, 0);
    list_init(&w->retired);
    list_init(&w->listeners);
    list_init(&w->tunnels);
    pipe_pool_init(&w->pipes, PIPE_POOL_MAX, PIPE_POOL_MAX_GROWN);
    tunnel_pool_init(&w->tunnel_pool);
    sock_pool_init(&w->origin_socks, w->loop, ORIGIN_SOCKS_IDLE,
                   EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
    loop_timer_init(&w->resume_timer, on_resume);
    loop_timer_init(&w->drain_timer, on_drain_deadline);
    if (flow_worker_init(w) < 0)
        goto fail;
    return w;

fail:
    worker_free(w);
    return NULL;
}

static void wsnap_release(struct wsnap *ws)
{
    snapshot_unref(ws->snap);
    free(ws);
}

void worker_free(struct worker *w)
{
    struct list_node *pos, *tmp;
    struct snapshot *s;

    if (!w)
        return;
    flow_worker_fini(w);
    list_for_each_safe(pos, tmp, &w->listeners)
    {
        struct wlistener *wl = container_of(pos, struct wlistener, link);
        list_del(&wl->link);
        free(wl->udp); /* flow.c's per-listener state; its flows are gone by now */
        free(wl);
    }
    list_for_each_safe(pos, tmp, &w->retired)
    {
        struct wsnap *ws = container_of(pos, struct wsnap, link);
        list_del(&ws->link);
        wsnap_release(ws);
    }
    if (w->cur)
        wsnap_release(w->cur);
    s = atomic_exchange(&w->mailbox, NULL);
    if (s)
        snapshot_unref(s);
    pipe_pool_fini(&w->pipes);
    sock_pool_fini(&w->origin_socks); /* the tunnels, which borrow them, are gone */
    slab_pool_fini(&w->tunnel_pool);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    loop_free(w->loop);
    free(w->scratch);
    free(w->ring);
    free(w);
}

void worker_wsnap_put(struct worker *w, struct wsnap *ws)
{
    BUG_ON(ws->live == 0);
    ws->live--;
    if (ws->live == 0 && ws != w->cur) {
        list_del(&ws->link);
        wsnap_release(ws);
    }
}

/* An address as the event log has it: IPv4-mapped IPv6 as IPv4. */
static void to_event_addr(const struct sockaddr_storage *a, struct event_addr *out)
{
    struct sockaddr_storage tmp = *a;

    memset(out, 0, sizeof(*out));
    addr_unmap(&tmp);
    out->port = addr_port(&tmp);
    if (tmp.ss_family == AF_INET) {
        out->family = 4;
        memcpy(out->ip, &((struct sockaddr_in *)&tmp)->sin_addr, 4);
    } else if (tmp.ss_family == AF_INET6) {
        out->family = 6;
        memcpy(out->ip, &((struct sockaddr_in6 *)&tmp)->sin6_addr, 16);
    }
}

void worker_emit(struct worker *w, const struct worker_event *ev, enum event_kind kind,
                 uint16_t status)
{
    struct event_rec rec;
    uint64_t now = clock_real_ns();

    memset(&rec, 0, sizeof(rec));
    rec.ts_ns = now;
    rec.connect_ns = ev->connect_ns;
    rec.disconnect_ns = kind == EVENT_CONNECT ? 0 : now;
    rec.client_bytes = ev->client_bytes;
    rec.origin_bytes = ev->origin_bytes;
    to_event_addr(ev->client, &rec.client);
    to_event_addr(ev->origin, &rec.origin);
    rec.status = status;
    rec.kind = (uint8_t)kind;
    rec.proto = (uint8_t)ev->proto;
    rec.pp = (uint8_t)ev->app->pp;
    memcpy(rec.app_id, ev->app->id, sizeof(rec.app_id) - 1);
    if (event_ring_push(w->ring, &rec) == EVENT_HALF_FULL) {
        uint64_t one = 1;
        /* EAGAIN means the counter is saturated: the control thread is awake. */
        (void)!write(w->notify_fd, &one, sizeof(one));
    }
}

/* --- listeners --- */

/* Accepts up to ACCEPT_BATCH connections. Returns less than ACCEPT_BATCH once the
 * queue is empty or accepting failed, ACCEPT_BATCH when more may be waiting. */
static int accept_batch(struct loop *loop, struct loop_io *io)
{
    struct wlistener *wl = container_of(io, struct wlistener, io);
    struct worker *w = wl->w;
    int i;

    for (i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t len = sizeof(peer);
        int fd = accept4(io->fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd == -1) {
            if (errno == EINTR || errno == ECONNABORTED) /* that one is gone; next */
                continue;
            if (errno == EAGAIN)
                return i;
            w->stats.accept_errors++;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                struct list_node *pos, *tmp;
                if (log_ratelimit_allow(&w->log_rl, loop_now_ms(loop), 5, 1000))
                    log_warn("accept: %s; pausing listeners for %d ms", strerror(errno),
                             EMFILE_PAUSE_MS);
                list_for_each_safe(pos, tmp, &w->listeners)
                {
                    struct wlistener *p = container_of(pos, struct wlistener, link);
                    if (p->l->proto == APP_TCP && p->io.is_added) {
                        loop_io_del(loop, &p->io);
                        p->is_paused = true;
                    }
                }
                loop_timer_arm(loop, &w->resume_timer, EMFILE_PAUSE_MS);
            }
            return i;
        }
        tunnel_accept(w, wl, fd, &peer);
    }
    return i;
}

static void on_accept(struct loop *loop, struct loop_io *io, uint32_t events)
{
    (void)events;
    accept_batch(loop, io);
}

static int wlistener_register(struct worker *w, struct wlistener *wl)
{
    if (wl->l->proto == APP_UDP)
        return flow_listener_start(w, wl);
    return loop_io_add(w->loop, &wl->io, wl->l->fds[w->index], EPOLLIN, on_accept);
}

/* Closes this worker's socket of <wl>'s group now. The listener object may live
 * on for a while (a retired snapshot used by live connections holds it), but it
 * must stop taking clients at once: a TCP client would wait in a queue nobody
 * reads, a UDP datagram would vanish. Slot <w->index> is ours alone; the last
 * snapshot reference (acquire/release) orders this before listener_unref(). */
static void wlistener_close_fd(struct worker *w, struct wlistener *wl)
{
    int fd = wl->l->fds[w->index];

    if (fd >= 0) {
        wl->l->fds[w->index] = -1;
        close(fd);
    }
}

/* Stops watching a TCP listener after taking what the kernel already accepted
 * for us. Closing a listening socket resets every connection still in its
 * queue, yet those clients completed their handshake with us, so they are
 * served, under the configuration they arrived in (the worker's current
 * snapshot, which still holds <wl>'s binding). A handshake that completes
 * between the last accept and the close is still reset: the kernel has no way
 * to stop a listener taking new clients but keep its queue. */
static void wlistener_take_queue(struct worker *w, struct wlistener *wl)
{
    if (!wl->io.is_added)
        return;
    loop_io_del(w->loop, &wl->io);
    for (int i = 0; i < 64 && accept_batch(w->loop, &wl->io) == ACCEPT_BATCH; i++) {
    }
}

static void wlistener_remove(struct worker *w, struct wlistener *wl)
{
    if (wl->l->proto == APP_UDP)
        flow_listener_stop(w, wl);
    else
        wlistener_take_queue(w, wl);
    wlistener_close_fd(w, wl);
    wl->l->worker_slot[w->index] = NULL;
    list_del(&wl->link);
    free(wl);
}

static void on_resume(struct loop *loop, struct loop_timer *t)
{
    struct worker *w = container_of(t, struct worker, resume_timer);
    struct list_node *pos, *tmp;

    (void)loop;
    if (w->is_draining)
        return;
    list_for_each_safe(pos, tmp, &w->listeners)
    {
        struct wlistener *wl = container_of(pos, struct wlistener, link);
        if (wl->is_paused && wlistener_register(w, wl) == 0)
            wl->is_paused = false;
    }
}

/* Makes the worker's registered listeners match <s>. */
static void apply_snapshot(struct worker *w, struct snapshot *s)
{
    struct wsnap *ws = calloc(1, sizeof(*ws));
    struct list_node *pos, *tmp;

    if (!ws) {
        /* Keep running the old configuration rather than half of the new one. */
        log_error("out of memory applying configuration generation %llu",
                  (unsigned long long)s->gen);
        snapshot_unref(s);
        return;
    }
    ws->snap = s;
    list_init(&ws->link);
    for (size_t i = 0; i < s->n_bindings; i++) {
        const struct binding *b = &s->bindings[i];
        struct wlistener *wl = b->l->worker_slot[w->index];

        if (!wl) {
            wl = calloc(1, sizeof(*wl));
            if (!wl) {
                log_error("out of memory adding a listener");
                continue;
            }
            wl->w = w;
            wl->l = b->l;
            wl->b = b;
            b->l->worker_slot[w->index] = wl;
            list_add_tail(&w->listeners, &wl->link);
            if (!w->is_draining) {
                int err = wlistener_register(w, wl);
                if (err < 0)
                    log_error("cannot watch a listener: %s", strerror(-err));
            }
        }
        wl->b = b;
        wl->gen = s->gen;
    }
    list_for_each_safe(pos, tmp, &w->listeners)
    {
        struct wlistener *wl = container_of(pos, struct wlistener, link);
        if (wl->gen != s->gen)
            wlistener_remove(w, wl);
    }
    if (w->cur) {
        if (w->cur->live == 0)
            wsnap_release(w->cur);
        else
            list_add_tail(&w->retired, &w->cur->link);
    }
    w->cur = ws;
    loop_set_busy_poll(w->loop, s->params.busy_poll_us);
    flow_snapshot_applied(w);
}

/* --- draining --- */

static bool worker_is_idle(const struct worker *w)
{
    return list_empty(&w->tunnels) && flow_worker_is_idle(w);
}

void worker_check_drained(struct worker *w)
{
    if (w->is_draining && worker_is_idle(w))
        loop_stop(w->loop);
}

static void on_drain_deadline(struct loop *loop, struct loop_timer *t)
{
    struct worker *w = container_of(t, struct worker, drain_timer);

    (void)loop;
    tunnel_close_all(w, 500);
    flow_close_all(w);
    loop_stop(w->loop);
}

static void start_drain(struct worker *w, uint64_t deadline_ms)
{
    struct list_node *pos, *tmp;
    uint64_t now = clock_mono_ms();

    w->is_draining = true;
    list_for_each_safe(pos, tmp, &w->listeners)
    {
        struct wlistener *wl = container_of(pos, struct wlistener, link);
        if (wl->l->proto == APP_UDP) {
            flow_listener_stop(w, wl);
            wlistener_close_fd(w, wl);
            continue;
        }
        /* Take what the kernel already accepted for us, then stop listening on
         * our socket of the group, so that new clients are refused at once
         * instead of waiting in a queue nobody reads. */
        wlistener_take_queue(w, wl);
        wlistener_close_fd(w, wl);
    }
    /* UDP flows have no end of their own: a drain closes them at once. */
    flow_close_all(w);
    loop_timer_arm(w->loop, &w->drain_timer, deadline_ms > now ? deadline_ms - now : 0);
    worker_check_drained(w);
}

static void on_wake(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct worker *w = container_of(io, struct worker, wake_io);
    uint64_t v;
    struct snapshot *s;
    uint64_t deadline;

    (void)loop;
    (void)events;
    if (read(w->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_warn("eventfd read: %s", strerror(errno));
    s = atomic_exchange(&w->mailbox, NULL);
    if (s)
        apply_snapshot(w, s);
    deadline = atomic_load(&w->drain_deadline_ms);
    if (deadline && !w->is_draining)
        start_drain(w, deadline);
}

static void wake(struct worker *w)
{
    uint64_t one = 1;

    if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_warn("eventfd write: %s", strerror(errno));
}

void worker_publish(struct worker *w, struct snapshot *s)
{
    struct snapshot *old;

    snapshot_ref(s);
    old = atomic_exchange(&w->mailbox, s);
    if (old)
        snapshot_unref(old);
    wake(w);
}

void worker_drain(struct worker *w, uint64_t deadline_ms)
{
    atomic_store(&w->drain_deadline_ms, deadline_ms ? deadline_ms : 1);
    wake(w);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    char name[16];
    int err;

    snprintf(name, sizeof(name), "w%d", w->index);
    log_set_thread_name(name);
    /* "prism-w0" in top -H and /proc/<pid>/task/<tid>/comm (at most 15 bytes). */
    snprintf(name, sizeof(name), "prism-w%d", w->index);
    (void)pthread_setname_np(pthread_self(), name);
    err = loop_run(w->loop);
    if (err < 0)
        log_error("event loop failed: %s", strerror(-err));
    /* Whatever is still open at exit (a loop failure) is cut and logged. */
    tunnel_close_all(w, 500);
    flow_close_all(w);
    loop_run_once(w->loop, 0); /* run the deferred frees */
    return NULL;
}

int worker_start(struct worker *w)
{
    int err = pthread_create(&w->thread, NULL, worker_main, w);

    return err ? -err : 0;
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}
