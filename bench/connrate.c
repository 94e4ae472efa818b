/* bench/connrate.c: new connections per second through a proxy.
 *
 * Keeps <k> connections in flight (default 64). Each one: non-blocking connect, a <size>-byte
 * request once connected, read the <size>-byte echo, close; its slot then starts the next.
 * One epoll set, edge-triggered, registered once per connection for both EPOLLOUT (connect
 * done) and EPOLLIN (reply), so the load tool spends as few syscalls as it can per
 * connection. Clients bind to 127.0.0.1..127.0.0.<S> with IP_BIND_ADDRESS_NO_PORT, which
 * multiplies the ephemeral ports available (TIME_WAIT stays with the closing client).
 *
 *   slot: IDLE -> CONNECTING -(EPOLLOUT)-> WAITING_REPLY -(all bytes)-> IDLE
 *                     \____________ error or timeout: counted, closed ______/
 *
 * Runs for -d seconds (only transactions finished by then count) or until -n transactions
 * have finished. Prints one JSON object: conns, errors, conn/s, and p50/p99 of the connect
 * time (connect() call to writable) and of the transaction (connect() call to last reply
 * byte), in microseconds. */
#include "bench.h"

#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <unistd.h>

#define USAGE                                                                                      \
    "connrate -c 127.0.0.1:port [-d seconds | -n conns] [-k in_flight] [-s bytes] [-S sources] "   \
    "[-t conn_timeout_ms]"
#define MAX_MSG 4096

enum slot_state {
    SLOT_IDLE = 0,
    SLOT_CONNECTING,
    SLOT_WAITING_REPLY,
};

struct slot {
    int fd;
    enum slot_state state;
    uint32_t got;      /* reply bytes received */
    uint64_t start_ns; /* when connect() was called */
};

struct run {
    struct sockaddr_in dst;
    unsigned n_sources;
    unsigned next_source;
    uint32_t msg_len;
    uint64_t conn_timeout_ns;
    uint64_t done; /* transactions completed */
    uint64_t started;
    uint64_t err_connect;
    uint64_t err_reset; /* reset, EOF before the full reply, or a send failure */
    uint64_t err_timeout;
    uint64_t err_addr; /* EADDRNOTAVAIL and other local failures to even start */
    struct hist connect_us;
    struct hist txn_us;
    int ep;
};

static char msg[MAX_MSG];

static void slot_close(struct slot *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->state = SLOT_IDLE;
}

/* Starts a connection in <s>. Returns false if it could not even begin (counted). */
static bool slot_start(struct run *r, struct slot *s, uint32_t index)
{
    struct sockaddr_in src;
    struct epoll_event ev;
    int one = 1;
    int fd;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        die_errno("socket");
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (r->n_sources > 1) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        source_addr(r->next_source++, r->n_sources, &src);
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == -1) {
            r->err_addr++;
            close(fd);
            return false;
        }
    }
    s->fd = fd;
    s->got = 0;
    s->start_ns = now_ns();
    r->started++;
    if (connect(fd, (struct sockaddr *)&r->dst, sizeof(r->dst)) == -1 && errno != EINPROGRESS) {
        if (errno == EADDRNOTAVAIL)
            r->err_addr++;
        else
            r->err_connect++;
        slot_close(s);
        return false;
    }
    s->state = SLOT_CONNECTING;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u32 = index;
    if (epoll_ctl(r->ep, EPOLL_CTL_ADD, fd, &ev) == -1)
        die_errno("epoll_ctl");
    return true;
}

static void on_connected(struct run *r, struct slot *s, uint64_t now, bool is_counted)
{
    int err = 0;
    socklen_t len = sizeof(err);
    ssize_t n;

    if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err != 0) {
        r->err_connect++;
        slot_close(s);
        return;
    }
    if (is_counted)
        hist_add(&r->connect_us, (now - s->start_ns) / 1000);
    n = send(s->fd, msg, r->msg_len, MSG_NOSIGNAL);
    if (n != (ssize_t)r->msg_len) {
        r->err_reset++;
        slot_close(s);
        return;
    }
    s->state = SLOT_WAITING_REPLY;
}

/* Reads the reply; returns true when the transaction finished (and closes the slot). */
static bool on_readable(struct run *r, struct slot *s, uint64_t *now)
{
    char buf[MAX_MSG];

    for (int pass = 0; pass < 16; pass++) {
        ssize_t n = recv(s->fd, buf, sizeof(buf), 0);

        if (n > 0) {
            s->got += (uint32_t)n;
            if (s->got >= r->msg_len) {
                *now = now_ns();
                slot_close(s);
                return true;
            }
            continue;
        }
        if (n == -1 && errno == EAGAIN)
            return false;
        if (n == -1 && errno == EINTR)
            continue;
        r->err_reset++;
        slot_close(s);
        return false;
    }
    return false;
}

static uint64_t errors(const struct run *r)
{
    return r->err_connect + r->err_reset + r->err_timeout + r->err_addr;
}

