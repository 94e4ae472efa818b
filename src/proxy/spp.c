/* src/proxy/spp.c: Cloudflare's Simple Proxy Protocol for UDP (../shared/spec/
 * spectrum-docs.md "Simple Proxy Protocol Header"; our notes in testing.md 2.6).
 *
 * UDP has no connection to hang a PROXY v2 header on, so every datagram we relay to
 * the origin carries a fixed 38-byte header, and every reply must carry one back:
 *
 *   0..1    magic 0x56EC
 *   2..17   client address, 16 bytes (IPv4 as ::ffff:a.b.c.d, RFC 4291 2.5.5.2)
 *   18..33  proxy address, 16 bytes: where the edge received the datagram
 *   34..35  client port
 *   36..37  proxy port
 *   38..    payload
 *
 * All fields are in network byte order. The reply check is what stops one client's
 * flow from injecting datagrams into another's: an origin reply must name the very
 * client the flow belongs to, or it is dropped. The proxy fields of a reply are not
 * checked; the flow already knows which edge address it answers from.
 *
 * Left out on purpose: payload size limits (the flow checks them against the
 * datagram it builds) and stripping the header (the payload is simply at
 * buf + SPP_HEADER_LEN). */
#include "proxy/spp.h"

#include <string.h>
#include <sys/socket.h>

#include "net/addr.h"

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)(v & 0xff);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

void spp_encode(const struct sockaddr_storage *client, const struct sockaddr_storage *proxy,
                uint8_t out[SPP_HEADER_LEN])
{
    put_u16(out, SPP_MAGIC);
    addr_to_v6bytes(client, out + 2);
    addr_to_v6bytes(proxy, out + 18);
    put_u16(out + 34, addr_port(client));
    put_u16(out + 36, addr_port(proxy));
}

enum spp_status spp_check_reply(const uint8_t *buf, size_t len,
                                const struct sockaddr_storage *client)
{
    uint8_t want[16];

    if (len < SPP_HEADER_LEN)
        return SPP_SHORT;
    if (get_u16(buf) != SPP_MAGIC)
        return SPP_BAD_MAGIC;
    /* A client without an IP family has no address a reply could name; without this,
     * its all-zero bytes would match a reply of zeros. */
    if (client->ss_family != AF_INET && client->ss_family != AF_INET6)
        return SPP_WRONG_CLIENT;
    addr_to_v6bytes(client, want);
    if (memcmp(buf + 2, want, sizeof(want)) != 0 || get_u16(buf + 34) != addr_port(client))
        return SPP_WRONG_CLIENT;
    return SPP_OK;
}
