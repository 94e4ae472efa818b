/* src/main.c: start-up, signals and wiring.
 *
 *   prism serve [--config FILE] [--log-level LEVEL]
 *   prism check-config FILE
 *   prism --help | --version
 *
 * The main thread becomes the control thread: it owns the node configuration, the
 * dataplane (workers), the event log, and the signals (through a signalfd, so
 * signals are ordinary loop events and no handler runs on a worker). */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analytics/evlog.h"
#include "analytics/metrics.h"
#include "core/bug.h"
#include "core/log.h"
#include "core/loop.h"
#include "proxy/config.h"
#include "proxy/dataplane.h"

#ifndef PRISM_VERSION
#define PRISM_VERSION "0.1.0"
#endif

#define EVLOG_DRAIN_MS 50
#define CONFIG_FLAGS APP_F_UDP_BUILT

struct control {
    struct loop *loop;
    const char *config_path; /* NULL: embedded defaults */
    struct node_config *cfg; /* the configuration in force */
    struct dataplane *dp;
    struct evlog *evlog;
    struct loop_io signal_io;
    int signal_fd;
    struct loop_timer evlog_timer;
    struct snap_app **file_apps; /* counted: apps from the node configuration file */
    size_t n_file_apps;
    struct snap_app **api_apps;  /* counted: apps created through the API */
    size_t n_api_apps;
    int n_workers;
    uint64_t ticks; /* evlog timer runs */
    int exit_code;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: prism serve [--config FILE] [--log-level error|warn|info|debug]\n"
            "       prism check-config FILE\n"
            "       prism --help | --version\n"
            "\n"
            "serve         run the proxy; without --config, on the embedded defaults\n"
            "check-config  validate a node configuration file; exit 0 if valid, 2 if not\n"
            "\n"
            "Signals: SIGHUP re-reads the configuration file; SIGTERM and SIGINT stop\n"
            "accepting, let live connections finish (timeouts.drain_ms), and exit 0;\n"
            "SIGUSR1 logs every counter of /metrics.\n");
}

static struct node_config *load_config(const char *path, char *err, size_t errlen)
{
    if (!path)
        return config_default();
    return config_load(path, CONFIG_FLAGS, err, errlen);
}

static void params_from_config(const struct node_config *cfg, struct snap_params *p)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->colo, sizeof(p->colo), "%s", cfg->colo);
    p->connect_ms = cfg->connect_ms;
    p->idle_ms = cfg->idle_ms;
    p->udp_idle_ms = cfg->udp_idle_ms;
    p->user_timeout_ms = cfg->user_timeout_ms;
    p->drain_ms = cfg->drain_ms;
    p->udp_max_flows = cfg->udp_max_flows;
}

/* Sets where <sa> listens: its static edge_ips, or the node's shared edge
 * addresses filtered by its connectivity.
 * TODO(#3): addresses from edge.pool_v4 / pool_v6, one set per DNS name. */
static int assign_edge(struct control *c, struct snap_app *sa, char *err, size_t errlen)
{
    sa->n_edge = app_edge_addrs(sa->app, c->cfg->edge_addrs, c->cfg->n_edge_addrs, sa->edge,
                                APP_MAX_EDGE_IPS);
    if (sa->n_edge == 0) {
        snprintf(err, errlen, "app '%s': no edge address fits its edge_ips", sa->app->id);
        return -EINVAL;
    }
    return 0;
}

/* Applies file apps <file> plus API apps <api> (both borrowed; each gains a
 * reference on success) with the parameters of <cfg>. On success they become the
 * running sets; on failure nothing changes and <err> says why. */
