/* tests/unit/test_config.c: src/proxy/config.c, the node configuration file.
 *
 * Files are written with single quotes for readability; cfg() turns them into
 * double quotes. Each invalid file is its own test and checks the start of the
 * one-line message, which names the field (and the app, if any). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs, in its own group so it stays there */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/bug.h"
#include "net/addr.h"
#include "proxy/config.h"

static char errbuf[512];

/* Parses <text> with ' standing for ". */
static struct node_config *cfg(const char *text, unsigned flags)
{
    char *s = strdup(text);
    struct node_config *c;

    assert_non_null(s);
    for (char *p = s; *p; p++) {
        if (*p == '\'')
            *p = '"';
    }
    errbuf[0] = '\0';
    c = config_parse(s, strlen(s), flags, errbuf, sizeof(errbuf));
    free(s);
    return c;
}

static struct node_config *cfg_ok(const char *text, unsigned flags)
{
    struct node_config *c = cfg(text, flags);

    if (!c)
        fail_msg("%s: %s", text, errbuf);
    return c;
}

static void assert_addr(const struct sockaddr_storage *a, const char *want)
{
    char text[ADDR_STRLEN];

    if (addr_port(a) == 0)
        addr_format_ip(a, text, sizeof(text));
    else
        addr_format(a, text, sizeof(text));
    assert_string_equal(text, want);
}

#define APP_A "{'id':'a','protocol':'tcp/22','dns':{'name':'a.example.com'},"
#define OD "'origin_direct':['tcp://192.0.2.1:22']"

struct bad_config {
    const char *name;
    const char *json;
    unsigned flags;
    const char *want; /* the start of the message */
};

