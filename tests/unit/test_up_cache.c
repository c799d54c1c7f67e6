/* up_cache: the result cache, driven by a fake clock (times are arguments,
 * nothing sleeps). ASan checks that every entry is freed on eviction,
 * expiry and destroy. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "up_cache.h"

#define TTL 30000u
#define CP "cp-1"

/* The answer stored for seq: its bytes name the seq, so a lookup that
 * returned another entry's bytes shows. */
static size_t s_answer(uint64_t seq, uint8_t *buf, size_t size)
{
    int n = snprintf((char *)buf, size, "answer-%llu", (unsigned long long)seq);
    return (size_t)n;
}

static void s_put(up_cache_t *c, const char *sender, uint64_t epoch,
                  uint64_t seq, uint64_t now)
{
    uint8_t buf[32];
    size_t n = s_answer(seq, buf, sizeof(buf));
    assert_int_equal(up_cache_put(c, sender, epoch, seq, 0, buf, n, now), 0);
}

static void s_assert_hit(up_cache_t *c, const char *sender, uint64_t epoch,
                         uint64_t seq, uint64_t now)
{
    uint8_t want[32];
    size_t wn = s_answer(seq, want, sizeof(want));
    size_t len = 0;
    const uint8_t *got = up_cache_find(c, sender, epoch, seq, 0, now, &len, NULL);
    assert_non_null(got);
    assert_int_equal(len, wn);
    assert_memory_equal(got, want, wn);
}

static void s_assert_miss(up_cache_t *c, const char *sender, uint64_t epoch,
                          uint64_t seq, uint64_t now)
{
    size_t len = 12345;
    assert_null(up_cache_find(c, sender, epoch, seq, 0, now, &len, NULL));
    assert_int_equal(len, 12345); /* untouched on a miss */
}

static void test_hit_and_miss(void **state)
{
    (void)state;
    up_cache_t *c = up_cache_new(16, TTL);
    assert_non_null(c);
    s_assert_miss(c, CP, 7, 1, 0);
    s_put(c, CP, 7, 1, 100);
    s_put(c, CP, 7, 2, 100);
    s_assert_hit(c, CP, 7, 1, 200);
    s_assert_hit(c, CP, 7, 2, 200);
    s_assert_miss(c, CP, 7, 3, 200);
    assert_int_equal(up_cache_count(c), 2);
    assert_true(up_cache_bytes(c) > 0);
    up_cache_destroy(&c);
    assert_null(c);
    up_cache_destroy(&c); /* NULL-safe */
}

static void test_key_is_the_triple(void **state)
{
    (void)state;
    up_cache_t *c = up_cache_new(16, TTL);
    s_put(c, CP, 7, 1, 0);
    /* A restarted CP (another epoch) or another sender reuses seq 1. */
    s_assert_miss(c, CP, 8, 1, 1);
    s_assert_miss(c, "cp-2", 7, 1, 1);
    s_assert_miss(c, "cp-", 7, 1, 1);
    s_assert_miss(c, "cp-10", 7, 1, 1);
    s_assert_miss(c, "", 7, 1, 1);
    s_put(c, CP, 8, 1, 1);
    s_put(c, "cp-2", 7, 1, 1);
    assert_int_equal(up_cache_count(c), 3);
    s_assert_hit(c, CP, 7, 1, 2);
    s_assert_hit(c, CP, 8, 1, 2);
    s_assert_hit(c, "cp-2", 7, 1, 2);
    up_cache_destroy(&c);
}

static void test_first_answer_kept(void **state)
{
    (void)state;
    up_cache_t *c = up_cache_new(16, TTL);
    s_put(c, CP, 7, 1, 0);
    const uint8_t other[] = "other";
    assert_int_equal(up_cache_put(c, CP, 7, 1, 0, other, sizeof(other), 1),
                     -EEXIST);
    s_assert_hit(c, CP, 7, 1, 2);
    assert_int_equal(up_cache_count(c), 1);
    up_cache_destroy(&c);
}

static void test_ttl_expiry(void **state)
{
    (void)state;
    up_cache_t *c = up_cache_new(16, TTL);
    s_put(c, CP, 7, 1, 1000);
    s_put(c, CP, 7, 2, 5000);
    s_assert_hit(c, CP, 7, 1, 1000 + TTL - 1);
    /* ttl_ms old: gone, and dropped from memory on the way. */
    s_assert_miss(c, CP, 7, 1, 1000 + TTL);
    assert_int_equal(up_cache_count(c), 1);
    s_assert_hit(c, CP, 7, 2, 1000 + TTL);
    /* Expiry without a lookup (the daemon's tick). */
    assert_int_equal(up_cache_expire(c, 5000 + TTL - 1), 0);
    assert_int_equal(up_cache_expire(c, 5000 + TTL), 1);
    assert_int_equal(up_cache_count(c), 0);
    assert_int_equal(up_cache_bytes(c), 0);
    assert_int_equal(up_cache_evicted(c), 0); /* age is not eviction */
    up_cache_destroy(&c);
}

static void test_count_evicts_oldest_first(void **state)
{
    (void)state;
    up_cache_t *c = up_cache_new(3, TTL);
    s_put(c, CP, 7, 10, 0);
    s_put(c, CP, 7, 11, 1);
    s_put(c, CP, 7, 12, 2);
    /* Looking an entry up does not make it younger: FIFO, not LRU. */
    s_assert_hit(c, CP, 7, 10, 3);
    s_put(c, CP, 7, 13, 4);
    s_assert_miss(c, CP, 7, 10, 5);
    s_assert_hit(c, CP, 7, 11, 5);
    s_put(c, CP, 7, 14, 6);
    s_assert_miss(c, CP, 7, 11, 7);
    s_assert_hit(c, CP, 7, 12, 7);
    s_assert_hit(c, CP, 7, 13, 7);
    s_assert_hit(c, CP, 7, 14, 7);
    assert_int_equal(up_cache_count(c), 3);
    assert_int_equal(up_cache_evicted(c), 2);
    up_cache_destroy(&c);
}

