/* bench/bench.h: small helpers shared by the load tools in bench/ (clock, addresses,
 * latency histograms). Header-only on purpose: each tool is one .c file that bench/run.sh
 * builds with a single cc command, with no library to link. These tools produce numbers,
 * never pass/fail (STYLE.md section 1). */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* One microsecond per bin up to this bound; slower samples land in the last bin, which
 * the percentile reader reports as the bound itself. */
#define HIST_MAX_US 1000000u

struct hist {
    uint32_t *bins; /* owned; HIST_MAX_US + 1 counters */
    uint64_t count;
    uint64_t sum_us;
    uint64_t max_us;
};

static inline uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Prints <msg> and the usage line to stderr and exits with status 2. */
static inline void die_usage(const char *msg, const char *usage)
{
    fprintf(stderr, "%s\nusage: %s\n", msg, usage);
    exit(2);
}

/* Prints <what>: strerror(errno) and exits with status 1. */
static inline void die_errno(const char *what)
{
    fprintf(stderr, "%s: %s\n", what, strerror(errno));
    exit(1);
}

/* Parses "a.b.c.d:port" (IPv4 only: every benchmark runs on 127.0.0.1) into <out>.
 * Returns 0, or -EINVAL. */
static inline int parse_hostport(const char *s, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    char *end;
    long port;
    size_t len;

    if (!colon)
        return -EINVAL;
    len = (size_t)(colon - s);
    if (len == 0 || len >= sizeof(host))
        return -EINVAL;
    memcpy(host, s, len);
    host[len] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
        return -EINVAL;
    return 0;
}

/* Parses a positive decimal integer no larger than <max>; exits on anything else. */
static inline long parse_long(const char *s, long max, const char *usage)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0 || v > max)
        die_usage("bad number", usage);
    return v;
}

/* Source address number <i> in 127.0.0.1 .. 127.0.0.<n>: spreading clients over several
 * loopback addresses multiplies the ephemeral ports available, so a connection-rate test
 * measures the proxy and not the client's port search. */
static inline void source_addr(unsigned i, unsigned n, struct sockaddr_in *out)
{
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_addr.s_addr = htonl(0x7f000001u + (i % n));
    out->sin_port = 0;
}

static inline void hist_init(struct hist *h)
{
    memset(h, 0, sizeof(*h));
    h->bins = calloc(HIST_MAX_US + 1, sizeof(*h->bins));
    if (!h->bins)
        die_errno("calloc");
}

static inline void hist_add(struct hist *h, uint64_t us)
{
    h->count++;
    h->sum_us += us;
    if (us > h->max_us)
        h->max_us = us;
    h->bins[us > HIST_MAX_US ? HIST_MAX_US : us]++;
}

/* Returns the smallest value v such that at least <q> of the samples are <= v. */
static inline uint64_t hist_quantile(const struct hist *h, double q)
{
    uint64_t want, seen = 0;

    if (h->count == 0)
        return 0;
    want = (uint64_t)(q * (double)h->count);
    if (want < 1)
        want = 1;
    for (uint64_t us = 0; us <= HIST_MAX_US; us++) {
        seen += h->bins[us];
        if (seen >= want)
            return us;
    }
    return HIST_MAX_US;
}

static inline void hist_free(struct hist *h)
{
    free(h->bins);
    h->bins = NULL;
}

#endif
