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
#include "api/api.h"
#include "core/bug.h"
#include "core/log.h"
#include "core/loop.h"
#include "dns/responder.h"
#include "net/addr.h"
#include "proxy/config.h"
#include "proxy/dataplane.h"
#include "proxy/edgepool.h"
#include "proxy/edges.h"
#include "store/store.h"

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
    struct loop_io notify_io; /* a worker's event ring is half full */
    int signal_fd;
    struct loop_timer evlog_timer;
    struct snap_app **file_apps; /* counted: apps from the node configuration file */
    size_t n_file_apps;
    struct snap_app **api_apps; /* counted: apps created through the API */
    size_t n_api_apps;
    int n_workers;
    struct edgepool *pool; /* owned: pool addresses of the running apps; NULL without pools */
    struct responder *dns; /* owned: answers for app names on dns.listen */
    uint64_t ticks;        /* evlog timer runs */
    struct store *store;   /* owned: <data_dir>/prism.db */
    struct api *api;       /* owned: the REST API on api.listen */
    char token_from[4200]; /* where the bootstrap API token is: a path or PRISM_API_TOKEN */
    int exit_code;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: prism serve [--config FILE] [--log-level error|warn|info|debug]\n"
                 "       prism check-config FILE\n"
                 "       prism token create --name NAME --permissions LIST [--zones LIST]"
                 " [--config FILE]\n"
                 "       prism --help | --version\n"
                 "\n"
                 "serve         run the proxy; without --config, on the embedded defaults\n"
                 "check-config  validate a node configuration file; exit 0 if valid, 2 if not\n"
                 "token create  print a new API token (permissions: zone_read, zone_write,\n"
                 "              zone_settings_write, analytics_read, load_balancing_write,\n"
                 "              firewall_write, logs_write, or all; zones: ids or names);\n"
                 "              safe while serve runs on the same data_dir\n"
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
    p->udp_rcvbuf_bytes = cfg->udp_rcvbuf_bytes;
    p->busy_poll_us = cfg->busy_poll_us;
}

/* --- DNS responder --- */

/* The running app <i> of file apps then API apps. */
static const struct snap_app *running_app(const struct control *c, size_t i)
{
    return i < c->n_file_apps ? c->file_apps[i] : c->api_apps[i - c->n_file_apps];
}

/* Where <name> stands: inside (or at the apex of) a zone of the API, or of a zone
 * implied by a running app for apps outside every API zone (file apps may come
 * without one): an app name's parent domain when it has three labels or more
 * (ssh.example.com -> example.com), else the name itself. <*apex> is the closest
 * enclosing zone, whose SOA goes with negative answers. */
static enum responder_zone dns_zone(void *ctx, const char *name, const char **apex)
{
    struct control *c = ctx;
    size_t n_zones = c->api ? api_zone_count(c->api) : 0, n = c->n_file_apps + c->n_api_apps;
    const char *best = NULL; /* the closest enclosing zone: the longest name */
    bool is_apex = false;

    for (size_t i = 0; i < n_zones + n && !is_apex; i++) {
        const char *zone;

        if (i < n_zones) {
            zone = api_zone_name(c->api, i);
        } else {
            const char *dot;

            zone = running_app(c, i - n_zones)->app->dns_name;
            dot = strchr(zone, '.');
            if (dot && strchr(dot + 1, '.'))
                zone = dot + 1;
        }
        if (zone[0] != '\0' && responder_name_in_zone(name, zone, &is_apex) &&
            (!best || strlen(zone) > strlen(best)))
            best = zone;
    }
    *apex = best;
    if (!best)
        return RESPONDER_OUTSIDE;
    return is_apex ? RESPONDER_APEX : RESPONDER_INSIDE;
}

/* Hands the responder the names and edge addresses of the running apps. */
static void dns_update(struct control *c)
{
    size_t n = c->n_file_apps + c->n_api_apps, k = 0;
    struct responder_name *names;

    if (!c->dns)
        return;
    names = calloc(n ? n : 1, sizeof(*names));
    for (size_t i = 0; names && i < n; i++) {
        const struct snap_app *sa = running_app(c, i);

        if (sa->app->dns_name[0] != '\0')
            names[k++] = (struct responder_name){sa->app->dns_name, sa->edge, sa->n_edge};
    }
    if (!names || responder_set_names(c->dns, names, k) != 0)
        log_warn("dns: out of memory; answering from the previous app names");
    free(names);
}

