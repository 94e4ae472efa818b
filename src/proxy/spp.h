/* src/proxy/spp.h: Cloudflare's Simple Proxy Protocol for UDP (38-byte header,
 * ../shared/spec/spectrum-docs.md "Simple Proxy Protocol Header"). */
#ifndef PROXY_SPP_H
#define PROXY_SPP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SPP_HEADER_LEN 38
#define SPP_MAGIC 0x56EC

enum spp_status {
    SPP_OK = 0,       /* valid header naming this client: payload at buf + SPP_HEADER_LEN */
    SPP_SHORT,        /* fewer than SPP_HEADER_LEN bytes */
    SPP_BAD_MAGIC,    /* the first two bytes are not 0x56EC */
    SPP_WRONG_CLIENT, /* a valid header for another client address or port */
};

/* Writes the header for a datagram from <client> received on <proxy> (the edge
 * address and port). IPv4 addresses are written IPv4-mapped. Pure. */
void spp_encode(const struct sockaddr_storage *client, const struct sockaddr_storage *proxy,
                uint8_t out[SPP_HEADER_LEN]);

/* Validates a reply from the origin: it must start with an SPP header whose client
 * address and port are <client>'s (IPv4 compared in mapped form). The proxy fields
 * are not checked. Pure: no I/O, no logging, no allocation, so it can be fuzzed. */
enum spp_status spp_check_reply(const uint8_t *buf, size_t len,
                                const struct sockaddr_storage *client);

#endif
