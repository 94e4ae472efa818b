/* src/core/loop.c: the epoll loop every thread runs (as in HAProxy, nginx, Redis).
 *
 * One iteration: epoll_wait with a timeout from the earliest timer, dispatch I/O
 * callbacks, fire expired timers, then run deferred work (frees). The clock is read
 * once per iteration so every callback of a batch sees the same "now".
 *
 * Timers live in a binary min-heap of pointers; each timer remembers its index so
 * re-arming and stopping are O(log n). Idle timeouts that move on every byte are
 * handled by their owners lazily (re-arm when the timer fires early), so the heap
 * is touched once per timeout, not once per read.
 *
 * Busy polling (loop_set_busy_poll, workers only): before blocking, the loop may
 * poll epoll with a zero timeout for a short window, so that a reply expected
 * within microseconds does not pay for the CPU going idle and being woken again
 * (tens of microseconds on virtual machines). The window adapts as the kernel's
 * cpuidle-haltpoll does: it doubles (from 10 us) when the wait for the next event
 * was shorter than the maximum, and halves when it was longer, down to zero; so a
 * quiet loop stops spinning after a few waits and only a busy one keeps it.
 * A callback that has just moved a bulk transfer makes the next wait spin only
 * briefly (loop_busy_poll_brief: LOOP_BRIEF_POLL_NS, fixed, the window left alone):
 * the next bytes of a bulk stream come at the sender's pace, and spinning the whole
 * window for them takes CPU and makes the reads smaller, where blocking lets the
 * kernel queue more for one wakeup. Not spinning at all cost throughput: a stream
 * whose next segment came a few microseconds after the worker blocked paid a whole
 * wakeup for it. An interactive exchange always gets the adaptive window, even on a
 * loaded loop, unless the worker's CPU is contended (below). Left out after an A/B
 * (2026-12-07, bench/run.sh's prism-b, 5 rounds): a loop that had worked more than it
 * waited over the last 10 ms blocked at once instead of spinning its window. With 64
 * short connections in flight the spin had taken 8 to 15% of the worker's CPU (2.92 s
 * of CPU in 3 s against 2.47 to 2.69 s with busy_poll_us 0), but in the bench blocking
 * gave 1.02 times the connections per busy core (better in 3 of 5 rounds) for 0.93
 * times the connections per second and 1.28 times the p99 of connect, request and
 * reply (better in 0 of 5): the load tool waits for each reply, so every wakeup the
 * worker paid for came off its rate. UDP echoed 1.31 times the datagrams per CPU-second
 * at the same sustained rate. A ping-pong worker worked mostly 10 to 30% of each 10 ms
 * and kept its spin. busy_poll_us 0 itself (2026-12-07, prism-b, 7 rounds, haproxy
 * beside) gave 1.04 times the connections per busy core (better in 5 of 7 rounds), 0.96
 * times the connections/s (1 of 7) and 1.19 times that p99 (1 of 7): 28,950
 * connections per busy core against haproxy's 23,895, 1.21 times, where the bench asks
 * 1.3. With the spin the worker is busy all through the connection test (2.92 s of CPU
 * in each 3 s run by hand), since the load side's core bounds the rate: kernel work
 * taken out of the worker's own calls comes back as spin, not as idle time or more
 * connections (net/sockpool.h has one such saving).
 * A spin that calls sched_yield() after each empty poll, so that a worker sharing its
 * core lets the load run, was left out (2026-12-07, prism-b, 5 rounds each): with 2
 * workers and nothing pinned it gave 1.10 times the connections/s (better in 3 of 5
 * rounds) and 1.24 times the sustained UDP rate (4 of 5) but 1.22 times the ping-pong
 * p50 (0 of 5); with 1 pinned worker, 0.93 times the connections/s (1 of 5), 0.91 times
 * the 1-stream throughput (0 of 5) and 1.24 times the ping-pong p99 (0 of 5).
 *
 * A worker that shares its CPU does not spin its window. Every LOOP_CONTENTION_MS of a
 * busy-polling loop it reads how long its thread has waited for a CPU (the second field
 * of /proc/thread-self/schedstat); while that grew by over a quarter of the time since
 * the read before, its waits block at once (prism_busy_poll_contended_total), all but
 * the brief spin after a bulk stream moved, and the window is kept for when the CPU is
 * the worker's own again. A spin there takes time that the other threads on that CPU
 * want, and when the load and the origins run on the same machine it is often their
 * work the worker is waiting for. Bench A/B (2026-12-07, prism-b): with 2 workers and
 * nothing pinned (9 rounds), 1.15 times the connections per busy core (better in 9 of
 * 9 rounds), 1.03 times the connections/s (8 of 9), 0.93 times the p99 of connect,
 * request and reply (better in 8 of 9), 1.05 times the sustained UDP rate (7 of 9),
 * 0.87 times the ping-pong p99 (7 of 9), and the same 1-stream throughput and ping-pong
 * p50 (1.00 and 0.99 times; 6 of 9 each). With 1 pinned worker (7 rounds) every figure
 * stayed within 0.97 to 1.03 times, better in 2 to 4 of 7 rounds: no wait was contended
 * in three connection runs and a 1-stream run by hand, 3 in an 8-stream run. A tenth of
 * the time instead of a quarter counted the pinned worker contended 9 to 1,231 times in
 * a 3 s connection run (its CPU is shared with prism's control thread and the kernel's
 * threads), and in the bench gave 0.96 times the connections/s there (2 of 7). Blocking
 * the brief spin too (at a tenth) cost 2 workers 0.87 times the 1-stream throughput (0
 * of 9).
 *
 * The loop and the data plane call glibc's wrappers (epoll_wait, recv, send, splice,
 * ...), which switch the thread's cancellation state around each call with two atomic
 * operations; in a cpu-clock profile of the connection workload those switches were
 * 2.1% of the worker's samples. Left out after an A/B (2026-12-07, prism-b, 7 rounds,
 * every TCP and UDP test): the same calls made through syscall(2) gave 1.00 times the
 * connections/s (better in 3 of 7 rounds), 1.00 times the connections per busy core
 * (2 of 7), 0.99 times the 1-stream throughput (1 of 7) and 0.97 times the sustained
 * UDP rate (1 of 7): nothing to show for a second way of making system calls.
 *
 * Tasks (loop_task_queue): a callback that stops early so that one busy connection
 * does not hold the thread gives way with a task, which runs after the I/O of the
 * next iteration; the wait before it polls without blocking.
 *
 * Deleting an I/O handle while a batch is being dispatched: events for it that are
 * still in the batch are neutralised by scanning the batch (it is at most
 * LOOP_MAX_EVENTS long), so a callback never runs for a handle that was removed. */
