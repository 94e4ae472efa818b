/* bench/pingpong.c: round-trip latency of small messages on one kept-open connection.
 *
 * Sends a <size>-byte message, waits for the whole echo, and repeats: <w> warm-up round
 * trips that are not counted, then <n> that are. Blocking I/O with TCP_NODELAY on a single
 * connection, so the figure is the latency the proxy adds to an interactive exchange (SSH
 * keystrokes, game ticks, database queries), with no batching anywhere. Every read has a
 * 2 s timeout, so a stuck proxy ends the run instead of hanging it.
 *
 * Prints one JSON object: round trips, p50, p90, p99, p99.9, mean and max in microseconds. */
#include "bench.h"

#include <netinet/tcp.h>
#include <signal.h>
#include <sys/time.h>
#include <unistd.h>

#define USAGE "pingpong -c 127.0.0.1:port [-n round_trips] [-w warmup] [-s bytes]"
#define MAX_MSG 65536

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* Returns the <q> quantile of <sorted> nanosecond samples, in microseconds. */
static double percentile_us(const uint32_t *sorted, long n, double q)
{
    long i = (long)(q * (double)n);

    if (i >= n)
        i = n - 1;
    return sorted[i] / 1000.0;
}

/* One round trip. Returns 0, or -1 (with errno set, or 0 on EOF). */
static int round_trip(int fd, const char *msg, char *buf, size_t len)
{
    size_t got = 0;

    if (send(fd, msg, len, MSG_NOSIGNAL) != (ssize_t)len)
        return -1;
    while (got < len) {
        ssize_t n = recv(fd, buf + got, len - got, 0);

        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == -1 && errno == EINTR)
            continue;
        if (n == 0)
            errno = 0;
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static char msg[MAX_MSG], buf[MAX_MSG];
    struct sockaddr_in dst;
    struct timeval tv = {.tv_sec = 2};
    long n = 20000, warmup = 1000, len = 64;
    uint32_t *samples;
    uint64_t sum = 0;
    int opt, fd, one = 1;
    int have_dst = 0;

    while ((opt = getopt(argc, argv, "c:n:w:s:")) != -1) {
        switch (opt) {
        case 'c':
            if (parse_hostport(optarg, &dst) != 0)
                die_usage("bad -c", USAGE);
            have_dst = 1;
            break;
        case 'n':
            n = parse_long(optarg, 10000000, USAGE);
            break;
        case 'w':
            warmup = parse_long(optarg, 10000000, USAGE);
            break;
        case 's':
            len = parse_long(optarg, MAX_MSG, USAGE);
            break;
        default:
            die_usage("unknown option", USAGE);
        }
    }
    if (!have_dst)
        die_usage("need -c", USAGE);
    signal(SIGPIPE, SIG_IGN);
    memset(msg, 'p', sizeof(msg));
    samples = calloc((size_t)n, sizeof(*samples));
    if (!samples)
        die_errno("calloc");

    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        die_errno("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) == -1)
        die_errno("connect");

    for (long i = 0; i < warmup; i++) {
        if (round_trip(fd, msg, buf, (size_t)len) != 0)
            die_errno("warm-up round trip");
    }
    for (long i = 0; i < n; i++) {
        uint64_t t0 = now_ns(), ns;

        if (round_trip(fd, msg, buf, (size_t)len) != 0)
            die_errno("round trip");
        ns = now_ns() - t0;
        samples[i] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns; /* 4.2 s: SO_RCVTIMEO is 2 */
        sum += samples[i];
    }
    close(fd);

    qsort(samples, (size_t)n, sizeof(*samples), cmp_u32);
    printf("{\"round_trips\":%ld,\"rtt_p50_us\":%.1f,\"rtt_p90_us\":%.1f,\"rtt_p99_us\":%.1f,"
           "\"rtt_p999_us\":%.1f,\"rtt_mean_us\":%.1f,\"rtt_max_us\":%.1f}\n",
           n, percentile_us(samples, n, 0.50), percentile_us(samples, n, 0.90),
           percentile_us(samples, n, 0.99), percentile_us(samples, n, 0.999),
           (double)sum / (double)n / 1000.0, samples[n - 1] / 1000.0);
    free(samples);
    return 0;
}
