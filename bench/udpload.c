/* bench/udpload.c: UDP echo through a proxy at a ladder of fixed rates.
 *
 * For each rate of -r (datagrams per second), sends <size>-byte datagrams for -d ms,
 * spread over -p connected sockets (so the proxy sees that many client flows, one per
 * source port), then keeps reading replies for a -g ms grace period. Each datagram
 * carries a magic number, its step, a sequence number and its send time, so a reply
 * that arrives after its step has ended is still matched to it. Sending is paced from
 * the clock: every wakeup (about every 100 us, with epoll_pwait2) sends what the
 * schedule says is due, in sendmmsg() batches of up to 16 on one socket, the sockets
 * taken in turn.
 *
 * Loss is 1 - replies/sent, where a reply counts only if it came back within -l ms (50)
 * of its datagram's send time: a deep socket buffer can hide a proxy that falls behind
 * for a whole step (the replies all arrive, late), and a rate is only sustained if the
 * replies keep up; late replies are reported apart. The sustained rate is the highest
 * achieved send rate of a step with under 1% loss (achieved, because the load tool
 * shares a core with the origin and may fall short of the target at high rates). Two
 * steps in a row with over 50% loss end the ladder early. With -b N, N more steps then
 * bisect between the highest ladder rate that held and the next one, which did not, so
 * the sustained rate is not only as fine as the ladder; they are marked "refine" in the
 * output. With -G each batch leaves as one GSO send (UDP_SEGMENT) and the sockets take
 * replies coalesced (UDP_GRO), as QUIC and WireGuard peers do: over loopback the proxy's
 * edge socket then receives each batch as one buffer if it asks for GRO, and as separate
 * datagrams otherwise. Prints one JSON object. */
#include "bench.h"

#include <netinet/udp.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <unistd.h>

#define USAGE                                                                                      \
    "udpload -c 127.0.0.1:port [-r 20000,50000,...] [-d step_ms] [-g grace_ms] [-p ports] [-s "    \
    "bytes] [-b refine_steps] [-l late_ms] [-G]"
#define MAX_STEPS 32
#define MAX_PORTS 1024
#define BATCH 16
#define RECV_BATCH 64
#define MAX_DGRAM 1472
#define MAGIC 0x7072736du /* "prsm" */

struct payload {
    uint32_t magic;
    uint32_t step;
    uint64_t seq;
    uint64_t sent_ns;
};

struct step {
    long rate; /* target datagrams per second */
    uint64_t sent;
    uint64_t recv;     /* replies back within the late bound */
    uint64_t late;     /* replies back after it: counted as lost */
    uint64_t send_err; /* sendmmsg() refused the datagram (EAGAIN, ECONNREFUSED) */
    double seconds;    /* how long we actually sent */
    bool is_refine;    /* a bisection step after the ladder */
};

static struct step steps[MAX_STEPS];
static long n_steps;
static int socks[MAX_PORTS];
static long n_socks = 64;
static long msg_len = 64;
static uint64_t bad_replies;
static uint64_t late_ns = 50000000u;
static bool is_gso; /* -G */

static long parse_rates(char *s)
{
    long n = 0;

    for (char *p = s, *end; *p && n < MAX_STEPS; p = end) {
        steps[n].rate = strtol(p, &end, 10);
        if (end == p || steps[n].rate <= 0 || steps[n].rate > 10000000)
            die_usage("bad -r", USAGE);
        n++;
        if (*end == ',')
            end++;
        else if (*end)
            die_usage("bad -r", USAGE);
    }
    return n;
}

/* Counts one reply of <len> bytes at <p>. */
static void count_reply(const char *p, size_t len, uint64_t now)
{
    struct payload pl;

    if (len < sizeof(pl)) {
        bad_replies++;
        return;
    }
    memcpy(&pl, p, sizeof(pl));
    if (pl.magic != MAGIC || pl.step >= (uint32_t)n_steps) {
        bad_replies++;
        return;
    }
    if (now - pl.sent_ns > late_ns)
        steps[pl.step].late++;
    else
        steps[pl.step].recv++;
}

/* The segment size of a coalesced reply (UDP_GRO), or 0. */
static size_t gro_size(struct msghdr *m)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm; cm = CMSG_NXTHDR(m, cm)) {
        if (cm->cmsg_level == IPPROTO_UDP && cm->cmsg_type == UDP_GRO) {
            int seg;
            memcpy(&seg, CMSG_DATA(cm), sizeof(seg));
            return seg > 0 ? (size_t)seg : 0;
        }
    }
    return 0;
}

