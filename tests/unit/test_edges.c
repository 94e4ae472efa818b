/* tests/unit/test_edges.c: src/proxy/edges.c, where each app listens: the shared
 * edge addresses filtered by connectivity, static edge_ips (local ones only), and
 * per-name pool addresses that names keep across applies. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/addr.h"
#include "proxy/config.h"
#include "proxy/edges.h"
#include "proxy/snapshot.h"

#define MAX_APPS 8

static char errbuf[512];

struct fixture {
    struct node_config *cfg;
    struct snap_app *apps[MAX_APPS];
    size_t n;
};

/* Parses a node configuration with ' standing for " and makes its apps snap_apps. */
static void load(struct fixture *f, const char *text)
{
    char *s = strdup(text);

    assert_non_null(s);
    for (char *p = s; *p; p++) {
        if (*p == '\'')
            *p = '"';
    }
    memset(f, 0, sizeof(*f));
    f->cfg = config_parse(s, strlen(s), APP_F_UDP_BUILT, errbuf, sizeof(errbuf));
    free(s);
    if (!f->cfg)
        fail_msg("%s: %s", text, errbuf);
    assert_true(f->cfg->n_apps <= MAX_APPS);
    for (size_t i = 0; i < f->cfg->n_apps; i++) {
        f->apps[i] = snap_app_new(f->cfg->apps[i]);
        f->cfg->apps[i] = NULL;
        assert_non_null(f->apps[i]);
    }
    f->n = f->cfg->n_apps;
    f->cfg->n_apps = 0;
}

static void unload(struct fixture *f)
{
    for (size_t i = 0; i < f->n; i++)
        snap_app_unref(f->apps[i]);
    config_free(f->cfg);
}

static const char *ip_of(const struct snap_app *sa, size_t i)
{
    static char buf[ADDR_STRLEN];

    assert_true(i < sa->n_edge);
    assert_true(addr_format_ip(&sa->edge[i], buf, sizeof(buf)) > 0);
    return buf;
}

/* An app listening on tcp/<port> under <name>, with <extra> fields. */
#define APP(id, port, name, extra)                                                                 \
    "{'id':'" id "','protocol':'tcp/" port "','dns':{'type':'CNAME','name':'" name "'},"           \
    "'origin_direct':['tcp://127.0.0.1:9000']" extra "}"
#define V4 ",'edge_ips':{'type':'dynamic','connectivity':'ipv4'}"
#define V6 ",'edge_ips':{'type':'dynamic','connectivity':'ipv6'}"
#define POOLS "'edge':{'pool_v4':'127.10.0.0/16','pool_v6':'fd00:10::/64'}"

static void test_shared_addresses_by_connectivity(void **state)
{
    struct fixture f;
    struct edgepool *pool = (struct edgepool *)&f; /* must be reset to NULL */

    (void)state;
    load(&f,
         "{'apps':[" APP("all", "7000", "a.example.com", "") "," APP(
             "v4", "7001", "b.example.com", V4) "," APP("v6", "7002", "c.example.com", V6) "]}");
    assert_int_equal(edges_assign(NULL, f.cfg, f.apps, f.n, &pool, errbuf, sizeof(errbuf)), 0);
    assert_null(pool);
    assert_int_equal(f.apps[0]->n_edge, 2);
    assert_string_equal(ip_of(f.apps[0], 0), "127.0.0.1");
    assert_string_equal(ip_of(f.apps[0], 1), "::1");
    assert_int_equal(f.apps[1]->n_edge, 1);
    assert_string_equal(ip_of(f.apps[1], 0), "127.0.0.1");
    assert_int_equal(f.apps[2]->n_edge, 1);
    assert_string_equal(ip_of(f.apps[2], 0), "::1");
    for (size_t i = 0; i < f.n; i++)
        assert_false(f.apps[i]->is_freebind);
    unload(&f);
}

/* An API app keeps its connectivity when a reload drops the shared addresses of
 * its family: the apply is refused with the app named. */
static void test_no_shared_address_of_the_family(void **state)
{
    struct fixture f;
    struct edgepool *pool = NULL;

    (void)state;
    load(&f, "{'apps':[" APP("v6", "7000", "c.example.com", V6) "]}");
    assert_int_equal(f.cfg->n_edge_addrs, 2);
    f.cfg->n_edge_addrs = 1; /* edge.addresses: ["127.0.0.1"] */
    assert_int_equal(edges_assign(NULL, f.cfg, f.apps, f.n, &pool, errbuf, sizeof(errbuf)),
                     -EINVAL);
    assert_null(pool);
    assert_string_equal(errbuf, "app 'v6': no edge address fits its edge_ips");
    unload(&f);
}

#define STATIC_APP(id, ips)                                                                        \
    "{'id':'" id "','protocol':'tcp/7000','dns':{'type':'ADDRESS','name':'h.example.com'},"        \
    "'origin_direct':['tcp://127.0.0.1:9000'],'edge_ips':{'type':'static','ips':[" ips "]}}"

