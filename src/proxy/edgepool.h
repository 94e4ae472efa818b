/* src/proxy/edgepool.h: edge address pools (DESIGN.md section 3): with edge.pool_v4
 * and/or edge.pool_v6, every DNS name of a dynamic app gets its own addresses.
 *
 * Pure, apart from edgepool_check_bindable(): an edgepool is an immutable map from
 * names to addresses, and each configuration change builds the next one from the
 * previous, so names keep their addresses for as long as they exist. */
#ifndef PROXY_EDGEPOOL_H
#define PROXY_EDGEPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define EDGEPOOL_V4_PREFIX_MIN 8
#define EDGEPOOL_V4_PREFIX_MAX 30 /* two usable addresses besides network and broadcast */
#define EDGEPOOL_V6_PREFIX_MIN 16
#define EDGEPOOL_V6_PREFIX_MAX 120

struct edgepool_cidr {
    int family;      /* AF_INET or AF_INET6 */
    uint8_t net[16]; /* network address, host bits zero; IPv4 in the first 4 bytes */
    unsigned prefix; /* bits */
};

/* One DNS name and the families it needs. Requests may repeat a name (apps that
 * share it): the families are merged. */
struct edgepool_req {
    const char *name; /* borrowed; compared as given (app names are lower case) */
    bool wants_v4, wants_v6;
};

struct edgepool;

/* Parses "127.10.0.0/16" or "fd00:abcd::/64" of <family>: the address must be of
 * that family, the prefix within EDGEPOOL_*_PREFIX_MIN..MAX and the host bits zero.
 * Pure. Returns 0, or -EINVAL with a sentence in <err> (no field name). */
int edgepool_parse_cidr(const char *s, int family, struct edgepool_cidr *out, char *err,
                        size_t errlen);

/* Writes "127.10.0.0/16" into <buf>. */
void edgepool_format_cidr(const struct edgepool_cidr *c, char *buf, size_t len);

/* Builds the assignment for <reqs> from the pools <v4> and <v6> (either may be
 * NULL: a family without a pool gets no addresses). A name that <prev> (may be NULL)
 * gave an address still inside the same pool keeps it. A new name gets the
 * address its hash picks (FNV-1a of the name and family), or the next free one
 * after it, wrapping; IPv4 pools skip their network and broadcast addresses, IPv6
 * pools the all-zero host (the subnet-router anycast) and use at most the first
 * 2^64 addresses. New names are placed in name order, so the same set of names
 * always gets the same addresses. <reserved> addresses (static edge_ips, the shared
 * edge addresses) are never given out. Returns the new map, or NULL with <err> set:
 * a pool with fewer free addresses than names (ENOSPC), or ENOMEM. <prev> is not
 * changed. */
struct edgepool *edgepool_next(const struct edgepool *prev, const struct edgepool_cidr *v4,
                               const struct edgepool_cidr *v6, const struct edgepool_req *reqs,
                               size_t n, const struct sockaddr_storage *reserved, size_t n_reserved,
                               char *err, size_t errlen);

/* Fills <out> with the addresses of <name> (IPv4 first, port 0) and returns how
 * many (0 to 2, at most <cap>). <p> may be NULL (no pools): 0. */
size_t edgepool_lookup(const struct edgepool *p, const char *name, struct sockaddr_storage *out,
                       size_t cap);

/* Calls <fn> for every name and address of <p> (may be NULL), in name order, IPv4
 * first; a non-zero return stops the walk and is returned. */
typedef int (*edgepool_each_fn)(void *ctx, const char *name, const struct sockaddr_storage *addr);
int edgepool_each(const struct edgepool *p, edgepool_each_fn fn, void *ctx);

/* One name and an address it held (as edgepool_each() gives them). */
struct edgepool_pair {
    const char *name; /* borrowed */
    struct sockaddr_storage addr;
};

/* Builds a map from saved <pairs> (a previous run's), to pass as <prev> to
 * edgepool_next() so that names keep their addresses across a restart even where
 * placement by hash would now go another way. Pairs outside the pools <v4> and
 * <v6> (either may be NULL) are left out; a repeated family of one name keeps its
 * first address; an address given twice is sorted out by edgepool_next(), which
 * keeps it for the first name. Returns NULL on ENOMEM. */
struct edgepool *edgepool_restore(const struct edgepool_cidr *v4, const struct edgepool_cidr *v6,
                                  const struct edgepool_pair *pairs, size_t n);

/* How many names hold addresses. */
size_t edgepool_size(const struct edgepool *p);

void edgepool_free(struct edgepool *p);

/* Checks that this node can bind <a> (a TCP socket bound to it with port 0, then
 * closed), as static edge_ips must be. Not pure: opens a socket. Returns 0 or a
 * negative errno (-EADDRNOTAVAIL: not an address of this node). */
int edgepool_check_bindable(const struct sockaddr_storage *a);

#endif