static void drain(int fd)
{
    static char bufs[RECV_BATCH][65536];
    static char ctrl[RECV_BATCH][CMSG_SPACE(sizeof(int))];
    static struct iovec iov[RECV_BATCH];
    static struct mmsghdr msgs[RECV_BATCH];
    uint64_t now;

    for (int pass = 0; pass < 64; pass++) {
        int n;

        for (int i = 0; i < RECV_BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof(bufs[i]);
            memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctrl[i];
            msgs[i].msg_hdr.msg_controllen = sizeof(ctrl[i]);
        }
        n = recvmmsg(fd, msgs, RECV_BATCH, MSG_DONTWAIT, NULL);
        if (n <= 0)
            return;
        now = now_ns();
        for (int i = 0; i < n; i++) {
            size_t len = msgs[i].msg_len, seg = gro_size(&msgs[i].msg_hdr);

            if (seg == 0 || seg >= len) {
                count_reply(bufs[i], len, now);
                continue;
            }
            for (size_t off = 0; off < len; off += seg)
                count_reply(bufs[i] + off, len - off < seg ? len - off : seg, now);
        }
        if (n < RECV_BATCH)
            return;
    }
}

static void poll_replies(int ep, uint64_t timeout_ns)
{
    struct epoll_event events[MAX_PORTS];
    struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000u),
                          .tv_nsec = (long)(timeout_ns % 1000000000u)};
    int n = epoll_pwait2(ep, events, MAX_PORTS, &ts, NULL);

    if (n == -1 && errno != EINTR)
        die_errno("epoll_pwait2");
    for (int i = 0; i < n; i++)
        drain(socks[events[i].data.u32]);
}

/* Sends <count> datagrams of step <s> on the next socket. */
static void send_batch(struct step *st, uint32_t s, int count, long *next_sock)
{
    static char bufs[BATCH][MAX_DGRAM];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    int fd = socks[*next_sock], m;
    uint64_t now = now_ns();
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } ctrl;

    *next_sock = (*next_sock + 1) % n_socks;
    for (int i = 0; i < count; i++) {
        struct payload p = {
            .magic = MAGIC, .step = s, .seq = st->sent + (uint64_t)i, .sent_ns = now};

        memcpy(bufs[i], &p, sizeof(p));
        iov[i].iov_base = bufs[i];
        iov[i].iov_len = (size_t)msg_len;
        memset(&msgs[i].msg_hdr, 0, sizeof(msgs[i].msg_hdr));
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    if (is_gso && count > 1) {
        /* One message: the batch's datagrams as the iovecs, cut by the kernel. */
        struct cmsghdr *cm;
        uint16_t seg = (uint16_t)msg_len;

        msgs[0].msg_hdr.msg_iovlen = (size_t)count;
        msgs[0].msg_hdr.msg_control = ctrl.buf;
        msgs[0].msg_hdr.msg_controllen = sizeof(ctrl.buf);
        cm = CMSG_FIRSTHDR(&msgs[0].msg_hdr);
        cm->cmsg_level = IPPROTO_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(seg));
        memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
        m = sendmmsg(fd, msgs, 1, MSG_DONTWAIT) == 1 ? count : 0;
    } else {
        m = sendmmsg(fd, msgs, (unsigned)count, MSG_DONTWAIT);
    }
    if (m < 0)
        m = 0;
    st->sent += (uint64_t)m;
    st->send_err += (uint64_t)(count - m);
}

static void run_step(int ep, uint32_t s, uint64_t step_ns, uint64_t grace_ns)
{
    struct step *st = &steps[s];
    uint64_t t0 = now_ns(), end = t0 + step_ns, now;
    uint64_t attempted = 0;
    long next_sock = 0;

    while ((now = now_ns()) < end) {
        uint64_t due = (uint64_t)((double)st->rate * (double)(now - t0) / 1e9);

        /* Catch up at most 1,024 datagrams per wakeup, so a late wakeup cannot turn into a
         * burst that no real client would send. */
        if (due > attempted + 1024)
            attempted = due - 1024;
        while (attempted < due) {
            int count = due - attempted > BATCH ? BATCH : (int)(due - attempted);

            send_batch(st, s, count, &next_sock);
            attempted += (uint64_t)count;
        }
        poll_replies(ep, 100000);
    }
    st->seconds = (double)(now_ns() - t0) / 1e9;
    end = now_ns() + grace_ns;
    while ((now = now_ns()) < end)
        poll_replies(ep, end - now);
}

static double loss_pct(const struct step *st)
{
    if (st->sent == 0)
        return 100.0;
    if (st->recv >= st->sent)
        return 0.0;
    return 100.0 * (double)(st->sent - st->recv) / (double)st->sent;
}

