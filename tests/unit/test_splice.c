/* tests/unit/test_splice.c: src/net/splice.c, the per-worker pipe pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "net/splice.h"

static int pipe_size(const struct pipe_pair *p)
{
    return fcntl(p->wr, F_GETPIPE_SZ);
}

/* A pipe is lent at the kernel's default size and comes back from the pool for the
 * next borrower; one that may still hold bytes is closed instead of pooled. */
static void test_pipes_are_pooled_only_when_empty(void **state)
{
    struct pipe_pool pool;
    struct pipe_pair *a, *b;
    char c;

    (void)state;
    pipe_pool_init(&pool, 4, 1);
    a = pipe_pool_get(&pool);
    assert_non_null(a);
    assert_int_equal(a->bytes, pipe_size(a));
    assert_false(a->is_grown);
    assert_int_equal(pool.n_out, 1);
    pipe_pool_put(&pool, a, 1);
    assert_int_equal(pool.n_free, 1);
    b = pipe_pool_get(&pool);
    assert_ptr_equal(a, b); /* reused, no new pipe */
    assert_int_equal(write(b->wr, "x", 1), 1);
    pipe_pool_put(&pool, b, 0); /* holds a byte: closed */
    assert_int_equal(pool.n_free, 0);
    assert_int_equal(pool.n_out, 0);
    a = pipe_pool_get(&pool);
    assert_int_equal(read(a->rd, &c, 1), -1); /* a fresh pipe, empty */
    pipe_pool_put(&pool, a, 1);
    pipe_pool_fini(&pool);
    assert_int_equal(pool.n_free, 0);
}

/* pipe_pool_grow multiplies a pipe's slots by PIPE_POOL_GROWTH, once; a grown pipe
 * stays grown in the pool; no more than max_grown pipes are grown at once, and
 * closing a grown pipe frees its place. */
static void test_grow_is_bounded_and_kept(void **state)
{
    struct pipe_pool pool;
    struct pipe_pair *a, *b;
    int base;

    (void)state;
    pipe_pool_init(&pool, 4, 1);
    a = pipe_pool_get(&pool);
    b = pipe_pool_get(&pool);
    assert_non_null(a);
    assert_non_null(b);
    base = pipe_size(a);
    assert_int_equal(pipe_pool_grow(&pool, a), 1);
    assert_true(a->is_grown);
    assert_int_equal(pipe_size(a), base * PIPE_POOL_GROWTH);
    assert_int_equal(a->bytes, base * PIPE_POOL_GROWTH);
    assert_int_equal(pool.n_grown, 1);
    assert_int_equal(pipe_pool_grow(&pool, a), 1); /* already: no second call */
    assert_int_equal(pool.n_grown, 1);
    assert_int_equal(pipe_pool_grow(&pool, b), 0); /* over max_grown */
    assert_false(b->is_grown);
    assert_int_equal(pipe_size(b), base);

    pipe_pool_put(&pool, a, 1);
    assert_int_equal(pool.n_grown, 1); /* pooled, still grown */
    assert_ptr_equal(pipe_pool_get(&pool), a);
    assert_true(a->is_grown);
    assert_int_equal(pipe_size(a), base * PIPE_POOL_GROWTH);

    assert_int_equal(write(a->wr, "x", 1), 1);
    pipe_pool_put(&pool, a, 0); /* closed: its place is free */
    assert_int_equal(pool.n_grown, 0);
    assert_int_equal(pipe_pool_grow(&pool, b), 1);
    assert_int_equal(pipe_size(b), base * PIPE_POOL_GROWTH);
    pipe_pool_put(&pool, b, 1);
    pipe_pool_fini(&pool);
    assert_int_equal(pool.n_grown, 0);
}

/* A pool that may grow no pipe never calls F_SETPIPE_SZ. */
static void test_no_growth_when_none_allowed(void **state)
{
    struct pipe_pool pool;
    struct pipe_pair *a;
    int base;

    (void)state;
    pipe_pool_init(&pool, 4, 0);
    a = pipe_pool_get(&pool);
    assert_non_null(a);
    base = pipe_size(a);
    assert_int_equal(pipe_pool_grow(&pool, a), 0);
    assert_int_equal(pipe_size(a), base);
    pipe_pool_put(&pool, a, 1);
    pipe_pool_fini(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipes_are_pooled_only_when_empty),
        cmocka_unit_test(test_grow_is_bounded_and_kept),
        cmocka_unit_test(test_no_growth_when_none_allowed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
