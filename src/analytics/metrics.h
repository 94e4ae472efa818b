/* src/analytics/metrics.h: the Prometheus text exposition served at /metrics
 * (api.listen, no token). Counters are summed from per-worker structs at scrape
 * time; nothing on the data path is shared. */
#ifndef ANALYTICS_METRICS_H
#define ANALYTICS_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "proxy/worker.h"

struct metrics_input {
    struct worker_stats workers; /* summed over workers */
    uint64_t events_written;     /* lines in events.log */
    uint64_t events_lost;        /* write errors */
    uint64_t events_dropped;     /* rings full */
    size_t apps, listeners;
    int n_workers;
    const char *version;
};

/* Writes the exposition into <buf>. Returns the length (excluding NUL), or 0 when
 * <len> is too small. */
size_t metrics_render(const struct metrics_input *in, char *buf, size_t len);

#endif
