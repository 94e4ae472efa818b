/* tests/unit/test_app.c: src/proxy/app.c, the Spectrum app validator.
 *
 * App objects are written with single quotes for readability; J() turns them into
 * double quotes before parsing. Each invalid app is its own test, named after
 * what it breaks, and checks the error code and the field named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the headers it needs, in its own group so it stays there */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bug.h"
#include "net/addr.h"
#include "proxy/app.h"

/* Parses <text> with ' standing for ". */
static json_t *J(const char *text)
{
    char *s = strdup(text);
    json_error_t jerr;
    json_t *j;

    assert_non_null(s);
    for (char *c = s; *c; c++) {
        if (*c == '\'')
            *c = '"';
    }
    j = json_loads(s, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        fail_msg("bad test JSON: %s: %s", jerr.text, s);
    free(s);
    return j;
}

static struct app *parse(const char *text, unsigned flags, struct app_error *err)
{
    json_t *j = J(text);
    struct app *a;

    memset(err, 0, sizeof(*err));
    a = app_from_json(j, flags, err);
    json_decref(j);
    return a;
}

static struct app *parse_ok(const char *text, unsigned flags)
{
    struct app_error err;
    struct app *a = parse(text, flags, &err);

    if (!a)
        fail_msg("%s: %d %s: %s", text, err.code, err.field, err.message);
    return a;
}

static void assert_json(const json_t *got, const char *want_text)
{
    json_t *want = J(want_text);

    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);
        char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS);
        fail_msg("json differs:\n got %s\nwant %s", g, w);
    }
    json_decref(want);
}

#define F APP_F_FILE
#define U (APP_F_FILE | APP_F_UDP_BUILT)
#define ID "'id':'a',"
#define TCP22 "'protocol':'tcp/22',"
#define UDP53 "'protocol':'udp/53',"
#define DNS "'dns':{'name':'a.example.com'},"
#define OD "'origin_direct':['tcp://192.0.2.1:22']"
#define OD_UDP "'origin_direct':['udp://192.0.2.1:53']"
/* A valid TCP app, with <extra> fields after it. */
#define APP(extra) "{" ID TCP22 DNS OD extra "}"
#define UAPP(extra) "{" ID UDP53 DNS OD_UDP extra "}"

struct bad_app {
    const char *name;
    const char *json;
    unsigned flags;
    int code;
    const char *field;
};

