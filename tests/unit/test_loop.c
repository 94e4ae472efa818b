/* tests/unit/test_loop.c: src/core/loop.c timers, deferred work, tasks and I/O removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/bug.h"
#include "core/clock.h"
#include "core/loop.h"

struct probe {
    struct loop_timer t;
    int fired;
    int order;
};

static int g_seq;

static void on_probe(struct loop *loop, struct loop_timer *t)
{
    struct probe *p = container_of(t, struct probe, t);

    (void)loop;
    p->fired++;
    p->order = ++g_seq;
}

static void test_timers_fire_in_deadline_order(void **state)
{
    struct loop *loop = loop_new();
    struct probe p[5];
    const uint64_t delays[5] = {40, 10, 30, 0, 20};

    (void)state;
    g_seq = 0;
    for (int i = 0; i < 5; i++) {
        p[i].fired = 0;
        loop_timer_init(&p[i].t, on_probe);
        loop_timer_arm(loop, &p[i].t, delays[i]);
    }
    while (g_seq < 5)
        assert_int_equal(loop_run_once(loop, 100), 0);
    assert_int_equal(p[3].order, 1);
    assert_int_equal(p[1].order, 2);
    assert_int_equal(p[4].order, 3);
    assert_int_equal(p[2].order, 4);
    assert_int_equal(p[0].order, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(p[i].fired, 1);
        assert_false(loop_timer_is_armed(&p[i].t));
    }
    loop_free(loop);
}

static void test_stopped_and_rearmed_timers(void **state)
{
    struct loop *loop = loop_new();
    struct probe a, b, c;

    (void)state;
    g_seq = 0;
    a.fired = b.fired = c.fired = 0;
    loop_timer_init(&a.t, on_probe);
    loop_timer_init(&b.t, on_probe);
    loop_timer_init(&c.t, on_probe);
    loop_timer_arm(loop, &a.t, 5);
    loop_timer_arm(loop, &b.t, 10);
    loop_timer_arm(loop, &c.t, 15);
    loop_timer_stop(loop, &a.t);
    loop_timer_stop(loop, &a.t);    /* twice is harmless */
    loop_timer_arm(loop, &c.t, 1);  /* moved earlier */
    loop_timer_arm(loop, &b.t, 30); /* moved later */
    while (g_seq < 2)
        assert_int_equal(loop_run_once(loop, 100), 0);
    assert_int_equal(a.fired, 0);
    assert_int_equal(c.order, 1);
    assert_int_equal(b.order, 2);
    loop_free(loop);
}

static void test_many_timers_heap_invariant(void **state)
{
    struct loop *loop = loop_new();
    static struct probe p[1000];
    uint32_t x = 12345;

    (void)state;
    g_seq = 0;
    for (int i = 0; i < 1000; i++) {
        x = x * 1103515245u + 12345u;
        p[i].fired = 0;
        loop_timer_init(&p[i].t, on_probe);
        loop_timer_arm(loop, &p[i].t, (x >> 16) % 50);
    }
    for (int i = 0; i < 1000; i += 3)
        loop_timer_stop(loop, &p[i].t);
    while (loop_run_once(loop, 0) == 0 && g_seq < 666) {
    }
    for (int i = 0; i < 1000; i++)
        assert_int_equal(p[i].fired, i % 3 == 0 ? 0 : 1);
    loop_free(loop);
}

struct dio {
    struct loop_io io;
    struct loop_io *other;
    int calls;
};

static void on_dio(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct dio *d = container_of(io, struct dio, io);

    (void)events;
    d->calls++;
    loop_io_del(loop, d->other); /* the other one is in the same batch */
}

static void test_io_deleted_mid_batch_never_called(void **state)
{
    struct loop *loop = loop_new();
    struct dio a = {0}, b = {0};
    int fa = eventfd(1, EFD_NONBLOCK), fb = eventfd(1, EFD_NONBLOCK);

    (void)state;
    a.other = &b.io;
    b.other = &a.io;
    assert_int_equal(loop_io_add(loop, &a.io, fa, EPOLLIN, on_dio), 0);
    assert_int_equal(loop_io_add(loop, &b.io, fb, EPOLLIN, on_dio), 0);
    assert_int_equal(loop_run_once(loop, 100), 0);
    assert_int_equal(a.calls + b.calls, 1); /* whichever ran first removed the other */
    close(fa);
    close(fb);
    loop_free(loop);
}

