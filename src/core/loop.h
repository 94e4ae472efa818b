/* src/core/loop.h: one epoll event loop per thread, with timers and deferred work.
 *
 * I/O handles and timers are embedded in their owners (container_of gets back to
 * them). Nothing here is thread-safe: a loop belongs to the thread that runs it;
 * other threads talk to it through an eventfd they own (see proxy/worker.c). */
#ifndef CORE_LOOP_H
#define CORE_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/list.h"

struct loop;
struct loop_io;
struct loop_timer;
struct loop_defer;
struct loop_task;

typedef void (*loop_io_fn)(struct loop *loop, struct loop_io *io, uint32_t events);
typedef void (*loop_timer_fn)(struct loop *loop, struct loop_timer *t);
typedef void (*loop_defer_fn)(struct loop *loop, struct loop_defer *d);
typedef void (*loop_task_fn)(struct loop *loop, struct loop_task *t);

struct loop_io {
    int fd;        /* borrowed: the owner opens and closes it */
    loop_io_fn cb; /* called with the epoll event bits */
    bool is_added; /* registered with epoll */
};

struct loop_timer {
    uint64_t when_ms; /* loop clock deadline */
    size_t heap_idx;  /* position in the heap; SIZE_MAX when not armed */
    loop_timer_fn cb;
};

struct loop_defer {
    struct loop_defer *next; /* in the loop's pending list */
    loop_defer_fn cb;
    bool is_pending;
};

struct loop_task {
    struct list_node link; /* in the loop's queue; points to itself when not queued */
    loop_task_fn cb;
};

/* Returns a new loop, or NULL (errno says why: epoll_create1 or memory). */
struct loop *loop_new(void);
void loop_free(struct loop *loop);

/* Registers <fd> for <events> (EPOLLIN, EPOLLOUT, EPOLLET, ...). Returns 0 or -errno. */
int loop_io_add(struct loop *loop, struct loop_io *io, int fd, uint32_t events, loop_io_fn cb);
int loop_io_mod(struct loop *loop, struct loop_io *io, uint32_t events);
/* Unregisters; harmless when not added. Events already fetched for <io> in this
 * iteration are dropped, so its callback never runs after this returns. */
void loop_io_del(struct loop *loop, struct loop_io *io);
/* Drops the events already fetched for <io> in this iteration, leaving it registered:
 * for a handle whose fd passes to a new owner within the batch (net/sockpool.c). */
void loop_io_forget_fetched(struct loop *loop, struct loop_io *io);
/* Closes <io>'s fd, which the loop stops watching as it closes (no epoll_ctl: the
 * kernel drops a closed fd from the epoll set, and the loop never dups one). As
 * loop_io_del, its callback never runs after this returns. */
void loop_io_close(struct loop *loop, struct loop_io *io);

void loop_timer_init(struct loop_timer *t, loop_timer_fn cb);
/* Arms (or re-arms) <t> to fire <delay_ms> from the loop's current time. */
void loop_timer_arm(struct loop *loop, struct loop_timer *t, uint64_t delay_ms);
/* Arms <t> at an absolute loop-clock deadline. */
void loop_timer_arm_at(struct loop *loop, struct loop_timer *t, uint64_t when_ms);
void loop_timer_stop(struct loop *loop, struct loop_timer *t);
static inline bool loop_timer_is_armed(const struct loop_timer *t)
{
    return t->heap_idx != (size_t)-1;
}

/* Runs <cb> once at the end of the current iteration (after every callback), the
 * place to free objects that callers up the stack may still hold. A pending defer
 * is not queued twice. */
void loop_defer(struct loop *loop, struct loop_defer *d, loop_defer_fn cb);

/* Work that gave way to the other connections: <t> runs once in the next iteration,
 * after that iteration's I/O callbacks; the next wait does not block while a task is
 * queued. Queuing a queued task does nothing; cancel before freeing its owner. */
void loop_task_init(struct loop_task *t, loop_task_fn cb);
void loop_task_queue(struct loop *loop, struct loop_task *t);
void loop_task_cancel(struct loop_task *t);
static inline bool loop_task_is_queued(const struct loop_task *t)
{
    return t->link.next != &t->link;
}

/* Monotonic milliseconds, read once per iteration. */
uint64_t loop_now_ms(const struct loop *loop);
/* Re-reads the clock (after a long callback). */
void loop_update_time(struct loop *loop);

/* Waits up to <max_wait_ms> (-1: until an event or timer) and dispatches one batch.
 * Returns 0, or -errno when epoll_wait fails for a reason other than EINTR. */
int loop_run_once(struct loop *loop, int max_wait_ms);

/* Busy-polls epoll for up to <max_us> microseconds before blocking, adaptively
 * (see loop.c); 0 turns it off (the default). */
void loop_set_busy_poll(struct loop *loop, uint32_t max_us);
/* The current busy-poll window in nanoseconds (for tests and counters). */
uint64_t loop_busy_poll_ns(const struct loop *loop);
/* Polls spent spinning, and waits that spun only briefly, since loop_new (for tests
 * and counters). */
uint64_t loop_busy_polls(const struct loop *loop);
uint64_t loop_busy_poll_briefs(const struct loop *loop);
/* Waits that blocked at once, without spinning, because this thread had waited for
 * its CPU while other threads held it (see loop.c), since loop_new (for tests and
 * counters). */
uint64_t loop_busy_poll_contended(const struct loop *loop);
/* The next wait that may block spins only briefly (20 us, or the limit if lower),
 * without adapting the window: called after moving a bulk transfer, whose next
 * bytes come at the sender's pace (see loop.c). */
void loop_busy_poll_brief(struct loop *loop);

/* Runs until loop_stop(). */
int loop_run(struct loop *loop);
void loop_stop(struct loop *loop);
bool loop_is_stopped(const struct loop *loop);

#endif