#include "core/loop.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/bug.h"
#include "core/clock.h"

#define LOOP_MAX_EVENTS 256
#define LOOP_POLL_START_NS 10000u
/* The spin of a wait after a bulk transfer moved (loop_busy_poll_brief). Bench A/B
 * (bulk only, 1 worker, 5 rounds a run, haproxy-busy and haproxy-splice beside), prism's
 * 1-stream throughput over HAProxy's best: blocking at once 0.83, 1.00, 0.92 and 0.91
 * in 4 runs; 20 us 1.08, 1.09, 1.09 and 1.00; 60 us 1.06 and 1.15. 20 us took 0.55 to
 * 0.63 of a core where blocking took 0.46 to 0.52; Gbit/s per busy core over
 * haproxy-splice's had the same medians there (1.14 and 1.14), but in two full runs at
 * 20 us it was 1.04 and 1.04, against 1.23 and 1.19 in the two before them: the
 * throughput is bought with CPU. 8 streams within the noise. A later A/B (4 rounds of
 * bulk1 and bulk8, haproxy-splice beside, medians): 0, 5, 10 and 20 us gave 1-stream
 * throughput over haproxy-splice's of 1.00, 1.07, 1.10 and 1.06 and Gbit/s per busy core
 * over its of 1.13, 1.03, 0.98 and 0.95. Then with streaming directions kept in splice
 * (tunnel.c), 5 rounds, blocking at once against 20 us: 0.96 and 1.07 in throughput,
 * 1.09 and 0.93 per core; prism's own Gbit/s per core 34.1 and 28.1 (1 stream), 31.8
 * and 27.2 (8). On an Intel Xeon of the same machine kind (2026-12-07), 9 rounds with
 * both builds in the same rounds (bench/run.sh's prism-b), 20 us against blocking at
 * once: 22.9 and 20.3 Gbit/s on 1 stream, 23.1 and 19.8 on 8 (each better in 6 of 9
 * rounds), 38.8 and 57.9 Gbit/s per busy core on 1 stream. Runs of the two builds
 * taken one after the other instead had pointed the other way: on this machine the
 * noise between runs is larger than the effect. A spin that backs off (after a brief spin
 * that found nothing, the next 1, 2, 4... brief waits block at once, up to 32 or up to 4;
 * 7 rounds each, another Intel host, 2026-12-07) cut prism's empty polls by half and gave
 * 1.08 and 1.06 times the Gbit/s per busy core on 1 stream (better in 7 and 5 of 7 rounds)
 * and 1.08 on 8, for 0.96 and 0.97 times the 1-stream throughput (better in 1 and 2 of 7):
 * the same trade of throughput for CPU as a shorter window, so it was left out.
 * A longer brief spin does not buy the 8-stream throughput either: 200 us against 20 us
 * (2026-12-07, same host, 5 rounds, haproxy-busy beside) gave 0.90 times the 1-stream and
 * 0.99 times the 8-stream throughput (better in 2 of 5 rounds each), at 0.71 and 0.75
 * times the Gbit/s per busy core.
 * On the AMD EPYC host no window met both 1-stream targets of issue #5 (throughput at
 * least HAProxy's best and 1.25 times its Gbit/s per core) and 20 us kept the throughput;
 * in the runs of docs/BENCHMARKS.md (Intel Xeon, 2026-12-07) 20 us meets both. */
