/* src/proxy/edgepool.c: one address per DNS name and family from the edge pools.
 *
 * On Spectrum a dynamic app's hostname gets addresses of its own; apps that share a
 * hostname share them (DESIGN.md section 3). Here a pool is a prefix, and a name's
 * address is a pure function of the name, unless that address is taken:
 *
 *   offset = first + mix(fnv1a(name, family)) % count     first..first+count-1 usable
 *   taken?  try offset+1, offset+2, ... wrapping to first (linear probing)
 *
 * so the same names get the same addresses on every start without any state
 * stored. What breaks the pure function is a collision: the name placed second
 * moves on. For that not to reshuffle addresses on a reload, edgepool_next() first
 * keeps every address the previous map gave (still the same pool, still wanted),
 * then places only the new names, in name order. A restart places every name anew
 * in name order, so it reproduces the same map unless collisions went another way
 * (rare in a /16); the control thread removes even that by saving the map in the
 * store after every apply and starting from edgepool_restore() of it.
 *
 * Offsets are 64-bit: an IPv6 pool larger than 2^64 addresses uses its first 2^64
 * (the host part's upper bits stay zero), plenty for names.
 *
 * Memory: one sorted array of entries and their names, rebuilt whole on every
 * change (a few thousand names at most). The taken sets while building are small
 * open-addressing hash sets of offsets. */
#include "proxy/edgepool.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/bug.h"

struct pool {
    bool is_set;
    struct edgepool_cidr cidr;
    uint64_t first, count; /* usable offsets: first .. first + count - 1 */
};

struct entry {
    char *name; /* owned */
    bool has_v4, has_v6;
    uint64_t off_v4, off_v6;
};

struct edgepool {
    struct pool v4, v6;
    struct entry *entries; /* owned; sorted by name */
    size_t n;
};

/* --- prefixes --- */

static void mask_host_bits(uint8_t *bytes, size_t nbytes, unsigned prefix, bool *had_host_bits)
{
    for (size_t i = 0; i < nbytes; i++) {
        unsigned keep = prefix >= 8 * (i + 1) ? 8 : (prefix > 8 * i ? prefix - 8 * i : 0);
        uint8_t mask = (uint8_t)(keep == 8 ? 0xFF : (0xFF00 >> keep) & 0xFF);

        if (bytes[i] & ~mask)
            *had_host_bits = true;
        bytes[i] &= mask;
    }
}

int edgepool_parse_cidr(const char *s, int family, struct edgepool_cidr *out, char *err,
                        size_t errlen)
{
    const char *slash = strchr(s, '/');
    unsigned lo = family == AF_INET ? EDGEPOOL_V4_PREFIX_MIN : EDGEPOOL_V6_PREFIX_MIN;
    unsigned hi = family == AF_INET ? EDGEPOOL_V4_PREFIX_MAX : EDGEPOOL_V6_PREFIX_MAX;
    const char *want = family == AF_INET ? "IPv4" : "IPv6";
    const char *example = family == AF_INET ? "\"127.10.0.0/16\"" : "\"fd00:abcd::/64\"";
    char host[INET6_ADDRSTRLEN], text[INET6_ADDRSTRLEN + 8];
    uint8_t other[16];
    bool had_host_bits = false;
    size_t hlen, plen;
    unsigned prefix = 0;

    memset(out, 0, sizeof(*out));
    hlen = slash ? (size_t)(slash - s) : strlen(s);
    plen = slash ? strlen(slash + 1) : 0;
    if (!slash || hlen == 0 || hlen >= sizeof(host) || plen == 0 || plen > 3 ||
        strspn(slash + 1, "0123456789") != plen) {
        snprintf(err, errlen, "must be an %s prefix in CIDR notation, such as %s", want, example);
        return -EINVAL;
    }
    memcpy(host, s, hlen);
    host[hlen] = '\0';
    for (size_t i = 0; i < plen; i++)
        prefix = prefix * 10 + (unsigned)(slash[1 + i] - '0');
    if (inet_pton(family, host, out->net) != 1) {
        if (inet_pton(family == AF_INET ? AF_INET6 : AF_INET, host, other) == 1)
            snprintf(err, errlen, "is an %s prefix: this pool takes %s, such as %s",
                     family == AF_INET ? "IPv6" : "IPv4", want, example);
        else
            snprintf(err, errlen, "must be an %s prefix in CIDR notation, such as %s", want,
                     example);
        return -EINVAL;
    }
    if (prefix < lo || prefix > hi) {
        snprintf(err, errlen, "has a prefix length out of range: %u to %u for an %s pool", lo, hi,
                 want);
        return -EINVAL;
    }
    out->family = family;
    out->prefix = prefix;
    mask_host_bits(out->net, family == AF_INET ? 4 : 16, prefix, &had_host_bits);
    if (had_host_bits) {
        edgepool_format_cidr(out, text, sizeof(text));
        snprintf(err, errlen, "has host bits set: the network is %s", text);
        return -EINVAL;
    }
    return 0;
}