struct dd {
    struct loop_defer d;
    int runs;
};

static void on_defer(struct loop *loop, struct loop_defer *d)
{
    (void)loop;
    container_of(d, struct dd, d)->runs++;
}

static void test_defer_runs_once_per_queueing(void **state)
{
    struct loop *loop = loop_new();
    struct dd x = {0};

    (void)state;
    loop_defer(loop, &x.d, on_defer);
    loop_defer(loop, &x.d, on_defer);               /* already pending: not queued twice */
    assert_int_equal(loop_run_once(loop, 1000), 0); /* returns at once: work pending */
    assert_int_equal(x.runs, 1);
    loop_defer(loop, &x.d, on_defer);
    assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_int_equal(x.runs, 2);
    loop_free(loop);
}

struct ready {
    struct loop_io io;
    int calls;
    int order; /* g_seq at the last call */
};

static void on_ready(struct loop *loop, struct loop_io *io, uint32_t events)
{
    struct ready *r = container_of(io, struct ready, io);
    uint64_t v;

    (void)loop;
    (void)events;
    r->calls++;
    r->order = ++g_seq;
    BUG_ON(read(io->fd, &v, sizeof(v)) != sizeof(v));
}

/* The busy-poll window grows from 10 us while events come sooner than the limit,
 * stops at the limit, and falls back to 0 once the loop waits longer. Events and
 * timers are dispatched as without it. */
static void test_busy_poll_window_adapts(void **state)
{
    struct loop *loop = loop_new();
    struct ready r = {0};
    struct probe p = {0};
    uint64_t one = 1;
    int efd = eventfd(0, EFD_NONBLOCK);

    (void)state;
    assert_true(efd >= 0);
    assert_int_equal(loop_io_add(loop, &r.io, efd, EPOLLIN, on_ready), 0);
    loop_set_busy_poll(loop, 100);
    assert_true(loop_busy_poll_ns(loop) == 0);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one)); /* ready at once */
        assert_int_equal(loop_run_once(loop, 1000), 0);
        assert_int_equal(r.calls, i + 1);
        /* The first wait was short: grown from 0 to 10 us. The next events are
         * caught while spinning, which keeps the window as it is. */
        assert_true(loop_busy_poll_ns(loop) == 10000);
    }
    /* Five waits of 5 ms (a timer, no I/O): 10 us halves to 0. */
    loop_timer_init(&p.t, on_probe);
    for (int i = 0; i < 5; i++) {
        loop_timer_arm(loop, &p.t, 5);
        while (p.fired == i)
            assert_int_equal(loop_run_once(loop, 1000), 0);
    }
    assert_int_equal(p.fired, 5);
    assert_true(loop_busy_poll_ns(loop) == 0);
    /* Off: never spins. */
    loop_set_busy_poll(loop, 0);
    assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one));
    assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_true(loop_busy_poll_ns(loop) == 0);
    loop_io_del(loop, &r.io);
    close(efd);
    loop_free(loop);
}

struct tk {
    struct loop_task task;
    struct loop_task *victim; /* cancelled when this one runs */
    int runs;
    int order;
    bool is_requeue;
};

static void on_task(struct loop *loop, struct loop_task *task)
{
    struct tk *k = container_of(task, struct tk, task);

    k->runs++;
    k->order = ++g_seq;
    if (k->victim)
        loop_task_cancel(k->victim);
    if (k->is_requeue)
        loop_task_queue(loop, task);
}

/* loop_busy_poll_brief: the next wait that may block polls at least once before it
 * blocks, and leaves the window alone; a wait that cannot block (a task is queued)
 * keeps the request for the one after it. Without the request the same wait (a timer
 * 5 ms away, longer than the limit) halves the window. With busy polling off the
 * request does nothing. */