/* Opens the responder on dns.listen. A later change of dns.listen needs a restart. */
static int dns_start(struct control *c, char *err, size_t errlen)
{
    c->dns = responder_new(dns_zone, c);
    if (!c->dns) {
        snprintf(err, errlen, "dns: out of memory");
        return -ENOMEM;
    }
    return responder_listen(c->dns, c->loop, &c->cfg->dns_listen, err, errlen);
}

/* --- the edge pool map in the store --- */

struct saved_pairs {
    struct edgepool_pair *v;
    char **names; /* owned: v[i].name */
    size_t n, cap;
};

static int collect_pair(void *ctx, const struct store_edge_addr *a)
{
    struct saved_pairs *sp = ctx;
    struct sockaddr_storage addr;

    if (addr_parse_ip(a->addr, &addr) != 0)
        return 0; /* not ours to fix: edgepool_next() places the name anew */
    if (sp->n == sp->cap) {
        size_t cap = sp->cap ? 2 * sp->cap : 64;
        struct edgepool_pair *v = realloc(sp->v, cap * sizeof(*v));
        char **names;

        if (!v)
            return -ENOMEM;
        sp->v = v;
        names = realloc(sp->names, cap * sizeof(*names));
        if (!names)
            return -ENOMEM;
        sp->names = names;
        sp->cap = cap;
    }
    sp->names[sp->n] = strdup(a->name);
    if (!sp->names[sp->n])
        return -ENOMEM;
    sp->v[sp->n].name = sp->names[sp->n];
    sp->v[sp->n++].addr = addr;
    return 0;
}

/* Starts c->pool from the map the store kept, so that every DNS name keeps its
 * addresses across a restart. A store without a map, or a node without pools,
 * leaves it NULL: names are then placed by hash. */
static void load_pool(struct control *c)
{
    struct saved_pairs sp = {0};
    int rc = store_edge_addr_each(c->store, collect_pair, &sp);

    if (rc < 0)
        log_warn("edge pools: reading the saved addresses failed (%s); names are placed anew",
                 strerror(-rc));
    else
        c->pool = edges_restore(c->cfg, sp.v, sp.n);
    for (size_t i = 0; i < sp.n; i++)
        free(sp.names[i]);
    free(sp.names);
    free(sp.v);
}

struct pool_rows {
    struct store_edge_addr *v;
    char (*text)[ADDR_STRLEN];
    size_t n;
};

static int put_row(void *ctx, const char *name, const struct sockaddr_storage *addr)
{
    struct pool_rows *r = ctx;

    if (addr_format_ip(addr, r->text[r->n], sizeof(r->text[r->n])) < 0)
        return -EINVAL;
    r->v[r->n] = (struct store_edge_addr){name, r->text[r->n]};
    r->n++;
    return 0;
}

/* Saves c->pool (none: an empty map) for the next start. A failure is logged: the
 * running node is right, only a restart could move names that collided. */
static void save_pool(struct control *c)
{
    struct pool_rows r = {0};
    size_t n = 2 * edgepool_size(c->pool); /* at most one address per family and name */
    int rc = -ENOMEM;

    if (!c->store)
        return;
    r.v = calloc(n ? n : 1, sizeof(*r.v));
    r.text = calloc(n ? n : 1, sizeof(*r.text));
    if (r.v && r.text && (rc = edgepool_each(c->pool, put_row, &r)) == 0)
        rc = store_edge_addrs_replace(c->store, r.v, r.n);
    if (rc < 0)
        log_warn("edge pools: saving the addresses failed (%s); a restart may move names"
                 " whose addresses collided",
                 rc == -EIO ? store_errmsg(c->store) : strerror(-rc));
    free(r.v);
    free(r.text);
}

