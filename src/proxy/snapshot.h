/* src/proxy/snapshot.h: the immutable, refcounted configuration the workers read.
 *
 * The control thread builds a snapshot (apps, and the listening sockets they
 * need), publishes it to every worker, and drops its reference to the previous one.
 * A listener whose transport, address and port are unchanged is carried over from
 * one snapshot to the next, so a reload never closes or re-binds a socket that is
 * still wanted. A snapshot lives as long as a worker uses it or a connection that
 * was accepted under it is alive. */
#ifndef PROXY_SNAPSHOT_H
#define PROXY_SNAPSHOT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "proxy/app.h"

#define SNAP_MAX_WORKERS 64

/* An app shared by snapshots: apps that do not change between two snapshots are
 * the same object. */
struct snap_app {
    _Atomic int refs;
    struct app *app; /* owned */
    /* The addresses this app listens on (ports ignored), decided by the control
     * thread before the snapshot is built: the node's shared edge addresses
     * filtered by the app's edge_ips, static ips, or addresses from a pool.
     * Read and written by the control thread only (workers use the listeners). */
    struct sockaddr_storage edge[APP_MAX_EDGE_IPS];
    size_t n_edge;
    bool is_freebind; /* edge[] came from a pool: bind with IP_FREEBIND */
};

/* One transport/address/port, with one SO_REUSEPORT socket per worker. */
struct listener {
    _Atomic int refs;
    enum app_proto proto;
    struct sockaddr_storage addr;        /* with the port */
    int n_fds;                           /* = number of workers */
    int fds[SNAP_MAX_WORKERS];           /* owned; closed when the last ref goes */
    void *worker_slot[SNAP_MAX_WORKERS]; /* slot i is read and written by worker i only */
};

struct binding {
    struct listener *l;  /* counted */
    struct snap_app *sa; /* counted */
    uint16_t edge_port;  /* = port of l->addr */
};

struct snap_params {
    char colo[16];
    uint32_t connect_ms, idle_ms, udp_idle_ms, user_timeout_ms, drain_ms;
    uint32_t udp_max_flows;
    uint32_t udp_rcvbuf_bytes; /* SO_RCVBUF of edge UDP sockets */
    uint32_t busy_poll_us;
};

struct snapshot {
    _Atomic int refs;
    uint64_t gen; /* increases with every snapshot */
    struct snap_params params;
    struct binding *bindings; /* owned array */
    size_t n_bindings;
    struct snap_app **apps; /* counted */
    size_t n_apps;
};

/* Wraps <app> (taking ownership) with one reference. Returns NULL on ENOMEM (and
 * frees <app>). */
struct snap_app *snap_app_new(struct app *app);
void snap_app_ref(struct snap_app *sa);
void snap_app_unref(struct snap_app *sa);

/* Builds a snapshot over <apps> (each gets a new reference; each listens on its
 * sa->edge addresses and its ports) for <n_workers> workers. Listeners of <prev> (may be NULL) are
 * reused where transport, address and port match; the others are opened now. Two apps on one
 * transport, address and port (a wildcard address overlaps its whole family) are refused. On
 * failure nothing new stays open, <err> names the app, address and reason, and NULL is returned
 * with errno EEXIST (overlap), a bind/listen errno, or ENOMEM. The result has one reference, owned
 * by the caller. */
struct snapshot *snapshot_build(const struct snapshot *prev, struct snap_app *const *apps,
                                size_t n_apps, const struct snap_params *params, int n_workers,
                                char *err, size_t errlen);

void snapshot_ref(struct snapshot *s);
/* Drops a reference; the last one frees the snapshot and unrefs its listeners
 * (closing their sockets) and apps. Any thread may drop the last reference. */
void snapshot_unref(struct snapshot *s);

#endif
