/* src/proxy/app.c: Spectrum applications, validated and compiled.
 *
 * An app arrives as a Cloudflare v4 JSON object (../shared/notes/cloudflare-api.md
 * section 2.2), from the node configuration file or from the API. app_from_json()
 * walks it once, in a fixed order, and stops at the first problem:
 *
 *   unknown fields (10012) -> id -> protocol -> dns -> edge_ips (+ dns.type, 11004)
 *   -> origin_direct | origin_dns (11000, 11002, 11102) -> origin_port
 *   -> proxy_protocol / spp -> tls, ip_firewall, argo_smart_routing, traffic_type
 *   -> created_on, modified_on -> the normalized JSON
 *
 * The compiled struct app is what the data plane reads; app->json is what the API
 * shows. The JSON is rebuilt from the parsed values rather than patched, so every
 * field a Terraform plan reads back is present with its default, enums are lower
 * case (dns.type stays upper case, as Cloudflare writes it), and the legacy
 * booleans ("proxy_protocol": true, "spp": true) come out in their string form.
 * Strings the user chose (protocol, origin URIs, static edge IPs) are echoed as given.
 *
 * JSON null counts as "absent" for every optional field: clients that send a whole
 * model (Terraform, a GET copied into a PUT) write null for what they leave unset.
 *
 * Port ranges: "tcp/1000-2000" with origin "tcp://192.0.2.1:3000-4000" maps edge
 * port 1000+N to origin port 3000+N (both ranges must have the same length); an
 * origin with a single port takes every edge port of the range.
 *
 * Left out on purpose: origin_dns, tls termination, the IP firewall, Argo, traffic
 * types other than "direct", Workers origins and virtual networks are refused with
 * 11105 until they are built, so a config never silently means less than it says. */
#include "proxy/app.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/bug.h"
#include "core/log.h"
#include "net/addr.h"

#define ERR_INTERNAL 10002 /* Cloudflare: unexpected internal error (here: out of memory) */
#define FIELD_MAX 96       /* = sizeof(struct app_error.field) */

static const char *const pp_names[] = {"off", "v1", "v2", "simple"};
static const char *const tls_names[] = {"off", "flexible", "full", "strict"};
static const char *const dns_type_names[] = {"CNAME", "ADDRESS"};
static const char *const edge_type_names[] = {"dynamic", "static"};
static const char *const conn_names[] = {"all", "ipv4", "ipv6"};
static const char *const traffic_names[] = {"direct", "http", "https", "worker"};

/* Spectrum's named protocols (the "protocols" endpoint); TF acceptance tests use them. */
static const struct {
    const char *name;
    enum app_proto proto;
    uint16_t port;
} shortcuts[] = {
    {"ssh", APP_TCP, 22},
    {"rdp", APP_TCP, 3389},
    {"minecraft", APP_TCP, 25565},
};

/* Every top-level field we know. */
static const char *const app_fields[] = {"id",
                                         "protocol",
                                         "dns",
                                         "origin_direct",
                                         "origin_dns",
                                         "origin_port",
                                         "proxy_protocol",
                                         "spp",
                                         "tls",
                                         "ip_firewall",
                                         "argo_smart_routing",
                                         "traffic_type",
                                         "edge_ips",
                                         "created_on",
                                         "modified_on",
                                         "origin_worker_id",
                                         "virtual_network_id"};

/* State of one app_from_json() call. */
struct build {
    const json_t *in;                                          /* borrowed: the caller's object */
    unsigned flags;                                            /* APP_F_* */
    struct app *app;                                           /* owned until returned */
    struct app_error *err;                                     /* the caller's; may be NULL */
    const char *protocol;                                      /* borrowed from <in> */
    const json_t *origin_direct, *origin_port, *edge_ips_list; /* borrowed; NULL if absent */
    const json_t *created_on, *modified_on;                    /* borrowed; NULL if dropped */
};