static void put_apps(struct snap_app **apps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        snap_app_unref(apps[i]);
    free(apps);
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
    struct snap_app **api_copy = calloc(n_api ? n_api : 1, sizeof(*api_copy));
    struct snap_params params;
    struct edgepool *pool = NULL;
    int rc;

    if (!all || !api_copy) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto out;
    }
    memcpy(all, file, n_file * sizeof(*all));
    memcpy(all + n_file, api, n_api * sizeof(*all));
    memcpy(api_copy, api, n_api * sizeof(*api_copy));
    rc = edges_assign(c->pool, cfg, all, n, &pool, err, errlen);
    if (rc < 0)
        goto out;
    params_from_config(cfg, &params);
    rc = dataplane_apply(c->dp, all, n, &params, err, errlen);
    if (rc < 0)
        goto out;
    /* Nothing can fail from here on: the data plane already runs the new set. */
    if (pool || c->pool) {
        edgepool_free(c->pool);
        c->pool = pool;
        pool = NULL;
        save_pool(c);
    }
    for (size_t i = 0; i < n; i++)
        snap_app_ref(all[i]);
    put_apps(c->file_apps, c->n_file_apps);
    put_apps(c->api_apps, c->n_api_apps);
    c->file_apps = all; /* only the first n_file entries count as file apps */
    c->n_file_apps = n_file;
    c->api_apps = api_copy;
    c->n_api_apps = n_api;
    dns_update(c);
    return 0;
out:
    edgepool_free(pool);
    free(all);
    free(api_copy);
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
    c->cfg = cfg; /* the new edge addresses and pools */
    rc = control_apply(c, cfg, file, n_file, c->api_apps, c->n_api_apps, err, errlen);
    if (rc < 0)
        c->cfg = prev;
    put_apps(file, n_file);
    return rc;
}