void edgepool_format_cidr(const struct edgepool_cidr *c, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];

    if (!inet_ntop(c->family, c->net, host, sizeof(host)))
        snprintf(host, sizeof(host), "?");
    snprintf(buf, len, "%s/%u", host, c->prefix);
}

static void pool_init(struct pool *p, const struct edgepool_cidr *c)
{
    unsigned host_bits;

    memset(p, 0, sizeof(*p));
    if (!c)
        return;
    p->is_set = true;
    p->cidr = *c;
    host_bits = (c->family == AF_INET ? 32 : 128) - c->prefix;
    p->first = 1;
    if (c->family == AF_INET)
        p->count = ((uint64_t)1 << host_bits) - 2; /* not the network, not broadcast */
    else if (host_bits >= 64)
        p->count = UINT64_MAX; /* offsets 1 .. 2^64 - 1 */
    else
        p->count = ((uint64_t)1 << host_bits) - 1; /* not the subnet-router anycast */
}

static bool cidr_equal(const struct edgepool_cidr *a, const struct edgepool_cidr *b)
{
    return a->family == b->family && a->prefix == b->prefix && memcmp(a->net, b->net, 16) == 0;
}

static uint64_t load64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void store64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static void pool_addr(const struct pool *p, uint64_t off, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (p->cidr.family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        uint32_t net = (uint32_t)p->cidr.net[0] << 24 | (uint32_t)p->cidr.net[1] << 16 |
                       (uint32_t)p->cidr.net[2] << 8 | p->cidr.net[3];

        sin->sin_family = AF_INET;
        sin->sin_addr.s_addr = htonl(net + (uint32_t)off);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;

        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, p->cidr.net, 16);
        store64(sin6->sin6_addr.s6_addr + 8, load64(p->cidr.net + 8) + off);
    }
}

/* The offset of <a> in <p>, if it is one that <p> can give out. */
static bool pool_offset(const struct pool *p, const struct sockaddr_storage *a, uint64_t *off)
{
    uint64_t o;

    if (!p->is_set || a->ss_family != p->cidr.family)
        return false;
    if (a->ss_family == AF_INET) {
        const uint8_t *b = (const uint8_t *)&((const struct sockaddr_in *)a)->sin_addr;
        uint32_t net = (uint32_t)p->cidr.net[0] << 24 | (uint32_t)p->cidr.net[1] << 16 |
                       (uint32_t)p->cidr.net[2] << 8 | p->cidr.net[3];
        uint32_t v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];

        o = (uint64_t)(v - net);
    } else {
        const uint8_t *b = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;

        if (memcmp(b, p->cidr.net, 8) != 0)
            return false;
        o = load64(b + 8) - load64(p->cidr.net + 8);
    }
    if (o < p->first || o - p->first >= p->count)
        return false;
    *off = o;
    return true;
}

/* --- taken offsets: an open-addressing set; 0 marks an empty slot, and offset 0 is
 * never usable, so it needs no other marker --- */

