/* src/proxy/app.h: Spectrum applications: the Cloudflare v4 app object, validated
 * and compiled into the form the data plane uses.
 *
 * One validator serves the node configuration file and (later) the API, so both
 * accept and reject exactly the same objects with the same Cloudflare error codes. */
#ifndef PROXY_APP_H
#define PROXY_APP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define APP_ID_MAX 64 /* file ids: [A-Za-z0-9._-]{1,64}; API ids are 32 lowercase hex */
#define APP_DNS_NAME_MAX 253
#define APP_MAX_ORIGINS 64 /* origin_direct entries per app */
#define APP_MAX_EDGE_IPS 16

/* Error codes (Cloudflare's where it has one, see ../shared/notes/cloudflare-api.md 2.4). */
enum app_err_code {
    APP_ERR_UNKNOWN_FIELD = 10012,  /* Cloudflare: unknown field in request JSON */
    APP_ERR_ORIGIN_CONFIG = 11000,  /* not exactly one of origin_direct / origin_dns */
    APP_ERR_ORIGIN_DNS = 11001,     /* bad origin_dns object */
    APP_ERR_ORIGIN_ADDRESS = 11002, /* unparsable origin_direct entry, unbracketed IPv6 */
    APP_ERR_DNS_CONFIG = 11004,     /* dns.type does not fit edge_ips */
    APP_ERR_PROTOCOL = 11101,       /* prism: bad "protocol" */
    APP_ERR_PORT_RANGE = 11102,     /* prism: origin port range length != edge range length */
    APP_ERR_PORT_CONFLICT = 11103,  /* prism: edge address and port already taken */
    APP_ERR_INVALID = 11104,        /* prism: wrong type or value for a field */
    APP_ERR_UNSUPPORTED = 11105,    /* prism: feature not built (yet) or not available */
    APP_ERR_EDGE_IPS = 11106,       /* prism: bad edge_ips (static address not bindable, ...) */
};

struct app_error {
    int code;          /* enum app_err_code */
    char field[96];    /* JSON path of the offending field: "origin_direct[1]", "dns.name" */
    char message[256]; /* a sentence for a human, naming the reason */
};

enum app_proto { APP_TCP = 0, APP_UDP = 1 };
enum app_pp { APP_PP_OFF = 0, APP_PP_V1, APP_PP_V2, APP_PP_SIMPLE };
enum app_tls { APP_TLS_OFF = 0, APP_TLS_FLEXIBLE, APP_TLS_FULL, APP_TLS_STRICT };
enum app_dns_type { APP_DNS_CNAME = 0, APP_DNS_ADDRESS };
enum app_edge_type { APP_EDGE_DYNAMIC = 0, APP_EDGE_STATIC };
enum app_connectivity { APP_CONN_ALL = 0, APP_CONN_IPV4, APP_CONN_IPV6 };

struct app_origin {
    struct sockaddr_storage addr; /* port set to port_lo */
    uint16_t port_lo, port_hi;    /* equal for a single port; same length as the edge range */
};

/* Immutable once built; shared by snapshots and live connections. */
struct app {
    char id[APP_ID_MAX + 1];
    enum app_proto proto;
    uint16_t port_lo, port_hi; /* edge ports, inclusive */
    enum app_dns_type dns_type;
    char dns_name[APP_DNS_NAME_MAX + 1]; /* lower case, no trailing dot */
    struct app_origin origins[APP_MAX_ORIGINS];
    size_t n_origins;
    enum app_pp pp;
    enum app_tls tls;
    bool ip_firewall;
    bool argo_smart_routing;
    enum app_edge_type edge_type;
    enum app_connectivity connectivity;                 /* dynamic only */
    struct sockaddr_storage edge_ips[APP_MAX_EDGE_IPS]; /* static only */
    size_t n_edge_ips;
    bool is_file_managed; /* came from the node configuration file */
    json_t *json;         /* owned: the normalized v4 object, every field with its default */
};

/* Validation modes. */
#define APP_F_FILE 0x1      /* from the node config: "id" is required and read from the object */
#define APP_F_API 0x2       /* from the API: "id", "created_on", "modified_on" are read-only */
#define APP_F_UDP_BUILT 0x4 /* UDP apps and proxy_protocol "simple" are available */

/* Validates <obj> (a Spectrum app object) and compiles it. Rejects unknown fields,
 * wrong types, bad values and fields whose feature is not built, filling <err> with
 * a code, the field's path and a reason. The returned app holds a normalized copy
 * of the object in app->json (legacy "proxy_protocol": true/false and "spp" folded
 * into the string form, defaults filled in). Returns NULL on error. */
struct app *app_from_json(const json_t *obj, unsigned flags, struct app_error *err);

void app_free(struct app *app);

/* Parses "tcp/22", "udp/1000-2000" (a bare name like "ssh" is also accepted from
 * Spectrum's shortcut list: ssh=tcp/22, rdp=tcp/3389, minecraft=tcp/25565).
 * Pure. Returns 0, or -EINVAL with <err> filled. */
int app_parse_protocol(const char *s, enum app_proto *proto, uint16_t *lo, uint16_t *hi,
                       struct app_error *err);

/* Parses one origin_direct URI ("tcp://192.0.2.1:22", "udp://[2001:db8::1]:53",
 * "tcp://192.0.2.1:3000-4000") whose scheme must match <proto>. Pure. Returns 0, or
 * -EINVAL with <err> (code 11002) filled. */
int app_parse_origin_uri(const char *s, enum app_proto proto, struct app_origin *out,
                         struct app_error *err);

/* The origin address for a connection that reached edge port <edge_port> through
 * origin <o>: port ranges map by offset (edge lo + N -> origin lo + N). */
uint16_t app_origin_port(const struct app *app, const struct app_origin *o, uint16_t edge_port);

/* Fills <out> with the addresses <app> listens on, given the node's shared edge
 * addresses: static edge_ips as they are; dynamic ones filtered by connectivity.
 * Returns how many (at most <cap>). */
size_t app_edge_addrs(const struct app *app, const struct sockaddr_storage *shared, size_t n_shared,
                      struct sockaddr_storage *out, size_t cap);

/* Checks that no two of <apps> share a transport, edge address and port (a wildcard
 * address overlaps every address of its family). Returns 0, or -EEXIST with <err>
 * (code 11103) naming both apps, the address and the port. */
int app_check_conflicts(struct app *const *apps, size_t n, const struct sockaddr_storage *shared,
                        size_t n_shared, struct app_error *err);

const char *app_proto_name(enum app_proto p); /* "tcp", "udp" */
const char *app_pp_name(enum app_pp p);       /* "off", "v1", "v2", "simple" */

#endif