static void set_err(struct app_error *err, int code, const char *field, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void set_err(struct app_error *err, int code, const char *field, const char *fmt, va_list ap)
{
    if (!err)
        return;
    err->code = code;
    snprintf(err->field, sizeof(err->field), "%s", field);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
}

static int fail(struct build *b, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Fills b->err and returns -EINVAL, so that a check reads "return fail(...)". */
static int fail(struct build *b, int code, const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_err(b->err, code, field, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int err_out(struct app_error *err, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The same for the pure parsers, which have no struct build. */
static int err_out(struct app_error *err, int code, const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    set_err(err, code, field, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* jansson's object iterators take a non-const object although they only read it. */
static json_t *unconst(const json_t *v)
{
    return (json_t *)(uintptr_t)v;
}

/* The member <key> of <obj>, or NULL when it is absent or JSON null. */
static const json_t *member(const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    return json_is_null(v) ? NULL : v;
}

/* Index of <s> in <names> (ASCII case-insensitive), or -1. */
static int find_name(const char *s, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(s, names[i]) == 0)
            return (int)i;
    }
    return -1;
}

static bool is_known(const char *key, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(key, names[i]) == 0)
            return true;
    }
    return false;
}

/* Rejects a member of <obj> that is not in <names>; <prefix> is the path of <obj>
 * ("" at the top, "dns." below). */
static int check_fields(struct build *b, const json_t *obj, const char *prefix,
                        const char *const *names, size_t n)
{
    const char *key;
    json_t *v;

    json_object_foreach(unconst(obj), key, v)
    {
        char field[FIELD_MAX], text[64];

        if (is_known(key, names, n))
            continue;
        snprintf(field, sizeof(field), "%s%s", prefix, log_printable(key, text, sizeof(text)));
        return fail(b, APP_ERR_UNKNOWN_FIELD, field, "unknown field \"%s\"", field);
    }
    return 0;
}

/* Sets <*out> to the string <v>; a string with a NUL inside is refused, since every
 * parser below reads C strings. */
static int want_string(struct build *b, const json_t *v, const char *field, const char **out)
{
    if (!json_is_string(v))
        return fail(b, APP_ERR_INVALID, field, "must be a string");
    if (strlen(json_string_value(v)) != json_string_length(v))
        return fail(b, APP_ERR_INVALID, field, "must not contain NUL characters");
    *out = json_string_value(v);
    return 0;
}

static int want_bool(struct build *b, const json_t *v, const char *field, bool *out)
{
    if (!json_is_boolean(v))
        return fail(b, APP_ERR_INVALID, field, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

/* An enum field: absent means <def>; otherwise one of <names>, any case. */
static int want_enum(struct build *b, const char *key, const char *const *names, size_t n, int def,
                     const char *expected, int *out)
{
    const json_t *v = member(b->in, key);
    const char *s;
    int i;

    *out = def;
    if (!v)
        return 0;
    if (want_string(b, v, key, &s) != 0)
        return -EINVAL;
    i = find_name(s, names, n);
    if (i < 0)
        return fail(b, APP_ERR_INVALID, key, "must be %s", expected);
    *out = i;
    return 0;
}

/* A decimal port 1..65535 in s[0..len): digits only, no sign, no leading zero. */
static bool parse_port(const char *s, size_t len, uint16_t *out)
{
    unsigned v = 0;

    if (len == 0 || len > 5 || s[0] < '1' || s[0] > '9')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

/* "N" or "N-M" (N <= M) making up all of the C string <s>. */
static bool parse_port_range(const char *s, uint16_t *lo, uint16_t *hi)
{
    const char *dash = strchr(s, '-');

    if (!dash) {
        if (!parse_port(s, strlen(s), lo))
            return false;
        *hi = *lo;
        return true;
    }
    return parse_port(s, (size_t)(dash - s), lo) && parse_port(dash + 1, strlen(dash + 1), hi) &&
           *lo <= *hi;
}

/* False for addresses no connection can go to or come from: the wildcard, multicast
 * and the IPv4 broadcast address. */
static bool is_unicast(const struct sockaddr_storage *a)
{
    if (addr_is_any(a))
        return false;
    if (a->ss_family == AF_INET) {
        uint32_t ip = ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr);
        return (ip & 0xf0000000u) != 0xe0000000u && ip != 0xffffffffu;
    }
    return !IN6_IS_ADDR_MULTICAST(&((const struct sockaddr_in6 *)a)->sin6_addr);
}

int app_parse_protocol(const char *s, enum app_proto *proto, uint16_t *lo, uint16_t *hi,
                       struct app_error *err)
{
    const char *usage = "must be tcp/PORT, udp/PORT, a range such as tcp/1000-2000, "
                        "or one of ssh, rdp, minecraft";
    enum app_proto p;
    uint16_t l, h;

    for (size_t i = 0; i < ARRAY_SIZE(shortcuts); i++) {
        if (strcmp(s, shortcuts[i].name) == 0) {
            *proto = shortcuts[i].proto;
            *lo = *hi = shortcuts[i].port;
            return 0;
        }
    }
    if (strncmp(s, "tcp/", 4) == 0)
        p = APP_TCP;
    else if (strncmp(s, "udp/", 4) == 0)
        p = APP_UDP;
    else
        return err_out(err, APP_ERR_PROTOCOL, "protocol", "%s", usage);
    if (!parse_port_range(s + 4, &l, &h))
        return err_out(err, APP_ERR_PROTOCOL, "protocol",
                       "%s; ports are 1 to 65535 without leading zeros, a range is LOW-HIGH",
                       usage);
    *proto = p;
    *lo = l;
    *hi = h;
    return 0;
}

/* Splits "IP:PORTS" or "[IPv6]:PORTS" into <out>; reports problems as 11002. */
static int parse_hostports(const char *host, struct app_origin *out, struct app_error *err)
{
    const char *example = "write tcp://192.0.2.1:22 or tcp://[2001:db8::1]:22";
    char ip[INET6_ADDRSTRLEN], text[64];
    const char *colon;
    size_t hlen;
    bool is_v6 = host[0] == '[';

    if (is_v6) {
        const char *end = strchr(host, ']');
        if (!end)
            return err_out(err, APP_ERR_ORIGIN_ADDRESS, "origin_direct", "unclosed '[': %s",
                           example);
        host++;
        hlen = (size_t)(end - host);
        colon = end + 1;
        if (*colon != ':')
            return err_out(err, APP_ERR_ORIGIN_ADDRESS, "origin_direct", "needs a port: %s",
                           example);
    } else {
        colon = strchr(host, ':');
        if (!colon)
            return err_out(err, APP_ERR_ORIGIN_ADDRESS, "origin_direct", "needs a port: %s",
                           example);
        if (strchr(colon + 1, ':'))
            return err_out(err, APP_ERR_ORIGIN_ADDRESS, "origin_direct",
                           "an IPv6 address must be in brackets: %s", example);
        hlen = (size_t)(colon - host);
    }
    if (hlen == 0 || hlen >= sizeof(ip))
        return err_out(err, APP_ERR_ORIGIN_ADDRESS, "origin_direct", "needs an IP address: %s",
                       example);
    memcpy(ip, host, hlen);
    ip[hlen] = '\0';
    if (addr_parse_ip(ip, &out->addr) != 0 || (out->addr.ss_family == AF_INET6) != is_v6)
        return err_out(err, APP_ERR_ORIGIN_ADDRESS, "origin_direct",
                       "\"%s\" is not an IP%s address (origin_direct takes addresses; names "
                       "go in origin_dns)",
                       log_printable(ip, text, sizeof(text)), is_v6 ? "v6" : "v4");
    if (!parse_port_range(colon + 1, &out->port_lo, &out->port_hi))
        return err_out(err, APP_ERR_ORIGIN_ADDRESS, "origin_direct",
                       "bad port: give 1 to 65535, or a range LOW-HIGH such as 3000-4000");
    return 0;
}

int app_parse_origin_uri(const char *s, enum app_proto proto, struct app_origin *out,
                         struct app_error *err)
{
    const char *want = app_proto_name(proto);
    const char *sep = strstr(s, "://");
    size_t slen;

    memset(out, 0, sizeof(*out));
    if (!sep)
        return err_out(err, APP_ERR_ORIGIN_ADDRESS, "origin_direct",
                       "must be a URI such as %s://192.0.2.1:22", want);
    slen = (size_t)(sep - s);
    if (slen != 3 || strncmp(s, want, 3) != 0)
        return err_out(err, APP_ERR_ORIGIN_ADDRESS, "origin_direct",
                       "the scheme must be %s://, the transport of the protocol", want);
    if (parse_hostports(sep + 3, out, err) != 0) {
        memset(out, 0, sizeof(*out));
        return -EINVAL;
    }
    /* [::ffff:192.0.2.1] is an IPv4 origin: connect to it over AF_INET. */
    addr_unmap(&out->addr);
    if (!is_unicast(&out->addr)) {
        memset(out, 0, sizeof(*out));
        return err_out(err, APP_ERR_ORIGIN_ADDRESS, "origin_direct",
                       "not a usable origin: wildcard, multicast and broadcast addresses are "
                       "refused");
    }
    addr_set_port(&out->addr, out->port_lo);
    return 0;
}

static bool id_is_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > APP_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int parse_id(struct build *b)
{
    const json_t *v = member(b->in, "id");
    const char *s;

    if (b->flags & APP_F_API)
        return 0; /* read-only: the API names its apps itself */
    if (!v) {
        if (b->flags & APP_F_FILE)
            return fail(b, APP_ERR_INVALID, "id", "is required: give each app an id, e.g. \"ssh\"");
        return 0;
    }
    if (want_string(b, v, "id", &s) != 0)
        return -EINVAL;
    if (!id_is_valid(s))
        return fail(b, APP_ERR_INVALID, "id",
                    "must be 1 to %d characters of A-Z, a-z, 0-9, '.', '_' and '-'", APP_ID_MAX);
    snprintf(b->app->id, sizeof(b->app->id), "%s", s);
    return 0;
}

static int parse_protocol(struct build *b)
{
    const json_t *v = member(b->in, "protocol");
    struct app *a = b->app;

    if (!v)
        return fail(b, APP_ERR_PROTOCOL, "protocol", "is required, e.g. \"tcp/22\"");
    if (want_string(b, v, "protocol", &b->protocol) != 0)
        return -EINVAL;
    if (app_parse_protocol(b->protocol, &a->proto, &a->port_lo, &a->port_hi, b->err) != 0)
        return -EINVAL;
    if (a->proto == APP_UDP && !(b->flags & APP_F_UDP_BUILT))
        return fail(b, APP_ERR_UNSUPPORTED, "protocol", "UDP apps are not built yet");
    return 0;
}

/* Copies hostname <s> into <out>, lower case and without one trailing dot. Labels
 * are 1..63 of [a-z0-9-], not starting or ending with '-'; the whole is <= 253. */
static bool normalize_hostname(const char *s, char out[APP_DNS_NAME_MAX + 1])
{
    size_t len = strlen(s), label = 0;

    if (len > 0 && s[len - 1] == '.')
        len--;
    if (len == 0 || len > APP_DNS_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c == '.') {
            if (label == 0 || out[i - 1] == '-')
                return false;
            label = 0;
            out[i] = c;
            continue;
        }
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
        if ((c == '-' && label == 0) || ++label > 63)
            return false;
        out[i] = c;
    }
    if (label == 0 || out[len - 1] == '-')
        return false;
    out[len] = '\0';
    return true;
}

static int parse_dns(struct build *b)
{
    static const char *const fields[] = {"type", "name"};
    const json_t *dns = member(b->in, "dns"), *v;
    const char *s;
    char text[64];
    int i;

    if (!dns)
        return fail(b, APP_ERR_INVALID, "dns", "is required, e.g. {\"name\": \"ssh.example.com\"}");
    if (!json_is_object(dns))
        return fail(b, APP_ERR_INVALID, "dns", "must be an object");
    if (check_fields(b, dns, "dns.", fields, ARRAY_SIZE(fields)) != 0)
        return -EINVAL;

    v = member(dns, "name");
    if (!v)
        return fail(b, APP_ERR_INVALID, "dns.name", "is required");
    if (want_string(b, v, "dns.name", &s) != 0)
        return -EINVAL;
    if (!normalize_hostname(s, b->app->dns_name))
        return fail(b, APP_ERR_INVALID, "dns.name", "\"%s\" is not a valid hostname",
                    log_printable(s, text, sizeof(text)));

    b->app->dns_type = APP_DNS_CNAME;
    v = member(dns, "type");
    if (!v)
        return 0;
    if (want_string(b, v, "dns.type", &s) != 0)
        return -EINVAL;
    i = find_name(s, dns_type_names, ARRAY_SIZE(dns_type_names));
    if (i < 0)
        return fail(b, APP_ERR_INVALID, "dns.type", "must be CNAME or ADDRESS");
    b->app->dns_type = (enum app_dns_type)i;
    return 0;
}

/* True when <x> and <y> would take the same socket: the same address, or a wildcard
 * and any address of its family. */
static bool addrs_overlap(const struct sockaddr_storage *x, const struct sockaddr_storage *y)
{
    if (x->ss_family != y->ss_family)
        return false;
    return addr_is_any(x) || addr_is_any(y) || addr_ip_equal(x, y);
}

static int parse_static_ips(struct build *b, const json_t *ips)
{
    struct app *a = b->app;
    size_t n;

    if (!ips)
        return fail(b, APP_ERR_EDGE_IPS, "edge_ips.ips", "is required for static edge_ips");
    if (!json_is_array(ips))
        return fail(b, APP_ERR_INVALID, "edge_ips.ips", "must be an array of IP addresses");
    n = json_array_size(ips);
    if (n == 0 || n > APP_MAX_EDGE_IPS)
        return fail(b, APP_ERR_EDGE_IPS, "edge_ips.ips", "must hold 1 to %d addresses",
                    APP_MAX_EDGE_IPS);
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_storage *ip = &a->edge_ips[i];
        char field[FIELD_MAX], text[64];
        const char *s;

        snprintf(field, sizeof(field), "edge_ips.ips[%zu]", i);
        if (want_string(b, json_array_get(ips, i), field, &s) != 0)
            return -EINVAL;
        if (addr_parse_ip(s, ip) != 0)
            return fail(b, APP_ERR_EDGE_IPS, field, "\"%s\" is not an IP address",
                        log_printable(s, text, sizeof(text)));
        addr_unmap(ip);
        if (!is_unicast(ip) && !addr_is_any(ip))
            return fail(b, APP_ERR_EDGE_IPS, field,
                        "multicast and broadcast addresses cannot be edge addresses");
        for (size_t j = 0; j < i; j++) {
            if (addrs_overlap(&a->edge_ips[j], ip))
                return fail(b, APP_ERR_EDGE_IPS, field,
                            "overlaps edge_ips.ips[%zu] (the same address, or a wildcard)", j);
        }
        a->n_edge_ips++;
    }
    b->edge_ips_list = ips;
    return 0;
}

/* edge_ips, then whether dns.type fits it (Cloudflare 11004). */
static int parse_edge_ips(struct build *b)
{
    static const char *const fields[] = {"type", "connectivity", "ips"};
    const json_t *e = member(b->in, "edge_ips"), *v;
    struct app *a = b->app;
    const char *s;
    int i;

    a->edge_type = APP_EDGE_DYNAMIC;
    a->connectivity = APP_CONN_ALL;
    if (e) {
        if (!json_is_object(e))
            return fail(b, APP_ERR_INVALID, "edge_ips", "must be an object");
        if (check_fields(b, e, "edge_ips.", fields, ARRAY_SIZE(fields)) != 0)
            return -EINVAL;
        v = member(e, "type");
        if (!v)
            return fail(b, APP_ERR_INVALID, "edge_ips.type", "is required: dynamic or static");
        if (want_string(b, v, "edge_ips.type", &s) != 0)
            return -EINVAL;
        i = find_name(s, edge_type_names, ARRAY_SIZE(edge_type_names));
        if (i < 0)
            return fail(b, APP_ERR_INVALID, "edge_ips.type", "must be dynamic or static");
        a->edge_type = (enum app_edge_type)i;
        v = member(e, "connectivity");
        if (a->edge_type == APP_EDGE_STATIC) {
            if (v)
                return fail(b, APP_ERR_EDGE_IPS, "edge_ips.connectivity",
                            "is for dynamic edge_ips only");
            if (parse_static_ips(b, member(e, "ips")) != 0)
                return -EINVAL;
        } else {
            if (member(e, "ips"))
                return fail(b, APP_ERR_EDGE_IPS, "edge_ips.ips", "is for static edge_ips only");
            if (v) {
                if (want_string(b, v, "edge_ips.connectivity", &s) != 0)
                    return -EINVAL;
                i = find_name(s, conn_names, ARRAY_SIZE(conn_names));
                if (i < 0)
                    return fail(b, APP_ERR_INVALID, "edge_ips.connectivity",
                                "must be all, ipv4 or ipv6");
                a->connectivity = (enum app_connectivity)i;
            }
        }
    }
    if (a->edge_type == APP_EDGE_DYNAMIC && a->dns_type != APP_DNS_CNAME)
        return fail(b, APP_ERR_DNS_CONFIG, "dns.type",
                    "dynamic edge_ips need dns.type CNAME (ADDRESS goes with static edge_ips)");
    if (a->edge_type == APP_EDGE_STATIC && a->dns_type != APP_DNS_ADDRESS)
        return fail(b, APP_ERR_DNS_CONFIG, "dns.type", "static edge_ips need dns.type ADDRESS");
    return 0;
}

/* Origin ranges must be as long as the edge range; a single origin port is fine. */
static bool range_fits(const struct app *a, uint16_t lo, uint16_t hi)
{
    return lo == hi || hi - lo == a->port_hi - a->port_lo;
}

static int parse_origin_dns(struct build *b, const json_t *od)
{
    static const char *const fields[] = {"name", "ttl", "type"};
    const json_t *v;
    const char *s;

    if (!json_is_object(od))
        return fail(b, APP_ERR_INVALID, "origin_dns", "must be an object");
    if (check_fields(b, od, "origin_dns.", fields, ARRAY_SIZE(fields)) != 0)
        return -EINVAL;
    if ((v = member(od, "name")) && want_string(b, v, "origin_dns.name", &s) != 0)
        return -EINVAL;
    if ((v = member(od, "type")) && want_string(b, v, "origin_dns.type", &s) != 0)
        return -EINVAL;
    if ((v = member(od, "ttl")) && !json_is_integer(v))
        return fail(b, APP_ERR_INVALID, "origin_dns.ttl", "must be an integer");
    /* TODO(origin_dns): resolve through lb/resolve.c, then copy it into app->json. */
    return fail(b, APP_ERR_UNSUPPORTED, "origin_dns",
                "origin_dns is not built yet: use origin_direct");
}

static int parse_origins(struct build *b)
{
    const json_t *direct = member(b->in, "origin_direct");
    const json_t *dns = member(b->in, "origin_dns");
    struct app *a = b->app;
    size_t n;

    if (!direct == !dns)
        return fail(b, APP_ERR_ORIGIN_CONFIG, direct ? "origin_dns" : "origin_direct",
                    "The origin configuration is invalid: give exactly one of origin_direct or "
                    "origin_dns");
    if (dns)
        return parse_origin_dns(b, dns);
    if (!json_is_array(direct))
        return fail(b, APP_ERR_INVALID, "origin_direct", "must be an array of URIs");
    n = json_array_size(direct);
    if (n == 0 || n > APP_MAX_ORIGINS)
        return fail(b, APP_ERR_ORIGIN_ADDRESS, "origin_direct", "must hold 1 to %d origins",
                    APP_MAX_ORIGINS);
    for (size_t i = 0; i < n; i++) {
        struct app_origin *o = &a->origins[i];
        char field[FIELD_MAX];
        const char *s;

        snprintf(field, sizeof(field), "origin_direct[%zu]", i);
        if (want_string(b, json_array_get(direct, i), field, &s) != 0)
            return -EINVAL;
        if (app_parse_origin_uri(s, a->proto, o, b->err) != 0) {
            if (b->err)
                snprintf(b->err->field, sizeof(b->err->field), "%s", field);
            return -EINVAL;
        }
        if (!range_fits(a, o->port_lo, o->port_hi))
            return fail(b, APP_ERR_PORT_RANGE, field,
                        "the origin range has %d ports but the protocol's has %d: they must "
                        "match, or give a single origin port",
                        o->port_hi - o->port_lo + 1, a->port_hi - a->port_lo + 1);
        a->n_origins++;
    }
    b->origin_direct = direct;
    return 0;
}

/* origin_port goes with origin_dns; Terraform also sends it beside origin_direct, where
 * the URIs' ports win. It is checked and echoed either way. */
static int parse_origin_port(struct build *b)
{
    const json_t *v = member(b->in, "origin_port");
    uint16_t lo, hi;

    if (!v)
        return 0;
    if (json_is_integer(v)) {
        json_int_t p = json_integer_value(v);
        if (p < 1 || p > 65535)
            return fail(b, APP_ERR_INVALID, "origin_port", "must be 1 to 65535");
        lo = hi = (uint16_t)p;
    } else if (json_is_string(v)) {
        const char *s;
        if (want_string(b, v, "origin_port", &s) != 0)
            return -EINVAL;
        if (!parse_port_range(s, &lo, &hi))
            return fail(b, APP_ERR_INVALID, "origin_port",
                        "must be a port 1 to 65535 or a range such as \"3000-4000\"");
    } else {
        return fail(b, APP_ERR_INVALID, "origin_port",
                    "must be an integer or a string such as \"3000-4000\"");
    }
    if (!range_fits(b->app, lo, hi))
        return fail(b, APP_ERR_PORT_RANGE, "origin_port",
                    "the range has %d ports but the protocol's has %d", hi - lo + 1,
                    b->app->port_hi - b->app->port_lo + 1);
    b->origin_port = v;
    return 0;
}

/* proxy_protocol, with the legacy forms: a boolean (true = v1), and "spp": true. */
static int parse_pp(struct build *b)
{
    const json_t *v = member(b->in, "proxy_protocol"), *spp = member(b->in, "spp");
    const char *field = "proxy_protocol", *s;
    struct app *a = b->app;
    int i;

    a->pp = APP_PP_OFF;
    if (json_is_boolean(v)) {
        a->pp = json_is_true(v) ? APP_PP_V1 : APP_PP_OFF;
    } else if (v) {
        if (want_string(b, v, field, &s) != 0)
            return -EINVAL;
        i = find_name(s, pp_names, ARRAY_SIZE(pp_names));
        if (i < 0)
            return fail(b, APP_ERR_INVALID, field, "must be off, v1, v2 or simple");
        a->pp = (enum app_pp)i;
    }
    if (spp) {
        bool is_on = false;
        if (want_bool(b, spp, "spp", &is_on) != 0)
            return -EINVAL;
        if (is_on && (a->pp == APP_PP_V1 || a->pp == APP_PP_V2))
            return fail(b, APP_ERR_INVALID, "spp", "spp: true conflicts with proxy_protocol %s",
                        pp_names[a->pp]);
        if (is_on) {
            a->pp = APP_PP_SIMPLE;
            field = "spp";
        }
    }
    if (a->pp == APP_PP_V1 && a->proto == APP_UDP)
        return fail(b, APP_ERR_INVALID, field, "v1 is TCP only: use v2 or simple for UDP");
    if (a->pp == APP_PP_SIMPLE && a->proto == APP_TCP)
        return fail(b, APP_ERR_INVALID, field, "simple is UDP only: use v1 or v2 for TCP");
    if (a->pp == APP_PP_SIMPLE && !(b->flags & APP_F_UDP_BUILT))
        return fail(b, APP_ERR_UNSUPPORTED, field, "simple proxy protocol is not built yet");
    return 0;
}

static int parse_features(struct build *b)
{
    const json_t *v;
    bool is_on = false;
    int i;

    if (want_enum(b, "tls", tls_names, ARRAY_SIZE(tls_names), APP_TLS_OFF,
                  "off, flexible, full or strict", &i) != 0)
        return -EINVAL;
    b->app->tls = (enum app_tls)i;
    if (b->app->tls != APP_TLS_OFF)
        return fail(b, APP_ERR_UNSUPPORTED, "tls", "tls termination is not built yet: use off");

    if ((v = member(b->in, "ip_firewall")) && want_bool(b, v, "ip_firewall", &is_on) != 0)
        return -EINVAL;
    if (is_on)
        return fail(b, APP_ERR_UNSUPPORTED, "ip_firewall", "the IP firewall is not built yet");

    if ((v = member(b->in, "argo_smart_routing")) &&
        want_bool(b, v, "argo_smart_routing", &is_on) != 0)
        return -EINVAL;
    if (is_on)
        return fail(b, APP_ERR_UNSUPPORTED, "argo_smart_routing",
                    "Argo Smart Routing is not available in a self-hosted node");

    if (want_enum(b, "traffic_type", traffic_names, ARRAY_SIZE(traffic_names), 0,
                  "direct, http, https or worker", &i) != 0)
        return -EINVAL;
    if (i != 0)
        return fail(b, APP_ERR_UNSUPPORTED, "traffic_type",
                    "traffic_type %s is not built yet: use direct", traffic_names[i]);
    return 0;
}

/* Unknown fields first, then the fields we know but will not take. */
static int parse_fields(struct build *b)
{
    if (check_fields(b, b->in, "", app_fields, ARRAY_SIZE(app_fields)) != 0)
        return -EINVAL;
    if (member(b->in, "origin_worker_id"))
        return fail(b, APP_ERR_UNSUPPORTED, "origin_worker_id",
                    "Workers origins are not supported by prism");
    if (member(b->in, "virtual_network_id"))
        return fail(b, APP_ERR_UNSUPPORTED, "virtual_network_id",
                    "virtual networks are not supported by prism");
    return 0;
}

/* created_on / modified_on are read-only: checked, and kept unless the API will set them. */
static int parse_timestamps(struct build *b)
{
    const char *s;

    b->created_on = member(b->in, "created_on");
    b->modified_on = member(b->in, "modified_on");
    if (b->created_on && want_string(b, b->created_on, "created_on", &s) != 0)
        return -EINVAL;
    if (b->modified_on && want_string(b, b->modified_on, "modified_on", &s) != 0)
        return -EINVAL;
    if (b->flags & APP_F_API)
        b->created_on = b->modified_on = NULL;
    return 0;
}

static json_t *edge_ips_json(const struct build *b)
{
    const struct app *a = b->app;

    if (a->edge_type == APP_EDGE_STATIC)
        return json_pack("{s:s, s:o}", "type", edge_type_names[a->edge_type], "ips",
                         json_deep_copy(b->edge_ips_list));
    return json_pack("{s:s, s:s}", "type", edge_type_names[a->edge_type], "connectivity",
                     conn_names[a->connectivity]);
}

/* The normalized object; NULL when out of memory. */
static json_t *build_json(const struct build *b)
{
    const struct app *a = b->app;
    json_t *o = json_object();
    int rc = 0;

    if (!o)
        return NULL;
    if (a->id[0])
        rc |= json_object_set_new(o, "id", json_string(a->id));
    rc |= json_object_set_new(o, "protocol", json_string(b->protocol));
    rc |= json_object_set_new(
        o, "dns",
        json_pack("{s:s, s:s}", "type", dns_type_names[a->dns_type], "name", a->dns_name));
    rc |= json_object_set_new(o, "origin_direct", json_deep_copy(b->origin_direct));
    if (b->origin_port)
        rc |= json_object_set_new(o, "origin_port", json_deep_copy(b->origin_port));
    rc |= json_object_set_new(o, "proxy_protocol", json_string(pp_names[a->pp]));
    rc |= json_object_set_new(o, "tls", json_string(tls_names[a->tls]));
    rc |= json_object_set_new(o, "ip_firewall", json_boolean(a->ip_firewall));
    rc |= json_object_set_new(o, "argo_smart_routing", json_boolean(a->argo_smart_routing));
    rc |= json_object_set_new(o, "traffic_type", json_string(traffic_names[0]));
    rc |= json_object_set_new(o, "edge_ips", edge_ips_json(b));
    if (b->created_on)
        rc |= json_object_set_new(o, "created_on", json_deep_copy(b->created_on));
    if (b->modified_on)
        rc |= json_object_set_new(o, "modified_on", json_deep_copy(b->modified_on));
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

struct app *app_from_json(const json_t *obj, unsigned flags, struct app_error *err)
{
    struct build b = {.in = obj, .flags = flags, .err = err};

    if (!json_is_object(obj)) {
        fail(&b, APP_ERR_INVALID, "app", "an app must be a JSON object");
        return NULL;
    }
    b.app = calloc(1, sizeof(*b.app));
    if (!b.app) {
        fail(&b, ERR_INTERNAL, "app", "out of memory");
        return NULL;
    }
    if (parse_fields(&b) != 0 || parse_id(&b) != 0 || parse_protocol(&b) != 0 ||
        parse_dns(&b) != 0 || parse_edge_ips(&b) != 0 || parse_origins(&b) != 0 ||
        parse_origin_port(&b) != 0 || parse_pp(&b) != 0 || parse_features(&b) != 0 ||
        parse_timestamps(&b) != 0)
        goto fail;
    b.app->json = build_json(&b);
    if (!b.app->json) {
        fail(&b, ERR_INTERNAL, "app", "out of memory");
        goto fail;
    }
    return b.app;

fail:
    app_free(b.app);
    return NULL;
}

void app_free(struct app *app)
{
    if (!app)
        return;
    json_decref(app->json);
    free(app);
}

uint16_t app_origin_port(const struct app *app, const struct app_origin *o, uint16_t edge_port)
{
    if (o->port_lo == o->port_hi)
        return o->port_lo;
    BUG_ON(edge_port < app->port_lo || edge_port > app->port_hi);
    return (uint16_t)(o->port_lo + (edge_port - app->port_lo));
}

/* The list <app> takes its edge addresses from; dynamic apps filter it with edge_fits(). */
static const struct sockaddr_storage *
edge_list(const struct app *app, const struct sockaddr_storage *shared, size_t n_shared, size_t *n)
{
    if (app->edge_type == APP_EDGE_STATIC) {
        *n = app->n_edge_ips;
        return app->edge_ips;
    }
    *n = n_shared;
    return shared;
}

static bool edge_fits(const struct app *app, const struct sockaddr_storage *a)
{
    if (app->edge_type == APP_EDGE_STATIC || app->connectivity == APP_CONN_ALL)
        return true;
    return a->ss_family == (app->connectivity == APP_CONN_IPV4 ? AF_INET : AF_INET6);
}

size_t app_edge_addrs(const struct app *app, const struct sockaddr_storage *shared, size_t n_shared,
                      struct sockaddr_storage *out, size_t cap)
{
    const struct sockaddr_storage *list;
    size_t n_list, n = 0;

    list = edge_list(app, shared, n_shared, &n_list);
    for (size_t i = 0; i < n_list && n < cap; i++) {
        if (edge_fits(app, &list[i]))
            out[n++] = list[i];
    }
    return n;
}

/* Finds edge addresses of <x> and <y> that overlap; fills <*ax> and <*ay>. */
static bool find_overlap(const struct app *x, const struct app *y,
                         const struct sockaddr_storage *shared, size_t n_shared,
                         const struct sockaddr_storage **ax, const struct sockaddr_storage **ay)
{
    const struct sockaddr_storage *lx, *ly;
    size_t nx, ny;

    lx = edge_list(x, shared, n_shared, &nx);
    ly = edge_list(y, shared, n_shared, &ny);
    for (size_t i = 0; i < nx; i++) {
        if (!edge_fits(x, &lx[i]))
            continue;
        for (size_t j = 0; j < ny; j++) {
            if (edge_fits(y, &ly[j]) && addrs_overlap(&lx[i], &ly[j])) {
                *ax = &lx[i];
                *ay = &ly[j];
                return true;
            }
        }
    }
    return false;
}

/* Pairs are visited by the later app first (j outer), so a caller that checks a
 * growing prefix of a list learns which app added the conflict. Quadratic, with
 * cheap rejections first: 4096 apps are about 8 million port comparisons. */
int app_check_conflicts(struct app *const *apps, size_t n, const struct sockaddr_storage *shared,
                        size_t n_shared, struct app_error *err)
{
    for (size_t j = 1; j < n; j++) {
        const struct app *y = apps[j];

        for (size_t i = 0; i < j; i++) {
            const struct app *x = apps[i];
            const struct sockaddr_storage *ax, *ay;
            char tx[ADDR_STRLEN], ty[ADDR_STRLEN];
            unsigned port;

            if (x->proto != y->proto || x->port_hi < y->port_lo || y->port_hi < x->port_lo)
                continue;
            if (!find_overlap(x, y, shared, n_shared, &ax, &ay))
                continue;
            port = x->port_lo > y->port_lo ? x->port_lo : y->port_lo;
            addr_format_ip(ax, tx, sizeof(tx));
            addr_format_ip(ay, ty, sizeof(ty));
            if (addr_ip_equal(ax, ay))
                err_out(err, APP_ERR_PORT_CONFLICT, "protocol",
                        "%s port %u on %s is used by both app '%s' and app '%s'",
                        app_proto_name(y->proto), port, tx, x->id, y->id);
            else
                err_out(err, APP_ERR_PORT_CONFLICT, "protocol",
                        "%s port %u is used by both app '%s' on %s and app '%s' on %s",
                        app_proto_name(y->proto), port, x->id, tx, y->id, ty);
            return -EEXIST;
        }
    }
    return 0;
}

const char *app_proto_name(enum app_proto p)
{
    return p == APP_UDP ? "udp" : "tcp";
}

const char *app_pp_name(enum app_pp p)
{
    return (size_t)p < ARRAY_SIZE(pp_names) ? pp_names[p] : "off";
}
