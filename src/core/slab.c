/* src/core/slab.c: fixed-size object pools on aligned, mmap'd slabs (see slab.h).
 *
 * Slab layout (SLAB_BYTES, aligned to SLAB_BYTES):
 *
 *   [ struct slab | obj 0 | obj 1 | ... | obj per_slab-1 ]
 *
 * Free objects of a slab form a singly linked list through their first word;
 * objects never handed out yet are taken from a bump index, so a new slab costs no
 * walk. Aligned mappings come from mapping twice the size and trimming the
 * excess. */
#include "core/slab.h"

#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>

#include "core/bug.h"

/* Under ASan every object is its own heap allocation, so use-after-free and
 * overflows of tunnels and flows are caught as they would be with malloc. GCC
 * defines __SANITIZE_ADDRESS__; clang answers __has_feature(address_sanitizer). */
#if defined(__SANITIZE_ADDRESS__)
#define SLAB_USE_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_USE_MALLOC 1
#endif
#endif

struct slab {
    struct slab *next, *prev; /* in pool->partial */
    void *free_list;          /* freed objects */
    uint32_t bump;            /* objects [bump, per_slab) never handed out */
    uint32_t used;
    bool is_partial; /* on pool->partial */
};

#define SLAB_HDR (((sizeof(struct slab)) + 15u) & ~(size_t)15u)

void slab_pool_init(struct slab_pool *pool, size_t obj_size)
{
    memset(pool, 0, sizeof(*pool));
    pool->obj_size = (obj_size + 15u) & ~(size_t)15u;
    BUG_ON(pool->obj_size < sizeof(void *) || pool->obj_size > SLAB_BYTES - SLAB_HDR);
    pool->per_slab = (SLAB_BYTES - SLAB_HDR) / pool->obj_size;
}

#ifdef SLAB_USE_MALLOC
#include <stdlib.h>

void *slab_alloc(struct slab_pool *pool)
{
    void *obj = calloc(1, pool->obj_size);

    if (obj)
        pool->n_live++;
    return obj;
}

void slab_free(struct slab_pool *pool, void *obj)
{
    if (!obj)
        return;
    pool->n_live--;
    free(obj);
}

void slab_pool_fini(struct slab_pool *pool)
{
    pool->n_slabs = 0;
}
#else

static struct slab *slab_of(const void *obj)
{
    return (struct slab *)((uintptr_t)obj & ~(uintptr_t)(SLAB_BYTES - 1));
}

static struct slab *slab_map(void)
{
    size_t len = 2 * SLAB_BYTES;
    uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uintptr_t start, end;

    if (p == MAP_FAILED)
        return NULL;
    start = ((uintptr_t)p + SLAB_BYTES - 1) & ~(uintptr_t)(SLAB_BYTES - 1);
    end = start + SLAB_BYTES;
    if (start > (uintptr_t)p)
        munmap(p, start - (uintptr_t)p);
    if ((uintptr_t)p + len > end)
        munmap((void *)end, (uintptr_t)p + len - end);
    return (struct slab *)start;
}

static void partial_add(struct slab_pool *pool, struct slab *s)
{
    s->prev = NULL;
    s->next = pool->partial;
    if (pool->partial)
        pool->partial->prev = s;
    pool->partial = s;
    s->is_partial = true;
}

static void partial_del(struct slab_pool *pool, struct slab *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        pool->partial = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->is_partial = false;
}

void *slab_alloc(struct slab_pool *pool)
{
    struct slab *s = pool->partial;
    void *obj;

    if (!s) {
        s = pool->spare;
        if (s) {
            pool->spare = NULL;
        } else {
            s = slab_map();
            if (!s)
                return NULL;
            pool->n_slabs++;
        }
        memset(s, 0, sizeof(*s));
        partial_add(pool, s);
    }
    if (s->free_list) {
        obj = s->free_list;
        s->free_list = *(void **)obj;
    } else {
        obj = (uint8_t *)s + SLAB_HDR + (size_t)s->bump * pool->obj_size;
        s->bump++;
    }
    s->used++;
    if (s->used == pool->per_slab)
        partial_del(pool, s);
    pool->n_live++;
    memset(obj, 0, pool->obj_size);
    return obj;
}

void slab_free(struct slab_pool *pool, void *obj)
{
    struct slab *s;

    if (!obj)
        return;
    s = slab_of(obj);
    BUG_ON(s->used == 0);
    *(void **)obj = s->free_list;
    s->free_list = obj;
    s->used--;
    pool->n_live--;
    if (!s->is_partial)
        partial_add(pool, s);
    if (s->used > 0)
        return;
    partial_del(pool, s);
    if (!pool->spare) {
        /* Keep it mapped but let the kernel take its pages back. */
        madvise(s, SLAB_BYTES, MADV_DONTNEED);
        pool->spare = s;
        return;
    }
    munmap(s, SLAB_BYTES);
    pool->n_slabs--;
}

void slab_pool_fini(struct slab_pool *pool)
{
    while (pool->partial) {
        struct slab *s = pool->partial;
        partial_del(pool, s);
        munmap(s, SLAB_BYTES);
    }
    if (pool->spare)
        munmap(pool->spare, SLAB_BYTES);
    /* Full slabs are not on any list: objects still out at fini are the
     * caller's bug, and the process is exiting anyway when this runs. */
    pool->spare = NULL;
    pool->n_slabs = 0;
}
#endif
