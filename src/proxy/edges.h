/* src/proxy/edges.h: the edge addresses of apps, decided by the control thread
 * before it builds a snapshot (DESIGN.md section 3). */
#ifndef PROXY_EDGES_H
#define PROXY_EDGES_H

#include <stddef.h>

#include "proxy/config.h"
#include "proxy/edgepool.h"
#include "proxy/snapshot.h"

/* Sets edge[], n_edge and is_freebind of every app of <all>: static edge_ips (each
 * must be bindable here), else with pools the addresses of the app's DNS name from
 * the pools of <cfg> (built from <prev>, which may be NULL, so names keep their
 * addresses), else the shared edge.addresses filtered by connectivity. On success
 * <*pool> is the pool map to keep once the apply succeeds (NULL without pools);
 * on failure it is NULL and <err> names the app and the field. <prev> is not
 * changed. */
int edges_assign(const struct edgepool *prev, const struct node_config *cfg,
                 struct snap_app *const *all, size_t n, struct edgepool **pool, char *err,
                 size_t errlen);

/* The map to pass as <prev> to the first edges_assign() after a start: the <pairs>
 * a previous run saved (edgepool_each() of its map), kept where they are inside the
 * pools of <cfg>. NULL when <cfg> has no pools, there are no pairs, or on ENOMEM:
 * names are then placed by hash. */
struct edgepool *edges_restore(const struct node_config *cfg, const struct edgepool_pair *pairs,
                               size_t n);

#endif
