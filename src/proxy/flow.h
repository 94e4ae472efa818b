/* src/proxy/flow.h: UDP flows (DESIGN.md section 4, issue #4): per-client state on
 * a worker, each with its own connected socket towards the origin. */
#ifndef PROXY_FLOW_H
#define PROXY_FLOW_H

#include <stdbool.h>

#include "proxy/worker.h"

int flow_worker_init(struct worker *w);
void flow_worker_fini(struct worker *w);

/* Starts / stops receiving on UDP listener <wl> of <w>. */
int flow_listener_start(struct worker *w, struct wlistener *wl);
void flow_listener_stop(struct worker *w, struct wlistener *wl);

/* Called after a new snapshot is in use (timeouts and caps may have changed). */
void flow_snapshot_applied(struct worker *w);

bool flow_worker_is_idle(const struct worker *w);

/* Ends every flow now, logging their disconnect records. */
void flow_close_all(struct worker *w);

#endif