static void print_result(const struct run *r, double seconds)
{
    printf("{\"conns\":%llu,\"seconds\":%.3f,\"conn_per_s\":%.1f,"
           "\"connect_p50_us\":%llu,\"connect_p99_us\":%llu,"
           "\"txn_p50_us\":%llu,\"txn_p99_us\":%llu,\"txn_mean_us\":%.1f,"
           "\"err_connect\":%llu,\"err_reset\":%llu,\"err_timeout\":%llu,\"err_addr\":%llu}\n",
           (unsigned long long)r->done, seconds, seconds > 0 ? (double)r->done / seconds : 0.0,
           (unsigned long long)hist_quantile(&r->connect_us, 0.50),
           (unsigned long long)hist_quantile(&r->connect_us, 0.99),
           (unsigned long long)hist_quantile(&r->txn_us, 0.50),
           (unsigned long long)hist_quantile(&r->txn_us, 0.99),
           r->txn_us.count ? (double)r->txn_us.sum_us / (double)r->txn_us.count : 0.0,
           (unsigned long long)r->err_connect, (unsigned long long)r->err_reset,
           (unsigned long long)r->err_timeout, (unsigned long long)r->err_addr);
}

int main(int argc, char **argv)
{
    struct run r;
    struct slot *slots;
    struct epoll_event events[512];
    long k = 64, duration_s = 0, target_conns = 0, timeout_ms = 3000;
    uint64_t t0, deadline, last_sweep, end_ns;
    bool have_dst = false;
    int opt;

    memset(&r, 0, sizeof(r));
    r.n_sources = 8;
    r.msg_len = 64;
    while ((opt = getopt(argc, argv, "c:d:n:k:s:S:t:")) != -1) {
        switch (opt) {
        case 'c':
            if (parse_hostport(optarg, &r.dst) != 0)
                die_usage("bad -c", USAGE);
            have_dst = true;
            break;
        case 'd':
            duration_s = parse_long(optarg, 3600, USAGE);
            break;
        case 'n':
            target_conns = parse_long(optarg, 100000000, USAGE);
            break;
        case 'k':
            k = parse_long(optarg, 10000, USAGE);
            break;
        case 's':
            r.msg_len = (uint32_t)parse_long(optarg, MAX_MSG, USAGE);
            break;
        case 'S':
            r.n_sources = (unsigned)parse_long(optarg, 250, USAGE);
            break;
        case 't':
            timeout_ms = parse_long(optarg, 60000, USAGE);
            break;
        default:
            die_usage("unknown option", USAGE);
        }
    }
    if (!have_dst || (duration_s == 0) == (target_conns == 0))
        die_usage("need -c and exactly one of -d or -n", USAGE);
    signal(SIGPIPE, SIG_IGN);
    memset(msg, 'x', sizeof(msg));
    r.conn_timeout_ns = (uint64_t)timeout_ms * 1000000u;
    hist_init(&r.connect_us);
    hist_init(&r.txn_us);
    r.ep = epoll_create1(EPOLL_CLOEXEC);
    if (r.ep == -1)
        die_errno("epoll_create1");
    slots = calloc((size_t)k, sizeof(*slots));
    if (!slots)
        die_errno("calloc");
    for (long i = 0; i < k; i++)
        slots[i].fd = -1;

    t0 = now_ns();
    /* Count mode is bounded too: 10 minutes at most, whatever happens to the proxy. */
    deadline = duration_s ? t0 + (uint64_t)duration_s * 1000000000u : t0 + 600000000000u;
    last_sweep = t0;
    for (long i = 0; i < k && (!target_conns || i < target_conns); i++)
        slot_start(&r, &slots[i], (uint32_t)i);

    for (;;) {
        uint64_t now = now_ns();
        uint64_t in_flight = 0;
        int n;

        if (now >= deadline)
            break;
        if (target_conns && r.done >= (uint64_t)target_conns)
            break;
        /* Count mode gives up once failures outnumber the connections asked for. */
        if (target_conns && errors(&r) > (uint64_t)target_conns)
            break;
        n = epoll_wait(r.ep, events, 512, 10);
        if (n == -1 && errno != EINTR)
            die_errno("epoll_wait");
        now = now_ns();
        for (int i = 0; i < n; i++) {
            struct slot *s = &slots[events[i].data.u32];

            if (s->state == SLOT_CONNECTING && (events[i].events & (EPOLLOUT | EPOLLERR)))
                on_connected(&r, s, now, now < deadline);
            if (s->state == SLOT_WAITING_REPLY &&
                (events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP))) {
                uint64_t done_ns = now;

                if (on_readable(&r, s, &done_ns) && done_ns < deadline) {
                    r.done++;
                    hist_add(&r.txn_us, (done_ns - s->start_ns) / 1000);
                }
            }
        }
        /* Timeouts: a sweep every 100 ms is enough for a 3 s bound. */
        if (now - last_sweep > 100000000u) {
            last_sweep = now;
            for (long i = 0; i < k; i++) {
                if (slots[i].state != SLOT_IDLE && now - slots[i].start_ns > r.conn_timeout_ns) {
                    r.err_timeout++;
                    slot_close(&slots[i]);
                }
            }
        }
        for (long i = 0; i < k; i++)
            in_flight += slots[i].state != SLOT_IDLE;
        /* Bounded: a slot that fails to start is retried on the next pass only. */
        for (long i = 0; i < k; i++) {
            if (slots[i].state != SLOT_IDLE)
                continue;
            if (target_conns && r.done + in_flight >= (uint64_t)target_conns)
                break;
            in_flight += slot_start(&r, &slots[i], (uint32_t)i);
        }
    }
    end_ns = now_ns();
    if (duration_s && end_ns > deadline)
        end_ns = deadline;
    for (long i = 0; i < k; i++)
        slot_close(&slots[i]);
    print_result(&r, (double)(end_ns - t0) / 1e9);
    hist_free(&r.connect_us);
    hist_free(&r.txn_us);
    free(slots);
    return 0;
}