#define LOOP_BRIEF_POLL_NS 20000u
/* How often a busy-polling loop reads its thread's wait for a CPU, and the share of
 * the time (1 / LOOP_CONTENTION_SHARE) over which it counts as contended. */
#define LOOP_CONTENTION_MS 10u
#define LOOP_CONTENTION_SHARE 4u

struct loop {
    int epfd;
    uint64_t now_ms;
    bool is_stopped;
    struct loop_timer **heap; /* min-heap on when_ms */
    size_t heap_len, heap_cap;
    struct loop_defer *defer_head; /* LIFO; order does not matter for frees */
    struct list_node tasks;        /* struct loop_task, for the next iteration */
    struct epoll_event events[LOOP_MAX_EVENTS];
    int n_events, cur_event; /* the batch being dispatched */
    uint64_t poll_max_ns;    /* busy-poll limit; 0: never */
    uint64_t poll_ns;        /* current window, adapted */
    uint64_t n_polls;        /* spent spinning */
    uint64_t n_briefs;       /* waits that spun only briefly (loop_busy_poll_brief) */
    bool is_poll_brief;      /* the next wait that may block spins only briefly */
    int sched_fd;            /* /proc/thread-self/schedstat; -1: none, -2: not yet opened */
    uint64_t checked_ms;     /* when the thread's wait for a CPU was last read */
    uint64_t run_delay_ns;   /* that wait, in all, at the last read */
    uint64_t n_contended;    /* waits that did not spin, the CPU being contended */
    bool has_run_delay;      /* run_delay_ns was read */
    bool is_contended;       /* the thread waited for its CPU over the last period */
};

struct loop *loop_new(void)
{
    struct loop *loop = calloc(1, sizeof(*loop));

    if (!loop)
        return NULL;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd == -1) {
        int err = errno;
        free(loop);
        errno = err;
        return NULL;
    }
    list_init(&loop->tasks);
    loop->now_ms = clock_mono_ms();
    loop->sched_fd = -2;
    return loop;
}

