/* src/proxy/config.c: the node configuration file (../shared/DESIGN.md section 2).
 *
 * The file is one JSON object; every key is optional and falls back to the
 * default below (config_default() is the parse of "{}"). Parsing starts from the
 * defaults and overwrites what the file gives, section by section:
 *
 *   colo, data_dir, workers, busy_poll_us, api{listen}, dns{listen}, edge{addresses, pool_v4,
 *   pool_v6}, timeouts{connect_ms, idle_ms, udp_idle_ms, drain_ms, user_timeout_ms},
 *   udp{max_flows_per_worker, rcvbuf_bytes}, geoip{country_db, asn_db}, resolver,
 *   tls{origin_ca_file}, store, apps[]
 *
 * The first problem refuses the whole file with a single line: "FIELD: REASON", or
 * "app 'ID': FIELD: REASON" for an app (apps[N] when its id is missing or bad), or
 * "unknown key 'PATH'", or "line L, column C: ..." for JSON syntax. Duplicate keys
 * are syntax errors (JSON_REJECT_DUPLICATES): a second "apps" must not silently
 * replace the first.
 *
 * Keys for features that are not built yet (GeoIP, etcd) are
 * accepted with their null/default value and refused otherwise, so a file never
 * means more than the node does. Apps are validated by app_from_json() with
 * APP_F_FILE, then checked against each other: unique ids, and no two apps on one
 * transport, edge address and port. */
#include "proxy/config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bug.h"
#include "core/log.h"
#include "net/addr.h"
#include "proxy/edgepool.h"

#define UDP_MAX_FLOWS_MAX (1u << 24) /* per worker; a flow holds a socket, so fds run out first */
#define UDP_RCVBUF_MIN 4096u         /* the kernel's own floor is about this */
#define UDP_RCVBUF_MAX (256u << 20)  /* the kernel doubles it into an int */
#define CONFIG_MAX_FILE_BYTES (16u << 20)

/* State of one config_parse() call. */
struct parse {
    char *err; /* the caller's buffer; may be NULL */
    size_t errlen;
};

