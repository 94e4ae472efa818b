/* src/analytics/metrics.c: Prometheus text format, written by hand (no C client
 * library is packaged in Debian; see ../shared/notes/libraries.md section 9).
 * Names follow one prefix, prism_, with _total for counters. */
#include "analytics/metrics.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>

struct out {
    char *buf;
    size_t len, pos;
    int is_full;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (o->is_full)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->pos, o->len - o->pos, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->len - o->pos) {
        o->is_full = 1;
        return;
    }
    o->pos += (size_t)n;
}

static void metric(struct out *o, const char *name, const char *type, const char *help,
                   uint64_t value)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n%s %" PRIu64 "\n", name, help, name, type, name, value);
}

size_t metrics_render(const struct metrics_input *in, char *buf, size_t len)
{
    struct out o = {.buf = buf, .len = len};
    const struct worker_stats *w = &in->workers;

    put(&o,
        "# HELP prism_build_info prism version\n# TYPE prism_build_info gauge\n"
        "prism_build_info{version=\"%s\"} 1\n",
        in->version);
    metric(&o, "prism_workers", "gauge", "Data-plane worker threads.", (uint64_t)in->n_workers);
    metric(&o, "prism_apps", "gauge", "Spectrum apps running.", in->apps);
    metric(&o, "prism_listeners", "gauge", "Listening addresses and ports.", in->listeners);
    metric(&o, "prism_tcp_connections_total", "counter", "TCP connections accepted.", w->accepted);
    metric(&o, "prism_tcp_connections_active", "gauge", "TCP connections open.", w->active);
    metric(&o, "prism_tcp_accept_errors_total", "counter", "accept() failures.", w->accept_errors);
    metric(&o, "prism_udp_flows_total", "counter", "UDP flows created.", w->udp_flows_created);
    metric(&o, "prism_udp_flows_active", "gauge", "UDP flows open.", w->udp_flows_active);
    metric(&o, "prism_udp_flows_refused_total", "counter",
           "UDP clients refused (flow cap reached, or no socket).", w->udp_flows_refused);
    metric(&o, "prism_udp_datagrams_in_total", "counter", "Datagrams sent to origins.",
           w->udp_dgrams_in);
    metric(&o, "prism_udp_datagrams_out_total", "counter", "Datagrams sent to clients.",
           w->udp_dgrams_out);
    metric(&o, "prism_udp_spp_dropped_total", "counter",
           "Origin replies dropped: no valid SPP header for the flow's client.",
           w->udp_spp_dropped);
    metric(&o, "prism_udp_dropped_total", "counter",
           "Datagrams dropped otherwise (too large, buffers full, flow refused).", w->udp_dropped);
    metric(&o, "prism_udp_gro_datagrams_total", "counter",
           "Datagrams that arrived in runs the kernel coalesced into one receive (UDP GRO), "
           "from clients or origins.",
           w->udp_gro_dgrams);
    metric(&o, "prism_tcp_copied_bytes_total", "counter",
           "TCP bytes relayed through user space (recv and send) instead of spliced: "
           "short exchanges, and the first read of a burst that is not streaming.",
           w->tcp_bytes_copied);
    metric(&o, "prism_tcp_pipes_grown", "gauge",
           "Splice pipes grown for bulk streams (at most 64 per worker).", w->pipes_grown);
    metric(&o, "prism_tcp_origin_sockets_opened_total", "counter",
           "TCP sockets created for connections to origins.", w->origin_socks_opened);
    metric(&o, "prism_tcp_origin_sockets_reused_total", "counter",
           "Origin sockets that served another connection, after one ended cleanly.",
           w->origin_socks_reused);
    metric(&o, "prism_tcp_origin_ports_taken_total", "counter",
           "Loopback origin sockets given up at connect because another socket held "
           "their kept port and 4-tuple.",
           w->origin_ports_taken);
    metric(&o, "prism_busy_polls_total", "counter",
           "Polls of epoll made while busy polling (busy_poll_us), the last of each spin "
           "included when it found an event.",
           w->busy_polls);
    metric(&o, "prism_busy_poll_brief_total", "counter",
           "Waits that busy polled only briefly (20 us), after a bulk stream moved.",
           w->busy_poll_briefs);
    metric(&o, "prism_busy_poll_contended_total", "counter",
           "Waits that slept at once instead of busy polling, the worker having waited for "
           "its CPU, taken by other threads, over a quarter of the last 10 ms (busy_poll_us).",
           w->busy_poll_contended);
    metric(&o, "prism_events_written_total", "counter", "Event log records written.",
           in->events_written);
    metric(&o, "prism_events_lost_total", "counter", "Event log records lost to write errors.",
           in->events_lost);
    metric(&o, "prism_events_dropped_total", "counter",
           "Event records dropped because a worker's ring was full.", in->events_dropped);
    return o.is_full ? 0 : o.pos;
}
