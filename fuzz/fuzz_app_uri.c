/* fuzz/fuzz_app_uri.c: app_parse_protocol() and app_parse_origin_uri().
 *
 * The input is "PROTOCOL\nURI": the protocol string, a newline, and an origin URI.
 * When the protocol does not parse, the first byte picks the transport the URI is
 * checked against. Traps when an accepted value breaks an invariant: ports within
 * 1..65535 with lo <= hi, an address family set, and a value that, written back
 * out in canonical form and parsed again, gives the same result. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/addr.h"
#include "proxy/app.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* for -Wmissing-prototypes */

static void check_protocol(enum app_proto proto, uint16_t lo, uint16_t hi)
{
    struct app_error err;
    enum app_proto p2;
    uint16_t lo2, hi2;
    char text[32];

    if ((proto != APP_TCP && proto != APP_UDP) || lo < 1 || lo > hi)
        __builtin_trap();
    if (lo == hi)
        snprintf(text, sizeof(text), "%s/%u", app_proto_name(proto), lo);
    else
        snprintf(text, sizeof(text), "%s/%u-%u", app_proto_name(proto), lo, hi);
    if (app_parse_protocol(text, &p2, &lo2, &hi2, &err) != 0 || p2 != proto || lo2 != lo ||
        hi2 != hi)
        __builtin_trap();
}

static void check_origin(enum app_proto proto, const struct app_origin *o)
{
    char addr[ADDR_STRLEN], text[ADDR_STRLEN + 32];
    struct app_origin o2;
    struct app_error err;
    int n;

    if (o->addr.ss_family != AF_INET && o->addr.ss_family != AF_INET6)
        __builtin_trap();
    if (o->port_lo < 1 || o->port_lo > o->port_hi || addr_port(&o->addr) != o->port_lo)
        __builtin_trap();
    if (addr_is_any(&o->addr))
        __builtin_trap(); /* the parser refuses wildcards */
    if (addr_format(&o->addr, addr, sizeof(addr)) < 0)
        __builtin_trap();
    if (o->port_lo == o->port_hi)
        n = snprintf(text, sizeof(text), "%s://%s", app_proto_name(proto), addr);
    else
        n = snprintf(text, sizeof(text), "%s://%s-%u", app_proto_name(proto), addr, o->port_hi);
    if (n < 0 || (size_t)n >= sizeof(text))
        __builtin_trap();
    if (app_parse_origin_uri(text, proto, &o2, &err) != 0)
        __builtin_trap();
    if (o2.port_lo != o->port_lo || o2.port_hi != o->port_hi ||
        memcmp(&o2.addr, &o->addr, sizeof(o->addr)) != 0)
        __builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1), *uri;
    struct app_error err;
    struct app_origin o;
    enum app_proto proto;
    uint16_t lo, hi;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    uri = strchr(buf, '\n');
    if (uri)
        *uri++ = '\0';
    else
        uri = buf + strlen(buf);

    if (app_parse_protocol(buf, &proto, &lo, &hi, &err) == 0)
        check_protocol(proto, lo, hi);
    else if (err.code != APP_ERR_PROTOCOL)
        __builtin_trap();
    else
        proto = (size > 0 && (data[0] & 1)) ? APP_UDP : APP_TCP;
    if (app_parse_origin_uri(uri, proto, &o, &err) == 0)
        check_origin(proto, &o);
    else if (err.code != APP_ERR_ORIGIN_ADDRESS)
        __builtin_trap();
    free(buf);
    return 0;
}