static void test_many_entries(void **state)
{
    (void)state;
    /* More entries than buckets, several epochs: every one is found and
     * the bound holds. */
    const size_t max = 5000;
    up_cache_t *c = up_cache_new(max, TTL);
    for (uint64_t seq = 1; seq <= 2 * max; seq++)
        s_put(c, CP, seq % 3, seq, seq);
    assert_int_equal(up_cache_count(c), max);
    for (uint64_t seq = 1; seq <= max; seq++)
        s_assert_miss(c, CP, seq % 3, seq, 2 * max);
    for (uint64_t seq = max + 1; seq <= 2 * max; seq++)
        s_assert_hit(c, CP, seq % 3, seq, 2 * max);
    /* All of it ages out; memory goes with it. */
    assert_int_equal(up_cache_expire(c, 2 * max + TTL), max);
    assert_int_equal(up_cache_bytes(c), 0);
    up_cache_destroy(&c);
}

static void test_clock_going_back(void **state)
{
    (void)state;
    up_cache_t *c = up_cache_new(4, TTL);
    s_put(c, CP, 7, 1, 10000);
    /* An earlier time never expires anything nor breaks the order. */
    s_put(c, CP, 7, 2, 500);
    s_assert_hit(c, CP, 7, 1, 0);
    s_assert_hit(c, CP, 7, 2, 0);
    assert_int_equal(up_cache_expire(c, 10000 + TTL), 2);
    up_cache_destroy(&c);
}

static void test_bad_input(void **state)
{
    (void)state;
    const uint8_t b[] = "x";
    assert_null(up_cache_new(0, TTL));
    assert_null(up_cache_new(4, 0));
    assert_int_equal(up_cache_put(NULL, CP, 1, 1, 0, b, 1, 0), -EINVAL);
    assert_null(up_cache_find(NULL, CP, 1, 1, 0, 0, NULL, NULL));
    assert_int_equal(up_cache_count(NULL), 0);
    assert_int_equal(up_cache_expire(NULL, 0), 0);

    up_cache_t *c = up_cache_new(4, TTL);
    assert_int_equal(up_cache_put(c, NULL, 1, 1, 0, b, 1, 0), -EINVAL);
    assert_int_equal(up_cache_put(c, CP, 1, 1, 0, NULL, 1, 0), -EINVAL);
    assert_int_equal(up_cache_put(c, CP, 1, 1, 0, b, 0, 0), -EINVAL);
    char longid[UP_CACHE_SENDER_MAX + 2];
    memset(longid, 'a', sizeof(longid) - 1);
    longid[sizeof(longid) - 1] = '\0';
    assert_int_equal(up_cache_put(c, longid, 1, 1, 0, b, 1, 0), -EINVAL);
    assert_null(up_cache_find(c, longid, 1, 1, 0, 0, NULL, NULL));
    assert_null(up_cache_find(c, NULL, 1, 1, 0, 0, NULL, NULL));
    assert_int_equal(up_cache_count(c), 0);
    /* The longest sender accepted. */
    longid[UP_CACHE_SENDER_MAX] = '\0';
    assert_int_equal(up_cache_put(c, longid, 1, 1, 0, b, 1, 0), 0);
    assert_non_null(up_cache_find(c, longid, 1, 1, 0, 0, NULL, NULL));
    up_cache_destroy(&c);
}

/* The same key with another command's fingerprint is a reused seq: no
 * answer, and the caller is told; the first command's answer stays. */
static void test_reused_seq_is_not_a_duplicate(void **state)
{
    (void)state;
    up_cache_t *c = up_cache_new(16, 1000);
    assert_non_null(c);
    const uint8_t alloc[] = "allocate-leg command";
    const uint8_t release[] = "release-leg command";
    const uint8_t answer[] = {1, 2, 3};
    uint64_t fa = up_cache_fingerprint(alloc, sizeof(alloc));
    uint64_t fr = up_cache_fingerprint(release, sizeof(release));
    assert_true(fa != fr);
    assert_int_equal(up_cache_fingerprint(alloc, sizeof(alloc)), fa);
    assert_int_equal(up_cache_put(c, CP, 7, 42, fa, answer, sizeof(answer), 0),
                     0);
    size_t len = 0;
    bool reused = true;
    assert_non_null(up_cache_find(c, CP, 7, 42, fa, 1, &len, &reused));
    assert_false(reused);
    assert_int_equal(len, sizeof(answer));
    assert_null(up_cache_find(c, CP, 7, 42, fr, 1, &len, &reused));
    assert_true(reused);
    /* Another seq is simply not cached. */
    assert_null(up_cache_find(c, CP, 7, 43, fr, 1, &len, &reused));
    assert_false(reused);
    assert_non_null(up_cache_find(c, CP, 7, 42, fa, 2, &len, NULL));
    up_cache_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hit_and_miss),
        cmocka_unit_test(test_key_is_the_triple),
        cmocka_unit_test(test_first_answer_kept),
        cmocka_unit_test(test_ttl_expiry),
        cmocka_unit_test(test_count_evicts_oldest_first),
        cmocka_unit_test(test_many_entries),
        cmocka_unit_test(test_clock_going_back),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_reused_seq_is_not_a_duplicate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