static struct bad_app bad_apps[] = {
    /* Fields we do not know, or will not take. */
    {"unknown_field", APP(",'foo':1"), F, 10012, "foo"},
    {"unknown_field_legacy_ipv4", APP(",'ipv4':true"), F, 10012, "ipv4"},
    {"unknown_dns_field", "{" ID TCP22 "'dns':{'name':'a.example.com','ttl':1}," OD "}", F, 10012,
     "dns.ttl"},
    {"unknown_edge_ips_field", APP(",'edge_ips':{'type':'dynamic','x':1}"), F, 10012, "edge_ips.x"},
    {"unknown_origin_dns_field", "{" ID TCP22 DNS "'origin_dns':{'name':'o.example.com','foo':1}}",
     F, 10012, "origin_dns.foo"},
    {"origin_worker_id", APP(",'origin_worker_id':'abc'"), F, 11105, "origin_worker_id"},
    {"virtual_network_id", APP(",'virtual_network_id':'f70ff985-a4ef-4643-bbbc-4a0ed4fc8415'"), F,
     11105, "virtual_network_id"},
    {"not_an_object", "['tcp/22']", F, 11104, "app"},
    /* id (file mode) */
    {"id_missing", "{" TCP22 DNS OD "}", F, 11104, "id"},
    {"id_null", "{'id':null," TCP22 DNS OD "}", F, 11104, "id"},
    {"id_number", "{'id':7," TCP22 DNS OD "}", F, 11104, "id"},
    {"id_empty", "{'id':''," TCP22 DNS OD "}", F, 11104, "id"},
    {"id_space", "{'id':'my app'," TCP22 DNS OD "}", F, 11104, "id"},
    {"id_slash", "{'id':'a/b'," TCP22 DNS OD "}", F, 11104, "id"},
    {"id_65_chars",
     "{'id':'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'," TCP22 DNS OD "}",
     F, 11104, "id"},
    /* protocol */
    {"protocol_missing", "{" ID DNS OD "}", F, 11101, "protocol"},
    {"protocol_number", "{" ID "'protocol':22," DNS OD "}", F, 11104, "protocol"},
    {"protocol_port_0", "{" ID "'protocol':'tcp/0'," DNS OD "}", F, 11101, "protocol"},
    {"protocol_port_65536", "{" ID "'protocol':'tcp/65536'," DNS OD "}", F, 11101, "protocol"},
    {"protocol_leading_zero", "{" ID "'protocol':'tcp/022'," DNS OD "}", F, 11101, "protocol"},
    {"protocol_reversed_range", "{" ID "'protocol':'tcp/2000-1000'," DNS OD "}", F, 11101,
     "protocol"},
    {"protocol_open_range", "{" ID "'protocol':'tcp/22-'," DNS OD "}", F, 11101, "protocol"},
    {"protocol_space", "{" ID "'protocol':'tcp/ 22'," DNS OD "}", F, 11101, "protocol"},
    {"protocol_sign", "{" ID "'protocol':'tcp/+22'," DNS OD "}", F, 11101, "protocol"},
    {"protocol_sctp", "{" ID "'protocol':'sctp/22'," DNS OD "}", F, 11101, "protocol"},
    {"protocol_upper_case", "{" ID "'protocol':'TCP/22'," DNS OD "}", F, 11101, "protocol"},
    {"protocol_no_port", "{" ID "'protocol':'tcp'," DNS OD "}", F, 11101, "protocol"},
    {"protocol_unknown_name", "{" ID "'protocol':'ftp'," DNS OD "}", F, 11101, "protocol"},
    {"udp_not_built", UAPP(""), F, 11105, "protocol"},
    /* dns */
    {"dns_missing", "{" ID TCP22 OD "}", F, 11104, "dns"},
    {"dns_string", "{" ID TCP22 "'dns':'a.example.com'," OD "}", F, 11104, "dns"},
    {"dns_name_missing", "{" ID TCP22 "'dns':{'type':'CNAME'}," OD "}", F, 11104, "dns.name"},
    {"dns_name_number", "{" ID TCP22 "'dns':{'name':5}," OD "}", F, 11104, "dns.name"},
    {"dns_name_leading_hyphen", "{" ID TCP22 "'dns':{'name':'-a.example.com'}," OD "}", F, 11104,
     "dns.name"},
    {"dns_name_trailing_hyphen", "{" ID TCP22 "'dns':{'name':'a-.example.com'}," OD "}", F, 11104,
     "dns.name"},
    {"dns_name_empty_label", "{" ID TCP22 "'dns':{'name':'a..example.com'}," OD "}", F, 11104,
     "dns.name"},
    {"dns_name_underscore", "{" ID TCP22 "'dns':{'name':'a_b.example.com'}," OD "}", F, 11104,
     "dns.name"},
    {"dns_name_two_dots", "{" ID TCP22 "'dns':{'name':'a.example.com..'}," OD "}", F, 11104,
     "dns.name"},
    {"dns_name_label_64",
     "{" ID TCP22
     "'dns':{'name':'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com'}," OD
     "}",
     F, 11104, "dns.name"},
    {"dns_type_mx", "{" ID TCP22 "'dns':{'name':'a.example.com','type':'MX'}," OD "}", F, 11104,
     "dns.type"},
    /* edge_ips and dns.type */
    {"address_with_dynamic_edge",
     "{" ID TCP22 "'dns':{'name':'a.example.com','type':'ADDRESS'}," OD "}", F, 11004, "dns.type"},
    {"cname_with_static_edge", APP(",'edge_ips':{'type':'static','ips':['192.0.2.10']}"), F, 11004,
     "dns.type"},
    {"edge_ips_string", APP(",'edge_ips':'dynamic'"), F, 11104, "edge_ips"},
    {"edge_ips_type_missing", APP(",'edge_ips':{'connectivity':'all'}"), F, 11104, "edge_ips.type"},
    {"edge_ips_type_anycast", APP(",'edge_ips':{'type':'anycast'}"), F, 11104, "edge_ips.type"},
    {"edge_ips_connectivity_ipv5", APP(",'edge_ips':{'type':'dynamic','connectivity':'ipv5'}"), F,
     11104, "edge_ips.connectivity"},
    {"edge_ips_dynamic_with_ips", APP(",'edge_ips':{'type':'dynamic','ips':['192.0.2.10']}"), F,
     11106, "edge_ips.ips"},
    {"edge_ips_static_without_ips",
     "{" ID TCP22 "'dns':{'name':'a.example.com','type':'ADDRESS'}," OD
     ",'edge_ips':{'type':'static'}}",
     F, 11106, "edge_ips.ips"},
    {"edge_ips_static_empty",
     "{" ID TCP22 "'dns':{'name':'a.example.com','type':'ADDRESS'}," OD
     ",'edge_ips':{'type':'static','ips':[]}}",
     F, 11106, "edge_ips.ips"},
    {"edge_ips_static_bad_ip",
     "{" ID TCP22 "'dns':{'name':'a.example.com','type':'ADDRESS'}," OD
     ",'edge_ips':{'type':'static','ips':['192.0.2.10','192.0.2.300']}}",
     F, 11106, "edge_ips.ips[1]"},
    {"edge_ips_static_duplicate",
     "{" ID TCP22 "'dns':{'name':'a.example.com','type':'ADDRESS'}," OD
     ",'edge_ips':{'type':'static','ips':['192.0.2.10','192.0.2.10']}}",
     F, 11106, "edge_ips.ips[1]"},
    {"edge_ips_static_multicast",
     "{" ID TCP22 "'dns':{'name':'a.example.com','type':'ADDRESS'}," OD
     ",'edge_ips':{'type':'static','ips':['224.0.0.1']}}",
     F, 11106, "edge_ips.ips[0]"},
    {"edge_ips_static_connectivity",
     "{" ID TCP22 "'dns':{'name':'a.example.com','type':'ADDRESS'}," OD
     ",'edge_ips':{'type':'static','connectivity':'all','ips':['192.0.2.10']}}",
     F, 11106, "edge_ips.connectivity"},
    /* origins */
    {"no_origin", "{" ID TCP22 DNS "'tls':'off'}", F, 11000, "origin_direct"},
    {"both_origins", APP(",'origin_dns':{'name':'o.example.com'}"), F, 11000, "origin_dns"},
    {"origin_dns_not_built", "{" ID TCP22 DNS "'origin_dns':{'name':'o.example.com','ttl':1200}}",
     F, 11105, "origin_dns"},
    {"origin_dns_string", "{" ID TCP22 DNS "'origin_dns':'o.example.com'}", F, 11104, "origin_dns"},
    {"origin_dns_ttl_string", "{" ID TCP22 DNS "'origin_dns':{'ttl':'600'}}", F, 11104,
     "origin_dns.ttl"},
    {"origin_direct_string", "{" ID TCP22 DNS "'origin_direct':'tcp://192.0.2.1:22'}", F, 11104,
     "origin_direct"},
    {"origin_direct_empty", "{" ID TCP22 DNS "'origin_direct':[]}", F, 11002, "origin_direct"},
    {"origin_direct_number", "{" ID TCP22 DNS "'origin_direct':[22]}", F, 11104,
     "origin_direct[0]"},
    {"origin_ipv6_unbracketed", "{" ID TCP22 DNS "'origin_direct':['tcp://2001:db8::1:22']}", F,
     11002, "origin_direct[0]"},
    {"origin_hostname", "{" ID TCP22 DNS "'origin_direct':['tcp://origin.example.com:22']}", F,
     11002, "origin_direct[0]"},
    {"origin_bracketed_ipv4", "{" ID TCP22 DNS "'origin_direct':['tcp://[192.0.2.1]:22']}", F,
     11002, "origin_direct[0]"},
    {"origin_scheme_mismatch", "{" ID TCP22 DNS "'origin_direct':['udp://192.0.2.1:22']}", F, 11002,
     "origin_direct[0]"},
    {"origin_no_scheme", "{" ID TCP22 DNS "'origin_direct':['192.0.2.1:22']}", F, 11002,
     "origin_direct[0]"},
    {"origin_no_port", "{" ID TCP22 DNS "'origin_direct':['tcp://192.0.2.1']}", F, 11002,
     "origin_direct[0]"},
    {"origin_port_0", "{" ID TCP22 DNS "'origin_direct':['tcp://192.0.2.1:0']}", F, 11002,
     "origin_direct[0]"},
    {"origin_port_70000", "{" ID TCP22 DNS "'origin_direct':['tcp://192.0.2.1:70000']}", F, 11002,
     "origin_direct[0]"},
    {"origin_wildcard", "{" ID TCP22 DNS "'origin_direct':['tcp://0.0.0.0:22']}", F, 11002,
     "origin_direct[0]"},
    {"origin_second_bad",
     "{" ID TCP22 DNS "'origin_direct':['tcp://192.0.2.1:22','tcp://192.0.2.2:x']}", F, 11002,
     "origin_direct[1]"},
    {"origin_range_length",
     "{" ID "'protocol':'tcp/1000-2000'," DNS "'origin_direct':['tcp://192.0.2.1:3000-3500']}", F,
     11102, "origin_direct[0]"},
    {"origin_range_single_edge", "{" ID TCP22 DNS "'origin_direct':['tcp://192.0.2.1:3000-3001']}",
     F, 11102, "origin_direct[0]"},
    {"origin_port_zero", APP(",'origin_port':0"), F, 11104, "origin_port"},
    {"origin_port_text", APP(",'origin_port':'ssh'"), F, 11104, "origin_port"},
    {"origin_port_bool", APP(",'origin_port':true"), F, 11104, "origin_port"},
    {"origin_port_real", APP(",'origin_port':22.0"), F, 11104, "origin_port"},
    {"origin_port_range_length",
     "{" ID "'protocol':'tcp/1000-2000'," DNS "'origin_direct':['tcp://192.0.2.1:3000'],"
     "'origin_port':'3000-3500'}",
     F, 11102, "origin_port"},
    /* proxy_protocol and spp */
    {"pp_v3", APP(",'proxy_protocol':'v3'"), F, 11104, "proxy_protocol"},
    {"pp_number", APP(",'proxy_protocol':1"), F, 11104, "proxy_protocol"},
    {"pp_simple_on_tcp", APP(",'proxy_protocol':'simple'"), F, 11104, "proxy_protocol"},
    {"spp_on_tcp", APP(",'spp':true"), F, 11104, "spp"},
    {"spp_string", UAPP(",'spp':'yes'"), U, 11104, "spp"},
    {"spp_with_v2", UAPP(",'spp':true,'proxy_protocol':'v2'"), U, 11104, "spp"},
    {"pp_v1_on_udp", UAPP(",'proxy_protocol':'v1'"), U, 11104, "proxy_protocol"},
    {"pp_true_on_udp", UAPP(",'proxy_protocol':true"), U, 11104, "proxy_protocol"},
    /* features that are not built */
    {"tls_full", APP(",'tls':'full'"), F, 11105, "tls"},
    {"tls_flexible", APP(",'tls':'flexible'"), F, 11105, "tls"},
    {"tls_bogus", APP(",'tls':'passthrough'"), F, 11104, "tls"},
    {"ip_firewall_on", APP(",'ip_firewall':true"), F, 11105, "ip_firewall"},
    {"ip_firewall_string", APP(",'ip_firewall':'true'"), F, 11104, "ip_firewall"},
    {"argo_on", APP(",'argo_smart_routing':true"), F, 11105, "argo_smart_routing"},
    {"argo_number", APP(",'argo_smart_routing':0"), F, 11104, "argo_smart_routing"},
    {"traffic_http", APP(",'traffic_type':'http'"), F, 11105, "traffic_type"},
    {"traffic_ftp", APP(",'traffic_type':'ftp'"), F, 11104, "traffic_type"},
    /* read-only fields */
    {"created_on_number", APP(",'created_on':5"), F, 11104, "created_on"},
    {"modified_on_object", APP(",'modified_on':{}"), APP_F_API, 11104, "modified_on"},
};

