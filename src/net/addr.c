/* src/net/addr.c: parsing and formatting of IP addresses and ports.
 *
 * Everything here is pure (no I/O, no allocation), so the parsers can be fuzzed as
 * they are. We accept only the canonical inet_pton() forms: no zone ids, no
 * hostnames; names are resolved elsewhere. */
#include "net/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int addr_parse_ip(const char *s, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;

    if (inet_pton(AF_INET, s, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        return 0;
    }
    return -EINVAL;
}

static int parse_port(const char *s, uint16_t *port)
{
    unsigned long v = 0;

    if (*s < '1' || *s > '9') /* no sign, no leading zero, not empty */
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > 65535)
            return -EINVAL;
    }
    *port = (uint16_t)v;
    return 0;
}

int addr_parse_hostport(const char *s, struct sockaddr_storage *out)
{
    char host[INET6_ADDRSTRLEN];
    const char *colon;
    size_t hlen;
    uint16_t port;

    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':')
            return -EINVAL;
        hlen = (size_t)(end - s - 1);
        if (hlen == 0 || hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        colon = end + 1;
        if (!strchr(host, ':')) /* brackets are for IPv6 only */
            return -EINVAL;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -EINVAL;
        hlen = (size_t)(colon - s);
        if (hlen == 0 || hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, s, hlen);
        host[hlen] = '\0';
        if (strchr(host, ':')) /* an IPv6 address needs brackets */
            return -EINVAL;
    }
    if (parse_port(colon + 1, &port) != 0)
        return -EINVAL;
    if (addr_parse_ip(host, out) != 0)
        return -EINVAL;
    addr_set_port(out, port);
    return 0;
}

void addr_unmap(struct sockaddr_storage *a)
{
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)a;
    struct sockaddr_in v4;

    if (a->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr))
        return;
    memset(&v4, 0, sizeof(v4));
    v4.sin_family = AF_INET;
    v4.sin_port = v6->sin6_port;
    memcpy(&v4.sin_addr, &v6->sin6_addr.s6_addr[12], 4);
    memset(a, 0, sizeof(*a));
    memcpy(a, &v4, sizeof(v4));
}

int addr_format_ip(const struct sockaddr_storage *a, char *buf, size_t len)
{
    struct sockaddr_storage tmp = *a;
    const void *src;

    addr_unmap(&tmp);
    if (tmp.ss_family == AF_INET)
        src = &((const struct sockaddr_in *)&tmp)->sin_addr;
    else if (tmp.ss_family == AF_INET6)
        src = &((const struct sockaddr_in6 *)&tmp)->sin6_addr;
    else
        return snprintf(buf, len, "unknown") >= (int)len ? -ENOSPC : 7;
    if (!inet_ntop(tmp.ss_family, src, buf, (socklen_t)len))
        return -ENOSPC;
    return (int)strlen(buf);
}

int addr_format(const struct sockaddr_storage *a, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    struct sockaddr_storage tmp = *a;
    int n;

    addr_unmap(&tmp);
    if (addr_format_ip(&tmp, ip, sizeof(ip)) < 0)
        return -ENOSPC;
    if (tmp.ss_family == AF_INET6)
        n = snprintf(buf, len, "[%s]:%u", ip, addr_port(&tmp));
    else
        n = snprintf(buf, len, "%s:%u", ip, addr_port(&tmp));
    return (n < 0 || (size_t)n >= len) ? -ENOSPC : n;
}

uint16_t addr_port(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    if (a->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
    return 0;
}

void addr_set_port(struct sockaddr_storage *a, uint16_t port)
{
    if (a->ss_family == AF_INET)
        ((struct sockaddr_in *)a)->sin_port = htons(port);
    else if (a->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)a)->sin6_port = htons(port);
}

socklen_t addr_len(const struct sockaddr_storage *a)
{
    return a->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

bool addr_ip_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
    return false;
}

bool addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return addr_ip_equal(a, b) && addr_port(a) == addr_port(b);
}

bool addr_is_any(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (a->ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)a)->sin6_addr);
    return false;
}

bool addr_is_loopback(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127;
    if (a->ss_family == AF_INET6) {
        const struct in6_addr *ip = &((const struct sockaddr_in6 *)a)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(ip) || (IN6_IS_ADDR_V4MAPPED(ip) && ip->s6_addr[12] == 127);
    }
    return false;
}

void addr_to_v6bytes(const struct sockaddr_storage *a, uint8_t out[16])
{
    memset(out, 0, 16);
    if (a->ss_family == AF_INET) {
        out[10] = 0xff;
        out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)a)->sin_addr, 4);
    } else if (a->ss_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)a)->sin6_addr, 16);
    }
}
