/* src/net/splice.c: the pipe pool behind zero-copy relaying (see splice.h). */
#include "net/splice.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

void pipe_pool_init(struct pipe_pool *pool, size_t max_free, size_t max_grown)
{
    pool->free_list = NULL;
    pool->n_free = 0;
    pool->max_free = max_free;
    pool->n_out = 0;
    pool->n_grown = 0;
    pool->max_grown = max_grown;
}

static void pipe_close(struct pipe_pool *pool, struct pipe_pair *p)
{
    if (p->is_grown)
        pool->n_grown--;
    close(p->rd);
    close(p->wr);
    free(p);
}

void pipe_pool_fini(struct pipe_pool *pool)
{
    while (pool->free_list) {
        struct pipe_pair *p = pool->free_list;
        pool->free_list = p->next;
        pipe_close(pool, p);
    }
    pool->n_free = 0;
}

struct pipe_pair *pipe_pool_get(struct pipe_pool *pool)
{
    struct pipe_pair *p = pool->free_list;
    int fds[2], n;

    if (p) {
        pool->free_list = p->next;
        pool->n_free--;
        pool->n_out++;
        return p;
    }
    p = malloc(sizeof(*p));
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
        int err = errno;
        free(p);
        errno = err;
        return NULL;
    }
    p->rd = fds[0];
    p->wr = fds[1];
    n = fcntl(fds[1], F_GETPIPE_SZ);
    p->bytes = n > 0 ? (uint32_t)n : PIPE_POOL_PIPE_BYTES;
    p->is_grown = false;
    p->next = NULL;
    pool->n_out++;
    return p;
}

void pipe_pool_put(struct pipe_pool *pool, struct pipe_pair *p, int is_empty)
{
    pool->n_out--;
    if (!is_empty || pool->n_free >= pool->max_free) {
        pipe_close(pool, p);
        return;
    }
    p->next = pool->free_list;
    pool->free_list = p;
    pool->n_free++;
}

int pipe_pool_grow(struct pipe_pool *pool, struct pipe_pair *p)
{
    int want = (int)p->bytes * PIPE_POOL_GROWTH, n;

    if (p->is_grown)
        return 1;
    if (pool->n_grown >= pool->max_grown)
        return 0;
    n = fcntl(p->wr, F_SETPIPE_SZ, want);
    if (n < want) {
        pool->max_grown = pool->n_grown; /* refused: the user's pipe pages are spent */
        return 0;
    }
    p->bytes = (uint32_t)n;
    p->is_grown = true;
    pool->n_grown++;
    return 1;
}