static void test_bad_app(void **state)
{
    const struct bad_app *c = *state;
    struct app_error err;
    struct app *a = parse(c->json, c->flags, &err);

    if (a)
        fail_msg("%s: accepted", c->name);
    if (err.code != c->code || strcmp(err.field, c->field) != 0)
        fail_msg("%s: got %d '%s' (%s), want %d '%s'", c->name, err.code, err.field, err.message,
                 c->code, c->field);
    assert_true(strlen(err.message) > 0);
    assert_null(strchr(err.message, '\n'));
}

static void test_too_many_origins(void **state)
{
    json_t *j = J(APP(""));
    json_t *list = json_array();
    struct app_error err = {0};
    struct app *a;

    (void)state;
    for (int i = 0; i < APP_MAX_ORIGINS + 1; i++)
        json_array_append_new(list, json_string("tcp://192.0.2.1:22"));
    json_object_set_new(j, "origin_direct", list);
    assert_null(app_from_json(j, F, &err));
    assert_int_equal(err.code, 11002);
    assert_string_equal(err.field, "origin_direct");

    json_array_remove(list, 0); /* exactly APP_MAX_ORIGINS is fine */
    a = app_from_json(j, F, &err);
    assert_non_null(a);
    assert_int_equal(a->n_origins, APP_MAX_ORIGINS);
    app_free(a);
    json_decref(j);
}

