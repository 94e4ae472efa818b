/* src/proxy/dataplane.h: the control thread's handle on the workers: builds
 * snapshots from a list of apps, publishes them, and drains the workers at exit. */
#ifndef PROXY_DATAPLANE_H
#define PROXY_DATAPLANE_H

#include <stddef.h>
#include <stdint.h>

#include "core/event.h"
#include "proxy/snapshot.h"
#include "proxy/worker.h"

struct dataplane;

/* Creates and starts <n_workers> workers (1..SNAP_MAX_WORKERS). Returns NULL with
 * a reason in <err>. */
struct dataplane *dataplane_start(int n_workers, char *err, size_t errlen);

/* Builds a snapshot over <apps> (each gains a reference, and listens on its
 * sa->edge addresses) with the parameters given, and publishes it to every worker. Listeners are
 * bound here, so when this returns 0 every listener of the new configuration is
 * open. On failure the running configuration stays as it was, <err> says why, and
 * a negative errno is returned: -EEXIST when two apps overlap on a transport,
 * address and port, a bind/listen error, or -ENOMEM. */
int dataplane_apply(struct dataplane *dp, struct snap_app *const *apps, size_t n_apps,
                    const struct snap_params *params, char *err, size_t errlen);

/* The snapshot in use (borrowed; valid until the next dataplane_apply). */
const struct snapshot *dataplane_current(const struct dataplane *dp);

int dataplane_n_workers(const struct dataplane *dp);
/* An eventfd that becomes readable when a worker's event ring is half full: the
 * control thread should drain the rings (and read the eventfd to reset it). */
int dataplane_notify_fd(const struct dataplane *dp);
struct event_ring *dataplane_ring(struct dataplane *dp, int i);
/* Sums the workers' counters (racy reads of per-worker counters). */
void dataplane_stats(const struct dataplane *dp, struct worker_stats *out);

/* Event records dropped because a worker's ring was full (racy sum). */
uint64_t dataplane_events_dropped(const struct dataplane *dp);

/* Stops accepting everywhere and waits until every worker has exited: when its
 * connections have ended, or at <drain_ms> from now at the latest. */
void dataplane_stop(struct dataplane *dp, uint32_t drain_ms);

void dataplane_free(struct dataplane *dp);

#endif