/* Keys that are read once at start: a reload that changes them says so. */
static void warn_restart_keys(const struct node_config *prev, const struct node_config *cfg)
{
    if (!addr_equal(&prev->api_listen, &cfg->api_listen))
        log_warn("reload: api.listen changed; it takes effect at the next start");
    if (!addr_equal(&prev->dns_listen, &cfg->dns_listen))
        log_warn("reload: dns.listen changed; it takes effect at the next start");
    if (strcmp(prev->data_dir, cfg->data_dir) != 0)
        log_warn("reload: data_dir changed; it takes effect at the next start");
    if (prev->workers != cfg->workers)
        log_warn("reload: workers changed; it takes effect at the next start");
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
    warn_restart_keys(prev, cfg);
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

static void on_ring_notify(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct control *c = container_of(io, struct control, notify_io);
    uint64_t v;

    (void)loop;
    (void)events;
    (void)!read(io->fd, &v, sizeof(v));
    drain_events(c);
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
            log_info("%s: draining (up to %u ms)", strsignal((int)si.ssi_signo), c->cfg->drain_ms);
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

/* --- API --- */

static int api_apply_hook(void *ctx, struct snap_app *const *apps, size_t n, char *err,
                          size_t errlen)
{
    struct control *c = ctx;

    return control_apply(c, c->cfg, c->file_apps, c->n_file_apps, apps, n, err, errlen);
}

static struct snap_app *const *api_file_apps_hook(void *ctx, size_t *n)
{
    struct control *c = ctx;

    *n = c->n_file_apps;
    return c->file_apps;
}

static size_t api_metrics_hook(void *ctx, char *buf, size_t len)
{
    return control_render_metrics(ctx, buf, len);
}

/* Opens the store, loads the API's zones and apps (they become c->api_apps, so
 * the first apply runs them with the file apps), and makes sure the bootstrap
 * token exists. */
static int api_setup(struct control *c, char *err, size_t errlen)
{
    struct api_hooks hooks = {api_apply_hook, api_file_apps_hook, api_metrics_hook, c};
    char path[4200];
    struct snap_app *const *apps;
    size_t n;

    snprintf(path, sizeof(path), "%s/prism.db", c->cfg->data_dir);
    c->store = store_open(path, err, errlen);
    if (!c->store)
        return -EIO;
    c->api = api_new(c->store, &hooks, CONFIG_FLAGS, err, errlen);
    if (!c->api)
        return -EIO;
    if (api_bootstrap_token(c->api, getenv("PRISM_API_TOKEN"), c->cfg->data_dir, c->token_from,
                            sizeof(c->token_from), err, errlen) < 0)
        return -EIO;
    load_pool(c);
    apps = api_apps(c->api, &n);
    c->api_apps = calloc(n ? n : 1, sizeof(*c->api_apps));
    if (!c->api_apps) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        snap_app_ref(apps[i]);
        c->api_apps[i] = apps[i];
    }
    c->n_api_apps = n;
    return 0;
}

/* Serves the API on api.listen (after the first apply: /healthz answers 200 only
 * once every listener is bound). A later change of api.listen needs a restart. */
static int api_serve(struct control *c, char *err, size_t errlen)
{
    return api_listen(c->api, c->loop, &c->cfg->api_listen, err, errlen);
}

/* prism token create --name NAME --permissions LIST [--zones LIST] [--config FILE] */
static int token_command(int argc, char **argv)
{
    const char *name = NULL, *perms = NULL, *zones = NULL, *config_path = NULL;
    char err[512], path[4200], token[128];
    struct node_config *cfg;
    int rc;

    if (argc < 3 || strcmp(argv[2], "create") != 0) {
        usage(stderr);
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        const char **dst = strcmp(argv[i], "--name") == 0          ? &name
                           : strcmp(argv[i], "--permissions") == 0 ? &perms
                           : strcmp(argv[i], "--zones") == 0       ? &zones
                           : strcmp(argv[i], "--config") == 0      ? &config_path
                                                                   : NULL;
        if (!dst || i + 1 >= argc) {
            fprintf(stderr, "prism: token create: bad argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        *dst = argv[++i];
    }
    if (!name || !perms) {
        fprintf(stderr, "prism: token create needs --name and --permissions\n");
        return 2;
    }
    cfg = load_config(config_path, err, sizeof(err));
    if (!cfg) {
        fprintf(stderr, "prism: %s\n", err);
        return 2;
    }
    rc = make_data_dir(cfg->data_dir);
    snprintf(path, sizeof(path), "%s/prism.db", cfg->data_dir);
    config_free(cfg);
    if (rc < 0) {
        fprintf(stderr, "prism: data_dir: %s\n", strerror(-rc));
        return 1;
    }
    rc = api_token_create(path, name, perms, zones, token, sizeof(token), err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "prism: token create: %s\n", err);
        return rc == -EINVAL ? 2 : 1;
    }
    printf("%s\n", token);
    return 0;
}

static int serve(const char *config_path)
{
    struct control c = {.config_path = config_path, .signal_fd = -1, .exit_code = 0};
    char err[512], path[4200], where[ADDR_STRLEN], dns_where[ADDR_STRLEN];
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
    if (loop_io_add(c.loop, &c.notify_io, dataplane_notify_fd(c.dp), EPOLLIN, on_ring_notify) < 0) {
        log_error("control loop: %s", strerror(errno));
        c.exit_code = 1;
        dataplane_stop(c.dp, 0);
        goto out;
    }
    if (dns_start(&c, err, sizeof(err)) < 0) {
        log_error("%s", err);
        c.exit_code = 1;
        dataplane_stop(c.dp, 0);
        goto out;
    }
    if (api_setup(&c, err, sizeof(err)) < 0 || apply_config(&c, c.cfg, err, sizeof(err)) < 0 ||
        api_serve(&c, err, sizeof(err)) < 0) {
        log_error("%s", err);
        c.exit_code = 1;
        dataplane_stop(c.dp, 0);
        goto out;
    }
    loop_timer_init(&c.evlog_timer, on_evlog_timer);
    loop_timer_arm(c.loop, &c.evlog_timer, EVLOG_DRAIN_MS);
    addr_format(&c.cfg->api_listen, where, sizeof(where));
    addr_format(&c.cfg->dns_listen, dns_where, sizeof(dns_where));
    log_info("ready: %d workers, %zu apps, %zu listeners, events in %s, API on"
             " http://%s/client/v4 (token from %s), DNS on %s (UDP and TCP)",
             c.n_workers, dataplane_current(c.dp)->n_apps, dataplane_current(c.dp)->n_bindings,
             path, where, c.token_from, dns_where);

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
    api_free(c.api);
    store_close(c.store);
    put_apps(c.file_apps, c.n_file_apps);
    put_apps(c.api_apps, c.n_api_apps);
    responder_free(c.dns);
    edgepool_free(c.pool);
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
    if (strcmp(argv[1], "token") == 0)
        return token_command(argc, argv);
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
