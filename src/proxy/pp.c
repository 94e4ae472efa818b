/* src/proxy/pp.c: the sender side of the PROXY protocol (haproxy
 * doc/proxy-protocol.txt, revision 2026/04/27; our notes in testing.md section 2).
 *
 * We tell an origin who the client was by writing one header before the first
 * payload byte. Both versions carry the same four facts: client address and port,
 * and the edge address and port the client reached.
 *
 *   v1 (text, spec 2.1):  "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
 *                         at most 104 bytes for TCP6, 107 for any v1 line
 *   v2 (binary, spec 2.2):
 *     0..11  signature 0D 0A 0D 0A 00 0D 0A 51 55 49 54 0A (holds a NUL)
 *     12     0x21: version 2, command PROXY
 *     13     0x11 TCP4, 0x12 UDP4, 0x21 TCP6, 0x22 UDP6
 *     14..15 length of what follows, big-endian: 12 (IPv4) or 36 (IPv6)
 *     16..   src addr, dst addr, src port, dst port, all in network order
 *
 * Families: a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d, so both
 * addresses are un-mapped first and a plain IPv4 client gets TCP4, not TCP6. If the
 * families still differ (one socket never reports that, but a caller may pass a
 * configured edge address rather than getsockname()'s), the IPv4 side is mapped into
 * IPv6, as haproxy's make_proxy_line_v1() does (tag v2.6.0): one header carries only
 * one family.
 *
 * Left out on purpose: the parser (we only send), LOCAL and UNKNOWN headers (health
 * checks are not sent through here yet), UNIX addresses, and TLVs. PP_V2_MAX_LEN
 * will grow when TLVs arrive.
 *
 * On any error nothing is written to <buf>: the header is built in full, or not at
 * all, so a caller can never send half of one. */
#include "proxy/pp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "core/bug.h"
#include "net/addr.h"

static const uint8_t v2_signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

#define V2_VER_CMD_PROXY 0x21
#define V2_FAM_INET 0x10
#define V2_FAM_INET6 0x20
#define V2_PROTO_STREAM 0x01
#define V2_PROTO_DGRAM 0x02
#define V2_INET_BLOCK_LEN 12  /* 2 x 4 address bytes + 2 x 2 port bytes */
#define V2_INET6_BLOCK_LEN 36 /* 2 x 16 address bytes + 2 x 2 port bytes */

/* Rewrites an AF_INET address as its IPv4-mapped AF_INET6 form, port kept. */
static void map_v4(struct sockaddr_storage *a)
{
    struct sockaddr_in6 v6;
    uint16_t port = addr_port(a);

    memset(&v6, 0, sizeof(v6));
    v6.sin6_family = AF_INET6;
    addr_to_v6bytes(a, v6.sin6_addr.s6_addr);
    memset(a, 0, sizeof(*a));
    memcpy(a, &v6, sizeof(v6));
    addr_set_port(a, port);
}

/* Un-maps both addresses, then gives them one family. Returns that family, or
 * -EINVAL when either is neither AF_INET nor AF_INET6. */
static int same_family(struct sockaddr_storage *src, struct sockaddr_storage *dst)
{
    addr_unmap(src);
    addr_unmap(dst);
    if ((src->ss_family != AF_INET && src->ss_family != AF_INET6) ||
        (dst->ss_family != AF_INET && dst->ss_family != AF_INET6))
        return -EINVAL;
    if (src->ss_family == AF_INET && dst->ss_family == AF_INET6) {
        map_v4(src);
    } else if (src->ss_family == AF_INET6 && dst->ss_family == AF_INET) {
        map_v4(dst);
    }
    return src->ss_family;
}

static const void *ip_bytes(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return &((const struct sockaddr_in *)a)->sin_addr;
    return &((const struct sockaddr_in6 *)a)->sin6_addr;
}

static int encode_v1(int family, const struct sockaddr_storage *src,
                     const struct sockaddr_storage *dst, uint8_t *buf, size_t len)
{
    /* One byte more than any line, for the NUL snprintf() insists on writing. */
    char line[PP_V1_MAX_LEN + 1];
    char src_ip[INET6_ADDRSTRLEN], dst_ip[INET6_ADDRSTRLEN];
    int n;

    /* Both buffers hold any address of either family, and the longest line
     * (TCP6) is 104 bytes, so none of these can fail; if one did, it is our bug. */
    BUG_ON(!inet_ntop(family, ip_bytes(src), src_ip, sizeof(src_ip)));
    BUG_ON(!inet_ntop(family, ip_bytes(dst), dst_ip, sizeof(dst_ip)));
    n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
                 family == AF_INET ? "TCP4" : "TCP6", src_ip, dst_ip, addr_port(src),
                 addr_port(dst));
    BUG_ON(n < 0 || (size_t)n >= sizeof(line));
    if ((size_t)n > len)
        return -ENOSPC;
    memcpy(buf, line, (size_t)n); /* no NUL: the header is bytes, not a string */
    return n;
}

static uint8_t *put_port(uint8_t *p, const struct sockaddr_storage *a)
{
    uint16_t port = addr_port(a);

    p[0] = (uint8_t)(port >> 8);
    p[1] = (uint8_t)(port & 0xff);
    return p + 2;
}

static int encode_v2(int family, bool is_dgram, const struct sockaddr_storage *src,
                     const struct sockaddr_storage *dst, uint8_t *buf, size_t len)
{
    size_t ip_len = family == AF_INET ? 4 : 16;
    size_t block_len = family == AF_INET ? V2_INET_BLOCK_LEN : V2_INET6_BLOCK_LEN;
    uint8_t *p = buf;

    if (len < PP_V2_HDR_LEN + block_len)
        return -ENOSPC;
    memcpy(p, v2_signature, sizeof(v2_signature));
    p += sizeof(v2_signature);
    *p++ = V2_VER_CMD_PROXY;
    *p++ = (uint8_t)((family == AF_INET ? V2_FAM_INET : V2_FAM_INET6) |
                     (is_dgram ? V2_PROTO_DGRAM : V2_PROTO_STREAM));
    *p++ = (uint8_t)(block_len >> 8);
    *p++ = (uint8_t)(block_len & 0xff);
    memcpy(p, ip_bytes(src), ip_len);
    p += ip_len;
    memcpy(p, ip_bytes(dst), ip_len);
    p += ip_len;
    p = put_port(p, src);
    p = put_port(p, dst);
    return (int)(p - buf);
}

int pp_encode(int version, bool is_dgram, const struct sockaddr_storage *src,
              const struct sockaddr_storage *dst, uint8_t *buf, size_t len)
{
    struct sockaddr_storage s = *src, d = *dst; /* un-mapping must not touch the caller's */
    int family;

    if (version != 1 && version != 2)
        return -EINVAL;
    if (version == 1 && is_dgram) /* v1 knows only TCP4, TCP6 and UNKNOWN */
        return -EINVAL;
    family = same_family(&s, &d);
    if (family < 0)
        return family;
    if (version == 1)
        return encode_v1(family, &s, &d, buf, len);
    return encode_v2(family, is_dgram, &s, &d, buf, len);
}
