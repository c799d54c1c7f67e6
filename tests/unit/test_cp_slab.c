/* cp_slab: blocks are zeroed, distinct and reused; chunks are mapped as
 * blocks are needed and unmapped when empty, all but the last one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_slab.h"

static void test_block_size_rounded_and_bounded(void **st)
{
    (void)st;
    cp_slab_t *slab = cp_slab_new(1000);
    assert_non_null(slab);
    assert_int_equal(cp_slab_block_size(slab), 1008);
    assert_int_equal(cp_slab_mapped(slab), 0);
    cp_slab_destroy(&slab);
    assert_null(slab);
    cp_slab_destroy(&slab); /* NULL-safe */
    assert_null(cp_slab_new(0));
    assert_null(cp_slab_new(CP_SLAB_CHUNK));
}

static void test_alloc_zeroed_distinct_aligned(void **st)
{
    (void)st;
    cp_slab_t *slab = cp_slab_new(96);
    unsigned char *a = cp_slab_alloc(slab);
    unsigned char *b = cp_slab_alloc(slab);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    assert_int_equal((uintptr_t)a % 16, 0);
    assert_true(a + 96 <= b || b + 96 <= a);
    for (size_t i = 0; i < 96; i++)
        assert_int_equal(a[i], 0);
    memset(a, 0xAB, 96);
    cp_slab_free(slab, a);
    /* The freed block comes back first, zeroed again. */
    unsigned char *c = cp_slab_alloc(slab);
    assert_ptr_equal(c, a);
    for (size_t i = 0; i < 96; i++)
        assert_int_equal(c[i], 0);
    assert_int_equal(cp_slab_live(slab), 2);
    cp_slab_free(slab, b);
    cp_slab_free(slab, c);
    cp_slab_free(slab, NULL);
    assert_int_equal(cp_slab_live(slab), 0);
    cp_slab_destroy(&slab);
}

static void test_chunks_follow_live_blocks(void **st)
{
    (void)st;
    enum { N = 1000 };
    cp_slab_t *slab = cp_slab_new(2048);
    void **p = calloc(N, sizeof(*p));
    assert_non_null(p);
    for (size_t i = 0; i < N; i++) {
        p[i] = cp_slab_alloc(slab);
        assert_non_null(p[i]);
        memset(p[i], (int)(i & 0xff), 2048);
    }
    size_t per_chunk = CP_SLAB_CHUNK / 2048 - 1; /* the header takes one */
    size_t chunks = (N + per_chunk - 1) / per_chunk;
    assert_int_equal(cp_slab_live(slab), N);
    assert_int_equal(cp_slab_mapped(slab), chunks * CP_SLAB_CHUNK);
    /* Nothing written to one block reached another. */
    for (size_t i = 0; i < N; i++) {
        const unsigned char *b = p[i];
        assert_int_equal(b[0], i & 0xff);
        assert_int_equal(b[2047], i & 0xff);
    }
    for (size_t i = 0; i < N; i++)
        cp_slab_free(slab, p[i]);
    assert_int_equal(cp_slab_live(slab), 0);
    /* Every chunk went back to the kernel except one kept for churn. */
    assert_int_equal(cp_slab_mapped(slab), CP_SLAB_CHUNK);
    /* Churn on that chunk maps nothing new. */
    for (int round = 0; round < 100; round++) {
        void *q = cp_slab_alloc(slab);
        assert_non_null(q);
        cp_slab_free(slab, q);
    }
    assert_int_equal(cp_slab_mapped(slab), CP_SLAB_CHUNK);
    free(p);
    cp_slab_destroy(&slab);
}

static void test_freeing_from_full_chunks_reuses_them(void **st)
{
    (void)st;
    enum { N = 600 };
    cp_slab_t *slab = cp_slab_new(1024);
    void **p = calloc(N, sizeof(*p));
    assert_non_null(p);
    for (size_t i = 0; i < N; i++)
        p[i] = cp_slab_alloc(slab);
    size_t mapped = cp_slab_mapped(slab);
    /* Every other block back: the holes are used before any new chunk. */
    for (size_t i = 0; i < N; i += 2)
        cp_slab_free(slab, p[i]);
    for (size_t i = 0; i < N; i += 2) {
        p[i] = cp_slab_alloc(slab);
        assert_non_null(p[i]);
    }
    assert_int_equal(cp_slab_mapped(slab), mapped);
    assert_int_equal(cp_slab_live(slab), N);
    for (size_t i = 0; i < N; i++)
        cp_slab_free(slab, p[i]);
    assert_int_equal(cp_slab_mapped(slab), CP_SLAB_CHUNK);
    free(p);
    cp_slab_destroy(&slab);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_block_size_rounded_and_bounded),
        cmocka_unit_test(test_alloc_zeroed_distinct_aligned),
        cmocka_unit_test(test_chunks_follow_live_blocks),
        cmocka_unit_test(test_freeing_from_full_chunks_reuses_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