void loop_free(struct loop *loop)
{
    if (!loop)
        return;
    close(loop->epfd);
    if (loop->sched_fd >= 0)
        close(loop->sched_fd);
    free(loop->heap);
    free(loop);
}

int loop_io_add(struct loop *loop, struct loop_io *io, int fd, uint32_t events, loop_io_fn cb)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};

    io->fd = fd;
    io->cb = cb;
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
        return -errno;
    io->is_added = true;
    return 0;
}

int loop_io_mod(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};

    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) == -1)
        return -errno;
    return 0;
}

void loop_io_forget_fetched(struct loop *loop, struct loop_io *io)
{
    for (int i = loop->cur_event + 1; i < loop->n_events; i++)
        if (loop->events[i].data.ptr == io)
            loop->events[i].data.ptr = NULL;
}

/* Neutralises the events already fetched for <io> in the batch being dispatched. */
static void forget_fetched(struct loop *loop, struct loop_io *io)
{
    io->is_added = false;
    loop_io_forget_fetched(loop, io);
}

void loop_io_del(struct loop *loop, struct loop_io *io)
{
    if (!io->is_added)
        return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    forget_fetched(loop, io);
}

void loop_io_close(struct loop *loop, struct loop_io *io)
{
    forget_fetched(loop, io);
    close(io->fd);
}

/* --- timers: binary min-heap --- */

static void heap_swap(struct loop *loop, size_t a, size_t b)
{
    struct loop_timer *t = loop->heap[a];

    loop->heap[a] = loop->heap[b];
    loop->heap[b] = t;
    loop->heap[a]->heap_idx = a;
    loop->heap[b]->heap_idx = b;
}

static void heap_up(struct loop *loop, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (loop->heap[parent]->when_ms <= loop->heap[i]->when_ms)
            break;
        heap_swap(loop, i, parent);
        i = parent;
    }
}

static void heap_down(struct loop *loop, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < loop->heap_len && loop->heap[l]->when_ms < loop->heap[m]->when_ms)
            m = l;
        if (r < loop->heap_len && loop->heap[r]->when_ms < loop->heap[m]->when_ms)
            m = r;
        if (m == i)
            break;
        heap_swap(loop, i, m);
        i = m;
    }
}

void loop_timer_init(struct loop_timer *t, loop_timer_fn cb)
{
    t->when_ms = 0;
    t->heap_idx = (size_t)-1;
    t->cb = cb;
}

void loop_timer_stop(struct loop *loop, struct loop_timer *t)
{
    size_t i = t->heap_idx;

    if (i == (size_t)-1)
        return;
    t->heap_idx = (size_t)-1;
    loop->heap_len--;
    if (i == loop->heap_len)
        return;
    loop->heap[i] = loop->heap[loop->heap_len];
    loop->heap[i]->heap_idx = i;
    heap_up(loop, i);
    heap_down(loop, loop->heap[i]->heap_idx);
}

void loop_timer_arm_at(struct loop *loop, struct loop_timer *t, uint64_t when_ms)
{
    if (t->heap_idx != (size_t)-1) {
        uint64_t old = t->when_ms;
        t->when_ms = when_ms;
        if (when_ms < old)
            heap_up(loop, t->heap_idx);
        else
            heap_down(loop, t->heap_idx);
        return;
    }
    if (loop->heap_len == loop->heap_cap) {
        size_t cap = loop->heap_cap ? loop->heap_cap * 2 : 64;
        struct loop_timer **h = realloc(loop->heap, cap * sizeof(*h));
        if (!h)
            abort(); /* a timer we cannot arm would hang a connection forever */
        loop->heap = h;
        loop->heap_cap = cap;
    }
    t->when_ms = when_ms;
    t->heap_idx = loop->heap_len;
    loop->heap[loop->heap_len++] = t;
    heap_up(loop, t->heap_idx);
}

void loop_timer_arm(struct loop *loop, struct loop_timer *t, uint64_t delay_ms)
{
    loop_timer_arm_at(loop, t, loop->now_ms + delay_ms);
}

