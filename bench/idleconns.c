/* bench/idleconns.c: holds many idle connections open through a proxy, so that the harness
 * can read what each one costs the proxy in memory.
 *
 * Opens connections up to each stage of -n (e.g. "5000,9000"), with at most -k handshakes
 * in flight. Each connection sends one byte and waits for its echo: only then is it
 * established end to end (client, proxy, origin), and the proxy has done whatever it does
 * with a live connection. At each stage it prints "established N" on stdout and waits for
 * SIGUSR1 (go on to the next stage) or SIGTERM (stop), at most -T seconds; after the last
 * stage it waits the same way, then prints a JSON summary and closes everything.
 *
 *   conn: CONNECTING -(EPOLLOUT, send 1 byte)-> WAITING_BYTE -(1 byte back)-> IDLE (held)
 *
 * A connection that fails is counted and replaced; the run gives up on a stage after as
 * many failures as connections asked for. Source addresses rotate over 127.0.0.1..<S>. */
#include "bench.h"

#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <unistd.h>

#define USAGE "idleconns -c 127.0.0.1:port -n 5000[,9000...] [-k handshakes] [-S sources] [-T s]"
#define MAX_STAGES 8

enum idle_state {
    IDLE_FREE = 0,
    IDLE_CONNECTING,
    IDLE_WAITING_BYTE,
    IDLE_HELD,
};

struct idle_conn {
    int fd;
    enum idle_state state;
    uint64_t start_ns;
};

static int open_one(int ep, const struct sockaddr_in *dst, unsigned source, unsigned n_sources,
                    struct idle_conn *c, uint32_t index)
{
    struct sockaddr_in src;
    struct epoll_event ev;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd == -1)
        return -errno;
    if (n_sources > 1) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        source_addr(source, n_sources, &src);
        if (bind(fd, (struct sockaddr *)&src, sizeof(src)) == -1)
            goto fail;
    }
    if (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) == -1 && errno != EINPROGRESS)
        goto fail;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u32 = index;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
        goto fail;
    c->fd = fd;
    c->state = IDLE_CONNECTING;
    c->start_ns = now_ns();
    return 0;

fail:
    one = -errno; /* read it before close() can overwrite it */
    close(fd);
    return one;
}

static void conn_fail(struct idle_conn *c, uint64_t *failures)
{
    close(c->fd);
    c->fd = -1;
    c->state = IDLE_FREE;
    (*failures)++;
}

/* Advances <c> on an epoll event. Returns true when it just became held. */
static bool on_event(struct idle_conn *c, uint32_t events, uint64_t *failures)
{
    char byte = 'i';

    if (c->state == IDLE_CONNECTING && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int err = 0;
        socklen_t len = sizeof(err);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1 || err != 0 ||
            send(c->fd, &byte, 1, MSG_NOSIGNAL) != 1) {
            conn_fail(c, failures);
            return false;
        }
        c->state = IDLE_WAITING_BYTE;
    }
    if (c->state == IDLE_WAITING_BYTE && (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR))) {
        ssize_t n = recv(c->fd, &byte, 1, 0);

        if (n == 1) {
            c->state = IDLE_HELD;
            return true;
        }
        if (n == -1 && errno == EAGAIN)
            return false;
        conn_fail(c, failures);
    }
    return false;
}

/* Waits for SIGUSR1 (returns true) or SIGTERM/SIGINT/timeout (returns false). */
static bool wait_go(const sigset_t *set, long timeout_s)
{
    struct timespec ts = {.tv_sec = timeout_s};
    int sig = sigtimedwait(set, NULL, &ts);

    return sig == SIGUSR1;
}

static long parse_stages(char *s, long *stages)
{
    long n = 0;

    for (char *p = s, *end; *p && n < MAX_STAGES; p = end) {
        stages[n] = strtol(p, &end, 10);
        if (end == p || stages[n] <= 0 || stages[n] > 100000 || (n && stages[n] <= stages[n - 1]))
            die_usage("bad -n", USAGE);
        n++;
        if (*end == ',')
            end++;
        else if (*end)
            die_usage("bad -n", USAGE);
    }
    return n;
}