static struct bad_config bad_configs[] = {
    /* JSON itself */
    {"syntax_error", "{\n  'colo': 'LAB',\n  'workers': ,\n}", 0, "line 3, column "},
    {"duplicate_key", "{'colo':'LAB','colo':'PDX'}", 0, "line 1, column "},
    {"trailing_garbage", "{} {}", 0, "line 1, column "},
    {"empty_file", "", 0, "line 1, column "},
    /* jansson quotes the text near the error; a raw newline there stays out of the line */
    {"syntax_error_near_a_newline", "{'d\\\n':1}", 0,
     "line 2, column 0: invalid escape near '\"d\\?'"},
    {"not_an_object", "['colo']", 0, "the configuration must be a JSON object"},
    /* unknown keys at every level */
    {"unknown_top_key", "{'color':'LAB'}", 0, "unknown key 'color'"},
    {"unknown_timeouts_key", "{'timeouts':{'foo':1}}", 0, "unknown key 'timeouts.foo'"},
    {"unknown_api_key", "{'api':{'port':8080}}", 0, "unknown key 'api.port'"},
    {"unknown_dns_key", "{'dns':{'listen':'127.0.0.1:53','ttl':5}}", 0, "unknown key 'dns.ttl'"},
    {"unknown_edge_key", "{'edge':{'pool':null}}", 0, "unknown key 'edge.pool'"},
    {"unknown_udp_key", "{'udp':{'max_flows':1}}", 0, "unknown key 'udp.max_flows'"},
    {"unknown_geoip_key", "{'geoip':{'city_db':null}}", 0, "unknown key 'geoip.city_db'"},
    {"unknown_tls_key", "{'tls':{'ca':null}}", 0, "unknown key 'tls.ca'"},
    /* scalars */
    {"colo_lower_case", "{'colo':'lab'}", 0, "colo: "},
    {"colo_empty", "{'colo':''}", 0, "colo: "},
    {"colo_16_chars", "{'colo':'ABCDEFGHIJKLMNOP'}", 0, "colo: "},
    {"colo_number", "{'colo':5}", 0, "colo: must be a string"},
    {"data_dir_empty", "{'data_dir':''}", 0, "data_dir: "},
    {"data_dir_null", "{'data_dir':null}", 0, "data_dir: must be a string"},
    {"workers_65", "{'workers':65}", 0, "workers: must be an integer from 0 to 64"},
    {"workers_negative", "{'workers':-1}", 0, "workers: "},
    {"workers_string", "{'workers':'4'}", 0, "workers: "},
    {"workers_real", "{'workers':1.5}", 0, "workers: "},
    {"busy_poll_too_big", "{'busy_poll_us':10001}", 0, "busy_poll_us: "},
    {"busy_poll_negative", "{'busy_poll_us':-1}", 0, "busy_poll_us: "},
    {"busy_poll_bool", "{'busy_poll_us':true}", 0, "busy_poll_us: "},
    /* listeners */
    {"api_not_object", "{'api':'127.0.0.1:8080'}", 0, "api: must be an object"},
    {"api_listen_hostname", "{'api':{'listen':'localhost:8080'}}", 0, "api.listen: "},
    {"api_listen_no_port", "{'api':{'listen':'127.0.0.1'}}", 0, "api.listen: "},
    {"dns_listen_unbracketed_v6", "{'dns':{'listen':'::1:5353'}}", 0, "dns.listen: "},
    {"dns_listen_null", "{'dns':{'listen':null}}", 0, "dns.listen: must be a string"},
    /* edge */
    {"edge_addresses_empty", "{'edge':{'addresses':[]}}", 0, "edge.addresses: "},
    {"edge_addresses_17",
     "{'edge':{'addresses':['127.0.0.1','127.0.0.2','127.0.0.3','127.0.0.4','127.0.0.5',"
     "'127.0.0.6','127.0.0.7','127.0.0.8','127.0.0.9','127.0.0.10','127.0.0.11','127.0.0.12',"
     "'127.0.0.13','127.0.0.14','127.0.0.15','127.0.0.16','127.0.0.17']}}",
     0, "edge.addresses: "},
    {"edge_addresses_string", "{'edge':{'addresses':'127.0.0.1'}}", 0, "edge.addresses: "},
    {"edge_address_bad", "{'edge':{'addresses':['127.0.0.1','localhost']}}", 0,
     "edge.addresses[1]: "},
    {"edge_address_with_port", "{'edge':{'addresses':['127.0.0.1:80']}}", 0, "edge.addresses[0]: "},
    {"edge_address_number", "{'edge':{'addresses':[1]}}", 0, "edge.addresses[0]: "},
    {"edge_address_duplicate", "{'edge':{'addresses':['::1','::1']}}", 0, "edge.addresses[1]: "},
    {"edge_address_under_wildcard", "{'edge':{'addresses':['0.0.0.0','127.0.0.1']}}", 0,
     "edge.addresses[1]: "},
    {"pool_v4_host_bits", "{'edge':{'pool_v4':'127.10.0.1/16'}}", 0,
     "edge.pool_v4: \"127.10.0.1/16\" has host bits set"},
    {"pool_v6_number", "{'edge':{'pool_v6':6}}", 0, "edge.pool_v6: must be a string or null"},
    /* timeouts */
    {"timeouts_not_object", "{'timeouts':[]}", 0, "timeouts: must be an object"},
    {"connect_ms_zero", "{'timeouts':{'connect_ms':0}}", 0, "timeouts.connect_ms: "},
    {"udp_idle_ms_zero", "{'timeouts':{'udp_idle_ms':0}}", 0, "timeouts.udp_idle_ms: "},
    {"idle_ms_over_a_day", "{'timeouts':{'idle_ms':86400001}}", 0, "timeouts.idle_ms: "},
    {"drain_ms_string", "{'timeouts':{'drain_ms':'30s'}}", 0, "timeouts.drain_ms: "},
    {"user_timeout_ms_negative", "{'timeouts':{'user_timeout_ms':-5}}", 0,
     "timeouts.user_timeout_ms: "},
    {"max_flows_zero", "{'udp':{'max_flows_per_worker':0}}", 0, "udp.max_flows_per_worker: "},
    {"rcvbuf_too_small", "{'udp':{'rcvbuf_bytes':4095}}", 0, "udp.rcvbuf_bytes: "},
    {"rcvbuf_too_large", "{'udp':{'rcvbuf_bytes':268435457}}", 0, "udp.rcvbuf_bytes: "},
    {"rcvbuf_string", "{'udp':{'rcvbuf_bytes':'4M'}}", 0, "udp.rcvbuf_bytes: "},
    /* features that are not built */
    {"geoip_country_not_built", "{'geoip':{'country_db':'/var/lib/GeoLite2-Country.mmdb'}}", 0,
     "geoip.country_db: GeoIP lookups are not built yet"},
    {"geoip_asn_not_built", "{'geoip':{'asn_db':'asn.mmdb'}}", 0,
     "geoip.asn_db: GeoIP lookups are not built yet"},
    {"store_etcd_not_built", "{'store':'etcd://127.0.0.1:2379'}", 0,
     "store: etcd is not built yet"},
    {"store_mysql", "{'store':'mysql'}", 0, "store: "},
    {"store_null", "{'store':null}", 0, "store: must be a string"},
    /* others */
    {"resolver_no_port", "{'resolver':'127.0.0.1'}", 0, "resolver: "},
    {"resolver_number", "{'resolver':53}", 0, "resolver: must be a string or null"},
    {"origin_ca_file_number", "{'tls':{'origin_ca_file':5}}", 0, "tls.origin_ca_file: "},
    /* apps */
    {"apps_object", "{'apps':{}}", 0, "apps: must be an array"},
    {"app_not_object", "{'apps':[5]}", 0, "apps[0]: must be an object"},
    {"app_bad_origin", "{'apps':[" APP_A "'origin_direct':['tcp://2001:db8::1:22']}]}", 0,
     "app 'a': origin_direct[0]: "},
    {"app_unknown_field", "{'apps':[" APP_A OD ",'foo':1}]}", 0, "app 'a': foo: "},
    {"app_missing_id",
     "{'apps':[" APP_A OD "},{'protocol':'tcp/23','dns':{'name':'b.example.com'}," OD "}]}", 0,
     "apps[1]: id: is required"},
    {"app_bad_id",
     "{'apps':[{'id':'no spaces','protocol':'tcp/22','dns':{'name':'a.example.com'},"
     "" OD "}]}",
     0, "apps[0]: id: "},
    {"app_udp_not_built",
     "{'apps':[{'id':'dns','protocol':'udp/53','dns':{'name':'a.example.com'},"
     "'origin_direct':['udp://192.0.2.1:53']}]}",
     0, "app 'dns': protocol: UDP apps are not built yet"},
    {"app_duplicate_id",
     "{'apps':[" APP_A OD "},{'id':'a','protocol':'tcp/23','dns':{'name':'b.example.com'}," OD
     "}]}",
     0, "app 'a': id: apps[0] has the same id"},
    {"app_conflict",
     "{'apps':[" APP_A OD "},{'id':'b','protocol':'tcp/23','dns':{'name':'b.example.com'}," OD
     "},{'id':'c','protocol':'tcp/10-30','dns':{'name':'c.example.com'}," OD "}]}",
     0, "app 'c': protocol: tcp port 22 on 127.0.0.1 is used by both app 'a' and app 'c'"},
    {"app_listens_nowhere",
     "{'edge':{'addresses':['127.0.0.1']},'apps':[" APP_A OD
     ",'edge_ips':{'type':'dynamic','connectivity':'ipv6'}}]}",
     0, "app 'a': edge_ips.connectivity: "},
};