struct offset_set {
    uint64_t *slots; /* owned */
    size_t mask;     /* capacity - 1, a power of two at least twice the most entries */
    uint64_t n;
};

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finalizer: FNV-1a alone leaves the low bits poorly mixed. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static int set_init(struct offset_set *s, size_t max_entries)
{
    size_t cap = 16;

    while (cap < 2 * max_entries + 2)
        cap *= 2;
    s->slots = calloc(cap, sizeof(*s->slots));
    s->mask = cap - 1;
    s->n = 0;
    return s->slots ? 0 : -ENOMEM;
}

static bool set_has(const struct offset_set *s, uint64_t v)
{
    for (size_t i = mix64(v) & s->mask;; i = (i + 1) & s->mask) {
        if (s->slots[i] == v)
            return true;
        if (s->slots[i] == 0)
            return false;
    }
}

/* Adds <v> (not 0); the caller never adds more than the set was sized for. */
static void set_add(struct offset_set *s, uint64_t v)
{
    size_t i = mix64(v) & s->mask;

    while (s->slots[i] != 0) {
        if (s->slots[i] == v)
            return;
        i = (i + 1) & s->mask;
    }
    s->slots[i] = v;
    s->n++;
}

static uint64_t name_hash(const char *name, int family)
{
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a 64 */

    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    h ^= family == AF_INET ? '4' : '6';
    h *= 0x100000001b3ull;
    return mix64(h);
}

/* --- building --- */

static int cmp_req(const void *a, const void *b)
{
    return strcmp(((const struct edgepool_req *)a)->name, ((const struct edgepool_req *)b)->name);
}

static int cmp_entry_key(const void *key, const void *e)
{
    return strcmp(key, ((const struct entry *)e)->name);
}

static const struct entry *find(const struct edgepool *p, const char *name)
{
    if (!p || p->n == 0)
        return NULL;
    return bsearch(name, p->entries, p->n, sizeof(*p->entries), cmp_entry_key);
}

/* Places <name> in <pool>: the offset its hash picks, or the next free one,
 * recorded in <taken> and returned in <*off>. Returns 0 or -ENOSPC (pool full). */
static int place(const struct pool *pool, struct offset_set *taken, const char *name, int family,
                 uint64_t *off)
{
    uint64_t o;

    if (taken->n >= pool->count)
        return -ENOSPC;
    o = pool->first + name_hash(name, family) % pool->count;
    while (set_has(taken, o))
        o = o - pool->first + 1 >= pool->count ? pool->first : o + 1;
    set_add(taken, o);
    *off = o;
    return 0;
}

static void free_entries(struct entry *entries, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(entries[i].name);
    free(entries);
}

void edgepool_free(struct edgepool *p)
{
    if (!p)
        return;
    free_entries(p->entries, p->n);
    free(p);
}

/* Sorts a copy of <reqs> by name and merges repeated names; returns the copy (its
 * length in <*n_out>) or NULL on ENOMEM. */
static struct edgepool_req *merge_reqs(const struct edgepool_req *reqs, size_t n, size_t *n_out)
{
    struct edgepool_req *u = malloc((n ? n : 1) * sizeof(*u));
    size_t k = 0;

    if (!u)
        return NULL;
    if (n)
        memcpy(u, reqs, n * sizeof(*u));
    qsort(u, n, sizeof(*u), cmp_req);
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && strcmp(u[k - 1].name, u[i].name) == 0) {
            u[k - 1].wants_v4 |= u[i].wants_v4;
            u[k - 1].wants_v6 |= u[i].wants_v6;
        } else {
            u[k++] = u[i];
        }
    }
    *n_out = k;
    return u;
}

/* Keeps what <prev> gave each name in the same pool, if still wanted and free. */
static void keep_previous(const struct edgepool *prev, struct edgepool *next,
                          const struct edgepool_req *u, struct offset_set *t4,
                          struct offset_set *t6)
{
    bool same4 =
        prev && prev->v4.is_set && next->v4.is_set && cidr_equal(&prev->v4.cidr, &next->v4.cidr);
    bool same6 =
        prev && prev->v6.is_set && next->v6.is_set && cidr_equal(&prev->v6.cidr, &next->v6.cidr);