static void test_static_ips_must_be_local(void **state)
{
    struct fixture f;
    struct edgepool *pool = NULL;

    (void)state;
    load(&f, "{'apps':[" STATIC_APP("here", "'127.0.0.1'") "]}");
    assert_int_equal(edges_assign(NULL, f.cfg, f.apps, f.n, &pool, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(f.apps[0]->n_edge, 1);
    assert_string_equal(ip_of(f.apps[0], 0), "127.0.0.1");
    assert_false(f.apps[0]->is_freebind);
    unload(&f);

    /* 192.0.2.10 (TEST-NET-1) is no address of this machine */
    load(&f, "{'apps':[" STATIC_APP("away", "'127.0.0.1','192.0.2.10'") "]}");
    assert_true(edges_assign(NULL, f.cfg, f.apps, f.n, &pool, errbuf, sizeof(errbuf)) < 0);
    assert_null(pool);
    assert_non_null(strstr(errbuf, "app 'away': edge_ips.ips[1]: 192.0.2.10 cannot be bound"));
    unload(&f);
}

static void test_pools_per_name_and_kept_across_applies(void **state)
{
    struct fixture f, g;
    struct edgepool *pool = NULL, *next = NULL;
    char kept[ADDR_STRLEN];

    (void)state;
    load(&f, "{" POOLS ",'apps':[" APP("a", "7000", "a.example.com", "") "," APP(
                 "a2", "7001", "a.example.com", "") "," APP("b", "7000", "b.example.com", V4) "]}");
    assert_int_equal(edges_assign(NULL, f.cfg, f.apps, f.n, &pool, errbuf, sizeof(errbuf)), 0);
    assert_non_null(pool);
    /* a name gets one address of each pool; apps sharing a name share them */
    assert_int_equal(f.apps[0]->n_edge, 2);
    assert_true(f.apps[0]->is_freebind);
    assert_int_equal(strncmp(ip_of(f.apps[0], 0), "127.10.", 7), 0);
    assert_int_equal(strncmp(ip_of(f.apps[0], 1), "fd00:10::", 9), 0);
    assert_int_equal(f.apps[1]->n_edge, 2);
    assert_true(addr_equal(&f.apps[0]->edge[0], &f.apps[1]->edge[0]));
    assert_true(addr_equal(&f.apps[0]->edge[1], &f.apps[1]->edge[1]));
    /* connectivity ipv4: only the IPv4 pool, never the shared 127.0.0.1 */
    assert_int_equal(f.apps[2]->n_edge, 1);
    assert_int_equal(strncmp(ip_of(f.apps[2], 0), "127.10.", 7), 0);
    assert_false(addr_equal(&f.apps[0]->edge[0], &f.apps[2]->edge[0]));
    snprintf(kept, sizeof(kept), "%s", ip_of(f.apps[2], 0));

    /* the next apply, with a.example.com gone and new names, keeps b's address */
    load(&g, "{" POOLS ",'apps':[" APP("c", "7000", "c.example.com", "") "," APP(
                 "d", "7000", "d.example.com", "") "," APP("b", "7000", "b.example.com", V4) "]}");
    assert_int_equal(edges_assign(pool, g.cfg, g.apps, g.n, &next, errbuf, sizeof(errbuf)), 0);
    assert_string_equal(ip_of(g.apps[2], 0), kept);
    assert_int_equal(edgepool_size(next), 3);
    edgepool_free(pool);
    edgepool_free(next);
    unload(&f);
    unload(&g);
}

/* Apps that share a name share its addresses, each taking those of its families. */
static void test_shared_name_mixed_connectivity(void **state)
{
    struct fixture f;
    struct edgepool *pool = NULL;

    (void)state;
    load(&f, "{" POOLS ",'apps':[" APP("all", "7000", "m.example.com",
                                       "") "," APP("v6", "7001", "m.example.com", V6) "]}");
    assert_int_equal(edges_assign(NULL, f.cfg, f.apps, f.n, &pool, errbuf, sizeof(errbuf)), 0);
    assert_int_equal(f.apps[0]->n_edge, 2);
    assert_int_equal(f.apps[1]->n_edge, 1);
    assert_true(addr_equal(&f.apps[1]->edge[0], &f.apps[0]->edge[1]));
    assert_int_equal(strncmp(ip_of(f.apps[1], 0), "fd00:10::", 9), 0);
    edgepool_free(pool);
    unload(&f);
}

static void test_pool_family_missing(void **state)
{
    struct fixture f;
    struct edgepool *pool = NULL;

    (void)state;
    load(&f, "{'edge':{'pool_v4':'127.10.0.0/16'},'apps':[" APP("v6", "7000", "c.example.com",
                                                                V6) "]}");
    assert_int_equal(edges_assign(NULL, f.cfg, f.apps, f.n, &pool, errbuf, sizeof(errbuf)),
                     -EINVAL);
    assert_null(pool);
    assert_string_equal(errbuf, "app 'v6': edge_ips.connectivity: IPv6 addresses come from "
                                "edge.pool_v6, which is not configured");
    unload(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shared_addresses_by_connectivity),
        cmocka_unit_test(test_no_shared_address_of_the_family),
        cmocka_unit_test(test_static_ips_must_be_local),
        cmocka_unit_test(test_pools_per_name_and_kept_across_applies),
        cmocka_unit_test(test_shared_name_mixed_connectivity),
        cmocka_unit_test(test_pool_family_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