void loop_defer(struct loop *loop, struct loop_defer *d, loop_defer_fn cb)
{
    if (d->is_pending)
        return;
    d->cb = cb;
    d->is_pending = true;
    d->next = loop->defer_head;
    loop->defer_head = d;
}

void loop_task_init(struct loop_task *t, loop_task_fn cb)
{
    list_init(&t->link);
    t->cb = cb;
}

void loop_task_queue(struct loop *loop, struct loop_task *t)
{
    if (!loop_task_is_queued(t))
        list_add_tail(&loop->tasks, &t->link);
}

void loop_task_cancel(struct loop_task *t)
{
    list_del(&t->link);
}

uint64_t loop_now_ms(const struct loop *loop)
{
    return loop->now_ms;
}

void loop_update_time(struct loop *loop)
{
    loop->now_ms = clock_mono_ms();
}

static void run_timers(struct loop *loop)
{
    while (loop->heap_len > 0 && loop->heap[0]->when_ms <= loop->now_ms) {
        struct loop_timer *t = loop->heap[0];
        loop_timer_stop(loop, t);
        t->cb(loop, t);
    }
}

/* Runs the tasks queued before this iteration; what they queue waits for the next. */
static void run_tasks(struct loop *loop)
{
    struct list_node batch;

    list_move_all(&batch, &loop->tasks);
    while (!list_empty(&batch)) {
        struct loop_task *t = container_of(batch.next, struct loop_task, link);
        list_del(&t->link);
        t->cb(loop, t);
    }
}

static void run_deferred(struct loop *loop)
{
    while (loop->defer_head) {
        struct loop_defer *d = loop->defer_head;
        loop->defer_head = d->next;
        d->is_pending = false;
        d->next = NULL;
        d->cb(loop, d);
    }
}

void loop_set_busy_poll(struct loop *loop, uint32_t max_us)
{
    loop->poll_max_ns = (uint64_t)max_us * 1000;
    if (loop->poll_ns > loop->poll_max_ns)
        loop->poll_ns = loop->poll_max_ns;
}

uint64_t loop_busy_poll_ns(const struct loop *loop)
{
    return loop->poll_ns;
}

uint64_t loop_busy_polls(const struct loop *loop)
{
    return loop->n_polls;
}

uint64_t loop_busy_poll_briefs(const struct loop *loop)
{
    return loop->n_briefs;
}

uint64_t loop_busy_poll_contended(const struct loop *loop)
{
    return loop->n_contended;
}

void loop_busy_poll_brief(struct loop *loop)
{
    loop->is_poll_brief = true;
}

/* Polls epoll without blocking until <end_ns> or an event; returns what the last
 * poll returned (0: nothing came). */
static int loop_spin(struct loop *loop, uint64_t end_ns)
{
    int n;

    do {
        n = epoll_wait(loop->epfd, loop->events, LOOP_MAX_EVENTS, 0);
        loop->n_polls++;
    } while (n == 0 && clock_mono_ns() < end_ns);
    return n;
}

/* Reads how long this thread has waited for a CPU (the second field of schedstat)
 * and marks the loop contended when that grew by over a quarter of the time since the
 * last read (see the top of the file). Called by the thread that runs the loop, at
 * most every LOOP_CONTENTION_MS; without schedstat the loop is never contended. */
static void check_contention(struct loop *loop)
{
    char buf[96], *end;
    uint64_t waited;
    uint64_t since_ms = loop->now_ms - loop->checked_ms;
    ssize_t n;

    loop->checked_ms = loop->now_ms;
    if (loop->sched_fd == -2)
        loop->sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
    if (loop->sched_fd < 0)
        return;
    n = pread(loop->sched_fd, buf, sizeof(buf) - 1, 0);
    if (n <= 0)
        return;
    buf[n] = '\0';
    (void)strtoull(buf, &end, 10); /* the time it ran */
    waited = strtoull(end, &end, 10);
    if (*end != ' ')
        return;
    loop->is_contended =
        loop->has_run_delay &&
        (waited - loop->run_delay_ns) * LOOP_CONTENTION_SHARE > since_ms * 1000000u;
    loop->run_delay_ns = waited;
    loop->has_run_delay = true;
}