static void test_busy_poll_brief_spins_without_adapting(void **state)
{
    struct loop *loop = loop_new();
    struct ready r = {0};
    struct probe p = {0};
    struct tk k = {0};
    uint64_t one = 1, polls;
    int efd = eventfd(0, EFD_NONBLOCK);

    (void)state;
    assert_true(efd >= 0);
    assert_int_equal(loop_io_add(loop, &r.io, efd, EPOLLIN, on_ready), 0);
    loop_set_busy_poll(loop, 100);
    assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one));
    assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_true(loop_busy_poll_ns(loop) == 10000);

    loop_busy_poll_brief(loop);
    loop_task_init(&k.task, on_task);
    loop_task_queue(loop, &k.task);
    assert_int_equal(loop_run_once(loop, 1000), 0); /* does not block: request kept */
    assert_int_equal(k.runs, 1);
    assert_true(loop_busy_poll_briefs(loop) == 0);
    polls = loop_busy_polls(loop);
    loop_timer_init(&p.t, on_probe);
    loop_timer_arm(loop, &p.t, 5);
    while (p.fired == 0)
        assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_true(loop_busy_poll_briefs(loop) == 1);
    assert_true(loop_busy_polls(loop) > polls);    /* polled before blocking */
    assert_true(loop_busy_poll_ns(loop) == 10000); /* and left the window alone */

    loop_timer_arm(loop, &p.t, 5); /* the same wait without the request */
    while (p.fired == 1)
        assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_true(loop_busy_poll_briefs(loop) == 1);
    assert_true(loop_busy_poll_ns(loop) == 5000); /* halved */

    loop_set_busy_poll(loop, 0); /* off: the request does not make it spin */
    polls = loop_busy_polls(loop);
    loop_busy_poll_brief(loop);
    loop_timer_arm(loop, &p.t, 5);
    while (p.fired == 2)
        assert_int_equal(loop_run_once(loop, 1000), 0);
    assert_true(loop_busy_polls(loop) == polls);
    loop_io_del(loop, &r.io);
    close(efd);
    loop_free(loop);
}

struct hog {
    cpu_set_t cpu;
    atomic_bool is_stopped;
};

/* Keeps the CPU of <arg> busy until told to stop, for 5 s at most. */
static void *hog_run(void *arg)
{
    struct hog *h = arg;
    uint64_t end = clock_mono_ms() + 5000;

    BUG_ON(sched_setaffinity(0, sizeof(h->cpu), &h->cpu) != 0);
    while (!atomic_load(&h->is_stopped) && clock_mono_ms() < end)
        ;
    return NULL;
}

/* Runs <loop> through waits for an event on <efd>, written just before each, until
 * <what> of it passes <than>, for at most 2 s; returns whether it did. */
static bool run_until_above(struct loop *loop, int efd, uint64_t (*what)(const struct loop *),
                            uint64_t than)
{
    uint64_t one = 1, end = clock_mono_ms() + 2000;

    while (what(loop) <= than && clock_mono_ms() < end) {
        BUG_ON(write(efd, &one, sizeof(one)) != sizeof(one));
        BUG_ON(loop_run_once(loop, 1000) != 0);
    }
    return what(loop) > than;
}

/* A busy-polling loop whose thread shares its CPU with a busy thread stops spinning:
 * its waits block at once (loop_busy_poll_contended) once it has waited for the CPU
 * over a quarter of a check period. When the other thread stops, the loop spins again.
 * Both threads are pinned to the CPU the test runs on, and the loop, its event always
 * ready, never sleeps: it wants the whole CPU, as the hog does. */