static int cfg_fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the one-line reason and returns -EINVAL. */
static int cfg_fail(struct parse *p, const char *fmt, ...)
{
    va_list ap;

    if (p->err && p->errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(p->err, p->errlen, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

/* jansson's object iterators take a non-const object although they only read it. */
static json_t *unconst(const json_t *v)
{
    return (json_t *)(uintptr_t)v;
}

/* Rejects a member of <obj> not in <names>; <prefix> is "" or "timeouts.". */
static int check_keys(struct parse *p, const json_t *obj, const char *prefix,
                      const char *const *names, size_t n)
{
    const char *key;
    json_t *v;

    json_object_foreach(unconst(obj), key, v)
    {
        size_t i;
        char text[64];

        for (i = 0; i < n && strcmp(key, names[i]) != 0; i++)
            continue;
        if (i == n)
            return cfg_fail(p, "unknown key '%s%s'", prefix,
                            log_printable(key, text, sizeof(text)));
    }
    return 0;
}

/* Sets <*out> to the section <key> of <root>, or NULL when absent. */
static int get_section(struct parse *p, const json_t *root, const char *key,
                       const char *const *names, size_t n, const json_t **out)
{
    char prefix[32];

    *out = json_object_get(root, key);
    if (!*out)
        return 0;
    if (!json_is_object(*out))
        return cfg_fail(p, "%s: must be an object", key);
    snprintf(prefix, sizeof(prefix), "%s.", key);
    return check_keys(p, *out, prefix, names, n);
}

/* A string member: absent leaves <*out> alone; <is_nullable> lets JSON null through
 * as NULL. Strings with a NUL inside are refused. */
static int get_string(struct parse *p, const json_t *obj, const char *key, const char *path,
                      bool is_nullable, const char **out)
{
    const json_t *v = json_object_get(obj, key);

    if (!v)
        return 0;
    if (is_nullable && json_is_null(v)) {
        *out = NULL;
        return 0;
    }
    if (!json_is_string(v))
        return cfg_fail(p, "%s: must be a string%s", path, is_nullable ? " or null" : "");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return cfg_fail(p, "%s: must not contain NUL characters", path);
    *out = json_string_value(v);
    return 0;
}

/* Copies a string member into <dst>: non-empty and shorter than <cap>; null (if
 * allowed) gives "". */
static int copy_string(struct parse *p, const json_t *obj, const char *key, const char *path,
                       bool is_nullable, char *dst, size_t cap)
{
    const char *s = NULL;

    if (!json_object_get(obj, key))
        return 0; /* absent: keep the default */
    if (get_string(p, obj, key, path, is_nullable, &s) != 0)
        return -EINVAL;
    if (!s) {
        dst[0] = '\0';
        return 0;
    }
    if (s[0] == '\0' || strlen(s) >= cap)
        return cfg_fail(p, "%s: must be 1 to %zu characters", path, cap - 1);
    snprintf(dst, cap, "%s", s);
    return 0;
}

static int get_int(struct parse *p, const json_t *obj, const char *key, const char *path,
                   long long min, long long max, long long *out)
{
    const json_t *v = json_object_get(obj, key);

    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return cfg_fail(p, "%s: must be an integer from %lld to %lld", path, min, max);
    *out = json_integer_value(v);
    return 0;
}

static int get_u32(struct parse *p, const json_t *obj, const char *key, const char *path,
                   long long min, long long max, uint32_t *out)
{
    long long v = *out;

    if (get_int(p, obj, key, path, min, max, &v) != 0)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

/* "ip:port" into <out>; null allowed when <is_nullable> (ss_family 0). */
static int get_hostport(struct parse *p, const json_t *obj, const char *key, const char *path,
                        bool is_nullable, struct sockaddr_storage *out)
{
    const char *s = "";
    char text[64];

    if (!json_object_get(obj, key))
        return 0;
    if (get_string(p, obj, key, path, is_nullable, &s) != 0)
        return -EINVAL;
    if (!s) {
        memset(out, 0, sizeof(*out));
        return 0;
    }
    if (addr_parse_hostport(s, out) != 0)
        return cfg_fail(p,
                        "%s: \"%s\" is not an address and port: write \"127.0.0.1:8080\" or "
                        "\"[::1]:8080\"",
                        path, log_printable(s, text, sizeof(text)));
    addr_unmap(out);
    return 0;
}

/* A key whose feature is not built yet: null (or absent) is all it takes. */
static int not_built(struct parse *p, const json_t *obj, const char *key, const char *path,
                     const char *what)
{
    const char *s = NULL;

    if (get_string(p, obj, key, path, true, &s) != 0)
        return -EINVAL;
    if (s)
        return cfg_fail(p, "%s: %s not built yet; leave it null", path, what);
    return 0;
}

static void set_defaults(struct node_config *cfg)
{
    int rc = 0;

    snprintf(cfg->colo, sizeof(cfg->colo), "LAB");
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./var");
    cfg->workers = 0;
    /* 500, not 100: on a virtual machine a worker that sleeps through a stall of a
     * few hundred microseconds can take a millisecond or more to run again. In two
     * ping-pong bench runs of 9 rounds each, prism's worst round p99 was 909 and
     * 1,247 us at 100, and 304 and 186 us at 500 (a later full run at 500 still
     * had 2 rounds of 9 over 1 ms, cause not found). The window still shrinks to
     * 0 while events come further apart than this. */
    cfg->busy_poll_us = 500;
    rc |= addr_parse_hostport("127.0.0.1:8080", &cfg->api_listen);
    rc |= addr_parse_hostport("127.0.0.1:5353", &cfg->dns_listen);
    rc |= addr_parse_ip("127.0.0.1", &cfg->edge_addrs[0]);
    rc |= addr_parse_ip("::1", &cfg->edge_addrs[1]);
    BUG_ON(rc != 0);
    cfg->n_edge_addrs = 2;
    cfg->connect_ms = 10000;
    cfg->idle_ms = 0;
    cfg->udp_idle_ms = 30000;
    cfg->drain_ms = 30000;
    cfg->user_timeout_ms = 30000;
    cfg->udp_max_flows = 65536;
    cfg->udp_rcvbuf_bytes = 1u << 20;
    snprintf(cfg->store, sizeof(cfg->store), "sqlite");
}

static int parse_top(struct parse *p, const json_t *root, struct node_config *cfg)
{
    const char *colo = NULL;
    long long workers = cfg->workers;

    if (get_string(p, root, "colo", "colo", false, &colo) != 0)
        return -EINVAL;
    if (colo) {
        size_t n = strlen(colo);
        if (n == 0 || n >= sizeof(cfg->colo) ||
            strspn(colo, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") != n)
            return cfg_fail(p, "colo: must be 1 to %zu characters of A-Z and 0-9, e.g. \"LAB\"",
                            sizeof(cfg->colo) - 1);
        snprintf(cfg->colo, sizeof(cfg->colo), "%s", colo);
    }
    if (copy_string(p, root, "data_dir", "data_dir", false, cfg->data_dir, sizeof(cfg->data_dir)) !=
        0)
        return -EINVAL;
    if (get_int(p, root, "workers", "workers", 0, CONFIG_MAX_WORKERS, &workers) != 0)
        return -EINVAL;
    cfg->workers = (int)workers;
    if (get_u32(p, root, "busy_poll_us", "busy_poll_us", 0, CONFIG_MAX_BUSY_POLL_US,
                &cfg->busy_poll_us) != 0)
        return -EINVAL;
    return 0;
}

static int parse_listeners(struct parse *p, const json_t *root, struct node_config *cfg)
{
    static const char *const keys[] = {"listen"};
    const json_t *api, *dns;

    if (get_section(p, root, "api", keys, ARRAY_SIZE(keys), &api) != 0 ||
        get_section(p, root, "dns", keys, ARRAY_SIZE(keys), &dns) != 0)
        return -EINVAL;
    if (api && get_hostport(p, api, "listen", "api.listen", false, &cfg->api_listen) != 0)
        return -EINVAL;
    if (dns && get_hostport(p, dns, "listen", "dns.listen", false, &cfg->dns_listen) != 0)
        return -EINVAL;
    return 0;
}

/* True when binding both would collide: the same address, or a wildcard and any
 * address of its family. */
static bool addrs_overlap(const struct sockaddr_storage *x, const struct sockaddr_storage *y)
{
    if (x->ss_family != y->ss_family)
        return false;
    return addr_is_any(x) || addr_is_any(y) || addr_ip_equal(x, y);
}

static int parse_edge_addresses(struct parse *p, const json_t *list, struct node_config *cfg)
{
    size_t n;

    if (!json_is_array(list))
        return cfg_fail(p, "edge.addresses: must be an array of IP addresses");
    n = json_array_size(list);
    if (n == 0 || n > CONFIG_MAX_EDGE_ADDRS)
        return cfg_fail(p, "edge.addresses: must hold 1 to %d addresses", CONFIG_MAX_EDGE_ADDRS);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(list, i);
        struct sockaddr_storage *a = &cfg->edge_addrs[i];
        char text[64];

        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
            return cfg_fail(p, "edge.addresses[%zu]: must be a string", i);
        if (addr_parse_ip(json_string_value(v), a) != 0)
            return cfg_fail(p, "edge.addresses[%zu]: \"%s\" is not an IP address", i,
                            log_printable(json_string_value(v), text, sizeof(text)));
        addr_unmap(a);
        for (size_t j = 0; j < i; j++) {
            if (addrs_overlap(&cfg->edge_addrs[j], a))
                return cfg_fail(p,
                                "edge.addresses[%zu]: overlaps edge.addresses[%zu] (the same "
                                "address, or a wildcard)",
                                i, j);
        }
    }
    cfg->n_edge_addrs = n;
    return 0;
}

/* edge.pool_v4 / edge.pool_v6: null, or a prefix of <family> (proxy/edgepool.h). */
static int parse_pool(struct parse *p, const json_t *edge, const char *key, int family, char *out,
                      size_t outlen)
{
    struct edgepool_cidr cidr;
    char path[16], why[160], text[64];
    const char *s = NULL;

    snprintf(path, sizeof(path), "edge.%s", key);
    if (get_string(p, edge, key, path, true, &s) != 0)
        return -EINVAL;
    if (!s)
        return 0;
    if (strlen(s) >= outlen)
        return cfg_fail(p, "%s: is too long for a prefix", path);
    if (edgepool_parse_cidr(s, family, &cidr, why, sizeof(why)) != 0)
        return cfg_fail(p, "%s: \"%s\" %s", path, log_printable(s, text, sizeof(text)), why);
    snprintf(out, outlen, "%s", s);
    return 0;
}

static int parse_edge(struct parse *p, const json_t *root, struct node_config *cfg)
{
    static const char *const keys[] = {"addresses", "pool_v4", "pool_v6"};
    const json_t *edge, *list;

    if (get_section(p, root, "edge", keys, ARRAY_SIZE(keys), &edge) != 0)
        return -EINVAL;
    if (!edge)
        return 0;
    list = json_object_get(edge, "addresses");
    if (list && parse_edge_addresses(p, list, cfg) != 0)
        return -EINVAL;
    if (parse_pool(p, edge, "pool_v4", AF_INET, cfg->pool_v4, sizeof(cfg->pool_v4)) != 0 ||
        parse_pool(p, edge, "pool_v6", AF_INET6, cfg->pool_v6, sizeof(cfg->pool_v6)) != 0)
        return -EINVAL;
    return 0;
}

/* The timeouts, in milliseconds, in the order of struct node_config. Connect and UDP
 * idle time cannot be 0 (a UDP flow would end at once); for the others 0 means
 * "none" or "at once". */
static const struct {
    const char *key;
    uint32_t min_ms;
} timeouts[] = {
    {"connect_ms", 1}, {"idle_ms", 0}, {"udp_idle_ms", 1}, {"drain_ms", 0}, {"user_timeout_ms", 0},
};

static int parse_timeouts(struct parse *p, const json_t *root, struct node_config *cfg)
{
    static const char *const udp_keys[] = {"max_flows_per_worker", "rcvbuf_bytes"};
    uint32_t *const dst[ARRAY_SIZE(timeouts)] = {&cfg->connect_ms, &cfg->idle_ms, &cfg->udp_idle_ms,
                                                 &cfg->drain_ms, &cfg->user_timeout_ms};
    const char *keys[ARRAY_SIZE(timeouts)];
    const json_t *t, *udp;

    for (size_t i = 0; i < ARRAY_SIZE(timeouts); i++)
        keys[i] = timeouts[i].key;
    if (get_section(p, root, "timeouts", keys, ARRAY_SIZE(keys), &t) != 0)
        return -EINVAL;
    for (size_t i = 0; t && i < ARRAY_SIZE(timeouts); i++) {
        char path[48];

        snprintf(path, sizeof(path), "timeouts.%s", timeouts[i].key);
        if (get_u32(p, t, timeouts[i].key, path, timeouts[i].min_ms, CONFIG_MAX_TIMEOUT_MS,
                    dst[i]) != 0)
            return -EINVAL;
    }

    if (get_section(p, root, "udp", udp_keys, ARRAY_SIZE(udp_keys), &udp) != 0)
        return -EINVAL;
    if (udp && get_u32(p, udp, "max_flows_per_worker", "udp.max_flows_per_worker", 1,
                       UDP_MAX_FLOWS_MAX, &cfg->udp_max_flows) != 0)
        return -EINVAL;
    if (udp && get_u32(p, udp, "rcvbuf_bytes", "udp.rcvbuf_bytes", UDP_RCVBUF_MIN, UDP_RCVBUF_MAX,
                       &cfg->udp_rcvbuf_bytes) != 0)
        return -EINVAL;
    return 0;
}

static int parse_others(struct parse *p, const json_t *root, struct node_config *cfg)
{
    static const char *const geo_keys[] = {"country_db", "asn_db"};
    static const char *const tls_keys[] = {"origin_ca_file"};
    const json_t *geo, *tls;
    const char *store = NULL;
    char text[64];

    if (get_section(p, root, "geoip", geo_keys, ARRAY_SIZE(geo_keys), &geo) != 0)
        return -EINVAL;
    if (geo && (not_built(p, geo, "country_db", "geoip.country_db", "GeoIP lookups are") != 0 ||
                not_built(p, geo, "asn_db", "geoip.asn_db", "GeoIP lookups are") != 0))
        return -EINVAL;
    if (get_hostport(p, root, "resolver", "resolver", true, &cfg->resolver) != 0)
        return -EINVAL;
    if (get_section(p, root, "tls", tls_keys, ARRAY_SIZE(tls_keys), &tls) != 0)
        return -EINVAL;
    if (tls && copy_string(p, tls, "origin_ca_file", "tls.origin_ca_file", true,
                           cfg->origin_ca_file, sizeof(cfg->origin_ca_file)) != 0)
        return -EINVAL;
    if (get_string(p, root, "store", "store", false, &store) != 0)
        return -EINVAL;
    if (store && strncmp(store, "etcd://", 7) == 0)
        return cfg_fail(p, "store: etcd is not built yet; use \"sqlite\"");
    if (store && strcmp(store, "sqlite") != 0)
        return cfg_fail(p, "store: \"%s\" is not a store: use \"sqlite\" or \"etcd://HOST:PORT\"",
                        log_printable(store, text, sizeof(text)));
    return 0;
}

/* The app's id when it is usable in a message, else NULL. */
static const char *usable_id(const json_t *obj)
{
    const char *s = json_string_value(json_object_get(obj, "id"));
    size_t n;

    if (!s)
        return NULL;
    n = strlen(s);
    if (n == 0 || n > APP_ID_MAX ||
        strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
        return NULL;
    return s;
}

static int app_fail(struct parse *p, const json_t *obj, size_t i, const struct app_error *e)
{
    const char *id = usable_id(obj);
    char who[APP_ID_MAX + 16];

    if (id)
        snprintf(who, sizeof(who), "app '%s'", id);
    else
        snprintf(who, sizeof(who), "apps[%zu]", i);
    if (e->field[0] == '\0' || strcmp(e->field, "app") == 0)
        return cfg_fail(p, "%s: %s", who, e->message);
    return cfg_fail(p, "%s: %s: %s", who, e->field, e->message);
}

/* Checks what app_from_json() cannot see alone: a unique id, and an edge address. */
static int check_app(struct parse *p, const struct node_config *cfg, const struct app *a)
{
    struct sockaddr_storage addrs[CONFIG_MAX_EDGE_ADDRS];

    for (size_t k = 0; k + 1 < cfg->n_apps; k++) {
        if (strcmp(cfg->apps[k]->id, a->id) == 0)
            return cfg_fail(p, "app '%s': id: apps[%zu] has the same id", a->id, k);
    }
    if (a->edge_type == APP_EDGE_DYNAMIC && (cfg->pool_v4[0] || cfg->pool_v6[0]))
        return 0; /* its addresses come from the pools, decided when applied */
    if (app_edge_addrs(a, cfg->edge_addrs, cfg->n_edge_addrs, addrs, ARRAY_SIZE(addrs)) == 0)
        return cfg_fail(p,
                        "app '%s': edge_ips.connectivity: none of edge.addresses is %s, so the "
                        "app would listen nowhere",
                        a->id, a->connectivity == APP_CONN_IPV4 ? "IPv4" : "IPv6");
    return 0;
}

/* Reports the first conflict, naming the app that brings it: the shortest prefix of
 * the list that conflicts ends with that app (conflicts only grow with the list). */
static int check_conflicts(struct parse *p, const struct node_config *cfg)
{
    struct app_error e = {0};
    size_t lo = 2, hi = cfg->n_apps;

    /* With pools, dynamic apps' addresses are known only when applied (one per DNS
     * name); snapshot_build() refuses the overlaps that remain. */
    if (cfg->pool_v4[0] || cfg->pool_v6[0])
        return 0;
    if (app_check_conflicts(cfg->apps, cfg->n_apps, cfg->edge_addrs, cfg->n_edge_addrs, &e) == 0)
        return 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (app_check_conflicts(cfg->apps, mid, cfg->edge_addrs, cfg->n_edge_addrs, NULL) != 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    app_check_conflicts(cfg->apps, lo, cfg->edge_addrs, cfg->n_edge_addrs, &e);
    return cfg_fail(p, "app '%s': %s: %s", cfg->apps[lo - 1]->id, e.field, e.message);
}

static int parse_apps(struct parse *p, const json_t *root, unsigned flags, struct node_config *cfg)
{
    const json_t *list = json_object_get(root, "apps");
    size_t n;

    if (!list)
        return 0;
    if (!json_is_array(list))
        return cfg_fail(p, "apps: must be an array of app objects");
    n = json_array_size(list);
    if (n > CONFIG_MAX_APPS)
        return cfg_fail(p, "apps: at most %d apps", CONFIG_MAX_APPS);
    cfg->apps = calloc(n ? n : 1, sizeof(*cfg->apps));
    if (!cfg->apps)
        return cfg_fail(p, "apps: out of memory");
    for (size_t i = 0; i < n; i++) {
        const json_t *obj = json_array_get(list, i);
        struct app_error e = {0};
        struct app *a;

        if (!json_is_object(obj))
            return cfg_fail(p, "apps[%zu]: must be an object", i);
        a = app_from_json(obj, flags | APP_F_FILE, &e);
        if (!a)
            return app_fail(p, obj, i, &e);
        a->is_file_managed = true;
        cfg->apps[cfg->n_apps++] = a;
        if (check_app(p, cfg, a) != 0)
            return -EINVAL;
    }
    return check_conflicts(p, cfg);
}

struct node_config *config_parse(const char *text, size_t len, unsigned flags, char *err,
                                 size_t errlen)
{
    static const char *const keys[] = {"colo",     "data_dir", "workers",  "busy_poll_us", "api",
                                       "dns",      "edge",     "timeouts", "udp",          "geoip",
                                       "resolver", "tls",      "store",    "apps"};
    struct parse p = {.err = err, .errlen = errlen};
    struct node_config *cfg = NULL;
    json_error_t jerr;
    json_t *root;
    char why[sizeof(jerr.text)];

    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        /* jansson's reason quotes the input near the error, control characters and all */
        cfg_fail(&p, "line %d, column %d: %s", jerr.line, jerr.column,
                 log_printable(jerr.text, why, sizeof(why)));
        return NULL;
    }
    if (!json_is_object(root)) {
        cfg_fail(&p, "the configuration must be a JSON object");
        goto fail;
    }
    cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        cfg_fail(&p, "out of memory");
        goto fail;
    }
    set_defaults(cfg);
    if (check_keys(&p, root, "", keys, ARRAY_SIZE(keys)) != 0 || parse_top(&p, root, cfg) != 0 ||
        parse_listeners(&p, root, cfg) != 0 || parse_edge(&p, root, cfg) != 0 ||
        parse_timeouts(&p, root, cfg) != 0 || parse_others(&p, root, cfg) != 0 ||
        parse_apps(&p, root, flags, cfg) != 0)
        goto fail;
    json_decref(root);
    return cfg;

fail:
    config_free(cfg);
    json_decref(root);
    return NULL;
}

struct node_config *config_load(const char *path, unsigned flags, char *err, size_t errlen)
{
    struct node_config *cfg;
    size_t len = 0, cap = 4096;
    char *buf = NULL;
    FILE *f;
    int e;

    f = fopen(path, "rb");
    if (!f) {
        e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return NULL;
    }
    for (;;) {
        char *grown;
        size_t got;

        if (!buf || len == cap) {
            if (buf)
                cap *= 2;
            if (cap > CONFIG_MAX_FILE_BYTES) {
                snprintf(err, errlen, "%s: larger than %u MiB", path, CONFIG_MAX_FILE_BYTES >> 20);
                goto fail;
            }
            grown = realloc(buf, cap);
            if (!grown) {
                snprintf(err, errlen, "%s: out of memory", path);
                goto fail;
            }
            buf = grown;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        goto fail;
    }
    fclose(f);
    cfg = config_parse(buf, len, flags, err, errlen);
    free(buf);
    return cfg;

fail:
    fclose(f);
    free(buf);
    return NULL;
}

struct node_config *config_default(void)
{
    struct node_config *cfg = calloc(1, sizeof(*cfg));

    /* Called at start-up only; a node that cannot get 30 KiB cannot run at all. */
    BUG_ON(!cfg);
    set_defaults(cfg);
    return cfg;
}

void config_free(struct node_config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_apps; i++)
        app_free(cfg->apps[i]);
    free(cfg->apps);
    free(cfg);
}