/* epoll_wait, with busy polling first when enabled (see the top of the file). */
static int loop_wait(struct loop *loop, int timeout)
{
    uint64_t start, waited, spin;
    bool is_brief;
    int n;

    if (loop->poll_max_ns == 0 || timeout == 0)
        return epoll_wait(loop->epfd, loop->events, LOOP_MAX_EVENTS, timeout);
    if (loop->now_ms - loop->checked_ms >= LOOP_CONTENTION_MS)
        check_contention(loop);
    if (loop->is_contended && !loop->is_poll_brief) {
        loop->n_contended++; /* the window is left alone */
        return epoll_wait(loop->epfd, loop->events, LOOP_MAX_EVENTS, timeout);
    }
    is_brief = loop->is_poll_brief;
    if (is_brief) {
        /* Kept through waits that do not block (a bulk run that gave way resumes
         * from a task): the first wait that may block is the brief one. */
        loop->is_poll_brief = false;
        loop->n_briefs++;
        spin = LOOP_BRIEF_POLL_NS < loop->poll_max_ns ? LOOP_BRIEF_POLL_NS : loop->poll_max_ns;
    } else {
        spin = loop->poll_ns;
    }
    if (timeout > 0 && (uint64_t)timeout * 1000000u < spin)
        spin = (uint64_t)timeout * 1000000u; /* a timer is due first */
    start = clock_mono_ns();
    if (spin > 0) {
        n = loop_spin(loop, start + spin);
        if (n != 0)
            return n; /* the window paid off: keep it */
    }
    if (is_brief) /* the window is left alone */
        return epoll_wait(loop->epfd, loop->events, LOOP_MAX_EVENTS, timeout);
    n = epoll_wait(loop->epfd, loop->events, LOOP_MAX_EVENTS, timeout);
    waited = clock_mono_ns() - start;
    if (n > 0 && waited <= loop->poll_max_ns) {
        uint64_t grown = loop->poll_ns ? loop->poll_ns * 2 : LOOP_POLL_START_NS;
        loop->poll_ns = grown < loop->poll_max_ns ? grown : loop->poll_max_ns;
    } else if (n >= 0) {
        loop->poll_ns /= 2;
        if (loop->poll_ns < LOOP_POLL_START_NS / 2)
            loop->poll_ns = 0;
    }
    return n;
}

int loop_run_once(struct loop *loop, int max_wait_ms)
{
    int timeout = max_wait_ms, n;

    if (loop->defer_head || !list_empty(&loop->tasks))
        timeout = 0;
    else if (loop->heap_len > 0) {
        uint64_t when = loop->heap[0]->when_ms;
        int until = when <= loop->now_ms ? 0 : (int)(when - loop->now_ms);
        if (timeout < 0 || until < timeout)
            timeout = until;
    }
    n = loop_wait(loop, timeout);
    if (n == -1 && errno != EINTR)
        return -errno;
    loop->now_ms = clock_mono_ms();
    loop->n_events = n > 0 ? n : 0;
    for (loop->cur_event = 0; loop->cur_event < loop->n_events; loop->cur_event++) {
        struct epoll_event *ev = &loop->events[loop->cur_event];
        struct loop_io *io = ev->data.ptr;
        if (io)
            io->cb(loop, io, ev->events);
    }
    loop->n_events = 0;
    loop->cur_event = 0;
    run_tasks(loop);
    run_timers(loop);
    run_deferred(loop);
    return 0;
}

int loop_run(struct loop *loop)
{
    while (!loop->is_stopped) {
        int err = loop_run_once(loop, -1);
        if (err < 0)
            return err;
    }
    return 0;
}

void loop_stop(struct loop *loop)
{
    loop->is_stopped = true;
}

bool loop_is_stopped(const struct loop *loop)
{
    return loop->is_stopped;
}