int main(int argc, char **argv)
{
    char default_rates[] = "20000,50000,100000,150000,200000";
    struct sockaddr_in dst;
    long step_ms = 1000, grace_ms = 200, done = 0, bad_in_row = 0, n_refine = 0, n_ladder;
    long lo = 0, hi = 0;
    uint64_t step_ns, grace_ns;
    double best = 0;
    bool have_dst = false;
    int opt, ep;

    while ((opt = getopt(argc, argv, "c:r:d:g:p:s:b:l:G")) != -1) {
        switch (opt) {
        case 'c':
            if (parse_hostport(optarg, &dst) != 0)
                die_usage("bad -c", USAGE);
            have_dst = true;
            break;
        case 'r':
            n_steps = parse_rates(optarg);
            break;
        case 'd':
            step_ms = parse_long(optarg, 60000, USAGE);
            break;
        case 'g':
            grace_ms = parse_long(optarg, 10000, USAGE);
            break;
        case 'p':
            n_socks = parse_long(optarg, MAX_PORTS, USAGE);
            break;
        case 's':
            msg_len = parse_long(optarg, MAX_DGRAM, USAGE);
            break;
        case 'b':
            n_refine = parse_long(optarg, 8, USAGE);
            break;
        case 'l':
            late_ns = (uint64_t)parse_long(optarg, 10000, USAGE) * 1000000u;
            break;
        case 'G':
            is_gso = true;
            break;
        default:
            die_usage("unknown option", USAGE);
        }
    }
    if (!have_dst)
        die_usage("need -c", USAGE);
    if (msg_len < (long)sizeof(struct payload))
        die_usage("-s must be at least 24", USAGE);
    if (n_steps == 0)
        n_steps = parse_rates(default_rates);
    if (n_steps + n_refine > MAX_STEPS)
        die_usage("too many steps with -b", USAGE);
    n_ladder = n_steps;
    n_steps += n_refine; /* every step index a reply may carry */
    step_ns = (uint64_t)step_ms * 1000000u;
    grace_ns = (uint64_t)grace_ms * 1000000u;
    signal(SIGPIPE, SIG_IGN);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1)
        die_errno("epoll_create1");
    for (long i = 0; i < n_socks; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        int buf = 1 << 20;

        socks[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (socks[i] == -1)
            die_errno("socket");
        setsockopt(socks[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
        if (is_gso) {
            int one = 1;
            if (setsockopt(socks[i], IPPROTO_UDP, UDP_GRO, &one, sizeof(one)) == -1)
                die_errno("setsockopt UDP_GRO");
        }
        if (connect(socks[i], (struct sockaddr *)&dst, sizeof(dst)) == -1)
            die_errno("connect");
        if (epoll_ctl(ep, EPOLL_CTL_ADD, socks[i], &ev) == -1)
            die_errno("epoll_ctl");
    }

    for (long s = 0; s < n_ladder; s++) {
        run_step(ep, (uint32_t)s, step_ns, grace_ns);
        done = s + 1;
        bad_in_row = loss_pct(&steps[s]) > 50.0 ? bad_in_row + 1 : 0;
        if (bad_in_row >= 2)
            break;
    }
    /* Bisect between the highest rate that held and the lowest one above it that did not. */
    for (long s = 0; s < done; s++) {
        if (loss_pct(&steps[s]) < 1.0 && steps[s].rate > lo)
            lo = steps[s].rate;
    }
    for (long s = 0; s < done; s++) {
        if (loss_pct(&steps[s]) >= 1.0 && steps[s].rate > lo && (hi == 0 || steps[s].rate < hi))
            hi = steps[s].rate;
    }
    for (long i = 0; i < n_refine && lo > 0 && hi > lo + 1; i++) {
        long s = done;

        steps[s].rate = lo + (hi - lo) / 2;
        steps[s].is_refine = true;
        run_step(ep, (uint32_t)s, step_ns, grace_ns);
        done = s + 1;
        if (loss_pct(&steps[s]) < 1.0)
            lo = steps[s].rate;
        else
            hi = steps[s].rate;
    }
    poll_replies(ep, grace_ns); /* the last stragglers */

    printf("{\"ports\":%ld,\"bytes\":%ld,\"late_ms\":%llu,\"bad_replies\":%llu,\"steps\":[",
           n_socks, msg_len, (unsigned long long)(late_ns / 1000000u),
           (unsigned long long)bad_replies);
    for (long s = 0; s < done; s++) {
        const struct step *st = &steps[s];
        double rate = st->seconds > 0 ? (double)st->sent / st->seconds : 0;

        if (loss_pct(st) < 1.0 && rate > best)
            best = rate;
        printf("%s{\"rate\":%ld,\"sent\":%llu,\"recv\":%llu,\"late\":%llu,\"send_err\":%llu,"
               "\"send_rate\":%.0f,\"loss_pct\":%.3f%s}",
               s ? "," : "", st->rate, (unsigned long long)st->sent, (unsigned long long)st->recv,
               (unsigned long long)st->late, (unsigned long long)st->send_err, rate, loss_pct(st),
               st->is_refine ? ",\"refine\":true" : "");
    }
    printf("],\"sustained_rate\":%.0f}\n", best);
    for (long i = 0; i < n_socks; i++)
        close(socks[i]);
    return 0;
}
