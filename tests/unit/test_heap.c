/* im_heap: figures follow allocations, and trimming happens only past the
 * threshold and gives the free pages back. Under AddressSanitizer malloc
 * is not glibc's and the figures are 0: the tests that need them skip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "im_heap.h"

#if defined(__SANITIZE_ADDRESS__)
#define S_NATIVE_MALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_NATIVE_MALLOC 0
#endif
#endif
#ifndef S_NATIVE_MALLOC
#define S_NATIVE_MALLOC 1
#endif

#define S_BLOCKS 4096
#define S_BLOCK 4000 /* below the mmap threshold: lands in the arena */
#define S_MIB (1024u * 1024u)

/* Resident set size in KiB, from /proc/self/statm. */
static long s_rss_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%ld %ld", &pages, &resident), 2);
    fclose(f);
    return resident * 4;
}

/* Allocates S_BLOCKS blocks with a small one that stays after every 16th,
 * and touches them; frees the big ones. The free space (runs of about
 * 64 KB) is then in the middle of the heap, where free() does not give it
 * back. */
static void **s_fragment(void)
{
    void **keep = calloc(S_BLOCKS, sizeof(*keep));
    void **big = calloc(S_BLOCKS, sizeof(*big));
    assert_non_null(keep);
    assert_non_null(big);
    for (int i = 0; i < S_BLOCKS; i++) {
        big[i] = malloc(S_BLOCK);
        assert_non_null(big[i]);
        if (i % 16 == 15) {
            keep[i] = malloc(32);
            assert_non_null(keep[i]);
        }
        memset(big[i], 0xa5, S_BLOCK);
    }
    for (int i = 0; i < S_BLOCKS; i++)
        free(big[i]);
    free(big);
    return keep;
}

static void s_release(void **keep)
{
    for (int i = 0; i < S_BLOCKS; i++)
        free(keep[i]);
    free(keep);
}

static void test_stats_follow_allocations(void **state)
{
    (void)state;
    if (!S_NATIVE_MALLOC)
        skip();
    im_heap_stats_t a, b, c;
    im_heap_stats(&a);
    void *p = malloc(8 * S_MIB / 16); /* 512 KiB: mmap'ed, counted too */
    void *q = malloc(1000);
    assert_non_null(p);
    assert_non_null(q);
    im_heap_stats(&b);
    assert_true(b.in_use >= a.in_use + 8 * S_MIB / 16 + 1000);
    free(p);
    free(q);
    im_heap_stats(&c);
    assert_true(c.in_use < b.in_use);
}

static void test_no_trim_below_threshold(void **state)
{
    (void)state;
    im_heap_stats_t st;
    /* Nothing can have this much free. */
    assert_int_equal(im_heap_trim(SIZE_MAX, &st), 0);
    assert_true(st.free < SIZE_MAX);
    assert_int_equal(im_heap_trim(SIZE_MAX, NULL), 0);
}

static void test_trim_returns_free_pages(void **state)
{
    (void)state;
    if (!S_NATIVE_MALLOC)
        skip();
    void **keep = s_fragment();
    im_heap_stats_t st;
    im_heap_stats(&st);
    size_t freed = (size_t)S_BLOCKS * S_BLOCK;
    assert_true(st.free >= freed / 2);
    long before = s_rss_kib();
    assert_int_equal(im_heap_trim(freed / 4, &st), 1);
    long after = s_rss_kib();
    /* Most of the ~16 MB freed in the middle of the heap is gone from
     * RSS (each free run keeps partial pages at its edges). */
    assert_true(before - after >= (long)(freed / 1024 / 2));
    s_release(keep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_follow_allocations),
        cmocka_unit_test(test_no_trim_below_threshold),
        cmocka_unit_test(test_trim_returns_free_pages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