static void test_busy_poll_stops_while_the_cpu_is_contended(void **state)
{
    struct loop *loop = loop_new();
    struct ready r = {0};
    struct hog h = {0};
    cpu_set_t was;
    pthread_t th;
    uint64_t polls;
    int efd = eventfd(0, EFD_NONBLOCK);

    (void)state;
    assert_true(efd >= 0);
    assert_int_equal(loop_io_add(loop, &r.io, efd, EPOLLIN, on_ready), 0);
    assert_int_equal(sched_getaffinity(0, sizeof(was), &was), 0);
    CPU_ZERO(&h.cpu);
    CPU_SET(sched_getcpu(), &h.cpu);
    assert_int_equal(sched_setaffinity(0, sizeof(h.cpu), &h.cpu), 0);
    loop_set_busy_poll(loop, 100);
    assert_true(run_until_above(loop, efd, loop_busy_polls, 0)); /* alone: it spins */
    assert_true(loop_busy_poll_contended(loop) == 0);

    assert_int_equal(pthread_create(&th, NULL, hog_run, &h), 0);
    assert_true(run_until_above(loop, efd, loop_busy_poll_contended, 0));
    atomic_store(&h.is_stopped, true);
    assert_int_equal(pthread_join(th, NULL), 0);

    polls = loop_busy_polls(loop);
    assert_true(run_until_above(loop, efd, loop_busy_polls, polls)); /* alone again */
    assert_int_equal(sched_setaffinity(0, sizeof(was), &was), 0);
    loop_io_del(loop, &r.io);
    close(efd);
    loop_free(loop);
}

/* Tasks run once, in queueing order, after the iteration's I/O; the wait does not
 * block while one is queued; one queued from a task waits for the next iteration;
 * a cancelled one never runs, even when cancelled by a task of the same batch. */
static void test_tasks_run_next_iteration(void **state)
{
    struct loop *loop = loop_new();
    struct tk a = {0}, b = {0}, c = {0}, spin = {.is_requeue = true};
    struct ready r = {0};
    uint64_t one = 1, start;
    int efd = eventfd(0, EFD_NONBLOCK);

    (void)state;
    g_seq = 0;
    assert_true(efd >= 0);
    assert_int_equal(loop_io_add(loop, &r.io, efd, EPOLLIN, on_ready), 0);
    loop_task_init(&a.task, on_task);
    loop_task_init(&b.task, on_task);
    loop_task_init(&c.task, on_task);
    loop_task_init(&spin.task, on_task);
    assert_false(loop_task_is_queued(&a.task));
    loop_task_cancel(&a.task); /* not queued: harmless */

    loop_task_queue(loop, &b.task);
    loop_task_queue(loop, &a.task);
    loop_task_queue(loop, &b.task); /* already queued: not twice */
    assert_true(loop_task_is_queued(&a.task));
    assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one));
    start = clock_mono_ms();
    assert_int_equal(loop_run_once(loop, 2000), 0);
    assert_true(clock_mono_ms() - start < 1000); /* did not wait for the timeout */
    assert_int_equal(a.runs, 1);
    assert_int_equal(b.runs, 1);
    assert_int_equal(r.order, 1); /* I/O first, then the tasks in order */
    assert_int_equal(b.order, 2);
    assert_int_equal(a.order, 3);
    assert_false(loop_task_is_queued(&a.task));

    /* Cancelled before its turn, here by the task ahead of it in the batch. */
    a.victim = &c.task;
    loop_task_queue(loop, &a.task);
    loop_task_queue(loop, &c.task);
    loop_task_queue(loop, &b.task);
    loop_task_cancel(&b.task);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(a.runs, 2);
    assert_int_equal(b.runs, 1);
    assert_int_equal(c.runs, 0);

    /* Requeued from its own callback: once per iteration, not in a loop. */
    loop_task_queue(loop, &spin.task);
    for (int i = 1; i <= 3; i++) {
        start = clock_mono_ms();
        assert_int_equal(loop_run_once(loop, 2000), 0);
        assert_true(clock_mono_ms() - start < 1000);
        assert_int_equal(spin.runs, i);
    }
    loop_task_cancel(&spin.task);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(spin.runs, 3);
    loop_io_del(loop, &r.io);
    close(efd);
    loop_free(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_busy_poll_window_adapts),
        cmocka_unit_test(test_busy_poll_brief_spins_without_adapting),
        cmocka_unit_test(test_busy_poll_stops_while_the_cpu_is_contended),
        cmocka_unit_test(test_timers_fire_in_deadline_order),
        cmocka_unit_test(test_stopped_and_rearmed_timers),
        cmocka_unit_test(test_many_timers_heap_invariant),
        cmocka_unit_test(test_io_deleted_mid_batch_never_called),
        cmocka_unit_test(test_defer_runs_once_per_queueing),
        cmocka_unit_test(test_tasks_run_next_iteration),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
