/* tests/unit/test_slab.c: src/core/slab.c object pools. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/slab.h"

static void test_objects_are_zeroed_distinct_and_reused(void **state)
{
    struct slab_pool pool;
    uint8_t *a, *b, *c;

    (void)state;
    slab_pool_init(&pool, 100);
    assert_int_equal(pool.obj_size, 112);
    a = slab_alloc(&pool);
    b = slab_alloc(&pool);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(a[i], 0);
    memset(a, 0xab, 100);
    slab_free(&pool, a);
    c = slab_alloc(&pool);
    for (size_t i = 0; i < 100; i++)
        assert_int_equal(c[i], 0); /* zeroed again after reuse */
    assert_int_equal(pool.n_live, 2);
    slab_free(&pool, b);
    slab_free(&pool, c);
    slab_free(&pool, NULL);
    assert_int_equal(pool.n_live, 0);
    slab_pool_fini(&pool);
}

static void test_burst_returns_slabs(void **state)
{
    enum { N = 10000 };
    struct slab_pool pool;
    void **objs = calloc(N, sizeof(*objs));

    (void)state;
    slab_pool_init(&pool, 560);
    for (int i = 0; i < N; i++) {
        objs[i] = slab_alloc(&pool);
        assert_non_null(objs[i]);
        memset(objs[i], i & 0xff, 560);
    }
    assert_int_equal(pool.n_live, N);
    /* free in a scattered order, as expiring flows do */
    for (int i = 0; i < N; i += 2)
        slab_free(&pool, objs[i]);
    for (int i = 1; i < N; i += 2)
        slab_free(&pool, objs[i]);
    assert_int_equal(pool.n_live, 0);
#if !defined(__SANITIZE_ADDRESS__)
    assert_true(pool.n_slabs <= 1); /* everything unmapped but one spare */
#endif
    slab_pool_fini(&pool);
    free(objs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_objects_are_zeroed_distinct_and_reused),
        cmocka_unit_test(test_burst_returns_slabs),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