static void test_unknown_field_control_chars_stay_one_line(void **state)
{
    json_t *j = J(APP(""));
    struct app_error err = {0};

    (void)state;
    json_object_set_new(j, "a\nb", json_true());
    assert_null(app_from_json(j, F, &err));
    assert_int_equal(err.code, 10012);
    assert_string_equal(err.field, "a?b");
    assert_null(strchr(err.message, '\n'));
    json_decref(j);
}

static void test_nul_in_string_refused(void **state)
{
    json_t *j = J(APP(""));
    struct app_error err = {0};

    (void)state;
    json_object_set_new(j, "protocol", json_stringn("tcp/22\0junk", 11));
    assert_null(app_from_json(j, F, &err));
    assert_int_equal(err.code, 11104);
    assert_string_equal(err.field, "protocol");
    json_decref(j);
}

static void test_defaults_filled_in_order(void **state)
{
    struct app *a = parse_ok("{'id':'ssh','protocol':'tcp/22','dns':{'name':'ssh.example.com'},"
                             "'origin_direct':['tcp://192.0.2.1:22']}",
                             F);
    char *dump = json_dumps(a->json, JSON_COMPACT);

    (void)state;
    assert_string_equal(
        dump, "{\"id\":\"ssh\",\"protocol\":\"tcp/22\",\"dns\":{\"type\":\"CNAME\",\"name\":"
              "\"ssh.example.com\"},\"origin_direct\":[\"tcp://192.0.2.1:22\"],\"proxy_protocol\":"
              "\"off\",\"tls\":\"off\",\"ip_firewall\":false,\"argo_smart_routing\":false,"
              "\"traffic_type\":\"direct\",\"edge_ips\":{\"type\":\"dynamic\",\"connectivity\":"
              "\"all\"}}");
    assert_string_equal(a->id, "ssh");
    assert_int_equal(a->proto, APP_TCP);
    assert_int_equal(a->port_lo, 22);
    assert_int_equal(a->port_hi, 22);
    assert_int_equal(a->dns_type, APP_DNS_CNAME);
    assert_string_equal(a->dns_name, "ssh.example.com");
    assert_int_equal(a->n_origins, 1);
    assert_int_equal(a->origins[0].addr.ss_family, AF_INET);
    assert_int_equal(addr_port(&a->origins[0].addr), 22);
    assert_int_equal(a->pp, APP_PP_OFF);
    assert_int_equal(a->tls, APP_TLS_OFF);
    assert_false(a->ip_firewall);
    assert_false(a->argo_smart_routing);
    assert_int_equal(a->edge_type, APP_EDGE_DYNAMIC);
    assert_int_equal(a->connectivity, APP_CONN_ALL);
    assert_false(a->is_file_managed); /* config.c sets it */
    free(dump);
    app_free(a);
}

static void test_enums_case_insensitive_normalized(void **state)
{
    struct app *a =
        parse_ok("{'id':'a','protocol':'tcp/22','dns':{'type':'cname','name':'a.example.com'},"
                 "'origin_direct':['tcp://192.0.2.1:22'],'proxy_protocol':'V2','tls':'OFF',"
                 "'ip_firewall':false,'argo_smart_routing':false,'traffic_type':'Direct',"
                 "'edge_ips':{'type':'DYNAMIC','connectivity':'IPv4'}}",
                 F);

    (void)state;
    assert_int_equal(a->pp, APP_PP_V2);
    assert_int_equal(a->connectivity, APP_CONN_IPV4);
    assert_json(a->json, "{'id':'a','protocol':'tcp/22','dns':{'type':'CNAME','name':'a.example."
                         "com'},'origin_direct':['tcp://192.0.2.1:22'],'proxy_protocol':'v2',"
                         "'tls':'off','ip_firewall':false,'argo_smart_routing':false,"
                         "'traffic_type':'direct','edge_ips':{'type':'dynamic','connectivity':"
                         "'ipv4'}}");
    app_free(a);
}