    for (size_t i = 0; i < next->n; i++) {
        const struct entry *old = find(prev, u[i].name);
        struct entry *e = &next->entries[i];

        if (!old)
            continue;
        if (same4 && u[i].wants_v4 && old->has_v4 && !set_has(t4, old->off_v4)) {
            e->has_v4 = true;
            e->off_v4 = old->off_v4;
            set_add(t4, old->off_v4);
        }
        if (same6 && u[i].wants_v6 && old->has_v6 && !set_has(t6, old->off_v6)) {
            e->has_v6 = true;
            e->off_v6 = old->off_v6;
            set_add(t6, old->off_v6);
        }
    }
}

static int fail_full(const struct pool *pool, size_t n_reserved_in, char *err, size_t errlen)
{
    char text[INET6_ADDRSTRLEN + 8];

    edgepool_format_cidr(&pool->cidr, text, sizeof(text));
    snprintf(err, errlen,
             "edge.pool_v%c %s is full: %llu usable addresses (%zu of them reserved), one per "
             "DNS name; use a larger pool",
             pool->cidr.family == AF_INET ? '4' : '6', text, (unsigned long long)pool->count,
             n_reserved_in);
    return -ENOSPC;
}

struct edgepool *edgepool_next(const struct edgepool *prev, const struct edgepool_cidr *v4,
                               const struct edgepool_cidr *v6, const struct edgepool_req *reqs,
                               size_t n, const struct sockaddr_storage *reserved, size_t n_reserved,
                               char *err, size_t errlen)
{
    struct offset_set t4 = {0}, t6 = {0};
    struct edgepool_req *u = NULL;
    struct edgepool *next;
    size_t n_u = 0, r4 = 0, r6 = 0;
    int rc = -ENOMEM;

    next = calloc(1, sizeof(*next));
    if (!next)
        goto nomem;
    pool_init(&next->v4, v4);
    pool_init(&next->v6, v6);
    u = merge_reqs(reqs, n, &n_u);
    if (!u || set_init(&t4, n_u + n_reserved) != 0 || set_init(&t6, n_u + n_reserved) != 0)
        goto nomem;
    next->entries = calloc(n_u ? n_u : 1, sizeof(*next->entries));
    if (!next->entries)
        goto nomem;
    for (size_t i = 0; i < n_u; i++) {
        next->entries[i].name = strdup(u[i].name);
        if (!next->entries[i].name)
            goto nomem;
        next->n++;
    }
    for (size_t i = 0; i < n_reserved; i++) {
        uint64_t off;

        if (pool_offset(&next->v4, &reserved[i], &off) && !set_has(&t4, off)) {
            set_add(&t4, off);
            r4++;
        }
        if (pool_offset(&next->v6, &reserved[i], &off) && !set_has(&t6, off)) {
            set_add(&t6, off);
            r6++;
        }
    }
    keep_previous(prev, next, u, &t4, &t6);
    for (size_t i = 0; i < n_u; i++) {
        struct entry *e = &next->entries[i];

        if (u[i].wants_v4 && next->v4.is_set && !e->has_v4) {
            if (place(&next->v4, &t4, e->name, AF_INET, &e->off_v4) != 0) {
                rc = fail_full(&next->v4, r4, err, errlen);
                goto fail;
            }
            e->has_v4 = true;
        }
        if (u[i].wants_v6 && next->v6.is_set && !e->has_v6) {
            if (place(&next->v6, &t6, e->name, AF_INET6, &e->off_v6) != 0) {
                rc = fail_full(&next->v6, r6, err, errlen);
                goto fail;
            }
            e->has_v6 = true;
        }
    }
    free(t4.slots);
    free(t6.slots);
    free(u);
    return next;

nomem:
    snprintf(err, errlen, "edge pools: out of memory");
fail:
    free(t4.slots);
    free(t6.slots);
    free(u);
    edgepool_free(next);
    errno = -rc;
    return NULL;
}