static void test_bad_config(void **state)
{
    const struct bad_config *c = *state;
    struct node_config *got = cfg(c->json, c->flags);

    if (got)
        fail_msg("%s: accepted", c->name);
    if (strncmp(errbuf, c->want, strlen(c->want)) != 0)
        fail_msg("%s: got \"%s\", want \"%s...\"", c->name, errbuf, c->want);
    assert_null(strchr(errbuf, '\n'));
}

static void assert_defaults(const struct node_config *c)
{
    assert_string_equal(c->colo, "LAB");
    assert_string_equal(c->data_dir, "./var");
    assert_int_equal(c->workers, 0);
    assert_int_equal(c->busy_poll_us, 500);
    assert_addr(&c->api_listen, "127.0.0.1:8080");
    assert_addr(&c->dns_listen, "127.0.0.1:5353");
    assert_int_equal(c->n_edge_addrs, 2);
    assert_addr(&c->edge_addrs[0], "127.0.0.1");
    assert_addr(&c->edge_addrs[1], "::1");
    assert_string_equal(c->pool_v4, "");
    assert_string_equal(c->pool_v6, "");
    assert_int_equal(c->connect_ms, 10000);
    assert_int_equal(c->idle_ms, 0);
    assert_int_equal(c->udp_idle_ms, 30000);
    assert_int_equal(c->drain_ms, 30000);
    assert_int_equal(c->user_timeout_ms, 30000);
    assert_int_equal(c->udp_max_flows, 65536);
    assert_int_equal(c->udp_rcvbuf_bytes, 1 << 20);
    assert_string_equal(c->geoip_country_db, "");
    assert_string_equal(c->geoip_asn_db, "");
    assert_int_equal(c->resolver.ss_family, 0);
    assert_string_equal(c->origin_ca_file, "");
    assert_string_equal(c->store, "sqlite");
    assert_int_equal(c->n_apps, 0);
}

static void test_default(void **state)
{
    struct node_config *d = config_default();
    struct node_config *e = cfg_ok("{}", 0);

    (void)state;
    assert_defaults(d);
    assert_defaults(e);
    config_free(d);
    config_free(e);
    config_free(NULL);
}