static void test_legacy_pp_true_is_v1(void **state)
{
    struct app *a = parse_ok(APP(",'proxy_protocol':true,'spp':false"), F);

    (void)state;
    assert_int_equal(a->pp, APP_PP_V1);
    assert_string_equal(json_string_value(json_object_get(a->json, "proxy_protocol")), "v1");
    assert_null(json_object_get(a->json, "spp"));
    app_free(a);
}

static void test_legacy_pp_false_is_off(void **state)
{
    struct app *a = parse_ok(APP(",'proxy_protocol':false"), F);

    (void)state;
    assert_int_equal(a->pp, APP_PP_OFF);
    assert_string_equal(json_string_value(json_object_get(a->json, "proxy_protocol")), "off");
    app_free(a);
}

static void test_legacy_spp_true_is_simple(void **state)
{
    struct app *a = parse_ok(UAPP(",'proxy_protocol':false,'spp':true"), U);

    (void)state;
    assert_int_equal(a->proto, APP_UDP);
    assert_int_equal(a->pp, APP_PP_SIMPLE);
    assert_string_equal(json_string_value(json_object_get(a->json, "proxy_protocol")), "simple");
    assert_null(json_object_get(a->json, "spp"));
    app_free(a);
}

static void test_udp_v2_and_simple(void **state)
{
    struct app *a = parse_ok(UAPP(",'proxy_protocol':'v2'"), U);
    struct app *b = parse_ok(UAPP(",'proxy_protocol':'simple'"), U);

    (void)state;
    assert_int_equal(a->pp, APP_PP_V2);
    assert_int_equal(b->pp, APP_PP_SIMPLE);
    app_free(a);
    app_free(b);
}

static void test_dns_name_normalized(void **state)
{
    struct app *a = parse_ok("{" ID TCP22 "'dns':{'name':'SSH.Example.COM.'}," OD "}", F);

    (void)state;
    assert_string_equal(a->dns_name, "ssh.example.com");
    assert_string_equal(json_string_value(json_object_get(json_object_get(a->json, "dns"), "name")),
                        "ssh.example.com");
    app_free(a);
}

static void test_dns_name_limits(void **state)
{
    char name[300], text[400];
    struct app_error err;
    struct app *a;

    (void)state;
    /* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters: the longest name. */
    memset(name, 'a', 253);
    name[63] = name[127] = name[191] = '.';
    name[253] = '\0';
    snprintf(text, sizeof(text), "{" ID TCP22 "'dns':{'name':'%s'}," OD "}", name);
    a = parse_ok(text, F);
    assert_int_equal(strlen(a->dns_name), 253);
    app_free(a);
    name[253] = 'a';
    name[254] = '\0';
    snprintf(text, sizeof(text), "{" ID TCP22 "'dns':{'name':'%s'}," OD "}", name);
    assert_null(parse(text, F, &err));
    assert_string_equal(err.field, "dns.name");
}

static void test_shortcut_protocols(void **state)
{
    static const struct {
        const char *name;
        uint16_t port;
    } cases[] = {{"ssh", 22}, {"rdp", 3389}, {"minecraft", 25565}};

    (void)state;
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char text[256];
        struct app *a;

        snprintf(text, sizeof(text), "{" ID "'protocol':'%s'," DNS OD "}", cases[i].name);
        a = parse_ok(text, F);
        assert_int_equal(a->proto, APP_TCP);
        assert_int_equal(a->port_lo, cases[i].port);
        assert_int_equal(a->port_hi, cases[i].port);
        /* echoed as given, so a Terraform plan reads back what it wrote */
        assert_string_equal(json_string_value(json_object_get(a->json, "protocol")), cases[i].name);
        app_free(a);
    }
}

static void test_parse_protocol(void **state)
{
    struct app_error err;
    enum app_proto p;
    uint16_t lo, hi;

    (void)state;
    assert_int_equal(app_parse_protocol("udp/1-65535", &p, &lo, &hi, &err), 0);
    assert_int_equal(p, APP_UDP);
    assert_int_equal(lo, 1);
    assert_int_equal(hi, 65535);
    assert_int_equal(app_parse_protocol("tcp/80-80", &p, &lo, &hi, &err), 0);
    assert_int_equal(lo, 80);
    assert_int_equal(hi, 80);
    assert_int_equal(app_parse_protocol("tcp/22 ", &p, &lo, &hi, &err), -EINVAL);
    assert_int_equal(err.code, APP_ERR_PROTOCOL);
    assert_int_equal(app_parse_protocol("", &p, &lo, &hi, &err), -EINVAL);
    assert_int_equal(app_parse_protocol("tcp/1-2-3", &p, &lo, &hi, &err), -EINVAL);
    assert_int_equal(app_parse_protocol("tcp/99999", &p, &lo, &hi, &err), -EINVAL);
}

