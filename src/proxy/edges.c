/* src/proxy/edges.c: where each app listens (DESIGN.md section 3).
 *
 * A static app listens on its edge_ips, which must be addresses of this node. A
 * dynamic app listens on the node's shared edge addresses filtered by its
 * connectivity, or, when edge.pool_v4/pool_v6 are set, on the addresses its DNS name
 * gets from the pools (edgepool.c), which are never the shared or static ones. */
#include "proxy/edges.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/addr.h"

/* Checks that every static edge_ips address of <app> is an address of this node. */
static int check_static_ips(const struct app *app, char *err, size_t errlen)
{
    for (size_t i = 0; i < app->n_edge_ips; i++) {
        int rc = edgepool_check_bindable(&app->edge_ips[i]);
        char text[ADDR_STRLEN];

        if (rc == 0)
            continue;
        if (addr_format_ip(&app->edge_ips[i], text, sizeof(text)) < 0)
            snprintf(text, sizeof(text), "?");
        snprintf(err, errlen,
                 "app '%s': edge_ips.ips[%zu]: %s cannot be bound on this node (%s); static "
                 "edge addresses must be local addresses",
                 app->id, i, text, strerror(-rc));
        return rc;
    }
    return 0;
}

/* Parses the pools of <cfg> into <v4> and <v6>; <*p4> and <*p6> point at them, or
 * are NULL for a pool not configured. Returns 0, or -EINVAL (config_parse()
 * checked them, so only a caller's own config can fail here). */
static int config_pools(const struct node_config *cfg, struct edgepool_cidr *v4,
                        struct edgepool_cidr *v6, const struct edgepool_cidr **p4,
                        const struct edgepool_cidr **p6, char *err, size_t errlen)
{
    char why[160];

    *p4 = *p6 = NULL;
    if (cfg->pool_v4[0] != '\0') {
        if (edgepool_parse_cidr(cfg->pool_v4, AF_INET, v4, why, sizeof(why)) != 0)
            goto fail;
        *p4 = v4;
    }
    if (cfg->pool_v6[0] != '\0') {
        if (edgepool_parse_cidr(cfg->pool_v6, AF_INET6, v6, why, sizeof(why)) != 0)
            goto fail;
        *p6 = v6;
    }
    return 0;
fail:
    snprintf(err, errlen, "edge pool: %s", why);
    return -EINVAL;
}

/* Plans pool addresses for the dynamic apps of <all> into <*next>: NULL when <cfg>
 * has no pool. With pools, a dynamic app takes only pool addresses: connectivity
 * "all" one of each configured pool, "ipv4"/"ipv6" that family's pool, which must
 * exist. Static ips and the shared addresses are never handed out. */
static int plan_pools(const struct edgepool *prev, const struct node_config *cfg,
                      struct snap_app *const *all, size_t n, struct edgepool **next, char *err,
                      size_t errlen)
{
    struct edgepool_cidr v4, v6;
    const struct edgepool_cidr *p4, *p6;
    struct edgepool_req *reqs = NULL;
    struct sockaddr_storage *reserved = NULL;
    size_t n_reqs = 0, n_reserved = 0;
    bool has_v4, has_v6;
    int rc = config_pools(cfg, &v4, &v6, &p4, &p6, err, errlen);

    *next = NULL;
    if (rc < 0 || (!p4 && !p6))
        return rc;
    has_v4 = p4 != NULL;
    has_v6 = p6 != NULL;
    rc = -ENOMEM;
    reqs = calloc(n ? n : 1, sizeof(*reqs));
    reserved = calloc(n * APP_MAX_EDGE_IPS + cfg->n_edge_addrs, sizeof(*reserved));
    if (!reqs || !reserved) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    memcpy(reserved, cfg->edge_addrs, cfg->n_edge_addrs * sizeof(*reserved));
    n_reserved = cfg->n_edge_addrs;
    for (size_t i = 0; i < n; i++) {
        const struct app *a = all[i]->app;
        struct edgepool_req *r = &reqs[n_reqs];

        if (a->edge_type == APP_EDGE_STATIC) {
            memcpy(reserved + n_reserved, a->edge_ips, a->n_edge_ips * sizeof(*reserved));
            n_reserved += a->n_edge_ips;
            continue;
        }
        r->name = a->dns_name;
        r->wants_v4 = has_v4 && a->connectivity != APP_CONN_IPV6;
        r->wants_v6 = has_v6 && a->connectivity != APP_CONN_IPV4;
        if (!r->wants_v4 && !r->wants_v6) {
            snprintf(err, errlen,
                     "app '%s': edge_ips.connectivity: %s addresses come from edge.pool_v%c, "
                     "which is not configured",
                     a->id, has_v4 ? "IPv6" : "IPv4", has_v4 ? '6' : '4');
            rc = -EINVAL;
            goto out;
        }
        n_reqs++;
    }
    *next = edgepool_next(prev, p4, p6, reqs, n_reqs, reserved, n_reserved, err, errlen);
    rc = *next ? 0 : -errno;
out:
    free(reqs);
    free(reserved);
    return rc;
}

/* Sets where <sa> listens: its static edge_ips (which must be local), its name's
 * addresses from <pool>, or without pools the node's shared edge addresses
 * filtered by its connectivity. */
static int assign_edge(const struct node_config *cfg, const struct edgepool *pool,
                       struct snap_app *sa, char *err, size_t errlen)
{
    const struct app *a = sa->app;

    if (a->edge_type == APP_EDGE_STATIC) {
        int rc = check_static_ips(a, err, errlen);
        if (rc < 0)
            return rc;
    }
    sa->is_freebind = pool && a->edge_type == APP_EDGE_DYNAMIC;
    if (pool && a->edge_type == APP_EDGE_DYNAMIC) {
        struct sockaddr_storage got[2];
        size_t k = edgepool_lookup(pool, a->dns_name, got, 2);

        sa->n_edge = 0;
        for (size_t i = 0; i < k; i++) {
            if ((got[i].ss_family == AF_INET && a->connectivity != APP_CONN_IPV6) ||
                (got[i].ss_family == AF_INET6 && a->connectivity != APP_CONN_IPV4))
                sa->edge[sa->n_edge++] = got[i];
        }
    } else {
        sa->n_edge =
            app_edge_addrs(a, cfg->edge_addrs, cfg->n_edge_addrs, sa->edge, APP_MAX_EDGE_IPS);
    }
    if (sa->n_edge == 0) {
        snprintf(err, errlen, "app '%s': no edge address fits its edge_ips", a->id);
        return -EINVAL;
    }
    return 0;
}

int edges_assign(const struct edgepool *prev, const struct node_config *cfg,
                 struct snap_app *const *all, size_t n, struct edgepool **pool, char *err,
                 size_t errlen)
{
    int rc = plan_pools(prev, cfg, all, n, pool, err, errlen);

    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = assign_edge(cfg, *pool, all[i], err, errlen);
    if (rc < 0) {
        edgepool_free(*pool);
        *pool = NULL;
    }
    return rc;
}

struct edgepool *edges_restore(const struct node_config *cfg, const struct edgepool_pair *pairs,
                               size_t n)
{
    struct edgepool_cidr v4, v6;
    const struct edgepool_cidr *p4, *p6;
    char err[200];

    if (n == 0 || config_pools(cfg, &v4, &v6, &p4, &p6, err, sizeof(err)) < 0 || (!p4 && !p6))
        return NULL;
    return edgepool_restore(p4, p6, pairs, n);
}