/* DESIGN.md's example file, nulls and all, is the defaults. */
static void test_design_example_is_default(void **state)
{
    struct node_config *c =
        cfg_ok("{'colo':'LAB','data_dir':'./var','workers':0,'api':{'listen':'127.0.0.1:8080'},"
               "'dns':{'listen':'127.0.0.1:5353'},"
               "'edge':{'addresses':['127.0.0.1','::1'],'pool_v4':null,'pool_v6':null},"
               "'timeouts':{'connect_ms':10000,'idle_ms':0,'udp_idle_ms':30000,'drain_ms':30000},"
               "'geoip':{'country_db':null,'asn_db':null},'resolver':null,"
               "'tls':{'origin_ca_file':null},'store':'sqlite','apps':[]}",
               0);

    (void)state;
    assert_defaults(c);
    config_free(c);
}

static void test_every_key_set(void **state)
{
    struct node_config *c =
        cfg("{'colo':'PDX01','data_dir':'/srv/prism','workers':64,"
            "'api':{'listen':'[::1]:9000'},'dns':{'listen':'0.0.0.0:53'},"
            "'edge':{'addresses':['0.0.0.0','::','::ffff:192.0.2.9']},"
            "'timeouts':{'connect_ms':1,'idle_ms':86400000,'udp_idle_ms':5,'drain_ms':0,"
            "'user_timeout_ms':0},'udp':{'max_flows_per_worker':1000},"
            "'resolver':'127.0.0.53:53','tls':{'origin_ca_file':'/etc/ssl/ca.pem'}}",
            0);

    (void)state;
    /* The ::ffff: address became plain IPv4, so it overlaps 0.0.0.0... */
    assert_null(c);
    assert_true(strncmp(errbuf, "edge.addresses[2]: ", 19) == 0);

    c = cfg_ok("{'colo':'PDX01','data_dir':'/srv/prism','workers':64,'busy_poll_us':0,"
               "'api':{'listen':'[::1]:9000'},'dns':{'listen':'0.0.0.0:53'},"
               "'edge':{'addresses':['0.0.0.0','::']},"
               "'timeouts':{'connect_ms':1,'idle_ms':86400000,'udp_idle_ms':5,'drain_ms':0,"
               "'user_timeout_ms':0},'udp':{'max_flows_per_worker':1000,'rcvbuf_bytes':4096},"
               "'resolver':'127.0.0.53:53','tls':{'origin_ca_file':'/etc/ssl/ca.pem'}}",
               0);
    assert_string_equal(c->colo, "PDX01");
    assert_string_equal(c->data_dir, "/srv/prism");
    assert_int_equal(c->workers, 64);
    assert_int_equal(c->busy_poll_us, 0);
    assert_addr(&c->api_listen, "[::1]:9000");
    assert_addr(&c->dns_listen, "0.0.0.0:53");
    assert_int_equal(c->n_edge_addrs, 2);
    assert_addr(&c->edge_addrs[1], "::");
    assert_int_equal(c->connect_ms, 1);
    assert_int_equal(c->idle_ms, 86400000);
    assert_int_equal(c->udp_idle_ms, 5);
    assert_int_equal(c->drain_ms, 0);
    assert_int_equal(c->user_timeout_ms, 0);
    assert_int_equal(c->udp_max_flows, 1000);
    assert_int_equal(c->udp_rcvbuf_bytes, 4096);
    assert_addr(&c->resolver, "127.0.0.53:53");
    assert_string_equal(c->origin_ca_file, "/etc/ssl/ca.pem");
    config_free(c);
}

static void test_apps_parsed(void **state)
{
    struct node_config *c =
        cfg_ok("{'apps':[" APP_A OD ",'proxy_protocol':true},"
               "{'id':'range','protocol':'tcp/1000-2000','dns':{'name':'Range.Example.com.'},"
               "'origin_direct':['tcp://192.0.2.1:3000-4000']},"
               "{'id':'dns','protocol':'udp/53','dns':{'name':'dns.example.com'},"
               "'origin_direct':['udp://[2001:db8::53]:53'],'spp':true}]}",
               APP_F_UDP_BUILT);

    (void)state;
    assert_int_equal(c->n_apps, 3);
    for (size_t i = 0; i < c->n_apps; i++)
        assert_true(c->apps[i]->is_file_managed);
    assert_string_equal(c->apps[0]->id, "a");
    assert_int_equal(c->apps[0]->pp, APP_PP_V1);
    assert_string_equal(json_string_value(json_object_get(c->apps[0]->json, "proxy_protocol")),
                        "v1");
    assert_string_equal(c->apps[1]->dns_name, "range.example.com");
    assert_int_equal(app_origin_port(c->apps[1], &c->apps[1]->origins[0], 1005), 3005);
    assert_int_equal(c->apps[2]->proto, APP_UDP);
    assert_int_equal(c->apps[2]->pp, APP_PP_SIMPLE);
    config_free(c);
}