static void test_parse_origin_uri(void **state)
{
    struct app_error err;
    struct app_origin o;
    char text[ADDR_STRLEN];

    (void)state;
    assert_int_equal(app_parse_origin_uri("udp://[2001:db8::1]:53", APP_UDP, &o, &err), 0);
    assert_int_equal(o.addr.ss_family, AF_INET6);
    assert_int_equal(o.port_lo, 53);
    assert_int_equal(o.port_hi, 53);
    addr_format(&o.addr, text, sizeof(text));
    assert_string_equal(text, "[2001:db8::1]:53");

    assert_int_equal(app_parse_origin_uri("tcp://192.0.2.1:3000-4000", APP_TCP, &o, &err), 0);
    assert_int_equal(o.addr.ss_family, AF_INET);
    assert_int_equal(o.port_lo, 3000);
    assert_int_equal(o.port_hi, 4000);
    assert_int_equal(addr_port(&o.addr), 3000);

    /* an IPv4-mapped address is an IPv4 origin */
    assert_int_equal(app_parse_origin_uri("tcp://[::ffff:192.0.2.1]:22", APP_TCP, &o, &err), 0);
    assert_int_equal(o.addr.ss_family, AF_INET);

    assert_int_equal(app_parse_origin_uri("tcp://192.0.2.1:22", APP_UDP, &o, &err), -EINVAL);
    assert_int_equal(err.code, APP_ERR_ORIGIN_ADDRESS);
    assert_int_equal(app_parse_origin_uri("tcp://[2001:db8::1]22", APP_TCP, &o, &err), -EINVAL);
    assert_int_equal(app_parse_origin_uri("tcp://[2001:db8::1:22", APP_TCP, &o, &err), -EINVAL);
    assert_int_equal(app_parse_origin_uri("tcp://[ff02::1]:22", APP_TCP, &o, &err), -EINVAL);
    assert_int_equal(app_parse_origin_uri("tcp://255.255.255.255:22", APP_TCP, &o, &err), -EINVAL);
    assert_int_equal(app_parse_origin_uri("tcp://192.0.2.1:4000-3000", APP_TCP, &o, &err), -EINVAL);
    assert_int_equal(app_parse_origin_uri("tcp://192.0.2.1:22/x", APP_TCP, &o, &err), -EINVAL);
    assert_int_equal(app_parse_origin_uri("tcp://[fe80::1%eth0]:22", APP_TCP, &o, &err), -EINVAL);
}

/* Spectrum's documented example: edge 1005 of 1000-2000 goes to origin 3005 of 3000-4000. */
static void test_port_offset_mapping(void **state)
{
    struct app *a =
        parse_ok("{" ID "'protocol':'tcp/1000-2000'," DNS
                 "'origin_direct':['tcp://192.0.2.1:3000-4000','tcp://[2001:db8::1]:5000'"
                 "]}",
                 F);

    (void)state;
    assert_int_equal(a->port_lo, 1000);
    assert_int_equal(a->port_hi, 2000);
    assert_int_equal(app_origin_port(a, &a->origins[0], 1005), 3005);
    assert_int_equal(app_origin_port(a, &a->origins[0], 1000), 3000);
    assert_int_equal(app_origin_port(a, &a->origins[0], 2000), 4000);
    /* a single origin port takes every edge port */
    assert_int_equal(app_origin_port(a, &a->origins[1], 1000), 5000);
    assert_int_equal(app_origin_port(a, &a->origins[1], 1999), 5000);
    app_free(a);
}

static void test_origin_port_echoed(void **state)
{
    struct app *a = parse_ok("{" ID TCP22 DNS "'origin_direct':['tcp://128.66.0.4:23'],"
                             "'origin_port':22}",
                             F);
    struct app *b = parse_ok("{" ID "'protocol':'tcp/1000-2000'," DNS
                             "'origin_direct':['tcp://192.0.2.1:3000-4000'],"
                             "'origin_port':'3000-4000'}",
                             F);

    (void)state;
    assert_true(json_is_integer(json_object_get(a->json, "origin_port")));
    assert_int_equal(json_integer_value(json_object_get(a->json, "origin_port")), 22);
    /* the URI's port wins: Terraform sends both */
    assert_int_equal(app_origin_port(a, &a->origins[0], 22), 23);
    assert_string_equal(json_string_value(json_object_get(b->json, "origin_port")), "3000-4000");
    app_free(a);
    app_free(b);
}

static void test_static_edge_ips(void **state)
{
    struct app *a = parse_ok("{" ID TCP22 "'dns':{'name':'a.example.com','type':'address'}," OD
                             ",'edge_ips':{'type':'static','ips':['192.0.2.10','2001:db8::10']}}",
                             F);
    struct sockaddr_storage shared[1], out[4];

    (void)state;
    assert_int_equal(a->dns_type, APP_DNS_ADDRESS);
    assert_int_equal(a->edge_type, APP_EDGE_STATIC);
    assert_int_equal(a->n_edge_ips, 2);
    assert_json(json_object_get(a->json, "edge_ips"),
                "{'type':'static','ips':['192.0.2.10','2001:db8::10']}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(a->json, "dns"), "type")),
                        "ADDRESS");
    assert_int_equal(addr_parse_ip("127.0.0.1", &shared[0]), 0);
    assert_int_equal(app_edge_addrs(a, shared, 1, out, 4), 2);
    assert_true(addr_ip_equal(&out[0], &a->edge_ips[0]));
    assert_int_equal(app_edge_addrs(a, shared, 1, out, 1), 1); /* capped */
    app_free(a);
}