int main(int argc, char **argv)
{
    struct sockaddr_in dst;
    struct epoll_event events[512];
    struct idle_conn *conns;
    long stages[MAX_STAGES], n_stages = 0, k = 256, hold_s = 120;
    double stage_s[MAX_STAGES] = {0};
    unsigned n_sources = 8, next_source = 0;
    uint64_t failures = 0, held = 0, dropped = 0; /* dropped: held, then closed by the peer */
    bool have_dst = false, is_go = true;
    sigset_t set;
    long total, n_free, stage = 0;
    uint32_t *free_idx; /* stack of unused slots in <conns> */
    int opt, ep;

    while ((opt = getopt(argc, argv, "c:n:k:S:T:")) != -1) {
        switch (opt) {
        case 'c':
            if (parse_hostport(optarg, &dst) != 0)
                die_usage("bad -c", USAGE);
            have_dst = true;
            break;
        case 'n':
            n_stages = parse_stages(optarg, stages);
            break;
        case 'k':
            k = parse_long(optarg, 10000, USAGE);
            break;
        case 'S':
            n_sources = (unsigned)parse_long(optarg, 250, USAGE);
            break;
        case 'T':
            hold_s = parse_long(optarg, 3600, USAGE);
            break;
        default:
            die_usage("unknown option", USAGE);
        }
    }
    if (!have_dst || n_stages == 0)
        die_usage("need -c and -n", USAGE);
    total = stages[n_stages - 1];

    /* Block the signals so that sigtimedwait() receives them, whenever they arrive. */
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    conns = calloc((size_t)total, sizeof(*conns));
    if (!conns)
        die_errno("calloc");
    free_idx = calloc((size_t)total, sizeof(*free_idx));
    if (!free_idx)
        die_errno("calloc");
    for (long i = 0; i < total; i++) {
        conns[i].fd = -1;
        free_idx[i] = (uint32_t)(total - 1 - i);
    }
    n_free = total;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1)
        die_errno("epoll_create1");

    while (stage < n_stages && is_go) {
        uint64_t t0 = now_ns(), deadline = t0 + (uint64_t)hold_s * 1000000000u;
        long want = stages[stage];

        while ((long)held < want) {
            int n;

            if (now_ns() > deadline || failures > (uint64_t)total) {
                fprintf(stderr, "idleconns: gave up at %llu held, %llu failures\n",
                        (unsigned long long)held, (unsigned long long)failures);
                goto out;
            }
            while (n_free > 0 && total - n_free < want && total - n_free - (long)held < k) {
                uint32_t i = free_idx[--n_free];

                if (open_one(ep, &dst, next_source++, n_sources, &conns[i], i) != 0) {
                    failures++;
                    free_idx[n_free++] = i;
                    break;
                }
            }
            n = epoll_wait(ep, events, 512, 10);
            for (int e = 0; e < n; e++) {
                uint32_t i = events[e].data.u32;

                if (conns[i].state == IDLE_HELD) {
                    dropped += (events[e].events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;
                    continue;
                }
                if (on_event(&conns[i], events[e].events, &failures))
                    held++;
                else if (conns[i].state == IDLE_FREE)
                    free_idx[n_free++] = i; /* failed: open a replacement */
            }
        }
        stage_s[stage] = (double)(now_ns() - t0) / 1e9;
        printf("established %ld\n", want);
        fflush(stdout);
        is_go = wait_go(&set, hold_s);
        stage++;
    }

out:
    printf("{\"held\":%llu,\"failures\":%llu,\"dropped\":%llu", (unsigned long long)held,
           (unsigned long long)failures, (unsigned long long)dropped);
    for (long i = 0; i < n_stages; i++)
        printf(",\"stage_%ld_s\":%.3f", stages[i], stage_s[i]);
    printf("}\n");
    for (long i = 0; i < total; i++) {
        if (conns[i].fd >= 0)
            close(conns[i].fd);
    }
    free(conns);
    free(free_idx);
    return held >= (uint64_t)total ? 0 : 1;
}
