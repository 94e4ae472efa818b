/* src/proxy/worker.h: a data-plane thread: one loop, its own listener sockets, its
 * connections and flows, and one event ring towards the control thread.
 *
 * The struct is visible to the other files of proxy/ (tunnel.c, flow.c), which run
 * on the worker's thread; nothing outside proxy/ reads it except through the
 * functions below. */
#ifndef PROXY_WORKER_H
#define PROXY_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/event.h"
#include "core/list.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/slab.h"
#include "net/sockpool.h"
#include "net/splice.h"
#include "proxy/snapshot.h"

#define WORKER_SCRATCH_BYTES (16 * 1024)

/* A snapshot as one worker uses it: the worker's own count of live connections
 * accepted under it, so the hot path never touches a shared counter. */
struct wsnap {
    struct snapshot *snap; /* one counted reference, dropped when retired and unused */
    uint64_t live;         /* connections and flows of this worker accepted under it */
    struct list_node link; /* in worker->retired while live > 0 */
};

/* A listener socket registered in this worker's loop. */
struct wlistener {
    struct loop_io io;
    struct worker *w;
    struct listener *l;      /* borrowed from the current snapshot */
    const struct binding *b; /* the current snapshot's binding for it */
    uint64_t gen;            /* snapshot generation that last confirmed it */
    bool is_paused;          /* taken out of epoll after EMFILE */
    struct list_node link;   /* in worker->listeners */
    void *udp;               /* proxy/flow.c state for UDP listeners; NULL for TCP */
};

struct worker_stats {
    uint64_t accepted; /* TCP connections accepted */
    uint64_t active;   /* TCP connections open now */
    uint64_t accept_errors;
    uint64_t tcp_bytes_copied; /* relayed with recv() and send(), not spliced */
    uint64_t udp_flows_active;
    uint64_t udp_flows_created;
    uint64_t udp_flows_refused; /* over the per-worker cap */
    uint64_t udp_dgrams_in, udp_dgrams_out;
    uint64_t udp_spp_dropped; /* origin replies without a valid SPP header for the flow */
    uint64_t udp_dropped;     /* other datagrams we could not deliver */
    uint64_t udp_gro_dgrams;  /* datagrams that came in runs the kernel coalesced (UDP_GRO) */
    /* Filled in by dataplane_stats from the worker's loop and pipe pool: */
    uint64_t busy_polls;          /* polls while busy polling */
    uint64_t busy_poll_briefs;    /* waits that spun only briefly after a bulk stream moved */
    uint64_t busy_poll_contended; /* waits that did not spin, the CPU held by others */
    uint64_t pipes_grown;         /* pipes grown for bulk streams, now */
    uint64_t origin_socks_opened; /* TCP sockets created for origin connections */
    uint64_t origin_socks_reused; /* origin sockets that served another connection again */
    uint64_t origin_ports_taken;  /* kept ports found taken at connect */
};

struct worker {
    int index;
    pthread_t thread;
    struct loop *loop;
    struct event_ring *ring; /* owned; the control thread is its consumer */
    int wake_fd;             /* eventfd: control -> worker */
    int notify_fd;           /* borrowed eventfd: worker -> control (ring half full) */
    struct loop_io wake_io;
    _Atomic(struct snapshot *) mailbox; /* next snapshot, one reference; NULL if none */
    _Atomic uint64_t drain_deadline_ms; /* nonzero: stop accepting, exit when idle or then */
    struct wsnap *cur;                  /* snapshot in use */
    struct list_node retired;           /* older wsnaps still used by live connections */
    struct list_node listeners;         /* struct wlistener */
    struct list_node tunnels;           /* struct tunnel, for drain and shutdown */
    struct pipe_pool pipes;
    struct sock_pool origin_socks;  /* tunnel.c's origin sockets */
    struct slab_pool tunnel_pool;   /* struct tunnel (tunnel.c) */
    uint8_t *scratch;               /* WORKER_SCRATCH_BYTES: tunnel.c's short-exchange buffer */
    struct loop_timer resume_timer; /* resumes listeners paused by EMFILE */
    struct loop_timer drain_timer;
    bool is_draining;
    void *udp_state; /* proxy/flow.c per-worker state (flow table) */
    struct log_ratelimit log_rl;
    struct worker_stats stats; /* written by this worker only; read racily */
};

/* Creates worker <index> (not started); it pokes eventfd <notify_fd> (borrowed)
 * when its event ring is half full. Returns NULL on failure. */
struct worker *worker_new(int index, int notify_fd);
void worker_free(struct worker *w);

/* Starts the thread. Returns 0 or -errno. */
int worker_start(struct worker *w);

/* Hands <s> to the worker (taking one reference). Thread-safe; if the worker has
 * not picked up an earlier snapshot yet, that one is released unseen. */
void worker_publish(struct worker *w, struct snapshot *s);

/* Asks the worker to stop accepting and to exit once its connections have ended,
 * cutting what remains at <deadline_ms> (monotonic). Thread-safe. */
void worker_drain(struct worker *w, uint64_t deadline_ms);

/* Waits for the thread to exit. */
void worker_join(struct worker *w);

/* For the worker's own files: the snapshot in use and its accounting. */
static inline struct wsnap *worker_wsnap_get(struct worker *w)
{
    w->cur->live++;
    return w->cur;
}
void worker_wsnap_put(struct worker *w, struct wsnap *ws);

/* What an event record says about the connection (tunnel.c) or flow (flow.c) it
 * comes from. Borrowed: nothing is kept past worker_emit(). */
struct worker_event {
    const struct app *app;
    const struct sockaddr_storage *client, *origin;
    uint64_t connect_ns;   /* realtime when it was accepted or created */
    uint64_t client_bytes; /* read from the client */
    uint64_t origin_bytes; /* read from the origin */
    enum event_proto proto;
};

/* Queues the event record of <kind> and <status> for <ev>, stamped now; drops and
 * counts it when the ring is full. */
void worker_emit(struct worker *w, const struct worker_event *ev, enum event_kind kind,
                 uint16_t status);

/* Called by tunnel/flow code when its last object ends during a drain. */
void worker_check_drained(struct worker *w);

#endif