static void test_edge_addrs_by_connectivity(void **state)
{
    struct app *all = parse_ok(APP(""), F);
    struct app *v4 = parse_ok(APP(",'edge_ips':{'type':'dynamic','connectivity':'ipv4'}"), F);
    struct app *v6 = parse_ok(APP(",'edge_ips':{'type':'dynamic','connectivity':'ipv6'}"), F);
    struct sockaddr_storage shared[3], out[3];

    (void)state;
    assert_int_equal(addr_parse_ip("127.0.0.1", &shared[0]), 0);
    assert_int_equal(addr_parse_ip("::1", &shared[1]), 0);
    assert_int_equal(addr_parse_ip("192.0.2.5", &shared[2]), 0);
    assert_int_equal(app_edge_addrs(all, shared, 3, out, 3), 3);
    assert_int_equal(app_edge_addrs(v4, shared, 3, out, 3), 2);
    assert_int_equal(out[0].ss_family, AF_INET);
    assert_int_equal(out[1].ss_family, AF_INET);
    assert_int_equal(app_edge_addrs(v6, shared, 3, out, 3), 1);
    assert_int_equal(out[0].ss_family, AF_INET6);
    app_free(all);
    app_free(v4);
    app_free(v6);
}

static void test_null_means_absent(void **state)
{
    struct app *a = parse_ok(APP(",'origin_dns':null,'origin_port':null,'tls':null,"
                                 "'edge_ips':null,'spp':null,'origin_worker_id':null,"
                                 "'created_on':null"),
                             F);

    (void)state;
    assert_int_equal(a->tls, APP_TLS_OFF);
    assert_null(json_object_get(a->json, "origin_dns"));
    assert_null(json_object_get(a->json, "origin_port"));
    assert_null(json_object_get(a->json, "created_on"));
    app_free(a);
}

static void test_api_mode_read_only_fields(void **state)
{
    struct app *a = parse_ok("{'id':'not a valid file id!'," TCP22 DNS OD
                             ",'created_on':'2018-03-28T21:25:55.643771Z',"
                             "'modified_on':'2018-03-28T21:25:55.643771Z'}",
                             APP_F_API);
    struct app *f = parse_ok(APP(",'created_on':'2018-03-28T21:25:55.643771Z'"), F);

    (void)state;
    assert_string_equal(a->id, ""); /* the API names the app */
    assert_null(json_object_get(a->json, "id"));
    assert_null(json_object_get(a->json, "created_on"));
    assert_null(json_object_get(a->json, "modified_on"));
    assert_string_equal(json_string_value(json_object_get(f->json, "created_on")),
                        "2018-03-28T21:25:55.643771Z");
    app_free(a);
    app_free(f);
}

static void test_json_is_a_copy(void **state)
{
    json_t *j = J(APP(""));
    struct app_error err;
    struct app *a = app_from_json(j, F, &err);

    (void)state;
    assert_non_null(a);
    json_decref(j); /* the app must not borrow from its input */
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(a->json, "origin_direct"), 0)),
        "tcp://192.0.2.1:22");
    app_free(a);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(app_proto_name(APP_TCP), "tcp");
    assert_string_equal(app_proto_name(APP_UDP), "udp");
    assert_string_equal(app_pp_name(APP_PP_OFF), "off");
    assert_string_equal(app_pp_name(APP_PP_V1), "v1");
    assert_string_equal(app_pp_name(APP_PP_V2), "v2");
    assert_string_equal(app_pp_name(APP_PP_SIMPLE), "simple");
    app_free(NULL);
}

/* Conflicts: <texts> are apps; <shared> is the node's edge addresses. */
static int conflicts(const char *const *texts, size_t n, const char *const *shared_text,
                     size_t n_shared, struct app_error *err)
{
    struct app *apps[8] = {0};
    struct sockaddr_storage shared[8] = {0};
    int rc;

    for (size_t i = 0; i < n; i++)
        apps[i] = parse_ok(texts[i], U);
    for (size_t i = 0; i < n_shared; i++)
        assert_int_equal(addr_parse_ip(shared_text[i], &shared[i]), 0);
    memset(err, 0, sizeof(*err));
    rc = app_check_conflicts(apps, n, shared, n_shared, err);
    for (size_t i = 0; i < n; i++)
        app_free(apps[i]);
    return rc;
}

static const char *const local[] = {"127.0.0.1", "::1"};

static void test_conflict_same_port(void **state)
{
    const char *apps[] = {"{'id':'a'," TCP22 DNS OD "}", "{'id':'b'," TCP22 DNS OD "}"};
    struct app_error err;

    (void)state;
    assert_int_equal(conflicts(apps, 2, local, 2, &err), -EEXIST);
    assert_int_equal(err.code, APP_ERR_PORT_CONFLICT);
    assert_string_equal(err.field, "protocol");
    assert_non_null(strstr(err.message, "'a'"));
    assert_non_null(strstr(err.message, "'b'"));
    assert_non_null(strstr(err.message, "127.0.0.1"));
    assert_non_null(strstr(err.message, "22"));
}

