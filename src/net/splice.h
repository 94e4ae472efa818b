/* src/net/splice.h: a per-worker pool of pipes for splice(2).
 *
 * A tunnel direction borrows a pipe only while bytes are in flight and gives it
 * back once the pipe is empty, so idle connections hold no pipe (two fds and up
 * to a pipe's worth of kernel pages each) and busy ones never create a pipe per
 * read. Owned by one thread. */
#ifndef NET_SPLICE_H
#define NET_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pipe_pair {
    int rd, wr;             /* owned */
    uint32_t bytes;         /* capacity, as the kernel reports it */
    bool is_grown;          /* by pipe_pool_grow */
    struct pipe_pair *next; /* in the pool's free list */
};

struct pipe_pool {
    struct pipe_pair *free_list;
    size_t n_free;    /* pipes waiting in the list */
    size_t max_free;  /* beyond this, returned pipes are closed */
    size_t n_out;     /* pipes lent out */
    size_t n_grown;   /* pipes grown by pipe_pool_grow, lent out or not */
    size_t max_grown; /* beyond this, pipes keep their default size */
};

/* Pipes start at the kernel's default size, 16 pages (64 KiB with 4 KiB pages), so a
 * new pipe costs no F_SETPIPE_SZ call, and a connection that does not stream holds at
 * most 16 slots per direction.
 * An earlier measurement found 256 KiB pipes for every connection slower (1 stream 6.6
 * against 7.7 Gbit/s), but then a splice asked for the pipe's byte size minus what it
 * held, which cut reads short (see src/proxy/tunnel.c). With reads that the pipe's free
 * slots bound, a pipe grown for a bulk stream (pipe_pool_grow) moves it in a quarter of
 * the splices. The first version of this, growth together with a skipped busy poll for
 * streaming tunnels (tunnel.c; then a simpler test for streaming, and 256 KiB runs),
 * measured in the bench harness (1 worker, 5 rounds, 2 runs alternated with the binary
 * before both, haproxy-splice beside): prism's Gbit/s per busy core went from 16.3 and
 * 15.3 to 19.7 and 19.9 on 1 stream and from 15.7 and 15.2 to 21.6 and 19.0 on 8. */
#define PIPE_POOL_PIPE_BYTES 65536

/* pipe_pool_grow multiplies a pipe's slots by this. Larger growth trades throughput for
 * CPU per byte (bench A/B, prism-b, bulk tests, 7 rounds, 2026-12-07): 8 times gave 0.95
 * times the throughput on 1 stream and on 8, 0.99 and 1.09 times the Gbit/s per busy
 * core; 16 times gave 0.96 and 0.95, and 0.96 and 1.09 per busy core. */
#define PIPE_POOL_GROWTH 4

/* <max_grown>: how many pipes may be grown at once. */
void pipe_pool_init(struct pipe_pool *pool, size_t max_free, size_t max_grown);
/* Closes every pooled pipe; pipes still lent out must be returned or closed first. */
void pipe_pool_fini(struct pipe_pool *pool);

/* Lends an empty pipe, or returns NULL with errno set (EMFILE, ENOMEM). */
struct pipe_pair *pipe_pool_get(struct pipe_pool *pool);

/* Takes back <p>. A pipe that may still hold bytes (<is_empty> false) is closed
 * rather than reused, so stale bytes can never reach another connection. */
void pipe_pool_put(struct pipe_pool *pool, struct pipe_pair *p, int is_empty);

/* Grows <p> to PIPE_POOL_GROWTH times its default slots, for a stream that fills a
 * pipe as fast as its destination drains it. Returns 1 if <p> is grown (before or
 * now), 0 if it stays as it is: max_grown pipes are grown already, or the kernel
 * refused (F_SETPIPE_SZ fails with EPERM once an unprivileged user's pipes hold more
 * than fs.pipe-user-pages-soft pages), after which the pool stops asking. A grown
 * pipe stays grown in the pool until it is closed. */
int pipe_pool_grow(struct pipe_pool *pool, struct pipe_pair *p);

#endif
