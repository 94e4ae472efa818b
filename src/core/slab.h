/* src/core/slab.h: a per-thread pool of fixed-size objects (tunnels, flows).
 *
 * Objects come from 64 KiB slabs mapped with mmap and aligned to their size, so an
 * object finds its slab with a mask. A slab whose objects are all free goes back
 * to the kernel (one empty slab is kept to absorb churn), so memory returns to
 * its baseline after a burst, which malloc arenas do not promise. Not
 * thread-safe: a pool belongs to one thread. */
#ifndef CORE_SLAB_H
#define CORE_SLAB_H

#include <stddef.h>
#include <stdint.h>

#define SLAB_BYTES (64u * 1024u)

struct slab;

struct slab_pool {
    size_t obj_size;      /* rounded up to 16 bytes */
    size_t per_slab;      /* objects in one slab */
    struct slab *partial; /* slabs with at least one free object (doubly linked) */
    struct slab *spare;   /* one empty slab kept mapped */
    size_t n_slabs;       /* mapped, including the spare */
    size_t n_live;        /* objects handed out */
};

void slab_pool_init(struct slab_pool *pool, size_t obj_size);
/* Unmaps every slab; objects still out become invalid. */
void slab_pool_fini(struct slab_pool *pool);

/* Returns a zeroed object, or NULL when mmap fails. */
void *slab_alloc(struct slab_pool *pool);
/* Gives <obj> back; NULL is ignored. */
void slab_free(struct slab_pool *pool, void *obj);

#endif