static void test_conflict_overlapping_ranges(void **state)
{
    const char *apps[] = {
        "{'id':'a','protocol':'tcp/1000-2000'," DNS OD "}",
        "{'id':'b','protocol':'tcp/3000-4000'," DNS OD "}",
        "{'id':'c','protocol':'tcp/2000-2999'," DNS OD "}",
    };
    struct app_error err;

    (void)state;
    assert_int_equal(conflicts(apps, 2, local, 2, &err), 0); /* disjoint */
    assert_int_equal(conflicts(apps, 3, local, 2, &err), -EEXIST);
    assert_non_null(strstr(err.message, "port 2000"));
    assert_non_null(strstr(err.message, "'a'"));
    assert_non_null(strstr(err.message, "'c'"));
}

static void test_conflict_wildcard_vs_specific(void **state)
{
    const char *apps[] = {
        "{'id':'w'," TCP22 "'dns':{'name':'a.example.com','type':'ADDRESS'}," OD
        ",'edge_ips':{'type':'static','ips':['0.0.0.0']}}",
        "{'id':'s'," TCP22 DNS OD "}",
    };
    const char *const v6_only[] = {"::1"};
    struct app_error err;

    (void)state;
    assert_int_equal(conflicts(apps, 2, local, 2, &err), -EEXIST);
    assert_non_null(strstr(err.message, "0.0.0.0"));
    assert_non_null(strstr(err.message, "127.0.0.1"));
    /* an IPv4 wildcard does not overlap IPv6 addresses */
    assert_int_equal(conflicts(apps, 2, v6_only, 1, &err), 0);
}

static void test_no_conflict_tcp_vs_udp(void **state)
{
    const char *apps[] = {
        "{'id':'t','protocol':'tcp/53'," DNS OD "}",
        "{'id':'u','protocol':'udp/53'," DNS OD_UDP "}",
    };
    struct app_error err;

    (void)state;
    assert_int_equal(conflicts(apps, 2, local, 2, &err), 0);
}

static void test_no_conflict_split_families(void **state)
{
    const char *apps[] = {
        "{'id':'a'," TCP22 DNS OD ",'edge_ips':{'type':'dynamic','connectivity':'ipv4'}}",
        "{'id':'b'," TCP22 DNS OD ",'edge_ips':{'type':'dynamic','connectivity':'ipv6'}}",
        "{'id':'c'," TCP22 "'dns':{'name':'a.example.com','type':'ADDRESS'}," OD
        ",'edge_ips':{'type':'static','ips':['192.0.2.10']}}",
        "{'id':'d'," TCP22 "'dns':{'name':'a.example.com','type':'ADDRESS'}," OD
        ",'edge_ips':{'type':'static','ips':['::']}}",
    };
    struct app_error err;

    (void)state;
    assert_int_equal(conflicts(apps, 3, local, 2, &err), 0);
    /* "::" overlaps app b's ::1 */
    assert_int_equal(conflicts(apps, 4, local, 2, &err), -EEXIST);
    assert_non_null(strstr(err.message, "'b'"));
    assert_non_null(strstr(err.message, "'d'"));
}

static const struct CMUnitTest fixed_tests[] = {
    cmocka_unit_test(test_too_many_origins),
    cmocka_unit_test(test_unknown_field_control_chars_stay_one_line),
    cmocka_unit_test(test_nul_in_string_refused),
    cmocka_unit_test(test_defaults_filled_in_order),
    cmocka_unit_test(test_enums_case_insensitive_normalized),
    cmocka_unit_test(test_legacy_pp_true_is_v1),
    cmocka_unit_test(test_legacy_pp_false_is_off),
    cmocka_unit_test(test_legacy_spp_true_is_simple),
    cmocka_unit_test(test_udp_v2_and_simple),
    cmocka_unit_test(test_dns_name_normalized),
    cmocka_unit_test(test_dns_name_limits),
    cmocka_unit_test(test_shortcut_protocols),
    cmocka_unit_test(test_parse_protocol),
    cmocka_unit_test(test_parse_origin_uri),
    cmocka_unit_test(test_port_offset_mapping),
    cmocka_unit_test(test_origin_port_echoed),
    cmocka_unit_test(test_static_edge_ips),
    cmocka_unit_test(test_edge_addrs_by_connectivity),
    cmocka_unit_test(test_null_means_absent),
    cmocka_unit_test(test_api_mode_read_only_fields),
    cmocka_unit_test(test_json_is_a_copy),
    cmocka_unit_test(test_names),
    cmocka_unit_test(test_conflict_same_port),
    cmocka_unit_test(test_conflict_overlapping_ranges),
    cmocka_unit_test(test_conflict_wildcard_vs_specific),
    cmocka_unit_test(test_no_conflict_tcp_vs_udp),
    cmocka_unit_test(test_no_conflict_split_families),
};

int main(void)
{
    struct CMUnitTest tests[ARRAY_SIZE(bad_apps) + ARRAY_SIZE(fixed_tests)];
    size_t n = 0;

    for (size_t i = 0; i < ARRAY_SIZE(bad_apps); i++) {
        tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(test_bad_app, &bad_apps[i]);
        tests[n++].name = bad_apps[i].name;
    }
    for (size_t i = 0; i < ARRAY_SIZE(fixed_tests); i++)
        tests[n++] = fixed_tests[i];
    return cmocka_run_group_tests_name("app", tests, NULL, NULL);
}
