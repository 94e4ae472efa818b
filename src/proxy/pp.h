/* src/proxy/pp.h: PROXY protocol v1/v2 headers, sender side
 * (haproxy doc/proxy-protocol.txt, revision 2026/04/27). */
#ifndef PROXY_PP_H
#define PROXY_PP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define PP_V1_MAX_LEN 107 /* worst case "PROXY UNKNOWN ..." line with CRLF, no NUL */
#define PP_V2_HDR_LEN 16  /* signature, ver/cmd, fam/proto, length */
#define PP_V2_MAX_LEN (PP_V2_HDR_LEN + 36)
#define PP_MAX_LEN PP_V1_MAX_LEN /* a buffer this large holds any header we send */

/* Writes the PROXY header for a connection from <src> (the client) that reached
 * <dst> (the edge address and port it connected to) into <buf>.
 * <version> is 1 or 2; <is_dgram> selects DGRAM (UDP) in v2 and is invalid with v1.
 * IPv4-mapped IPv6 addresses are un-mapped first, so a dual-stack peer is TCP4/INET.
 * If the families still differ, the IPv4 one is mapped into IPv6 (TCP6/INET6).
 * Pure: no I/O, no allocation. Returns the header length, -EINVAL for a bad
 * version/transport/family, or -ENOSPC when <len> is too small. On any error
 * nothing is written to <buf>, so half a header can never be sent. */
int pp_encode(int version, bool is_dgram, const struct sockaddr_storage *src,
              const struct sockaddr_storage *dst, uint8_t *buf, size_t len);

#endif
