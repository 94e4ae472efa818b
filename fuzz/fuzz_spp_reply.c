/* fuzz/fuzz_spp_reply.c: spp_check_reply() on arbitrary origin replies.
 *
 * The first CLIENT_LEN bytes pick the client the flow belongs to; the rest is the
 * reply datagram, ending where the fuzzer's buffer ends so ASan sees any over-read.
 * The verdict is recomputed here from the 38-byte layout, without spp.c or addr.c,
 * and must match exactly. Above all: SPP_OK only for a reply that starts with the
 * magic, this client's mapped address and its port, and SPP_SHORT for any reply
 * under 38 bytes. Each run also checks that the header spp_encode() writes for the
 * client is the documented layout byte for byte and passes the check, so the SPP_OK
 * path is exercised on every input.
 *
 * Input layout (inputs shorter than CLIENT_LEN are padded with zeros, reply empty):
 *   0      bits 0-1 client kind: 0 AF_INET, 1 AF_INET6, 2 AF_INET6 ::ffff:a.b.c.d,
 *          3 no IP family (bit 2: AF_UNIX, else AF_UNSPEC)
 *   1..16  address bytes (kinds 0 and 2 use the first 4)
 *   17..18 port, big-endian
 *   19..   the reply */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "proxy/spp.h"

#define CLIENT_LEN 19

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); /* for -Wmissing-prototypes */

static void trap_unless(bool ok)
{
    if (!ok) {
        __builtin_trap();
    }
}

/* Fills <ss> and the 16 bytes and port a reply must carry; false if no IP family. */
static bool build_client(const uint8_t *in, struct sockaddr_storage *ss, uint8_t want[16],
                         uint16_t *port)
{
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    memset(want, 0, 16);
    *port = (uint16_t)((in[17] << 8) | in[18]);
    switch (in[0] & 3) {
    case 0:
        v4->sin_family = AF_INET;
        memcpy(&v4->sin_addr, in + 1, 4);
        v4->sin_port = htons(*port);
        want[10] = 0xff;
        want[11] = 0xff;
        memcpy(want + 12, in + 1, 4);
        return true;
    case 1:
        v6->sin6_family = AF_INET6;
        memcpy(&v6->sin6_addr, in + 1, 16);
        v6->sin6_port = htons(*port);
        memcpy(want, in + 1, 16);
        return true;
    case 2:
        v6->sin6_family = AF_INET6;
        v6->sin6_addr.s6_addr[10] = 0xff;
        v6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&v6->sin6_addr.s6_addr[12], in + 1, 4);
        v6->sin6_port = htons(*port);
        want[10] = 0xff;
        want[11] = 0xff;
        memcpy(want + 12, in + 1, 4);
        return true;
    default:
        ss->ss_family = (in[0] & 4) ? AF_UNIX : AF_UNSPEC;
        return false;
    }
}

static enum spp_status expected(const uint8_t *r, size_t len, bool has_ip, const uint8_t want[16],
                                uint16_t port)
{
    if (len < 38)
        return SPP_SHORT;
    if (r[0] != 0x56 || r[1] != 0xEC)
        return SPP_BAD_MAGIC;
    if (!has_ip || memcmp(r + 2, want, 16) != 0 || r[34] != (port >> 8) || r[35] != (port & 0xff))
        return SPP_WRONG_CLIENT;
    return SPP_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t in[CLIENT_LEN] = {0}, want[16], own[SPP_HEADER_LEN];
    struct sockaddr_storage client, proxy;
    const uint8_t *reply = data + (size < CLIENT_LEN ? size : CLIENT_LEN);
    size_t len = size < CLIENT_LEN ? 0 : size - CLIENT_LEN;
    enum spp_status got;
    uint16_t port;
    bool has_ip;

    memcpy(in, data, size < CLIENT_LEN ? size : CLIENT_LEN);
    has_ip = build_client(in, &client, want, &port);
    got = spp_check_reply(reply, len, &client);

    if (got == SPP_OK) { /* the property that keeps one client out of another's flow */
        trap_unless(len >= 38 && reply[0] == 0x56 && reply[1] == 0xEC && has_ip &&
                    memcmp(reply + 2, want, 16) == 0 && reply[34] == (port >> 8) &&
                    reply[35] == (port & 0xff));
    }
    if (len < 38) {
        trap_unless(got == SPP_SHORT);
    }
    trap_unless(got == expected(reply, len, has_ip, want, port));

    /* Our own header for this client must be the layout byte for byte, and pass
     * whatever proxy address it names. */
    if (has_ip) {
        uint8_t layout[SPP_HEADER_LEN] = {0x56, 0xEC};
        uint16_t proxy_port = (uint16_t)~port;

        memset(&proxy, 0, sizeof(proxy));
        proxy.ss_family = AF_INET6;
        memcpy(&((struct sockaddr_in6 *)&proxy)->sin6_addr, in + 1, 16);
        ((struct sockaddr_in6 *)&proxy)->sin6_port = htons(proxy_port);
        memcpy(layout + 2, want, 16);
        memcpy(layout + 18, in + 1, 16);
        layout[34] = (uint8_t)(port >> 8);
        layout[35] = (uint8_t)(port & 0xff);
        layout[36] = (uint8_t)(proxy_port >> 8);
        layout[37] = (uint8_t)(proxy_port & 0xff);
        spp_encode(&client, &proxy, own);
        trap_unless(memcmp(own, layout, sizeof(own)) == 0);
        trap_unless(spp_check_reply(own, sizeof(own), &client) == SPP_OK);
    }
    return 0;
}