static int control_apply(struct control *c, const struct node_config *cfg,
                         struct snap_app *const *file, size_t n_file, struct snap_app *const *api,
                         size_t n_api, char *err, size_t errlen)
{
    size_t n = n_file + n_api;
    struct snap_app **all = calloc(n ? n : 1, sizeof(*all));
    struct snap_params params;
    int rc;

    if (!all) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    memcpy(all, file, n_file * sizeof(*all));
    memcpy(all + n_file, api, n_api * sizeof(*all));
    for (size_t i = 0; i < n; i++) {
        rc = assign_edge(c, all[i], err, errlen);
        if (rc < 0)
            goto out;
    }
    params_from_config(cfg, &params);
    rc = dataplane_apply(c->dp, all, n, &params, err, errlen);
    if (rc < 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        snap_app_ref(all[i]);
    for (size_t i = 0; i < c->n_file_apps; i++)
        snap_app_unref(c->file_apps[i]);
    for (size_t i = 0; i < c->n_api_apps; i++)
        snap_app_unref(c->api_apps[i]);
    free(c->file_apps);
    c->file_apps = all; /* the first n_file entries; the array is shared below */
    c->n_file_apps = n_file;
    c->api_apps = NULL;
    c->n_api_apps = n_api;
    c->api_apps = malloc((n_api ? n_api : 1) * sizeof(*c->api_apps));
    if (c->api_apps)
        memcpy(c->api_apps, all + n_file, n_api * sizeof(*c->api_apps));
    else
        c->n_api_apps = 0; /* cannot happen in practice; the refs leak rather than crash */
    return 0;
out:
    free(all);
    return rc;
}

/* Moves the apps of <cfg> into new snap_apps (the config keeps none). Returns the
 * array (owned by the caller: one reference each) or NULL on ENOMEM. */
static struct snap_app **take_file_apps(struct node_config *cfg, size_t *n_out)
{
    struct snap_app **apps = calloc(cfg->n_apps ? cfg->n_apps : 1, sizeof(*apps));
    size_t n = 0;

    if (!apps)
        return NULL;
    for (size_t i = 0; i < cfg->n_apps; i++) {
        apps[n] = snap_app_new(cfg->apps[i]);
        cfg->apps[i] = NULL; /* owned by the snap_app now, or freed by it */
        if (apps[n])
            n++;
    }
    if (n != cfg->n_apps) {
        for (size_t i = 0; i < n; i++)
            snap_app_unref(apps[i]);
        free(apps);
        return NULL;
    }
    cfg->n_apps = 0;
    *n_out = n;
    return apps;
}

static void put_apps(struct snap_app **apps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        snap_app_unref(apps[i]);
    free(apps);
}

/* Applies the apps of a freshly loaded <cfg> with the running API apps. */
static int apply_config(struct control *c, struct node_config *cfg, char *err, size_t errlen)
{
    struct node_config *prev = c->cfg;
    struct snap_app **file;
    size_t n_file = 0;
    int rc;

    file = take_file_apps(cfg, &n_file);
    if (!file) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->cfg = cfg; /* assign_edge() reads the new edge addresses */
    rc = control_apply(c, cfg, file, n_file, c->api_apps, c->n_api_apps, err, errlen);
    if (rc < 0)
        c->cfg = prev;
    put_apps(file, n_file);
    return rc;
}

static void reload(struct control *c)
{
    char err[512];
    struct node_config *cfg, *prev;

    if (!c->config_path) {
        log_info("SIGHUP: no configuration file to re-read");
        return;
    }
    cfg = load_config(c->config_path, err, sizeof(err));
    if (!cfg) {
        log_error("reload failed, keeping the running configuration: %s", err);
        return;
    }
    prev = c->cfg;
    if (apply_config(c, cfg, err, sizeof(err)) < 0) {
        log_error("reload failed, keeping the running configuration: %s", err);
        config_free(cfg);
        return;
    }
    evlog_set_colo(c->evlog, cfg->colo);
    config_free(prev);
    log_info("reloaded %s: %zu apps, %zu listeners", c->config_path,
             dataplane_current(c->dp)->n_apps, dataplane_current(c->dp)->n_bindings);
}

static void drain_events(struct control *c)
{
    struct event_ring *rings[SNAP_MAX_WORKERS];
    int n = dataplane_n_workers(c->dp);

    for (int i = 0; i < n; i++)
        rings[i] = dataplane_ring(c->dp, i);
    evlog_drain(c->evlog, rings, (size_t)n);
}

/* Renders /metrics into <buf>; returns the length or 0 if <len> is too small. */
static size_t control_render_metrics(struct control *c, char *buf, size_t len)
{
    const struct snapshot *s = dataplane_current(c->dp);
    struct metrics_input in = {
        .events_written = evlog_records_written(c->evlog),
        .events_lost = evlog_records_lost(c->evlog),
        .events_dropped = dataplane_events_dropped(c->dp),
        .apps = s ? s->n_apps : 0,
        .listeners = s ? s->n_bindings : 0,
        .n_workers = c->n_workers,
        .version = PRISM_VERSION,
    };

    dataplane_stats(c->dp, &in.workers);
    return metrics_render(&in, buf, len);
}

/* SIGUSR1: the counters of /metrics, one operator log line each, for operators
 * (and tests) without the API at hand. */
static void log_counters(struct control *c)
{
    char buf[8192], *line, *save = NULL;

    if (!control_render_metrics(c, buf, sizeof(buf)))
        return;
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (line[0] != '#')
            log_info("counter %s", line);
}

static void on_evlog_timer(struct loop *loop, struct loop_timer *t)
{
    struct control *c = container_of(t, struct control, evlog_timer);

    drain_events(c);
    /* Flows and connections are freed on the workers' threads, into their own
     * malloc arenas; give whole free pages back now and then so memory returns
     * to its baseline after a burst (10,000 UDP flows created and expired). */
    if (++c->ticks % (5000 / EVLOG_DRAIN_MS) == 0)
        malloc_trim(0);
    loop_timer_arm(loop, t, EVLOG_DRAIN_MS);
}

static void on_signal(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct control *c = container_of(io, struct control, signal_io);
    struct signalfd_siginfo si;

    (void)events;
    while (read(c->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            reload(c);
        } else if (si.ssi_signo == SIGUSR1) {
            drain_events(c);
            log_counters(c);
        } else {
            log_info("%s: draining (up to %u ms)", strsignal((int)si.ssi_signo),
                     c->cfg->drain_ms);
            loop_stop(loop);
        }
    }
}

static int make_data_dir(const char *dir)
{
    if (mkdir(dir, 0750) == -1 && errno != EEXIST)
        return -errno;
    return 0;
}

static int worker_count(const struct node_config *cfg)
{
    long n = cfg->workers;

    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    if (n > SNAP_MAX_WORKERS)
        n = SNAP_MAX_WORKERS;
    return (int)n;
}

static int serve(const char *config_path)
{
    struct control c = {.config_path = config_path, .signal_fd = -1, .exit_code = 0};
    char err[512], path[4200];
    sigset_t mask;
    int e;

    c.cfg = load_config(config_path, err, sizeof(err));
    if (!c.cfg) {
        log_error("%s", err);
        return 2;
    }
    /* Signals are blocked in every thread (workers inherit the mask) and read from
     * the signalfd by the control loop. A write to a closed socket must not kill
     * us: errors come back as EPIPE. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    e = make_data_dir(c.cfg->data_dir);
    if (e < 0) {
        log_error("data_dir %s: %s", c.cfg->data_dir, strerror(-e));
        config_free(c.cfg);
        return 1;
    }
    snprintf(path, sizeof(path), "%s/events.log", c.cfg->data_dir);
    c.evlog = evlog_open(path, err, sizeof(err));
    if (!c.evlog) {
        log_error("event log: %s", err);
        config_free(c.cfg);
        return 1;
    }
    evlog_set_colo(c.evlog, c.cfg->colo);
    c.loop = loop_new();
    c.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (!c.loop || c.signal_fd == -1 ||
        loop_io_add(c.loop, &c.signal_io, c.signal_fd, EPOLLIN, on_signal) < 0) {
        log_error("control loop: %s", strerror(errno));
        c.exit_code = 1;
        goto out;
    }
    c.n_workers = worker_count(c.cfg);
    c.dp = dataplane_start(c.n_workers, err, sizeof(err));
    if (!c.dp) {
        log_error("%s", err);
        c.exit_code = 1;
        goto out;
    }
    if (apply_config(&c, c.cfg, err, sizeof(err)) < 0) {
        log_error("%s", err);
        c.exit_code = 1;
        dataplane_stop(c.dp, 0);
        goto out;
    }
    loop_timer_init(&c.evlog_timer, on_evlog_timer);
    loop_timer_arm(c.loop, &c.evlog_timer, EVLOG_DRAIN_MS);
    log_info("ready: %d workers, %zu apps, %zu listeners, events in %s", c.n_workers,
             dataplane_current(c.dp)->n_apps, dataplane_current(c.dp)->n_bindings, path);

    e = loop_run(c.loop);
    if (e < 0) {
        log_error("control loop failed: %s", strerror(-e));
        c.exit_code = 1;
    }
    dataplane_stop(c.dp, c.cfg->drain_ms);
    drain_events(&c);
    log_info("stopped: %llu events written, %llu lost, %llu dropped",
             (unsigned long long)evlog_records_written(c.evlog),
             (unsigned long long)evlog_records_lost(c.evlog),
             (unsigned long long)dataplane_events_dropped(c.dp));

out:
    put_apps(c.file_apps, c.n_file_apps);
    put_apps(c.api_apps, c.n_api_apps);
    dataplane_free(c.dp);
    evlog_close(c.evlog);
    if (c.signal_fd >= 0)
        close(c.signal_fd);
    loop_free(c.loop);
    config_free(c.cfg);
    return c.exit_code;
}

static int check_config(const char *path)
{
    char err[512];
    struct node_config *cfg = config_load(path, CONFIG_FLAGS, err, sizeof(err));

    if (!cfg) {
        fprintf(stderr, "%s: %s\n", path, err);
        return 2;
    }
    printf("%s: ok, %zu apps\n", path, cfg->n_apps);
    config_free(cfg);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    enum log_level level = LOG_INFO;

    log_set_thread_name("ctl");
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("prism %s\n", PRISM_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "check-config") == 0) {
        if (argc != 3) {
            usage(stderr);
            return 2;
        }
        return check_config(argv[2]);
    }
    if (strcmp(argv[1], "serve") == 0) {
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
                config_path = argv[++i];
            } else if (strcmp(argv[i], "--log-level") == 0 && i + 1 < argc) {
                if (log_parse_level(argv[++i], &level) < 0) {
                    fprintf(stderr, "prism: unknown log level '%s'\n", argv[i]);
                    return 2;
                }
            } else {
                fprintf(stderr, "prism: unknown argument '%s'\n", argv[i]);
                usage(stderr);
                return 2;
            }
        }
        log_set_level(level);
        return serve(config_path);
    }
    fprintf(stderr, "prism: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