size_t edgepool_lookup(const struct edgepool *p, const char *name, struct sockaddr_storage *out,
                       size_t cap)
{
    const struct entry *e = find(p, name);
    size_t n = 0;

    if (!e)
        return 0;
    if (e->has_v4 && n < cap)
        pool_addr(&p->v4, e->off_v4, &out[n++]);
    if (e->has_v6 && n < cap)
        pool_addr(&p->v6, e->off_v6, &out[n++]);
    return n;
}

int edgepool_each(const struct edgepool *p, edgepool_each_fn fn, void *ctx)
{
    struct sockaddr_storage a;
    int rc;

    for (size_t i = 0; p && i < p->n; i++) {
        const struct entry *e = &p->entries[i];

        if (e->has_v4) {
            pool_addr(&p->v4, e->off_v4, &a);
            if ((rc = fn(ctx, e->name, &a)) != 0)
                return rc;
        }
        if (e->has_v6) {
            pool_addr(&p->v6, e->off_v6, &a);
            if ((rc = fn(ctx, e->name, &a)) != 0)
                return rc;
        }
    }
    return 0;
}

static int cmp_pair(const void *a, const void *b)
{
    const struct edgepool_pair *x = *(const struct edgepool_pair *const *)a;
    const struct edgepool_pair *y = *(const struct edgepool_pair *const *)b;

    return strcmp(x->name, y->name);
}

struct edgepool *edgepool_restore(const struct edgepool_cidr *v4, const struct edgepool_cidr *v6,
                                  const struct edgepool_pair *pairs, size_t n)
{
    struct edgepool *p = calloc(1, sizeof(*p));
    const struct edgepool_pair **sorted = malloc((n ? n : 1) * sizeof(*sorted));

    if (!p || !sorted)
        goto nomem;
    pool_init(&p->v4, v4);
    pool_init(&p->v6, v6);
    p->entries = calloc(n ? n : 1, sizeof(*p->entries));
    if (!p->entries)
        goto nomem;
    for (size_t i = 0; i < n; i++)
        sorted[i] = &pairs[i];
    qsort(sorted, n, sizeof(*sorted), cmp_pair); /* stable enough: order within a name
                                                    only matters for a repeated family */
    for (size_t i = 0; i < n; i++) {
        const struct edgepool_pair *pr = sorted[i];
        uint64_t off4, off6;
        bool in4 = pool_offset(&p->v4, &pr->addr, &off4);
        bool in6 = pool_offset(&p->v6, &pr->addr, &off6);
        struct entry *e;

        if (!in4 && !in6)
            continue;
        if (p->n > 0 && strcmp(p->entries[p->n - 1].name, pr->name) == 0) {
            e = &p->entries[p->n - 1];
        } else {
            e = &p->entries[p->n];
            e->name = strdup(pr->name);
            if (!e->name)
                goto nomem;
            p->n++;
        }
        if (in4 && !e->has_v4) {
            e->has_v4 = true;
            e->off_v4 = off4;
        }
        if (in6 && !e->has_v6) {
            e->has_v6 = true;
            e->off_v6 = off6;
        }
    }
    free(sorted);
    return p;
nomem:
    free(sorted);
    edgepool_free(p);
    return NULL;
}

size_t edgepool_size(const struct edgepool *p)
{
    return p ? p->n : 0;
}

int edgepool_check_bindable(const struct sockaddr_storage *a)
{
    struct sockaddr_storage probe = *a;
    socklen_t len =
        a->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    int fd, err = 0;

    if (a->ss_family != AF_INET && a->ss_family != AF_INET6)
        return -EAFNOSUPPORT;
    if (a->ss_family == AF_INET)
        ((struct sockaddr_in *)&probe)->sin_port = 0;
    else
        ((struct sockaddr_in6 *)&probe)->sin6_port = 0;
    fd = socket(a->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    if (bind(fd, (const struct sockaddr *)&probe, len) == -1)
        err = -errno;
    close(fd);
    return err;
}
