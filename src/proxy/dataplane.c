/* src/proxy/dataplane.c: workers and snapshot publication, run by the control
 * thread. The control thread keeps one reference to the current snapshot (to reuse
 * its listeners in the next one); each worker holds its own. */
#include "proxy/dataplane.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"

struct dataplane {
    int n_workers;
    int notify_fd; /* owned eventfd, written by workers */
    struct worker *workers[SNAP_MAX_WORKERS];
    struct snapshot *cur; /* counted */
};

struct dataplane *dataplane_start(int n_workers, char *err, size_t errlen)
{
    struct dataplane *dp = calloc(1, sizeof(*dp));

    if (!dp) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    dp->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (dp->notify_fd == -1) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        free(dp);
        return NULL;
    }
    for (int i = 0; i < n_workers; i++) {
        int e;
        dp->workers[i] = worker_new(i, dp->notify_fd);
        if (!dp->workers[i]) {
            snprintf(err, errlen, "cannot create worker %d: %s", i, strerror(errno));
            goto fail;
        }
        dp->n_workers = i + 1;
        e = worker_start(dp->workers[i]);
        if (e < 0) {
            snprintf(err, errlen, "cannot start worker %d: %s", i, strerror(-e));
            worker_free(dp->workers[i]);
            dp->workers[i] = NULL;
            dp->n_workers = i;
            goto fail;
        }
    }
    return dp;

fail:
    dataplane_stop(dp, 0);
    dataplane_free(dp);
    return NULL;
}

int dataplane_apply(struct dataplane *dp, struct snap_app *const *apps, size_t n_apps,
                    const struct snap_params *params, char *err, size_t errlen)
{
    struct snapshot *s = snapshot_build(dp->cur, apps, n_apps, params, dp->n_workers, err, errlen);

    if (!s)
        return -errno;
    for (int i = 0; i < dp->n_workers; i++)
        worker_publish(dp->workers[i], s);
    snapshot_unref(dp->cur);
    dp->cur = s;
    return 0;
}

const struct snapshot *dataplane_current(const struct dataplane *dp)
{
    return dp->cur;
}

int dataplane_n_workers(const struct dataplane *dp)
{
    return dp->n_workers;
}

int dataplane_notify_fd(const struct dataplane *dp)
{
    return dp->notify_fd;
}

struct event_ring *dataplane_ring(struct dataplane *dp, int i)
{
    return dp->workers[i]->ring;
}

void dataplane_stats(const struct dataplane *dp, struct worker_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < dp->n_workers; i++) {
        const struct worker_stats *s = &dp->workers[i]->stats;
        out->accepted += s->accepted;
        out->active += s->active;
        out->accept_errors += s->accept_errors;
        out->tcp_bytes_copied += s->tcp_bytes_copied;
        out->udp_flows_active += s->udp_flows_active;
        out->udp_flows_created += s->udp_flows_created;
        out->udp_flows_refused += s->udp_flows_refused;
        out->udp_dgrams_in += s->udp_dgrams_in;
        out->udp_dgrams_out += s->udp_dgrams_out;
        out->udp_spp_dropped += s->udp_spp_dropped;
        out->udp_dropped += s->udp_dropped;
        out->udp_gro_dgrams += s->udp_gro_dgrams;
        out->busy_polls += loop_busy_polls(dp->workers[i]->loop);
        out->busy_poll_briefs += loop_busy_poll_briefs(dp->workers[i]->loop);
        out->busy_poll_contended += loop_busy_poll_contended(dp->workers[i]->loop);
        out->pipes_grown += dp->workers[i]->pipes.n_grown;
        out->origin_socks_opened += dp->workers[i]->origin_socks.n_opened;
        out->origin_socks_reused += dp->workers[i]->origin_socks.n_reused;
        out->origin_ports_taken += dp->workers[i]->origin_socks.n_ports_taken;
    }
}

uint64_t dataplane_events_dropped(const struct dataplane *dp)
{
    uint64_t n = 0;

    for (int i = 0; i < dp->n_workers; i++)
        n += dp->workers[i]->ring->dropped;
    return n;
}

void dataplane_stop(struct dataplane *dp, uint32_t drain_ms)
{
    uint64_t deadline = clock_mono_ms() + drain_ms;

    for (int i = 0; i < dp->n_workers; i++)
        worker_drain(dp->workers[i], deadline);
    for (int i = 0; i < dp->n_workers; i++)
        worker_join(dp->workers[i]);
}

void dataplane_free(struct dataplane *dp)
{
    if (!dp)
        return;
    for (int i = 0; i < dp->n_workers; i++)
        worker_free(dp->workers[i]);
    snapshot_unref(dp->cur);
    close(dp->notify_fd);
    free(dp);
}
