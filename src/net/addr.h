/* src/net/addr.h: IP addresses and ports in either family (struct sockaddr_storage). */
#ifndef NET_ADDR_H
#define NET_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Longest text addr_format() writes: "[" IPv6 "]:" port, plus NUL. */
#define ADDR_STRLEN (INET6_ADDRSTRLEN + 8)

/* Parses a bare IPv4 or IPv6 literal (no brackets, no port) into <out> with port 0.
 * Returns 0, or -EINVAL when <s> is not exactly one address. */
int addr_parse_ip(const char *s, struct sockaddr_storage *out);

/* Parses "IPv4:port" or "[IPv6]:port" (port 1..65535). Returns 0 or -EINVAL. */
int addr_parse_hostport(const char *s, struct sockaddr_storage *out);

/* Writes the address alone ("192.0.2.1", "2001:db8::1") into <buf>. An IPv4-mapped
 * IPv6 address is written as IPv4. Returns the length written, or -ENOSPC. */
int addr_format_ip(const struct sockaddr_storage *a, char *buf, size_t len);

/* Writes "192.0.2.1:80" or "[2001:db8::1]:80". Returns the length, or -ENOSPC. */
int addr_format(const struct sockaddr_storage *a, char *buf, size_t len);

/* Turns an IPv4-mapped IPv6 address (::ffff:a.b.c.d) into AF_INET, port kept. */
void addr_unmap(struct sockaddr_storage *a);

uint16_t addr_port(const struct sockaddr_storage *a);
void addr_set_port(struct sockaddr_storage *a, uint16_t port);
socklen_t addr_len(const struct sockaddr_storage *a);

/* True when both have the same family and address; ports are ignored. */
bool addr_ip_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* True when both have the same family, address and port. */
bool addr_equal(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* True for the wildcard addresses 0.0.0.0 and ::. */
bool addr_is_any(const struct sockaddr_storage *a);

/* True for loopback addresses: 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104 (the ones
 * the kernel's tcp_tw_reuse = 2 treats as loopback). */
bool addr_is_loopback(const struct sockaddr_storage *a);

/* Copies the address as 16 bytes, IPv4 as IPv4-mapped IPv6 (RFC 4291 2.5.5.2). */
void addr_to_v6bytes(const struct sockaddr_storage *a, uint8_t out[16]);

#endif
