/* src/net/splice.h: a per-worker pool of pipes for splice(2).
 *
 * A tunnel direction borrows a pipe only while bytes are in flight and gives it
 * back once the pipe is empty, so idle connections hold no pipe (two fds and up
 * to a pipe's worth of kernel pages each) and busy ones never create a pipe per
 * read. Owned by one thread. */
#ifndef NET_SPLICE_H
#define NET_SPLICE_H

#include <stddef.h>
#include <stdint.h>

struct pipe_pair {
    int rd, wr;             /* owned */
    struct pipe_pair *next; /* in the pool's free list */
};

struct pipe_pool {
    struct pipe_pair *free_list;
    size_t n_free;   /* pipes waiting in the list */
    size_t max_free; /* beyond this, returned pipes are closed */
    size_t n_out;    /* pipes lent out */
    int size_bytes;  /* F_SETPIPE_SZ for new pipes; 0 = kernel default (64 KiB) */
};

void pipe_pool_init(struct pipe_pool *pool, size_t max_free, int size_bytes);
/* Closes every pooled pipe; pipes still lent out must be returned or closed first. */
void pipe_pool_fini(struct pipe_pool *pool);

/* Lends an empty pipe, or returns NULL with errno set (EMFILE, ENOMEM). */
struct pipe_pair *pipe_pool_get(struct pipe_pool *pool);

/* Takes back <p>. A pipe that may still hold bytes (<is_empty> false) is closed
 * rather than reused, so stale bytes can never reach another connection. */
void pipe_pool_put(struct pipe_pool *pool, struct pipe_pair *p, int is_empty);

/* The capacity the pool's pipes have, in bytes. */
size_t pipe_pool_capacity(const struct pipe_pool *pool);

#endif