static void test_tcp_and_udp_same_port_no_conflict(void **state)
{
    struct node_config *c =
        cfg_ok("{'apps':[{'id':'t','protocol':'tcp/53','dns':{'name':'a.example.com'},"
               "'origin_direct':['tcp://192.0.2.1:53']},"
               "{'id':'u','protocol':'udp/53','dns':{'name':'a.example.com'},"
               "'origin_direct':['udp://192.0.2.1:53']}]}",
               APP_F_UDP_BUILT);

    (void)state;
    assert_int_equal(c->n_apps, 2);
    config_free(c);
}

static void test_conflict_with_static_wildcard_names_later_app(void **state)
{
    struct node_config *c =
        cfg("{'apps':[" APP_A OD "},"
            "{'id':'b','protocol':'tcp/80','dns':{'name':'b.example.com'}," OD "},"
            "{'id':'w','protocol':'tcp/20-25','dns':{'name':'w.example.com','type':'ADDRESS'}," OD
            ",'edge_ips':{'type':'static','ips':['0.0.0.0']}}]}",
            0);

    (void)state;
    assert_null(c);
    assert_string_equal(errbuf, "app 'w': protocol: tcp port 22 is used by both app 'a' on "
                                "127.0.0.1 and app 'w' on 0.0.0.0");
}

static void test_unknown_key_stays_one_line(void **state)
{
    const char text[] = "{\"a\\nb\":1}";

    (void)state;
    assert_null(config_parse(text, strlen(text), 0, errbuf, sizeof(errbuf)));
    assert_string_equal(errbuf, "unknown key 'a?b'");
}

static void test_len_is_respected(void **state)
{
    const char text[] = "{\"colo\":\"PDX\"}garbage";
    struct node_config *c;

    (void)state;
    c = config_parse(text, strlen(text) - strlen("garbage"), 0, errbuf, sizeof(errbuf));
    assert_non_null(c);
    assert_string_equal(c->colo, "PDX");
    config_free(c);
}

static void test_small_error_buffer(void **state)
{
    char small[8];

    (void)state;
    assert_null(config_parse("{\"colo\":1}", 10, 0, small, sizeof(small)));
    assert_string_equal(small, "colo: m");
    assert_null(config_parse("{\"colo\":1}", 10, 0, NULL, 0));
}

static void test_load(void **state)
{
    char path[] = "/tmp/prism-test-config-XXXXXX";
    const char text[] = "{\"colo\":\"AMS\",\"apps\":[{\"id\":\"ssh\",\"protocol\":\"ssh\","
                        "\"dns\":{\"name\":\"ssh.example.com\"},"
                        "\"origin_direct\":[\"tcp://127.0.0.1:2222\"]}]}";
    struct node_config *c;
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    c = config_load(path, 0, errbuf, sizeof(errbuf));
    if (!c)
        fail_msg("%s", errbuf);
    assert_string_equal(c->colo, "AMS");
    assert_int_equal(c->n_apps, 1);
    assert_int_equal(c->apps[0]->port_lo, 22);
    config_free(c);
    unlink(path);

    assert_null(config_load(path, 0, errbuf, sizeof(errbuf)));
    assert_non_null(strstr(errbuf, path));
    assert_non_null(strstr(errbuf, "No such file"));
    assert_null(config_load("/tmp", 0, errbuf, sizeof(errbuf)));
    assert_non_null(strstr(errbuf, "/tmp"));
}

static const struct CMUnitTest fixed_tests[] = {
    cmocka_unit_test(test_default),
    cmocka_unit_test(test_design_example_is_default),
    cmocka_unit_test(test_every_key_set),
    cmocka_unit_test(test_apps_parsed),
    cmocka_unit_test(test_tcp_and_udp_same_port_no_conflict),
    cmocka_unit_test(test_conflict_with_static_wildcard_names_later_app),
    cmocka_unit_test(test_unknown_key_stays_one_line),
    cmocka_unit_test(test_len_is_respected),
    cmocka_unit_test(test_small_error_buffer),
    cmocka_unit_test(test_load),
};

int main(void)
{
    struct CMUnitTest tests[ARRAY_SIZE(bad_configs) + ARRAY_SIZE(fixed_tests)];
    size_t n = 0;

    for (size_t i = 0; i < ARRAY_SIZE(bad_configs); i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(test_bad_config, &bad_configs[i]);
        tests[n++].name = bad_configs[i].name;
    }
    for (size_t i = 0; i < ARRAY_SIZE(fixed_tests); i++)
        tests[n++] = fixed_tests[i];
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
